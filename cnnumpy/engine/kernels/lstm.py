"""LSTM, fast: the book's loop (:func:`cnnumpy.textbook.recurrent.lstm_forward`) on
each core's block of sequences, in columns, one tanh per step for the four gates.

See :mod:`cnnumpy.engine.kernels.recurrent` for the four changes and their
measurements. Here the gates are reordered ``i, f, o, g`` (:func:`order`) and the
sigmoid ones halved in W' and b', so that one step on the columns h_(t-1) is::

    a = tanh(W_xh'^T x_t + b' + W_hh'^T h_(t-1))    rows i, f, o hold tanh(a_i / 2)...
    i, f, o = (1 + a[:3U]) / 2                      sigmoid(a) = (1 + tanh(a / 2)) / 2
    g = a[3U:]
    c_t = f c_(t-1) + i g        h_t = o tanh(c_t)
"""

from __future__ import annotations

import numpy as np

from cnnumpy.engine.kernels.parallel import SCRATCH
from cnnumpy.engine.kernels.recurrent import (
    input_part,
    kept,
    run_backward,
    run_forward,
    weight_grads,
)


def order(units: int) -> np.ndarray:
    """Column indices taking PyTorch's ``i, f, g, o`` blocks to ``i, f, o, g`` (a
    swap of the last two blocks: the same indices take them back)."""
    U = units
    return np.r_[0 : 2 * U, 3 * U : 4 * U, 2 * U : 3 * U]


def _halved(units: int, dtype) -> np.ndarray:
    """The column scale of the reordered weights: 1/2 on i, f, o, 1 on g."""
    scale = np.ones(4 * units, dtype)
    scale[: 3 * units] = 0.5
    return scale


def _block_forward(x, states0, W_xh_T, W_hh_T, b):
    """The loop on one block, in columns; the weights transposed, their gates
    reordered ``i, f, o, g`` and the sigmoid ones halved."""
    a, xs = input_part(x, W_xh_T, b)  # the gates' pre-activations, (T, 4U, n)
    T, G, n = a.shape
    U = G // 4
    hs = kept("hs", (T + 1, U, n), a.dtype)
    cs = kept("cs", (T + 1, U, n), a.dtype)
    tanh_cs = kept("tanh_cs", (T, U, n), a.dtype)
    hs[0], cs[0] = states0
    product = np.empty((G, n), a.dtype)
    i_g = np.empty((U, n), a.dtype)
    for t in range(T):
        gates = a[t]  # becomes i, f, o, g in place
        np.matmul(W_hh_T, hs[t], out=product)
        gates += product
        np.tanh(gates, out=gates)
        sigmoids = gates[: 3 * U]
        sigmoids += 1
        sigmoids *= 0.5
        i, f, o, g = gates[:U], gates[U : 2 * U], gates[2 * U : 3 * U], gates[3 * U :]
        np.multiply(f, cs[t], out=cs[t + 1])
        np.multiply(i, g, out=i_g)
        cs[t + 1] += i_g
        np.tanh(cs[t + 1], out=tanh_cs[t])
        np.multiply(o, tanh_cs[t], out=hs[t + 1])
    return hs, [hs[T], cs[T]], (xs, hs, cs, tanh_cs, a)


def _block_backward(dout, cache, dfinals, need_dx, W_xh, W_hh):
    """BPTT on one block, in columns; W_xh, W_hh reordered (not halved)."""
    xs, hs, cs, tanh_cs, gates = cache
    T, U, n = dout.shape
    da = SCRATCH.get("da", gates.shape, gates.dtype)  # dE/da_t, gates i, f, o, g
    dh, dc = (np.zeros_like(hs[0]) if d is None else d.copy() for d in dfinals)
    work = np.empty((U, n), dout.dtype)
    slopes = np.empty((3 * U, n), dout.dtype)
    for t in reversed(range(T)):
        dh += dout[t]
        i, f, o, g = (gates[t][k * U : (k + 1) * U] for k in range(4))
        da_i, da_f, da_o, da_g = (da[t][k * U : (k + 1) * U] for k in range(4))
        tanh_c = tanh_cs[t]
        np.multiply(dh, tanh_c, out=da_o)  # dE/do, times o (1 - o) below
        np.multiply(tanh_c, tanh_c, out=work)  # dc += dh o (1 - tanh(c_t)^2)
        np.subtract(1, work, out=work)
        work *= o
        work *= dh
        dc += work
        np.multiply(dc, g, out=da_i)  # dE/di
        np.multiply(dc, cs[t], out=da_f)  # dE/df, cs[t] = c_(t-1)
        np.multiply(dc, i, out=da_g)  # dE/dg
        dc *= f  # dE/dc_(t-1)
        sigmoids = gates[t][: 3 * U]  # s'(a) = s (1 - s) on i, f, o at once
        np.subtract(1, sigmoids, out=slopes)
        slopes *= sigmoids
        da[t][: 3 * U] *= slopes
        np.multiply(g, g, out=work)  # tanh'(a_g) = 1 - g^2
        np.subtract(1, work, out=work)
        da_g *= work
        np.matmul(W_hh, da[t], out=dh)
    dx, grads = weight_grads(xs, hs, da, da, W_xh, need_dx)
    return dx, [dh, dc], grads


def lstm_forward(x, h0, c0, W_xh, W_hh, b_xh, b_hh):
    """As :func:`cnnumpy.textbook.recurrent.lstm_forward` (see the module)."""
    units = W_hh.shape[0]
    reorder = order(units)
    scale = _halved(units, np.result_type(W_xh, W_hh))
    W_xh_T = (W_xh[:, reorder] * scale).T
    W_hh_T = np.ascontiguousarray((W_hh[:, reorder] * scale).T)
    b = (b_xh + b_hh)[reorder] * scale

    def block_forward(x_block, states0):
        return _block_forward(x_block, states0, W_xh_T, W_hh_T, b)

    (outputs, h_T, c_T), cache = run_forward(block_forward, x, [h0, c0], W_hh)
    return (outputs, h_T, c_T), (cache, W_xh, W_hh)


def lstm_backward(dout, cache, dh_T=None, dc_T=None, need_dx=True):
    """As :func:`cnnumpy.textbook.recurrent.lstm_backward`."""
    blocks, W_xh, W_hh = cache
    reorder = order(W_hh.shape[0])
    W_xh_, W_hh_ = W_xh[:, reorder], W_hh[:, reorder]

    def block_backward(dout_block, block, dfinals, need):
        return _block_backward(dout_block, block, dfinals, need, W_xh_, W_hh_)

    dx, dh0, dc0, dW_xh, dW_hh, db_xh, db_hh = run_backward(
        block_backward, dout, blocks, [dh_T, dc_T], need_dx
    )
    back = order(W_hh.shape[0])  # the swap is its own inverse
    return dx, dh0, dc0, dW_xh[:, back], dW_hh[:, back], db_xh[back], db_hh[back]
