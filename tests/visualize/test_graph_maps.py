"""The maps of a graph model (a residual block): Grad-CAM, saliency, feature maps.

Gradients are checked against centred finite differences in float64; a graph written
as a chain gives the same maps as the Sequential with the same weights.
"""

from __future__ import annotations

import numpy as np
import pytest

import cnnumpy
from cnnumpy import graph, zoo
from cnnumpy.layers import (
    Add,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    ReLU,
    Tanh,
)
from cnnumpy.rng import seed
from cnnumpy.sequential import Sequential
from cnnumpy.visualize import (
    feature_maps,
    grad_cam,
    grad_cam_target,
    occlusion,
    saliency,
)
from cnnumpy.visualize.maps import resize_bilinear


def residual_model() -> cnnumpy.Model:
    """conv-tanh, then a residual block (two branches meet in an Add), a dense head."""
    seed(5)
    x = cnnumpy.Input((2, 6, 6))
    h = Tanh()(Conv2D(3, 3, padding=1)(x))
    branch = BatchNorm()(Conv2D(3, 3, padding=1)(ReLU()(Conv2D(3, 3, padding=1)(h))))
    y = ReLU()(Add()([branch, h]))
    out = Dense(4)(Flatten()(Dropout(0.3)(y)))
    model = cnnumpy.Model(x, out).astype(np.float64)
    (bn,) = [layer for layer in model.layers if isinstance(layer, BatchNorm)]
    rng = np.random.default_rng(1)
    bn.state["running_mean"][...] = rng.normal(size=3)
    bn.state["running_var"][...] = rng.uniform(0.5, 2.0, size=3)
    return model


def run_with(model, x, target: int | None = None, value=None):
    """The model's output on ``x``, with layer ``target``'s output replaced by
    ``value`` (inference mode): the score as a function of that layer's maps."""
    values = {0: x}
    n = model.n_inputs
    for j, (layer, srcs) in enumerate(model.nodes):
        if j == target:
            values[n + j] = value
        else:
            args = graph.arguments(layer, values, srcs)
            values[n + j] = layer.forward(args, training=False)
    return values[model.output_ids[0]]


def numerical_gradient(f, a: np.ndarray, h: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(a)
    for idx in np.ndindex(*a.shape):
        step = np.zeros_like(a)
        step[idx] = h
        grad[idx] = (f(a + step) - f(a - step)) / (2 * h)
    return grad


def test_grad_cam_default_target_is_the_last_block_output():
    model = residual_model()
    target = grad_cam_target(model)
    assert isinstance(model.layers[target], Dropout)  # the last layer with maps
    resnet = zoo.resnet8()
    index = grad_cam_target(resnet)
    last = resnet.layers[index]
    (source,) = resnet.sources[index]
    assert isinstance(last, ReLU)
    assert isinstance(resnet.layers[source - 1], Add)
    with pytest.raises(ValueError, match=r"outputs \(4,\), not feature maps"):
        grad_cam_target(model, len(model.layers) - 1)


@pytest.mark.parametrize(
    "target", [1, 7]
)  # the tanh before the block; the block's ReLU
def test_grad_cam_of_a_graph_matches_numerical_gradients(target):
    model = residual_model()
    x = np.random.default_rng(4).standard_normal((2, 6, 6))
    label = 3
    values = {0: x[None]}
    for j, (layer, srcs) in enumerate(model.nodes[: target + 1]):
        args = graph.arguments(layer, values, srcs)
        values[1 + j] = layer.forward(args, training=False)
    A = values[1 + target]
    dA = numerical_gradient(lambda a: run_with(model, x[None], target, a)[0, label], A)
    weights = dA[0].mean(axis=(1, 2))
    cam = np.maximum(np.tensordot(weights, A[0], axes=1), 0)
    expected = np.maximum(resize_bilinear(cam, (6, 6)), 0)
    expected = expected / expected.max() if expected.max() > 0 else expected
    heat = grad_cam(model, x, label, layer=target)
    np.testing.assert_allclose(heat, expected, rtol=1e-6, atol=1e-8)


def test_saliency_of_a_graph_is_the_input_gradient():
    model = residual_model()
    x = np.random.default_rng(6).standard_normal((2, 6, 6))
    before = {k: v.copy() for k, v in model.layers[0].grads.items()}
    heat = saliency(model, x, 1)
    grad = numerical_gradient(lambda a: run_with(model, a[None])[0, 1], x)
    expected = np.abs(grad).sum(axis=0)
    np.testing.assert_allclose(heat, expected / expected.max(), rtol=1e-6, atol=1e-9)
    for key, value in before.items():  # the layers' grads are left as they were
        np.testing.assert_array_equal(model.layers[0].grads[key], value)


def test_a_chain_written_as_a_graph_gives_the_sequential_maps():
    def layers():
        return [Conv2D(3, 3), ReLU(), Conv2D(4, 3), Tanh(), Flatten(), Dense(3)]

    seed(2)
    stack = Sequential(layers(), input_shape=(1, 8, 8)).astype(np.float64)
    x_in = cnnumpy.Input((1, 8, 8))
    h = x_in
    for layer in layers():
        h = layer(h)
    chain = cnnumpy.Model(x_in, h).astype(np.float64)
    chain.set_weights(stack.get_weights())
    x = np.random.default_rng(3).standard_normal((1, 8, 8))
    for fn in (
        lambda m: feature_maps(m, x, 2),
        lambda m: saliency(m, x, 2),
        lambda m: grad_cam(m, x, 2, layer=2),
        lambda m: occlusion(m, x, 2, patch=3, stride=2),
    ):
        np.testing.assert_allclose(fn(chain), fn(stack), rtol=1e-12, atol=1e-12)


def test_grad_cam_on_resnet8_runs_and_keeps_the_weights():
    model = zoo.resnet8(input_shape=(3, 16, 16))
    x = np.random.default_rng(0).standard_normal((3, 16, 16)).astype(np.float32)
    weights = model.get_weights()
    heat = grad_cam(model, x, 4)
    assert heat.shape == (16, 16) and 0.0 <= heat.min() and heat.max() <= 1.0
    for saved, now in zip(weights, model.get_weights(), strict=True):
        for key in saved:
            np.testing.assert_array_equal(saved[key], now[key])


def test_maps_refuse_a_model_of_two_inputs():
    a, b = cnnumpy.Input((1, 4, 4)), cnnumpy.Input((1, 4, 4))
    out = Dense(2)(GlobalAvgPool2D()(Add()([a, b])))
    model = cnnumpy.Model([a, b], out)
    with pytest.raises(ValueError, match="one input and one output, got 2 inputs"):
        saliency(model, np.zeros((1, 4, 4)), 0)
