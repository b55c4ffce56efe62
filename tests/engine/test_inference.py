"""Fused inference (cnnumpy/engine/fusion.py): what predict and evaluate run.

The fused pass must give the layer-by-layer ``forward`` outputs up to float rounding:
``1e-12`` relative in float64, ``1e-5`` in float32 (folding BatchNorm into the kernels
rounds differently).
"""

import numpy as np
import pytest

import cnnumpy
from cnnumpy.engine import fusion
from cnnumpy.engine.executor import execution_steps
from cnnumpy.engine.rules import use_bands
from cnnumpy.layers import (
    AvgPool2D,
    BatchNorm,
    Conv1D,
    Conv2D,
    Dense,
    Flatten,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Tanh,
)
from cnnumpy.sequential import Sequential

# the engine's own machinery: run with its kernels, whatever CNNUMPY_ENGINE says
pytestmark = pytest.mark.usefixtures("engine_on")


def _randomise_batchnorms(model, seed=1):
    """Statistics and affine parameters far from the identity the layer starts as."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, BatchNorm):
            C = layer.params["gamma"].shape[0]
            layer.state["running_mean"][...] = rng.normal(size=C)
            layer.state["running_var"][...] = rng.uniform(0.3, 3.0, size=C)
            layer.params["gamma"][...] = rng.normal(size=C)
            layer.params["beta"][...] = rng.normal(size=C)


def _model(layers, input_shape, dtype="float64"):
    cnnumpy.seed(0)
    model = Sequential(layers, input_shape=input_shape)
    if dtype == "float64":
        model.astype("float64")
    _randomise_batchnorms(model)
    return model


def _check_equal_to_forward(model, x, rtol):
    x = x.astype(model.dtype)
    want = model.forward(x)
    got = model.executor.fused_forward(x)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


def _steps(model):
    return fusion.plan(model.layers, execution_steps(model))


def _vgg_block():
    return [
        Conv2D(6, 3, padding=1, use_bias=False),
        BatchNorm(),
        ReLU(),
        Conv2D(5, 3, padding=1),
        BatchNorm(),
        LeakyReLU(0.2),
        MaxPool2D(2),
        Flatten(),
        Dense(3),
    ]


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 1e-5)])
def test_batchnorm_folded_and_activations_fused(dtype, rtol):
    model = _model(_vgg_block(), (2, 8, 8), dtype)
    # the LeakyReLU before the max-pool runs after it (execution_order): the second
    # conv takes its BatchNorm, the pool, then the activation
    assert _steps(model) == [
        (0, 1, None, 2),
        (3, 4, 6, 5),
        (7, None, None, None),
        (8, None, None, None),
    ]
    x = np.random.default_rng(2).standard_normal((7, 2, 8, 8))
    _check_equal_to_forward(model, x, rtol)


def test_general_path_conv1d_and_unusual_slopes_are_fused():
    strided = _model(
        [Conv2D(4, 3, stride=2, padding_mode="reflect", padding=1), ReLU(), Flatten()],
        (3, 9, 9),
    )
    sequence = _model([Conv1D(4, 3, padding=1), BatchNorm(), ReLU()], (2, 11))
    for alpha in (0.0, 2.0, -0.5):  # the branch of leaky_relu_forward without max
        slope = _model([Conv2D(3, 2), LeakyReLU(alpha), Flatten()], (2, 5, 5))
        assert _steps(slope)[0] == (0, None, None, 1)
        _check_equal_to_forward(
            slope, np.random.default_rng(3).normal(size=(4, 2, 5, 5)), 1e-12
        )
    assert _steps(strided)[0] == (0, None, None, 1)
    assert _steps(sequence)[0] == (0, 1, None, 2)
    _check_equal_to_forward(
        strided, np.random.default_rng(4).normal(size=(3, 3, 9, 9)), 1e-12
    )
    _check_equal_to_forward(
        sequence, np.random.default_rng(5).normal(size=(3, 2, 11)), 1e-12
    )


def test_what_is_not_fused():
    class LoudBatchNorm(BatchNorm):  # a subclass may compute something else
        def forward(self, x, training=False):
            return super().forward(x, training) + 1.0

    class Clip(ReLU):  # same forward, other arithmetic
        def _forward(self, x):
            out, mask = super()._forward(x)
            return np.minimum(out, 0.5), mask

    hooked = Conv2D(2, 3)
    model = _model(
        [
            Conv2D(3, 3),
            LoudBatchNorm(),
            ReLU(),
            Conv2D(2, 3, padding=1),
            Clip(),
            hooked,
            ReLU(),
            Conv2D(2, 3),
            Tanh(),
            Flatten(),
        ],
        (1, 13, 13),
    )
    original = hooked.forward
    hooked.forward = lambda x, training=False: original(x, training) * 0.5
    # nothing merges: a custom BatchNorm, a custom ReLU, a conv whose forward is
    # replaced on the instance, tanh without an average pool after it
    assert _steps(model) == [(k, None, None, None) for k in range(10)]
    x = np.random.default_rng(6).normal(size=(2, 1, 13, 13))
    _check_equal_to_forward(model, x, 1e-12)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_activation_then_average_pool_fused(dtype):
    """LeNet's tanh then 2x2 average pooling merge into the convolution (activation
    on the chunk, then the mean of its tiles): the same values as layer by layer
    (bit for bit in float64: same ufuncs, same order of the adds), with row bands
    (16 -> 8 channels 5x5), a BatchNorm folded in, and a ReLU before a 3x2 mean."""
    model = _model(
        [
            Conv2D(16, 5, padding=2),
            Tanh(),
            AvgPool2D(2),
            Conv2D(8, 5, padding=2, use_bias=False),
            BatchNorm(),
            ReLU(),
            AvgPool2D((3, 2)),
            Conv2D(4, 1),
            LeakyReLU(0.1),
            AvgPool2D(2, stride=1),  # overlapping windows: not tiles, runs alone
            Flatten(),
        ],
        (3, 12, 12),
        dtype,
    )
    assert _steps(model) == [
        (0, None, 2, 1),
        (3, 4, 6, 5),
        (7, None, None, 8),
        (9, None, None, None),
        (10, None, None, None),
    ]
    x = np.random.default_rng(9).standard_normal((5, 3, 12, 12)).astype(dtype)
    want = model.forward(x)
    assert use_bands(model.layers[3].params["W"].shape[1], (5, 5))
    rtol = 1e-12 if dtype == "float64" else 1e-5  # the folded BatchNorm rounds
    got = model.executor.fused_forward(x)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)
    # without the BatchNorm, every value is the layer-by-layer one: exactly in
    # float64; in float32 up to the error of the fused tanh (tanh_inplace)
    plain = _model([Conv2D(6, 5), Tanh(), AvgPool2D(2), Flatten()], (1, 28, 28), dtype)
    assert _steps(plain)[0] == (0, None, 2, 1)
    x = np.random.default_rng(10).standard_normal((9, 1, 28, 28)).astype(dtype)
    fused = plain.executor.fused_forward(x)
    if dtype == "float64":
        np.testing.assert_array_equal(fused, plain.forward(x))
    else:
        np.testing.assert_allclose(fused, plain.forward(x), atol=3e-7)


def test_fused_float32_tanh_error_is_absolute_and_small():
    """tanh_inplace in float32 (1 - 2 / (exp(2x) + 1)): within 2e-7 of the exact
    tanh everywhere, exactly +-1 at the infinities and past exp's overflow, NaN kept;
    float64 is np.tanh itself."""
    from cnnumpy.engine.kernels.activations import tanh_inplace

    tiny = np.float32(10.0) ** np.linspace(-30, 1.7, 20_001, dtype=np.float32)
    x = np.concatenate([np.linspace(-20, 20, 400_001, dtype=np.float32), tiny, -tiny])
    got = x.copy()
    tanh_inplace(got)
    exact = np.tanh(x.astype(np.float64))
    assert np.abs(got - exact).max() <= 2e-7
    special = np.array([np.inf, -np.inf, 50, -50, 100, -100, np.nan], np.float32)
    tanh_inplace(special)
    np.testing.assert_array_equal(special, [1, -1, 1, -1, 1, -1, np.nan])
    x64 = np.linspace(-5, 5, 1001)
    got64 = x64.copy()
    tanh_inplace(got64)
    np.testing.assert_array_equal(got64, np.tanh(x64))


def test_activation_then_ragged_average_pool_runs_in_order():
    """A 2x2 average pool over a 7x7 map leaves a row over: the conv is fused alone,
    then the tanh and the pool run as layers, in that order."""
    model = _model([Conv2D(3, 3), Tanh(), AvgPool2D(2), Flatten()], (2, 9, 9))
    assert _steps(model)[0] == (0, None, 2, 1)
    _check_equal_to_forward(
        model, np.random.default_rng(11).normal(size=(4, 2, 9, 9)), 1e-12
    )


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 1e-5)])
def test_row_bands_with_padding_batchnorm_and_pool(dtype, rtol):
    """The row-band kernel (16 channels, 5x5) with its strided chunks, fused with a
    BatchNorm, a 2x2 max-pool and a LeakyReLU (seed 000's layers, plus BatchNorm)."""
    model = _model(
        [
            Conv2D(16, 3, padding=1),
            Conv2D(8, 5, padding=2),
            BatchNorm(),
            LeakyReLU(0.1),
            MaxPool2D(2),
            Flatten(),
        ],
        (2, 8, 8),
        dtype,
    )
    assert _steps(model)[1] == (1, 2, 4, 3)
    x = np.random.default_rng(8).standard_normal((5, 2, 8, 8))
    _check_equal_to_forward(model, x, rtol)


def test_pools_that_do_not_tile():
    overlapping = _model([Conv2D(3, 3), ReLU(), MaxPool2D(3, 2), Flatten()], (1, 9, 9))
    assert _steps(overlapping)[0] == (0, None, None, None)  # stride 2 < pool 3
    # 7x7 maps: 2x2 tiles leave a row and a column; the pool then runs as it is
    ragged = _model([Conv2D(3, 3), ReLU(), MaxPool2D(2), Flatten()], (1, 9, 9))
    assert _steps(ragged)[0] == (0, None, 2, 1)
    for model in (overlapping, ragged):
        x = np.random.default_rng(9).normal(size=(3, 1, 9, 9))
        _check_equal_to_forward(model, x, 1e-12)


def test_a_fused_conv_leaves_its_training_cache_alone():
    """The fused conv pads into a free buffer, not the one its last training
    forward keeps for backward."""
    model = _model(_vgg_block(), (2, 8, 8))
    conv = model.layers[0]
    model.forward(np.random.default_rng(10).standard_normal((4, 2, 8, 8)), True)
    kept = [a.copy() for a in conv._cache.data if isinstance(a, np.ndarray)]
    x = np.random.default_rng(11).standard_normal((4, 2, 8, 8))
    model.executor.fused_forward(x)
    now = [a for a in conv._cache.data if isinstance(a, np.ndarray)]
    assert len(kept) == len(now) >= 2  # the padded input and the kernels
    for a, b in zip(now, kept, strict=True):
        np.testing.assert_array_equal(a, b)


def test_predict_and_evaluate_run_the_fused_pass(monkeypatch):
    model = _model(_vgg_block(), (2, 8, 8))
    model.compile("sgd", "cross_entropy")
    calls = []
    fused = fusion.forward

    def spy(layers, steps, xs, outputs):
        calls.append(len(xs[0]))
        return fused(layers, steps, xs, outputs)

    monkeypatch.setattr(fusion, "forward", spy)
    x = np.random.default_rng(7).standard_normal((10, 2, 8, 8))
    y = np.arange(10) % 3
    probs = model.predict(x, batch_size=4)
    assert calls == [4, 4, 2]
    model.evaluate(x, y, batch_size=5)
    assert calls[3:] == [5, 5]
    want = model.loss.to_probabilities(model.forward(x))
    np.testing.assert_allclose(probs, want, rtol=1e-12, atol=1e-12)


def test_folded_weights_are_a_copy():
    model = _model(_vgg_block(), (2, 8, 8))
    conv, bn = model.layers[0], model.layers[1]
    before = conv.params["W"].copy()
    w, b = fusion.folded(conv, bn)
    assert w is not conv.params["W"] and b.shape == (6,)
    np.testing.assert_array_equal(conv.params["W"], before)
    s = bn.params["gamma"] / np.sqrt(bn.state["running_var"] + bn.eps)
    np.testing.assert_allclose(w, before * s[:, None, None, None], rtol=1e-15)
    np.testing.assert_allclose(
        b, bn.params["beta"] - s * bn.state["running_mean"], rtol=1e-14
    )
