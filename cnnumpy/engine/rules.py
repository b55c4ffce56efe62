"""The engine's measured choice rules, all in one module: which kernel runs a call.

Each rule is a small function of a call's shapes and arguments, with the measurement
that fixed it in its docstring. :mod:`cnnumpy.engine.ops` registers the dispatch
tables with them (each kernel's ``applies`` and ``serves``), and the kernels that
choose inside themselves (the flat layout of a correlation, the way ``dx`` is
computed) ask here too, so ``ops.py`` and this module show every choice the engine
makes.

- ``conv2d``: :func:`layout_of` gives ``"columns"`` unless :func:`flat_applies`
  (stride 1, zero padding), else :func:`layout_for`'s flat layout: ``"inner"``
  (:func:`inner_applies`), ``"bands"`` (:func:`use_bands`) or ``"wide"``. The
  backward computes ``dx`` by the full convolution when
  :func:`dx_by_full_convolution`, else by slice-adds.
- ``maxpool2d``, ``avgpool2d``: ``"tiles"`` when :func:`tiling`, else ``"windows"``.
"""

from __future__ import annotations

import numpy as np

from cnnumpy.engine.kernels.im2col import conv_geometry
from cnnumpy.engine.kernels.parallel import Pads
from cnnumpy.engine.kernels.pool import IntPair, pool_geometry
from cnnumpy.textbook.padding import output_size

# -- conv2d: the flat layouts (kernels/conv_flat.py) or im2col's columns (conv.py) ---

LAYOUTS = ("inner", "bands", "wide")

# Largest output map (Ho*Wo) laid out with the images innermost: 16x16.
INNER_MAX_OUTPUTS = 256
# Least share of junk on the wide grid (positions computed / outputs) worth the
# transposes of this layout.
INNER_MIN_JUNK = 1.1


def flat_applies(stride: tuple[int, int], padding_mode: str) -> bool:
    """The flat layouts serve stride 1 with zero padding (any pad amounts)."""
    return tuple(stride) == (1, 1) and padding_mode == "zeros"


def inner_applies(Ho: int, Wo: int, Wp: int) -> bool:
    """Whether a stride-1 zero-padded convolution with ``(Ho, Wo)`` outputs on planes
    ``Wp`` wide takes the images-innermost layout (``"inner"``,
    :mod:`~cnnumpy.engine.kernels.conv_inner`): small output maps where the wide
    grid would compute at least 10% junk. Below that the two transposes cost more
    than the junk (``melpy_mnist``'s 2x2 kernels on 14x14 maps, 7% junk: inference
    8% slower)."""
    wide = (Ho - 1) * Wp + Wo  # positions on the wide grid
    return Ho * Wo <= INNER_MAX_OUTPUTS and wide >= INNER_MIN_JUNK * Ho * Wo


def use_bands(channels: int, kernel: tuple[int, int]) -> bool:
    """Whether :func:`~cnnumpy.engine.kernels.conv_flat.correlate_flat` takes row-band
    columns (see :func:`~cnnumpy.engine.kernels.conv_bands.fill_bands`).

    Bands copy ``KW`` times fewer rows but make ``KW - 1`` passes over a ``KW``-times
    larger GEMM output, and their GEMM sums over ``C*KH`` only. Measured on one core
    of the project's machine (float32, batch 32, full columns -> bands): seed 000's
    third convolution, 20 -> 20 channels 5x5 on 8x8, 1.54 -> 1.20 ms; its second
    one's ``dx`` (a 20 -> 16 correlation on 16x16) 3.53 -> 2.69 ms; its second one,
    16 -> 20, 3.23 -> 3.15 ms. 5x5 over 3 or 6 channels and 2x2 kernels ran up to
    1.5x slower (a GEMM summing over 5 to 30 terms); 3x3 over 32-128 channels the
    same either way (the GEMM dominates). Hence: wide kernels over enough rows.
    """
    KH, KW = kernel
    return KW >= 4 and channels * KH >= 64


def layout_for(x_shape, w_shape, pads: Pads) -> str:
    """The measured choice of layout for a stride-1 zero-padded correlation:
    ``"inner"`` on small maps (:func:`inner_applies`), ``"bands"`` for wide kernels
    over many channels (:func:`use_bands`), else ``"wide"`` (full columns)."""
    _N, C, H, W = x_shape
    _F, _C, KH, KW = w_shape
    (top, bottom), (left, right) = pads
    Ho, Wo = output_size(H, KH, 1, top, bottom), output_size(W, KW, 1, left, right)
    if inner_applies(Ho, Wo, W + left + right):
        return "inner"
    return "bands" if use_bands(C, (KH, KW)) else "wide"


def layout_of(x, w, b, stride=1, padding=0, padding_mode="zeros", **fused) -> str:
    """The kernel a call runs by the measured rules: one of the flat layouts
    (:func:`layout_for`) for stride 1 with zero padding, else ``"columns"``."""
    stride, pads = conv_geometry(x, w, stride, padding)
    if not flat_applies(stride, padding_mode):
        return "columns"
    return layout_for(x.shape, w.shape, pads)


def flat_serves(x, w, b, stride=1, padding=0, padding_mode="zeros", **fused) -> bool:
    """Whether the flat layouts can run a call (stride 1, zero padding)."""
    return flat_applies(conv_geometry(x, w, stride, padding)[0], padding_mode)


def dx_by_full_convolution(
    C: int, F: int, small: bool, pads: Pads, kernel: tuple[int, int]
) -> bool:
    """Whether the flat backward computes ``dx`` by the notes' full convolution of
    the padded ``dout`` with the rotated kernels (else by ``Wt @ g`` and ``KH*KW``
    slice-adds, :mod:`~cnnumpy.engine.kernels.conv_flat_backward`).

    The full convolution's GEMM sums over ``F*KH*KW`` and it copies ``F*KH*KW`` rows
    of ``P`` floats; the slice-adds move ``C*KH*KW`` rows instead. So the full
    convolution is chosen when ``2*C > F`` (e.g. ``C = F`` in VGG), and when
    ``2*C = F`` on the small maps of :mod:`~cnnumpy.engine.kernels.conv_inner`
    (``small``: :func:`inner_applies` holds for ``dout``'s maps), which compute no
    junk: ``vgg_cifar``'s 64 -> 128 layer on 8x8, batch 32, one core, 5.64 ms by
    slice-adds, 4.45 ms so. The slice-adds win when there are few input channels
    (LeNet-5: C = 1 or 6, F = 6 or 16), and they also serve paddings at least as
    large as the kernel (the full convolution pads ``dout`` by ``KH - 1 - top``:
    it needs the padding smaller than the kernel, always true for "same" and
    "valid").
    """
    KH, KW = kernel
    (top, bottom), (left, right) = pads
    few_filters = 2 * C > F or (2 * C == F and small)
    return few_filters and max(top, bottom) < KH and max(left, right) < KW


# -- pooling: tiles (kernels/pool_tiles.py) or windows (kernels/pool.py) --------------


def tiling(x: np.ndarray, pool: IntPair, stride: IntPair, padding: IntPair = 0) -> bool:
    """Whether the windows tile ``x``: stride = pool, no padding, sizes divided."""
    return pool_geometry(x.shape, pool, stride, padding)["tiles"]


# -- the weight-gradient products (kernels/products.py) -------------------------------

# Pieces of the inner dimension for a small dw product, and what "small" is.
INNER_PIECE = 4096
SMALL_PRODUCT = 256  # F * rows


def dw_product_pieces(F: int, K: int, rows: int) -> list[tuple[int, int]]:
    """The pieces of the inner dimension ``K`` in which a weight-gradient product
    ``(F, K) @ (K, rows)`` is computed (:func:`~cnnumpy.engine.kernels.products.
    add_product`, which also asks OpenBLAS for it as ``cols @ g.T``).

    Measured on one core of an Intel Xeon (AVX-512, OpenBLAS 0.3.31's SkylakeX
    kernels), float32, GFLOP/s of ``g @ cols.T`` -> ``cols @ g.T``: LeNet-5's second
    layer's shape (F = 16, rows = 151) 55 -> 98, (32, 289) 86 -> 139, (64, 577)
    131 -> 173; LeNet-5's first layer's (6, 26) the same at K = 4096 (100), but both
    forms fall to 20-30 once K passes about 8,000 (chunks of 42 images give 37,464),
    as does (16, 5) (melpy_mnist's first layer, 2x2 on one channel): 20 at K =
    16,384. In pieces of 4096 such small products stay at 57-92; larger ones gain
    nothing from pieces (within 5%), so they keep one.
    """
    if F * rows > SMALL_PRODUCT or K <= INNER_PIECE:
        return [(0, K)]
    return [(lo, min(lo + INNER_PIECE, K)) for lo in range(0, K, INNER_PIECE)]
