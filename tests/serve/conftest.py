"""What a failed playground test shows besides its traceback.

A fixture value with a ``failure_sections()`` method (the running ``cnnumpy serve``
and the browser of ``test_e2e.py``) adds its sections, such as the server's log and
the browser's console, to the report of a test that fails.
"""

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for value in getattr(item, "funcargs", {}).values():
        sections = getattr(value, "failure_sections", None)
        if callable(sections):
            for title, text in sections():
                report.sections.append((title, text))
