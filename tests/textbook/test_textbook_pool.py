"""The book's pooling (``cnnumpy.textbook.pool``) against PyTorch and the engine.

The cases and inputs of ``test_pool_torch.py``: continuous values, small integers (ties)
and a constant map (every window tied), so the mask must pick the first maximum in
row-major order like PyTorch, and dx is compared exactly for max pooling. Average
pooling differs only in summation order: float64, rtol 1e-12.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_pool_torch import CASES_1D, CASES_2D, make_inputs

from cnnumpy.engine import TABLES
from cnnumpy.textbook import pool as book

pytestmark = pytest.mark.torch
TOL = {"rtol": 1e-12, "atol": 1e-12}
KINDS = {
    "max": (F.max_pool2d, F.max_pool1d, {}),
    "avg": (F.avg_pool2d, F.avg_pool1d, {"count_include_pad": True}),
}


def _engine_kernels(kind, dims, x, pool, stride, padding):
    """(forward, backward) of every engine kernel of the operation that serves this
    call; 1-D runs the 2-D kernels on ``(N, C, 1, L)``, as the layers do."""
    args = (
        (pool, stride, padding) if dims == 2 else ((1, pool), (1, stride), (0, padding))
    )
    x4 = x if dims == 2 else x[:, :, None]
    for kernel in TABLES[f"{kind}pool2d"].kernels:
        if not kernel.applies(x4, *args):
            continue
        if dims == 2:
            yield (
                lambda x, k=kernel: k.forward(x, pool, stride, padding),
                kernel.backward,
            )
        else:

            def forward(x, k=kernel):
                out, cache = k.forward(
                    x[:, :, None], (1, pool), (1, stride), (0, padding)
                )
                return out[:, :, 0], cache

            def backward(dout, cache, k=kernel):
                return k.backward(dout[:, :, None], cache)[:, :, 0]

            yield forward, backward


def _check(kind, dims, pool, stride, padding, shape):
    suffix = f"pool{dims}d"
    fwd = getattr(book, f"{kind}{suffix}_forward")
    bwd = getattr(book, f"{kind}{suffix}_backward")
    torch_fn = KINDS[kind][dims == 1]
    for name, x in make_inputs(shape, np.random.default_rng(0), np.float64).items():
        out, cache = fwd(x, pool, stride, padding)
        dout = np.random.default_rng(1).standard_normal(out.shape)
        dx = bwd(dout, cache)
        xt = torch.tensor(x, requires_grad=True)
        yt = torch_fn(xt, pool, stride, padding, **KINDS[kind][2])
        yt.backward(torch.tensor(dout))
        for ours, theirs in ((out, yt), (dx, xt.grad)):
            assert ours.shape == tuple(theirs.shape), name
            np.testing.assert_allclose(ours, theirs.detach().numpy(), **TOL)
        kernels = _engine_kernels(kind, dims, x, pool, stride, padding)
        for fast_fwd, fast_bwd in kernels:
            fast_out, fast_cache = fast_fwd(x)
            np.testing.assert_allclose(fast_out, out, **TOL)
            np.testing.assert_allclose(fast_bwd(dout, fast_cache), dx, **TOL)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("pool,stride,padding,shape", CASES_2D)
def test_book_pool2d(kind, pool, stride, padding, shape):
    _check(kind, 2, pool, stride, padding, shape)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("pool,stride,padding,shape", CASES_1D)
def test_book_pool1d(kind, pool, stride, padding, shape):
    _check(kind, 1, pool, stride, padding, shape)


def test_book_max_pool_mask_is_one_per_window():
    x = np.zeros((1, 1, 4, 4))  # every window tied: the first cell of each wins
    out, cache = book.maxpool2d_forward(x, 2, 2)
    assert cache["mask"].sum(axis=1).tolist() == [[1, 1, 1, 1]]
    dx = book.maxpool2d_backward(np.ones_like(out), cache)
    np.testing.assert_array_equal(dx[0, 0], [[1, 0, 1, 0], [0, 0, 0, 0]] * 2)


def test_book_global_average_pool():
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 5))
    out, cache = book.global_avgpool2d_forward(x)
    np.testing.assert_allclose(out, x.mean(axis=(2, 3)), **TOL)
    dout = np.random.default_rng(3).standard_normal(out.shape)
    dx = book.global_avgpool2d_backward(dout, cache)
    np.testing.assert_allclose(dx, np.broadcast_to(dout[..., None, None] / 20, x.shape))
