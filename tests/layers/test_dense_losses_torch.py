"""Dense, activations and losses against PyTorch (torch 2.13 CPU).

Our weights are copied into the torch twin (torch's Linear stores ``weight`` as
(units, in), our ``W`` is (in, units): ``weight = W.T``). Outputs, dx, dW and db are
compared shape first, then with ``assert_allclose``. Tolerances: float64 rtol 1e-10 /
atol 1e-12 (only the summation order differs); float32 rtol 1e-5 / atol 1e-6 (a few ulps
of accumulated rounding).
"""

import numpy as np
import pytest
import torch

from cnnumpy import losses
from cnnumpy.layers import Dense, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh

pytestmark = pytest.mark.torch

TOLERANCES = {
    np.float64: {"rtol": 1e-10, "atol": 1e-12},
    np.float32: {"rtol": 1e-5, "atol": 1e-6},
}


def to_torch(a):
    return torch.tensor(a, requires_grad=True)


def assert_close(ours, theirs, dtype, what):
    theirs = theirs.detach().numpy()
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, err_msg=what, **TOLERANCES[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "batch, in_features, units", [(1, 5, 3), (8, 12, 7), (3, 1, 1)]
)
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_vs_torch_linear(dtype, batch, in_features, units, use_bias, rng):
    layer = Dense(units, use_bias=use_bias, kernel_initializer="glorot_uniform")
    layer.build((in_features,))
    layer.astype(dtype)
    if use_bias:
        layer.params["b"][...] = rng.standard_normal(units)
    x = rng.standard_normal((batch, in_features)).astype(dtype)
    dout = rng.standard_normal((batch, units)).astype(dtype)

    linear = torch.nn.Linear(
        in_features, units, bias=use_bias, dtype=torch.from_numpy(x).dtype
    )
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(layer.params["W"].T.copy()))
        if use_bias:
            linear.bias.copy_(torch.from_numpy(layer.params["b"]))
    x_t = to_torch(x)
    y_t = linear(x_t)
    y_t.backward(torch.from_numpy(dout))

    y = layer.forward(x, training=True)
    dx = layer.backward(dout)
    assert_close(y, y_t, dtype, "out")
    assert_close(dx, x_t.grad, dtype, "dx")
    assert_close(layer.grads["W"], linear.weight.grad.T, dtype, "dW")
    if use_bias:
        assert_close(layer.grads["b"], linear.bias.grad, dtype, "db")


ACTIVATION_TWINS = [
    pytest.param(ReLU, torch.nn.ReLU, id="ReLU"),
    pytest.param(
        lambda: LeakyReLU(0.2), lambda: torch.nn.LeakyReLU(0.2), id="LeakyReLU"
    ),
    pytest.param(Sigmoid, torch.nn.Sigmoid, id="Sigmoid"),
    pytest.param(Tanh, torch.nn.Tanh, id="Tanh"),
    pytest.param(Softmax, lambda: torch.nn.Softmax(dim=-1), id="Softmax"),
    pytest.param(
        lambda: Softmax(axis=1), lambda: torch.nn.Softmax(dim=1), id="Softmax-axis1"
    ),
]


@pytest.mark.parametrize("make_ours, make_torch", ACTIVATION_TWINS)
@pytest.mark.parametrize("shape", [(1, 6), (4, 5), (2, 3, 4, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_vs_torch(make_ours, make_torch, shape, dtype, rng):
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    x_t = to_torch(x)
    y_t = make_torch()(x_t)
    y_t.backward(torch.from_numpy(dout))

    layer = make_ours()
    y = layer.forward(x, training=True)
    dx = layer.backward(dout)
    assert_close(y, y_t, dtype, "out")
    assert_close(dx, x_t.grad, dtype, "dx")


def torch_loss(module, z, t):
    """Value and dL/dz of a torch loss module."""
    z_t = to_torch(z)
    value = module(z_t, torch.from_numpy(t))
    value.backward()
    return value, z_t.grad


def compare_loss(ours, module, z, t, t_torch, dtype):
    value = ours(z, t)
    value_t, grad_t = torch_loss(module, z, t_torch)
    np.testing.assert_allclose(value, value_t.item(), **TOLERANCES[dtype])
    assert_close(ours.backward(), grad_t, dtype, "dL/dz")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (6, 3), (2, 3, 4, 4)])
def test_mse_vs_torch(dtype, shape, rng):
    z = rng.standard_normal(shape).astype(dtype)
    t = rng.standard_normal(shape).astype(dtype)
    compare_loss(losses.MSE(), torch.nn.MSELoss(reduction="mean"), z, t, t, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N, K", [(1, 2), (7, 10)])
def test_cross_entropy_ids_vs_torch(dtype, N, K, rng):
    z = (3 * rng.standard_normal((N, K))).astype(dtype)
    ids = rng.integers(0, K, size=N)
    compare_loss(losses.CrossEntropy(), torch.nn.CrossEntropyLoss(), z, ids, ids, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N, K", [(1, 2), (7, 10)])
def test_cross_entropy_probabilities_vs_torch(dtype, N, K, rng):
    z = (3 * rng.standard_normal((N, K))).astype(dtype)
    t = rng.random((N, K)).astype(dtype)
    t /= t.sum(axis=1, keepdims=True)
    compare_loss(losses.CrossEntropy(), torch.nn.CrossEntropyLoss(), z, t, t, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1,), (8,), (8, 1), (4, 3)])
def test_bce_with_logits_vs_torch(dtype, shape, rng):
    z = (5 * rng.standard_normal(shape)).astype(dtype)
    t = rng.integers(0, 2, size=shape).astype(dtype)
    compare_loss(
        losses.BinaryCrossEntropy(), torch.nn.BCEWithLogitsLoss(), z, t, t, dtype
    )


def test_bce_column_targets_vs_torch(rng):
    """Logits (N, 1) with labels (N,): torch needs them reshaped, we accept both."""
    z = rng.standard_normal((5, 1))
    t = rng.integers(0, 2, size=5).astype(np.float64)
    compare_loss(
        losses.BinaryCrossEntropy(),
        torch.nn.BCEWithLogitsLoss(),
        z,
        t,
        t[:, None],
        np.float64,
    )
