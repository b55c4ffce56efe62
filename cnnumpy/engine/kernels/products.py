"""The weight-gradient products of the convolutions: ``part (+)= a @ b`` summed over
the chunks of a batch, whose images are folded into the product's inner dimension.

Every convolution kernel's ``dw`` is ``g @ cols.T``: ``g (F, K)`` the output gradient,
``cols (rows, K)`` the columns, ``K`` the positions of a chunk's images (thousands),
and a small ``(F, rows)`` result. How OpenBLAS is asked for it matters: see
:func:`~cnnumpy.engine.rules.dw_product_pieces`.
"""

from __future__ import annotations

import numpy as np

from cnnumpy.engine.rules import dw_product_pieces

__all__ = ["add_product"]


def add_product(part: np.ndarray, a: np.ndarray, b: np.ndarray, first: bool) -> None:
    """``part = a @ b`` on a worker's first chunk (written in place: no temporary),
    ``part += a @ b`` on its later ones.

    Computed as ``(b.T @ a.T).T`` (the long inner dimension contiguous in the first
    operand), in the pieces of the inner dimension that
    :func:`~cnnumpy.engine.rules.dw_product_pieces` gives: the same sums, faster."""
    into = part.T  # b.T @ a.T lands transposed in part, with no copy
    for k, (lo, hi) in enumerate(dw_product_pieces(*a.shape, b.shape[1])):
        if first and k == 0:
            np.matmul(b[lo:hi].T, a[:, lo:hi].T, out=into)
        else:
            into += b[lo:hi].T @ a[:, lo:hi].T
