"""The Train page's form: what ``GET /api/zoo`` offers, and what ``POST /api/train``
accepts, turned into the arguments of ``cnnumpy train``.

One list of models serves both: :data:`TRAINABLE_MODELS`, the zoo's image models
made for the data sets' images. The form's fields (:data:`FIELDS`) are checked here,
each refusal an ``ApiError(400)`` naming the field, what it expects and what it
received; then the command's own parser checks the arguments, so that the page
cannot ask for what ``cnnumpy train`` would refuse, and a field left out takes the
command's default.
"""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path

from cnnumpy import zoo
from cnnumpy.cli import runs
from cnnumpy.cli.parser import CommandLineError, build_parser
from cnnumpy.cli.train import DEFAULT_LR
from cnnumpy.cli.train_options import OPTIMIZERS
from cnnumpy.serve.errors import ApiError
from cnnumpy.serve.store import is_run_name

FIELDS = (
    "name",
    "model",
    "dataset",
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "limit",
    "augment",
    "seed",
)
# Bounds for a job a class can wait for; the command itself takes any positive value.
MAX_EPOCHS = 200
MAX_BATCH_SIZE = 4096
MAX_LR = 10.0
MAX_SEED = 2**32 - 1
# The input shape (C, H, W) of each data set's images.
DATASET_INPUTS = {
    "mnist": [1, 28, 28],
    "fashion-mnist": [1, 28, 28],
    "mnist-sample": [1, 28, 28],
    "cifar10": [3, 32, 32],
}
# The Train page's starting form: LeNet-5 on 5,000 MNIST digits, a few seconds an
# epoch here; the others are ``cnnumpy train``'s defaults.
TRAIN_DEFAULTS = {
    "model": "lenet5",
    "dataset": "mnist",
    "epochs": 2,
    "batch_size": 64,
    "optimizer": "sgd",
    "lr": DEFAULT_LR["sgd"],
    "limit": 5000,
    "augment": False,
    "seed": 0,
}


def _trainable_models() -> dict[str, list[int]]:
    """The zoo's image models whose builder defaults to the input shape of a data
    set, each with that shape: not the char models, nor AlexNet and VGG16/19, made
    for ImageNet's 224 x 224 images (hours an epoch here)."""
    shapes = {tuple(shape) for shape in DATASET_INPUTS.values()}
    models = {}
    for name, build in zoo.MODELS.items():
        parameter = inspect.signature(build).parameters.get("input_shape")
        if name in zoo.TEXT_MODELS or parameter is None:
            continue
        if tuple(parameter.default) in shapes:
            models[name] = list(parameter.default)
    return models


# The models the page can train, by name, each with its input shape (C, H, W).
TRAINABLE_MODELS = _trainable_models()


def zoo_json() -> dict:
    """``GET /api/zoo``: the models (:data:`TRAINABLE_MODELS`) and the data sets,
    each with its input shape, the optimisers with their default learning rates,
    and a starting form."""
    return {
        "models": list(TRAINABLE_MODELS),
        "datasets": list(runs.DATASETS),
        "optimizers": list(OPTIMIZERS),
        "defaults": dict(TRAIN_DEFAULTS),
        "model_inputs": {name: list(s) for name, s in TRAINABLE_MODELS.items()},
        "dataset_inputs": {name: list(s) for name, s in DATASET_INPUTS.items()},
        "default_lr": dict(DEFAULT_LR),
    }


# -- the fields ------------------------------------------------------------------------
def _bad(field: str, expected: str, value) -> ApiError:
    shown = json.dumps(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return ApiError(400, f"{field}: expected {expected}, got {shown}")


def _integer(form: dict, field: str, low: int, high: int) -> list[str]:
    value = form.get(field)
    if value is None:
        return []  # the command's default
    integer = isinstance(value, int) and not isinstance(value, bool)
    if not (integer and low <= value <= high):
        raise _bad(field, f"an integer from {low} to {high:,}", value)
    return ["--" + field.replace("_", "-"), str(value)]


def _choice(form: dict, field: str, options, required: bool = False) -> list[str]:
    value = form.get(field)
    if value is None and not required:
        return []
    if not isinstance(value, str) or value not in options:
        raise _bad(field, f"one of {', '.join(options)}", value)
    return ["--" + field, value]


def _learning_rate(form: dict) -> list[str]:
    value = form.get("lr")
    if value is None:
        return []  # the optimiser's (cnnumpy.cli.train.DEFAULT_LR)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (number and math.isfinite(value) and 0 < value <= MAX_LR):
        raise _bad("lr", f"a number > 0 and <= {MAX_LR:g}", value)
    return ["--lr", repr(float(value))]


def _flag(form: dict, field: str) -> list[str]:
    value = form.get(field)
    if value not in (None, True, False):
        raise _bad(field, "true or false", value)
    return ["--" + field] if value else []


def command_line(form, runs_dir: Path) -> tuple[str, list[str]]:
    """``(name, cnnumpy arguments)`` of a form; ``ApiError(400)`` names the first
    field that is wrong, what it expects and what it received.

    The arguments are ``["train", ..., "--out", "RUNS_DIR/NAME", "--quiet"]``.
    """
    if not isinstance(form, dict):
        raise _bad("the body", "a JSON object", form)
    unknown = sorted(set(form) - set(FIELDS))
    if unknown:
        raise ApiError(
            400, f"unknown field {unknown[0]!r}; the fields are {', '.join(FIELDS)}"
        )
    name = form.get("name")
    if not is_run_name(name):
        raise _bad(
            "name",
            "1 to 64 letters, digits, '.', '_' or '-', starting with a "
            "letter or a digit",
            name,
        )
    argv = ["train", *_choice(form, "model", TRAINABLE_MODELS, True)]
    argv += _choice(form, "dataset", runs.DATASETS, True)
    argv += _integer(form, "epochs", 1, MAX_EPOCHS)
    argv += _integer(form, "batch_size", 1, MAX_BATCH_SIZE)
    argv += _learning_rate(form) + _choice(form, "optimizer", OPTIMIZERS)
    argv += _integer(form, "limit", 1, 10**9) + _flag(form, "augment")
    argv += _integer(form, "seed", 0, MAX_SEED)
    if form["dataset"] == "mnist":  # offline, a class still trains, on 5,000 digits
        argv.append("--sample-if-missing")
    argv += ["--out", str(Path(runs_dir) / name), "--quiet"]
    try:
        build_parser().parse_args(argv)  # the command's own checks have the last word
    except CommandLineError as exc:
        raise ApiError(400, str(exc)) from None
    return name, argv
