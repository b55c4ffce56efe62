"""LocalResponseNorm layer (AlexNet's "LRN").

The math is in ``cnnumpy.textbook.lrn``, run by the ``lrn`` operation.
"""

from __future__ import annotations

import numpy as np

from cnnumpy.engine import ops
from cnnumpy.layers.base import Layer


class LocalResponseNorm(Layer):
    """Normalise each value by the energy of its ``size`` neighbouring channels.

    Args:
        size: number of channels in the window (n).
        alpha: scale of the energy in y = a / (k + alpha/n * sum a^2) ** beta
            (PyTorch's convention).
        beta: the exponent in that formula.
        k: the constant added to the energy.

    Shape: (N, C, ...) -> (N, C, ...).
    """

    adds_neurons = False

    def __init__(
        self,
        size: int = 5,
        alpha: float = 1e-4,
        beta: float = 0.75,
        k: float = 2.0,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if (
            isinstance(size, bool)
            or not isinstance(size, (int, np.integer))
            or size < 1
        ):
            raise ValueError(
                f"LocalResponseNorm: size must be a positive integer, got {size!r}"
            )
        numbers = (k, alpha, beta)
        if not all(isinstance(v, (int, float)) and np.isfinite(v) for v in numbers):
            raise ValueError(
                f"LocalResponseNorm: k, alpha and beta must be finite numbers, "
                f"got k={k!r}, alpha={alpha!r}, beta={beta!r}"
            )
        if k <= 0 or alpha < 0 or beta < 0:
            raise ValueError(
                f"LocalResponseNorm: expected k > 0, alpha >= 0, beta >= 0, "
                f"got k={k}, alpha={alpha}, beta={beta}"
            )
        self.size, self.alpha, self.beta, self.k = (
            int(size),
            float(alpha),
            float(beta),
            float(k),
        )
        self._cache = None

    def output_shape(self, input_shape):
        if len(input_shape) < 2:
            raise self._error(
                f"expected input (N, C, ...) with spatial axes, got (N, "
                f"{', '.join(map(str, input_shape))})"
            )
        return tuple(input_shape)

    def forward(self, x, training=False):
        x = self._prepare_input(x)
        self.output_shape(x.shape[1:])
        y, self._cache = ops.lrn.forward(x, self.size, self.alpha, self.beta, self.k)
        self._out_shape = y.shape
        return y

    def backward(self, dout):
        if self._cache is None:
            raise self._error("backward called before forward")
        expected = self._out_shape
        if not isinstance(dout, np.ndarray) or dout.shape != expected:
            got = dout.shape if isinstance(dout, np.ndarray) else type(dout).__name__
            raise self._error(f"expected dout {expected}, got {got}")
        if not self.need_input_grad:
            return None
        return ops.lrn.backward(dout, self._cache)

    def get_config(self):
        return {
            "size": self.size,
            "alpha": self.alpha,
            "beta": self.beta,
            "k": self.k,
            "name": self.name,
        }
