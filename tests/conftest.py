"""Shared fixtures. With CNNUMPY_REQUIRE_TORCH=1 (CI), a missing PyTorch is an error, not a skip."""

import os

import numpy as np
import pytest


def pytest_configure(config):
    if os.environ.get("CNNUMPY_REQUIRE_TORCH") == "1":
        try:
            import torch  # noqa: F401
        except ImportError as exc:  # pragma: no cover - CI guard
            raise pytest.UsageError(
                f"CNNUMPY_REQUIRE_TORCH=1 but torch cannot be imported: {exc}"
            ) from exc


@pytest.fixture
def rng():
    return np.random.default_rng(0)
