"""Optimisers without PyTorch.

The notes' rule by hand, state, in-place updates, errors.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnumpy import optimizers
from cnnumpy.layers.base import Layer
from cnnumpy.optimizers import SGD, Adam, AdamW, RMSProp, clip_grad_norm


def make_layer(rng, dtype=np.float64, trainable=True) -> Layer:
    """A real ``Layer`` whose params and grads are set by hand."""
    layer = Layer()
    layer.params = {
        "W": rng.standard_normal((3, 2, 3, 3)).astype(dtype),
        "b": rng.standard_normal(3).astype(dtype),
    }
    layer.grads = {k: np.zeros_like(v) for k, v in layer.params.items()}
    layer.trainable = trainable
    return layer


def fill_grads(layers, rng) -> None:
    for layer in layers:
        for key, p in layer.params.items():
            layer.grads[key] = rng.standard_normal(p.shape).astype(p.dtype)


def test_sgd_is_the_notes_update_rule():
    """Seed 000: Delta w(n) = -alpha dE/dw + eta Delta w(n-1) - alpha eps w, 3 steps."""
    alpha, eta, eps = 0.01, 0.9, 0.005  # the notes' values
    rng = np.random.default_rng(0)
    layer = make_layer(rng)
    optimizer = SGD(lr=alpha, momentum=eta, weight_decay=eps)
    w = {k: v.copy() for k, v in layer.params.items()}
    delta = {k: np.zeros_like(v) for k, v in w.items()}  # Delta w(0) = 0
    for _ in range(3):
        fill_grads([layer], rng)
        for k, w_k in list(w.items()):
            dE_dw = layer.grads[k]
            delta[k] = -alpha * dE_dw + eta * delta[k] - alpha * eps * w_k
            w[k] = w_k + delta[k]
        optimizer.step([layer])
        for k, w_k in w.items():
            np.testing.assert_allclose(layer.params[k], w_k, rtol=1e-12, atol=1e-15)


OPTIMIZERS = [
    lambda: SGD(lr=0.1),
    lambda: SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda: Adam(lr=0.01, weight_decay=0.01),
    lambda: AdamW(lr=0.01, clipnorm=1.0),
    lambda: RMSProp(lr=0.01, momentum=0.5),
    lambda: RMSProp(lr=0.01, weight_decay=0.1, clipnorm=0.5),
]


@pytest.mark.parametrize("make", OPTIMIZERS)
def test_state_dict_round_trip_gives_identical_steps(make):
    rng = np.random.default_rng(0)
    layers = [make_layer(rng), Layer(), make_layer(rng)]
    first = make()
    for _ in range(3):
        fill_grads(layers, rng)
        first.step(layers)
    state = first.state_dict()
    assert state["iterations"] == 3 and state["lr"] == first.lr
    twin_layers = [make_layer(rng), Layer(), make_layer(rng)]
    for layer, twin in zip(layers, twin_layers, strict=True):
        for key, p in layer.params.items():
            twin.params[key][...] = p
    second = type(first)(**json.loads(json.dumps(first.get_config())))
    second.load_state_dict(state, layers=twin_layers)
    for slots in state["slots"].values():  # the loaded state holds copies
        for value in slots.values():
            value[...] = 1e6
    for _ in range(3):
        fill_grads(layers, rng)
        for layer, twin in zip(layers, twin_layers, strict=True):
            twin.grads = {k: g.copy() for k, g in layer.grads.items()}
        first.step(layers)
        second.step(twin_layers)
        for layer, twin in zip(layers, twin_layers, strict=True):
            for key in layer.params:
                np.testing.assert_array_equal(layer.params[key], twin.params[key])
    assert second.iterations == first.iterations == 6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make", OPTIMIZERS)
def test_update_is_in_place_and_grads_untouched(make, dtype):
    rng = np.random.default_rng(1)
    layers = [make_layer(rng, dtype), make_layer(rng, dtype, trainable=False)]
    ids = {key: id(p) for key, p in layers[0].params.items()}
    view = layers[0].params["W"][0]  # another object that shares the memory
    before = {key: p.copy() for key, p in layers[0].params.items()}
    frozen = {key: p.copy() for key, p in layers[1].params.items()}
    optimizer = make()
    for _ in range(2):
        fill_grads(layers, rng)
        grads = {key: g.copy() for key, g in layers[0].grads.items()}
        optimizer.step(layers)
        for key, g in layers[0].grads.items():
            np.testing.assert_array_equal(g, grads[key])  # clipping used a temporary
    for key, p in layers[0].params.items():
        assert id(p) == ids[key] and p.dtype == dtype
        assert not np.array_equal(p, before[key])
    np.testing.assert_array_equal(view, layers[0].params["W"][0])
    for key, p in layers[1].params.items():
        np.testing.assert_array_equal(p, frozen[key])
    assert all(key.startswith("0.") for key in optimizer.slots)
    for slots in optimizer.slots.values():
        assert all(value.dtype == dtype for value in slots.values())


def test_slot_keys_and_names():
    rng = np.random.default_rng(0)
    layers = [Layer(), make_layer(rng)]
    fill_grads(layers, rng)
    optimizer = Adam()
    optimizer.step(layers)
    slots = optimizer.state_dict()["slots"]
    assert sorted(slots) == ["1.W", "1.b"]
    assert sorted(slots["1.W"]) == ["m", "step", "v"]
    assert slots["1.W"]["m"].shape == (3, 2, 3, 3) and slots["1.W"]["step"] == 1


def test_astype_converts_slots_and_steps_follow_the_params():
    rng = np.random.default_rng(0)
    layer = make_layer(rng, np.float32)
    optimizer = SGD(lr=0.1, momentum=0.9)
    fill_grads([layer], rng)
    optimizer.step([layer])
    layer.astype(np.float64)
    optimizer.astype(np.float64)
    assert optimizer.slots["0.W"]["momentum_buffer"].dtype == np.float64
    optimizer.step([layer])
    assert layer.params["W"].dtype == np.float64


def test_clip_grad_norm_function():
    rng = np.random.default_rng(0)
    layer = make_layer(rng)
    fill_grads([layer], rng)
    grads = [g.copy() for g in layer.grads.values()]
    norm = np.sqrt(sum(np.sum(g**2) for g in grads))
    assert clip_grad_norm([layer], 1.0) == pytest.approx(norm, rel=1e-12)
    scale = 1.0 / (norm + 1e-6)
    for g, old in zip(layer.grads.values(), grads, strict=True):
        np.testing.assert_allclose(g, old * scale, rtol=1e-12)
    with pytest.raises(
        ValueError, match=r"clip_grad_norm: max_norm must be > 0, got 0"
    ):
        clip_grad_norm([layer], 0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SGD(lr=-0.1), r"SGD: lr must be a float >= 0, got -0.1"),
        (lambda: SGD(lr="fast"), r"SGD: lr must be a float >= 0, got 'fast'"),
        (lambda: SGD(momentum=1.0), r"SGD: momentum must be in \[0, 1\), got 1.0"),
        (lambda: SGD(momentum=-0.5), r"SGD: momentum must be in \[0, 1\), got -0.5"),
        (
            lambda: SGD(nesterov=True),
            r"SGD: nesterov=True requires momentum > 0, got momentum=0",
        ),
        (lambda: SGD(weight_decay=-1), r"SGD: weight_decay must be >= 0, got -1"),
        (lambda: SGD(clipnorm=0), r"SGD: clipnorm must be > 0 or None, got 0"),
        (lambda: Adam(lr=-1), r"Adam: lr must be a float >= 0, got -1"),
        (lambda: Adam(beta1=1.0), r"Adam: beta1 must be in \[0, 1\), got 1.0"),
        (lambda: Adam(beta2=-0.1), r"Adam: beta2 must be in \[0, 1\), got -0.1"),
        (lambda: AdamW(beta2=1.5), r"AdamW: beta2 must be in \[0, 1\), got 1.5"),
        (lambda: Adam(eps=-1e-8), r"Adam: eps must be >= 0, got -1e-08"),
        (lambda: RMSProp(alpha=1.0), r"RMSProp: alpha must be in \[0, 1\), got 1.0"),
        (lambda: RMSProp(momentum=2), r"RMSProp: momentum must be in \[0, 1\), got 2"),
    ],
)
def test_bad_arguments_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_setting_a_negative_lr_raises():
    optimizer = SGD()
    optimizer.lr = 0.5  # schedules do this
    assert optimizer.lr == 0.5 and isinstance(optimizer.lr, float)
    with pytest.raises(ValueError, match=r"SGD: lr must be a float >= 0, got -0.5"):
        optimizer.lr = -0.5


def test_gradient_missing_or_of_wrong_shape_raises():
    rng = np.random.default_rng(0)
    layer = make_layer(rng)
    layer.grads["b"] = np.zeros(4)
    with pytest.raises(
        ValueError, match=r"SGD: layer 0 \(Layer\(\)\) gradient 'b' has"
    ):
        SGD().step([layer])
    del layer.grads["b"]
    with pytest.raises(ValueError, match=r"no gradient for 'b'"):
        SGD().step([layer])


def _stepped(make):
    rng = np.random.default_rng(0)
    layers = [make_layer(rng)]
    fill_grads(layers, rng)
    optimizer = make()
    optimizer.step(layers)
    return optimizer, layers


def _bad_state(optimizer):
    state = optimizer.state_dict()
    state["slots"]["0.W"]["m"] = np.zeros((3, 2, 5, 5))
    return state


def test_load_state_dict_with_mismatched_shapes_raises():
    optimizer, layers = _stepped(Adam)
    message = r"Adam: slot 0.W.m has shape \(3, 2, 5, 5\), expected \(3, 2, 3, 3\)"
    with pytest.raises(ValueError, match=message):  # against the existing slots
        optimizer.load_state_dict(_bad_state(optimizer))
    with pytest.raises(ValueError, match=message):  # against the given layers
        Adam().load_state_dict(_bad_state(optimizer), layers=layers)
    fresh = Adam()
    fresh.load_state_dict(_bad_state(optimizer))  # nothing to compare with yet...
    with pytest.raises(ValueError, match=message):  # ...so the next step checks
        fresh.step(layers)


def test_load_state_dict_with_wrong_slots_or_keys_raises():
    optimizer, _ = _stepped(Adam)
    state = optimizer.state_dict()
    with pytest.raises(ValueError, match=r"SGD: slot 0.W holds \['m', 'step', 'v'\], "):
        SGD(momentum=0.9).load_state_dict(state)
    del state["iterations"]
    with pytest.raises(ValueError, match=r"state_dict is missing \['iterations'\]"):
        Adam().load_state_dict(state)


def test_get_and_config():
    sgd = optimizers.get("sgd", lr=0.01, momentum=0.9)
    assert isinstance(sgd, SGD) and sgd.momentum == 0.9
    assert isinstance(optimizers.get("Adam"), Adam)
    assert isinstance(optimizers.get("adamw"), AdamW)
    assert isinstance(optimizers.get("rmsprop"), RMSProp)
    assert optimizers.get(sgd) is sgd
    assert AdamW().weight_decay == 0.01
    assert repr(sgd) == (
        "SGD(lr=0.01, momentum=0.9, nesterov=False, weight_decay=0.0, clipnorm=None)"
    )
    with pytest.raises(ValueError, match=r"unknown optimizer 'adagrad', expected one"):
        optimizers.get("adagrad")
    with pytest.raises(TypeError, match=r"keyword arguments \['lr'\] given with the"):
        optimizers.get(sgd, lr=0.1)
    with pytest.raises(
        TypeError, match=r"expected an optimizer name or object, got int"
    ):
        optimizers.get(3)
