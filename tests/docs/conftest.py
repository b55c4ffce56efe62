"""The documentation's tests need the ``docs`` extra (jupytext, nbclient, ipykernel,
MkDocs). Without it they fail with a message naming the fix; they never skip, so a
CI without the extra cannot pass by running nothing.
"""

import importlib

import pytest

DOCS_EXTRA = ("jupytext", "nbclient", "nbformat", "ipykernel", "mkdocs", "yaml")


@pytest.fixture(scope="session")
def docs_extra():
    """Import the docs extra's packages, or fail saying how to install them."""
    missing = []
    for name in DOCS_EXTRA:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        pytest.fail(
            f"the docs extra is missing ({', '.join(missing)}): "
            "make venv, or pip install -e '.[docs]'"
        )
