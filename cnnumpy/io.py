"""Saving and loading models: safe, complete, atomic, readable by other tools.

The file format (safetensors plus checked JSON metadata) is described in
``cnnumpy.safefile``. ``save_model`` / ``load_model`` keep everything needed to predict
and to continue training: architecture, weights, BatchNorm statistics, the input
preprocessing (``model.preprocessing``), optimiser state, history and, for checkpoints,
the training position and random generator states. ``save_weights`` / ``load_weights``
keep weights only. Loading never executes code, and never half-loads: every tensor and
setting is checked before anything is written into a model. The tensors the header
declares are checked against the architecture before their bytes are read, and their
values (finite, variances >= 0) once read.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np

from cnnumpy.fileio import atomic_write_bytes
from cnnumpy.interop import from_torch_state_dict, to_torch_state_dict
from cnnumpy.safefile import (
    ModelFileError,
    dump_bytes,
    load_bytes,  # noqa: F401 (io.load_bytes: a file already in memory)
    open_model_file,
)

__all__ = [
    "ModelFileError",
    "check_preprocessing",
    "from_torch_state_dict",
    "load_model",
    "load_weights",
    "restore_checkpoint",
    "save_model",
    "save_weights",
    "to_torch_state_dict",
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


# -- model level -----------------------------------------------------------------------
def model_payload(
    model,
    include_optimizer: bool = True,
    training_state: dict | None = None,
    extra_tensors: dict | None = None,
):
    """``(tensors, metadata)`` of a model file for ``model``: the weights and state
    as named tensors (``layers.{i}.{key}``, ``optimizer.*``, ``extra.*``) and the
    architecture, optimiser and training state as JSON metadata. Process replicas
    use it too, to rebuild the model in each replica."""
    from cnnumpy import __version__
    from cnnumpy.rng import generator_state

    if model.input_shape is None:
        raise ValueError(
            "save: the model is not built; pass input_shape= to Sequential"
        )
    tensors, layers = {}, []
    for i, layer in enumerate(model.layers):
        for key, value in {**layer.params, **layer.state}.items():
            tensors[f"layers.{i}.{key}"] = value
        entry = {
            "class": type(layer).__name__,
            "config": layer.get_config(),
            "name": layer.name,
        }
        if layer._rng is not None:
            entry["rng"] = generator_state(layer._rng)
        layers.append(entry)
    meta = {
        "cnnumpy_version": __version__,
        "model": {
            "name": model.name,
            "input_shape": list(model.input_shape),
            "dtype": np.dtype(model.dtype).name,
            "layers": layers,
        },
    }
    if model.loss is not None:
        meta["compile"] = {"loss": model.loss.name, "metrics": list(model.metrics)}
    if include_optimizer and model.optimizer is not None:
        state = model.optimizer.state_dict()
        slots = {}
        for slot, arrays in state["slots"].items():
            slots[slot] = sorted(arrays)
            for name, value in arrays.items():
                tensors[f"optimizer.{slot}.{name}"] = value
        meta["optimizer"] = {
            "class": type(model.optimizer).__name__,
            "config": model.optimizer.get_config(),
            "iterations": int(state["iterations"]),
            "lr": float(state["lr"]),
            "slots": slots,
        }
    preprocessing = getattr(model, "preprocessing", None)
    if preprocessing is not None:  # how pixels become inputs, for the CLI tools
        meta["preprocessing"] = check_preprocessing(
            preprocessing, model.input_shape, "save"
        )
    if model.history is not None:
        meta["history"] = {
            "epoch": list(model.history.epoch),
            "history": model.history.history,
        }
    if training_state is not None:
        meta["training"] = training_state
    for key, value in (extra_tensors or {}).items():
        tensors[f"extra.{key}"] = value
    return tensors, meta


def save_model(
    model,
    path,
    include_optimizer: bool = True,
    training_state: dict | None = None,
    extra_tensors: dict | None = None,
) -> None:
    """Write the whole model to one file atomically.

    The file holds the architecture, weights, optimiser and history; checkpoints add
    their training state (JSON) and extra arrays (e.g. EarlyStopping's best weights).
    """
    tensors, meta = model_payload(
        model, include_optimizer, training_state, extra_tensors
    )
    atomic_write_bytes(path, dump_bytes(tensors, meta))


def layers_from_meta(meta: dict, where: str) -> list:
    """The (unbuilt) layers the metadata's ``"model"`` entry describes, each made by
    its class's ``from_config``; a ModelFileError naming ``where`` if it is bad."""
    from cnnumpy.layers import LAYERS

    spec = meta.get("model")
    if not isinstance(spec, dict) or not isinstance(spec.get("layers"), list):
        raise ModelFileError(f"{where}: the file has no architecture (weights only?)")
    layers = []
    for i, entry in enumerate(spec["layers"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            raise ModelFileError(f"{where}: layer {i} has a corrupted config")
        name = entry.get("class")
        cls = LAYERS.get(name) if isinstance(name, str) else None
        if cls is None:
            raise ModelFileError(
                f"{where}: unknown layer type {entry.get('class')!r} "
                f"(layer {i}); known: {', '.join(sorted(LAYERS))}"
            )
        try:
            layer = cls.from_config(entry["config"])
        except (TypeError, ValueError) as exc:
            raise ModelFileError(
                f"{where}: layer {i} ({entry['class']}) has an invalid config: {exc}"
            ) from None
        layer.name = entry.get("name")
        layers.append(layer)
    return layers


def _expected_tensors(model) -> dict[str, tuple]:
    return {
        f"layers.{i}.{k}": v.shape
        for i, layer in enumerate(model.layers)
        for k, v in {**layer.params, **layer.state}.items()
    }


def _planned_tensors(layers: list, spec: dict, where: str) -> dict[str, tuple]:
    """The tensor shapes ``layers`` will create, from their configs alone.

    Nothing is allocated: a file of a few bytes can describe ``Dense(10**9)``, which
    ``build`` would allocate and initialise before the file's tensors are looked at.
    One example is bounded too: no layer's input or output may hold ``2**31`` values
    or more (8 GiB of float32 per example), whatever the weights.
    """
    planned = {}
    try:
        shape = spec["input_shape"]
        if not (
            isinstance(shape, list)
            and shape
            and all(type(d) is int and d >= 1 for d in shape)
        ):
            raise ValueError(f"input_shape must be a list of ints >= 1, got {shape!r}")
        shape = tuple(shape)
        _check_example_size(shape, "input_shape")
        for i, layer in enumerate(layers):
            params, state = layer.param_shapes(shape), layer.state_shapes(shape)
            if params is None or state is None:  # a user's layer: checked once built
                planned.update({f"layers.{i}.": None})
            else:
                shapes = {**params, **state}
                planned.update({f"layers.{i}.{k}": v for k, v in shapes.items()})
            shape = tuple(layer.output_shape(shape))
            _check_example_size(shape, f"layer {i} ({type(layer).__name__}) output")
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


def _check_weights(model, tensors: dict, where: str) -> None:
    _check_tensors(_expected_tensors(model), tensors, where)


def _check_tensors(expected: dict[str, tuple], tensors: dict, where: str) -> None:
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


def _check_declared(model, optimizer, declared: dict, where: str) -> None:
    """Refuse a file whose header declares tensors that ``model`` does not call for.

    Checked on the header alone (``TensorInfo``), before a byte of tensor data is
    read: a 2 GB tensor added to a small model's file is refused, not read. Every name
    must be one ``model_payload`` writes: ``layers.{i}.{key}`` exactly the model's
    weights and statistics, ``optimizer.{i}.{key}.{slot}`` a slot of ``optimizer``
    for one of them, in the slot's shape, and ``extra.*`` (the callbacks' arrays of a
    checkpoint) at most a few copies of the weights in all.
    """
    _check_weights(model, declared, where)
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
        f"optimizer.{i}.{key}.{slot}": optimizer._slot_shape(slot, p.shape)
        for i, layer in enumerate(model.layers)
        for key, p in layer.params.items()
        for slot in optimizer._slot_names()
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
        f"{type(optimizer).__name__} ({', '.join(optimizer._slot_names()) or 'none'})"
    )


def _check_extra_size(model, extras: dict, where: str) -> None:
    """The ``extra.*`` tensors may hold a few copies of the weights, no more."""
    values = sum(math.prod(shape) for shape in _expected_tensors(model).values())
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


def _check_values(model, tensors: dict, where: str) -> None:
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


def _assign_weights(model, tensors: dict) -> None:
    for i, layer in enumerate(model.layers):
        for store in (layer.params, layer.state):
            for key in store:
                store[key][...] = tensors[f"layers.{i}.{key}"]


def _optimizer_from_meta(meta: dict, where: str):
    """A new optimiser of the saved class and config, or None if the file has none.

    Its state is loaded by ``_load_optimizer_state`` once the tensors are read.
    """
    from cnnumpy import optimizers

    spec = meta.get("optimizer")
    if spec is None:
        return None
    try:
        cls = optimizers.OPTIMIZERS[spec["class"].lower()]
        return cls(**spec["config"])
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise _invalid_optimizer(exc, where) from None


def _load_optimizer_state(optimizer, meta: dict, tensors: dict, where: str, layers):
    """Give ``optimizer`` the saved step count, learning rate and slots."""
    if optimizer is None:
        return
    spec = meta["optimizer"]
    try:
        slots = {
            slot: {name: tensors[f"optimizer.{slot}.{name}"] for name in names}
            for slot, names in spec["slots"].items()
        }
        optimizer.load_state_dict(
            {"iterations": spec["iterations"], "lr": spec["lr"], "slots": slots},
            layers=layers,
        )
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise _invalid_optimizer(exc, where) from None


def _invalid_optimizer(exc: Exception, where: str) -> ModelFileError:
    return ModelFileError(
        f"{where}: invalid optimiser state ({exc.__class__.__name__}: {exc})"
    )


def _history_from_meta(meta: dict, where: str):
    """The saved History, checked field by field, or None."""
    from cnnumpy.callbacks import History

    saved = meta.get("history")
    if saved is None:
        return None
    epochs = saved.get("epoch", []) if isinstance(saved, dict) else None
    values = saved.get("history", {}) if isinstance(saved, dict) else None
    ok = (
        isinstance(epochs, list)
        and all(isinstance(e, int) for e in epochs)
        and isinstance(values, dict)
        and all(
            isinstance(v, list) and all(isinstance(x, (int, float)) for x in v)
            for v in values.values()
        )
    )
    if not ok:
        raise ModelFileError(f"{where}: corrupted training history")
    history = History()
    history.epoch, history.history = list(epochs), dict(values)
    return history


def _layer_rngs(meta: dict, n_layers: int, where: str) -> list:
    from cnnumpy.rng import generator_from_state

    rngs = []
    for entry in meta["model"]["layers"][:n_layers]:
        state = entry.get("rng")
        try:
            rngs.append(None if state is None else generator_from_state(state))
        except (TypeError, ValueError, KeyError, IndexError, OverflowError) as exc:
            raise ModelFileError(
                f"{where}: corrupted random generator state ({exc})"
            ) from None
    return rngs


def load_model(path) -> Sequential:  # noqa: F821
    """Rebuild a model from ``save_model``: architecture, weights, optimiser, history.

    The model is built from the metadata and every declared tensor checked against it
    before the tensors are read; their values are checked before they are set.

    Raises:
        ModelFileError: the file is truncated, corrupted, not a cnnumpy file,
            inconsistent, holds non-finite weights, or is from a newer format version.
    """
    where = f"load_model({str(path)!r})"
    with open_model_file(path, where) as model_file:
        meta = model_file.metadata
        model = _model_from_meta(meta, model_file.declared, where)
        optimizer, tensors = _read_checked(model_file, model, where)
    _load_optimizer_state(optimizer, meta, tensors, where, model.layers)
    rngs = _layer_rngs(meta, len(model.layers), where)
    history = _history_from_meta(meta, where)
    try:
        preprocessing = check_preprocessing(
            meta.get("preprocessing"), model.input_shape, where
        )
    except ValueError as exc:
        raise ModelFileError(str(exc)) from None
    _assign_weights(model, tensors)
    for layer, rng in zip(model.layers, rngs, strict=True):
        if rng is not None:
            layer.rng = rng
    model.preprocessing = preprocessing
    _compile_from_meta(model, meta, where)
    model.optimizer = optimizer
    model.history = history
    return model


def _model_from_meta(meta: dict, declared: dict, where: str):
    """A new built model of the saved architecture, its tensors not yet set.

    The layers' tensor shapes are first checked, from their configs alone, against
    the tensors the header declares: building allocates and initialises every layer.
    """
    from cnnumpy.model import Sequential
    from cnnumpy.rng import isolated

    layers = layers_from_meta(meta, where)
    spec = meta["model"]
    _check_tensors(_planned_tensors(layers, spec, where), declared, where)
    try:
        input_shape = tuple(int(d) for d in spec["input_shape"])
        dtype = np.dtype(spec.get("dtype", "float32"))
        with isolated():
            model = Sequential(layers, name=spec.get("name"))
            model.astype(dtype)
            model.build(input_shape)
    except (TypeError, ValueError, KeyError, OverflowError, MemoryError) as exc:
        raise ModelFileError(
            f"{where}: the architecture cannot be built: {exc!r}"
        ) from None
    return model


def _compile_from_meta(model, meta: dict, where: str) -> None:
    """Set the saved loss and metrics, or warn and leave the model uncompiled."""
    from cnnumpy import losses
    from cnnumpy import metrics as metrics_module

    compiled = meta.get("compile")
    if not isinstance(compiled, dict):
        return
    try:
        model.loss = losses.get(compiled["loss"])
        model.metrics = {m: metrics_module.get(m) for m in compiled.get("metrics", [])}
    except (KeyError, ValueError, TypeError) as exc:
        # e.g. a user's own Loss class: the weights are still good
        warnings.warn(
            f"{where}: loaded without loss and metrics ({exc}); call compile()",
            stacklevel=3,
        )
        model.loss, model.metrics = None, {}


# -- preprocessing ---------------------------------------------------------------------
PREPROCESSING_KEYS = ("scale", "mean", "std")


def check_preprocessing(value, input_shape, where: str) -> dict | None:
    """``model.preprocessing`` checked field by field, as a new JSON-able dict.

    None, or ``{"scale": s, "mean": [m_c], "std": [s_c]}`` for a model on images
    ``(C, H, W)``: C finite means, C finite stds > 0 and a finite ``s > 0``, which
    standardise pixels as ``x' = (x * s - m_c) / s_c``.

    Raises:
        ValueError: naming the field, what was expected and what was found.
    """
    if value is None:
        return None
    if not isinstance(value, dict) or sorted(value) != sorted(PREPROCESSING_KEYS):
        found = sorted(map(str, value)) if isinstance(value, dict) else _short(value)
        raise ValueError(
            f"{where}: preprocessing must be a dict with the keys scale, mean and "
            f"std, got {found}"
        )
    if input_shape is None or len(input_shape) != 3:
        raise ValueError(
            f"{where}: preprocessing is per channel of images (C, H, W), "
            f"the model takes {input_shape}"
        )
    scale = _finite(value["scale"])
    if scale is None or scale <= 0:
        raise ValueError(
            f"{where}: preprocessing scale must be a number > 0, "
            f"got {_short(value['scale'])}"
        )
    checked = {"scale": scale}
    for key, kind in (("mean", "finite numbers"), ("std", "numbers > 0")):
        numbers = _per_channel(value[key], input_shape[0], positive=key == "std")
        if numbers is None:
            raise ValueError(
                f"{where}: preprocessing {key} must be a list of {kind}, one per "
                f"input channel ({input_shape[0]}), got {_short(value[key])}"
            )
        checked[key] = numbers
    return checked


def _per_channel(values, channels: int, positive: bool) -> list[float] | None:
    """``channels`` finite floats (all > 0 if ``positive``) from a list, else None."""
    if not isinstance(values, (list, tuple)) or len(values) != channels:
        return None
    numbers = [_finite(v) for v in values]
    if any(v is None or (positive and v <= 0) for v in numbers):
        return None
    return numbers


def _finite(value) -> float | None:
    """``value`` as a float if it is a finite int or float (not a bool), else None."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        return None
    return number if math.isfinite(number) else None


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def save_weights(model, path) -> None:
    """Write only the weights (and BatchNorm statistics) of ``model``, atomically."""
    tensors = {
        f"layers.{i}.{k}": v
        for i, layer in enumerate(model.layers)
        for k, v in {**layer.params, **layer.state}.items()
    }
    atomic_write_bytes(path, dump_bytes(tensors, {"kind": "weights"}))


def _read_checked(model_file, model, where: str):
    """``(optimizer, tensors)`` of an open model file for ``model``: the header
    checked against the model and the saved optimiser before any tensor is read,
    then the values (finite, variances >= 0)."""
    optimizer = _optimizer_from_meta(model_file.metadata, where)
    _check_declared(model, optimizer, model_file.declared, where)
    tensors = model_file.read_tensors()
    _check_values(model, tensors, where)
    return optimizer, tensors


def load_weights(model, path) -> None:
    """Copy weights from a file into ``model``; all-or-nothing.

    The shapes must match, checked from the file's header before its tensors are
    read; the values must be finite (BatchNorm's running_var >= 0).
    """
    where = f"load_weights({str(path)!r})"
    with open_model_file(path, where) as model_file:
        _optimizer, tensors = _read_checked(model_file, model, where)
    _assign_weights(model, tensors)


def restore_checkpoint(model, path, check_training=None) -> dict | None:
    """Load a checkpoint of the same architecture into ``model``.

    Weights, optimiser state, layer generators, history and (with ``check_training``,
    a function that parses the training state or raises) the training state are all
    checked before anything is set; the tensors the header declares, before they are
    read.

    Returns:
        The checkpoint's training state, plus ``"tensors"`` (its extra arrays) and
        ``"parsed"`` (what ``check_training`` returned), or None.
    """
    where = f"restore_checkpoint({str(path)!r})"
    with open_model_file(path, where) as model_file:
        meta = model_file.metadata
        _check_same_architecture(model, meta, where)
        optimizer, tensors = _read_checked(model_file, model, where)
    _load_optimizer_state(optimizer, meta, tensors, where, model.layers)
    rngs = _layer_rngs(meta, len(model.layers), where)
    history = _history_from_meta(meta, where)
    training = meta.get("training")
    if training is not None and not isinstance(training, dict):
        raise ModelFileError(f"{where}: corrupted training state")
    parsed = None
    if training is not None and check_training is not None:
        try:
            parsed = check_training(training)
        except (KeyError, TypeError, ValueError, IndexError, OverflowError) as exc:
            raise ModelFileError(
                f"{where}: corrupted training state ({exc!r})"
            ) from None
    _assign_weights(model, tensors)
    for layer, rng in zip(model.layers, rngs, strict=True):
        if rng is not None:
            layer.rng = rng
    if optimizer is not None:
        model.optimizer = optimizer
    model.history = history
    if training is None:
        return None
    extras = {k[6:]: v for k, v in tensors.items() if k.startswith("extra.")}
    return {**training, "tensors": extras, "parsed": parsed}


def _check_same_architecture(model, meta: dict, where: str) -> None:
    """The checkpoint's layers must be ``model``'s: the same classes and configs."""
    spec = meta.get("model")
    entries = spec.get("layers") if isinstance(spec, dict) else None
    saved = [
        (e.get("class"), e.get("config")) if isinstance(e, dict) else e
        for e in (entries if isinstance(entries, list) else [])
    ]
    mine = [
        (type(layer).__name__, json.loads(json.dumps(layer.get_config())))
        for layer in model.layers
    ]
    if saved != mine:
        raise ModelFileError(
            f"{where}: the checkpoint's architecture differs from the model's"
        )
