"""Pooling layers against PyTorch (torch 2.13 CPU): output and dx, ties, overlaps.

Tolerances: float64 rtol 1e-12 / atol 1e-12 (max pooling copies values, averages differ
only in summation order); float32 rtol 1e-6 / atol 1e-6. For max pooling with ties both
libraries must pick the same element (the first maximum in row-major window order), so
dx is compared exactly as well.
"""

import engine_modes
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnumpy.layers import AvgPool1D, AvgPool2D, GlobalAvgPool2D, MaxPool1D, MaxPool2D

pytestmark = pytest.mark.torch


@pytest.fixture(autouse=True, params=engine_modes.modes("maxpool2d", "avgpool2d"))
def engine_mode(request):
    """Every test once per mode: the engine, the book, each pooling kernel forced."""
    with engine_modes.running(request.param):
        yield request.param


TOLERANCES = {
    np.float64: {"rtol": 1e-12, "atol": 1e-12},
    np.float32: {"rtol": 1e-6, "atol": 1e-6},
}

CASES_2D = [  # (pool, stride, padding, shape)
    (2, 2, 0, (2, 3, 8, 8)),
    (2, 2, 0, (2, 3, 7, 9)),
    (3, 2, 0, (2, 3, 11, 11)),  # overlapping, AlexNet-style
    (3, 2, 1, (1, 2, 8, 7)),
    (2, 1, 1, (2, 2, 5, 5)),
    ((3, 2), (2, 1), (1, 0), (2, 2, 7, 6)),
]
CASES_1D = [(2, 2, 0, (2, 3, 9)), (3, 2, 1, (2, 2, 10)), (3, 1, 0, (1, 2, 6))]


def make_inputs(shape, rng, dtype):
    """Continuous values, small integers (ties), a constant map (every window tied)."""
    return {
        "normal": rng.standard_normal(shape).astype(dtype),
        "integers": rng.integers(-2, 3, shape).astype(dtype),
        "constant": np.full(shape, 1.5, dtype=dtype),
    }


def run_both(layer, torch_fn, x, rng):
    """Our forward/backward and torch's with the same upstream gradient."""
    y = layer.forward(x)
    dout = rng.standard_normal(y.shape).astype(x.dtype)
    dx = layer.backward(dout)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch_fn(xt)
    yt.backward(torch.tensor(dout))
    return (y, dx), (yt.detach().numpy(), xt.grad.numpy())


def assert_same(ours, theirs, dtype):
    for what, a, b in zip(("output", "dx"), ours, theirs, strict=True):
        assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
        assert a.dtype == b.dtype, f"{what}: dtype {a.dtype} != {b.dtype}"
        np.testing.assert_allclose(a, b, err_msg=what, **TOLERANCES[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("pool", "stride", "padding", "shape"), CASES_2D)
def test_maxpool2d_vs_torch(pool, stride, padding, shape, dtype, rng):
    layer = MaxPool2D(pool, stride=stride, padding=padding)
    for name, x in make_inputs(shape, rng, dtype).items():
        ours, theirs = run_both(
            layer, lambda t: F.max_pool2d(t, pool, stride, padding), x, rng
        )
        assert_same(ours, theirs, dtype)
        if name != "normal":  # ties: the very same element receives the gradient
            np.testing.assert_array_equal(ours[1] != 0, theirs[1] != 0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("pool", "stride", "padding", "shape"), CASES_2D)
def test_avgpool2d_vs_torch(pool, stride, padding, shape, dtype, rng):
    layer = AvgPool2D(pool, stride=stride, padding=padding)

    def torch_fn(t):
        return F.avg_pool2d(t, pool, stride, padding, count_include_pad=True)

    for x in make_inputs(shape, rng, dtype).values():
        assert_same(*run_both(layer, torch_fn, x, rng), dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 4, 1, 1), (3, 2, 8, 8)])
def test_global_avgpool_vs_torch(shape, dtype, rng):
    def torch_fn(t):
        return F.adaptive_avg_pool2d(t, 1).flatten(1)

    x = rng.standard_normal(shape).astype(dtype)
    assert_same(*run_both(GlobalAvgPool2D(), torch_fn, x, rng), dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("pool", "stride", "padding", "shape"), CASES_1D)
def test_pool1d_vs_torch(pool, stride, padding, shape, dtype, rng):
    pairs = [
        (
            MaxPool1D(pool, stride, padding),
            lambda t: F.max_pool1d(t, pool, stride, padding),
        ),
        (
            AvgPool1D(pool, stride, padding),
            lambda t: F.avg_pool1d(t, pool, stride, padding),
        ),
    ]
    for layer, torch_fn in pairs:
        for x in make_inputs(shape, rng, dtype).values():
            assert_same(*run_both(layer, torch_fn, x, rng), dtype)


def test_maxpool_overlapping_ties_accumulate(rng):
    """3x3 stride 2: (2, 2) is the first maximum of the four windows that share it."""
    x = np.zeros((1, 1, 9, 9))
    x[0, 0, 2, 2] = x[0, 0, 4, 4] = 5.0  # (4, 4) ties with (2, 2) in window (1, 1)
    layer = MaxPool2D(3, stride=2)
    ours, theirs = run_both(layer, lambda t: F.max_pool2d(t, 3, 2), x, rng)
    assert_same(ours, theirs, np.float64)
    layer.forward(x)
    dx = layer.backward(np.ones((1, 1, 4, 4)))
    assert dx[0, 0, 2, 2] == 4.0
