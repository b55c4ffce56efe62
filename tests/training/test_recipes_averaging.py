"""Averaging recipes (docs/recipes.md): the exponential moving average of the weights
(``callbacks.EMA``), checked against the average computed by hand from the weights
after every batch, and the flip-averaged test (``cnnumpy.tta``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import cnnumpy
from cnnumpy import callbacks, optimizers, tta
from cnnumpy.layers import BatchNorm, Conv2D, Dense, Flatten, ReLU

TOL = {"rtol": 1e-12, "atol": 1e-14}


def bn_mlp():
    """Dense, BatchNorm (two running statistics), Dense, in float64."""
    cnnumpy.seed(0)
    model = cnnumpy.Sequential(
        [Dense(6), BatchNorm(), ReLU(), Dense(3)], input_shape=(4,)
    )
    model.astype(np.float64)
    model.compile(optimizers.SGD(lr=0.2, momentum=0.9), loss="cross_entropy")
    return model


def data(n=12):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 4)), rng.integers(0, 3, n)


def fit_with_ema(model, ema, epochs, **options) -> list:
    """``fit`` with ``ema``; returns ``get_weights()`` after every batch."""
    seen = []
    record = callbacks.LambdaCallback(
        on_batch_end=lambda batch, logs: seen.append(model.get_weights())
    )
    model.fit(
        *data(),
        epochs=epochs,
        batch_size=4,
        callbacks=[record, ema],
        verbose=0,
        seed=0,
        **options,
    )
    return seen


def hand_average(start, seen, decays) -> list:
    """shadow <- d_t shadow + (1 - d_t) w_t, written out."""
    shadow = copied(start)
    for weights, d in zip(seen, decays, strict=True):
        for layer, now in zip(shadow, weights, strict=True):
            for key in layer:
                layer[key] = d * layer[key] + (1 - d) * now[key]
    return shadow


def copied(weights) -> list:
    return [{k: v.copy() for k, v in layer.items()} for layer in weights]


def assert_same(a, b, **tol):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert set(x) == set(y)
        for key in x:
            np.testing.assert_allclose(x[key], y[key], **tol)


@pytest.mark.parametrize("warmup", [False, True])
def test_ema_is_the_hand_computed_average_of_params_and_running_stats(warmup):
    model = bn_mlp()
    start = model.get_weights()
    ema = callbacks.EMA(decay=0.8, warmup=warmup)
    seen = fit_with_ema(model, ema, epochs=2)
    assert len(seen) == ema.updates == 6
    decays = [min(0.8, (1 + t) / (10 + t)) if warmup else 0.8 for t in range(6)]
    assert_same(ema.shadow, hand_average(start, seen, decays), **TOL)
    assert set(ema.shadow[1]) == {"gamma", "beta", "running_mean", "running_var"}
    last = model.get_weights()  # the model keeps its own weights by default
    assert_same(last, seen[-1], rtol=0, atol=0)
    assert not np.allclose(ema.shadow[0]["W"], last[0]["W"])


def test_apply_to_swaps_the_average_in_for_the_block_only():
    model = bn_mlp()
    ema = callbacks.EMA(decay=0.7)
    fit_with_ema(model, ema, epochs=1)
    own, average = model.get_weights(), copied(ema.shadow)
    x, y = data()
    with ema.apply_to(model):
        assert_same(model.get_weights(), average, rtol=0, atol=0)
        inside = model.evaluate(x, y)
    assert_same(model.get_weights(), own, rtol=0, atol=0)
    assert_same(ema.shadow, average, rtol=0, atol=0)
    twin = bn_mlp()
    twin.set_weights(average)
    assert inside == twin.evaluate(x, y)


@pytest.mark.parametrize("validate_average", [True, False])
def test_fit_validates_with_the_average_and_then_trains_on(validate_average):
    model = bn_mlp()
    ema = callbacks.EMA(decay=0.8, validate_average=validate_average)
    x, y = data()
    history = model.fit(
        x, y, epochs=2, batch_size=4, callbacks=[ema], verbose=0, seed=0,
        validation_data=(x, y),
    )  # fmt: skip
    last = history.history["val_loss"][-1]
    with ema.apply_to(model):
        averaged = model.evaluate(x, y)["loss"]
    own = model.evaluate(x, y)["loss"]
    assert averaged != own
    assert last == (averaged if validate_average else own)
    plain = bn_mlp()
    plain.fit(x, y, epochs=2, batch_size=4, verbose=0, seed=0)  # no EMA, no swap
    assert_same(model.get_weights(), plain.get_weights(), rtol=0, atol=0)


def test_keep_average_leaves_the_averaged_weights_in_the_model():
    model = bn_mlp()
    ema = callbacks.EMA(decay=0.9, keep_average=True)
    fit_with_ema(model, ema, epochs=2)
    assert_same(model.get_weights(), ema.shadow, rtol=0, atol=0)


def test_ema_goes_on_where_a_resumed_run_stopped(tmp_path):
    whole = callbacks.EMA(decay=0.8, warmup=True)
    fit_with_ema(bn_mlp(), whole, epochs=3)
    fit_with_ema(bn_mlp(), callbacks.EMA(0.8, warmup=True), 1, resume_from=tmp_path)
    resumed = callbacks.EMA(decay=0.8, warmup=True)
    fit_with_ema(bn_mlp(), resumed, epochs=3, resume_from=tmp_path)
    assert resumed.updates == whole.updates == 9
    assert_same(resumed.shadow, whole.shadow, rtol=0, atol=0)


def test_a_batch_with_a_non_finite_loss_is_not_averaged():
    model = bn_mlp()
    ema = callbacks.EMA(decay=0.5)
    ema.set_model(model)
    ema.on_train_begin()
    before = copied(ema.shadow)
    model.layers[0].params["W"][...] = np.nan
    ema.on_batch_end(0, {"loss": math.nan})
    assert ema.updates == 0
    assert_same(ema.shadow, before, rtol=0, atol=0)


def test_ema_errors():
    with pytest.raises(ValueError, match=r"EMA: decay must be a number in \[0, 1\)"):
        callbacks.EMA(decay=1.0)
    with pytest.raises(TypeError, match="EMA: warmup must be True or False, got 1"):
        callbacks.EMA(warmup=1)
    with pytest.raises(RuntimeError, match="EMA: no average yet"):
        callbacks.EMA().swap(bn_mlp())
    ema = callbacks.EMA()
    fit_with_ema(bn_mlp(), ema, epochs=1)
    cnnumpy.seed(0)
    other = cnnumpy.Sequential([Dense(3)], input_shape=(4,))
    with pytest.raises(ValueError, match="EMA: the average holds 4 layers, the model"):
        ema.swap(other)


# -- test-time flip averaging ----------------------------------------------------------
def conv_model(loss="cross_entropy"):
    cnnumpy.seed(1)
    model = cnnumpy.Sequential(
        [Conv2D(2, 3), ReLU(), Flatten(), Dense(4)], input_shape=(1, 5, 6)
    )
    model.astype(np.float64)
    model.compile("sgd", loss=loss, metrics=["accuracy"])
    return model


def images(n=9):
    rng = np.random.default_rng(2)
    return rng.standard_normal((n, 1, 5, 6)), rng.integers(0, 4, n)


def test_predict_flipped_is_the_mean_over_each_image_and_its_mirror():
    model, (x, _) = conv_model(), images()
    rows = []
    for n in range(len(x)):  # one image at a time, its mirror by np.flip
        image = x[n : n + 1]
        both = model.predict(image)[0] + model.predict(np.flip(image, axis=-1))[0]
        rows.append(both / 2)
    manual = np.stack(rows)
    got = tta.predict_flipped(model, x, batch_size=4)
    np.testing.assert_allclose(got, manual, **TOL)
    assert not np.allclose(got, model.predict(x))  # the model is not symmetric
    mirrored = tta.predict_flipped(model, x[..., ::-1])
    np.testing.assert_allclose(mirrored, got, **TOL)  # invariant under the flip


def test_evaluate_flipped_scores_the_averaged_probabilities():
    model, (x, y) = conv_model(), images()
    p = tta.predict_flipped(model, x)
    result = tta.evaluate_flipped(model, x, y)
    assert set(result) == {"loss", "accuracy"}
    nll = -np.mean(np.log(p[np.arange(len(y)), y]))
    np.testing.assert_allclose(result["loss"], nll, **TOL)
    assert result["accuracy"] == np.mean(p.argmax(axis=1) == y)
    one_hot = tta.evaluate_flipped(model, x, np.eye(4)[y])
    np.testing.assert_allclose(one_hot["loss"], result["loss"], **TOL)


def test_flip_averaging_errors():
    x, y = images()
    with pytest.raises(ValueError, match=r"expected images \(N, C, H, W\) to flip"):
        tta.predict_flipped(conv_model(), x.reshape(len(x), -1))
    with pytest.raises(ValueError, match="expected a model compiled with the cross"):
        tta.evaluate_flipped(conv_model("mse"), x, np.eye(4)[y])
    with pytest.raises(ValueError, match=r"expected labels \(9,\) or one-hot \(9, 4\)"):
        tta.evaluate_flipped(conv_model(), x, y[:5])
