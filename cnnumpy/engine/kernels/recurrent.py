"""Recurrent layers, fast: the book's loop over time, on each core's share of the batch.

The book (:mod:`cnnumpy.textbook.recurrent`) runs the notes' loop on the whole batch
with ``(N, T, ...)`` arrays of row vectors. These kernels compute the same
recurrences (same equations, same gradients up to float rounding) with four changes,
each measured on this project's machine (Intel Xeon, AVX-512, OpenBLAS SkylakeX
kernel, 2 cores, float32, batch 64, T = 50, 256 units):

1. **One block of sequences per core.** The sequences of a batch never meet, so each
   worker thread runs the whole loop over t on its block of sequences with a
   one-thread BLAS (:func:`~cnnumpy.engine.kernels.parallel.parallel_chunks`): no
   barrier per step, and the element-wise work, which NumPy does on one core, is
   shared too. (The executor holds the BLAS to one thread during a step, so the
   book's loop runs on one core: LSTM forward 31 ms, against 21 ms in two blocks.)
2. **Column vectors, time-major**, as the notes write ``h_t = f(W^xh x_t + W^hh
   h_(t-1))``: each worker keeps its gates, states and cells as ``(T, units, n)``
   arrays, a step's ``n`` states being the columns of one contiguous ``(units, n)``
   block. Each gate is then a contiguous block of rows of the step's ``(G * units,
   n)`` pre-activations; in the book's row layout a gate is every row's slice of
   ``units`` columns, and NumPy's element-wise passes over such strided slices took
   4 microseconds against 1 for a contiguous block (one block of 32 sequences: LSTM
   forward 13.9 ms in rows, 9.x ms in columns). ``hs[0]`` is the initial state and
   ``hs[t + 1]`` the state after step t.
3. **One tanh for every gate.** ``sigmoid(a) = (1 + tanh(a / 2)) / 2``: the rows of
   the sigmoid gates are halved in the weights and biases (exact: a power of two),
   one ``np.tanh`` runs over the step's ``G * units`` rows, and one add and one
   multiply turn the sigmoid ones into gates. The LSTM's gates are reordered ``i, f,
   o, g`` so that its three sigmoid gates are side by side (the gradients are put
   back in PyTorch's ``i, f, g, o`` order).
4. **The weight gradients after the loop**, as one product over every step:
   ``dW_hh = sum_t h_(t-1)^T da_t`` is one product over ``T * n`` columns (6 ms for a
   block of 32), where the book adds T small ones (11 ms).

Each cell (:mod:`~cnnumpy.engine.kernels.lstm`, :mod:`~cnnumpy.engine.kernels.gru`
and SimpleRNN here) has a forward and a backward for one block of sequences;
:func:`run_forward` and :func:`run_backward` share the batch out, gather the blocks'
outputs and add up their weight gradients. The signatures and results are the
book's: ``((outputs, *finals), cache)`` and ``(dx, *dstates0, dW_xh, dW_hh, db_xh,
db_hh)``; the weights keep the book's layout (``W_xh`` ``(F, G*units)``), and a block
multiplies by their transposes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from cnnumpy.engine.kernels.parallel import (
    KEPT,
    SCRATCH,
    blas_one_thread,
    halves,
    parallel_chunks,
)

# Multiply-adds of the recurrent products (N * T * units * G * units) from which the
# batch is split between the worker threads; below, one block (a hand-off costs about
# 100 microseconds, the work of 2**23 multiply-adds on one core).
PARALLEL_MACS = 2**23


class Cache(NamedTuple):
    """What :func:`run_backward` needs: the blocks, each block's cache, the input."""

    bounds: list[tuple[int, int]]
    blocks: dict[int, tuple]  # lo -> the block's cache
    x_shape: tuple[int, int, int]
    dtype: np.dtype
    state_count: int


def columns(a: np.ndarray, out: np.ndarray) -> np.ndarray:
    """A block of row vectors ``(n, T, K)`` as time-major columns ``(T, K, n)``,
    written into ``out``."""
    np.copyto(out, a.transpose(1, 2, 0))
    return out


def spread(a: np.ndarray, role: str) -> np.ndarray:
    """Time-major columns ``(T, K, n)`` side by side: ``(K, T * n)``, in scratch."""
    T, K, n = a.shape
    out = SCRATCH.get(role, (K, T, n), a.dtype)
    np.copyto(out, a.swapaxes(0, 1))
    return out.reshape(K, T * n)


def kept(role: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A buffer for a block's cache (see :class:`~cnnumpy.engine.kernels.parallel.
    CacheBuffers`): mapped pages, no page faults."""
    return KEPT.empty(role, shape, dtype)


def run_forward(block_forward: Callable, x, states0, W_hh):
    """The book's forward of a recurrent op: ``((outputs, *finals), cache)``.

    ``block_forward(x, states0) -> (hs, finals, cache)`` runs the loop on a block
    ``x`` ``(n, T, F)`` with its initial state(s) ``states0`` as columns ``(units,
    n)``: ``hs`` ``(T + 1, units, n)`` (``hs[0]`` the initial state), ``finals`` the
    final state(s) ``(units, n)``, ``cache`` what its backward needs."""
    N, T, F = x.shape
    units = W_hh.shape[0]
    dtype = np.result_type(x, W_hh)
    outputs = np.empty((N, T, units), dtype)
    finals = [np.empty((N, units), dtype) for _ in states0]
    blocks: dict[int, tuple] = {}

    def block(lo: int, hi: int, k: int) -> None:
        block_states = [s[lo:hi].T for s in states0]
        hs, block_finals, cache = block_forward(x[lo:hi], block_states)
        outputs[lo:hi] = hs[1:].transpose(2, 0, 1)
        for final, value in zip(finals, block_finals, strict=True):
            final[lo:hi] = value.T
        blocks[lo] = cache

    bounds = halves(N, N * T * units * W_hh.shape[1], PARALLEL_MACS)
    with blas_one_thread():
        parallel_chunks(block, bounds)
    cache = Cache(bounds, blocks, (N, T, F), dtype, len(states0))
    return (outputs, *finals), cache


def run_backward(block_backward: Callable, dout, cache: Cache, dfinals, need_dx=True):
    """The book's backward of a recurrent op: ``(dx, *dstates0, dW_xh, dW_hh, db_xh,
    db_hh)``, the blocks' weight gradients added up.

    ``block_backward(dout, cache, dfinals, need_dx) -> (dx, dstates0, (dW_xh, dW_hh,
    db_xh, db_hh))`` for one block, given its ``dout`` as columns ``(T, units, n)``
    and its final states' gradients ``(units, n)`` (or None); ``dx`` ``(n, T, F)``,
    ``dstates0`` ``(units, n)``."""
    N, T, F = cache.x_shape
    units = dout.shape[2]
    dx = np.empty((N, T, F), cache.dtype) if need_dx else None
    dstates0 = [np.empty((N, units), cache.dtype) for _ in range(cache.state_count)]
    sums: dict[int, tuple] = {}

    def block(lo: int, hi: int, k: int) -> None:
        block_dfinals = [None if d is None else d[lo:hi].T for d in dfinals]
        dout_block = SCRATCH.get("dout", (T, units, hi - lo), cache.dtype)
        block_dx, block_d0, grads = block_backward(
            columns(dout[lo:hi], dout_block), cache.blocks[lo], block_dfinals, need_dx
        )
        if need_dx:
            dx[lo:hi] = block_dx
        for d0, value in zip(dstates0, block_d0, strict=True):
            d0[lo:hi] = value.T
        sums[lo] = grads

    with blas_one_thread():
        parallel_chunks(block, cache.bounds)
    parts = [sums[lo] for lo, _ in cache.bounds]
    grads = [sum(part[j] for part in parts[1:]) + parts[0][j] for j in range(4)]
    return (dx, *dstates0, *grads)


def input_part(x_block, W_xh_T, b):
    """``W_xh^T x_t + b`` for every step of a block: ``(T, G*units, n)``; also returns
    the block's input as columns ``(T, F, n)``, for the backward."""
    n, T, F = x_block.shape
    dtype = np.result_type(x_block, W_xh_T)
    xs = columns(x_block, kept("xs", (T, F, n), dtype))
    a = np.matmul(W_xh_T, xs, out=kept("gates", (T, len(b), n), dtype))
    a += b[:, None]
    return a, xs


def weight_grads(xs, hs, da_x, da_h, W_xh, need_dx):
    """A block's ``dx`` ``(n, T, F)`` (or None) and ``(dW_xh, dW_hh, db_xh, db_hh)``
    from dE/d(input part) ``da_x`` and dE/d(recurrent part) ``da_h``, both ``(T,
    G*units, n)`` (the same array but for the GRU's n gate). ``hs[t]`` is the
    h_(t-1) of step t."""
    da_x_side = spread(da_x, "da_x")
    da_h_side = da_x_side if da_h is da_x else spread(da_h, "da_h")
    dW_xh = spread(xs, "xs") @ da_x_side.T
    dW_hh = spread(hs[:-1], "hs") @ da_h_side.T
    db_xh = da_x_side.sum(axis=1)
    db_hh = db_xh.copy() if da_h is da_x else da_h_side.sum(axis=1)
    dx = np.matmul(W_xh, da_x).transpose(2, 0, 1) if need_dx else None
    return dx, (dW_xh, dW_hh, db_xh, db_hh)


# -- SimpleRNN: h_t = f(W_xh^T x_t + b_xh + W_hh^T h_(t-1) + b_hh) --------------------


def _rnn_block_forward(x, states0, W_xh, W_hh, b, activation):
    """The loop on one block (see :func:`run_forward`)."""
    a, xs = input_part(x, W_xh.T, b)
    T, units, n = a.shape
    W_hh_T = np.ascontiguousarray(W_hh.T)
    hs = kept("hs", (T + 1, units, n), a.dtype)
    hs[0] = states0[0]
    for t in range(T):
        a_t = a[t]
        a_t += W_hh_T @ hs[t]
        if activation == "tanh":
            np.tanh(a_t, out=hs[t + 1])
        else:
            np.maximum(a_t, 0, out=hs[t + 1])
    return hs, [hs[T]], (xs, hs, W_xh, W_hh, activation)


def _rnn_block_backward(dout, cache, dfinals, need_dx):
    """BPTT on one block, as the book's :func:`simple_rnn_backward`."""
    xs, hs, W_xh, W_hh, activation = cache
    T = len(dout)
    da = SCRATCH.get("da", dout.shape, dout.dtype)  # dE/da_t
    dh = np.zeros_like(hs[0]) if dfinals[0] is None else dfinals[0].copy()
    for t in reversed(range(T)):
        dh += dout[t]
        h = hs[t + 1]
        if activation == "tanh":  # f'(a_t) = 1 - h_t^2
            np.multiply(h, h, out=da[t])
            np.subtract(1, da[t], out=da[t])
            da[t] *= dh
        else:
            np.multiply(dh, h > 0, out=da[t])
        np.matmul(W_hh, da[t], out=dh)
    dx, grads = weight_grads(xs, hs, da, da, W_xh, need_dx)
    return dx, [dh], grads


def simple_rnn_forward(x, h0, W_xh, W_hh, b_xh, b_hh, activation="tanh"):
    """As :func:`cnnumpy.textbook.recurrent.simple_rnn_forward` (see the module)."""
    b = b_xh + b_hh

    def block_forward(x_block, states0):
        return _rnn_block_forward(x_block, states0, W_xh, W_hh, b, activation)

    return run_forward(block_forward, x, [h0], W_hh)


def simple_rnn_backward(dout, cache, dh_T=None, need_dx=True):
    """As :func:`cnnumpy.textbook.recurrent.simple_rnn_backward`."""
    return run_backward(_rnn_block_backward, dout, cache, [dh_T], need_dx)
