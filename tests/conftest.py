"""Shared fixtures and the CI guard for the PyTorch reference tests.

With CNNUMPY_REQUIRE_TORCH=1 (set by .ci/run), a missing PyTorch is an error, not a
skip, and the run fails unless PyTorch-marked tests actually ran and passed.
Likewise the MPI tests (tests/distributed/test_mpi.py, the ``mpiexec`` fixture): they
skip where ``mpiexec`` cannot launch two ranks, unless CNNUMPY_REQUIRE_MPI=1 (also set
by .ci/run), which makes that a failure.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REQUIRE_TORCH = os.environ.get("CNNUMPY_REQUIRE_TORCH") == "1"
REQUIRE_MPI = os.environ.get("CNNUMPY_REQUIRE_MPI") == "1"
_torch_passed = 0


def pytest_configure(config):
    if REQUIRE_TORCH:
        try:
            import torch  # noqa: F401
        except ImportError as exc:  # pragma: no cover - CI guard
            raise pytest.UsageError(
                f"CNNUMPY_REQUIRE_TORCH=1 but torch cannot be imported: {exc}"
            ) from exc


def pytest_collection_modifyitems(items):
    """Every test in a module that imports torch counts as a PyTorch reference test."""
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and getattr(module, "torch", None) is not None:
            item.add_marker(pytest.mark.torch)


def pytest_runtest_logreport(report):
    global _torch_passed
    if report.when == "call" and report.passed and "torch" in report.keywords:
        _torch_passed += 1


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"PyTorch reference tests passed: {_torch_passed}")


def pytest_sessionfinish(session, exitstatus):
    if REQUIRE_TORCH and _torch_passed == 0 and exitstatus == 0:
        session.exitstatus = 1


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def digit(tmp_path):
    """A PNG of a bright square on black, MNIST style (the CLI tests' image)."""
    from PIL import Image

    path = tmp_path / "digit.png"
    pixels = np.zeros((28, 28), np.uint8)
    pixels[6:14, 8:16] = 255
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def engine_on():
    """The engine's kernels, even under CNNUMPY_ENGINE=0: for the tests of the
    engine's own machinery (dispatch, fused inference, process replicas)."""
    from cnnumpy import engine

    with engine.on():
        yield


def _mpi_problem(mpiexec: Path) -> str | None:
    """Why ``mpiexec`` cannot run two mpi4py ranks here, or None if it can."""
    if not mpiexec.exists():
        return f"{mpiexec} is missing (make venv installs cnnumpy[mpi])"
    # rank 0 alone prints: the launcher may interleave the ranks' bytes
    probe = (
        "from mpi4py import MPI; world = MPI.COMM_WORLD; "
        "world.Get_rank() or print('ranks', world.Get_size())"
    )
    argv = [str(mpiexec), "-n", "2", sys.executable, "-c", probe]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return f"{' '.join(argv)} did not end within 60 s"
    if done.returncode != 0 or done.stdout.split() != ["ranks", "2"]:
        return f"mpiexec -n 2 failed ({done.returncode}): {done.stderr.strip()[-500:]}"
    return None


@pytest.fixture(scope="session")
def mpiexec() -> Path:
    """MPICH's ``mpiexec`` beside this Python (the mpich wheel's), once it has run
    two ranks; a skip without it, a failure under CNNUMPY_REQUIRE_MPI=1."""
    path = Path(sys.executable).parent / "mpiexec"
    problem = _mpi_problem(path)
    if problem is not None:
        if REQUIRE_MPI:
            pytest.fail(f"CNNUMPY_REQUIRE_MPI=1, but {problem}")
        pytest.skip(problem)
    return path
