"""``cnnumpy evaluate RUN``: loss, accuracy, per-class accuracy and the confusion
matrix of a run or a model file on a data set."""

from __future__ import annotations

import re

import numpy as np

from cnnumpy import metrics, optimizers, visualize
from cnnumpy.cli import runs
from cnnumpy.cli.runs import UsageError
from cnnumpy.cli.tools import (
    check_shape,
    class_outputs,
    data_source,
    one_hot_targets,
    out_folder,
)


def evaluate(args) -> int:
    """Loss (when the model file names its loss), accuracy, per-class accuracy and the
    confusion matrix of a run or model file on a data set."""
    model, config, folder = runs.open_run(args.target)
    out = out_folder(args.out, folder)
    ds, x = _test_data(args, model, config, args.split)
    outputs, _ = class_outputs(model, x)
    names = runs.class_names_of(config, outputs.shape[1])
    if len(ds) and int(ds.y.max()) >= len(names):
        raise UsageError(
            f"the model outputs {len(names)} classes, {ds.name} has labels up to "
            f"{int(ds.y.max())}"
        )
    matrix = metrics.confusion_matrix(ds.y, outputs, num_classes=len(names))
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    print(runs.describe(ds))
    _print_loss(model, x, ds, accuracy)
    _print_per_class(matrix, names)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", ds.name)
    path = out / f"confusion_matrix_{safe}_{ds.split}.png"
    visualize.confusion_matrix(ds.y, outputs, names, save=path)
    print(f"confusion matrix: {path}")
    return 0


def _test_data(args, model, config: dict, split: str = "test"):
    """The split to evaluate on, preprocessed like the model's training data."""
    name, data_dir = data_source(args, config, "give --dataset")
    ds = runs.limit(runs.load_split(name, split, data_dir), args.limit)
    check_shape(model, ds)
    return ds, runs.model_input(ds.x, model, config, args.target)


def _print_loss(model, x, ds, accuracy: float) -> None:
    if model.loss is None:  # a custom loss, or saved without compile()
        print(f"loss n/a (the model file names no loss)  accuracy {accuracy:.2%}")
        return
    if model.optimizer is None:  # evaluate() wants one; no step is taken
        model.optimizer = optimizers.get("sgd")
    # a model trained with MSE or binary cross-entropy compares its K outputs with
    # the labels' one-hot rows, as in training (cnnumpy train --loss)
    K = model.output_shape[-1]
    y = one_hot_targets(model.loss.name, ds.y, K, model.dtype)
    loss = model.evaluate(x, y)["loss"]
    print(f"loss {runs.loss_text(loss)}  accuracy {accuracy:.2%}")


def _print_per_class(matrix: np.ndarray, names: list[str]) -> None:
    counts = matrix.sum(axis=1)
    for name, acc, n in zip(
        names, metrics.per_class_accuracy(matrix), counts, strict=True
    ):
        shown = "   n/a" if np.isnan(acc) else f"{acc:7.2%}"
        print(f"  {name:>12}  {shown}  ({n:,} images)")
