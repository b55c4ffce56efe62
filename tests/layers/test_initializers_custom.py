"""Initialisers given as callables, saved as "custom"; the notes' own laws by name.

Tolerances of the laws: on n draws of N(0, s^2), the sample mean has standard error
s / sqrt(n) and the sample std has relative standard error 1 / sqrt(2n); every check
allows 5 of them (the draws are seeded, so the checks are deterministic).
"""

import json

import numpy as np
import pytest

import cnnumpy
from cnnumpy import initializers
from cnnumpy.layers import Conv1D, Conv2D, Dense, Flatten, ReLU


class Spy:
    """A callable initialiser that records its arguments and returns a known array."""

    def __init__(self, fill: float = 0.25) -> None:
        self.fill = fill
        self.calls = []

    def __call__(self, shape, rng, dtype):
        self.calls.append((shape, rng, dtype))
        return np.arange(np.prod(shape), dtype=dtype).reshape(shape) * self.fill


# -- a callable is called as documented and its result used -------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "cls, args, input_shape, w_shape, units",
    [
        (Dense, (4,), (5,), (5, 4), 4),
        (Conv2D, (3, 2), (2, 5, 5), (3, 2, 2, 2), 3),
        (Conv1D, (3, 2), (2, 7), (3, 2, 2), 3),
    ],
)
def test_callable_gets_shape_rng_dtype_and_its_result_is_used(
    cls, args, input_shape, w_shape, units, dtype
):
    kernel, bias = Spy(0.5), Spy(-1.0)
    layer = cls(*args, kernel_initializer=kernel, bias_initializer=bias).astype(dtype)
    layer.build(input_shape)
    [(shape, rng, got_dtype)] = kernel.calls
    assert shape == w_shape and isinstance(shape, tuple)
    assert rng is layer.rng and got_dtype == np.dtype(dtype)
    assert bias.calls == [((units,), layer.rng, np.dtype(dtype))]
    np.testing.assert_array_equal(layer.params["W"], kernel(w_shape, rng, dtype))
    np.testing.assert_array_equal(layer.params["b"], -np.arange(units))
    assert layer.params["W"].dtype == dtype and layer.grads["W"].shape == w_shape
    y = layer.forward(np.ones((2, *input_shape), dtype=dtype))  # the layer runs
    assert y.dtype == dtype


def test_result_is_copied_so_training_leaves_the_callers_array_alone():
    pretrained = np.full((3, 2), 0.5, dtype=np.float32)
    layer = Dense(2, kernel_initializer=lambda shape, rng, dtype: pretrained)
    layer.build((3,))
    layer.params["W"] -= 1.0  # what an optimiser step does, in place
    assert (pretrained == 0.5).all()


@pytest.mark.parametrize(
    "layer, input_shape, seen",
    [
        (Dense(2), (6,), (6,)),
        (Dense(2), (4, 6), (6,)),  # a sequence: one step is what W multiplies
        (Conv2D(2, 3), (3, 8, 9), (3, 8, 9)),
        (Conv1D(2, 3), (3, 8), (3, 8)),
    ],
)
def test_a_callable_asking_for_input_shape_receives_it(layer, input_shape, seen):
    received = []

    def init(shape, rng, dtype, input_shape=None):
        received.append(input_shape)
        return np.zeros(shape, dtype)

    layer.kernel_initializer = layer.bias_initializer = init
    layer.build(input_shape)
    assert received == [seen, seen]


def test_library_functions_as_callables_are_saved_by_name():
    layer = Conv2D(
        2,
        3,
        kernel_initializer=initializers.seed000_conv,
        bias_initializer=initializers.get("kaiming_normal"),  # saved by first name
    )
    config = layer.get_config()
    assert config["kernel_initializer"] == "seed000_conv"
    assert config["bias_initializer"] == "he_normal"
    mine = Dense(2, kernel_initializer=Spy())
    assert mine.get_config()["kernel_initializer"] == "custom"
    assert repr(mine) == "Dense(2, kernel_initializer='custom')"


# -- bad callables: clear errors naming the layer -----------------------------------
def wrong_shape(shape, rng, dtype):
    return np.zeros((3,), dtype)


def wrong_dtype(shape, rng, dtype):
    return np.zeros(shape, np.float64)


def not_an_array(shape, rng, dtype):
    return [0.0] * shape[0]


def not_finite(shape, rng, dtype):
    return np.full(shape, np.nan, dtype)


def raising(shape, rng, dtype):
    raise ZeroDivisionError("division by zero")


def one_argument(shape):
    return np.zeros(shape, np.float32)


@pytest.mark.parametrize(
    "init, error, match",
    [
        (
            wrong_shape,
            ValueError,
            r"^Dense\(4, kernel_initializer='custom'\): kernel_initializer="
            r"wrong_shape returned shape \(3,\), expected \(5, 4\)$",
        ),
        (
            wrong_dtype,
            TypeError,
            r"^Dense\(4, .*\): kernel_initializer=wrong_dtype returned dtype "
            r"float64, expected float32",
        ),
        (
            not_an_array,
            TypeError,
            r"^Dense\(4, .*\): kernel_initializer=not_an_array returned list, "
            r"expected a numpy array of shape \(5, 4\) and dtype float32$",
        ),
        (not_finite, ValueError, r"not_finite returned NaN or infinite values$"),
        (
            raising,
            ValueError,
            r"^Dense\(4, .*\): kernel_initializer=raising failed when called as "
            r"f\(shape=\(5, 4\), rng, dtype=float32\): ZeroDivisionError: division",
        ),
        (one_argument, ValueError, r"one_argument failed .*: TypeError: "),
    ],
)
def test_bad_callables_give_clear_errors_naming_the_layer(init, error, match):
    layer = Dense(4, kernel_initializer=init)
    with pytest.raises(error, match=match) as info:
        layer.build((5,))
    if init is raising:  # the user's own error is chained, for its traceback
        assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert not layer.built


def test_bad_bias_callable_and_bad_name_for_a_bias():
    layer = Conv2D(2, 3, bias_initializer=wrong_shape)
    with pytest.raises(ValueError, match=r"^Conv2D\(2, 3, .*\): bias_initializer="):
        layer.build((1, 5, 5))
    layer = Dense(3, bias_initializer="he_normal")  # a bias has no fan_in
    with pytest.raises(
        ValueError,
        match=r"^Dense\(3, bias_initializer='he_normal'\): bias_initializer="
        r"'he_normal' failed .*expected a weight of rank >= 2",
    ):
        layer.build((4,))


@pytest.mark.parametrize(
    "make, owner",
    [
        (lambda **kw: Dense(4, **kw), r"Dense\(4\)"),
        (lambda **kw: Conv2D(4, 3, **kw), r"Conv2D\(4, 3\)"),
        (lambda **kw: Conv1D(4, 3, **kw), r"Conv1D\(4, 3\)"),
    ],
)
def test_neither_name_nor_callable_fails_at_construction(make, owner):
    with pytest.raises(
        TypeError,
        match=rf"^{owner}: kernel_initializer must be an initializer name or a "
        r"callable f\(shape, rng, dtype\) -> array, got int 3$",
    ):
        make(kernel_initializer=3)
    with pytest.raises(
        ValueError, match=rf"^{owner}: unknown initializer 'seed00_fc' for bias_"
    ):
        make(bias_initializer="seed00_fc")


# -- save and load, without code ------------------------------------------------------
def _model_with_callables(kernel: Spy) -> cnnumpy.Sequential:
    cnnumpy.seed(0)
    return cnnumpy.Sequential(
        [
            Conv2D(3, 3, kernel_initializer=kernel, bias_initializer=Spy(0.1)),
            ReLU(),
            Flatten(),
            Dense(2, kernel_initializer=lambda s, r, d: r.normal(0, 0.1, s).astype(d)),
        ],
        input_shape=(2, 5, 5),
    )


def test_a_model_built_with_callables_saves_and_loads(tmp_path):
    kernel = Spy(0.01)
    model = _model_with_callables(kernel)
    path = tmp_path / "custom.safetensors"
    model.save(path)
    loaded = cnnumpy.load_model(path)
    assert len(kernel.calls) == 1  # loading ran no initialiser: nothing of the user's
    entries = loaded.get_config()["layers"]
    assert [e["config"].get("kernel_initializer") for e in entries] == (
        ["custom", None, None, "custom"]
    )
    assert entries[0]["config"]["bias_initializer"] == "custom"
    json.dumps(model.get_config())  # the config of the original is plain JSON
    for mine, theirs in zip(model.get_weights(), loaded.get_weights(), strict=True):
        for key in mine:
            np.testing.assert_array_equal(mine[key], theirs[key])
    x = np.random.default_rng(1).standard_normal((4, 2, 5, 5)).astype(np.float32)
    np.testing.assert_array_equal(model.forward(x), loaded.forward(x))
    loaded.save(tmp_path / "again.safetensors")  # "custom" saves and loads again
    again = cnnumpy.load_model(tmp_path / "again.safetensors")
    np.testing.assert_array_equal(again.forward(x), model.forward(x))


def test_building_a_custom_config_without_weights_is_a_clear_error():
    config = _model_with_callables(Spy()).get_config()
    with pytest.raises(
        ValueError,
        match=r"^Conv2D\(3, 3, kernel_initializer='custom', bias_initializer="
        r"'custom'\): kernel_initializer is 'custom': the callable this layer was "
        r"built with is not saved .*cnnumpy.load_model\(path\)",
    ):
        cnnumpy.Sequential.from_config(config)
    layer = Dense(2, kernel_initializer="custom")  # named outright: the same
    with pytest.raises(ValueError, match=r"kernel_initializer is 'custom'"):
        layer.build((3,))
    with initializers.weights_follow():  # what load_model does: weights follow
        layer.build((3,))
    assert not layer.params["W"].any()
    with pytest.raises(ValueError, match="is 'custom'"):  # and only inside
        Dense(2, kernel_initializer="custom").build((3,))


# -- the notes' initialisations by name -----------------------------------------------
def _check_normal(w: np.ndarray, std: float) -> None:
    n = w.size
    assert abs(w.mean()) < 5 * std / np.sqrt(n)
    np.testing.assert_allclose(w.std(), std, rtol=5 / np.sqrt(2 * n))


def test_seed000_fc_weights_and_biases():
    """Seed 000, II. 2. b: randn(D, H, W, D1, H1, W1) * 0.01 / sqrt(D1*H1*W1), and
    the biases the same law."""
    cnnumpy.seed(3)
    layer = Dense(256, kernel_initializer="seed000_fc", bias_initializer="seed000_fc")
    layer.build((3 * 32 * 32,))  # a flattened CIFAR-10 image: D1*H1*W1 = 3072
    _check_normal(layer.params["W"], 0.01 / np.sqrt(3072))
    rng = np.random.default_rng(0)
    bias = initializers.seed000_fc((100_000,), rng, np.float64, input_shape=(3, 32, 32))
    _check_normal(bias, 0.01 / np.sqrt(3072))
    # a Dense weight alone gives D1*H1*W1 = in_features
    w = initializers.seed000_fc((400, 300), rng, np.float64)
    _check_normal(w, 0.01 / np.sqrt(400))


@pytest.mark.parametrize(
    "layer, input_shape", [(Conv2D, (16, 8, 8)), (Conv1D, (16, 64))]
)
def test_seed000_conv_scales_by_the_whole_input(layer, input_shape):
    """Seed 000, II. 2. b: randn(D2, D1, F, F) / sqrt(D1*H1*W1) and biases
    ones(D2) / sqrt(D1*H1*W1): D1*H1*W1 = 1024, not the receptive field."""
    cnnumpy.seed(5)
    conv = layer(
        256, 5, kernel_initializer="seed000_conv", bias_initializer="seed000_conv_bias"
    )
    conv.astype(np.float64)
    conv.build(input_shape)
    _check_normal(conv.params["W"], 1 / np.sqrt(1024))
    np.testing.assert_array_equal(conv.params["b"], np.full(256, 1 / 32))


def test_seed000_conv_bias_is_exact_in_float32():
    b = initializers.seed000_conv_bias((6,), None, np.float32, input_shape=(3, 32, 32))
    np.testing.assert_array_equal(b, np.full(6, 1 / np.sqrt(3072), dtype=np.float32))


@pytest.mark.parametrize("name", ["seed000_conv", "seed000_conv_bias"])
def test_seed000_conv_laws_need_the_input_shape(name):
    with pytest.raises(ValueError, match=rf"^{name}: seed 000 scales by .*D1\*H1\*W1"):
        initializers.get(name)((8, 3, 3, 3), np.random.default_rng(0), np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_uniform_half_is_rand_minus_half(dtype):
    """Seed 002's FCLayer and ConvLayer: np.random.rand(...) - 0.5, U[-0.5, 0.5):
    exact bounds, mean 0 and variance 1/12 within 5 standard errors."""
    w = initializers.uniform_half((1000, 1000), np.random.default_rng(0), dtype)
    assert w.dtype == dtype and w.min() >= -0.5 and w.max() < 0.5
    assert w.min() < -0.499 and w.max() > 0.499  # it fills the interval
    n, var = w.size, 1 / 12
    assert abs(w.mean()) < 5 * np.sqrt(var / n)
    # the variance of U's squares: E[x^4] - var^2 = 1/80 - 1/144
    np.testing.assert_allclose(w.var(), var, atol=5 * np.sqrt((1 / 80 - var**2) / n))
    layer = Dense(3, kernel_initializer="uniform_half", bias_initializer="uniform_half")
    layer.build((2,))
    assert np.abs(layer.params["b"]).max() <= 0.5


@pytest.mark.parametrize(
    "name", ["seed000_fc", "seed000_conv", "seed000_conv_bias", "uniform_half"]
)
def test_the_notes_laws_repeat_for_the_same_seed(name):
    def build(seed):
        cnnumpy.seed(seed)
        conv = Conv2D(4, 3, kernel_initializer=name, bias_initializer=name)
        conv.build((2, 6, 6))
        dense = Dense(3, kernel_initializer=name, bias_initializer=name)
        dense.build((5,))
        return [*conv.params.values(), *dense.params.values()]

    first, again, other = build(11), build(11), build(12)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    if name != "seed000_conv_bias":  # the one law that draws nothing
        assert not np.array_equal(first[0], other[0])
