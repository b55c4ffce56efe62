"""The executor runs a max-pool before the ReLU/LeakyReLU preceding it: same numbers."""

import numpy as np
import pytest

import cnnumpy
from cnnumpy.engine.executor import execution_order
from cnnumpy.layers import (
    AvgPool2D,
    Conv1D,
    Conv2D,
    Dense,
    Flatten,
    LeakyReLU,
    MaxPool1D,
    MaxPool2D,
    ReLU,
    Tanh,
)

pytestmark = pytest.mark.usefixtures("engine_on")  # off, the order is the layers'


def layer_by_layer(model, x, dout):
    """The plain order: every layer in turn, then backward in reverse."""
    out = x
    for layer in model.layers:
        out = layer.forward(out, training=True)
    grads = dout
    for layer in reversed(model.layers):
        grads = layer.backward(grads)
    return out, [
        {k: g.copy() for k, g in layer.grads.items()} for layer in model.layers
    ]


@pytest.mark.parametrize("x_kind", ["normal", "ties"])
def test_swapped_order_gives_identical_outputs_and_gradients(x_kind):
    cnnumpy.seed(0)
    model = cnnumpy.Sequential(
        [
            Conv2D(4, 3, padding=1),
            ReLU(),
            MaxPool2D(2),
            Conv2D(6, 3, padding=1),
            LeakyReLU(0.1),
            MaxPool2D(3, stride=2),
            Flatten(),
            Dense(5),
        ],
        input_shape=(2, 12, 12),
    ).astype(np.float64)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, 12, 12))
    if x_kind == "ties":  # many equal values, and whole windows below zero
        x = np.round(x) - 1.0
    assert execution_order(model.layers) == [0, 2, 1, 3, 5, 4, 6, 7]
    out = model.executor.forward(x, training=True)
    dout = rng.standard_normal(out.shape)
    model.executor.backward(dout)
    fast = [{k: g.copy() for k, g in layer.grads.items()} for layer in model.layers]
    plain_out, plain = layer_by_layer(model, x, dout)
    np.testing.assert_array_equal(out, plain_out)
    # same values; a GEMM may round the last bit differently on differently aligned data
    for a, b in zip(fast, plain, strict=True):
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-13, atol=1e-15)


def test_which_pairs_are_swapped():
    assert execution_order([Conv1D(2, 3), ReLU(), MaxPool1D(2)]) == [0, 2, 1]
    # not monotone, not a max-pool, or the first layer: left alone
    assert execution_order([Conv2D(2, 3), LeakyReLU(-0.5), MaxPool2D(2)]) == [0, 1, 2]
    assert execution_order([Conv2D(2, 3), ReLU(), AvgPool2D(2)]) == [0, 1, 2]
    assert execution_order([Conv2D(2, 3), Tanh(), MaxPool2D(2)]) == [0, 1, 2]
    assert execution_order([ReLU(), MaxPool2D(2), Flatten()]) == [0, 1, 2]
