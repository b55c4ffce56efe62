"""Flatten: the bridge between the convolutional and the dense part of a network."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnumpy.layers.base import Layer


class Flatten(Layer):
    """Lay each example out as one vector: ``y[n] = x[n].reshape(-1)``, row-major.

    For ``(N, C, H, W)`` feature maps the feature ``c * H * W + h * W + w`` is
    ``x[n, c, h, w]``, PyTorch's ``nn.Flatten`` order, so dense weights can be copied
    between the two. Backward only reshapes the gradient back.

    Shape:
        ``(N, d1, d2, ...)`` -> ``(N, d1 * d2 * ...)``.
    """

    adds_neurons = False  # same neurons as the layer before (model summary)

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self._x_shape: tuple[int, ...] | None = None

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (int(np.prod(input_shape, dtype=np.int64)),)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        self._x_shape = x.shape  # keep: the shape only
        return x.reshape(x.shape[0], -1)

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        if self._x_shape is None:
            raise RuntimeError(f"{self!r}: backward called before forward")
        N = self._x_shape[0]
        expected = (N, int(np.prod(self._x_shape[1:], dtype=np.int64)))
        if dout.shape != expected:
            raise self._error(f"expected dout of shape {expected}, got {dout.shape}")
        if not self.need_input_grad:
            return None
        return dout.reshape(self._x_shape)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}
