"""Fully connected layer, forward and backward (seed 002, "Fully Connected Layer").

Forward, for a batch of N row vectors::

    Y = X W + B                      y_nj = b_j + sum_i x_ni w_ij

Backward, given dE/dY (the three formulas of the notes, batched)::

    dE/dX = dE/dY W^T
    dE/dW = X^T dE/dY                (the matrix product sums over the batch)
    dE/dB = sum_n dE/dY[n]           (the notes have one example; we sum over the batch)
"""

from __future__ import annotations

import numpy as np

from cnnumpy.engine.kernels.parallel import WORKERS, halves, parallel_chunks

# Multiply-adds from which a product is split between the worker threads.
PARALLEL_MACS = 2**23


def dense_forward(
    x: np.ndarray, W: np.ndarray, b: np.ndarray | None
) -> tuple[np.ndarray, tuple]:
    """Y = X W + B.

    Args:
        x: the inputs, one example per row.
        W: the weights, ``W[i, j]`` links input ``i`` to output ``j``.
        b: the biases, or None for a layer without bias.

    Returns:
        ``(out, cache)``; the cache holds ``x`` and ``W`` (all the backward pass needs)
        and whether there is a bias.

    Shape:
        x: ``(N, in_features)``, W: ``(in_features, units)``, b: ``(units,)``,
        out: ``(N, units)``.
    """
    N, units = x.shape[0], W.shape[1]
    out = np.empty((N, units), dtype=np.result_type(x, W))
    macs = x.size * units
    if N >= WORKERS:

        def rows(lo: int, hi: int, k: int) -> None:  # each thread, a block of rows
            np.matmul(x[lo:hi], W, out=out[lo:hi])

        parallel_chunks(rows, halves(N, macs, PARALLEL_MACS))
    else:  # a few examples (one image to predict): each thread, a block of units

        def units_(lo: int, hi: int, k: int) -> None:
            np.matmul(x, W[:, lo:hi], out=out[:, lo:hi])

        parallel_chunks(units_, halves(units, macs, PARALLEL_MACS))
    if b is not None:
        out += b
    cache = (x, W, b is not None)
    return out, cache


def dense_backward(
    dout: np.ndarray, cache: tuple, need_dx: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """dE/dX, dE/dW and dE/dB of Y = X W + B.

    Args:
        dout: dE/dY.
        cache: what ``dense_forward`` returned.
        need_dx: when False (first layer of a model) dE/dX is skipped and None returned.

    Returns:
        ``(dx, dW, db)``; ``db`` is None when the forward pass had no bias.

    Shape:
        dout: ``(N, units)``, dx: ``(N, in_features)``, dW: ``(in_features, units)``,
        db: ``(units,)``.
    """
    x, W, has_bias = cache
    macs = x.size * W.shape[1]
    dW = np.empty(W.shape, dtype=np.result_type(x, dout))

    def weight_rows(lo: int, hi: int, k: int) -> None:  # dW rows need no reduction
        np.matmul(x[:, lo:hi].T, dout, out=dW[lo:hi])

    parallel_chunks(weight_rows, halves(W.shape[0], macs, PARALLEL_MACS))
    db = dout.sum(axis=0) if has_bias else None
    if not need_dx:
        return None, dW, db
    dx = np.empty(x.shape, dtype=np.result_type(dout, W))

    def input_columns(lo: int, hi: int, k: int) -> None:  # any batch size splits
        np.matmul(dout, W[lo:hi].T, out=dx[:, lo:hi])

    parallel_chunks(input_columns, halves(x.shape[1], macs, PARALLEL_MACS))
    return dx, dW, db
