"""What becomes of each chunk of a convolution's output in fused inference.

:mod:`cnnumpy.engine.fusion` merges a convolution with the pool and the activation that
run right after it: both run on each chunk of the convolution's output while the chunk
is in the core's cache, so the full-size output is never written to memory and read
back. The convolution kernels (:mod:`conv`, :mod:`conv_flat`, :mod:`conv_inner`) call
:func:`chunk_epilogue` on every chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from cnnumpy.engine.kernels.parallel import SCRATCH
from cnnumpy.engine.kernels.pool_tiles import max_of_tiles, mean_of_tiles

Post = Callable[[np.ndarray], object] | None  # an in-place operation on a chunk


class Tiles(NamedTuple):
    """A pool fused into a convolution's chunks (:mod:`cnnumpy.engine.fusion`): windows
    ``KH x KW`` that tile the output (stride = size, no padding), their maximum, or
    their mean when ``mean``."""

    KH: int
    KW: int
    mean: bool = False


def chunk_epilogue(
    res: np.ndarray, valid: np.ndarray, pool: Tiles | None, post: Post, k: int
) -> np.ndarray:
    """What a chunk of a convolution's output becomes before it is copied to the
    output, in fused inference (:mod:`cnnumpy.engine.fusion`): ``valid (F, n, Ho, Wo)``,
    a view of ``res`` (what the GEMM wrote), pooled over ``pool`` tiles if given,
    with ``post`` (an activation) run in place.

    - A max-pool runs first and ``post`` after it, on four times fewer values: the
      order ``execution_order`` gives a max-pool and a monotone activation.
    - A mean does not commute with an activation, so the activation runs first, then
      the mean over the tiles (LeNet's tanh and average pooling).
    - Without a pool, or before a mean, ``post`` runs on the whole of ``res``, junk
      columns included: long contiguous runs. On the ``valid`` view each run is one
      output row (32 floats in ``vgg_cifar``'s first layer), and NumPy's per-run cost
      made a ReLU there 1.7x slower than the separate layer."""
    if pool is None or pool.mean:
        if post is not None:
            post(res)
        if pool is None:
            return valid
        post = None
    F, n, Ho, Wo = valid.shape
    shape = (F, n, Ho // pool.KH, Wo // pool.KW)
    pooled = SCRATCH.get(f"pooled{k}", shape, valid.dtype)
    take = mean_of_tiles if pool.mean else max_of_tiles
    pooled = take(valid, pool.KH, pool.KW, pooled)
    if post is not None:
        post(pooled)
    return pooled


def out_size(Ho: int, Wo: int, pool: Tiles | None) -> tuple[int, int]:
    """The output's spatial size, after the fused pool if any."""
    return (Ho, Wo) if pool is None else (Ho // pool.KH, Wo // pool.KW)
