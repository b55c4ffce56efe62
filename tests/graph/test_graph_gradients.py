"""Graph backward passes (cnnumpy/graph.py run_backward, the executor's backward)
against centred finite differences of the whole model, in float64: a tensor read by
several layers gets the sum of their gradients, and so does one read twice by the
same layer; several inputs and several outputs.

Tolerances: ``rtol=1e-5, atol=1e-7`` (h = 1e-6; BatchNorm in training mode divides
by a batch standard deviation, which costs a digit or two of the difference).
"""

import engine_modes
import graph_blocks
import numpy as np
import pytest

import cnnumpy
from cnnumpy import layers as L
from cnnumpy.validation import Arrays

FD = {"rtol": 1e-5, "atol": 1e-7}


@pytest.fixture(autouse=True, params=engine_modes.modes())
def engine_mode(request):
    with engine_modes.running(request.param):
        yield request.param


def check_model(model, x, training=True, seed=0, executor=False):
    """model.backward (or the executor's) against finite differences, for the input
    and every parameter."""
    rng = np.random.default_rng(seed)
    if executor:  # the executor takes checked batches: Arrays for several inputs
        batch = Arrays(x) if isinstance(x, list) else x
        out = model.executor.forward(batch, training=training)
    else:
        out = model.forward(x, training=training)
    outs = out if isinstance(out, list) else [out]
    douts = [rng.standard_normal(o.shape) for o in outs]
    dout = douts if isinstance(out, list) else douts[0]
    dx = (model.executor if executor else model).backward(dout)
    analytic = {
        (j, k): g.copy()
        for j, layer in enumerate(model.layers)
        for k, g in layer.grads.items()
    }
    num_dx, num_params = graph_blocks.model_gradients(model, x, dout, training)
    dxs = dx if isinstance(x, list) else [dx]
    nums = num_dx if isinstance(x, list) else [num_dx]
    for k, (a, n) in enumerate(zip(dxs, nums, strict=True)):
        assert a is not None and a.shape == n.shape, f"dx[{k}]"
        np.testing.assert_allclose(a, n, err_msg=f"dx[{k}]", **FD)
    assert set(analytic) == set(num_params)
    for key, num in num_params.items():
        np.testing.assert_allclose(analytic[key], num, err_msg=str(key), **FD)
    return dx


def _float64(inputs, outputs):
    return cnnumpy.Model(inputs, outputs).astype("float64")


def test_an_input_read_by_two_dense_layers_gets_the_sum_of_their_gradients():
    cnnumpy.seed(0)
    x = cnnumpy.Input((5,))
    a, b = L.Dense(3, name="a"), L.Dense(3, name="b")
    model = _float64(x, L.Add()([a(x), b(x)]))
    xs = np.random.default_rng(1).standard_normal((4, 5))
    dx = check_model(model, xs)
    dout = np.random.default_rng(0).standard_normal((4, 3))
    wa, wb = a.params["W"], b.params["W"]
    np.testing.assert_allclose(dx, dout @ wa.T + dout @ wb.T, rtol=1e-13)


def test_a_hidden_value_read_by_three_layers():
    cnnumpy.seed(0)
    x = cnnumpy.Input((2, 5, 5))
    h = L.Conv2D(3, 3, padding=1)(x)
    y = L.Concatenate()([L.ReLU()(h), L.Tanh()(h), h])
    model = _float64(x, L.Dense(4)(L.Flatten()(y)))
    check_model(model, np.random.default_rng(2).standard_normal((3, 2, 5, 5)))


@pytest.mark.parametrize("merge", [L.Add, L.Multiply, L.Concatenate])
def test_one_tensor_given_twice_to_one_layer(merge):
    """Add([h, h]) = 2h, Multiply([h, h]) = h^2, Concatenate([h, h]): the two
    gradients the layer returns for h are both added."""
    cnnumpy.seed(0)
    x = cnnumpy.Input((4,))
    h = L.Dense(3)(x)
    model = _float64(x, L.Dense(2)(merge()([h, h])))
    check_model(model, np.random.default_rng(3).standard_normal((5, 4)))


def test_an_output_also_read_by_a_later_layer():
    """dL/dh = dL/d(output 0) + what comes back through the second head."""
    cnnumpy.seed(0)
    x = cnnumpy.Input((4,))
    h = L.Dense(3, name="first")(x)
    model = _float64(x, [h, L.Dense(2, name="second")(L.Tanh()(h))])
    dx = check_model(model, np.random.default_rng(4).standard_normal((3, 4)))
    assert dx.shape == (3, 4)


@pytest.mark.parametrize("kind", ["identity", "conv"])
def test_residual_block(kind):
    model = graph_blocks.residual(kind, C=4 if kind == "identity" else 3)
    graph_blocks.randomise(model)
    x = np.random.default_rng(5).standard_normal((3, *model.input_shape))
    check_model(model, x, training=True)
    check_model(model, x, training=False)


def test_inception_block_through_the_executor():
    model = graph_blocks.inception()
    graph_blocks.randomise(model)
    x = np.random.default_rng(6).standard_normal((2, *model.input_shape))
    check_model(model, x, executor=True)


def test_resnet_like_model_with_relu_pool_chains_through_the_executor():
    """The executor swaps ReLU / MaxPool pairs (engine on): same gradients."""
    model = graph_blocks.resnet_like()
    graph_blocks.randomise(model)
    x = np.random.default_rng(7).standard_normal((2, *model.input_shape))
    check_model(model, x, executor=True)


def test_two_inputs_and_two_outputs():
    cnnumpy.seed(0)
    image, vector = cnnumpy.Input((1, 4, 4)), cnnumpy.Input((3,))
    h = L.Flatten()(L.Conv2D(2, 3)(image))  # (8,)
    v = L.Dense(4)(vector)
    both = L.Concatenate()([h, v])  # (12,)
    gate = L.Sigmoid()(L.Dense(12)(vector))
    heads = [L.Dense(3)(both), L.Dense(2)(L.Multiply()([both, gate]))]
    model = _float64([image, vector], heads)
    rng = np.random.default_rng(8)
    xs = [rng.standard_normal((3, 1, 4, 4)), rng.standard_normal((3, 3))]
    dxs = check_model(model, xs)
    assert [d.shape for d in dxs] == [(3, 1, 4, 4), (3, 3)]
    check_model(model, xs, executor=True)


def test_executor_and_model_backward_agree_on_a_fan_out():
    model = graph_blocks.residual("identity", C=4)
    graph_blocks.randomise(model)
    x = np.random.default_rng(9).standard_normal((3, *model.input_shape))
    dout = np.random.default_rng(10).standard_normal((3, 5))
    model.forward(x, training=True)
    dx_model = model.backward(dout)
    grads_model = [{k: g.copy() for k, g in la.grads.items()} for la in model.layers]
    model.executor.forward(x, training=True)
    dx_exec = model.executor.backward(dout)
    np.testing.assert_allclose(dx_exec, dx_model, rtol=1e-12, atol=1e-14)
    for la, want in zip(model.layers, grads_model, strict=True):
        for k, g in want.items():
            np.testing.assert_allclose(la.grads[k], g, rtol=1e-12, atol=1e-14)
