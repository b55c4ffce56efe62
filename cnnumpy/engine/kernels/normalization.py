"""Batch normalisation, fused: the engine's kernel for the ``batchnorm`` operation.

Same formulas, signature and cache keys as the book's pair
(:mod:`cnnumpy.textbook.normalization`); what differs is how the passes are made:

- the centred input ``xc = x - mu`` is the one array kept for backward (``x_hat`` is
  ``xc * inv_std``, never stored);
- the per-channel sums are BLAS reductions (:func:`_channel_sums`,
  :func:`_channel_dots`: no squared copy, no slow ``sum`` over a middle axis);
- every pass runs over chunks of images on both cores (:func:`_over_images`) and
  writes into the one output array in place;
- when a training step is split over processes (:mod:`cnnumpy.sync`), the sums are
  added up over the processes before use (the slice's communicator, ``allreduce`` in
  place), so the statistics are the whole batch's.
"""

from __future__ import annotations

import math

import numpy as np

from cnnumpy import sync
from cnnumpy.engine.kernels.parallel import chunk_bounds, parallel_chunks


def _channel_sums(a: np.ndarray) -> np.ndarray:
    """``sum over n, l of a[n, c, l]`` for ``a (N, C, L)``: ``(C,)``.

    A product with a vector of ones runs in BLAS (vectorised, one pass); NumPy's
    ``sum(axis=(0, 2))`` over a non-innermost axis is several times slower.
    """
    return (a @ np.ones(a.shape[2], dtype=a.dtype)).sum(axis=0)


def _channel_dots(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``sum over n, l of a[n, c, l] * b[n, c, l]``: ``(C,)``, with no product array
    (``vecdot`` runs a dot product per ``(n, c)`` row)."""
    return np.vecdot(a, b).sum(axis=0)


def _over_images(work, a: np.ndarray, n_sums: int = 0) -> np.ndarray:
    """Run ``work(lo, hi) -> (n_sums, C) partial sums or None`` over chunks of the
    batch on the worker threads; returns the partial sums added up.

    Why: every pass of batch normalisation is element-wise or a per-channel sum, so
    chunks of images go to both cores; sums are made per chunk, then added (two
    passes of the data in all, like the single-threaded code).
    """
    N, C = a.shape[:2]
    bounds = chunk_bounds(N, a[:1].nbytes * 2)
    totals = np.zeros((len(bounds), n_sums, C), dtype=a.dtype)  # worker k < chunks

    def chunk(lo: int, hi: int, k: int) -> None:
        partial = work(lo, hi)
        if n_sums:
            totals[k] += partial

    parallel_chunks(chunk, bounds)
    return totals.sum(axis=0)


def _planes(a: np.ndarray) -> np.ndarray:
    """``a`` seen as ``(N, C, L)`` (a copy only when its layout needs one)."""
    return a.reshape(*a.shape[:2], math.prod(a.shape[2:]))


def _summed(part: sync.Slice | None, a: np.ndarray) -> np.ndarray:
    """``a`` summed over the processes that share the batch (``part``'s communicator,
    in place on one C-contiguous array); ``a`` itself when the batch is all here."""
    if part is None:
        return a
    a = np.ascontiguousarray(a)
    part.comm.allreduce(a)
    return a


def _batch_statistics(x3, xc3, x) -> tuple[np.ndarray, np.ndarray, int]:
    """``(mean, biased var, m)`` of the batch (of every process's slices when the
    step is split), filling ``xc3`` with ``x - mean`` on the way."""
    dt = x.dtype.type
    m = x.size // x.shape[1]
    part = sync.current()
    if part is not None:
        m = m // (part.hi - part.lo) * part.total  # values per channel in all
    sums = _over_images(lambda lo, hi: _channel_sums(x3[lo:hi]), x, 1)[0]
    mean = _summed(part, sums)
    mean /= dt(m)

    def centre(lo: int, hi: int) -> np.ndarray:  # x - mu, and its square sums
        np.subtract(x3[lo:hi], mean[:, None], out=xc3[lo:hi])
        return _channel_dots(xc3[lo:hi], xc3[lo:hi])

    var = _summed(part, _over_images(centre, x, 1)[0]) / dt(m)
    return mean, var, m


def batchnorm_forward(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    eps: float,
    mean: np.ndarray | None = None,
    var: np.ndarray | None = None,
) -> tuple[np.ndarray, dict]:
    """The book's :func:`~cnnumpy.textbook.normalization.batchnorm_forward`, fused
    (module docstring). The cache holds ``xc`` instead of ``x_hat``."""
    training = mean is None
    x3 = _planes(x)
    xc = np.empty(x.shape, dtype=x.dtype)  # C order: its (N, C, L) view is no copy
    xc3 = _planes(xc)
    if training:
        mean, var, m = _batch_statistics(x3, xc3, x)
    else:
        m = x.size // x.shape[1]
        _over_images(
            lambda lo, hi: np.subtract(x3[lo:hi], mean[:, None], out=xc3[lo:hi]), x
        )
    inv_std = (1.0 / np.sqrt(var + x.dtype.type(eps))).astype(x.dtype, copy=False)
    scale, shift = (gamma * inv_std)[:, None], beta[:, None]
    out = np.empty(x.shape, dtype=x.dtype)
    out3 = _planes(out)

    def affine(lo: int, hi: int) -> None:
        np.multiply(xc3[lo:hi], scale, out=out3[lo:hi])
        out3[lo:hi] += shift

    _over_images(affine, x)
    cache = {
        "xc": xc,
        "gamma": gamma,
        "inv_std": inv_std,
        "training": training,
        "mean": mean,
        "var": var,
        "m": m,
    }
    return out, cache


def _gradient_sums(dout: np.ndarray, dout3, xc3, training: bool):
    """``(dbeta, sum(dout * xc), part)`` per channel: one pass of both reductions,
    added up over the processes when a training step is split (``part``, else None).
    """

    def sums(lo: int, hi: int) -> np.ndarray:
        d = dout3[lo:hi]
        return np.stack([_channel_sums(d), _channel_dots(d, xc3[lo:hi])])

    dbeta, dot = _over_images(sums, dout, 2)
    part = sync.current() if training else None
    if part is not None:
        # the sums over the whole batch of the gradient of ITS mean loss: this
        # slice's dout is of the slice's mean loss, weighted by its share in all
        both = np.stack([dbeta, dot]) * dout.dtype.type(part.share)
        dbeta, dot = _summed(part, both)
    return dbeta, dot, part


def batchnorm_backward(
    dout: np.ndarray, cache: dict, need_dx: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """``(dx or None, dgamma, dbeta)``: the reductions, then ``dx`` built in ONE
    array by in-place steps. With ``x_hat = xc * inv_std``:
    ``dgamma = inv_std * sum(dout * xc)``."""
    xc, inv_std, training, m = (cache[k] for k in ("xc", "inv_std", "training", "m"))
    dout3, xc3 = _planes(dout), _planes(xc)
    dbeta, dot, part = _gradient_sums(dout, dout3, xc3, training)
    dgamma = inv_std * dot
    if not need_dx:
        return None, dgamma, dbeta
    scale = (cache["gamma"] * inv_std)[:, None]
    dx = np.empty(dout.shape, dtype=dout.dtype)
    dx3 = _planes(dx)
    if not training:
        _over_images(
            lambda lo, hi: np.multiply(dout3[lo:hi], scale, out=dx3[lo:hi]), dout
        )
        return dx, dgamma, dbeta
    # d/dx of (x - mu) / std through mu and var too (the batch statistics):
    # dx = scale * (dout - dbeta/m - x_hat * dgamma/m)
    dt = dout.dtype.type
    # (split: dx of this slice's own mean loss, as every other layer computes)
    per = dt(m) if part is None else dt(m) * dt(part.share)
    k_xc = (inv_std * dgamma / per)[:, None]
    k_mean = (dbeta / per)[:, None]

    def input_grad(lo: int, hi: int) -> None:
        block = dx3[lo:hi]
        np.multiply(xc3[lo:hi], k_xc, out=block)
        block += k_mean
        np.subtract(dout3[lo:hi], block, out=block)
        block *= scale

    _over_images(input_grad, dout)
    return dx, dgamma, dbeta
