"""Writing model files: the whole model, a checkpoint, or the weights alone.

``save_model`` keeps everything needed to predict and to continue training:
architecture (``Sequential.get_config`` plus each layer's random generator state),
weights, BatchNorm statistics, the input preprocessing (``model.preprocessing``),
optimiser state, history and, for checkpoints, the training position and the
callbacks' arrays. ``save_weights`` keeps weights only. Every file is written
atomically (``cnnumpy.fileio.atomic_write_bytes``) in the format of
``cnnumpy.saving.safefile``.

``Sequential.save`` calls ``save_model``, so this module never imports the model: it
reads one through its attributes only.
"""

from __future__ import annotations

from cnnumpy.fileio import atomic_write_bytes
from cnnumpy.losses import serialize
from cnnumpy.rng import generator_state
from cnnumpy.saving.checks import weight_tensors
from cnnumpy.saving.preprocessing import check_preprocessing
from cnnumpy.saving.safefile import dump_bytes
from cnnumpy.version import __version__

__all__ = ["model_payload", "save_model", "save_weights"]


def model_payload(
    model,
    include_optimizer: bool = True,
    training_state: dict | None = None,
    extra_tensors: dict | None = None,
):
    """``(tensors, metadata)`` of a model file for ``model``: the weights and state
    as named tensors (``layers.{i}.{key}``, ``optimizer.*``, ``extra.*``) and the
    architecture, optimiser and training state as JSON metadata."""
    if model.input_shape is None:
        raise ValueError(
            "save: the model is not built; pass input_shape= to Sequential"
        )
    tensors = weight_tensors(model)
    meta = {"cnnumpy_version": __version__, "model": _architecture(model)}
    if model.loss is not None:
        meta["compile"] = {
            "loss": _loss_entry(model.loss),
            # the names compile took (a model of several outputs logs one per output)
            "metrics": list(getattr(model, "metric_names", None) or model.metrics),
        }
    if include_optimizer and model.optimizer is not None:
        meta["optimizer"] = _optimizer_entry(model.optimizer, tensors)
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


def _loss_entry(loss) -> str | dict:
    """The loss's name, or ``{"name", "config"}`` when it has settings (such as
    ``CrossEntropy(ignore_index=0)``): ``losses.get`` reads either back."""
    entry = serialize(loss)
    return entry if entry["config"] else entry["name"]


def _architecture(model) -> dict:
    """``model.get_config()``, each layer's entry with its generator's state (a layer
    that has drawn random numbers, such as Dropout), so that a resumed run draws the
    same numbers next."""
    config = model.get_config()
    for entry, layer in zip(config["layers"], model.layers, strict=True):
        if layer.existing_rng is not None:
            entry["rng"] = generator_state(layer.existing_rng)
    return config


def _optimizer_entry(optimizer, tensors: dict) -> dict:
    """The optimiser's class, config, step count and learning rate, for the metadata;
    its slots (moments) are added to ``tensors`` as ``optimizer.{slot}.{name}``."""
    state = optimizer.state_dict()
    slots = {}
    for slot, arrays in state["slots"].items():
        slots[slot] = sorted(arrays)
        for name, value in arrays.items():
            tensors[f"optimizer.{slot}.{name}"] = value
    return {
        "class": type(optimizer).__name__,
        "config": optimizer.get_config(),
        "iterations": int(state["iterations"]),
        "lr": float(state["lr"]),
        "slots": slots,
    }


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


def save_weights(model, path) -> None:
    """Write only the weights (and BatchNorm statistics) of ``model``, atomically."""
    atomic_write_bytes(path, dump_bytes(weight_tensors(model), {"kind": "weights"}))
