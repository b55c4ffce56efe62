"""GRU, fast: the book's loop (:func:`cnnumpy.textbook.recurrent.gru_forward`) on each
core's block of sequences, in columns, one tanh per step for the gates r and z.

See :mod:`cnnumpy.engine.kernels.recurrent` for the changes and their measurements.
The gates r and z (the first two blocks) are halved in both weights and both biases,
so that one step on the columns h_(t-1) is::

    u = W_xh'^T x_t + b_xh'          v = W_hh'^T h_(t-1) + b_hh'
    r, z = (1 + tanh(u[:2U] + v[:2U])) / 2      sigmoid(a) = (1 + tanh(a / 2)) / 2
    n = tanh(u_n + r v_n)            h_t = n + z (h_(t-1) - n)
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


def _halved(units: int, dtype) -> np.ndarray:
    """The column scale: 1/2 on r and z, 1 on n."""
    scale = np.ones(3 * units, dtype)
    scale[: 2 * units] = 0.5
    return scale


def _block_forward(x, states0, W_xh_T, W_hh_T, b_xh, b_hh):
    """The loop on one block, in columns; the weights transposed, the r and z rows of
    every argument halved."""
    u, xs = input_part(x, W_xh_T, b_xh)  # becomes r, z, n in place, (T, 3U, n)
    T, G, n = u.shape
    U = G // 3
    hs = kept("hs", (T + 1, U, n), u.dtype)
    hs[0] = states0[0]
    v_ns = kept("v_ns", (T, U, n), u.dtype)  # W_hn^T h_(t-1) + b_hn, for dE/dr
    v = np.empty((G, n), u.dtype)
    b_hh = b_hh[:, None]
    for t in range(T):
        gates = u[t]
        np.matmul(W_hh_T, hs[t], out=v)
        v += b_hh
        r_z = gates[: 2 * U]
        r_z += v[: 2 * U]
        np.tanh(r_z, out=r_z)
        r_z += 1
        r_z *= 0.5
        r, z, n_gate = gates[:U], gates[U : 2 * U], gates[2 * U :]
        v_ns[t] = v[2 * U :]
        np.multiply(r, v_ns[t], out=v[2 * U :])
        n_gate += v[2 * U :]
        np.tanh(n_gate, out=n_gate)
        h = hs[t + 1]  # h_t = n + z (h_(t-1) - n)
        np.subtract(hs[t], n_gate, out=h)
        h *= z
        h += n_gate
    return hs, [hs[T]], (xs, hs, u, v_ns)


def _block_backward(dout, cache, dfinals, need_dx, W_xh, W_hh):
    """BPTT on one block, in columns, as the book's :func:`gru_backward`."""
    xs, hs, gates, v_ns = cache
    T, U, n = dout.shape
    du = SCRATCH.get("du", gates.shape, gates.dtype)  # dE/du_t, the input side
    dv = SCRATCH.get("dv", gates.shape, gates.dtype)  # dE/dv_t, the recurrent side
    dh = np.zeros_like(hs[0]) if dfinals[0] is None else dfinals[0].copy()
    work = np.empty((U, n), dout.dtype)
    back = np.empty((U, n), dout.dtype)
    for t in reversed(range(T)):
        dh += dout[t]
        r, z, n_gate = (gates[t][k * U : (k + 1) * U] for k in range(3))
        du_r, du_z, du_n = (du[t][k * U : (k + 1) * U] for k in range(3))
        np.subtract(1, z, out=du_n)  # dE/dn = dh (1 - z), times 1 - n^2
        du_n *= dh
        np.multiply(n_gate, n_gate, out=work)
        np.subtract(1, work, out=work)
        du_n *= work
        np.subtract(hs[t], n_gate, out=du_z)  # dE/dz = dh (h_(t-1) - n)
        du_z *= dh
        np.subtract(1, z, out=work)  # times z (1 - z)
        work *= z
        du_z *= work
        np.multiply(du_n, v_ns[t], out=du_r)  # dE/dr, times r (1 - r)
        np.subtract(1, r, out=work)
        work *= r
        du_r *= work
        dv[t][: 2 * U] = du[t][: 2 * U]
        np.multiply(du_n, r, out=dv[t][2 * U :])
        dh *= z
        np.matmul(W_hh, dv[t], out=back)
        dh += back
    dx, grads = weight_grads(xs, hs, du, dv, W_xh, need_dx)
    return dx, [dh], grads


def gru_forward(x, h0, W_xh, W_hh, b_xh, b_hh):
    """As :func:`cnnumpy.textbook.recurrent.gru_forward` (see the module)."""
    scale = _halved(W_hh.shape[0], np.result_type(W_xh, W_hh))
    W_xh_T = (W_xh * scale).T
    W_hh_T = np.ascontiguousarray((W_hh * scale).T)
    b_xh_, b_hh_ = b_xh * scale, b_hh * scale

    def block_forward(x_block, states0):
        return _block_forward(x_block, states0, W_xh_T, W_hh_T, b_xh_, b_hh_)

    outs, cache = run_forward(block_forward, x, [h0], W_hh)
    return outs, (cache, W_xh, W_hh)


def gru_backward(dout, cache, dh_T=None, need_dx=True):
    """As :func:`cnnumpy.textbook.recurrent.gru_backward`."""
    blocks, W_xh, W_hh = cache

    def block_backward(dout_block, block, dfinals, need):
        return _block_backward(dout_block, block, dfinals, need, W_xh, W_hh)

    return run_backward(block_backward, dout, blocks, [dh_T], need_dx)
