"""The book's dense, activations, batch normalisation and dropout.

Each function against PyTorch (float64: output and every gradient), float64 finite
differences, and the engine where one exists (``cnnumpy.engine.kernels``). Tolerances:
float64 rtol 1e-10 / atol 1e-12 against PyTorch and the engine (the same sums in
another order); finite differences rtol 1e-6 / atol 1e-8 (step 1e-6, centred).
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnumpy.engine import TABLES
from cnnumpy.engine.kernels import dense as engine_dense
from cnnumpy.textbook import activations as act
from cnnumpy.textbook import dense, dropout, normalization
from gradcheck import numerical_gradient

pytestmark = pytest.mark.torch
TOL = {"rtol": 1e-10, "atol": 1e-12}
FD = {"rtol": 1e-6, "atol": 1e-8}


def _t(a):
    return torch.tensor(a, requires_grad=True)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("N", [1, 5])
def test_book_dense(N, bias):
    rng = np.random.default_rng(0)
    x, W = rng.standard_normal((N, 6)), rng.standard_normal((6, 4))
    b = rng.standard_normal(4) if bias else None
    out, cache = dense.dense_forward(x, W, b)
    dout = rng.standard_normal(out.shape)
    dx, dW, db = dense.dense_backward(dout, cache)
    xt, Wt = _t(x), _t(W)
    bt = None if b is None else _t(b)
    yt = F.linear(xt, Wt.T, bt)
    yt.backward(torch.tensor(dout))
    pairs = [(out, yt), (dx, xt.grad), (dW, Wt.grad)]
    pairs += [] if b is None else [(db, bt.grad)]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours, theirs.detach().numpy(), **TOL)
    assert db is None if b is None else True
    fast_out, fast_cache = engine_dense.dense_forward(x, W, b)
    np.testing.assert_allclose(fast_out, out, **TOL)
    for mine, theirs in zip(
        engine_dense.dense_backward(dout, fast_cache), (dx, dW, db), strict=True
    ):
        assert (mine is None) == (theirs is None)
        if theirs is not None:
            np.testing.assert_allclose(mine, theirs, **TOL)
    assert dense.dense_backward(dout, cache, need_dx=False)[0] is None


ACTIVATIONS = {
    "relu": ((), F.relu),
    "leaky_relu": ((0.2,), lambda t: F.leaky_relu(t, 0.2)),
    "sigmoid": ((), torch.sigmoid),
    "tanh": ((), torch.tanh),
    "softmax": ((1,), lambda t: torch.softmax(t, 1)),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_book_activation(name):
    args, torch_fn = ACTIVATIONS[name]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 5)) * 3
    x[0, 0, :2] = [0.0, -0.0]  # ReLU's kink: the gradient there is 0, as PyTorch's
    fwd, bwd = getattr(act, f"{name}_forward"), getattr(act, f"{name}_backward")
    out, cache = fwd(x, *args)
    dout = rng.standard_normal(out.shape)
    dx = bwd(dout, cache)
    xt = _t(x)
    yt = torch_fn(xt)
    yt.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, yt.detach().numpy(), **TOL)
    np.testing.assert_allclose(dx, xt.grad.numpy(), **TOL)
    for kernel in TABLES[name].kernels:  # every engine kernel of the operation
        fast_out, fast_cache = kernel.forward(x, *args)
        np.testing.assert_allclose(fast_out, out, **TOL)
        np.testing.assert_allclose(kernel.backward(dout, fast_cache), dx, **TOL)
    if name not in ("relu", "leaky_relu"):  # smooth: finite differences too
        numeric = numerical_gradient(lambda: fwd(x, *args)[0], x, dout)
        np.testing.assert_allclose(dx, numeric, **FD)


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5, 2), (2, 3, 7)])
@pytest.mark.parametrize("training", [True, False])
def test_book_batchnorm(shape, training):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape) * 2 + 1
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    mean, var = (
        (None, None) if training else (rng.standard_normal(3), rng.random(3) + 0.5)
    )
    out, cache = normalization.batchnorm_forward(x, gamma, beta, 1e-5, mean, var)
    dout = rng.standard_normal(out.shape)
    dx, dgamma, dbeta = normalization.batchnorm_backward(dout, cache)
    xt, gt, bt = _t(x), _t(gamma), _t(beta)
    rm = torch.zeros(3, dtype=torch.float64) if training else torch.tensor(mean)
    rv = torch.ones(3, dtype=torch.float64) if training else torch.tensor(var)
    yt = F.batch_norm(xt, rm, rv, gt, bt, training=training, eps=1e-5)
    yt.backward(torch.tensor(dout))
    for ours, theirs in ((out, yt), (dx, xt.grad), (dgamma, gt.grad), (dbeta, bt.grad)):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), **TOL)
    if training:  # the batch statistics PyTorch folds into its running ones
        m = x.size // 3
        np.testing.assert_allclose(rm.numpy(), 0.1 * cache["mean"], **TOL)
        unbiased = cache["var"] * m / (m - 1)
        np.testing.assert_allclose(rv.numpy(), 0.9 + 0.1 * unbiased, **TOL)

    def f():
        return normalization.batchnorm_forward(x, gamma, beta, 1e-5, mean, var)[0]

    for value, analytic in ((x, dx), (gamma, dgamma), (beta, dbeta)):
        np.testing.assert_allclose(analytic, numerical_gradient(f, value, dout), **FD)
    for kernel in TABLES["batchnorm"].kernels:  # every engine kernel
        fast_out, fast_cache = kernel.forward(x, gamma, beta, 1e-5, mean, var)
        np.testing.assert_allclose(fast_out, out, **TOL)
        for key in ("mean", "var", "m", "training"):
            np.testing.assert_allclose(fast_cache[key], cache[key], **TOL)
        fast = kernel.backward(dout, fast_cache)
        for ours, book in zip(fast, (dx, dgamma, dbeta), strict=True):
            np.testing.assert_allclose(ours, book, **TOL)
        assert kernel.backward(dout, fast_cache, need_dx=False)[0] is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_book_dropout(dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((200, 50)).astype(dtype)
    mask = dropout.dropout_mask(x.shape, 0.3, np.random.default_rng(4), dtype)
    assert mask.dtype == dtype
    assert set(np.unique(mask)) == {dtype(0), dtype(1) / dtype(0.7)}
    assert abs((mask == 0).mean() - 0.3) < 0.02  # 10,000 draws: 4.6 sigma
    out, cache = dropout.dropout_forward(x, 0.3, np.random.default_rng(4))
    np.testing.assert_array_equal(cache, mask)  # the same draws
    np.testing.assert_array_equal(out, x * mask)
    dout = rng.standard_normal(x.shape).astype(dtype)
    np.testing.assert_array_equal(dropout.dropout_backward(dout, cache), dout * mask)
