"""A run's ``config.json`` as ``cnnumpy evaluate | predict | visualize`` read it:
every field they use checked for its type and against the model, so that a
hand-edited or foreign file gives one line naming the file and the field, never a
traceback or a silently wrong answer.
"""

from __future__ import annotations

from pathlib import Path

from cnnumpy.saving import check_preprocessing


class ConfigError(ValueError):
    """A ``config.json`` field of the wrong type, or not this model's."""


def check_config(config: dict, path: Path, model) -> dict:
    """The fields of a run's ``config.json`` that the tools read, checked.

    JSON null stands for a missing field. ``preprocessing`` comes back in the model
    file's form, ``{"scale": 1 / 255, "mean": [...], "std": [...]}``.

    Raises:
        ConfigError: naming the file, the field, what was expected and what was found.
    """
    checked = {k: v for k, v in config.items() if v is not None}
    for key in ("dataset", "data_dir"):
        if not isinstance(checked.get(key, ""), str):
            raise _field_error(path, key, "a string", checked[key])
    _check_input_shape(checked.get("input_shape"), path, model)
    _check_class_names(checked.get("class_names"), path, model)
    prep = checked.get("preprocessing")
    if prep is None:
        return checked
    if not isinstance(prep, dict):
        raise _field_error(path, "preprocessing", "an object", prep)
    stats = {"scale": 1 / 255, "mean": prep.get("mean"), "std": prep.get("std")}
    try:
        checked["preprocessing"] = check_preprocessing(stats, model.input_shape, path)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return checked


def _check_input_shape(shape, path: Path, model) -> None:
    if shape is None:
        return
    if not isinstance(shape, list) or not all(type(d) is int and d > 0 for d in shape):
        raise _field_error(path, "input_shape", "a list of sizes", shape)
    if tuple(shape) != tuple(model.input_shape):
        raise ConfigError(
            f"{path}: input_shape {shape} is not the model's "
            f"{list(model.input_shape)} (a config.json from another run?)"
        )


def _check_class_names(names, path: Path, model) -> None:
    if names is None:
        return
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _field_error(path, "class_names", "a list of strings", names)
    outputs = model.output_shape
    if len(outputs) == 1 and len(names) != max(outputs[0], 2):
        raise ConfigError(
            f"{path}: class_names has {len(names)} names, the model outputs "
            f"{max(outputs[0], 2)} classes (a config.json from another run?)"
        )


def _field_error(path: Path, key: str, expected: str, found) -> ConfigError:
    text = repr(found)
    text = text if len(text) <= 60 else text[:57] + "..."
    return ConfigError(f"{path}: {key} must be {expected}, got {text}")
