"""ELU and Arctan: float64 gradient checks, PyTorch (torch.nn.ELU, torch.atan) forward
and backward, dtypes, overflow, the engine's kernels against the book, config and
save/load, errors. Every test runs once per engine mode (the book, the engine, each
kernel forced)."""

import warnings

import engine_modes
import numpy as np
import pytest
import torch

import cnnumpy
import cnnumpy.engine.kernels.parallel as parallel_module
from cnnumpy.engine.kernels import activations as engine_act
from cnnumpy.layers import (
    ELU,
    Arctan,
    Dense,
    layer_from_config,
    layer_to_config,
)
from cnnumpy.saving.loading import load_model
from cnnumpy.textbook import activations as book_act
from tests.gradcheck import check_layer_gradients

pytestmark = pytest.mark.torch

ALPHAS = [1.0, 0.5, 2.0, 0.0, -0.3]
# float64: only the rounding of exp and of alpha * (...) differ from PyTorch's
TOLERANCES = {
    np.float64: {"rtol": 1e-12, "atol": 1e-12},
    np.float32: {"rtol": 1e-6, "atol": 1e-6},
}


@pytest.fixture(autouse=True, params=engine_modes.modes("elu", "arctan"))
def engine_mode(request):
    """Every test once per mode: the engine, the book, each kernel forced."""
    with engine_modes.running(request.param):
        yield request.param


def away_from_zero(shape, rng):
    """|x| >= 0.1: finite differences never straddle ELU's kink at 0 (alpha != 1)."""
    x = rng.standard_normal(shape)
    return np.where(x >= 0, x + 0.1, x - 0.1)


def with_edges(shape, rng, dtype):
    """Random values with 0, large negatives and large positives written in."""
    x = 3 * rng.standard_normal(shape)
    flat = x.reshape(-1)
    flat[:6] = [0.0, -30.0, 40.0, -1e-9, 1e-9, -700.0]
    return x.astype(dtype)


# -- gradients -------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("shape", [(1, 5), (3, 4), (2, 3, 4, 4)])
def test_elu_gradients(alpha, shape, rng):
    check_layer_gradients(ELU(alpha), away_from_zero(shape, rng))


@pytest.mark.parametrize("shape", [(1, 5), (3, 4), (2, 3, 4, 4)])
@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_arctan_gradients(shape, scale, rng):
    check_layer_gradients(Arctan(), scale * rng.standard_normal(shape))


# -- PyTorch ---------------------------------------------------------------------------


def compare_with_torch(layer, torch_fn, x, rng):
    dtype = x.dtype.type
    y = layer.forward(x, training=True)
    dout = rng.standard_normal(x.shape).astype(dtype)
    dx = layer.backward(dout)
    x_t = torch.tensor(x, requires_grad=True)
    y_t = torch_fn(x_t)
    y_t.backward(torch.tensor(dout))
    for ours, theirs, what in [(y, y_t, "y"), (dx, x_t.grad, "dx")]:
        theirs = theirs.detach().numpy()
        assert ours.shape == theirs.shape, what
        assert ours.dtype == theirs.dtype == dtype, what
        np.testing.assert_allclose(ours, theirs, err_msg=what, **TOLERANCES[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("shape", [(4, 7), (2, 3, 5, 5)])
def test_elu_vs_torch(dtype, alpha, shape, rng):
    """torch.nn.ELU(alpha), including its derivative alpha at x = 0 exactly."""
    x = with_edges(shape, rng, dtype)
    compare_with_torch(ELU(alpha), torch.nn.ELU(alpha), x, rng)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(4, 7), (2, 3, 5, 5)])
def test_arctan_vs_torch(dtype, shape, rng):
    x = with_edges(shape, rng, dtype)
    compare_with_torch(Arctan(), torch.atan, x, rng)


# -- values, dtypes, overflow ----------------------------------------------------------


def test_values_of_the_formulas():
    x = np.array([[-2.0, -0.5, 0.0, 0.5, 2.0]])
    np.testing.assert_allclose(
        ELU(0.5).forward(x), np.where(x > 0, x, 0.5 * (np.exp(x) - 1)), rtol=1e-15
    )
    np.testing.assert_allclose(Arctan().forward(x), np.arctan(x), rtol=1e-15)
    # seed 004: both are bounded; ELU saturates at -alpha, arctan at +-pi/2
    far = np.array([[-1e20, 1e20]])
    np.testing.assert_array_equal(ELU(0.7).forward(far), [[-0.7, 1e20]])
    np.testing.assert_allclose(Arctan().forward(far), [[-np.pi / 2, np.pi / 2]])
    elu, arctan = ELU(0.5), Arctan()
    elu.forward(x), arctan.forward(x)
    np.testing.assert_allclose(
        elu.backward(np.ones_like(x)), np.where(x > 0, 1, 0.5 * np.exp(x)), rtol=1e-15
    )
    np.testing.assert_allclose(
        arctan.backward(np.ones_like(x)), 1 / (1 + x**2), rtol=1e-15
    )


@pytest.mark.parametrize("make", [ELU, lambda: ELU(0.2), Arctan])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keeps_dtype_and_shape(make, dtype, rng):
    layer = make()
    x = rng.standard_normal((2, 3, 4)).astype(dtype)
    y = layer.forward(x, training=True)
    assert y.shape == x.shape and y.dtype == dtype
    assert layer.backward(np.ones(x.shape, np.float64)).dtype == dtype
    assert layer.params == {} and layer.output_shape((3, 4)) == (3, 4)
    assert layer.forward(np.ones((2, 3), np.int64)).dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_overflow_for_huge_inputs(dtype):
    """ELU never takes exp of a positive x; arctan' = 1 / (1 + x^2) is 0 when x^2
    overflows to inf, its exact limit."""
    big = float(np.finfo(dtype).max) / 10
    x = np.array([[-big, -1000.0, 0.0, 1000.0, big]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            elu, arctan = ELU(), Arctan()
            y = elu.forward(x, training=True)
            dx_elu = elu.backward(np.ones_like(x))
            arctan.forward(x, training=True)
            dx_arctan = arctan.backward(np.ones_like(x))
    np.testing.assert_array_equal(y, np.array([[-1, -1, 0, 1000, big]], dtype))
    np.testing.assert_array_equal(dx_elu, [[0, 0, 1, 1, 1]])
    assert dx_arctan[0, 0] == dx_arctan[0, 4] == 0
    assert dx_arctan[0, 2] == 1


# -- the engine's kernels against the book ---------------------------------------------


@pytest.mark.parametrize("alpha", [1.0, 0.3, -0.5])
@pytest.mark.parametrize("contiguous", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elu_kernel_equals_the_book_split_over_threads(
    alpha, contiguous, dtype, monkeypatch, rng
):
    """Small chunks and no size floor, so that by_rows splits even these arrays;
    strided views take its other path (cut along the first axis)."""
    monkeypatch.setattr(parallel_module, "PARALLEL_BYTES", 1)
    monkeypatch.setattr(parallel_module, "CHUNK_BYTES", 4096)
    x = with_edges((37, 3, 5, 14), rng, dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    if not contiguous:
        x, dout = x[..., ::2], dout[..., ::2]
    out, cache = engine_act.elu_forward(x, alpha)
    book_out, book_cache = book_act.elu_forward(x, alpha)
    np.testing.assert_array_equal(out, book_out)
    np.testing.assert_array_equal(
        engine_act.elu_backward(dout, cache), book_act.elu_backward(dout, book_cache)
    )


def test_elu_kernel_passes_an_empty_batch_through():
    x = np.zeros((0, 3, 4), dtype=np.float32)
    out, cache = engine_act.elu_forward(x, 0.5)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert engine_act.elu_backward(out, cache).shape == x.shape


# -- config, save and load -------------------------------------------------------------


def test_configs_round_trip():
    for layer in [ELU(), ELU(0.25, name="e"), Arctan(), Arctan(name="a")]:
        clone = layer_from_config(layer_to_config(layer))
        assert type(clone) is type(layer) and repr(clone) == repr(layer)
        assert clone.get_config() == layer.get_config()
    assert ELU(0.25).get_config() == {"alpha": 0.25, "name": None}
    assert repr(ELU()) == "ELU()" and repr(ELU(2)) == "ELU(alpha=2.0)"
    assert repr(Arctan()) == "Arctan()"


def test_a_model_with_both_saves_and_loads(tmp_path, rng):
    cnnumpy.seed(0)
    model = cnnumpy.Sequential(
        [Dense(6), ELU(0.7), Dense(5), Arctan(), Dense(3)], input_shape=(4,)
    )
    model.compile(optimizer="sgd", loss="cross_entropy")
    x = rng.standard_normal((16, 4)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=0)
    path = tmp_path / "elu_arctan.safetensors"
    model.save(path)
    loaded = load_model(path)
    assert [repr(a) for a in loaded.layers] == [repr(b) for b in model.layers]
    assert loaded.layers[1].alpha == 0.7
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["a", float("nan"), float("inf"), True, None])
def test_elu_alpha_must_be_a_finite_number(bad):
    with pytest.raises(
        ValueError, match=rf"ELU: alpha must be a finite number, got {bad!r}"
    ):
        ELU(bad)


def test_input_and_dout_errors():
    with pytest.raises(
        ValueError,
        match=r"ELU\(\): expected a batch \(N, \.\.\.\) of rank >= 2, got shape \(3,\)",
    ):
        ELU().forward(np.zeros(3))
    with pytest.raises(
        TypeError, match=r"Arctan\(\): expected a numpy array, got list"
    ):
        Arctan().forward([[1.0]])
    with pytest.raises(
        RuntimeError, match=r"Arctan\(\): backward\(\) called before forward"
    ):
        Arctan().backward(np.zeros((1, 2)))
    layer = ELU(0.5)
    layer.forward(np.zeros((2, 3)))
    with pytest.raises(
        ValueError, match=r"ELU\(alpha=0\.5\): expected dout \(2, 3\), got \(2, 4\)"
    ):
        layer.backward(np.zeros((2, 4)))
