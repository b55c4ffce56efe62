"""Reading a model file into an existing model: weights, or a whole checkpoint.

Loading never half-loads: the header's declared tensors are checked against the model
(``cnnumpy.saving.checks``) before their bytes are read, their values once read, and
every setting (optimiser, history, generators, training state) before the first one is
set. ``load_model``, which builds a new model, reads through the same steps
(``read_checked``, ``saved_state``, ``assign_weights``).
"""

from __future__ import annotations

import json

from cnnumpy.callbacks import History
from cnnumpy.optimizers import OPTIMIZERS
from cnnumpy.rng import generator_from_state
from cnnumpy.saving.checks import check_declared, check_values
from cnnumpy.saving.header import ModelFileError
from cnnumpy.saving.safefile import open_model_file

__all__ = [
    "assign_weights",
    "load_weights",
    "read_checked",
    "restore_checkpoint",
    "saved_state",
]


def load_weights(model, path) -> None:
    """Copy weights from a file into ``model``; all-or-nothing.

    The shapes must match, checked from the file's header before its tensors are
    read; the values must be finite (BatchNorm's running_var >= 0).
    """
    where = f"load_weights({str(path)!r})"
    with open_model_file(path, where) as model_file:
        _optimizer, tensors = read_checked(model_file, model, where)
    assign_weights(model, tensors)


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
        optimizer, tensors = read_checked(model_file, model, where)
    rngs, history = saved_state(model, meta, optimizer, tensors, where)
    training, parsed = _training_state(meta, check_training, where)
    assign_weights(model, tensors, rngs)
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


def _training_state(meta: dict, check_training, where: str) -> tuple:
    """``(training state or None, what check_training made of it or None)``."""
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
    return training, parsed


# -- the steps every reader takes ------------------------------------------------------
def read_checked(model_file, model, where: str):
    """``(optimizer, tensors)`` of an open model file for ``model``: the header
    checked against the model and the saved optimiser before any tensor is read,
    then the values (finite, variances >= 0)."""
    optimizer = _optimizer_from_meta(model_file.metadata, where)
    check_declared(model, optimizer, model_file.declared, where)
    tensors = model_file.read_tensors()
    check_values(model, tensors, where)
    return optimizer, tensors


def saved_state(model, meta: dict, optimizer, tensors: dict, where: str) -> tuple:
    """``(rngs, history)``: the layers' saved generators (None for a layer without
    one) and the History, checked; the saved step count, learning rate and slots are
    loaded into ``optimizer`` (the new one from ``read_checked``, not yet the
    model's). Nothing of ``model`` is set."""
    _load_optimizer_state(optimizer, meta, tensors, where, model.layers)
    rngs = _layer_rngs(meta, len(model.layers), where)
    history = _history_from_meta(meta, where)
    return rngs, history


def assign_weights(model, tensors: dict, rngs: list | None = None) -> None:
    """Copy the checked ``layers.*`` tensors into ``model``'s arrays, in place, and
    give each layer its saved generator (if ``rngs`` has one for it)."""
    for i, layer in enumerate(model.layers):
        for store in (layer.params, layer.state):
            for key in store:
                store[key][...] = tensors[f"layers.{i}.{key}"]
    if rngs is None:
        return
    for layer, rng in zip(model.layers, rngs, strict=True):
        if rng is not None:
            layer.rng = rng


def _optimizer_from_meta(meta: dict, where: str):
    """A new optimiser of the saved class and config, or None if the file has none.

    Its state is loaded by ``_load_optimizer_state`` once the tensors are read.
    """
    spec = meta.get("optimizer")
    if spec is None:
        return None
    try:
        cls = OPTIMIZERS[spec["class"].lower()]
        return cls.from_config(spec["config"])
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
