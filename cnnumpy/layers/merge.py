"""Merge layers: Add, Concatenate and Multiply, the layers that read several tensors.

They exist for graph models (``cnnumpy.Model``): ``Add()([h, x])`` is a residual
connection, ``Concatenate()([a, b, c])`` an Inception block's output. Their math is
the book's (:mod:`cnnumpy.textbook.merge`); they have no engine version, since a sum,
a copy or a product is one NumPy pass either way.

A merge layer's ``forward`` takes a list of arrays and its ``backward`` returns a list
of gradients, one per input, in the same order; ``build`` and ``output_shape`` take
the list of the inputs' shapes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnumpy.layers.base import Layer
from cnnumpy.textbook import merge as book


class _Merge(Layer):
    """What the three merges share: checks of the list of inputs and its shapes."""

    multiple_inputs = True
    adds_neurons = False  # a sum or a product of neurons already counted

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self._cache = None

    def _combine(self, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        raise NotImplementedError

    def output_shape(self, input_shape) -> tuple[int, ...]:
        shapes = self._check_shapes(input_shape)
        return self._combine(shapes)

    def _check_shapes(self, input_shape) -> list[tuple[int, ...]]:
        ok = isinstance(input_shape, (list, tuple)) and len(input_shape) >= 2
        ok = ok and all(isinstance(s, (list, tuple)) for s in input_shape)
        if not ok:
            raise self._error(
                "expected a list of at least two input shapes (one per input), "
                f"got {input_shape!r}"
            )
        return [tuple(int(d) for d in s) for s in input_shape]

    def param_shapes(self, input_shape) -> dict:
        return {}  # no parameters: a model file may hold none for this layer

    def build(self, input_shape) -> None:
        shapes = self._check_shapes(input_shape)
        self._combine(shapes)  # raises if they do not fit together
        self.input_shape = tuple(shapes)
        self.grads = {}
        self.built = True

    def _prepare_inputs(self, xs) -> list[np.ndarray]:
        """``xs`` checked: a list of two or more float arrays of one batch size, of
        shapes that fit together; cast to this layer's dtype."""
        if not isinstance(xs, (list, tuple)) or len(xs) < 2:
            got = type(xs).__name__ if not isinstance(xs, (list, tuple)) else len(xs)
            raise TypeError(
                f"{self!r}: expected a list of two or more arrays, got {got}"
            )
        for x in xs:
            if not isinstance(x, np.ndarray) or x.ndim < 2:
                raise TypeError(
                    f"{self!r}: expected arrays (N, ...), got "
                    f"{getattr(x, 'shape', type(x).__name__)}"
                )
        if len({x.shape[0] for x in xs}) != 1:
            raise self._error(
                f"the inputs must have one batch size, got shapes "
                f"{[x.shape for x in xs]}"
            )
        self._combine([x.shape[1:] for x in xs])
        if not self.built:
            self.build([x.shape[1:] for x in xs])
        return [x if x.dtype == self.dtype else x.astype(self.dtype) for x in xs]

    def _cached(self):
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward called before forward")
        return self._cache

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}


class _Broadcasting(_Merge):
    """Add and Multiply: inputs of one rank whose shapes broadcast to the output's
    (NumPy's rule, size-1 axes stretched): a gate ``(C, 1, 1)`` times maps
    ``(C, H, W)``."""

    def _combine(self, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        if len({len(s) for s in shapes}) != 1:
            raise self._error(
                f"the inputs must have one rank (use size-1 axes to broadcast, such "
                f"as (C, 1, 1) with (C, H, W)), got shapes {shapes}"
            )
        try:
            out = np.broadcast_shapes(*shapes)
        except ValueError:
            raise self._error(
                f"the input shapes {shapes} do not broadcast to one shape"
            ) from None
        return tuple(int(d) for d in out)


class Add(_Broadcasting):
    """The sum of its inputs, ``y = x_1 + ... + x_k`` (a residual connection).

    Shape:
        a list of ``(N, ...)`` arrays that broadcast to one shape -> that shape.
    """

    def forward(self, xs, training: bool = False) -> np.ndarray:
        xs = self._prepare_inputs(xs)
        out, self._cache = book.add_forward(xs)  # keep: the shapes only
        return out

    def backward(self, dout: np.ndarray) -> list[np.ndarray]:
        return book.add_backward(dout, self._cached())


class Multiply(_Broadcasting):
    """The element-wise product of its inputs, ``y = x_1 * ... * x_k`` (a gate).

    Shape:
        a list of ``(N, ...)`` arrays that broadcast to one shape -> that shape.
    """

    def forward(self, xs, training: bool = False) -> np.ndarray:
        xs = self._prepare_inputs(xs)
        out, self._cache = book.multiply_forward(xs)  # keep: the inputs
        return out

    def backward(self, dout: np.ndarray) -> list[np.ndarray]:
        return book.multiply_backward(dout, self._cached())


class Concatenate(_Merge):
    """Its inputs stacked along ``axis`` (1: the channels), ``y = [x_1; ...; x_k]``.

    Args:
        axis: the axis of the batch arrays ``(N, C, H, W)`` to stack along, 1 (the
            channels) by default; negative counts from the end; never 0 (the batch).

    Shape:
        ``(N, C_i, H, W)`` for each i -> ``(N, C_1 + ... + C_k, H, W)``.
    """

    def __init__(self, axis: int = 1, *, name: str | None = None) -> None:
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"Concatenate: axis must be an int, got {axis!r}")
        if axis == 0:
            raise ValueError(
                "Concatenate: axis 0 is the batch axis; use 1 for the channels"
            )
        self.axis = int(axis)
        super().__init__(name=name)

    def _example_axis(self, rank: int) -> int:
        """The axis in one example's shape (batch axis excluded)."""
        axis = self.axis - 1 if self.axis > 0 else rank + self.axis
        if not 0 <= axis < rank:
            raise self._error(
                f"axis {self.axis} is out of range for inputs of rank {rank + 1}"
            )
        return axis

    def _combine(self, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        rank = len(shapes[0])
        if any(len(s) != rank for s in shapes):
            raise self._error(f"the inputs must have one rank, got shapes {shapes}")
        axis = self._example_axis(rank)
        others = {s[:axis] + s[axis + 1 :] for s in shapes}
        if len(others) != 1:
            raise self._error(
                f"the inputs may differ only along axis {self.axis}, got shapes "
                f"{shapes}"
            )
        total = sum(s[axis] for s in shapes)
        return shapes[0][:axis] + (total,) + shapes[0][axis + 1 :]

    def forward(self, xs, training: bool = False) -> np.ndarray:
        xs = self._prepare_inputs(xs)
        axis = self._example_axis(xs[0].ndim - 1) + 1
        out, self._cache = book.concat_forward(xs, axis)  # keep: the sizes only
        return out

    def backward(self, dout: np.ndarray) -> list[np.ndarray]:
        return book.concat_backward(dout, self._cached())

    def get_config(self) -> dict[str, Any]:
        return {"axis": self.axis, "name": self.name}
