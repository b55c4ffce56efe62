"""Embedding: a symbol's id picks one row of W (seed 003, "Réseaux récurrents").

The notes feed a recurrent network one-hot vectors over a toy alphabet (seed 003,
slide 218: alphabet [a, e, m, s], 'a' = [1, 0, 0, 0], ..., 's' = [0, 0, 0, 1]). A
dense layer on a one-hot row x (1 at the symbol's id i) computes::

    y = x W = sum_v x_v W[v] = W[i]          (only x_i = 1 survives the sum)

so the product is a lookup of row i: an embedding is a dense layer without bias
whose input is one-hot, stored as the id alone. For a batch of sequences of ids::

    out[n, t] = W[ids[n, t]]                  = one_hot(ids)[n, t] @ W

Backward, from the dense layer's dE/dW = X^T dE/dY with X one-hot: row v of dE/dW
is the sum of dE/dY over every position whose id is v (an id seen twice in a batch
adds twice: ``np.add.at``, where ``dW[ids] += dout`` would keep only one of them).
There is no dE/dX: the ids are integers, not values one could move by a little.
"""

from __future__ import annotations

import numpy as np


def one_hot(ids: np.ndarray, vocab_size: int, dtype=np.float64) -> np.ndarray:
    """The notes' one-hot vectors: ``out[..., v] = 1`` where ``ids == v``, else 0.

    Shape:
        ids ``(N, T)`` (any shape) -> out ``(N, T, vocab_size)``.
    """
    out = np.zeros((*ids.shape, vocab_size), dtype=dtype)
    np.put_along_axis(out, ids[..., None], 1, axis=-1)
    return out


def embedding_forward(ids: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, tuple]:
    """out[n, t] = W[ids[n, t]], the one-hot row times W without the zeros.

    Shape:
        ids ``(N, T)`` integers in ``[0, vocab_size)``, W ``(vocab_size, dim)``
        -> out ``(N, T, dim)``; the cache keeps ``ids`` and W's shape and dtype.
    """
    out = W[ids]
    return out, (ids, W.shape, W.dtype)


def embedding_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """dE/dW: ``dW[v] = sum of dout[n, t] over the positions where ids[n, t] == v``.

    Shape:
        dout ``(N, T, dim)`` -> dW ``(vocab_size, dim)``. No dE/d(ids).
    """
    ids, W_shape, W_dtype = cache
    dW = np.zeros(W_shape, dtype=W_dtype)
    np.add.at(dW, ids, dout)  # repeated ids accumulate
    return dW
