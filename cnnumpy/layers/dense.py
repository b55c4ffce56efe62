"""The fully connected layer (seed 002, "Fully Connected Layer"): Y = X W + B.

On sequences ``(N, T, F)`` it acts on the last axis, the same W at every step (as
Keras' Dense): the N*T rows are one batch of the same operation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cnnumpy import initializers
from cnnumpy.engine import ops
from cnnumpy.layers.base import Layer


class Dense(Layer):
    """Every input neuron connected to every output neuron: ``Y = X W + B``.

    The activation is a separate layer (as in the notes). Backward:
    ``dE/dX = dE/dY W^T``, ``dE/dW = X^T dE/dY``, ``dE/dB = sum_n dE/dY[n]``.

    Args:
        units: number of output neurons.
        use_bias: add the bias B.
        kernel_initializer: the initializer of W: a name from
            :mod:`cnnumpy.initializers` or a callable ``f(shape, rng, dtype) ->
            array`` (saved as ``"custom"``; a loaded model gets its weights from
            the file). A callable with a parameter ``input_shape`` receives
            ``(in_features,)``.
        bias_initializer: the initializer of B, likewise.
        name: optional name of the layer.

    Shape:
        input ``(N, in_features)`` (flatten images first with ``Flatten()``),
        output ``(N, units)``; or a sequence ``(N, T, in_features)`` ->
        ``(N, T, units)``, reshaped to ``(N*T, in_features)`` around the same
        operation (the same W at every step);
        params ``W`` ``(in_features, units)``, ``b`` ``(units,)``.
    """

    def __init__(
        self,
        units: int,
        use_bias: bool = True,
        kernel_initializer: str | Callable[..., np.ndarray] = "he_normal",
        bias_initializer: str | Callable[..., np.ndarray] = "zeros",
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if (
            isinstance(units, bool)
            or not isinstance(units, (int, np.integer))
            or units < 1
        ):
            raise ValueError(f"Dense: units must be a positive int, got {units!r}")
        if not isinstance(use_bias, bool):
            raise TypeError(
                f"Dense({units}): use_bias must be a bool, got {use_bias!r}"
            )
        self.units = int(units)
        self.use_bias = use_bias
        for argument, spec in (
            ("kernel_initializer", kernel_initializer),
            ("bias_initializer", bias_initializer),
        ):  # now, so that a typo fails at construction, not at the first batch
            initializers.check(spec, f"Dense({units})", argument)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self._cache = None
        self._out_shape: tuple[int, ...] = (0, self.units)  # of the last forward

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(features,) -> (units,)``; a sequence ``(T, features) -> (T, units)``."""
        input_shape = tuple(input_shape)
        if len(input_shape) not in (1, 2):
            got = ", ".join(str(d) for d in input_shape)
            raise self._error(
                f"expected input (N, features) or (N, T, features), got (N, {got}); "
                f"add a Flatten() layer before Dense to flatten feature maps"
            )
        if self.built and input_shape[-1] != self.input_shape[-1]:
            steps = "T, " if len(input_shape) == 2 else ""
            raise self._error(
                f"expected input (N, {steps}{self.input_shape[-1]}), "
                f"got (N, {steps}{input_shape[-1]})"
            )
        return (*input_shape[:-1], self.units)

    def param_shapes(self, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """W ``(features, units)`` and b ``(units,)``; validates ``input_shape``."""
        self.output_shape(input_shape)
        shapes = {"W": (int(input_shape[-1]), self.units)}
        if self.use_bias:
            shapes["b"] = (self.units,)
        return shapes

    def build(self, input_shape: tuple[int, ...]) -> None:
        shapes = self.param_shapes(input_shape)  # validates before allocating
        # what one row of W's product sees: a sequence's step, not the sequence
        features = shapes["W"][:1]
        self.params = {
            "W": self._initial_value(
                self.kernel_initializer, "kernel_initializer", shapes["W"], features
            )
        }
        if self.use_bias:
            self.params["b"] = self._initial_value(
                self.bias_initializer, "bias_initializer", shapes["b"], features
            )
        super().build(input_shape)

    def _expected_input(self) -> str:
        features = self.input_shape[-1] if self.built else "features"
        return f"(N, {features}) or (N, T, {features})"

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Y = X W + B; keeps X and W (a reference, not a copy) for ``backward``.
        A sequence ``(N, T, F)`` runs as the ``N*T`` rows ``(N*T, F)``."""
        if isinstance(x, np.ndarray) and x.ndim not in (2, 3):
            raise self._error(
                f"expected input {self._expected_input()}, got {x.shape}; add a "
                f"Flatten() layer before Dense to flatten (N, C, H, W) feature maps"
            )
        x = self._prepare_input(x)
        rows = x.reshape(-1, x.shape[-1])  # (N*T, F) for a sequence: a view
        out, self._cache = ops.dense.forward(
            rows, self.params["W"], self.params.get("b")
        )
        self._out_shape = (*x.shape[:-1], self.units)
        return out.reshape(self._out_shape)

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """dE/dX (None if ``need_input_grad`` is False); fills ``grads`` W and b."""
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward() called before forward()")
        dout = np.asarray(dout).astype(self.dtype, copy=False)
        if dout.shape != self._out_shape:
            raise self._error(f"expected dout {self._out_shape}, got {dout.shape}")
        dx, dW, db = ops.dense.backward(
            dout.reshape(-1, self.units), self._cache, need_dx=self.need_input_grad
        )
        self.grads["W"] = dW
        if self.use_bias:
            self.grads["b"] = db
        if dx is None:
            return None
        return dx.reshape(*self._out_shape[:-1], dx.shape[-1])

    def get_config(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "use_bias": self.use_bias,
            # a callable is recorded as "custom": a config never holds code
            "kernel_initializer": initializers.config_name(self.kernel_initializer),
            "bias_initializer": initializers.config_name(self.bias_initializer),
            "name": self.name,
        }
