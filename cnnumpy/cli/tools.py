"""What ``cnnumpy evaluate | predict | visualize`` share: the data set a run was
trained on, the ``--out`` folder, and the model's outputs as class scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnumpy.cli.runs import UsageError
from cnnumpy.data import Dataset, one_hot
from cnnumpy.layers.activations import Sigmoid, Softmax


def data_source(args, config: dict, hint: str) -> tuple[str, str | None]:
    """The data set (and folder) asked for, else the one the run was trained on."""
    name = args.dataset or config.get("dataset")
    if name is None:
        raise UsageError(f"no config.json beside the model names its data set: {hint}")
    data_dir, trained_on = args.data_dir, config.get("data_dir")
    if data_dir is None and trained_on and Path(trained_on).exists():
        data_dir = trained_on
    return name, data_dir


def check_shape(model, ds: Dataset) -> None:
    if tuple(ds.x.shape[1:]) != tuple(model.input_shape):
        raise UsageError(
            f"the model takes images {tuple(model.input_shape)}, "
            f"{ds.name} has {tuple(ds.x.shape[1:])}"
        )


def out_folder(out: str | None, default: Path) -> Path:
    """``--out`` (default ``default``), checked before any work is done."""
    folder = Path(out) if out else default
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if existing == folder and not folder.is_dir():
        raise UsageError(f"--out {folder}: exists and is not a folder")
    if not existing.is_dir():
        raise UsageError(f"--out {folder}: {existing} is a file, not a folder")
    return folder


def class_outputs(model, x: np.ndarray) -> tuple[np.ndarray, bool]:
    """``(values (N, K), probabilities)``: the model's output per class for ``x``.

    They are probabilities when the model's loss makes them so (cross-entropy:
    softmax; binary cross-entropy: sigmoid) or, without a loss, when the last layer is
    a Softmax or a Sigmoid; otherwise (no loss, MSE) raw scores. One output is class
    1's: a probability p gives ``[1 - p, p]``, a score z gives ``[-z, z]`` (z is then
    the logit of class 1, as in ``cnnumpy.visualize``).
    """
    values = model.predict(x)
    if model.loss is not None:
        probabilities = model.loss.output_activation in ("softmax", "sigmoid")
    else:
        probabilities = isinstance(model.layers[-1], (Softmax, Sigmoid))
    if values.ndim != 2:
        raise UsageError(
            f"the model outputs {values.shape[1:]} per image, not class scores"
        )
    if values.shape[1] == 1:
        other = 1.0 - values if probabilities else -values
        values = np.hstack([other, values])
    return values, probabilities


def shown(value: float, probabilities: bool) -> str:
    """A class's output as printed: ``97.31%``, or ``score 4.2`` for a raw score."""
    return f"{value:.2%}" if probabilities else f"score {value:.4g}"


# the losses that compare each of the K outputs with a target: one-hot rows
ONE_HOT_LOSSES = ("mse", "binary_cross_entropy")


def one_hot_targets(loss: str, y: np.ndarray, num_classes: int, dtype) -> np.ndarray:
    """The training targets ``--loss`` compares the outputs with: the integer labels
    for cross-entropy, their one-hot rows ``(N, K)`` (1 for the class, 0 elsewhere)
    for MSE and binary cross-entropy, as seed 002 trains its MLP with MSE."""
    return one_hot(y, num_classes, dtype) if loss in ONE_HOT_LOSSES else y
