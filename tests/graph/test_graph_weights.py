"""A graph model's arrays: ``astype``, ``get_weights`` / ``set_weights`` and
``count_params`` (cnnumpy/model.py)."""

import graph_blocks
import numpy as np
import pytest

import cnnumpy
from cnnumpy import layers as L


def _float32_residual():
    cnnumpy.seed(0)
    x = cnnumpy.Input((3, 6, 6))
    h = L.BatchNorm()(L.Conv2D(4, 3, padding=1)(x))
    y = L.ReLU()(L.Add()([h, L.Conv2D(4, 1)(x)]))
    return cnnumpy.Model(x, L.Dense(5)(L.GlobalAvgPool2D()(y)))


def _arrays(model):
    for layer in model.layers:
        yield from layer.params.values()
        yield from layer.grads.values()
        yield from layer.state.values()


def test_a_graph_of_float32_layers_is_float32_and_astype_converts_everything():
    model = _float32_residual()
    assert model.dtype == np.float32
    assert {a.dtype for a in _arrays(model)} == {np.dtype(np.float32)}
    model.compile("adam", "cross_entropy")
    x = np.random.default_rng(0).standard_normal((4, 3, 6, 6))
    model.train_on_batch(x, np.arange(4))
    assert model.astype("float64") is model and model.dtype == np.float64
    assert {a.dtype for a in _arrays(model)} == {np.dtype(np.float64)}
    slots = model.optimizer.slots
    assert {v.dtype for s in slots.values() for v in s.values()} == {np.dtype("f8")}
    assert model.predict(x).dtype == np.float64
    assert model.forward(x.astype(np.float32)).dtype == np.float64
    model.astype(np.float32)
    assert {a.dtype for a in _arrays(model)} == {np.dtype(np.float32)}
    assert model.predict(x).dtype == np.float32


def test_layers_made_in_float64_make_a_float64_model_and_mixed_ones_float32():
    x = cnnumpy.Input((3,))
    dense = L.Dense(2)
    dense.astype("float64")
    assert cnnumpy.Model(x, dense(x)).dtype == np.float64
    x = cnnumpy.Input((3,))
    first, second = L.Dense(2), L.Dense(2)
    first.astype("float64")
    model = cnnumpy.Model(x, second(first(x)))
    assert model.dtype == np.float32
    assert first.params["W"].dtype == second.params["W"].dtype == np.float32


def test_astype_float64_keeps_the_values():
    model = _float32_residual()
    x = np.random.default_rng(1).standard_normal((2, 3, 6, 6)).astype(np.float32)
    before = model.forward(x)
    model.astype("float64")
    np.testing.assert_allclose(model.forward(x), before, rtol=1e-5, atol=1e-6)


def test_get_weights_holds_params_and_state_as_copies():
    model = graph_blocks.residual("conv")
    weights = model.get_weights()
    assert len(weights) == len(model.layers)
    for layer, saved in zip(model.layers, weights, strict=True):
        assert set(saved) == set(layer.params) | set(layer.state)
        for key, value in saved.items():
            stored = {**layer.params, **layer.state}[key]
            np.testing.assert_array_equal(value, stored)
            assert value is not stored and not np.shares_memory(value, stored)
    bn = next(j for j, la in enumerate(model.layers) if isinstance(la, L.BatchNorm))
    assert {"gamma", "beta", "running_mean", "running_var"} == set(weights[bn])
    weights[0]["W"][...] = 0.0  # a copy: the model does not change
    assert np.abs(model.layers[0].params["W"]).max() > 0


def test_set_weights_round_trip_gives_identical_predictions():
    source = graph_blocks.residual("conv", seed=0)
    graph_blocks.randomise(source)
    target = graph_blocks.residual("conv", seed=1)
    x = np.random.default_rng(2).standard_normal((3, 3, 6, 6))
    assert not np.array_equal(source.forward(x), target.forward(x))
    arrays = [id(a) for layer in target.layers for a in layer.params.values()]
    target.set_weights(source.get_weights())
    np.testing.assert_array_equal(target.forward(x), source.forward(x))
    # in place: the optimiser's references stay valid
    assert arrays == [id(a) for layer in target.layers for a in layer.params.values()]
    for a, b in zip(target.get_weights(), source.get_weights(), strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_set_weights_refuses_other_architectures():
    model = graph_blocks.residual("conv")
    weights = model.get_weights()
    with pytest.raises(
        ValueError,
        match=rf"set_weights: expected {len(weights)} "
        rf"layers, got {len(weights) - 1}",
    ):
        model.set_weights(weights[:-1])
    other = graph_blocks.residual("conv", F=6).get_weights()
    with pytest.raises(
        ValueError,
        match=r"set_weights: Conv2D\(4, 3, padding=1, "
        r"name='conv1'\) W must have shape \(4, 3, 3, 3\), got "
        r"\(6, 3, 3, 3\)",
    ):
        model.set_weights(other)


@pytest.mark.parametrize("make", ["residual", "inception", "resnet_like"])
def test_count_params_is_the_sum_over_layers(make):
    model = getattr(graph_blocks, make)()
    per_layer = [layer.count_params() for layer in model.layers]
    assert model.count_params() == sum(per_layer)
    sizes = sum(v.size for layer in model.layers for v in layer.params.values())
    assert model.count_params() == sizes  # running statistics are not parameters


def test_count_params_of_the_residual_block_by_hand():
    model = graph_blocks.residual("conv", C=3, F=4, K=5)
    conv1, bn, conv2 = 3 * 4 * 9 + 4, 2 * 4, 4 * 4 * 9 + 4
    short, fc = 3 * 4 + 4, 4 * 5 + 5
    assert model.count_params() == conv1 + bn + conv2 + bn + short + fc == 317
