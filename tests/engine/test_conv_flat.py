"""The flat ("wide grid") stride-1 convolution against its naive twin, finite
differences and PyTorch, with both of its dx paths and its dispatch; and its small-map
twin with the images innermost (conv_inner), which these shapes take by default, and
its row bands: the ``layout`` fixture runs the tests on each of the three layouts
(passed to the kernels, or forced in the ``conv2d`` table for the layers).

Tolerances: float64 against the naive loops ``1e-12`` (same sums, different order);
float32 against PyTorch ``rtol=1e-4, atol=1e-5`` (as in test_conv_torch.py).
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import cnnumpy.engine.kernels.parallel as parallel_module
from cnnumpy import engine
from cnnumpy.engine import rules
from cnnumpy.engine.kernels import conv_flat, conv_flat_backward, conv_inner
from cnnumpy.engine.kernels.conv import conv2d_backward, conv2d_forward
from cnnumpy.engine.kernels.conv_wide import dout_wide
from cnnumpy.engine.kernels.parallel import SCRATCH
from cnnumpy.layers import Conv1D, Conv2D
from cnnumpy.textbook.loops import conv2d_backward_loops, conv2d_forward_loops
from tests.gradcheck import check_layer_gradients

# (N, C, H, W, F, kernel, pads): odd sizes, batch 1, asymmetric pads, pads >= kernel,
# 1x1 kernels; C and F chosen to reach both dx paths (2C > F: full convolution,
# 2C <= F: slice-adds).
CASES = [
    (2, 3, 7, 5, 4, (3, 3), ((1, 1), (1, 1))),
    (1, 2, 6, 9, 5, (3, 2), ((0, 0), (0, 0))),
    (3, 1, 5, 7, 6, (5, 5), ((2, 2), (2, 2))),
    (2, 4, 5, 6, 3, (2, 2), ((0, 1), (0, 1))),
    (2, 2, 4, 5, 3, (2, 3), ((3, 2), (1, 4))),  # pads >= kernel: slice-adds
    (1, 3, 4, 4, 2, (1, 1), ((0, 0), (0, 0))),
    (2, 2, 1, 9, 5, (1, 3), ((0, 0), (1, 1))),  # a 1-D signal
    (2, 3, 6, 6, 6, (3, 3), ((1, 1), (1, 1))),  # 2C = F: full convolution if inner
    # row bands (use_bands: KW >= 4, C*KH >= 64) in the forward and in dx's full
    # convolution (F*KH = 100), with a kernel that is not square and uneven pads
    (2, 13, 5, 6, 20, (5, 4), ((2, 2), (1, 2))),
    (3, 16, 4, 4, 5, (5, 5), ((2, 2), (2, 2))),  # bands in the forward only
]
IDS = [f"N{c[0]}C{c[1]}-{c[2]}x{c[3]}-F{c[4]}-k{c[5]}-p{c[6]}" for c in CASES]


@pytest.fixture(params=rules.LAYOUTS)
def layout(request):
    """Each flat layout, whatever the rules would choose for the shape."""
    with engine.force("conv2d", request.param):
        yield request.param


def _data(case, dtype=np.float64, bias=True):
    N, C, H, W, F, kernel, _pads = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((F, C, *kernel)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype) if bias else None
    return x, w, b


def _poison_scratch():
    """Fill every shared scratch buffer with NaN: a kernel that reads a junk column
    or a stale scratch value it did not write makes the result NaN."""
    for buf in SCRATCH._flat.values():
        if buf.dtype.kind == "f":
            buf.fill(np.nan)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_flat_matches_naive(case, bias, layout):
    x, w, b = _data(case, bias=bias)
    pads = case[-1]
    for _ in range(2):  # the second pass pads into a reused buffer
        _poison_scratch()
        out, cache = conv2d_forward(x, w, b, 1, pads, layout=layout)
        assert cache[0] == layout
        out_n, cache_n = conv2d_forward_loops(x, w, b, 1, pads)
        np.testing.assert_allclose(out, out_n, rtol=1e-12, atol=1e-12)
        dout = np.random.default_rng(1).standard_normal(out.shape)
        _poison_scratch()
        got = conv2d_backward(dout, cache)
        want = conv2d_backward_loops(dout, cache_n)
        for g, ref in zip(got, want, strict=True):
            if ref is None:
                assert g is None
            else:
                assert g.shape == ref.shape
                np.testing.assert_allclose(g, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_both_dx_paths_agree(case, layout):
    x, w, b = _data(case)
    out, cache = conv_flat.conv2d_forward_flat(x, w, b, case[-1], layout)
    dout = np.random.default_rng(2).standard_normal(out.shape)
    (top, bottom), (left, right) = case[-1]
    KH, KW = case[5]
    slice_add = conv_flat_backward._dx_slice_add(dout, cache)
    if max(top, bottom) < KH and max(left, right) < KW:
        full = conv_flat_backward._dx_full_flat(dout, cache)
        np.testing.assert_allclose(full, slice_add, rtol=1e-12, atol=1e-12)
    _o, cache_n = conv2d_forward_loops(x, w, b, 1, case[-1])
    dx_n = conv2d_backward_loops(dout, cache_n)[0]
    np.testing.assert_allclose(slice_add, dx_n, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
def test_row_bands_match_full_columns(bias):
    """Both column layouts of the wide grid give the same correlation (and the
    bands are what the rule picks for 13 channels, 5x4 kernels, not for 3)."""
    case = CASES[-2]
    x, w, b = _data(case, bias=bias)
    assert rules.use_bands(13, (5, 4)) and not rules.use_bands(3, (5, 5))
    _poison_scratch()
    bands = conv_flat.correlate_flat(x, w, b, case[-1], layout="bands")
    _poison_scratch()
    full = conv_flat.correlate_flat(x, w, b, case[-1], layout="wide")
    np.testing.assert_allclose(bands, full, rtol=1e-12, atol=1e-12)


def test_dout_wide_zeroes_the_junk_columns():
    dout = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5) + 1
    _poison_scratch()
    g = dout_wide(dout, 7, "g_test")  # Wp = 7: 2 junk columns per row
    assert g.shape == (3, 2, 3 * 7 + 5)
    rows = np.concatenate([g, np.zeros((3, 2, 2))], axis=2).reshape(3, 2, 4, 7)
    np.testing.assert_array_equal(rows[..., :5], dout.transpose(1, 0, 2, 3))
    np.testing.assert_array_equal(rows[..., 5:], 0)


@pytest.mark.parametrize("chunk_bytes", [1, 10**9])
@pytest.mark.parametrize(
    "case",
    [
        (5, 3, 6, 7, 8, (3, 3), ((1, 1), (2, 0))),
        (5, 13, 5, 6, 20, (5, 4), ((2, 2), (1, 2))),
    ],
    ids=["full-columns", "row-bands"],
)
@pytest.mark.slow
def test_flat_chunking_matches_naive(monkeypatch, chunk_bytes, case, layout):
    monkeypatch.setattr(parallel_module, "CHUNK_BYTES", chunk_bytes)
    x, w, b = _data(case)
    out, cache = conv2d_forward(x, w, b, 1, case[-1], layout=layout)
    out_n, cache_n = conv2d_forward_loops(x, w, b, 1, case[-1])
    np.testing.assert_allclose(out, out_n, rtol=1e-12, atol=1e-12)
    dout = np.random.default_rng(3).standard_normal(out.shape)
    for got, want in zip(
        conv2d_backward(dout, cache), conv2d_backward_loops(dout, cache_n), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_small_maps_take_the_inner_layout(monkeypatch):
    """Maps up to 16x16 with at least 10% junk on the wide grid go to conv_inner;
    larger maps, 1x1 kernels and 2x2 kernels on 14x14 maps stay on the wide grid."""
    assert rules.inner_applies(16, 16, 18)  # 3x3 "same": 286 positions
    assert rules.inner_applies(8, 8, 12)  # 5x5 "same": 92 positions for 64
    assert not rules.inner_applies(17, 16, 18)
    assert not rules.inner_applies(8, 8, 8)  # 1x1: no junk
    assert not rules.inner_applies(14, 14, 15)  # 209 positions for 196
    taken = []
    real = conv_inner.correlate_inner
    monkeypatch.setattr(
        conv_flat, "correlate_inner", lambda *a: taken.append(a[0].shape) or real(*a)
    )
    for H in (8, 20):
        x, w, b = _data((2, 3, H, H, 4, (3, 3), None))
        out, cache = conv2d_forward(x, w, b, 1, 1)
        np.testing.assert_allclose(
            out, conv2d_forward_loops(x, w, b, 1, 1)[0], rtol=1e-12, atol=1e-12
        )
    assert taken == [(2, 3, 10, 10)]  # the 8x8 input, padded by 1


def test_inner_layout_is_chunked_like_the_wide_grid(monkeypatch):
    """Many chunks over the worker threads (a chunk of one image each), and dw summed
    over the chunks of each worker: the same values as one chunk."""
    case = (7, 5, 6, 6, 4, (3, 3), ((1, 1), (1, 1)))
    x, w, b = _data(case)
    whole = conv2d_forward(x, w, b, 1, case[-1])
    dout = np.random.default_rng(4).standard_normal(whole[0].shape)
    want = conv2d_backward(dout, whole[1])
    monkeypatch.setattr(parallel_module, "CHUNK_BYTES", 1)
    monkeypatch.setattr(parallel_module, "PARALLEL_BYTES", 1)
    _poison_scratch()
    out, cache = conv2d_forward(x, w, b, 1, case[-1])
    np.testing.assert_allclose(out, whole[0], rtol=1e-12, atol=1e-12)
    for got, ref in zip(conv2d_backward(dout, cache), want, strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "stride, mode", [(2, "zeros"), (1, "reflect"), (1, "replicate"), ((1, 2), "zeros")]
)
def test_other_convolutions_take_the_general_path(stride, mode):
    x, w, b = _data((2, 2, 7, 7, 3, (3, 3), None))
    out, cache = conv2d_forward(x, w, b, stride, 1, mode)
    assert cache[0] == "columns"
    out_n, _ = conv2d_forward_loops(x, w, b, stride, 1, mode)
    np.testing.assert_allclose(out, out_n, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "layer",
    [
        Conv2D(5, 3, padding=1),  # 2C <= F: slice-adds
        Conv2D(2, (2, 3), padding="same"),  # full convolution
        Conv2D(3, 2, padding=(3, 2), use_bias=False),  # pads >= kernel
        Conv1D(4, 3, padding=1),
    ],
    ids=["slice-add", "full", "big-pads", "conv1d"],
)
def test_flat_layers_finite_differences(layer, layout):
    shape = (2, 2, 5) if isinstance(layer, Conv1D) else (2, 2, 5, 4)
    x = np.random.default_rng(0).standard_normal(shape)
    check_layer_gradients(layer, x, rtol=1e-5, atol=1e-7)


def test_row_bands_layer_finite_differences(layout):
    layer = Conv2D(3, (5, 4), padding=(2, 1))  # 13 channels: row bands
    x = np.random.default_rng(0).standard_normal((2, 13, 4, 3))
    assert rules.use_bands(13, (5, 4))
    check_layer_gradients(layer, x, rtol=1e-5, atol=1e-7)


@pytest.mark.torch
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_flat_matches_torch_float32(case, layout):
    x, w, b = _data(case, np.float32)
    out, cache = conv2d_forward(x, w, b, 1, case[-1], layout=layout)
    dout = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    dx, dw, db = conv2d_backward(dout, cache)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    (top, bottom), (left, right) = case[-1]
    yt = TF.conv2d(TF.pad(xt, (left, right, top, bottom)), wt, bt)
    yt.backward(torch.tensor(dout))
    for ours, theirs in [(out, yt), (dx, xt.grad), (dw, wt.grad), (db, bt.grad)]:
        assert ours.shape == tuple(theirs.shape) and ours.dtype == np.float32
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-4, atol=1e-5)
