"""Inverted dropout (Srivastava et al. 2014, the scaling moved to training time)."""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np

from cnnumpy.engine import ops
from cnnumpy.layers.base import Layer


class Dropout(Layer):
    """Zero each input with probability ``rate`` during training, identity at inference.

    Training: ``y = x * m / (1 - rate)`` with ``m ~ Bernoulli(1 - rate)`` drawn
    independently for every element. Dividing by the keep probability ``1 - rate`` keeps
    the expectation ``E[y] = x``, so inference needs no rescaling: ``y = x``. Backward
    applies the same mask: ``dx = dout * m / (1 - rate)``.

    The masks come from the layer's own generator ``self.rng`` (spawned from the global
    one, see ``cnnumpy.seed``), or from ``seed`` when given.

    Args:
        rate: probability of dropping a unit, in ``[0, 1)``.
        seed: optional int seed for this layer's generator.

    Shape:
        any ``(N, ...)`` -> same shape.
    """

    adds_neurons = False  # same neurons as the layer before (model summary)

    def __init__(
        self, rate: float, *, seed: int | None = None, name: str | None = None
    ) -> None:
        super().__init__(name=name)
        if isinstance(rate, bool) or not isinstance(rate, Real):
            raise TypeError(f"Dropout: rate must be a number in [0, 1), got {rate!r}")
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.seed = seed
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self._cache = None  # the scaled mask (None: the identity ran)
        self._out_shape: tuple[int, ...] | None = None
        self._ran = False

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        self._ran = True
        if not training or self.rate == 0.0:
            self._cache = None  # identity: backward passes dout through
            return x
        # the scaled mask m / (1 - rate), in the input's dtype, is the cache
        out, self._cache = ops.dropout.forward(x, self.rate, self.rng)
        self._out_shape = out.shape
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        if not self._ran:
            raise RuntimeError(f"{self!r}: backward called before forward")
        if not self.need_input_grad:
            return None
        if self._cache is None:
            return dout
        if dout.shape != self._out_shape:
            raise self._error(
                f"expected dout of shape {self._out_shape}, got {dout.shape}"
            )
        return ops.dropout.backward(dout, self._cache)

    def get_config(self) -> dict[str, Any]:
        return {"rate": self.rate, "seed": self.seed, "name": self.name}
