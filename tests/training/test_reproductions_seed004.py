"""Seed 004's reproduction (benchmarks/reproductions/seed004.py): the activations'
properties are computed through cnnumpy's layers, and the training comparison runs
the notes' section 3 network with each activation."""

import math
import os
from pathlib import Path

import numpy as np
import pytest

from cnnumpy.layers import Conv2D, Dense, MaxPool2D

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"  # real MNIST beside the repo


@pytest.fixture
def seed004(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    if not os.environ.get("CNNUMPY_DATA") and (SHARED_DATA / "mnist").is_dir():
        monkeypatch.setenv("CNNUMPY_DATA", str(SHARED_DATA))
    from reproductions import seed004

    return seed004


def test_bounded_and_derivable_as_the_notes_say(seed004):
    table = {name: seed004.properties(name) for name in seed004.ACTIVATIONS}
    sigmoid, arctan = table["sigmoid"], table["arctan"]
    assert sigmoid["bounded"] and arctan["bounded"] and table["tanh"]["bounded"]
    assert not table["relu"]["bounded"] and not table["elu"]["bounded"]
    assert 0 <= sigmoid["range"][0] and sigmoid["range"][1] <= 1
    assert arctan["range"][1] == pytest.approx(math.atan(1000), abs=1e-4)
    assert arctan["range"][1] < math.pi / 2
    assert table["elu"]["range"][0] == pytest.approx(-1, abs=1e-4)  # -alpha
    # largest derivatives: s(1 - s) <= 1/4; 1 / (1 + x^2), 1 - tanh^2, ReLU, ELU <= 1
    assert sigmoid["max_slope"] == pytest.approx(0.25, abs=1e-6)
    for name in ("arctan", "tanh", "relu", "elu"):
        assert table[name]["max_slope"] == pytest.approx(1.0, abs=1e-6)
    # saturation at x = 5: arctan's tail is polynomial, 1/26; sigmoid's and tanh's
    # exponential
    assert arctan["slope_at_5"] == pytest.approx(1 / 26, rel=1e-3)
    assert sigmoid["slope_at_5"] == pytest.approx(
        math.exp(-5) / (1 + math.exp(-5)) ** 2, rel=1e-3
    )
    assert table["tanh"]["slope_at_5"] < sigmoid["slope_at_5"] < arctan["slope_at_5"]
    assert table["relu"]["slope_at_-5"] == 0 and table["relu"]["slope_at_5"] == 1
    for name, p in table.items():  # the backward pass is f', to finite differences
        assert p["fd_error"] < 1e-6, name


def test_the_notes_network_with_each_activation(seed004):
    for name, kind in seed004.ACTIVATIONS.items():
        model = seed004.notes_network(name)
        assert model.count_params() == 208 + 1_608 + 102_528 + 1_290
        assert sum(isinstance(layer, kind) for layer in model.layers) == 3
        shapes, shape = [], model.input_shape
        for layer in model.layers:
            shape = layer.output_shape(shape)
            if isinstance(layer, (Conv2D, MaxPool2D, Dense)):
                shapes.append(shape)
        assert shapes == [(8, 24, 24), (8, 20, 20), (8, 10, 10), (128,), (10,)]
        convs = [layer for layer in model.layers if isinstance(layer, Conv2D)]
        assert all(
            c.get_config()["kernel_initializer"] == "lecun_normal" for c in convs
        )
    # Escontrela's dense law, N(0, 0.01^2)
    w = seed004.dense_init((800, 128), np.random.default_rng(0))
    assert w.std() == pytest.approx(0.01, rel=0.02)


def test_quick_training_shows_the_sigmoid_stall(seed004):
    result = seed004.activations(True, train_images=1_000)
    runs = result["training"]
    assert set(runs) == set(seed004.ACTIVATIONS)
    assert result["settings"]["train_images"] == 1_000
    assert result["settings"]["optimizer"] == "SGD (no momentum)"
    for run in runs.values():
        assert len(run["loss_by_quarter"]) == 4
        assert all(math.isfinite(v) for v in run["loss_by_quarter"])
    # 32 steps of gradient descent: the sigmoid network has not left chance
    # (ln 10 = 2.30), the others have
    assert runs["sigmoid"]["final_train_loss"] > math.log(10) - 0.1
    for name in ("relu", "arctan", "tanh", "elu"):
        assert runs[name]["final_train_loss"] < 1.6, name
        assert runs[name]["loss_by_quarter"][-1] < runs[name]["loss_by_quarter"][0]
    assert result["order_by_final_loss"][-1] == "sigmoid"
