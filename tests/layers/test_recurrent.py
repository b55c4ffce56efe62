"""SimpleRNN, LSTM, GRU: float64 finite differences for dx, every parameter and the
initial state(s), with and without an upstream gradient on the final state(s); dtypes,
config, stateful chunks, errors, and a tiny model that learns."""

import engine_modes
import numpy as np
import pytest

import cnnumpy
from cnnumpy import Sequential
from cnnumpy.layers import Dense
from cnnumpy.layers.recurrent import GRU, LSTM, SimpleRNN
from cnnumpy.optimizers import Adam
from cnnumpy.textbook.recurrent import simple_rnn_forward
from tests.gradcheck import numerical_gradient

OPS = ("simple_rnn", "lstm", "gru")


@pytest.fixture(autouse=True, params=engine_modes.modes(*OPS))
def engine_mode(request):
    """Every test once per mode: the engine, the book, each kernel forced."""
    cnnumpy.seed(0)  # the layers' initial weights too: every run the same
    with engine_modes.running(request.param):
        yield request.param


LAYERS = [
    pytest.param(lambda **kw: SimpleRNN(3, **kw), id="SimpleRNN-tanh"),
    pytest.param(lambda **kw: SimpleRNN(3, "relu", **kw), id="SimpleRNN-relu"),
    pytest.param(lambda **kw: LSTM(3, **kw), id="LSTM"),
    pytest.param(lambda **kw: GRU(3, **kw), id="GRU"),
]


def states_of(layer, N, rng):
    return [rng.standard_normal((N, layer.units)) for _ in layer.state_names]


@pytest.mark.parametrize("make", LAYERS)
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("with_dstate", [False, True])
def test_gradients(make, return_sequences, with_dstate, rng):
    """d sum(G * output) + sum(G_s * final states) for x, every param, h0 (and c0)."""
    layer = make(return_sequences=return_sequences, return_state=True)
    N, T, F = 2, 4, 3
    x = rng.standard_normal((N, T, F))
    layer.build((T, F))
    layer.astype(np.float64)
    h0s = states_of(layer, N, rng)

    def run():
        out, *finals = layer.forward(x, training=True, initial_state=h0s)
        return np.concatenate([a.ravel() for a in (out, *finals)])

    out, *finals = layer.forward(x, training=True, initial_state=h0s)
    dout = rng.standard_normal(out.shape)
    dfinals = [rng.standard_normal(f.shape) * with_dstate for f in finals]
    upstream = np.concatenate([a.ravel() for a in (dout, *dfinals)])
    dx = layer.backward(dout, dfinals if with_dstate else None)
    analytic = {k: g.copy() for k, g in layer.grads.items()}
    given = layer.initial_state_grad
    dh0s = list(given) if isinstance(given, tuple) else [given]

    tol = {"rtol": 1e-5, "atol": 1e-8}
    np.testing.assert_allclose(dx, numerical_gradient(run, x, upstream), **tol)
    assert set(analytic) == set(layer.params) == {"W_xh", "W_hh", "b_xh", "b_hh"}
    for name, p in layer.params.items():
        num = numerical_gradient(run, p, upstream)
        np.testing.assert_allclose(analytic[name], num, err_msg=name, **tol)
    for name, h0, dh0 in zip(layer.state_names, h0s, dh0s, strict=True):
        num = numerical_gradient(run, h0, upstream)
        np.testing.assert_allclose(dh0, num, err_msg=name, **tol)


def test_book_follows_the_notes(rng):
    """One step of the slides' h = tanh(W^xh x + W^hh h), batched as x W + h W."""
    x, h0 = rng.standard_normal((2, 1, 4)), rng.standard_normal((2, 3))
    W_xh, W_hh = rng.standard_normal((4, 3)), rng.standard_normal((3, 3))
    b_xh, b_hh = rng.standard_normal(3), rng.standard_normal(3)
    (out, h_T), _ = simple_rnn_forward(x, h0, W_xh, W_hh, b_xh, b_hh)
    expected = np.tanh(x[:, 0] @ W_xh + b_xh + h0 @ W_hh + b_hh)
    np.testing.assert_allclose(out[:, 0], expected, rtol=1e-14)
    np.testing.assert_array_equal(h_T, out[:, -1])


@pytest.mark.parametrize(
    "cls, G", [(SimpleRNN, 1), (LSTM, 4), (GRU, 3)], ids=["SimpleRNN", "LSTM", "GRU"]
)
def test_shapes_dtype_init_and_config(cls, G, rng):
    layer = cls(5)
    x = rng.standard_normal((2, 7, 3)).astype(np.float32)
    y = layer.forward(x)
    assert y.shape == (2, 5) and y.dtype == np.float32
    shapes = {k: v.shape for k, v in layer.params.items()}
    assert shapes == {
        "W_xh": (3, G * 5),
        "W_hh": (5, G * 5),
        "b_xh": (G * 5,),
        "b_hh": (G * 5,),
    }
    bound = 1 / np.sqrt(5)  # PyTorch's uniform(-1/sqrt(units), 1/sqrt(units))
    assert all(np.abs(p).max() <= bound for p in layer.params.values())
    assert layer.params["W_xh"].dtype == np.float32
    assert layer.count_params() == G * 5 * (3 + 5) + 2 * G * 5
    assert layer.output_shape((7, 3)) == (5,)
    # any T once built
    seq = cls(5, return_sequences=True)
    assert seq.forward(x).shape == (2, 7, 5)
    assert seq.forward(x[:, :2]).shape == (2, 2, 5)
    assert seq.output_shape((7, 3)) == (7, 5)
    dx = seq.backward(np.ones((2, 2, 5), np.float32))
    assert dx.shape == (2, 2, 3) and dx.dtype == np.float32
    config = layer.get_config()
    expected = {
        "units": 5,
        "return_sequences": False,
        "return_state": False,
        "stateful": False,
        "name": None,
    }
    if cls is SimpleRNN:
        expected["activation"] = "tanh"
    assert config == expected
    assert repr(cls.from_config(config)) == f"{cls.__name__}(5)"
    assert repr(seq) == f"{cls.__name__}(5, return_sequences=True)"
    assert repr(SimpleRNN(2, "relu")) == "SimpleRNN(2, activation='relu')"
    layer.astype(np.float64)
    assert layer.forward(x).dtype == np.float64


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_return_state_and_initial_state_grad(cls, rng):
    layer = cls(4, return_state=True).astype(np.float64)
    x = rng.standard_normal((3, 5, 2))
    out, *finals = layer.forward(x)
    assert len(finals) == len(layer.state_names)
    np.testing.assert_array_equal(out, finals[0])  # h_T
    layer.backward(np.ones_like(out))
    grad = layer.initial_state_grad
    if cls is LSTM:
        assert isinstance(grad, tuple) and [g.shape for g in grad] == [(3, 4)] * 2
    else:
        assert grad.shape == (3, 4)


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_stateful_chunks_equal_the_whole_sequence(cls, rng):
    """Chunks of a stateful layer continue where the last one stopped (min-char-rnn's
    hprev); reset_states() starts again from zero."""
    x = rng.standard_normal((2, 9, 3))
    whole = cls(4, return_sequences=True)
    whole.astype(np.float64)
    expected = whole.forward(x)
    chunked = cls(4, return_sequences=True, stateful=True)
    chunked.build((3, 3))
    chunked.astype(np.float64)
    chunked.params = {k: v.copy() for k, v in whole.params.items()}
    parts = [chunked.forward(x[:, i : i + 3]) for i in range(0, 9, 3)]
    np.testing.assert_allclose(np.concatenate(parts, axis=1), expected, rtol=1e-12)
    # the gradient stops at the chunk's start: dx has the chunk's T only
    assert chunked.backward(np.ones((2, 3, 4))).shape == (2, 3, 3)
    chunked.reset_states()
    assert chunked.carried_state is None
    np.testing.assert_allclose(chunked.forward(x[:, :3]), expected[:, :3], rtol=1e-12)
    # an explicit initial state wins over the carried one
    zeros = [np.zeros((2, 4))] * len(chunked.state_names)
    np.testing.assert_allclose(
        chunked.forward(x[:, :3], initial_state=zeros), expected[:, :3], rtol=1e-12
    )


def test_errors(rng):
    with pytest.raises(ValueError, match=r"SimpleRNN: units must be a positive int"):
        SimpleRNN(0)
    with pytest.raises(ValueError, match=r"LSTM: units must be a positive int, got 2"):
        LSTM(2.5)
    with pytest.raises(
        ValueError,
        match=r"SimpleRNN: activation must be 'tanh' or 'relu', got 'sigmoid'",
    ):
        SimpleRNN(4, activation="sigmoid")
    with pytest.raises(
        TypeError, match=r"GRU\(4\): return_sequences must be a bool, got 1"
    ):
        GRU(4, return_sequences=1)
    layer = SimpleRNN(8)
    with pytest.raises(
        ValueError,
        match=r"SimpleRNN\(8\): expected input of rank 3 \(N, T, features\), "
        r"got shape \(2, 5\)",
    ):
        layer.forward(np.zeros((2, 5), np.float32))
    with pytest.raises(
        ValueError,
        match=r"SimpleRNN\(8\): expected input \(N, T, features\), got \(N, 5\)",
    ):
        layer.build((5,))
    with pytest.raises(
        ValueError,
        match=r"SimpleRNN\(8\): expected at least one time step, got T = 0 in "
        r"\(N, 0, 3\)",
    ):
        layer.forward(np.zeros((2, 0, 3), np.float32))
    layer.forward(np.zeros((2, 5, 3), np.float32))
    with pytest.raises(
        ValueError, match=r"SimpleRNN\(8\): expected input \(N, T, 3\), got \(N, 5, 4\)"
    ):
        layer.forward(np.zeros((2, 5, 4), np.float32))
    with pytest.raises(
        ValueError,
        match=r"SimpleRNN\(8\): expected input of rank 3 \(N, T, 3\), got shape \(2,\)",
    ):
        layer.forward(np.zeros(2, np.float32))
    with pytest.raises(
        ValueError, match=r"SimpleRNN\(8\): expected at least one time step, got T = 0"
    ):
        layer.forward(np.zeros((2, 0, 3), np.float32))
    with pytest.raises(
        ValueError,
        match=r"SimpleRNN\(8\): expected initial_state h0 of shape \(2, 8\), "
        r"got \(2, 7\)",
    ):
        layer.forward(np.zeros((2, 5, 3)), initial_state=np.zeros((2, 7)))
    with pytest.raises(
        ValueError,
        match=r"LSTM\(8\): expected initial_state \[h0, c0\] \(2 array\(s\)\), got 1",
    ):
        LSTM(8).forward(np.zeros((2, 5, 3)), initial_state=np.zeros((2, 8)))
    with pytest.raises(
        ValueError,
        match=r"LSTM\(8\): expected initial_state c0 of shape \(2, 8\), got \(1, 8\)",
    ):
        LSTM(8).forward(
            np.zeros((2, 5, 3)), initial_state=[np.zeros((2, 8)), np.zeros((1, 8))]
        )
    with pytest.raises(
        RuntimeError, match=r"GRU\(3\): backward\(\) called before forward"
    ):
        GRU(3).backward(np.zeros((1, 3)))
    layer.forward(np.zeros((2, 5, 3)))
    with pytest.raises(
        ValueError, match=r"SimpleRNN\(8\): expected dout \(2, 8\), got \(2, 5, 8\)"
    ):
        layer.backward(np.zeros((2, 5, 8)))
    with pytest.raises(
        ValueError,
        match=r"SimpleRNN\(8\): expected dstate h0 of shape \(2, 8\), got \(8,\)",
    ):
        layer.backward(np.zeros((2, 8)), np.zeros(8))
    stateful = GRU(4, stateful=True)
    stateful.forward(np.zeros((2, 5, 3)))
    with pytest.raises(
        ValueError,
        match=r"GRU\(4, stateful=True\): stateful: got a batch of 3 sequences but the "
        r"carried state is for 2; call reset_states\(\) first",
    ):
        stateful.forward(np.zeros((3, 5, 3)))


def test_sequential_learns_a_memory_task():
    """Sequential([SimpleRNN(8), Dense(4)]) learns to recall the first of 5 one-hot
    symbols at the end of the sequence: the loss falls."""
    cnnumpy.seed(0)  # the layers' initial weights: a reproducible run
    data = np.random.default_rng(0)
    ids = data.integers(0, 4, size=(256, 5))
    x = np.eye(4, dtype=np.float32)[ids]  # (N, T, 4) one-hot
    y = ids[:, 0]
    model = Sequential([SimpleRNN(8), Dense(4)], input_shape=(5, 4))
    model.compile(optimizer=Adam(0.01), loss="cross_entropy")
    history = model.fit(x, y, epochs=15, batch_size=32, verbose=0, seed=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.25 * losses[0]
    assert history.history["accuracy"][-1] > 0.9
    assert model.output_shape == (4,)
