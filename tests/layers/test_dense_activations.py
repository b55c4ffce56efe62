"""Dense and activation layers: float64 gradient checks, dtypes, stability, errors."""

import warnings

import engine_modes
import numpy as np
import pytest

from cnnumpy.engine.kernels.dense import dense_backward, dense_forward
from cnnumpy.layers import Dense, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from cnnumpy.textbook.activations import sigmoid, softmax
from tests.gradcheck import check_layer_gradients

ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh", "softmax")
OPS = ("dense", *ACTIVATIONS)


@pytest.fixture(autouse=True, params=engine_modes.modes(*OPS))
def engine_mode(request):
    """Every test once per mode: the engine, the book, each kernel forced."""
    with engine_modes.running(request.param):
        yield request.param


def away_from_kinks(shape, rng):
    """Inputs with |x| >= 0.1: finite differences never straddle the ReLU kink at 0."""
    x = rng.standard_normal(shape)
    return np.where(x >= 0, x + 0.1, x - 0.1)


# -- Dense -----------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("in_features, units", [(4, 3), (1, 5), (7, 1)])
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_gradients(batch, in_features, units, use_bias, rng):
    layer = Dense(units, use_bias=use_bias)
    x = rng.standard_normal((batch, in_features))
    check_layer_gradients(layer, x)
    assert set(layer.params) == ({"W", "b"} if use_bias else {"W"})


def test_dense_functional_matches_notes(rng):
    """Y = XW + B; dE/dX = dE/dY W^T, dE/dW = X^T dE/dY, dE/dB = sum over the batch."""
    x, W, b = (
        rng.standard_normal((5, 4)),
        rng.standard_normal((4, 3)),
        rng.standard_normal(3),
    )
    out, cache = dense_forward(x, W, b)
    np.testing.assert_allclose(out, x @ W + b, rtol=1e-12)
    dout = rng.standard_normal((5, 3))
    dx, dW, db = dense_backward(dout, cache)
    np.testing.assert_allclose(dx, dout @ W.T, rtol=1e-12)
    np.testing.assert_allclose(
        dW, sum(np.outer(x[n], dout[n]) for n in range(5)), rtol=1e-12
    )
    np.testing.assert_allclose(db, dout.sum(axis=0), rtol=1e-12)
    dx, _, db = dense_backward(dout, dense_forward(x, W, None)[1], need_dx=False)
    assert dx is None and db is None


def test_dense_shapes_dtype_and_config(rng):
    layer = Dense(10)
    y = layer.forward(rng.standard_normal((2, 6)).astype(np.float32))
    assert y.shape == (2, 10) and y.dtype == np.float32
    assert layer.params["W"].shape == (6, 10) and layer.params["b"].shape == (10,)
    assert layer.params["W"].dtype == np.float32
    assert not layer.params["b"].any()  # zeros initializer
    assert layer.output_shape((6,)) == (10,)
    assert layer.count_params() == 6 * 10 + 10
    config = layer.get_config()
    assert config == {
        "units": 10,
        "use_bias": True,
        "kernel_initializer": "he_normal",
        "bias_initializer": "zeros",
        "name": None,
    }
    assert repr(Dense.from_config(config)) == "Dense(10)"
    assert repr(Dense(4, use_bias=False)) == "Dense(4, use_bias=False)"
    # float64 input to a float32 layer is cast to the parameters' dtype
    assert layer.forward(rng.standard_normal((2, 6))).dtype == np.float32
    layer.astype(np.float64)
    assert layer.forward(rng.standard_normal((2, 6))).dtype == np.float64


def test_dense_need_input_grad(rng):
    layer = Dense(3).astype(np.float64)
    x = rng.standard_normal((4, 5))
    layer.forward(x, training=True)
    dout = rng.standard_normal((4, 3))
    dx_full = layer.backward(dout)
    grads_full = {k: v.copy() for k, v in layer.grads.items()}
    layer.need_input_grad = False
    layer.forward(x, training=True)
    assert layer.backward(dout) is None
    for name, g in grads_full.items():
        np.testing.assert_allclose(layer.grads[name], g, rtol=1e-12)
    assert dx_full.shape == x.shape


def test_dense_errors(rng):
    with pytest.raises(ValueError, match=r"Dense: units must be a positive int, got 0"):
        Dense(0)
    with pytest.raises(ValueError, match=r"unknown initializer 'he_nromal'"):
        Dense(3, kernel_initializer="he_nromal")
    layer = Dense(16)
    with pytest.raises(
        ValueError,
        match=r"Dense\(16\): expected input \(N, features\) or "
        r"\(N, T, features\), got \(64, 1, 28, 28\); add a Flatten\(\) layer "
        r"before Dense",
    ):
        layer.forward(np.zeros((64, 1, 28, 28), np.float32))
    with pytest.raises(
        ValueError,
        match=r"Dense\(16\): expected input \(N, features\) or "
        r"\(N, T, features\), got \(N, 3, 8, 8\); add a Flatten\(\)",
    ):
        layer.build((3, 8, 8))
    layer.forward(np.zeros((2, 5), np.float32))
    with pytest.raises(
        ValueError, match=r"Dense\(16\): expected input \(N, 5\), got \(N, 4\)"
    ):
        layer.forward(np.zeros((2, 4), np.float32))
    with pytest.raises(
        ValueError, match=r"Dense\(16\): expected dout \(2, 16\), got \(2, 15\)"
    ):
        layer.backward(np.zeros((2, 15), np.float32))
    with pytest.raises(
        RuntimeError, match=r"Dense\(3\): backward\(\) called before forward"
    ):
        Dense(3).backward(np.zeros((1, 3)))


# -- activations -----------------------------------------------------------------------

ACTIVATIONS = [
    pytest.param(ReLU, id="ReLU"),
    pytest.param(lambda: LeakyReLU(0.1), id="LeakyReLU"),
    pytest.param(Sigmoid, id="Sigmoid"),
    pytest.param(Tanh, id="Tanh"),
    pytest.param(Softmax, id="Softmax"),
    pytest.param(lambda: Softmax(axis=1), id="Softmax-axis1"),
]


@pytest.mark.parametrize("make", ACTIVATIONS)
@pytest.mark.parametrize("shape", [(1, 5), (3, 4), (2, 3, 4, 4), (1, 2, 3, 3)])
def test_activation_gradients(make, shape, rng):
    check_layer_gradients(make(), away_from_kinks(shape, rng))


@pytest.mark.parametrize("make", ACTIVATIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_keeps_dtype_and_shape(make, dtype, rng):
    layer = make()
    x = rng.standard_normal((2, 3, 4)).astype(dtype)
    y = layer.forward(x, training=True)
    assert y.shape == x.shape and y.dtype == dtype
    assert layer.backward(np.ones(x.shape, np.float64)).dtype == dtype
    assert layer.params == {} and layer.output_shape((3, 4)) == (3, 4)


def test_activation_values(rng):
    x = np.array([[-2.0, -0.5, 0.0, 0.5, 2.0]])
    np.testing.assert_array_equal(ReLU().forward(x), [[0, 0, 0, 0.5, 2]])
    np.testing.assert_allclose(LeakyReLU(0.01).forward(x), [[-0.02, -0.005, 0, 0.5, 2]])
    np.testing.assert_allclose(Sigmoid().forward(x), 1 / (1 + np.exp(-x)), rtol=1e-15)
    np.testing.assert_allclose(Tanh().forward(x), np.tanh(x), rtol=1e-15)
    # seed 000: softmax([2.3, 0.5, 1.2, 1.8, 2]) ~ [0.35, 0.06, 0.12, 0.21, 0.26]
    s = Softmax().forward(np.array([[2.3, 0.5, 1.2, 1.8, 2.0]]))
    np.testing.assert_allclose(s, [[0.35, 0.06, 0.12, 0.21, 0.26]], atol=0.006)
    x4 = rng.standard_normal((2, 3, 4, 5))
    np.testing.assert_allclose(Softmax(axis=1).forward(x4).sum(axis=1), 1, rtol=1e-12)
    # derivative at 0 is taken as 0 for ReLU and alpha for LeakyReLU (as in PyTorch)
    relu, leaky = ReLU(), LeakyReLU(0.2)
    relu.forward(x), leaky.forward(x)
    np.testing.assert_array_equal(relu.backward(np.ones_like(x)), [[0, 0, 0, 1, 1]])
    np.testing.assert_allclose(leaky.backward(np.ones_like(x)), [[0.2, 0.2, 0.2, 1, 1]])


def test_relu_keeps_only_a_mask(rng):
    layer = ReLU()
    layer.forward(rng.standard_normal((2, 3)))
    assert layer._cache.data.dtype == np.bool_  # the cache names its kernel


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_and_softmax_are_stable(dtype):
    x = np.array([[-1000.0, -50.0, 0.0, 50.0, 1000.0]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", divide="raise", invalid="raise"):
            s = sigmoid(x)
            layer = Sigmoid()
            y = layer.forward(x, training=True)
            dx = layer.backward(np.ones_like(x))
            p = softmax(x)
            big = Softmax().forward(
                np.array([[1000.0, 1000.0], [-1000.0, -1000.0]], dtype)
            )
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(dx)) and np.all(np.isfinite(p))
    np.testing.assert_array_equal(s[0, [0, 2, 4]], [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(y, s)
    np.testing.assert_allclose(big, 0.5)


def test_activation_errors():
    with pytest.raises(
        ValueError, match=r"LeakyReLU: alpha must be a finite number, got 'a'"
    ):
        LeakyReLU("a")
    with pytest.raises(
        ValueError, match=r"Softmax\(axis=0\): axis 0 is the batch axis"
    ):
        Softmax(axis=0)
    with pytest.raises(TypeError, match=r"Softmax: axis must be an int, got 1.5"):
        Softmax(axis=1.5)
    with pytest.raises(
        ValueError,
        match=r"Softmax\(axis=2\): expected an input with axis 2 "
        r"besides the batch axis, got shape \(4, 3\)",
    ):
        Softmax(axis=2).forward(np.zeros((4, 3)))
    with pytest.raises(
        ValueError,
        match=r"ReLU\(\): expected a batch \(N, \.\.\.\) of rank "
        r">= 2, got shape \(3,\)",
    ):
        ReLU().forward(np.zeros(3))
    with pytest.raises(TypeError, match=r"Tanh\(\): expected a numpy array, got list"):
        Tanh().forward([[1.0]])
    layer = Sigmoid()
    with pytest.raises(
        RuntimeError, match=r"Sigmoid\(\): backward\(\) called before forward"
    ):
        layer.backward(np.zeros((1, 2)))
    layer.forward(np.zeros((2, 3)))
    with pytest.raises(
        ValueError, match=r"Sigmoid\(\): expected dout \(2, 3\), got \(2, 4\)"
    ):
        layer.backward(np.zeros((2, 4)))


def test_activation_configs():
    for layer in [ReLU(), LeakyReLU(0.3), Sigmoid(), Tanh(), Softmax(axis=1)]:
        clone = type(layer).from_config(layer.get_config())
        assert repr(clone) == repr(layer)
    assert repr(LeakyReLU()) == "LeakyReLU()" and repr(Softmax()) == "Softmax()"
    assert repr(LeakyReLU(0.3)) == "LeakyReLU(alpha=0.3)"
