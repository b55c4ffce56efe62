"""Graph models written as calls (Keras' functional API): symbolic tensors and tracing.

::

    x = cnnumpy.Input((3, 32, 32))
    h = ReLU()(Conv2D(16, 3, padding=1)(x))
    y = Add()([h, Conv2D(16, 1)(x)])
    model = cnnumpy.Model(inputs=x, outputs=Dense(10)(Flatten()(y)))

``Input`` makes a :class:`Tensor`, a placeholder with the shape of one example and no
values; calling a layer on Tensors builds the layer for their shapes and returns the
Tensor of its output, which remembers the layer and its inputs. :func:`trace` then
walks back from the outputs and lays the graph out as the model runs it:

- ``layers``: every layer that leads to an output, in a topological order (each after
  the layers it reads from), the order of ``model.layers``;
- ``sources[j]``: where layer ``j`` reads from, as *value ids*: ``0 .. n_inputs - 1``
  are the model's inputs and ``n_inputs + j`` is the output of layer ``j``;
- ``outputs``: the value ids of the model's outputs.

A forward pass computes the values in that order; a backward pass goes through the
layers in reverse, and a value that fed several layers receives the sum of their
gradients (:func:`run_backward`).

A layer is called once: it keeps one forward pass's cache for its backward pass, so a
second call would overwrite the first's. Weight sharing is not supported; make a new
layer.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import numpy as np

# the layers called on Tensors (see the module: once per layer); weak, so that a
# model's layers are freed with it
_CALLED: weakref.WeakSet = weakref.WeakSet()


class Tensor:
    """A symbolic tensor: the shape of one example, and how it is computed.

    Attributes:
        shape: one example's shape, batch axis excluded, e.g. ``(16, 32, 32)``.
        layer: the layer that produces it, or None for an :func:`Input`.
        inputs: the Tensors that layer reads, in order.
        name: an Input's name (None for a layer's output).
        takes_ids: an Input of integer ids (``Input((T,), dtype="int")``).
    """

    def __init__(self, shape, layer=None, inputs=(), name=None, takes_ids=False):
        self.shape = tuple(int(d) for d in shape)
        self.layer = layer
        self.inputs = list(inputs)
        self.name = name
        self.takes_ids = takes_ids

    def __repr__(self) -> str:
        shape = ", ".join(["N", *map(str, self.shape)])
        origin = "Input" if self.layer is None else repr(self.layer)
        return f"<Tensor ({shape}) from {origin}>"


def Input(shape: Sequence[int], name: str | None = None, dtype: str = "float"):  # noqa: N802 (Keras' name)
    """A model input: one example's ``shape`` without the batch axis, e.g.
    ``(3, 32, 32)``; ``dtype="int"`` for token ids that an Embedding reads.

    Returns:
        Tensor: the tensor to call layers on.
    """
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    ok = isinstance(shape, (tuple, list)) and len(shape) > 0
    ok = ok and all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1
        for d in shape
    )
    if not ok:
        raise ValueError(
            "Input: shape must be positive sizes without the batch axis, such as "
            f"(3, 32, 32), got {shape!r}"
        )
    if dtype not in ("float", "int"):
        raise ValueError(f"Input: dtype must be 'float' or 'int', got {dtype!r}")
    return Tensor(shape, name=name, takes_ids=dtype == "int")


def is_symbolic(x) -> bool:
    """Whether ``x`` is a Tensor or a list of them (a layer call that builds a
    graph, not one that computes)."""
    if isinstance(x, Tensor):
        return True
    return isinstance(x, (list, tuple)) and any(isinstance(t, Tensor) for t in x)


def connect(layer, x) -> Tensor:
    """``layer(x)`` on symbolic tensors: the layer built for their shapes, and the
    Tensor of its output (see the module)."""
    many = getattr(layer, "multiple_inputs", False)
    tensors = list(x) if isinstance(x, (list, tuple)) else [x]
    if not all(isinstance(t, Tensor) for t in tensors):
        kinds = [type(t).__name__ for t in tensors]
        raise TypeError(
            f"{layer!r}: cannot mix symbolic Tensors and arrays in a call, got {kinds}"
        )
    if many and (not isinstance(x, (list, tuple)) or len(tensors) < 2):
        raise TypeError(f"{layer!r}: expected a list of two or more Tensors, got {x!r}")
    if not many and len(tensors) != 1:
        raise TypeError(f"{layer!r}: takes one Tensor, got a list of {len(tensors)}")
    if layer in _CALLED:
        raise ValueError(
            f"{layer!r} is already used in a graph (it keeps one call's cache for "
            "its backward pass); call a new layer instead"
        )
    shape = [t.shape for t in tensors] if many else tensors[0].shape
    if not layer.built:
        layer.build(shape)
    out = Tensor(layer.output_shape(shape), layer=layer, inputs=tensors)
    _CALLED.add(layer)
    return out


def is_called(layer) -> bool:
    """Whether ``layer`` was called on Tensors (it belongs to a graph)."""
    return layer in _CALLED


def _as_list(tensors, what: str) -> list[Tensor]:
    items = list(tensors) if isinstance(tensors, (list, tuple)) else [tensors]
    if not items or not all(isinstance(t, Tensor) for t in items):
        raise TypeError(
            f"Model: {what} must be a Tensor or a list of Tensors (from "
            f"cnnumpy.Input and layer calls), got {tensors!r}"
        )
    return items


def trace(inputs, outputs, order=None) -> tuple[list, list[list[int]], list[int]]:
    """``(layers, sources, outputs)`` of the graph from ``inputs`` to ``outputs``
    (see the module): the layers in the order of a depth-first walk from the
    outputs, each after its inputs, or in ``order`` (a list of the same layers, each
    after the layers it reads: a saved model's order).

    Raises:
        ValueError: an input is not an ``Input``, or is given twice, or no output
            depends on it; an output depends on an Input not among ``inputs``;
            ``order`` is not an order of the graph's layers.
    """
    inputs = _as_list(inputs, "inputs")
    outputs = _as_list(outputs, "outputs")
    ids: dict[int, int] = {}  # id(Tensor) -> value id
    for k, t in enumerate(inputs):
        if t.layer is not None:
            raise ValueError(f"Model: inputs[{k}] is {t!r}, not a cnnumpy.Input")
        if id(t) in ids:
            raise ValueError(f"Model: inputs[{k}] is given twice")
        ids[id(t)] = k
    walked = _walk(outputs, set(ids))
    if order is not None:
        walked = _in_order(walked, order)
    for t in walked:
        ids[id(t)] = len(ids)
    layers = [t.layer for t in walked]
    sources = [[ids[id(s)] for s in t.inputs] for t in walked]
    output_ids = [ids[id(t)] for t in outputs]
    used = {s for srcs in sources for s in srcs} | set(output_ids)
    for k in range(len(inputs)):
        if k not in used:
            raise ValueError(f"Model: no output depends on inputs[{k}]")
    return layers, sources, output_ids


def _walk(outputs: list[Tensor], known: set[int]) -> list[Tensor]:
    """The layers' Tensors that ``outputs`` depend on, each after the Tensors it
    reads: a depth-first walk, first inputs first, with a stack (no recursion
    limit). ``known``: the ids of the model's Inputs, where the walk stops."""
    done, walked = set(known), []
    for root in outputs:
        stack = [root]
        while stack:
            t = stack[-1]
            if id(t) in done:
                stack.pop()
                continue
            if t.layer is None:
                raise ValueError(
                    f"Model: an output depends on {t!r} ({t.name or 'unnamed'}), "
                    "which is not among the model's inputs"
                )
            pending = [s for s in t.inputs if id(s) not in done]
            if pending:
                stack.extend(reversed(pending))  # the first input first
                continue
            stack.pop()
            done.add(id(t))
            walked.append(t)
    return walked


def _in_order(walked: list[Tensor], order) -> list[Tensor]:
    """``walked`` rearranged in the order of the layers ``order``, checked: the same
    layers, each after the layers it reads."""
    by_layer = {id(t.layer): t for t in walked}
    order = list(order)
    dead = [j for j, layer in enumerate(order) if id(layer) not in by_layer]
    if dead:
        raise ValueError(
            f"Model: in the layer order, layer {dead[0]} ({order[dead[0]]!r}) leads "
            "to no output"
        )
    if len({id(layer) for layer in order}) != len(walked):
        raise ValueError(
            f"Model: the layer order must list the graph's {len(walked)} layers once "
            f"each, got {len(order)} entries"
        )
    seen: set[int] = set()
    for j, layer in enumerate(order):
        t = by_layer[id(layer)]
        late = [s.layer for s in t.inputs if s.layer is not None and id(s) not in seen]
        if late:
            raise ValueError(
                f"Model: in the layer order, layer {j} ({layer!r}) comes before "
                f"{late[0]!r}, which it reads"
            )
        seen.add(id(t))
    return [by_layer[id(layer)] for layer in order]


# -- what the passes and the checks share ----------------------------------------------
def arguments(layer, values: list, srcs: list[int]):
    """What ``layer`` is called on: the value of its one source, or the list of its
    sources' values for a merge layer."""
    if getattr(layer, "multiple_inputs", False):
        return [values[s] for s in srcs]
    return values[srcs[0]]


def value_shapes(layers, sources, input_shapes) -> list[tuple[int, ...]]:
    """The shape of every value (one example's), inputs first, from the layers'
    ``output_shape``: nothing runs."""
    shapes = [tuple(s) for s in input_shapes]
    for layer, srcs in zip(layers, sources, strict=True):
        shapes.append(tuple(layer.output_shape(arguments(layer, shapes, srcs))))
    return shapes


def last_uses(sources, outputs) -> list[list[int]]:
    """For each layer ``j``, the values no layer after it reads (and that are not
    outputs): what a forward pass may let go once layer ``j`` has run."""
    last = {}
    for j, srcs in enumerate(sources):
        for s in srcs:
            last[s] = j
    freed = [[] for _ in sources]
    for value, j in last.items():
        if value not in outputs:
            freed[j].append(value)
    return freed


def accumulate(grads: dict, value: int, grad) -> None:
    """Add ``grad`` to the gradient of ``value``: a value read by several layers gets
    the sum of their gradients. A new array, never in place: a layer may hand the
    same array to several inputs (Add)."""
    if grad is None:
        return
    grads[value] = grad if value not in grads else grads[value] + grad


def run_forward(layers, sources, outputs, inputs: list, training: bool) -> list:
    """The graph's forward pass on ``inputs`` (one array per model input): the
    output values, in order. A value is let go once no later layer reads it."""
    values: dict[int, np.ndarray] = dict(enumerate(inputs))
    n = len(inputs)
    freed = last_uses(sources, outputs)
    for j, (layer, srcs) in enumerate(zip(layers, sources, strict=True)):
        values[n + j] = layer.forward(arguments(layer, values, srcs), training=training)
        for value in freed[j]:
            del values[value]
    return [values[k] for k in outputs]


def run_backward(layers, sources, outputs, douts: list, n_inputs: int) -> list:
    """The graph's backward pass: ``douts`` (one per output) go back through the
    layers in reverse order. A value ``v`` read by several layers gets the sum of
    what each sends back, the chain rule over every path from ``v`` to the loss::

        dL/dv = sum over the layers j reading v of  dL/dy_j * dy_j/dv

    (:func:`accumulate`). Returns dL/dx of each model input (None if not needed)."""
    grads: dict[int, np.ndarray] = {}
    for k, dout in zip(outputs, douts, strict=True):
        accumulate(grads, k, dout)
    for j in reversed(range(len(layers))):
        layer, srcs = layers[j], sources[j]
        dout = grads.pop(n_inputs + j)
        dxs = layer.backward(dout)
        if not getattr(layer, "multiple_inputs", False):
            dxs = [dxs]
        for s, dx in zip(srcs, dxs, strict=True):
            accumulate(grads, s, dx)
    return [grads.get(k) for k in range(n_inputs)]
