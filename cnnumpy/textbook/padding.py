"""Padding and the output-size formula: what every convolution and pooling needs first.

Output size (seed 003, "Taille de la carte d'activation"): a window of ``F`` cells
sliding by ``S`` over ``D`` cells padded by ``P`` on each side fits

    D_out = (D - F + 2P) / S + 1

times. The frameworks floor the division (:func:`output_size`, the one copy of the
formula); the notes call an uneven one an invalid ``D-F-S`` combination
(:func:`check_output_size` refuses it).

Padding (seed 003, "Comment gérer les bords ?"), the notes' three options:

- ``"zeros"``      zero padding        ``[0 | 10 20 30 40 50 | 0]``
- ``"reflect"``    reflection padding  ``[20 | 10 20 30 40 50 | 40]`` (edge not copied)
- ``"replicate"``  stretching padding  ``[10 | 10 20 30 40 50 | 50]``

Padding amounts are pairs per axis, ``((top, bottom), (left, right))``, so that "same"
padding with an even kernel can put the extra row at the bottom and the extra column on
the right (TensorFlow/Keras). ``(PH, PW)`` or an int mean symmetric padding.

Window sizes, steps and paddings are given as an int (the same along every axis) or
one int per axis, read by :mod:`cnnumpy.textbook.arguments`.
"""

from __future__ import annotations

import numpy as np

from cnnumpy.textbook.arguments import int_tuple

Pads = tuple[tuple[int, int], tuple[int, int]]  # ((top, bottom), (left, right))
PADDING_MODES = ("zeros", "reflect", "replicate")
_NUMPY_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge"}


def output_size(
    size: int, kernel: int, stride: int = 1, pad_before: int = 0, pad_after: int = 0
) -> int:
    """The notes' output size ``D_out = (D - F + 2P) / S + 1``, floored like the
    frameworks (``2P`` is ``pad_before + pad_after`` when the padding is uneven).

    The one place the formula is written: every convolution and pooling, book and
    engine, and every layer's ``output_shape`` calls it. A stride-1 correlation gives
    ``D + 2P - F + 1``; a 2x2 stride-2 pooling ``D // 2``.
    """
    return (size + pad_before + pad_after - kernel) // stride + 1


def output_size_2d(
    size: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    pads: int | tuple = 0,
) -> tuple[int, int]:
    """``(H_out, W_out)``: :func:`output_size` along the height and the width.

    Args:
        size: ``(H, W)``.
        kernel: ``(KH, KW)``.
        stride: ``(SH, SW)``.
        pads: ``P``, ``(PH, PW)`` or ``((top, bottom), (left, right))``.
    """
    (top, bottom), (left, right) = normalize_pads(pads)
    H_out = output_size(size[0], kernel[0], stride[0], top, bottom)
    W_out = output_size(size[1], kernel[1], stride[1], left, right)
    return H_out, W_out


def check_output_size(
    size: int,
    kernel: int,
    stride: int,
    pad_total: int,
    axis: str = "height",
) -> int:
    """The notes' output size ``(D - F + 2P) / S + 1``, refusing what they call invalid.

    Seed 003 ("ERREUR ! Combinaison D-F-S invalide"): when ``D - F + 2P`` is not a
    multiple of ``S``, the last window would hang over the edge, so the configuration is
    rejected rather than silently dropping input rows.

    Raises:
        ValueError: the kernel is larger than the padded input, or ``S`` does not divide
            ``D - F + 2P``; the message names the numbers.
    """
    span = size + pad_total - kernel
    if span < 0:
        raise ValueError(
            f"kernel {axis} {kernel} is larger than the padded input {axis} "
            f"{size} + {pad_total} = {size + pad_total}"
        )
    if span % stride:
        raise ValueError(
            f"invalid D-F-S combination along {axis}: (D - F + 2P) / S + 1 = "
            f"({size} - {kernel} + {pad_total}) / {stride} + 1 is not an integer "
            f"({span} is not divisible by {stride}); change the padding or the stride, "
            f"or pass allow_uneven=True to drop the leftover rows like the frameworks"
        )
    return output_size(size, kernel, stride, pad_total)


def normalize_pads(pads: int | tuple) -> Pads:
    """``P``, ``(PH, PW)`` or ``((top, bottom), (left, right))`` -> the last form."""
    per_axis = pads if isinstance(pads, (tuple, list)) else (pads, pads)
    out = [int_tuple(p, 2, "padding", "pad2d") for p in per_axis]
    if len(out) != 2 or min(min(p) for p in out) < 0:
        raise ValueError(
            f"pad2d: expected non-negative padding for 2 axes, got {pads!r}"
        )
    return out[0], out[1]


def _same_pads(size: int | None, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same": output ``ceil(size / stride)``, extra pad at the end."""
    if stride == 1 or size is None:
        total = kernel - 1
    else:
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def resolve_padding(
    padding: int | str | tuple,
    kernel: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    size: tuple[int, int] | None = None,
) -> Pads:
    """Turn a user padding into ``((top, bottom), (left, right))``.

    Args:
        padding: ``P``, ``(PH, PW)``, ``((top, bottom), (left, right))``, ``"valid"``
            (no padding) or ``"same"`` (output size ``ceil(H / S)``, i.e. ``H`` for
            stride 1; an even kernel gets the extra row at the bottom and the extra
            column on the right, like TensorFlow/Keras).
        kernel: ``(KH, KW)``.
        stride: ``(SH, SW)``, used by ``"same"`` with a stride above 1.
        size: ``(H, W)``, needed by ``"same"`` with a stride above 1.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            sizes = size if size is not None else (None, None)
            top_bottom = _same_pads(sizes[0], kernel[0], stride[0])
            left_right = _same_pads(sizes[1], kernel[1], stride[1])
            return top_bottom, left_right
        raise ValueError(
            f"padding must be an int, a pair, 'valid' or 'same', got {padding!r}"
        )
    return normalize_pads(padding)


def resolve_padding_1d(
    padding: int | str | tuple,
    kernel: int,
    stride: int = 1,
    size: int | None = None,
) -> Pads:
    """A 1-D padding ``P``, ``(left, right)``, "same" or "valid" as 2-D pads of a
    height-1 image: ``((0, 0), (left, right))``."""
    if isinstance(padding, str):
        return (0, 0), resolve_padding(padding, (1, kernel), (1, stride), (1, size))[1]
    return (0, 0), int_tuple(padding, 2, "padding", "conv1d")


def check_padding_mode(mode: str) -> None:
    if mode not in PADDING_MODES:
        raise ValueError(
            f"pad2d: padding_mode must be one of {PADDING_MODES}, got {mode!r}"
        )


def pad2d(x: np.ndarray, pads: int | tuple, mode: str = "zeros") -> np.ndarray:
    """Pad the last two axes of ``x`` (``(..., H, W)``).

    Args:
        x: array ``(..., H, W)``.
        pads: ``P``, ``(PH, PW)`` or ``((top, bottom), (left, right))``.
        mode: ``"zeros"``, ``"reflect"`` (needs every pad < the size of its axis) or
            ``"replicate"``.

    Returns:
        ``(..., H + top + bottom, W + left + right)``; ``x`` itself when nothing is
        padded.
    """
    (top, bottom), (left, right) = normalize_pads(pads)
    check_padding_mode(mode)
    if top == bottom == left == right == 0:
        return x
    H, W = x.shape[-2:]
    if mode == "reflect" and (max(top, bottom) >= H or max(left, right) >= W):
        raise ValueError(
            f"pad2d: reflect padding needs each pad < the input size, got pads "
            f"(({top}, {bottom}), ({left}, {right})) for an input of size {H}x{W}"
        )
    widths = [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)]
    return np.pad(x, widths, mode=_NUMPY_MODE[mode])


def _fold_axis(
    g: np.ndarray, axis: int, before: int, after: int, mode: str
) -> np.ndarray:
    """Backward of padding one axis: crop, and for reflect/replicate add the gradient of
    every padded cell onto the cell it copies (a copied value feeds the loss twice)."""
    g = np.moveaxis(g, axis, -1)
    size = g.shape[-1] - before - after
    inner = g[..., before : before + size].copy()
    if mode == "reflect":
        # padded before-1-i copies x[1+i]; padded before+size+i copies x[size-2-i]
        if before:
            inner[..., 1 : before + 1] += g[..., :before][..., ::-1]
        if after:
            inner[..., size - 1 - after : size - 1] += g[..., before + size :][
                ..., ::-1
            ]
    elif mode == "replicate":
        if before:
            inner[..., 0] += g[..., :before].sum(axis=-1)
        if after:
            inner[..., size - 1] += g[..., before + size :].sum(axis=-1)
    return np.moveaxis(inner, -1, axis)


def pad2d_backward(
    dxp: np.ndarray, pads: int | tuple, mode: str = "zeros"
) -> np.ndarray:
    """Gradient of :func:`pad2d`: ``dL/dx`` from ``dL/dx_padded``.

    Zero padding only crops (a view, no copy). Reflect and replicate padding copy input
    cells into the border, so the border's gradient is folded back onto those cells
    (axis by axis, which also handles the corners: a corner is a copy of a copy).

    Shape:
        dxp ``(..., H + top + bottom, W + left + right)`` -> ``(..., H, W)``.
    """
    (top, bottom), (left, right) = normalize_pads(pads)
    Hp, Wp = dxp.shape[-2:]
    if mode == "zeros" or top == bottom == left == right == 0:
        return dxp[..., top : Hp - bottom, left : Wp - right]
    g = _fold_axis(dxp, -1, left, right, mode)
    return _fold_axis(g, -2, top, bottom, mode)
