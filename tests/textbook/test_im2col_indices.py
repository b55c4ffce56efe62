"""Seed 001's index-array im2col (``cnnumpy.textbook.im2col_indices``): the same
matrices as the book's strided im2col, bit for bit, and the notes' worked example.

The notes' example (3.1, Figures 6 to 8): one RGB image 4x4, a 2x2 window, stride 1;
the column matrix has 3*2*2 = 12 rows ``(c, kh, kw)`` and 3*3 = 9 columns
``(ho, wo)``. Its last three rows are channel 2's ``(kh, kw)`` = (0, 1), (1, 0),
(1, 1); they are pinned below as positions ``(k, i, j)``, computed two ways (the
notes' index arrays and the book's im2col of an image whose values encode their own
position).
"""

import numpy as np
import pytest

from cnnumpy.textbook.im2col import col2im, im2col
from cnnumpy.textbook.im2col_indices import (
    col2im_indices,
    im2col_indices,
    window_indices,
)
from cnnumpy.textbook.padding import pad2d

# (N, C, H, W), (KH, KW), (SH, SW), padding ((top, bottom), (left, right))
CASES = [
    ((1, 3, 4, 4), (2, 2), (1, 1), ((0, 0), (0, 0))),  # the notes' example
    ((2, 3, 7, 9), (3, 2), (2, 3), ((1, 1), (2, 2))),
    ((1, 1, 5, 5), (5, 5), (1, 1), ((0, 0), (0, 0))),  # one window: one column
    ((3, 2, 8, 6), (2, 2), (2, 2), ((0, 1), (0, 1))),  # "same" for 2x2 stride 2
    ((2, 4, 10, 11), (3, 3), (3, 2), ((2, 0), (0, 3))),  # leftover rows skipped
    ((1, 2, 6, 7), (1, 3), (1, 2), ((0, 0), (1, 1))),
    ((2, 1, 9, 5), (4, 1), (2, 1), ((3, 3), (0, 0))),
]
IDS = [f"{s}-k{k}-s{st}-p{p}" for s, k, st, p in CASES]


@pytest.mark.parametrize("shape,kernel,stride,pads", CASES, ids=IDS)
def test_im2col_indices_equals_the_book_exactly(shape, kernel, stride, pads):
    rng = np.random.default_rng(0)
    xp = pad2d(rng.standard_normal(shape), pads)
    ours = im2col_indices(xp, kernel, stride)
    book = im2col(xp, kernel, stride)
    assert ours.shape == book.shape and ours.dtype == np.float64
    np.testing.assert_array_equal(ours, book)


@pytest.mark.parametrize("shape,kernel,stride,pads", CASES, ids=IDS)
def test_col2im_indices_equals_the_book_exactly(shape, kernel, stride, pads):
    rng = np.random.default_rng(1)
    xp_shape = pad2d(np.zeros(shape), pads).shape
    cols = rng.standard_normal(im2col(np.zeros(xp_shape), kernel, stride).shape)
    ours = col2im_indices(cols, xp_shape, kernel, stride)
    book = col2im(cols, xp_shape, kernel, stride)
    assert ours.shape == xp_shape == book.shape
    # the same additions in the same order ((kh, kw) ascending at each position)
    np.testing.assert_array_equal(ours, book)


def test_col2im_indices_adds_overlapping_windows():
    """Seed 001, Figure 9: a position read by several windows gets all their
    contributions; col2im of ones counts the windows that read each pixel."""
    counts = col2im_indices(np.ones((4, 9)), (1, 1, 4, 4), (2, 2), (1, 1))[0, 0]
    expected = [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]]
    np.testing.assert_array_equal(counts, expected)
    # what "+=" with the same indices would do: repeated positions counted once
    k, i, j = window_indices((1, 1, 4, 4), (2, 2), (1, 1))
    once = np.zeros((1, 1, 4, 4))
    once[:, k, i, j] += 1.0
    assert once.sum() == 16 != counts.sum() == 36


def test_the_notes_i_and_j_patterns():
    """The patterns seed 001 prints for its example (4x4, window 2, stride 1):
    ``i`` at level 1 is (0, 0, 1, 1), +1 at each further level; ``j_{1,2,3}`` =
    (0, 1, 0, 1), (1, 2, 1, 2), (2, 3, 2, 3). They are right, and are what the
    index arrays hold (column ``ho*3 + wo``, the first channel's four rows)."""
    k, i, j = window_indices((1, 3, 4, 4), (2, 2), (1, 1))
    assert i.shape == j.shape == (12, 9) and k.shape == (12, 1)
    for level in range(3):
        np.testing.assert_array_equal(i[:4, level * 3], np.array([0, 0, 1, 1]) + level)
    notes_j = [(0, 1, 0, 1), (1, 2, 1, 2), (2, 3, 2, 3)]
    for slide, pattern in enumerate(notes_j):
        np.testing.assert_array_equal(j[:4, slide], pattern)
        np.testing.assert_array_equal(j[:4, 3 + slide], pattern)  # every level
    np.testing.assert_array_equal(k[:, 0], np.repeat([0, 1, 2], 4))


# The last three rows of the notes' example matrix, rows (c, kh, kw) = (2, 0, 1),
# (2, 1, 0), (2, 1, 1), as positions (k, i, j) of the pixel each entry copies; the
# columns are the nine windows (ho, wo) in row-major order.
LAST_ROWS_I = [
    [0, 0, 0, 1, 1, 1, 2, 2, 2],
    [1, 1, 1, 2, 2, 2, 3, 3, 3],
    [1, 1, 1, 2, 2, 2, 3, 3, 3],
]
LAST_ROWS_J = [
    [1, 2, 3, 1, 2, 3, 1, 2, 3],
    [0, 1, 2, 0, 1, 2, 0, 1, 2],
    [1, 2, 3, 1, 2, 3, 1, 2, 3],
]


def test_last_three_rows_of_the_notes_example():
    k, i, j = window_indices((1, 3, 4, 4), (2, 2), (1, 1))
    assert (k[-3:] == 2).all()
    np.testing.assert_array_equal(i[-3:], LAST_ROWS_I)
    np.testing.assert_array_equal(j[-3:], LAST_ROWS_J)
    # The book's im2col, on an image whose pixel (c, h, w) holds 100c + 10h + w,
    # copies exactly those positions.
    c, h, w = np.meshgrid(np.arange(3), np.arange(4), np.arange(4), indexing="ij")
    codes = (100 * c + 10 * h + w)[None].astype(np.float64)
    cols = im2col(codes, (2, 2), (1, 1))
    expected = 200 + 10 * np.array(LAST_ROWS_I) + np.array(LAST_ROWS_J)
    np.testing.assert_array_equal(cols[-3:], expected)
    np.testing.assert_array_equal(
        cols[-3:, :3], [[201, 202, 203], [210, 211, 212], [211, 212, 213]]
    )


def test_j_built_as_the_notes_prose_describes_it_is_wrong():
    """Seed 001's paragraph under the ``j`` listing repeats the one under ``i``
    (``np.repeat(np.arange(window_shape), window_shape)``, ``np.tile(level1, ...)``,
    ``np.repeat(np.arange(output_height), output_width)``): built as described,
    ``j`` comes out equal to ``i``, and each window would read the pixels
    ``(ho + kh, ho + kh)``. The listing itself (``np.tile``) is right."""
    window, channels, H_out, W_out, stride = 2, 3, 3, 3, 1
    level1 = np.tile(np.repeat(np.arange(window), window), channels)
    increment = stride * np.repeat(np.arange(H_out), W_out)
    j_as_described = level1.reshape(-1, 1) + increment.reshape(1, -1)
    k, i, j = window_indices((1, channels, 4, 4), (window, window), (stride, stride))
    np.testing.assert_array_equal(j_as_described, i)
    assert not np.array_equal(j_as_described, j)
    assert not np.array_equal(j_as_described[-3:], LAST_ROWS_J)
    # the listing as printed gives the right j
    slide1 = np.tile(np.arange(window), window * channels)
    increment = stride * np.tile(np.arange(W_out), H_out)
    np.testing.assert_array_equal(slide1.reshape(-1, 1) + increment.reshape(1, -1), j)


def test_the_notes_concatenation_puts_images_side_by_side():
    """``np.concatenate(images[:, k, i, j], axis=-1)``: columns ``(n, ho, wo)``,
    image 0's windows first."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 2, 5, 5))
    cols = im2col_indices(x, (3, 3), (1, 1))
    assert cols.shape == (2 * 9, 3 * 9)
    for n in range(3):
        np.testing.assert_array_equal(
            cols[:, 9 * n : 9 * (n + 1)], im2col_indices(x[n : n + 1], (3, 3), (1, 1))
        )
