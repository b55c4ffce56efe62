"""What a model file may hold, checked before anything is set in a model.

Every check runs on what is known so far, in the order a loader learns it: the
architecture's planned tensor shapes from the layers' configs alone (nothing
allocated), the header's declared tensors against the model and its optimiser (no
tensor byte read), then the values once read (finite, variances >= 0). Each raises a
``ModelFileError`` that names the file.
"""

from __future__ import annotations

import math

import numpy as np

from cnnumpy import graph, graph_config
from cnnumpy.saving.header import ModelFileError

__all__ = [
    "check_declared",
    "check_tensors",
    "check_values",
    "planned_tensors",
    "weight_tensors",
]

# Values in one example at any layer's input or output: a loaded architecture beyond
# this (8 GiB of float32 per example) is refused before anything is allocated.
_MAX_EXAMPLE_SIZE = 2**31
# A checkpoint's extra.* arrays are its callbacks' state: EarlyStopping keeps one copy
# of the weights. A few copies, plus a MiB of arrays of one's own, are allowed.
_EXTRA_COPIES = 4
_EXTRA_SLACK = 2**20
# Tensors that must be >= 0, else NaN follows: variances (means of squares) whose
# square root is taken, BatchNorm's running_var and the optimisers' second moments
# (Adam's v, RMSProp's square_avg); and Adam's step count t, as 1 - beta**t divides.
_NON_NEGATIVE_STATE = (".running_var",)
_NON_NEGATIVE_SLOTS = (".v", ".square_avg", ".step")


def weight_tensors(model) -> dict[str, np.ndarray]:
    """Every weight and statistic of ``model`` by the name a model file gives it:
    ``layers.{i}.{key}`` for ``key`` in layer ``i``'s ``params`` and ``state``."""
    return {
        f"layers.{i}.{key}": value
        for i, layer in enumerate(model.layers)
        for key, value in {**layer.params, **layer.state}.items()
    }


def _weight_shapes(model) -> dict[str, tuple]:
    return {name: value.shape for name, value in weight_tensors(model).items()}


def planned_tensors(layers: list, spec: dict, where: str) -> dict[str, tuple]:
    """The tensor shapes ``layers`` will create, from their configs alone.

    Nothing is allocated: a file of a few bytes can describe ``Dense(10**9)``, which
    ``build`` would allocate and initialise before the file's tensors are looked at.
    One example is bounded too: no layer's input or output may hold ``2**31`` values
    or more (8 GiB of float32 per example), whatever the weights.
    """
    planned = {}
    try:
        if spec.get("class") == "Model":
            _, sources, _ = graph_config.check_config(spec)
            graph_config.check_arities(layers, sources)
            input_shapes = [tuple(e["shape"]) for e in spec["inputs"]]
        else:
            shape = spec["input_shape"]
            if not (
                isinstance(shape, list)
                and shape
                and all(type(d) is int and d >= 1 for d in shape)
            ):
                raise ValueError(
                    f"input_shape must be a list of ints >= 1, got {shape!r}"
                )
            sources, input_shapes = [[j] for j in range(len(layers))], [tuple(shape)]
        shapes = list(input_shapes)
        for k, shape in enumerate(shapes):
            what = "input_shape" if len(shapes) == 1 else f"inputs[{k}] shape"
            _check_example_size(shape, what)
        for i, (layer, srcs) in enumerate(zip(layers, sources, strict=True)):
            shape = graph.arguments(layer, shapes, srcs)
            params, state = layer.param_shapes(shape), layer.state_shapes(shape)
            if params is None or state is None:  # a user's layer: checked once built
                planned.update({f"layers.{i}.": None})
            else:
                tensor_shapes = {**params, **state}
                planned.update({f"layers.{i}.{k}": v for k, v in tensor_shapes.items()})
            shapes.append(tuple(layer.output_shape(shape)))
            _check_example_size(
                shapes[-1], f"layer {i} ({type(layer).__name__}) output"
            )
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise ModelFileError(
            f"{where}: the architecture cannot be built: {exc}"
        ) from None
    return planned


def _check_example_size(shape: tuple[int, ...], what: str) -> None:
    if math.prod(shape) >= _MAX_EXAMPLE_SIZE:
        raise ValueError(
            f"{what} {shape} holds {math.prod(shape)} values per example, "
            f"more than 2**31"
        )


def check_tensors(expected: dict[str, tuple], tensors: dict, where: str) -> None:
    """The file's ``layers.*`` tensors must be exactly ``expected``, and floats.

    ``tensors`` maps names to arrays, or to the header's ``TensorInfo`` (shape and
    dtype) before the arrays are read. A prefix ``"layers.{i}."`` mapped to None (a
    layer whose shapes are unknown before it is built) lets any tensors of that layer
    through, to be checked once built.
    """
    unknown = tuple(k for k, v in expected.items() if v is None)
    expected = {k: v for k, v in expected.items() if v is not None}
    present = {
        k for k in tensors if k.startswith("layers.") and not k.startswith(unknown)
    }
    missing, extra = sorted(set(expected) - present), sorted(present - set(expected))
    if missing or extra:
        raise ModelFileError(
            f"{where}: the weights do not match the architecture "
            f"(missing: {missing[:5]}, unexpected: {extra[:5]})"
        )
    for name, shape in expected.items():
        if tensors[name].shape != shape:
            raise ModelFileError(
                f"{where}: weight {name} has shape {tensors[name].shape}, "
                f"the architecture expects {shape}"
            )
        if not np.issubdtype(tensors[name].dtype, np.floating):
            raise ModelFileError(
                f"{where}: weight {name} has dtype {tensors[name].dtype}"
            )


def check_declared(model, optimizer, declared: dict, where: str) -> None:
    """Refuse a file whose header declares tensors that ``model`` does not call for.

    Checked on the header alone (``TensorInfo``), before a byte of tensor data is
    read: a 2 GB tensor added to a small model's file is refused, not read. Every name
    must be one ``model_payload`` writes: ``layers.{i}.{key}`` exactly the model's
    weights and statistics, ``optimizer.{i}.{key}.{slot}`` a slot of ``optimizer``
    for one of them, in the slot's shape, and ``extra.*`` (the callbacks' arrays of a
    checkpoint) at most a few copies of the weights in all.
    """
    check_tensors(_weight_shapes(model), declared, where)
    slots = _slot_shapes(model, optimizer)
    extras = {}
    for name, info in declared.items():
        if name.startswith("layers."):
            continue  # checked above
        if name.startswith("extra."):
            extras[name] = info
        elif name not in slots:
            raise ModelFileError(_unexpected_tensor(name, optimizer, where))
        elif info.shape != slots[name]:
            raise ModelFileError(
                f"{where}: optimiser slot {name} has shape {info.shape}, "
                f"the architecture expects {slots[name]}"
            )
        elif not np.issubdtype(info.dtype, np.floating):
            raise ModelFileError(
                f"{where}: optimiser slot {name} has dtype {info.dtype}, not floats"
            )
    _check_extra_size(model, extras, where)


def _slot_shapes(model, optimizer) -> dict[str, tuple]:
    """Every ``optimizer.{i}.{key}.{slot}`` tensor ``optimizer`` may have saved.

    Slots are created at a parameter's first step, so a file may hold fewer.
    """
    if optimizer is None:
        return {}
    return {
        f"optimizer.{i}.{key}.{slot}": optimizer.slot_shape(slot, p.shape)
        for i, layer in enumerate(model.layers)
        for key, p in layer.params.items()
        for slot in optimizer.slot_names()
    }


def _unexpected_tensor(name: str, optimizer, where: str) -> str:
    if not name.startswith("optimizer."):
        return (
            f"{where}: unexpected tensor {name!r}: a model file holds only "
            "layers.*, optimizer.* and extra.* tensors"
        )
    if optimizer is None:
        return f"{where}: unexpected tensor {name!r}: the file has no optimiser"
    return (
        f"{where}: unexpected tensor {name!r}: expected optimizer.{{layer}}.{{weight}}"
        f".{{slot}} for a weight of the model and a slot of "
        f"{type(optimizer).__name__} ({', '.join(optimizer.slot_names()) or 'none'})"
    )


def _check_extra_size(model, extras: dict, where: str) -> None:
    """The ``extra.*`` tensors may hold a few copies of the weights, no more."""
    values = sum(math.prod(shape) for shape in _weight_shapes(model).values())
    weight_bytes = values * np.dtype(model.dtype).itemsize
    limit = _EXTRA_COPIES * weight_bytes + _EXTRA_SLACK
    total = sum(info.nbytes for info in extras.values())
    if total > limit:
        largest = max(extras, key=lambda name: extras[name].nbytes)
        raise ModelFileError(
            f"{where}: the extra tensors declare {total} bytes (the largest, "
            f"{largest!r}, has shape {extras[largest].shape}); expected at most "
            f"{limit} ({_EXTRA_COPIES} copies of the model's {weight_bytes} bytes of "
            "weights and 1 MiB)"
        )


def check_values(model, tensors: dict, where: str) -> None:
    """Every weight, statistic and optimiser slot must be finite, variances >= 0.

    A NaN read here would only show later, as an accuracy of "nan%". Values are
    checked in the model's dtype, in which a float64 1e300 becomes inf in float32.
    """
    dtype = np.dtype(model.dtype)
    for name, array in tensors.items():
        if name.startswith("layers."):
            _check_finite(name, array, dtype, _NON_NEGATIVE_STATE, where)
        elif name.startswith("optimizer."):
            _check_finite(name, array, dtype, _NON_NEGATIVE_SLOTS, where)


def _check_finite(name, array, dtype, non_negative: tuple, where: str) -> None:
    with np.errstate(over="ignore"):
        values = array.astype(dtype, copy=False)
    bad = values.size - np.count_nonzero(np.isfinite(values))
    if bad:
        raise ModelFileError(
            f"{where}: tensor {name} has {bad} of {values.size} values that are NaN "
            f"or infinite (as {dtype.name}); expected finite numbers"
        )
    if name.endswith(non_negative):
        negative = np.count_nonzero(values < 0)
        if negative:
            raise ModelFileError(
                f"{where}: tensor {name} has {negative} of {values.size} values "
                "below 0; expected values >= 0 (a variance or a step count)"
            )
