"""Recurrent layers, forward and backward through time (seed 003, "Réseaux récurrents").

The notes' recurrence (slides 207 and 220), for one example::

    h_t = f_a(W^xh x_t + W^hh h_(t-1))

written here for a batch of N row vectors, as ``Dense`` writes ``Y = X W + B``, with
PyTorch's two biases (the GRU needs the second one)::

    a_t = x_t W_xh + b_xh + h_(t-1) W_hh + b_hh       a_t (N, G*units)
    h_t = f(a_t)                                      f = tanh or relu (SimpleRNN)

An LSTM (G = 4) and a GRU (G = 3) read the same two products, cut into G blocks of
``units`` columns, one per gate, in PyTorch's order (LSTM i, f, g, o; GRU r, z, n).

Forward: the input part ``x_t W_xh + b_xh`` does not depend on the recurrence, so it
is one product over every step at once (a Dense layer on N*T rows); only the
``h_(t-1) W_hh`` part runs in the loop over t. Backward (backpropagation through time,
Werbos 1990): the loop runs from t = T-1 down to 0 carrying dE/dh_t, which gathers
what step t's output received (``dout[:, t]``) and what step t+1 sent back through
``W_hh``. Every step adds its share to dW_hh; the input-side gradients dW_xh, db_xh and
dx are again one product over all steps after the loop.

Shapes: x ``(N, T, F)``; h0, c0 ``(N, units)``; W_xh ``(F, G*units)``; W_hh
``(units, G*units)``; b_xh, b_hh ``(G*units,)``; outputs ``(N, T, units)`` (h_1..h_T).
Each forward returns ``((outputs, h_T), cache)`` (LSTM: ``((outputs, h_T, c_T),
cache)``): the book's ``(out, cache)`` pair whose ``out`` holds the final state(s).
Each backward takes ``dout`` ``(N, T, units)`` (dE/dh_t for every step) and the
gradient of the final state(s), and returns dx, the initial state(s)' gradient(s) and
the four parameter gradients.
"""

from __future__ import annotations

import numpy as np

from cnnumpy.textbook.activations import sigmoid


def _input_part(x, W_xh, b_xh):
    """x_t W_xh + b_xh for every t at once: ``(N, T, F) -> (N, T, G*units)``."""
    return x @ W_xh + b_xh


def _input_grads(x, W_xh, da_x, need_dx):
    """dE/dx, dE/dW_xh, dE/db_xh from dE/d(x_t W_xh + b_xh) ``(N, T, G*units)``."""
    N, T, F = x.shape
    rows_x = x.reshape(N * T, F)
    rows_da = da_x.reshape(N * T, -1)
    dW_xh = rows_x.T @ rows_da  # sums over examples and steps
    db_xh = rows_da.sum(axis=0)
    dx = da_x @ W_xh.T if need_dx else None
    return dx, dW_xh, db_xh


# -- SimpleRNN: h_t = f(x_t W_xh + b_xh + h_(t-1) W_hh + b_hh) ------------------------


def simple_rnn_forward(x, h0, W_xh, W_hh, b_xh, b_hh, activation="tanh"):
    """The notes' recurrence ``h_t = f(x_t W_xh + b_xh + h_(t-1) W_hh + b_hh)``.

    Args:
        activation: ``"tanh"`` (the slides' f_a) or ``"relu"``.

    Returns:
        ``((outputs (N, T, units), h_T (N, units)), cache)``; the cache keeps x, h0,
        the weights and every h_t (f' is read from h_t: 1 - h_t^2, or h_t > 0).
    """
    N, T, _ = x.shape
    units = W_hh.shape[0]
    ax = _input_part(x, W_xh, b_xh)
    outputs = np.empty((N, T, units), dtype=ax.dtype)
    h = h0
    for t in range(T):
        a = ax[:, t] + h @ W_hh + b_hh
        h = np.tanh(a) if activation == "tanh" else np.maximum(a, 0)
        outputs[:, t] = h
    return (outputs, h), (x, h0, W_xh, W_hh, outputs, activation)


def simple_rnn_backward(dout, cache, dh_T=None, need_dx=True):
    """Backpropagation through time of :func:`simple_rnn_forward`.

    With dE/dh_t the gradient reaching h_t (from its output and from step t+1)::

        dE/da_t     = dE/dh_t * f'(a_t)       tanh: 1 - h_t^2     relu: [h_t > 0]
        dE/dh_(t-1) = dE/da_t W_hh^T          (then + dout[:, t-1])
        dE/dW_hh    = sum_t h_(t-1)^T dE/da_t
        dE/dW_xh    = sum_t x_t^T dE/da_t     dE/dx_t = dE/da_t W_xh^T
        dE/db_xh    = dE/db_hh = sum_(n,t) dE/da_t

    Returns:
        ``(dx (N, T, F) or None, dh0 (N, units), dW_xh, dW_hh, db_xh, db_hh)``.
    """
    x, h0, W_xh, W_hh, outputs, activation = cache
    N, T, _ = x.shape
    da = np.empty_like(outputs)  # dE/da_t for every t
    dW_hh = np.zeros_like(W_hh)
    dh = np.zeros_like(h0) if dh_T is None else dh_T
    for t in reversed(range(T)):
        dh = dh + dout[:, t]
        h = outputs[:, t]
        da_t = dh * (1 - h * h) if activation == "tanh" else dh * (h > 0)
        h_prev = outputs[:, t - 1] if t > 0 else h0
        dW_hh += h_prev.T @ da_t
        dh = da_t @ W_hh.T
        da[:, t] = da_t
    dx, dW_xh, db_xh = _input_grads(x, W_xh, da, need_dx)
    return dx, dh, dW_xh, dW_hh, db_xh, db_xh.copy()


# -- LSTM (Hochreiter & Schmidhuber 1997; gates as PyTorch's nn.LSTM) -----------------


def lstm_forward(x, h0, c0, W_xh, W_hh, b_xh, b_hh):
    """Long short-term memory, gates i, f, g, o in blocks of ``units`` columns::

        [a_i a_f a_g a_o] = x_t W_xh + b_xh + h_(t-1) W_hh + b_hh
        i = sigmoid(a_i)  f = sigmoid(a_f)  g = tanh(a_g)  o = sigmoid(a_o)
        c_t = f * c_(t-1) + i * g           h_t = o * tanh(c_t)

    Returns:
        ``((outputs (N, T, units), h_T, c_T), cache)``; the cache keeps the gates,
        every c_t and tanh(c_t).
    """
    N, T, _ = x.shape
    U = W_hh.shape[0]
    ax = _input_part(x, W_xh, b_xh)
    outputs = np.empty((N, T, U), dtype=ax.dtype)
    cells = np.empty((N, T, U), dtype=ax.dtype)
    tanh_cells = np.empty((N, T, U), dtype=ax.dtype)
    gates = np.empty((N, T, 4 * U), dtype=ax.dtype)  # i, f, g, o after f_a
    h, c = h0, c0
    for t in range(T):
        a = ax[:, t] + h @ W_hh + b_hh
        i, f = sigmoid(a[:, :U]), sigmoid(a[:, U : 2 * U])
        g, o = np.tanh(a[:, 2 * U : 3 * U]), sigmoid(a[:, 3 * U :])
        c = f * c + i * g
        tanh_c = np.tanh(c)
        h = o * tanh_c
        outputs[:, t], cells[:, t], tanh_cells[:, t] = h, c, tanh_c
        gates[:, t] = np.concatenate([i, f, g, o], axis=1)
    cache = (x, h0, c0, W_xh, W_hh, outputs, cells, tanh_cells, gates)
    return (outputs, h, c), cache


def lstm_backward(dout, cache, dh_T=None, dc_T=None, need_dx=True):
    """Backpropagation through time of :func:`lstm_forward`.

    At step t, with dh = dE/dh_t and dc = dE/dc_t as carried from step t+1::

        dE/do   = dh * tanh(c_t)
        dc      = dc + dh * o * (1 - tanh(c_t)^2)      (h_t = o tanh(c_t))
        dE/di   = dc * g     dE/dg = dc * i     dE/df = dc * c_(t-1)
        dE/dc_(t-1) = dc * f                           (c_t = f c_(t-1) + i g)
        dE/da_i = dE/di i (1 - i)   dE/da_f = dE/df f (1 - f)
        dE/da_g = dE/dg (1 - g^2)   dE/da_o = dE/do o (1 - o)
        dE/dh_(t-1) = dE/da W_hh^T                     (then + dout[:, t-1])

    and the weights as for SimpleRNN: dW_hh = sum_t h_(t-1)^T dE/da_t, dW_xh =
    sum_t x_t^T dE/da_t, db_xh = db_hh = sum dE/da_t.

    Returns:
        ``(dx or None, dh0, dc0, dW_xh, dW_hh, db_xh, db_hh)``.
    """
    x, h0, c0, W_xh, W_hh, outputs, cells, tanh_cells, gates = cache
    N, T, _ = x.shape
    U = W_hh.shape[0]
    da = np.empty_like(gates)
    dW_hh = np.zeros_like(W_hh)
    dh = np.zeros_like(h0) if dh_T is None else dh_T
    dc = np.zeros_like(c0) if dc_T is None else dc_T
    for t in reversed(range(T)):
        dh = dh + dout[:, t]
        i, f = gates[:, t, :U], gates[:, t, U : 2 * U]
        g, o = gates[:, t, 2 * U : 3 * U], gates[:, t, 3 * U :]
        tanh_c = tanh_cells[:, t]
        c_prev = cells[:, t - 1] if t > 0 else c0
        h_prev = outputs[:, t - 1] if t > 0 else h0
        do = dh * tanh_c
        dc = dc + dh * o * (1 - tanh_c * tanh_c)
        di, dg, df = dc * g, dc * i, dc * c_prev
        dc = dc * f
        da_t = np.concatenate(
            [di * i * (1 - i), df * f * (1 - f), dg * (1 - g * g), do * o * (1 - o)],
            axis=1,
        )
        dW_hh += h_prev.T @ da_t
        dh = da_t @ W_hh.T
        da[:, t] = da_t
    dx, dW_xh, db_xh = _input_grads(x, W_xh, da, need_dx)
    return dx, dh, dc, dW_xh, dW_hh, db_xh, db_xh.copy()


# -- GRU (Cho et al. 2014; the reset gate placed as PyTorch's nn.GRU) ------------------


def gru_forward(x, h0, W_xh, W_hh, b_xh, b_hh):
    """Gated recurrent unit, gates r, z, n in blocks of ``units`` columns::

        [u_r u_z u_n] = x_t W_xh + b_xh        [v_r v_z v_n] = h_(t-1) W_hh + b_hh
        r = sigmoid(u_r + v_r)     z = sigmoid(u_z + v_z)
        n = tanh(u_n + r * v_n)    (the reset gate multiplies the h-part only)
        h_t = (1 - z) * n + z * h_(t-1)

    Returns:
        ``((outputs (N, T, units), h_T), cache)``; the cache keeps r, z, n and v_n.
    """
    N, T, _ = x.shape
    U = W_hh.shape[0]
    u = _input_part(x, W_xh, b_xh)
    outputs = np.empty((N, T, U), dtype=u.dtype)
    gates = np.empty((N, T, 3 * U), dtype=u.dtype)  # r, z, n
    v_ns = np.empty((N, T, U), dtype=u.dtype)
    h = h0
    for t in range(T):
        v = h @ W_hh + b_hh
        r = sigmoid(u[:, t, :U] + v[:, :U])
        z = sigmoid(u[:, t, U : 2 * U] + v[:, U : 2 * U])
        n = np.tanh(u[:, t, 2 * U :] + r * v[:, 2 * U :])
        h = (1 - z) * n + z * h
        outputs[:, t], v_ns[:, t] = h, v[:, 2 * U :]
        gates[:, t] = np.concatenate([r, z, n], axis=1)
    return (outputs, h), (x, h0, W_xh, W_hh, outputs, gates, v_ns)


def gru_backward(dout, cache, dh_T=None, need_dx=True):
    """Backpropagation through time of :func:`gru_forward`.

    At step t, with dh = dE/dh_t::

        dE/dn = dh * (1 - z)      dE/dz = dh * (h_(t-1) - n)
        dE/d(u_n) = dE/dn (1 - n^2)           (n = tanh(u_n + r v_n))
        dE/d(v_n) = dE/d(u_n) * r             dE/dr = dE/d(u_n) * v_n
        dE/d(u_r) = dE/d(v_r) = dE/dr r (1 - r)
        dE/d(u_z) = dE/d(v_z) = dE/dz z (1 - z)
        dE/dh_(t-1) = dh * z + dE/dv W_hh^T   (then + dout[:, t-1])

    Unlike SimpleRNN and LSTM, the two sides differ (in their n block): dW_hh =
    sum_t h_(t-1)^T dE/dv_t, db_hh = sum dE/dv_t; dW_xh = sum_t x_t^T dE/du_t,
    db_xh = sum dE/du_t.

    Returns:
        ``(dx or None, dh0, dW_xh, dW_hh, db_xh, db_hh)``.
    """
    x, h0, W_xh, W_hh, outputs, gates, v_ns = cache
    N, T, _ = x.shape
    U = W_hh.shape[0]
    du = np.empty_like(gates)  # dE/du_t, the input side
    dv = np.empty_like(gates)  # dE/dv_t, the recurrent side
    dW_hh = np.zeros_like(W_hh)
    dh = np.zeros_like(h0) if dh_T is None else dh_T
    for t in reversed(range(T)):
        dh = dh + dout[:, t]
        r, z, n = gates[:, t, :U], gates[:, t, U : 2 * U], gates[:, t, 2 * U :]
        h_prev = outputs[:, t - 1] if t > 0 else h0
        dn = dh * (1 - z)
        dz = dh * (h_prev - n)
        du_n = dn * (1 - n * n)
        dr = du_n * v_ns[:, t]
        du_r = dr * r * (1 - r)
        du_z = dz * z * (1 - z)
        du[:, t] = np.concatenate([du_r, du_z, du_n], axis=1)
        dv_t = np.concatenate([du_r, du_z, du_n * r], axis=1)
        dv[:, t] = dv_t
        dW_hh += h_prev.T @ dv_t
        dh = dh * z + dv_t @ W_hh.T
    dx, dW_xh, db_xh = _input_grads(x, W_xh, du, need_dx)
    db_hh = dv.sum(axis=(0, 1))
    return dx, dh, dW_xh, dW_hh, db_xh, db_hh
