"""SimpleRNN, LSTM, GRU against torch.nn.RNN (tanh, relu), nn.LSTM and nn.GRU.

Our weights are copied into the PyTorch twin (``weight_ih_l0`` ``(G*units, F)`` is our
``W_xh`` transposed, ``bias_ih_l0`` our ``b_xh``; same gate order), in float64, with a
non-zero initial state and an upstream gradient on the output and on the final
state(s). Compared: outputs, final states, dx, dh0 (dc0) and every parameter
gradient, to rtol 1e-10 / atol 1e-12.
"""

import engine_modes
import numpy as np
import pytest
import torch

import cnnumpy
from cnnumpy.layers.recurrent import GRU, LSTM, SimpleRNN

TOL = {"rtol": 1e-10, "atol": 1e-12}
UNITS, FEATURES = 4, 3


@pytest.fixture(autouse=True, params=engine_modes.modes("simple_rnn", "lstm", "gru"))
def engine_mode(request):
    cnnumpy.seed(0)  # the layers' initial weights too: every run the same
    with engine_modes.running(request.param):
        yield request.param


def make_pair(kind, return_sequences):
    """Our layer and its PyTorch twin holding the same weights."""
    kw = {"return_sequences": return_sequences, "return_state": True}
    if kind in ("tanh", "relu"):
        ours = SimpleRNN(UNITS, activation=kind, **kw)
        twin = torch.nn.RNN(FEATURES, UNITS, nonlinearity=kind, batch_first=True)
    elif kind == "lstm":
        ours, twin = LSTM(UNITS, **kw), torch.nn.LSTM(FEATURES, UNITS, batch_first=True)
    else:
        ours, twin = GRU(UNITS, **kw), torch.nn.GRU(FEATURES, UNITS, batch_first=True)
    ours.build((5, FEATURES))
    ours.astype(np.float64)
    twin = twin.double()
    with torch.no_grad():
        twin.weight_ih_l0.copy_(torch.from_numpy(ours.params["W_xh"].T))
        twin.weight_hh_l0.copy_(torch.from_numpy(ours.params["W_hh"].T))
        twin.bias_ih_l0.copy_(torch.from_numpy(ours.params["b_xh"]))
        twin.bias_hh_l0.copy_(torch.from_numpy(ours.params["b_hh"]))
    return ours, twin


@pytest.mark.parametrize("kind", ["tanh", "relu", "lstm", "gru"])
@pytest.mark.parametrize("T", [1, 2, 7, 30])
@pytest.mark.parametrize("N", [1, 3])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_matches_torch(kind, T, N, return_sequences, rng):
    ours, twin = make_pair(kind, return_sequences)
    x = rng.standard_normal((N, T, FEATURES))
    h0s = [0.5 * rng.standard_normal((N, UNITS)) for _ in ours.state_names]

    out, *finals = ours.forward(x, training=True, initial_state=h0s)
    dout = rng.standard_normal(out.shape)
    dfinals = [rng.standard_normal(f.shape) for f in finals]
    dx = ours.backward(dout, dfinals)
    given = ours.initial_state_grad
    dh0s = list(given) if isinstance(given, tuple) else [given]

    tx = torch.tensor(x, requires_grad=True)
    th0s = [torch.tensor(h[None], requires_grad=True) for h in h0s]  # (1, N, units)
    t_out, t_state = twin(tx, tuple(th0s) if kind == "lstm" else th0s[0])
    t_finals = [s[0] for s in (t_state if kind == "lstm" else (t_state,))]
    t_y = t_out if return_sequences else t_out[:, -1]
    loss = (t_y * torch.from_numpy(dout)).sum()
    for s, g in zip(t_finals, dfinals, strict=True):
        loss = loss + (s * torch.from_numpy(g)).sum()
    loss.backward()

    assert out.shape == tuple(t_y.shape)
    np.testing.assert_allclose(out, t_y.detach().numpy(), **TOL)
    for mine, theirs in zip(finals, t_finals, strict=True):
        np.testing.assert_allclose(mine, theirs.detach().numpy(), **TOL)
    assert dx.shape == x.shape
    np.testing.assert_allclose(dx, tx.grad.numpy(), **TOL)
    for mine, theirs in zip(dh0s, th0s, strict=True):
        np.testing.assert_allclose(mine, theirs.grad[0].numpy(), **TOL)
    pairs = {
        "W_xh": twin.weight_ih_l0.grad.T,
        "W_hh": twin.weight_hh_l0.grad.T,
        "b_xh": twin.bias_ih_l0.grad,
        "b_hh": twin.bias_hh_l0.grad,
    }
    for name, theirs in pairs.items():
        assert ours.grads[name].shape == tuple(theirs.shape), name
        np.testing.assert_allclose(
            ours.grads[name], theirs.numpy(), err_msg=name, **TOL
        )
