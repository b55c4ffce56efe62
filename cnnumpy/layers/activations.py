"""Activation layers (seed 002, "Couche d'activation"): Y = f(X), dE/dX = dE/dY * f'(X).

They have no parameters, accept inputs of any rank (the first axis is the batch) and
keep the float dtype of their input. Each keeps only what its derivative needs: a mask
for ReLU and LeakyReLU, the output for Sigmoid, Tanh and Softmax, the mask and the
output for ELU, the input for Arctan. The math is the
book's (``cnnumpy/textbook/activations.py``), run by ``cnnumpy.engine.ops``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnnumpy.engine import ops
from cnnumpy.layers.base import Layer


class _Activation(Layer):
    """Shared plumbing; subclasses name their operation (``op``) and its arguments."""

    adds_neurons = False  # works on the neurons of the previous layer (model summary)

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self._cache: Any = None
        self._out_shape: tuple[int, ...] | None = None
        self._out_dtype: np.dtype | None = None

    op = None  # the operation, set by each subclass

    def _args(self, x: np.ndarray) -> tuple:
        """The operation's arguments after ``x`` (checked against ``x``)."""
        return ()

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        out, self._cache = self.op.forward(x, *self._args(x))
        self._out_shape, self._out_dtype = out.shape, out.dtype
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward() called before forward()")
        dout = np.asarray(dout).astype(self._out_dtype, copy=False)
        if dout.shape != self._out_shape:
            raise self._error(f"expected dout {self._out_shape}, got {dout.shape}")
        if not self.need_input_grad:
            return None
        return self.op.backward(dout, self._cache)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}


def _check_alpha(layer: str, alpha) -> float:
    """``alpha`` as a float, or a ValueError naming the layer and what it got."""
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, (int, float, np.integer, np.floating))
        or not math.isfinite(alpha)
    ):
        raise ValueError(f"{layer}: alpha must be a finite number, got {alpha!r}")
    return float(alpha)


class ReLU(_Activation):
    """f(x) = max(0, x); f'(x) = 1 if x > 0 else 0. Keeps the boolean mask x > 0."""

    op = ops.relu

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name=name)


class LeakyReLU(_Activation):
    """f(x) = x if x > 0 else alpha x (seed 000: alpha = 0.01). Keeps the mask x > 0.

    Args:
        alpha: slope for negative inputs.
    """

    def __init__(self, alpha: float = 0.01, name: str | None = None) -> None:
        super().__init__(name=name)
        self.alpha = _check_alpha("LeakyReLU", alpha)

    op = ops.leaky_relu

    def _args(self, x):
        return (self.alpha,)

    def get_config(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "name": self.name}


class ELU(_Activation):
    """ELU(x) = x if x > 0 else alpha (e^x - 1) (Clevert et al. 2016; seed 003 lists
    "elu" among the activations h); ELU'(x) = 1 if x > 0 else ELU(x) + alpha.

    Smooth on the negative side, where it saturates at -alpha, unlike ReLU. Keeps the
    mask x > 0 and the output. The same function as ``torch.nn.ELU(alpha)``.

    Args:
        alpha: the negative saturation value is -alpha (default 1.0, as PyTorch).
    """

    def __init__(self, alpha: float = 1.0, name: str | None = None) -> None:
        super().__init__(name=name)
        self.alpha = _check_alpha("ELU", alpha)

    op = ops.elu

    def _args(self, x):
        return (self.alpha,)

    def get_config(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "name": self.name}


class Arctan(_Activation):
    """f(x) = arctan(x) (seed 004, 1.3: bounded and differentiable, like the
    sigmoid); f'(x) = 1 / (1 + x^2). Outputs lie in (-pi/2, pi/2). Keeps the input."""

    op = ops.arctan

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name=name)


class Sigmoid(_Activation):
    """s = 1 / (1 + exp(-x)), stable for large |x|; s' = s (1 - s). Keeps the output."""

    op = ops.sigmoid

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name=name)


class Tanh(_Activation):
    """t = tanh(x); t' = 1 - t^2. Keeps the output."""

    op = ops.tanh

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name=name)


class Softmax(_Activation):
    """s = exp(x - max) / sum exp(x - max) along ``axis`` (seed 004, eq. 4).

    Backward is the full Jacobian-vector product ``dx = s * (g - sum(g * s))``. To train
    a classifier, prefer raw logits and the ``"cross_entropy"`` loss, which fuses the
    softmax.

    Args:
        axis: the axis that sums to 1, counted on the batched input (default: the last);
            it may not be the batch axis 0.
    """

    def __init__(self, axis: int = -1, name: str | None = None) -> None:
        super().__init__(name=name)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"Softmax: axis must be an int, got {axis!r}")
        if axis == 0:
            raise ValueError(
                "Softmax(axis=0): axis 0 is the batch axis; use axis=-1 or >= 1"
            )
        self.axis = int(axis)

    op = ops.softmax

    def _args(self, x):
        if not -x.ndim < self.axis < x.ndim:
            raise self._error(
                f"expected an input with axis {self.axis} besides the batch axis, "
                f"got shape {x.shape}"
            )
        return (self.axis,)

    def get_config(self) -> dict[str, Any]:
        return {"axis": self.axis, "name": self.name}
