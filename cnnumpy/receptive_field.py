"""The receptive field of a model's units: which input pixels one output value sees.

Seed 003 asks why VGGNet uses only 3x3 filters: three 3x3 convolutions in a row see a
7x7 patch of the input ("Le champ récepteur de 3 filtres 3x3 consécutifs est 7x7"),
like one 7x7 convolution, with ``3 * 9 * C^2 = 27 C^2`` weights instead of ``49 C^2``
(C channels in and out, no bias), and two more non-linearities.

Along each spatial axis, a layer with a window of ``k`` values (dilation ``d``: the
window spans ``k_eff = d (k - 1) + 1`` input values), step ``s`` and ``p`` padding
before the first value maps the field of its input units to that of its outputs
(Dumoulin & Visin 2016; the classic recurrence)::

    r_out     = r_in + (k_eff - 1) * j_in          size: input pixels one unit sees
    j_out     = j_in * s                           jump: input pixels between two
                                                   neighbouring units (effective stride)
    start_out = start_in + ((k_eff - 1) / 2 - p) * j_in
                                                   centre of the first unit's field

starting from the input itself, ``r = 1, j = 1, start = 0`` (pixel ``i``'s centre is at
``i``; a negative start lies in the padding). Convolutions and window poolings (1-D
and 2-D) move the field; activations, BatchNorm, LocalResponseNorm and Dropout act
value by value (or across channels) and keep it. After Flatten, Dense,
GlobalAvgPool2D or a recurrent layer a unit sees the whole input: the spatial part of
the network, and the fields, end there.
"""

from __future__ import annotations

from typing import NamedTuple

from cnnumpy.layers import (
    GRU,
    LSTM,
    AvgPool1D,
    AvgPool2D,
    BatchNorm,
    Conv1D,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    LocalResponseNorm,
    MaxPool1D,
    MaxPool2D,
    SimpleRNN,
    Softmax,
)
from cnnumpy.textbook.padding import resolve_padding, resolve_padding_1d

_CONVS = (Conv1D, Conv2D)
_POOLS = (MaxPool1D, MaxPool2D, AvgPool1D, AvgPool2D)
_SAME_PLACES = (BatchNorm, LocalResponseNorm, Dropout)  # value by value, or channels
_ACTIVATIONS = "cnnumpy.layers.activations"  # every activation there is element-wise
# after these a unit sees the whole input: the spatial part ends
_WHOLE_INPUT = (Flatten, Dense, GlobalAvgPool2D, SimpleRNN, LSTM, GRU, Embedding)


class Field(NamedTuple):
    """The receptive field of one layer's output units, one entry per spatial axis
    (height and width; the length for a sequence).

    Attributes:
        index: the layer's position in ``model.layers``.
        layer: the layer's repr, e.g. ``Conv2D(64, 3, padding=1)``.
        size: ``r``, the input pixels one output unit sees along each axis.
        jump: ``j``, the input pixels between two neighbouring output units.
        start: the centre of the first output unit's field, in input pixels.
    """

    index: int
    layer: str
    size: tuple[int, ...]
    jump: tuple[int, ...]
    start: tuple[float, ...]


def receptive_field(model, layer: int | str | Layer | None = None):
    """The receptive field of every layer of the spatial part of ``model``, or of one.

    Args:
        model: a built model (``input_shape`` given).
        layer: None for every layer up to the first that has no spatial axes; else
            one layer, by index in ``model.layers`` (negative counts from the end),
            by name, or the layer itself.

    Returns:
        list[Field] | Field: a list of fields (``layer`` None), or one field.

    Raises:
        ValueError: the model is not built, the layer is not in the model, it comes
            after the spatial part (its units see the whole input), or a layer before
            it does not say how it moves positions (a Softmax over a spatial axis, a
            user's own layer).
    """
    if model.input_shape is None:
        raise ValueError(
            "receptive_field: the model is not built; pass input_shape= to Sequential"
        )
    if layer is None:
        return _fields(model, len(model.layers))
    index = _index_of(model, layer)
    fields = {field.index: field for field in _fields(model, index + 1)}
    if index not in fields:
        first = next(j for j in range(index + 1) if j not in fields)
        shown = repr(model.layers[index])
        raise ValueError(
            f"receptive_field: layer {index} {shown} comes after the spatial part "
            f"(from layer {first} {model.layers[first]!r} on, every unit "
            "sees the whole input)"
        )
    return fields[index]


def _fields(model, stop: int) -> list[Field]:
    """Fields of ``model.layers[:stop]`` that have spatial units: a layer after which
    a unit sees the whole input, and every layer reading from it, has none; a
    ValueError for a layer that does not say how it moves positions. In a graph a
    merge (Add, Concatenate, Multiply) sees what each of its inputs sees: the union
    of their fields."""
    shapes = model.value_shapes()
    axes = len(shapes[0]) - 1
    fields = {
        k: ((1,) * axes, (1,) * axes, (0.0,) * axes) for k in range(model.n_inputs)
    }
    found = []
    for index, (layer, srcs) in enumerate(model.nodes[:stop]):
        if not all(s in fields for s in srcs):
            continue  # reads units that see the whole input
        if layer.multiple_inputs:
            field = _union([fields[s] for s in srcs], index, layer)
        else:
            field = _moved(layer, shapes[srcs[0]], fields[srcs[0]], index)
            if field is None:
                continue
        fields[model.n_inputs + index] = field
        found.append(Field(index, repr(layer), *field))
    return found


def _moved(layer, shape, field, index: int):
    """``(size, jump, start)`` of ``layer``'s units from its input's ``field``; None
    after a layer whose units see the whole input."""
    geometry = _window(layer, shape)
    if geometry is None and not _keeps_places(layer, shape):
        if type(layer) in _WHOLE_INPUT:
            return None
        raise ValueError(
            f"receptive_field: layer {index} {layer!r}: expected a convolution, "
            "a pooling or a layer acting value by value (or across channels)"
        )
    size, jump, start = (list(f) for f in field)
    for axis, (k_eff, s, before) in enumerate(geometry or ()):
        start[axis] += ((k_eff - 1) / 2 - before) * jump[axis]
        size[axis] += (k_eff - 1) * jump[axis]
        jump[axis] *= s
    return tuple(size), tuple(jump), tuple(start)


def _union(fields: list, index: int, layer):
    """The field of a merge: along each axis, the span from the leftmost to the
    rightmost input pixel any of its inputs sees (their jumps must agree)."""
    jumps = {f[1] for f in fields}
    if len(jumps) != 1:
        raise ValueError(
            f"receptive_field: layer {index} {layer!r} merges units of different "
            f"jumps {sorted(jumps)}"
        )
    size, start = [], []
    for axis in range(len(fields[0][0])):
        lefts = [f[2][axis] - (f[0][axis] - 1) / 2 for f in fields]
        rights = [f[2][axis] + (f[0][axis] - 1) / 2 for f in fields]
        size.append(int(round(max(rights) - min(lefts))) + 1)
        start.append((max(rights) + min(lefts)) / 2)
    return tuple(size), jumps.pop(), tuple(start)


def _window(layer, shape: tuple[int, ...]):
    """``[(k_eff, stride, padding before)]`` per spatial axis of a convolution or a
    window pooling on input ``shape`` (no batch axis); None for other layers."""
    if type(layer) in _POOLS:
        return list(zip(layer.pool_size, layer.stride, layer.padding, strict=True))
    if type(layer) not in _CONVS:
        return None
    sizes, kernel, stride = shape[1:], layer.kernel_size, layer.stride
    if isinstance(layer, Conv1D):
        pads = resolve_padding_1d(layer.padding, kernel[0], stride[0], sizes[0])[1:]
    else:
        pads = resolve_padding(layer.padding, kernel, stride, sizes)
    # cnnumpy's convolutions have no dilation yet; one that has it spans d (k - 1) + 1
    dilation = getattr(layer, "dilation", 1)
    if isinstance(dilation, int):
        dilation = (dilation,) * len(sizes)
    return [
        (d * (k - 1) + 1, s, before)
        for k, s, (before, _), d in zip(kernel, stride, pads, dilation, strict=True)
    ]


def _keeps_places(layer, shape: tuple[int, ...]) -> bool:
    """Whether ``layer`` maps each position to the same position (value by value,
    or across channels)."""
    if isinstance(layer, Softmax):  # along one axis: the channels keep places
        return layer.axis in (1, 1 - (len(shape) + 1))
    return type(layer) in _SAME_PLACES or type(layer).__module__ == _ACTIVATIONS


def _index_of(model, layer) -> int:
    """The position of ``layer`` (an index, a name or the layer) in the model."""
    count = len(model.layers)
    if isinstance(layer, bool):
        raise TypeError(f"receptive_field: expected a layer, got {layer!r}")
    if isinstance(layer, int):
        if not -count <= layer < count:
            raise ValueError(
                f"receptive_field: layer index {layer} out of range for a model of "
                f"{count} layers"
            )
        return layer % count
    for index, candidate in enumerate(model.layers):
        if candidate is layer or (isinstance(layer, str) and candidate.name == layer):
            return index
    if isinstance(layer, (str, Layer)):
        names = [lay.name for lay in model.layers if lay.name]
        raise ValueError(
            f"receptive_field: layer {layer!r} is not in the model (named layers: "
            f"{', '.join(names) or 'none'})"
        )
    raise TypeError(
        "receptive_field: expected a layer index, name or Layer, got "
        f"{type(layer).__name__}"
    )
