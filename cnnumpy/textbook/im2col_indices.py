"""im2col and col2im with index arrays, as seed 001 writes them (3.1, "La méthode
Im2Col"): a variant of :mod:`cnnumpy.textbook.im2col` to read beside the notes.

The notes replace every value of the column matrix by the position ``(k, i, j)`` it is
read from (channel, row, column of the padded image; their Figure 8) and notice that
the positions follow patterns that ``np.repeat`` and ``np.tile`` can write:

- ``i`` (the row): a window reads rows ``(0, .., 0, 1, .., 1, .., KH-1)``, each
  ``KW`` times, once per channel ("level 1"); each level of windows further down adds
  ``SH``: ``i = level1 + SH * ho``.
- ``j`` (the column): a window reads columns ``(0, 1, .., KW-1)`` ``KH`` times per
  channel ("slide 1"); each slide to the right adds ``SW``: ``j = slide1 + SW * wo``.
- ``k`` (the channel): each channel's ``KH*KW`` rows read that channel.

With the three index arrays, fancy indexing ``xp[:, k, i, j]`` copies every window at
once; col2im adds the columns back with ``np.add.at``, which, unlike ``+=``, adds every
repeated index (overlapping windows add up, seed 001's Figure 9).

The result is laid out exactly as :func:`cnnumpy.textbook.im2col.im2col`: rows
``(c, kh, kw)``, columns ``(n, ho, wo)``, and the tests compare the two bit for bit.
That module is the one the layers use: it reads the windows through a strided view,
with no index arrays to build and no gather, and is faster
(``benchmarks/reproduce.py seed001_im2col_indices`` times both).
"""

from __future__ import annotations

import numpy as np

from cnnumpy.textbook.padding import output_size


def window_indices(
    xp_shape: tuple[int, ...],
    kernel: tuple[int, int],
    stride: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The notes' ``get_indices``: where each entry of the column matrix comes from.

    Entry ``[r, col]`` of the column matrix of image ``n`` is ``xp[n, k[r, 0],
    i[r, col], j[r, col]]`` with ``r = (c, kh, kw)`` and ``col = (ho, wo)``:
    ``k = c``, ``i = ho*SH + kh``, ``j = wo*SW + kw``.

    Args:
        xp_shape: padded input shape ``(N, C, Hp, Wp)``.
        kernel: ``(KH, KW)``.
        stride: ``(SH, SW)``.

    Returns:
        ``k`` ``(C*KH*KW, 1)``, ``i`` and ``j`` ``(C*KH*KW, Ho*Wo)``, integer arrays;
        ``Ho = (Hp - KH) // SH + 1``, ``Wo = (Wp - KW) // SW + 1``.
    """
    _, C, Hp, Wp = xp_shape
    KH, KW = kernel
    SH, SW = stride
    H_out, W_out = output_size(Hp, KH, SH), output_size(Wp, KW, SW)

    # i: level 1 is (0, .., 0, 1, .., 1, ..) for one channel, repeated per channel;
    # the windows of output row ho start SH * ho rows further down.
    level1 = np.tile(np.repeat(np.arange(KH), KW), C)
    level_step = SH * np.repeat(np.arange(H_out), W_out)
    i = level1.reshape(-1, 1) + level_step.reshape(1, -1)

    # j: slide 1 is (0, 1, .., KW-1) once per kernel row and channel; the windows of
    # output column wo start SW * wo columns further right.
    slide1 = np.tile(np.arange(KW), KH * C)
    slide_step = SW * np.tile(np.arange(W_out), H_out)
    j = slide1.reshape(-1, 1) + slide_step.reshape(1, -1)

    # k: the channel of each row, the same for every window.
    k = np.repeat(np.arange(C), KH * KW).reshape(-1, 1)
    return k, i, j


def im2col_indices(
    xp: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int]
) -> np.ndarray:
    """Receptive fields as columns, gathered by fancy indexing with the notes' indices.

    Args:
        xp: padded input ``(N, C, Hp, Wp)``.
        kernel: ``(KH, KW)``.
        stride: ``(SH, SW)``.

    Returns:
        x_cols ``(C*KH*KW, N*Ho*Wo)``, rows ``(c, kh, kw)``, columns ``(n, ho, wo)``:
        equal to :func:`cnnumpy.textbook.im2col.im2col`.
    """
    k, i, j = window_indices(xp.shape, kernel, stride)
    per_image = xp[:, k, i, j]  # (N, C*KH*KW, Ho*Wo): one column matrix per image
    # The notes place the images' matrices side by side: columns (n, ho, wo).
    return np.concatenate(list(per_image), axis=-1)


def col2im_indices(
    cols: np.ndarray,
    xp_shape: tuple[int, ...],
    kernel: tuple[int, int],
    stride: tuple[int, int],
) -> np.ndarray:
    """Inverse of :func:`im2col_indices`: add every column back onto its window.

    Args:
        cols: ``(C*KH*KW, N*Ho*Wo)``, laid out as :func:`im2col_indices` returns.
        xp_shape: padded input shape ``(N, C, Hp, Wp)``.
        kernel: ``(KH, KW)``.
        stride: ``(SH, SW)``.

    Returns:
        ``(N, C, Hp, Wp)``: each position holds the sum of the entries read from it;
        equal to :func:`cnnumpy.textbook.im2col.col2im`.
    """
    N = xp_shape[0]
    k, i, j = window_indices(xp_shape, kernel, stride)
    images = np.zeros(xp_shape, dtype=cols.dtype)
    per_image = np.stack(np.hsplit(cols, N))  # (N, C*KH*KW, Ho*Wo)
    # np.add.at, not images[:, k, i, j] += ...: with "+=" a position read by several
    # windows would keep only one of its contributions.
    np.add.at(images, (slice(None), k, i, j), per_image)
    return images
