"""Convolution layers: thin classes over the ``conv2d`` operation.

The operation (:mod:`cnnumpy.engine.ops`) runs the book's im2col code
(:mod:`cnnumpy.textbook.conv`) or, by measured rules, one of the engine's faster
kernels; a sequence is an image of height 1, so ``Conv1D`` runs it on ``(N, C, 1, L)``.

``Conv2D`` holds ``W (filters, C, KH, KW)`` and ``b (filters,)`` and maps
``(N, C, H, W)`` to ``(N, filters, H_out, W_out)``; ``Conv1D`` holds
``W (filters, C, K)`` and maps ``(N, C, L)`` to ``(N, filters, L_out)``. Both compute a
cross-correlation, like every framework.

Output size (seed 003): ``H_out = (H - KH + 2P) / S + 1``. The notes call a
configuration whose ``H - KH + 2P`` is not a multiple of ``S`` an invalid "D-F-S
combination" ("ERREUR ! Combinaison D-F-S invalide"), and so do we by default: the layer
raises a ``ValueError`` naming the numbers instead of silently ignoring the last rows or
columns of the input, which is almost always a mistake in a student's architecture.
PyTorch and Keras floor instead; ``allow_uneven=True`` does the same, for architectures
that rely on it (for example a 7x7 stride-2 stem with padding 3 on a 224x224 image).
``padding="same"`` is exempt: its output is by definition ``ceil(H / S)`` (TensorFlow's
rule), which for stride 1 is ``H``; with an even kernel the extra padding row goes at
the bottom and the extra column on the right.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cnnumpy import initializers
from cnnumpy.engine import ops
from cnnumpy.layers.base import Layer, compact
from cnnumpy.textbook.arguments import int_tuple, is_int, padding_tuple
from cnnumpy.textbook.padding import (
    PADDING_MODES,
    check_output_size,
    output_size,
    resolve_padding,
    resolve_padding_1d,
)


class _Conv(Layer):
    """Shared machinery of Conv1D and Conv2D; ``rank`` is the number of spatial axes."""

    rank = 2
    _axes = ("height", "width")
    _dims = "H, W"

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | str | tuple[int, int] = 0,
        padding_mode: str = "zeros",
        use_bias: bool = True,
        kernel_initializer: str | Callable[..., np.ndarray] = "he_normal",
        bias_initializer: str | Callable[..., np.ndarray] = "zeros",
        allow_uneven: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        owner = f"{type(self).__name__}({filters!r}, {kernel_size!r})"
        if not is_int(filters) or filters <= 0:
            raise ValueError(
                f"{owner}: filters must be a positive int, got {filters!r}"
            )
        self.filters = int(filters)
        self.kernel_size = int_tuple(
            kernel_size, self.rank, "kernel_size", owner, minimum=1
        )
        self.stride = int_tuple(stride, self.rank, "stride", owner, minimum=1)
        # (PH, PW) for an image, (left, right) for a sequence; an int stays an int
        pads = padding_tuple(padding, 2, owner)
        self.padding = pads[0] if is_int(padding) else pads
        if padding_mode not in PADDING_MODES:
            raise ValueError(
                f"{owner}: padding_mode must be one of {PADDING_MODES}, "
                f"got {padding_mode!r}"
            )
        self.padding_mode = padding_mode
        if not isinstance(use_bias, bool) or not isinstance(allow_uneven, bool):
            raise TypeError(f"{owner}: use_bias and allow_uneven must be bools")
        self.use_bias = use_bias
        self.allow_uneven = allow_uneven
        # now, so that a typo fails at construction, not at the first batch
        initializers.check(kernel_initializer, owner, "kernel_initializer")
        initializers.check(bias_initializer, owner, "bias_initializer")
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self._cache = None
        self._out_shape: tuple[int, ...] | None = None

    # -- shapes ----------------------------------------------------------------------
    def _pads(self, sizes: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
        """``(before, after)`` padding per spatial axis, for spatial input ``sizes``."""
        if self.rank == 1:
            return resolve_padding_1d(
                self.padding, self.kernel_size[0], self.stride[0], sizes[0]
            )[1:]
        return resolve_padding(self.padding, self.kernel_size, self.stride, sizes)

    def _expected_input(self) -> str:
        channels = self.params["W"].shape[1] if "W" in self.params else "C"
        return f"(N, {channels}, {self._dims})"

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(filters, *spatial_out)`` for one example of ``input_shape`` (no batch).

        Raises:
            ValueError: wrong rank or channel count, kernel larger than the padded
                input, reflect padding not smaller than the input, or an invalid D-F-S
                combination.
        """
        input_shape = tuple(int(d) for d in input_shape)
        if len(input_shape) != self.rank + 1:
            raise self._error(
                f"expected input shape (C, {self._dims}) without the batch axis, "
                f"got {input_shape}"
            )
        if "W" in self.params and input_shape[0] != self.params["W"].shape[1]:
            raise self._error(
                f"expected input {self._expected_input()}, got (N, *{input_shape})"
            )
        sizes = input_shape[1:]
        spatial = []
        for axis, size, kernel, stride, (before, after) in zip(
            self._axes,
            sizes,
            self.kernel_size,
            self.stride,
            self._pads(sizes),
            strict=True,
        ):
            if self.padding_mode == "reflect" and max(before, after) >= size:
                raise self._error(
                    f"reflect padding needs padding < input {axis}, got padding "
                    f"({before}, {after}) for input {axis} {size}"
                )
            # "same" and allow_uneven floor; otherwise S must divide D - F + 2P
            floor = self.padding == "same" or self.allow_uneven
            try:
                check_output_size(
                    size, kernel, 1 if floor else stride, before + after, axis
                )
            except ValueError as exc:
                raise self._error(str(exc)) from None
            spatial.append(output_size(size, kernel, stride, before, after))
        return (self.filters, *spatial)

    # -- lifecycle -------------------------------------------------------------------
    def param_shapes(self, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """W ``(filters, C, *kernel_size)`` and b ``(filters,)``; checks the input."""
        self.output_shape(input_shape)
        shapes = {"W": (self.filters, int(input_shape[0]), *self.kernel_size)}
        if self.use_bias:
            shapes["b"] = (self.filters,)
        return shapes

    def build(self, input_shape: tuple[int, ...]) -> None:
        shapes = self.param_shapes(input_shape)  # validate before creating anything
        input_shape = tuple(int(d) for d in input_shape)  # (C, H, W) or (C, L)
        self.params = {
            "W": self._initial_value(
                self.kernel_initializer, "kernel_initializer", shapes["W"], input_shape
            )
        }
        if self.use_bias:
            self.params["b"] = self._initial_value(
                self.bias_initializer, "bias_initializer", shapes["b"], input_shape
            )
        super().build(input_shape)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Correlate ``x`` with every filter; the cache keeps what backward needs."""
        x = self._checked(x)  # builds the layer on its first input
        x2, w2, stride, pads = self.as_2d(x, self.params["W"])
        # textbook.conv.conv2d_forward, or the engine kernel the conv2d table picks by
        # its rules (engine/rules.py); under engine.off(), always the book
        out, self._cache = ops.conv2d.forward(
            x2, w2, self.params.get("b"), stride, pads, self.padding_mode
        )
        out = out[:, :, 0, :] if self.rank == 1 else out
        self._out_shape = out.shape
        return out

    def as_2d(self, x: np.ndarray, w: np.ndarray):
        """``(x, w, stride, pads)`` for the 2-D operation: a sequence ``(N, C, L)``
        is seen as ``(N, C, 1, L)`` and its kernels ``(F, C, K)`` as ``(F, C, 1, K)``
        (views, no copies)."""
        pads = self._pads(x.shape[2:])
        if self.rank == 1:
            stride, pads = (1, *self.stride), ((0, 0), *pads)
            return x[:, :, None, :], w[:, :, None, :], stride, pads
        return x, w, self.stride, pads

    def _checked(self, x) -> np.ndarray:
        """``x`` checked against the layer (and cast to its dtype)."""
        if (
            self.built
            and isinstance(x, np.ndarray)
            and x.ndim == self.rank + 2
            and x.shape[1] != self.params["W"].shape[1]
        ):
            raise self._error(f"expected input {self._expected_input()}, got {x.shape}")
        return self._prepare_input(x, rank=self.rank + 2)

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """Fill ``grads["W"]`` (and ``grads["b"]``); return dL/dx unless not needed."""
        if self._cache is None:
            raise self._error("backward() called before forward()")
        if not isinstance(dout, np.ndarray) or dout.shape != self._out_shape:
            got = dout.shape if isinstance(dout, np.ndarray) else type(dout).__name__
            raise self._error(f"expected dout of shape {self._out_shape}, got {got}")
        dout = dout.astype(self.dtype, copy=False)
        if self.rank == 1:
            dout = dout[:, :, None, :]
        # the backward of whichever function made the cache (it names its kernel)
        dx, dw, db = ops.conv2d.backward(
            dout, self._cache, need_dx=self.need_input_grad
        )
        self.grads["W"] = dw.reshape(self.params["W"].shape)
        if self.use_bias:
            self.grads["b"] = db
        if dx is not None and self.rank == 1:
            dx = dx[:, :, 0, :]
        return dx

    def get_config(self) -> dict[str, Any]:
        return {
            "filters": self.filters,
            "kernel_size": compact(self.kernel_size),
            "stride": compact(self.stride),
            "padding": compact(self.padding),
            "padding_mode": self.padding_mode,
            "use_bias": self.use_bias,
            # a callable is recorded as "custom": a config never holds code
            "kernel_initializer": initializers.config_name(self.kernel_initializer),
            "bias_initializer": initializers.config_name(self.bias_initializer),
            "allow_uneven": self.allow_uneven,
            "name": self.name,
        }


class Conv2D(_Conv):
    """2-D convolution ``(N, C, H, W) -> (N, filters, H_out, W_out)``.

    ``y[n, f, i, j] = b[f] + sum_{c,u,v} W[f, c, u, v] x_pad[n, c, i*SH+u, j*SW+v]``

    Args:
        filters: number of output maps F.
        kernel_size: ``K`` or ``(KH, KW)``; 1x1 kernels work.
        stride: ``S`` or ``(SH, SW)``.
        padding: ``P``, ``(PH, PW)``, ``"valid"`` (no padding) or ``"same"``
            (output ``ceil(H / S)``; even kernels pad one more at the bottom/right).
        padding_mode: ``"zeros"``, ``"reflect"`` (needs P < input size) or
            ``"replicate"``: the notes' zero, reflection and stretching padding.
        use_bias: add ``b (filters,)``.
        kernel_initializer: a name from :mod:`cnnumpy.initializers` or a callable
            ``f(shape, rng, dtype) -> array`` (saved as ``"custom"``; a loaded model
            gets its weights from the file). A callable with a parameter
            ``input_shape`` receives ``(C, H, W)`` (Conv1D: ``(C, L)``).
        bias_initializer: the same, for ``b``.
        allow_uneven: floor the output size like PyTorch instead of rejecting an invalid
            D-F-S combination (see the module docstring).
        name: optional layer name.

    Shape:
        input ``(N, C, H, W)``, W ``(filters, C, KH, KW)``, b ``(filters,)``, output
        ``(N, filters, H_out, W_out)`` with
        ``H_out = (H + top + bottom - KH) // SH + 1``.
    """


class Conv1D(_Conv):
    """1-D convolution ``(N, C, L) -> (N, filters, L_out)``, e.g. over a time series.

    ``y[n, f, i] = b[f] + sum_{c,u} W[f, c, u] * x_pad[n, c, i*S + u]``

    Args: as :class:`Conv2D`, with ``kernel_size`` and ``stride`` ints and ``padding``
    an int, ``(left, right)``, ``"valid"`` or ``"same"``.

    Shape:
        input ``(N, C, L)``, W ``(filters, C, K)``, b ``(filters,)``, output
        ``(N, filters, L_out)`` with ``L_out = (L + left + right - K) // S + 1``.
    """

    rank = 1
    _axes = ("length",)
    _dims = "L"
