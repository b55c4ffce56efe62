"""What a graph model refuses or lets go: losses that do not fit its outputs, a layer
order that is not one, a graph layer added to a Sequential; and its layers are freed
with it."""

from __future__ import annotations

import gc
import weakref

import pytest

import cnnumpy
from cnnumpy import losses, zoo
from cnnumpy.layers import Add, Dense, ReLU
from cnnumpy.saving.checks import planned_tensors


def two_heads():
    x = cnnumpy.Input((4,))
    h = ReLU()(Dense(6)(x))
    return cnnumpy.Model(x, [Dense(3)(h), Dense(2)(h)])


def one_head():
    x = cnnumpy.Input((4,))
    return cnnumpy.Model(x, Dense(3)(ReLU()(Dense(6)(x))))


def test_compile_refuses_losses_that_do_not_fit_the_outputs():
    with pytest.raises(ValueError, match="1 output\\(s\\); expected one loss, got"):
        one_head().compile("sgd", losses.PerOutput(["mse"]))
    with pytest.raises(
        ValueError, match="expected 2 losses \\(one per output\\), got 3"
    ):
        two_heads().compile("sgd", ["mse", "mse", "mse"], loss_weights=[1, 1])
    with pytest.raises(
        ValueError, match="2 output\\(s\\); expected one loss per output"
    ):
        two_heads().compile("sgd", losses.PerOutput(["mse"]))
    with pytest.raises(ValueError, match="give a PerOutput its weights"):
        two_heads().compile(
            "sgd", losses.PerOutput(["mse", "mse"]), loss_weights=[1, 2]
        )
    with pytest.raises(ValueError, match="'per_output' needs its losses"):
        one_head().compile("sgd", "per_output")
    with pytest.raises(TypeError, match="cannot itself be a PerOutput"):
        losses.PerOutput([losses.PerOutput(["mse"]), "mse"])


def test_a_file_whose_loss_does_not_fit_loads_uncompiled(tmp_path):
    model = two_heads()
    model.compile("sgd", ["cross_entropy", "mse"])
    model.loss = losses.CrossEntropy()  # as a hand-edited file would say
    model.save(tmp_path / "m.safetensors")
    with pytest.warns(UserWarning, match="loaded without loss and metrics"):
        loaded = cnnumpy.load_model(tmp_path / "m.safetensors")
    assert loaded.loss is None


def test_layer_order_must_be_an_order_of_the_graph():
    x = cnnumpy.Input((4,))
    a, b = Dense(3), Dense(3)
    ha = a(x)
    out = Add()([ha, b(ha)])
    model = cnnumpy.Model(x, out, layer_order=[a, b, out_layer(out)])
    assert model.layers == [a, b, out_layer(out)]
    with pytest.raises(ValueError, match="layer 0 \\(Dense\\(3\\)\\) comes before"):
        cnnumpy.Model(x, out, layer_order=[b, a, out_layer(out)])
    with pytest.raises(ValueError, match="must list the graph's 3 layers once each"):
        cnnumpy.Model(x, out, layer_order=[a, b])
    with pytest.raises(ValueError, match=r"layer 1 \(Dense\(7\)\) leads to no output"):
        cnnumpy.Model(x, out, layer_order=[a, Dense(7), b, out_layer(out)])


def out_layer(tensor):
    return tensor.layer


def test_a_graph_layer_cannot_join_a_sequential():
    x = cnnumpy.Input((4,))
    dense = Dense(2)
    dense(x)
    with pytest.raises(ValueError, match="already used in a graph"):
        cnnumpy.Sequential([dense])


def test_a_graph_models_layers_are_freed_with_it():
    model = zoo.resnet8(input_shape=(3, 8, 8))
    first = weakref.ref(model.layers[0])
    del model
    gc.collect()
    assert first() is None


def test_merge_layers_plan_no_tensor():
    """A file may hold no tensor for an Add: it is known to have none (not a user's
    layer, whose tensors are checked only once built)."""
    x = cnnumpy.Input((4,))
    out = Add()([Dense(3)(x), Dense(3)(x)])
    graph_model = cnnumpy.Model(x, out)
    planned = planned_tensors(graph_model.layers, graph_model.get_config(), "test")
    assert not any(key.startswith("layers.2.") for key in planned)
    assert {"layers.0.W", "layers.1.W"} <= set(planned)
