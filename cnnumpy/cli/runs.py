"""What the ``cnnumpy`` command shares between its subcommands: data sets by name,
preprocessing, run folders and image files.

A run folder (``cnnumpy train --out runs/NAME``) holds::

    config.json           the settings, the data used and the preprocessing statistics
    model.safetensors     the trained model (``cnnumpy.load_model``)
    metrics.json          test loss and accuracy, per-class accuracy, confusion, times
    history.csv           one row per epoch (loss, accuracy, val_loss, val_accuracy, lr)
    curves.png            loss and accuracy per epoch (char runs: bits per character)
    confusion_matrix.png  test confusion matrix
    report.html           everything above in one page (``cnnumpy.report``)
    checkpoint/           the last completed epoch, to resume a stopped run

Preprocessing is the same everywhere: pixels scaled to [0, 1], then standardised per
channel with the mean and standard deviation of the *training* split,
``x' = (x / 255 - mean_c) / std_c``. The statistics are stored in the model file
(``model.preprocessing``, so that a model file copied out of its run still gets the
inputs it was trained on) and in ``config.json`` (read for model files written before
the model file carried them).
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from cnnumpy import data
from cnnumpy.cli import image_files
from cnnumpy.cli.run_config import ConfigError, check_config
from cnnumpy.data import Dataset
from cnnumpy.fileio import atomic_write_text, read_small_text
from cnnumpy.saving.loading import load_model

MODEL = "model.safetensors"
CONFIG = "config.json"
METRICS = "metrics.json"
HISTORY = "history.csv"
CURVES = "curves.png"
CONFUSION = "confusion_matrix.png"
REPORT = "report.html"
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT = "checkpoint.safetensors"
MAX_JSON_BYTES = 16 * 2**20  # a config.json is a few kB

_LOADERS = {
    "mnist": data.load_mnist,
    "fashion-mnist": data.load_fashion_mnist,
    "cifar10": data.load_cifar10,
}
DATASETS = (*_LOADERS, "mnist-sample")
# The offline sample has no test split: a fixed shuffle gives 4,000 train, 1,000 test.
SAMPLE_TEST = 1000
SAMPLE_SEED = 20240


class UsageError(Exception):
    """A mistake of the user (argument, file, data): one line on stderr, exit code 2."""


# -- data ------------------------------------------------------------------------------
def load_split(name: str, split: str, data_dir: str | None) -> Dataset:
    """The ``split`` of the data set ``name`` as uint8 images (N, C, H, W).

    With ``data_dir`` only that folder is searched; otherwise ``$CNNUMPY_DATA``, the
    cache, then a download (see ``cnnumpy.data.sources``).
    """
    if name == "mnist-sample":
        return _sample_split(split)
    if name not in _LOADERS:
        raise UsageError(
            f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}"
        )
    if data_dir is not None and not Path(data_dir).exists():
        raise UsageError(f"--data-dir {data_dir}: no such file or folder")
    return _LOADERS[name](split, path=data_dir, dtype="uint8")


def _sample_split(split: str) -> Dataset:
    full = data.load_mnist_sample()
    order = np.random.default_rng(SAMPLE_SEED).permutation(len(full))
    # not sorted back: the file is ordered by class, and --limit takes the first N
    index = order[:SAMPLE_TEST] if split == "test" else order[SAMPLE_TEST:]
    source = f"{full.source}, {split} part ({len(index)} digits, fixed shuffle)"
    return Dataset(
        full.x[index],
        full.y[index],
        full.class_names,
        full.name,
        split,
        source,
        full.checksum_ok,
    )


def describe(ds: Dataset) -> str:
    """``MNIST test: 10,000 images 1x28x28 from PATH (official checksums)``."""
    shape = "x".join(str(d) for d in ds.x.shape[1:])
    check = {
        True: "official checksums",
        False: "checksums differ from the official release",
        None: "no official checksum",
    }[ds.checksum_ok]
    return (
        f"{ds.name} {ds.split}: {len(ds):,} images {shape} from {ds.source} ({check})"
    )


def limit(ds: Dataset, n: int | None) -> Dataset:
    """The first ``n`` examples of ``ds`` (all of them when ``n`` is None)."""
    if n is None or n >= len(ds):
        return ds
    return Dataset(
        ds.x[:n],
        ds.y[:n],
        ds.class_names,
        ds.name,
        ds.split,
        f"{ds.source}, first {n}",
        ds.checksum_ok,
    )


# -- preprocessing ---------------------------------------------------------------------
def channel_stats(x: np.ndarray, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of uint8 images scaled to [0, 1].

    Sums of x and x^2 are accumulated in float64 over chunks of images, so no
    float copy of the whole data set is made: ``std = sqrt(E[x^2] - E[x]^2)``.
    """
    C = x.shape[1]
    total, total_sq = np.zeros(C), np.zeros(C)
    for lo in range(0, len(x), chunk):
        part = x[lo : lo + chunk].astype(np.float64) / 255.0
        total += part.sum(axis=(0, 2, 3))
        total_sq += np.square(part).sum(axis=(0, 2, 3))
    count = len(x) * x.shape[2] * x.shape[3]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0)) + 1e-7
    return mean.tolist(), std.tolist()


def preprocess(x: np.ndarray, mean, std, dtype, scale: float = 1 / 255) -> np.ndarray:
    """``(x * scale - mean_c) / std_c`` as ``dtype``, computed in place on one copy."""
    out = x.astype(dtype)
    out /= 1 / scale  # 1 / (1 / 255) is exactly 255.0: the same bits as x / 255
    shape = (1, -1, 1, 1)
    out -= np.asarray(mean, dtype=dtype).reshape(shape)
    out /= np.asarray(std, dtype=dtype).reshape(shape)
    return out


# -- run folders -----------------------------------------------------------------------
def loss_text(loss: float) -> str:
    """A loss for a line of text: 4 decimals, or 4 digits and an exponent when it is
    huge (a diverging run's 1.6e+301 is not printed as 302 digits)."""
    return f"{loss:.4f}" if abs(loss) < 1e6 else f"{loss:.4g}"


def write_json(path: Path, value) -> None:
    """Write ``value`` as JSON, atomically; NaN and infinities become ``null``.

    JSON has no NaN (``json.dumps`` would write a bare ``NaN`` that other readers
    reject), so ``allow_nan=False`` guards that none is left.
    """
    text = json.dumps(_finite(value), indent=2, default=_plain, allow_nan=False)
    atomic_write_text(path, text + "\n")


def _finite(value):
    """``value`` with NumPy numbers made plain and NaN or infinite floats None."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_json(path: Path) -> dict:
    """A JSON object from ``path`` (``config.json``), or a one-line ``UsageError``.

    The file is refused, without reading it, if it is not a regular file or is over
    ``MAX_JSON_BYTES``; so is a nesting too deep for the parser (RecursionError) and
    an integer over Python's 4,300 digits (a ValueError).
    """
    try:
        value = json.loads(read_small_text(path, MAX_JSON_BYTES))
    except RecursionError:
        raise UsageError(f"cannot read {path}: JSON nested too deeply") from None
    except (OSError, ValueError) as exc:  # JSON and UTF-8 errors are ValueErrors
        reason = "a number has too many digits" if "digits" in str(exc) else exc
        raise UsageError(f"cannot read {path}: {reason}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{path}: expected a JSON object")
    return value


def open_run(target: str):
    """``(model, config, folder)`` from a run folder or a model file.

    A run folder gives its ``model.safetensors`` (or, for a run stopped before the end,
    its last checkpoint) and ``config.json``; a model file gives the ``config.json``
    beside it (for ``RUN/checkpoint/checkpoint.safetensors``, the run's) when there is
    one, else an empty config: a model file alone is enough, since it carries its
    preprocessing. The config is checked against the model
    (``cnnumpy.cli.run_config.check_config``).
    """
    path = Path(target)
    if path.is_dir():
        folder = path
        model_path = path / MODEL
        if not model_path.is_file() and (path / CHECKPOINT_DIR / CHECKPOINT).is_file():
            model_path = path / CHECKPOINT_DIR / CHECKPOINT
        if not model_path.is_file():
            raise UsageError(f"{target}: no {MODEL} in this folder (not a run folder?)")
    elif path.is_file():
        folder, model_path = path.parent, path
        if folder.name == CHECKPOINT_DIR and not (folder / CONFIG).is_file():
            folder = folder.parent
    else:
        raise UsageError(f"{target}: no such run folder or model file")
    config_path = folder / CONFIG
    model = load_model(model_path)
    config = read_json(config_path) if config_path.exists() else {}  # FIFO: refused
    try:
        return model, check_config(config, config_path, model), folder
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def preprocessing_of(model, config: dict) -> dict | None:
    """How pixels become the model's input: the model file's ``preprocessing``, else
    (a model file written before it carried one) the run's ``config.json``'s, else
    None (pixels only scaled to [0, 1])."""
    if model.preprocessing is not None:
        return model.preprocessing
    return config.get("preprocessing")


def model_input(pixels: np.ndarray, model, config: dict, target) -> np.ndarray:
    """uint8 images ``(N, C, H, W)`` preprocessed for ``model`` (``preprocessing_of``).

    Without any preprocessing a one-line warning goes to stderr: the inputs are only
    scaled to [0, 1], not standardised, and a model trained on standardised inputs
    (every ``cnnumpy train`` model) would then predict poorly, silently.
    """
    prep = preprocessing_of(model, config)
    if prep is not None and "vocabulary" in prep:
        raise UsageError(
            f"{target}: a char model reads text, not images; use cnnumpy generate"
        )
    if prep is None:
        print(
            f"cnnumpy: warning: {target}: no preprocessing in the model file nor in "
            "a config.json beside it; inputs are scaled to [0, 1], not standardised",
            file=sys.stderr,
        )
        channels = pixels.shape[1]
        prep = {"scale": 1 / 255, "mean": [0.0] * channels, "std": [1.0] * channels}
    return preprocess(pixels, prep["mean"], prep["std"], model.dtype, prep["scale"])


def class_names_of(config: dict, num_classes: int) -> list[str]:
    names = config.get("class_names")
    if isinstance(names, list) and len(names) == num_classes:
        return [str(n) for n in names]
    return [str(i) for i in range(num_classes)]


# -- images ----------------------------------------------------------------------------
def read_image(path, input_shape: tuple[int, ...], invert: bool) -> np.ndarray:
    """An image file as uint8 ``(C, H, W)`` matching the model input.

    Grey (``L``) for one channel, RGB for three, resized to ``H x W`` bilinearly;
    ``invert`` maps v to 255 - v (MNIST digits are white on black). Transparent pixels
    are composited onto a background (``cnnumpy.cli.image_files.background``: black
    in what a grey model sees, white for colour); images over ``MAX_PIXELS`` pixels
    (decompression bombs) are refused before decoding. See
    ``cnnumpy.cli.image_files``.
    """
    try:
        return image_files.read_image(path, input_shape, invert)
    except image_files.ImageFileError as exc:
        raise UsageError(str(exc)) from None
