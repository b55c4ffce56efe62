"""Conv2D and Conv1D against PyTorch: forward, dx, dW and db.

Our weights are copied into ``torch.nn.functional.conv2d`` / ``conv1d``; reflect and
replicate padding go through ``F.pad`` first (PyTorch's ``padding_mode`` does the same).
Tolerances: float64 ``rtol=1e-10, atol=1e-12`` (both compute the same sums in a
    different
order); float32 ``rtol=1e-4, atol=1e-5`` (sums of up to C*KH*KW*N*Ho*Wo ~ 2,000 terms of
size ~1 accumulate ~1e-6 relative rounding error; the margin covers BLAS blocking).
"""

import engine_modes
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnumpy.engine.kernels.conv import resolve_padding, resolve_padding_1d
from cnnumpy.layers import Conv1D, Conv2D


@pytest.fixture(autouse=True, params=engine_modes.modes("conv2d"))
def engine_mode(request):
    """Every test once per mode: the engine, the book, each conv2d kernel forced."""
    with engine_modes.running(request.param):
        yield request.param


pytestmark = pytest.mark.torch

TOL = {
    np.float64: {"rtol": 1e-10, "atol": 1e-12},
    np.float32: {"rtol": 1e-4, "atol": 1e-5},
}
TORCH_MODE = {"reflect": "reflect", "replicate": "replicate"}

# (kernel, stride, padding, padding_mode, (H, W), allow_uneven)
CASES_2D = [
    (3, 1, 0, "zeros", (7, 7), False),
    (3, 1, 1, "zeros", (9, 7), False),
    (5, 1, 2, "zeros", (8, 8), False),
    (3, 2, 1, "zeros", (9, 9), False),
    (1, 1, 0, "zeros", (5, 6), False),
    ((2, 3), (2, 1), (1, 2), "zeros", (8, 6), False),
    (3, 1, "same", "zeros", (7, 8), False),
    (2, 1, "same", "zeros", (7, 6), False),
    (4, 1, "same", "zeros", (6, 5), False),
    (3, 1, "valid", "zeros", (6, 9), False),
    (3, 1, 1, "reflect", (7, 7), False),
    (3, 2, (2, 1), "reflect", (7, 5), False),
    (2, 1, "same", "reflect", (5, 6), False),
    (3, 1, 2, "replicate", (5, 5), False),
    (3, 2, 1, "replicate", (9, 7), False),
    (7, 2, 3, "zeros", (16, 16), True),  # floors like PyTorch
]
IDS_2D = [f"k{c[0]}-s{c[1]}-p{c[2]}-{c[3]}-{c[4][0]}x{c[4][1]}" for c in CASES_2D]

CASES_1D = [
    (3, 1, 0, "zeros", 9),
    (3, 2, 1, "zeros", 9),
    (2, 1, "same", "zeros", 8),
    (5, 1, "same", "reflect", 9),
    (4, 1, (2, 1), "replicate", 7),
    (1, 1, 0, "zeros", 5),
]
IDS_1D = [f"k{c[0]}-s{c[1]}-p{c[2]}-{c[3]}-L{c[4]}" for c in CASES_1D]


def _torch_forward(x, w, b, stride, pads, mode, dims):
    """Pad explicitly (asymmetric pads included), then an unpadded torch conv."""
    flat = [p for pair in reversed(pads) for p in pair]  # F.pad wants last axis first
    if any(flat):
        x = F.pad(x, flat, mode="constant" if mode == "zeros" else TORCH_MODE[mode])
    conv = F.conv2d if dims == 2 else F.conv1d
    return conv(x, w, b, stride=stride)


def _compare(layer, x, dtype, dims, pads, stride):
    layer.build(x.shape[1:])
    layer.astype(dtype)
    x = x.astype(dtype)
    y = layer.forward(x)
    dout = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    dx = layer.backward(dout)

    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(layer.params["W"], requires_grad=True)
    bt = (
        torch.tensor(layer.params["b"], requires_grad=True)
        if "b" in layer.params
        else None
    )
    yt = _torch_forward(xt, wt, bt, stride, pads, layer.padding_mode, dims)
    yt.backward(torch.tensor(dout))

    tol = TOL[dtype]
    pairs = [(y, yt), (dx, xt.grad), (layer.grads["W"], wt.grad)]
    if bt is not None:
        pairs.append((layer.grads["b"], bt.grad))
    for ours, theirs in pairs:
        assert ours.shape == tuple(theirs.shape)
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours, theirs.detach().numpy(), **tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kernel,stride,padding,mode,size,uneven", CASES_2D, ids=IDS_2D)
def test_conv2d_matches_torch(kernel, stride, padding, mode, size, uneven, dtype):
    layer = Conv2D(
        4,
        kernel,
        stride=stride,
        padding=padding,
        padding_mode=mode,
        allow_uneven=uneven,
    )
    x = np.random.default_rng(0).standard_normal((3, 3, *size))
    pads = resolve_padding(padding, layer.kernel_size, layer.stride, size)
    _compare(layer, x, dtype, 2, pads, layer.stride)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv2d_same_matches_torch_same(dtype):
    # torch's own padding="same" (stride 1) also puts the extra padding at the end.
    layer = Conv2D(3, (2, 4), padding="same", use_bias=False)
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 6)).astype(dtype)
    y = layer.astype(dtype).forward(x)
    yt = F.conv2d(torch.tensor(x), torch.tensor(layer.params["W"]), padding="same")
    assert y.shape == tuple(yt.shape)
    np.testing.assert_allclose(y, yt.numpy(), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kernel,stride,padding,mode,length", CASES_1D, ids=IDS_1D)
def test_conv1d_matches_torch(kernel, stride, padding, mode, length, dtype):
    layer = Conv1D(4, kernel, stride=stride, padding=padding, padding_mode=mode)
    x = np.random.default_rng(0).standard_normal((2, 3, length))
    pads = resolve_padding_1d(padding, kernel, stride, length)[1:]
    _compare(layer, x, dtype, 1, pads, stride)


def test_conv2d_batch1_no_bias_matches_torch():
    layer = Conv2D(5, 3, stride=2, padding=1, use_bias=False)
    x = np.random.default_rng(0).standard_normal((1, 2, 7, 9))
    _compare(layer, x, np.float64, 2, ((1, 1), (1, 1)), (2, 2))
