"""Flatten, Dropout, BatchNorm: finite differences, behaviour, seeds, errors."""

import engine_modes
import numpy as np
import pytest

import cnnumpy
from cnnumpy.layers import BatchNorm, Dropout, Flatten
from tests.gradcheck import check_layer_gradients


@pytest.fixture(autouse=True, params=engine_modes.modes("batchnorm", "dropout"))
def engine_mode(request):
    """Every test once per mode: the engine, the book, each kernel forced."""
    with engine_modes.running(request.param):
        yield request.param


# -- Flatten ---------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 6), (3, 2, 7)])
def test_flatten_forward_backward(shape, rng):
    layer = Flatten()
    x = rng.standard_normal(shape)
    y = layer.forward(x)
    assert y.shape == (shape[0], int(np.prod(shape[1:])))
    np.testing.assert_array_equal(y[0], x[0].ravel())  # row-major: (c, h, w) order
    assert layer.output_shape(shape[1:]) == y.shape[1:]
    dout = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(layer.backward(dout), dout.reshape(shape))
    check_layer_gradients(Flatten(), x)


def test_flatten_errors():
    with pytest.raises(
        ValueError,
        match=r"Flatten\(\): expected a batch \(N, \.\.\.\) of "
        r"rank >= 2, got shape \(5,\)",
    ):
        Flatten().forward(np.zeros(5))
    layer = Flatten()
    layer.forward(np.zeros((2, 3, 4)))
    with pytest.raises(
        ValueError,
        match=r"Flatten\(\): expected dout of shape \(2, 12\), "
        r"got \(2, 11\)",
    ):
        layer.backward(np.zeros((2, 11)))
    with pytest.raises(RuntimeError, match=r"backward called before forward"):
        Flatten().backward(np.zeros((2, 3)))


# -- Dropout ---------------------------------------------------------------------------
class FixedDraws:
    """Stands in for the layer's Generator: the same uniform draws at every call."""

    def __init__(self, shape, seed=0):
        self.draws = np.random.default_rng(seed).random(shape)

    def random(self, shape, dtype=np.float64):
        assert shape == self.draws.shape
        return self.draws.astype(dtype)


@pytest.mark.parametrize(
    ("rate", "shape"), [(0.5, (3, 4)), (0.2, (2, 2, 3, 3)), (0.0, (2, 5))]
)
def test_dropout_gradcheck_fixed_mask(rate, shape, rng):
    layer = Dropout(rate)
    layer.rng = FixedDraws(shape)
    check_layer_gradients(layer, rng.standard_normal(shape))


def test_dropout_inverted_scaling(rng):
    rate = 0.3
    layer = Dropout(rate, seed=1)
    x = np.ones((1000, 1000), dtype=np.float32)
    y = layer.forward(x, training=True)
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / (1 - rate), rtol=1e-6)  # kept units scaled
    np.testing.assert_allclose(kept.mean(), 1 - rate, atol=2e-3)  # 1e6 draws: sd 4.6e-4
    np.testing.assert_allclose(y.mean(), 1.0, atol=3e-3)  # the expectation is preserved
    dout = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_allclose(layer.backward(dout), dout * y, rtol=1e-6)  # same mask


def test_dropout_identity_at_inference(rng):
    layer = Dropout(0.5)
    x = rng.standard_normal((4, 3, 2, 2))
    np.testing.assert_array_equal(layer.forward(x), x)
    np.testing.assert_array_equal(layer.forward(x, training=False), x)
    dout = rng.standard_normal(x.shape)
    np.testing.assert_array_equal(layer.backward(dout), dout)


def test_dropout_reproducible():
    x = np.ones((8, 16))
    a = Dropout(0.5, seed=7).forward(x, training=True)
    b = Dropout(0.5, seed=7).forward(x, training=True)
    np.testing.assert_array_equal(a, b)
    cnnumpy.seed(3)
    c = Dropout(0.5).forward(x, training=True)
    cnnumpy.seed(3)
    d = Dropout(0.5).forward(x, training=True)
    np.testing.assert_array_equal(c, d)
    layer = Dropout(0.5, seed=7)
    first, second = layer.forward(x, training=True), layer.forward(x, training=True)
    assert not np.array_equal(first, second)  # a fresh mask at every training step


def test_dropout_dtype_and_config():
    layer = Dropout(0.25)
    assert layer.forward(np.ones((2, 3), np.float32), training=True).dtype == np.float32
    assert layer.forward(np.ones((2, 3)), training=True).dtype == np.float64
    assert repr(layer) == "Dropout(0.25)"
    assert Dropout.from_config(layer.get_config()).rate == 0.25


@pytest.mark.parametrize(
    ("rate", "error", "message"),
    [
        (1.0, ValueError, r"Dropout: rate must be in \[0, 1\), got 1\.0"),
        (-0.1, ValueError, r"Dropout: rate must be in \[0, 1\), got -0\.1"),
        ("0.5", TypeError, r"Dropout: rate must be a number in \[0, 1\), got '0\.5'"),
        (True, TypeError, r"Dropout: rate must be a number"),
    ],
)
def test_dropout_bad_rate(rate, error, message):
    with pytest.raises(error, match=message):
        Dropout(rate)


# -- BatchNorm -------------------------------------------------------------------------
def random_batchnorm(shape, rng, training_steps=0):
    """A BatchNorm with random gamma, beta and (after some steps) running statistics."""
    layer = BatchNorm(momentum=0.3)
    layer.build(shape[1:])
    layer.astype(np.float64)
    C = shape[1]
    layer.params["gamma"][...] = rng.uniform(0.5, 1.5, C)
    layer.params["beta"][...] = rng.standard_normal(C)
    for _ in range(training_steps):
        layer.forward(rng.standard_normal(shape) * 2 + 1, training=True)
    return layer


BN_SHAPES = [(4, 3, 3, 3), (5, 4), (2, 3, 4), (1, 2, 3, 3)]


@pytest.mark.parametrize("shape", BN_SHAPES)
def test_batchnorm_gradcheck_training(shape, rng):
    layer = random_batchnorm(shape, rng)
    check_layer_gradients(layer, rng.standard_normal(shape) * 2 + 0.5, training=True)


@pytest.mark.parametrize("shape", BN_SHAPES)
def test_batchnorm_gradcheck_inference(shape, rng):
    layer = random_batchnorm(shape, rng, training_steps=2)
    check_layer_gradients(layer, rng.standard_normal(shape), training=False)


def test_batchnorm_normalises_in_training(rng):
    layer = BatchNorm()
    x = rng.standard_normal((16, 3, 5, 5)) * 4 + 2
    y = layer.forward(x, training=True)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-6)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, rtol=1e-4)
    assert set(layer.params) == {"gamma", "beta"}
    assert set(layer.state) == {"running_mean", "running_var"}
    assert layer.params["gamma"].shape == (3,) and layer.count_params() == 6
    m = 16 * 25  # running = 0.9 * initial + 0.1 * batch, unbiased variance
    np.testing.assert_allclose(
        layer.state["running_mean"], 0.1 * x.mean(axis=(0, 2, 3)), rtol=1e-5
    )
    np.testing.assert_allclose(
        layer.state["running_var"],
        0.9 + 0.1 * x.var(axis=(0, 2, 3)) * m / (m - 1),
        rtol=1e-5,
    )


def test_batchnorm_inference_uses_running_stats(rng):
    layer = random_batchnorm((6, 2), rng, training_steps=3)
    x = rng.standard_normal((6, 2))
    mean, var = layer.state["running_mean"], layer.state["running_var"]
    expected = (
        layer.params["gamma"] * (x - mean) / np.sqrt(var + 1e-5) + layer.params["beta"]
    )
    before = mean.copy()
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12)
    np.testing.assert_array_equal(layer.state["running_mean"], before)  # unchanged


def test_batchnorm_dtype_and_config(rng):
    layer = BatchNorm(momentum=0.2)
    y = layer.forward(rng.standard_normal((4, 3, 2, 2)), training=True)
    assert y.dtype == np.float32 and layer.state["running_var"].dtype == np.float32
    assert repr(layer) == "BatchNorm(momentum=0.2)"
    assert BatchNorm.from_config(layer.get_config()).momentum == 0.2


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda: BatchNorm(momentum=1.5),
            ValueError,
            r"BatchNorm: momentum must be in \[0, 1\], got 1\.5",
        ),
        (lambda: BatchNorm(eps=0), ValueError, r"BatchNorm: eps must be > 0, got 0"),
        (
            lambda: BatchNorm(momentum="a"),
            TypeError,
            r"BatchNorm: momentum must be a number",
        ),
    ],
)
def test_batchnorm_bad_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_batchnorm_bad_input():
    layer = BatchNorm()
    layer.forward(np.zeros((2, 3, 4, 4)), training=True)
    with pytest.raises(
        ValueError,
        match=r"BatchNorm\(\): expected 3 channels in an example "
        r"of rank 3, got an example of shape \(4, 4, 4\)",
    ):
        layer.forward(np.zeros((2, 4, 4, 4)))
    with pytest.raises(
        ValueError,
        match=r"expected input \(N, C\), \(N, C, L\) or "
        r"\(N, C, H, W\), got an example of shape \(1, 2, 3, 4\)",
    ):
        BatchNorm().forward(np.zeros((2, 1, 2, 3, 4)))
    with pytest.raises(
        ValueError,
        match=r"expected more than 1 value per channel in "
        r"training, got input \(1, 3\)",
    ):
        BatchNorm().forward(np.zeros((1, 3)), training=True)
    other_size = np.zeros((1, 3, 6, 6))  # another H, W is fine
    assert layer.forward(other_size).shape == (1, 3, 6, 6)
