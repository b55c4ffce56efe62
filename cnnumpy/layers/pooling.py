"""Pooling layers: thin classes around the pooling operations.

A pooling layer has no parameters: it keeps the cache of its last forward pass and
sends the gradient back through the matching backward. The math is the book's
(``cnnumpy/textbook/pool.py``); ``cnnumpy.engine.ops`` runs a faster kernel where one
serves the call. A 1-D pooling is the 2-D one on ``(N, C, 1, L)``.
Output size (seed 001, 2.3.1;
floor, PyTorch's ``ceil_mode=False``):

    H_out = (H + 2P - KH) // S + 1

``stride`` defaults to ``pool_size`` (non-overlapping windows); ``stride < pool_size``
gives overlapping windows such as AlexNet's 3x3 stride 2 (seed 003). Max pooling pads
with ``-inf``; average pooling pads with zeros that count in the mean
(``count_include_pad=True``). As in PyTorch, the padding may be at most half the window.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnumpy.engine import ops
from cnnumpy.layers.base import Layer, compact
from cnnumpy.textbook.arguments import int_tuple, padding_tuple
from cnnumpy.textbook.padding import output_size


class _Pool(Layer):
    """Shared machinery of the 2-D and 1-D window poolings (``ndim`` spatial axes)."""

    ndim = 2
    op = None  # the operation (max or average), set by each subclass

    def __init__(self, pool_size, stride=None, padding=0, *, name=None) -> None:
        super().__init__(name=name)
        owner, n = type(self).__name__, self.ndim
        self.pool_size = int_tuple(pool_size, n, "pool_size", owner)
        self.stride = (
            self.pool_size if stride is None else int_tuple(stride, n, "stride", owner)
        )
        # ints only, and the range is checked below (at most half the window)
        self.padding = padding_tuple(padding, n, owner, modes=(), minimum=None)
        self._given_stride = stride
        if min(self.pool_size) < 1 or min(self.stride) < 1:
            raise ValueError(
                f"{owner}: pool_size and stride must be >= 1, got "
                f"pool_size={pool_size!r}, stride={stride!r}"
            )
        if min(self.padding) < 0 or any(
            2 * p > k for p, k in zip(self.padding, self.pool_size, strict=True)
        ):
            raise ValueError(
                f"{owner}: padding must be between 0 and half the pool size, got "
                f"padding={padding!r} for pool_size={pool_size!r}"
            )
        self._cache = None

    def _expected_input(self) -> str:
        return "(N, C, H, W)" if self.ndim == 2 else "(N, C, L)"

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(input_shape) != self.ndim + 1:
            raise self._error(
                f"expected input {self._expected_input()}, got an example of shape "
                f"{tuple(input_shape)}"
            )
        sizes = tuple(input_shape[1:])
        padded = tuple(s + 2 * p for s, p in zip(sizes, self.padding, strict=True))
        if any(k > s for k, s in zip(self.pool_size, padded, strict=True)):
            raise self._error(
                f"pool window {self.pool_size} is larger than the padded input "
                f"{padded} (input {tuple(input_shape)}, padding {self.padding})"
            )
        out = tuple(
            output_size(s, k, st, p, p)
            for s, k, st, p in zip(
                sizes, self.pool_size, self.stride, self.padding, strict=True
            )
        )
        return (int(input_shape[0]), *out)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x, rank=self.ndim + 2)
        self.output_shape(x.shape[1:])  # a built pooling layer accepts any spatial size
        pool, stride, padding = self.pool_size, self.stride, self.padding
        if self.ndim == 1:  # (N, C, L) as (N, C, 1, L)
            x = x[:, :, None, :]
            pool, stride, padding = (1, *pool), (1, *stride), (0, *padding)
        # keep only what backward needs: where the maxima are (max), shapes (average)
        out, self._cache = self.op.forward(x, pool, stride, padding)
        out = out[:, :, 0, :] if self.ndim == 1 else out
        self._out_shape = out.shape
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward called before forward")
        if dout.shape != self._out_shape:
            raise self._error(
                f"expected dout of shape {self._out_shape}, got {dout.shape}"
            )
        if not self.need_input_grad:
            return None
        if self.ndim == 1:
            return self.op.backward(dout[:, :, None, :], self._cache)[:, :, 0, :]
        return self.op.backward(dout, self._cache)

    def get_config(self) -> dict[str, Any]:
        stride = self._given_stride
        return {
            "pool_size": compact(self.pool_size),
            "stride": None if stride is None else compact(self.stride),
            "padding": compact(self.padding),
            "name": self.name,
        }


class MaxPool2D(_Pool):
    """2-D max pooling: ``y[n, c, h, w] = max_{i, j} x_pad[n, c, S*h + i, S*w + j]``.

    Backward sends each window's gradient to its first maximum (PyTorch's tie rule).

    Args:
        pool_size: window ``KH x KW`` (int or pair).
        stride: step between windows; defaults to ``pool_size``.
        padding: ``-inf`` padding on each side, at most half the window.

    Shape:
        ``(N, C, H, W)`` -> ``(N, C, H_out, W_out)``.
    """

    op = ops.maxpool2d

    def __init__(
        self,
        pool_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(pool_size, stride, padding, name=name)


class AvgPool2D(_Pool):
    """2-D average pooling: ``y[n, c, h, w] = mean_{i,j} x_pad[n, c, S*h+i, S*w+j]``.

    Zero padding counts in the mean (divisor ``KH * KW``, ``count_include_pad=True``).

    Shape:
        ``(N, C, H, W)`` -> ``(N, C, H_out, W_out)``.
    """

    op = ops.avgpool2d

    def __init__(
        self,
        pool_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(pool_size, stride, padding, name=name)


class MaxPool1D(_Pool):
    """1-D max pooling: ``y[n, c, l] = max_k x_pad[n, c, S*l + k]``.

    Shape:
        ``(N, C, L)`` -> ``(N, C, L_out)``, ``L_out = (L + 2P - K) // S + 1``.
    """

    ndim = 1
    op = ops.maxpool2d

    def __init__(
        self,
        pool_size: int,
        stride: int | None = None,
        padding: int = 0,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(pool_size, stride, padding, name=name)


class AvgPool1D(_Pool):
    """1-D average pooling: ``y[n, c, l] = mean_k x_pad[n, c, S*l + k]`` (zeros count).

    Shape:
        ``(N, C, L)`` -> ``(N, C, L_out)``.
    """

    ndim = 1
    op = ops.avgpool2d

    def __init__(
        self,
        pool_size: int,
        stride: int | None = None,
        padding: int = 0,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(pool_size, stride, padding, name=name)


class GlobalAvgPool2D(Layer):
    """Mean of each feature map: ``y[n, c] = 1/(H*W) sum_{h, w} x[n, c, h, w]``.

    Shape:
        ``(N, C, H, W)`` -> ``(N, C)``.
    """

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self._cache = None

    def _expected_input(self) -> str:
        return "(N, C, H, W)"

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(input_shape) != 3:
            raise self._error(
                "expected input (N, C, H, W), got an example of shape "
                f"{tuple(input_shape)}"
            )
        return (int(input_shape[0]),)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x, rank=4)
        out, self._cache = ops.global_avgpool2d.forward(x)  # keep: the input shape
        self._out_shape = out.shape
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward called before forward")
        if dout.shape != self._out_shape:
            raise self._error(
                f"expected dout of shape {self._out_shape}, got {dout.shape}"
            )
        if not self.need_input_grad:
            return None
        return ops.global_avgpool2d.backward(dout, self._cache)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}
