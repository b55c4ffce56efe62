"""Reused buffers and chunking of the fast kernels never change the numbers."""

import numpy as np
import pytest

import cnnumpy.engine.kernels.parallel as parallel_module
from cnnumpy.engine.kernels.conv import conv2d_backward, conv2d_forward
from cnnumpy.engine.kernels.im2col import pad_into
from cnnumpy.engine.kernels.parallel import PaddedBuffers, Workspace, chunk_bounds
from cnnumpy.engine.kernels.pool import (
    maxpool2d_backward_tiles,
    maxpool2d_forward_tiles,
)
from cnnumpy.layers import Conv2D
from cnnumpy.textbook.loops import conv2d_backward_loops, conv2d_forward_loops


def test_workspace_reuses_and_grows():
    ws = Workspace()
    a = ws.get("r", (2, 3), np.float32)
    b = ws.get("r", (3, 2), np.float32)
    assert np.shares_memory(a, b) and b.shape == (3, 2)
    c = ws.get("r", (4, 4), np.float32)
    assert c.shape == (4, 4) and c.flags.c_contiguous
    assert not np.shares_memory(ws.get("r", (2,), np.float64), c)


def test_padded_buffer_keeps_a_zero_border():
    pool = PaddedBuffers()
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
        xp = pool.padded(x, ((1, 2), (0, 1)))
        np.testing.assert_array_equal(xp, np.pad(x, ((0, 0), (0, 0), (1, 2), (0, 1))))


def test_a_padded_buffer_is_reused_only_once_nothing_holds_it():
    """A cache (here: a view of the buffer) keeps its padded input intact; the
    buffer comes back once the cache is gone; other shapes' free buffers go."""
    pool = PaddedBuffers()
    pads = ((1, 1), (1, 1))
    x1, x2, x3 = (np.full((2, 1, 2, 2), v, dtype=np.float32) for v in (1, 2, 3))
    held = pool.padded(x1, pads)[:1]  # a cache holding a view
    free = pool.padded(x2, pads)
    assert not np.shares_memory(held, free)
    free_id = id(free)
    del free
    again = pool.padded(x3, pads)
    assert id(again) == free_id and held[0, 0, 1, 1] == 1  # the held one untouched
    del again
    pool.padded(np.ones((1, 1, 3, 3), np.float32), pads)  # another shape
    assert sum(len(b) for b in pool._pools.values()) == 2  # held + the new one


def test_pad_into_overwrites_garbage():
    dst = np.full((1, 1, 5, 6), 7.0)
    src = np.arange(6.0).reshape(1, 1, 2, 3)
    pad_into(dst, src, ((1, 2), (2, 1)))
    np.testing.assert_array_equal(dst, np.pad(src, ((0, 0), (0, 0), (1, 2), (2, 1))))


def test_chunk_bounds_cover_everything_once():
    bounds = chunk_bounds(10, 10**9)
    assert [i for lo, hi in bounds for i in range(lo, hi)] == list(range(10))


@pytest.mark.parametrize("chunk_bytes", [1, 10**9])
@pytest.mark.parametrize("padding, stride", [(1, 1), (0, 1), ("same", 1), (1, 2)])
def test_conv_chunking_matches_naive(monkeypatch, chunk_bytes, padding, stride):
    monkeypatch.setattr(parallel_module, "CHUNK_BYTES", chunk_bytes)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 2, 6, 6))
    w = rng.standard_normal((3, 2, 2 if padding == "same" else 3, 3))
    b = rng.standard_normal(3)
    out, cache = conv2d_forward(x, w, b, stride, padding)
    out_n, cache_n = conv2d_forward_loops(x, w, b, stride, padding)
    np.testing.assert_allclose(out, out_n, rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    for got, want in zip(
        conv2d_backward(dout, cache), conv2d_backward_loops(dout, cache_n), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_layer_forward_twice_uses_the_latest_input():
    layer = Conv2D(2, 3, padding=1)
    rng = np.random.default_rng(1)
    x1, x2 = rng.standard_normal((2, 2, 2, 5, 5), dtype=np.float32)
    layer.forward(x1, training=True)
    out = layer.forward(x2, training=True)
    layer.backward(np.ones_like(out))
    dw_twice = layer.grads["W"].copy()
    fresh = Conv2D(2, 3, padding=1)
    fresh.build((2, 5, 5))
    fresh.params["W"][...] = layer.params["W"]
    fresh.backward(np.ones_like(fresh.forward(x2, training=True)))
    np.testing.assert_allclose(dw_twice, fresh.grads["W"], rtol=1e-6)


def test_maxpool_fast_path_ties_like_torch():
    x = np.array([[[[1.0, 1.0, 2.0, 0.0], [1.0, 1.0, 2.0, 2.0]]]], dtype=np.float32)
    out, cache = maxpool2d_forward_tiles(x, 2, 2)
    dx = maxpool2d_backward_tiles(np.array([[[[5.0, 7.0]]]], dtype=np.float32), cache)
    np.testing.assert_array_equal(out, [[[[1.0, 2.0]]]])
    np.testing.assert_array_equal(dx, [[[[5.0, 0.0, 7.0, 0.0], [0.0, 0.0, 0.0, 0.0]]]])
    assert dx.dtype == np.float32


def test_flat_conv_layer_survives_changing_batch_sizes():
    # the padded-input buffer and the shared scratch are reused and regrown: the
    # results must not depend on what an earlier, bigger or smaller, call left there
    layer = Conv2D(3, 3, padding=1).astype(np.float64)
    layer.build((2, 5, 6))
    rng = np.random.default_rng(2)
    for n in (3, 1, 4, 1):
        x = rng.standard_normal((n, 2, 5, 6))
        out = layer.forward(x, training=True)
        dout = rng.standard_normal(out.shape)
        dx = layer.backward(dout)
        w, b = layer.params["W"], layer.params["b"]
        out_n, cache_n = conv2d_forward_loops(x, w, b, 1, 1)
        dx_n, dw_n, db_n = conv2d_backward_loops(dout, cache_n)
        np.testing.assert_allclose(out, out_n, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx, dx_n, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(layer.grads["W"], dw_n, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(layer.grads["b"], db_n, rtol=1e-12, atol=1e-12)
