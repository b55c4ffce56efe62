"""Dropout when a training step is split over processes: the ``split`` kernel of the
``dropout`` operation (the book's pair is :mod:`cnnumpy.textbook.dropout`).

Each process trains on a slice of the batch (:mod:`cnnumpy.sync`). For the step to
equal one process's, every process draws the mask of the WHOLE batch, from a
generator in the same state everywhere, and keeps its own rows: the mask one process
would draw, and the generators stay in step. Which generator state: the process
replicas' caller sends its own with every step; MPI ranks start from rank 0's
(:mod:`cnnumpy.distributed.data_parallel`) and draw the same masks from then on.
"""

from __future__ import annotations

import numpy as np

from cnnumpy import sync
from cnnumpy.textbook.dropout import dropout_backward, dropout_mask


def splitting(*args, **kwargs) -> bool:
    """Whether this training step is split over processes."""
    return sync.current() is not None


def dropout_forward_split(
    x: np.ndarray, rate: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``(x * mask, mask)`` with this slice's rows of the whole batch's mask."""
    part = sync.current()
    mask = dropout_mask((part.total, *x.shape[1:]), rate, rng, x.dtype)
    mask = mask[part.lo : part.hi]
    return x * mask, mask


__all__ = ["dropout_backward", "dropout_forward_split", "splitting"]
