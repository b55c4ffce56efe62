"""Run a test module over every way an operation can run: the engine's own choice,
the book alone, and each of the engine's kernels forced. In a test module::

    @pytest.fixture(autouse=True, params=engine_modes.modes("maxpool2d", "avgpool2d"))
    def engine_mode(request):
        with engine_modes.running(request.param):
            yield request.param

runs every test of the module once per mode, so that each fast kernel is compared with
the book (and with the loops, PyTorch and finite differences) on every case of the
layer tests, not only in a few twin tests. A forced kernel serves the cases it applies
to; the others run what the engine would pick anyway.
"""

from __future__ import annotations

import contextlib

from cnnumpy.engine import dispatch, ops  # noqa: F401 (ops fills the tables)


def modes(*names: str) -> list[str]:
    """``"engine"``, ``"book"``, then ``"op:kernel"`` for every kernel of each op."""
    found = ["engine", "book"]
    for name in names:
        found += [f"{name}:{k.name}" for k in dispatch.TABLES[name].kernels]
    return found


@contextlib.contextmanager
def running(mode: str):
    if mode == "engine":
        yield
    elif mode == "book":
        with dispatch.off():
            yield
    else:
        name, kernel = mode.split(":")
        with dispatch.force(name, kernel):
            yield
