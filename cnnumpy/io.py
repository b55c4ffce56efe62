"""Saving and loading models: safe, complete, atomic, readable by other tools.

The file format (safetensors plus checked JSON metadata) is described in
``cnnumpy.safefile``. ``save_model`` / ``load_model`` keep everything needed to predict
and to continue training: architecture, weights, BatchNorm statistics, optimiser state,
history and, for checkpoints, the training position and random generator states.
``save_weights`` / ``load_weights`` keep weights only. Loading never executes code, and
never half-loads: every tensor and setting is checked before anything is written into a
model.
"""

from __future__ import annotations

import json
import warnings

import numpy as np

from cnnumpy.fileio import atomic_write_bytes
from cnnumpy.interop import from_torch_state_dict, to_torch_state_dict
from cnnumpy.safefile import ModelFileError, _read, dump_bytes, load_bytes

__all__ = [
    "ModelFileError",
    "from_torch_state_dict",
    "load_model",
    "load_weights",
    "restore_checkpoint",
    "save_model",
    "save_weights",
    "to_torch_state_dict",
]


# -- model level -----------------------------------------------------------------------
def _model_payload(
    model,
    include_optimizer: bool = True,
    training_state: dict | None = None,
    extra_tensors: dict | None = None,
):
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
    tensors, meta = _model_payload(
        model, include_optimizer, training_state, extra_tensors
    )
    atomic_write_bytes(path, dump_bytes(tensors, meta))


def _layers_from_meta(meta: dict, where: str) -> list:
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


def _check_weights(model, tensors: dict, where: str) -> None:
    expected = _expected_tensors(model)
    present = {k for k in tensors if k.startswith("layers.")}
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


def _assign_weights(model, tensors: dict) -> None:
    for i, layer in enumerate(model.layers):
        for store in (layer.params, layer.state):
            for key in store:
                store[key][...] = tensors[f"layers.{i}.{key}"]


def _optimizer_from_meta(meta: dict, tensors: dict, where: str, layers: list):
    """A new optimiser with the saved config and state, or None if the file has none."""
    from cnnumpy import optimizers

    spec = meta.get("optimizer")
    if spec is None:
        return None
    try:
        cls = optimizers.OPTIMIZERS[spec["class"].lower()]
        optimizer = cls(**spec["config"])
        slots = {
            slot: {name: tensors[f"optimizer.{slot}.{name}"] for name in names}
            for slot, names in spec["slots"].items()
        }
        if any(
            not np.issubdtype(a.dtype, np.floating)
            for arrays in slots.values()
            for a in arrays.values()
        ):
            raise ValueError("optimiser slots must hold floats")
        optimizer.load_state_dict(
            {"iterations": spec["iterations"], "lr": spec["lr"], "slots": slots},
            layers=layers,
        )
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise ModelFileError(
            f"{where}: invalid optimiser state ({exc.__class__.__name__}: {exc})"
        ) from None
    return optimizer


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

    Raises:
        ModelFileError: the file is truncated, corrupted, not a cnnumpy file,
            inconsistent, or from a newer format version.
    """
    from cnnumpy import losses
    from cnnumpy import metrics as metrics_module
    from cnnumpy.model import Sequential
    from cnnumpy.rng import isolated

    where = f"load_model({str(path)!r})"
    tensors, meta = load_bytes(_read(path, where), where)
    layers = _layers_from_meta(meta, where)
    spec = meta["model"]
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
    _check_weights(model, tensors, where)
    optimizer = _optimizer_from_meta(meta, tensors, where, model.layers)
    rngs = _layer_rngs(meta, len(layers), where)
    history = _history_from_meta(meta, where)
    _assign_weights(model, tensors)
    for layer, rng in zip(model.layers, rngs, strict=True):
        if rng is not None:
            layer.rng = rng
    compiled = meta.get("compile")
    if isinstance(compiled, dict):
        try:
            model.loss = losses.get(compiled["loss"])
            model.metrics = {
                m: metrics_module.get(m) for m in compiled.get("metrics", [])
            }
        except (KeyError, ValueError, TypeError) as exc:
            # e.g. a user's own Loss class: the weights are still good
            warnings.warn(
                f"{where}: loaded without loss and metrics ({exc}); call compile()",
                stacklevel=2,
            )
            model.loss, model.metrics = None, {}
    model.optimizer = optimizer
    model.history = history
    return model


def save_weights(model, path) -> None:
    """Write only the weights (and BatchNorm statistics) of ``model``, atomically."""
    tensors = {
        f"layers.{i}.{k}": v
        for i, layer in enumerate(model.layers)
        for k, v in {**layer.params, **layer.state}.items()
    }
    atomic_write_bytes(path, dump_bytes(tensors, {"kind": "weights"}))


def load_weights(model, path) -> None:
    """Copy weights from a file into ``model``; all-or-nothing.

    The shapes must match.
    """
    where = f"load_weights({str(path)!r})"
    tensors, _ = load_bytes(_read(path, where), where)
    _check_weights(model, tensors, where)
    _assign_weights(model, tensors)


def restore_checkpoint(model, path, check_training=None) -> dict | None:
    """Load a checkpoint of the same architecture into ``model``.

    Weights, optimiser state, layer generators, history and (with ``check_training``,
    a function that parses the training state or raises) the training state are all
    checked before anything is set.

    Returns:
        The checkpoint's training state, plus ``"tensors"`` (its extra arrays) and
        ``"parsed"`` (what ``check_training`` returned), or None.
    """
    where = f"restore_checkpoint({str(path)!r})"
    tensors, meta = load_bytes(_read(path, where), where)
    saved = [
        (e.get("class"), e.get("config"))
        for e in meta.get("model", {}).get("layers", [])
    ]
    mine = [
        (type(layer).__name__, json.loads(json.dumps(layer.get_config())))
        for layer in model.layers
    ]
    if saved != mine:
        raise ModelFileError(
            f"{where}: the checkpoint's architecture differs from the model's"
        )
    _check_weights(model, tensors, where)
    optimizer = _optimizer_from_meta(meta, tensors, where, model.layers)
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
