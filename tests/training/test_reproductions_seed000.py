"""Seed 000's CIFAR-10 reproduction: the report's network, its update, its quick run.

The network (``zoo.seed000_cifar``) is checked layer by layer against the report's
list; the optimiser options of ``benchmarks/reproductions/seed000.py`` are checked
against the report's own update, computed here by hand from its code (``back`` of
FullyConnected and Convolutional), over two steps so that the momentum terms count.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

import cnnumpy
from cnnumpy import zoo
from cnnumpy.layers import Conv2D, Dense, Flatten, LeakyReLU, MaxPool2D

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"
ALPHA, ETA, EPSILON, B = 0.01, 0.9, 1e-4, 5


@pytest.fixture
def seed000(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from reproductions import seed000

    return seed000


# -- the network --------------------------------------------------------------------
def test_layers_shapes_and_count_are_the_reports():
    model = zoo.get("seed000_cifar")
    kinds = [type(layer) for layer in model.layers]
    block = [Conv2D, LeakyReLU, MaxPool2D]
    assert kinds == block * 3 + [Flatten, Dense]
    shapes, shape = [], (3, 32, 32)
    for layer in model.layers:
        shape = layer.output_shape(shape)
        shapes.append(shape)
    # the report's IN 3x32x32, RELU 16x32x32, POOL 16x16x16, ..., POOL 20x4x4, FC 10
    assert shapes[0::3][:3] == [(16, 32, 32), (20, 16, 16), (20, 8, 8)]
    assert shapes[2::3][:3] == [(16, 16, 16), (20, 8, 8), (20, 4, 4)]
    assert shapes[-2:] == [(320,), (10,)]
    for conv in model.layers[0:9:3]:
        assert conv.kernel_size == (5, 5) and conv.stride == (1, 1)
        assert conv.padding == 2
    assert [layer.name for layer in model.layers if layer.params] == [
        "conv1",
        "conv2",
        "conv3",
        "fc",
    ]
    assert model.count_params() == 22_466 == zoo.seed_cifar().count_params()
    assert "seed000_cifar" in zoo.MODELS


def test_relu_is_the_reports_leaky_one():
    model = zoo.seed000_cifar()
    relus = [layer for layer in model.layers if isinstance(layer, LeakyReLU)]
    assert len(relus) == 3 and all(r.alpha == 0.01 for r in relus)
    x = np.array([[-3.0, -0.5, 0.0, 2.0]])
    # the report's front: np.maximum(x, 0.01 * x)
    np.testing.assert_allclose(relus[0].forward(x), np.maximum(x, 0.01 * x), rtol=0)


def test_initialisers_are_the_reports():
    cnnumpy.seed(0)
    model = zoo.seed000_cifar()  # float32, as every zoo model is built
    convs = [layer for layer in model.layers if isinstance(layer, Conv2D)]
    (fc,) = [layer for layer in model.layers if isinstance(layer, Dense)]
    for conv in convs:
        config = conv.get_config()
        assert config["kernel_initializer"] == "seed000_conv"
        assert config["bias_initializer"] == "seed000_conv_bias"
    config = fc.get_config()
    assert config["kernel_initializer"] == config["bias_initializer"] == "seed000_fc"
    # D1*H1*W1 is the size of each layer's whole input
    for conv, n_in in zip(convs, (3 * 32 * 32, 16 * 16 * 16, 20 * 8 * 8), strict=True):
        assert conv.params["b"].dtype == np.float32
        np.testing.assert_allclose(conv.params["b"], 1 / np.sqrt(n_in), rtol=1e-7)
        # randn / sqrt(n_in): 1,200 to 10,000 draws, std within 10 %
        assert conv.params["W"].std() == pytest.approx(1 / np.sqrt(n_in), rel=0.1)
    assert fc.params["W"].std() == pytest.approx(0.01 / np.sqrt(320), rel=0.1)
    assert 0 < np.abs(fc.params["b"]).max() < 5 * 0.01 / np.sqrt(320)


def test_seed_cifar_docstring_lists_its_departures():
    doc = zoo.seed_cifar.__doc__
    for word in ("max(x, 0.01 x)", "He normal", "ones / sqrt", "seed000_sgd"):
        assert word in doc


# -- the update ---------------------------------------------------------------------
def test_options_follow_the_derivation(seed000):
    model = seed000.build()
    options = model.optimizer.param_options(model.layers)
    for index, hw in zip((0, 3, 6), (32 * 32, 16 * 16, 8 * 8), strict=True):
        w, b = options[f"{index}.W"], options[f"{index}.b"]
        assert (w.lr, w.momentum, w.weight_decay) == pytest.approx(
            (ALPHA / hw, ALPHA * ETA, EPSILON * hw), rel=1e-12
        )
        assert (b.lr, b.momentum, b.weight_decay) == pytest.approx(
            (ALPHA / hw, ETA, 0.0), rel=1e-12
        )
    w, b = options["10.W"], options["10.b"]
    assert (w.lr, w.momentum, w.weight_decay) == pytest.approx(
        (ALPHA, ETA, EPSILON / B), rel=1e-12
    )
    assert (b.lr, b.momentum, b.weight_decay) == (ALPHA, ETA, 0.0)


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def reports_step(model, x, t, deltas):
    """The report's update of every parameter, from its ``back`` code; returns the
    new weights and updates ``deltas`` (its ``delta`` / ``delta_bias``) in place.

    Its error terms are ``term = t - y`` per example (not divided by B), so the sum
    over the batch of ``term * input`` is ``-B`` times cnnumpy's mean-loss gradient;
    for the FC layer it is also computed here from its own term, as the code does.
    """
    logits = model.forward(x, training=True)
    term = t - softmax(logits)  # the report's Softmax.loss: term = expect - out
    model.backward(-term / B)  # dE/dlogits of the mean loss, to get the grads
    new = {}
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Dense):
            h = _fc_input(model, x)
            summed = np.einsum("bi,bj->ij", h, term)  # Σ_b y_k term_b, (320, 10)
            np.testing.assert_allclose(summed, -B * layer.grads["W"], rtol=1e-10)
            w = layer.params["W"]
            deltas[i, "W"] = ALPHA / B * (summed - EPSILON * w) + ETA * deltas[i, "W"]
            deltas[i, "b"] = ALPHA / B * term.sum(axis=0) + ETA * deltas[i, "b"]
        elif isinstance(layer, Conv2D):
            _, H, W = layer.output_shape(layer.input_shape)
            summed = -B * layer.grads["W"]  # the report's `delta` before scaling
            term_sum = -B * layer.grads["b"]  # np.sum(self.term, axis=(3, 2, 0))
            w = layer.params["W"]
            deltas[i, "W"] = ALPHA * (
                summed / (H * W * B) + ETA * deltas[i, "W"] - EPSILON * w
            )
            deltas[i, "b"] = ALPHA / (H * W * B) * term_sum + ETA * deltas[i, "b"]
        else:
            continue
        for key in ("W", "b"):
            new[i, key] = layer.params[key] + deltas[i, key]
    return new


def _fc_input(model, x):
    """What the FC layer sees: the output of every layer before it."""
    h = x
    for layer in model.layers[:-1]:
        h = layer.forward(h)
    return h


def test_optimizer_gives_the_reports_update_in_float64(seed000):
    model = seed000.build()
    rng = np.random.default_rng(0)
    deltas = {
        (i, key): np.zeros_like(p)
        for i, layer in enumerate(model.layers)
        for key, p in layer.params.items()
    }
    for _ in range(2):  # the second step checks η Δ(n-1) (and α η Δ(n-1) for convs)
        x = rng.integers(0, 256, (B, 3, 32, 32)).astype(np.float64)  # raw pixels
        labels = rng.integers(0, 10, B)
        expected = reports_step(model, x, np.eye(10)[labels], deltas)
        model.train_on_batch(x, labels)
        for (i, key), value in expected.items():
            got = model.layers[i].params[key]
            assert got.dtype == np.float64
            # two float64 forms of one sum: equal to rounding
            np.testing.assert_allclose(got, value, rtol=1e-10, atol=1e-15)
    assert any(np.abs(d).max() > 0 for d in deltas.values())


# -- the run ------------------------------------------------------------------------
@pytest.fixture
def cifar_data(monkeypatch):
    if "CNNUMPY_DATA" not in os.environ:
        if not (SHARED_DATA / "cifar-10-python.tar.gz").exists():
            pytest.skip("CIFAR-10 not found: set CNNUMPY_DATA")
        monkeypatch.setenv("CNNUMPY_DATA", str(SHARED_DATA))


def test_quick_run_learns_and_prints_seconds_per_1000(seed000, cifar_data, capsys):
    result = seed000.run_cifar(quick=True)  # 2,000 images (~2 s) and 1,000 tests
    out = capsys.readouterr().out
    per_1000 = result["seconds_per_1000"]
    # printed to 2 decimals, returned to 3: compare the two within their rounding
    printed = re.search(r"seconds per 1000 training examples: ([\d.]+)", out)
    assert printed and float(printed.group(1)) == pytest.approx(per_1000, abs=0.0051)
    assert "364.2 / 78.3 / 62 s" in out and "(estimated from this rate)" in out
    assert per_1000 > 0 and result["full_pass_minutes"] == pytest.approx(
        per_1000 * 50 / 60, rel=0.01, abs=0.01
    )
    assert result["settings"]["train"] == 2_000 and result["settings"]["test"] == 1_000
    # chance is 10 %; 1,000 test images put 15 % five standard deviations above it
    assert 0.15 < result["accuracy"] <= 1
    assert "seed(0)" in result["differences"] and "JPEG" in result["differences"]
