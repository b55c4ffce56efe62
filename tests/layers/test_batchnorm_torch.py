"""BatchNorm against torch BatchNorm2d / BatchNorm1d (torch 2.13 CPU), train and eval.

gamma and beta are copied into ``weight`` and ``bias``; each training step compares the
output, dx, dgamma and dbeta, and the running statistics after it; eval mode then
compares output and dx. Tolerances: float64 rtol 1e-10 / atol 1e-12 (only summation
order differs); float32 rtol 1e-4 / atol 1e-5 (the training dx subtracts two sums of the
batch, which loses a few digits).
"""

import engine_modes
import numpy as np
import pytest
import torch

from cnnumpy.layers import BatchNorm


@pytest.fixture(autouse=True, params=engine_modes.modes("batchnorm"))
def engine_mode(request):
    """Every test once per mode: the engine, the book, each kernel forced."""
    with engine_modes.running(request.param):
        yield request.param


pytestmark = pytest.mark.torch

TOLERANCES = {
    np.float64: {"rtol": 1e-10, "atol": 1e-12},
    np.float32: {"rtol": 1e-4, "atol": 1e-5},
}


def assert_close(ours, theirs, dtype, what):
    theirs = theirs.detach().numpy()
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, err_msg=what, **TOLERANCES[dtype])


def make_pair(shape, dtype, momentum, rng):
    C = shape[1]
    ours = BatchNorm(momentum=momentum)
    ours.build(shape[1:])
    ours.astype(dtype)
    ours.params["gamma"][...] = rng.uniform(0.5, 1.5, C)
    ours.params["beta"][...] = rng.standard_normal(C)
    module = torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d
    theirs = module(C, eps=1e-5, momentum=momentum)
    theirs = theirs.to(torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.params["gamma"]))
        theirs.bias.copy_(torch.from_numpy(ours.params["beta"]))
    return ours, theirs


def step(ours, theirs, x, training, dtype, rng):
    theirs.train(training)
    theirs.zero_grad()
    y = ours.forward(x, training=training)
    dout = rng.standard_normal(y.shape).astype(dtype)
    dx = ours.backward(dout)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    yt.backward(torch.tensor(dout))
    assert_close(y, yt, dtype, "output")
    assert_close(dx, xt.grad, dtype, "dx")
    assert_close(ours.grads["gamma"], theirs.weight.grad, dtype, "dgamma")
    assert_close(ours.grads["beta"], theirs.bias.grad, dtype, "dbeta")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("shape", "momentum"),
    [
        ((4, 3, 5, 5), 0.1),  # BatchNorm2d
        ((2, 2, 3, 4), 0.5),
        ((1, 3, 4, 4), 0.1),
        ((8, 5), 0.1),  # BatchNorm1d on (N, F)
        ((3, 4, 6), 0.2),  # BatchNorm1d on (N, C, L)
    ],
)
def test_batchnorm_vs_torch(shape, momentum, dtype, rng):
    ours, theirs = make_pair(shape, dtype, momentum, rng)
    for _ in range(3):
        x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
        step(ours, theirs, x, training=True, dtype=dtype, rng=rng)
        assert_close(
            ours.state["running_mean"], theirs.running_mean, dtype, "running_mean"
        )
        assert_close(
            ours.state["running_var"], theirs.running_var, dtype, "running_var"
        )
    for _ in range(2):
        x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
        step(ours, theirs, x, training=False, dtype=dtype, rng=rng)
    assert_close(
        ours.state["running_mean"], theirs.running_mean, dtype, "eval keeps stats"
    )
