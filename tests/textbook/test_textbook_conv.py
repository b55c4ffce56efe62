"""The book's convolution (``cnnumpy.textbook.conv``) on every case of the layer tests.

Each case is checked three ways: against PyTorch (float64, output, dx, dw, db),
against float64 finite differences, and against the engine's kernels
(``cnnumpy.engine.kernels``), so that the book is a trusted reference for the engine.
Tolerances as in ``test_conv_torch.py``: the same sums in a different order, float64.
"""

import numpy as np
import pytest
import torch
from test_conv_torch import CASES_1D, CASES_2D, IDS_1D, IDS_2D, _torch_forward

from cnnumpy.engine.kernels import conv as engine
from cnnumpy.textbook import conv as book
from cnnumpy.textbook.padding import resolve_padding, resolve_padding_1d
from gradcheck import numerical_gradient

pytestmark = pytest.mark.torch
TOL = {"rtol": 1e-10, "atol": 1e-12}


def _case(rng, dims, size, kernel, bias=True, N=2, C=3, F=4):
    KH, KW = (kernel, kernel) if np.isscalar(kernel) else kernel
    if dims == 1:
        x = rng.standard_normal((N, C, size))
        w = rng.standard_normal((F, C, KW))
    else:
        x = rng.standard_normal((N, C, *size))
        w = rng.standard_normal((F, C, KH, KW))
    b = rng.standard_normal(F) if bias else None
    return x, w, b


def _grads(fwd, bwd, x, w, b, args, dout=None):
    out, cache = fwd(x, w, b, *args)
    if dout is None:
        dout = np.random.default_rng(1).standard_normal(out.shape)
    return out, dout, bwd(dout, cache)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kernel,stride,padding,mode,size,uneven", CASES_2D, ids=IDS_2D)
def test_book_conv2d_matches_torch_and_engine(
    kernel, stride, padding, mode, size, uneven, bias
):
    x, w, b = _case(np.random.default_rng(0), 2, size, kernel, bias)
    args = (stride, padding, mode)
    out, dout, (dx, dw, db) = _grads(
        book.conv2d_forward, book.conv2d_backward, x, w, b, args
    )
    S = (stride, stride) if np.isscalar(stride) else stride
    pads = resolve_padding(padding, w.shape[2:], S, size)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    bt = None if b is None else torch.tensor(b, requires_grad=True)
    yt = _torch_forward(xt, wt, bt, S, pads, mode, 2)
    yt.backward(torch.tensor(dout))
    pairs = [(out, yt), (dx, xt.grad), (dw, wt.grad)]
    pairs += [] if b is None else [(db, bt.grad)]
    for ours, theirs in pairs:
        assert ours.shape == tuple(theirs.shape)
        np.testing.assert_allclose(ours, theirs.detach().numpy(), **TOL)
    assert db is None if b is None else db.shape == b.shape

    fast_out, _, fast = _grads(
        engine.conv2d_forward, engine.conv2d_backward, x, w, b, args, dout
    )
    np.testing.assert_allclose(fast_out, out, **TOL)
    for mine, theirs in zip(fast, (dx, dw, db), strict=True):
        if theirs is None:
            assert mine is None
        else:
            np.testing.assert_allclose(mine, theirs, **TOL)


@pytest.mark.parametrize(
    "kernel,stride,padding,mode,size",
    [
        (3, 1, 1, "zeros", (5, 6)),
        (3, 2, 1, "reflect", (7, 5)),
        (2, 1, "same", "replicate", (4, 5)),
        (3, 1, 4, "zeros", (4, 4)),  # padding larger than the kernel
    ],
)
def test_book_conv2d_gradients_by_finite_differences(
    kernel, stride, padding, mode, size
):
    x, w, b = _case(np.random.default_rng(2), 2, size, kernel, N=2, C=2, F=3)
    args = (stride, padding, mode)
    _, dout, (dx, dw, db) = _grads(
        book.conv2d_forward, book.conv2d_backward, x, w, b, args
    )

    def f():
        return book.conv2d_forward(x, w, b, *args)[0]

    for value, analytic in ((x, dx), (w, dw), (b, db)):
        numeric = numerical_gradient(f, value, dout)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_book_conv2d_batch_of_one_and_no_dx():
    x, w, b = _case(np.random.default_rng(3), 2, (5, 5), 3, N=1)
    out, cache = book.conv2d_forward(x, w, b, 1, 1)
    assert out.shape == (1, 4, 5, 5)
    dx, dw, db = book.conv2d_backward(np.ones_like(out), cache, need_dx=False)
    assert dx is None and dw.shape == w.shape and db.shape == (4,)
    np.testing.assert_allclose(db, np.full(4, 25.0))


@pytest.mark.parametrize("kernel,stride,padding,mode,length", CASES_1D, ids=IDS_1D)
def test_book_conv1d_matches_torch_and_engine(kernel, stride, padding, mode, length):
    x, w, b = _case(np.random.default_rng(4), 1, length, kernel)
    args = (stride, padding, mode)
    out, dout, grads = _grads(book.conv1d_forward, book.conv1d_backward, x, w, b, args)
    pads = resolve_padding_1d(padding, kernel, stride, length)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    yt = _torch_forward(xt, wt, bt, stride, pads[1:], mode, 1)
    yt.backward(torch.tensor(dout))
    for ours, theirs in zip(
        (out, *grads), (yt, xt.grad, wt.grad, bt.grad), strict=True
    ):
        assert ours.shape == tuple(theirs.shape)
        np.testing.assert_allclose(ours, theirs.detach().numpy(), **TOL)
    fast_out, _, fast = _grads(
        engine.conv1d_forward, engine.conv1d_backward, x, w, b, args, dout
    )
    np.testing.assert_allclose(fast_out, out, **TOL)
    for mine, theirs in zip(fast, grads, strict=True):
        np.testing.assert_allclose(mine, theirs, **TOL)
