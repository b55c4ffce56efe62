"""``cnnumpy evaluate | predict | visualize``, and the files written at the end of a
training run (metrics, curves, confusion matrix, report)."""

from __future__ import annotations

import math
import re
import sys
import time
from pathlib import Path

import numpy as np

from cnnumpy import metrics, optimizers, runs
from cnnumpy.layers.activations import Sigmoid, Softmax
from cnnumpy.runs import UsageError

METHODS = ("features", "filters", "occlusion", "saliency", "gradcam")


# -- the end of `train` ----------------------------------------------------------------
def finish_run(
    out: Path, model, config: dict, x_test, test, timings: dict, report: bool = True
) -> int:
    """Evaluate on the test set, then write the model, metrics, figures and report.

    Raises:
        TrainingDiverged: the test loss or accuracy is NaN or infinite (weights too
            large to use); nothing is written then.
    """
    from cnnumpy.cli_train import per_class

    start = time.perf_counter()
    result = model.evaluate(x_test, test.y)
    _check_finite(result, len(model.history.epoch))
    probs = model.predict(x_test)
    timings["evaluate"] = time.perf_counter() - start
    model.save(out / runs.MODEL, include_optimizer=False)
    names = list(test.class_names)
    matrix = metrics.confusion_matrix(test.y, probs, num_classes=len(names))
    history = model.history
    last = {k: v[-1] for k, v in history.history.items() if v}
    runs.write_json(
        out / runs.METRICS,
        {
            "dataset": config["dataset"],
            "test_source": test.source,
            "test_loss": result["loss"],
            "test_accuracy": result["accuracy"],
            "test_examples": len(test),
            "epochs_completed": len(history.epoch),
            "last_epoch": last,
            "per_class_accuracy": per_class(matrix, names),
            "confusion_matrix": matrix.tolist(),
            "timings_s": timings,
        },
    )
    written = [runs.MODEL, runs.CONFIG, runs.METRICS, runs.HISTORY]
    written += _pictures(out, history, test.y, probs, names)
    if report:
        report = _report(out, model, config, history, x_test, test, timings)
    written += [runs.REPORT] if report else []
    print(f"data used: {config['data']['train']}")
    print(
        f"test accuracy: {result['accuracy']:.2%} (loss {result['loss']:.4f}) on "
        f"{len(test):,} {test.name} test images; trained {timings['train']:.0f} s"
    )
    print(f"run folder: {out} ({', '.join(written)})")
    if report:
        print(f"report: {out / runs.REPORT}")
    return 0


def _check_finite(result: dict, epochs: int) -> None:
    """Raise ``TrainingDiverged`` if the test loss or accuracy is not finite."""
    from cnnumpy.training import TrainingDiverged

    for key in ("loss", "accuracy"):
        if not math.isfinite(result[key]):
            reason = f"the test {key} is {result[key]} after the last epoch"
            raise TrainingDiverged(reason, epoch=max(epochs - 1, 0))


def _pictures(out: Path, history, y, probs, names) -> list[str]:
    try:
        from cnnumpy import visualize

        visualize.training_curves(history, save=out / runs.CURVES)
        visualize.confusion_matrix(y, probs, names, save=out / runs.CONFUSION)
    except ImportError as exc:
        print(f"warning: no PNG figures ({exc}); pip install matplotlib")
        return []
    return [runs.CURVES, runs.CONFUSION]


def _report(out: Path, model, config, history, x_test, test, timings) -> bool:
    try:
        from cnnumpy.report import write_report
    except ImportError:
        print("report: cnnumpy.report.write_report is not available; skipped")
        return False
    try:
        write_report(
            out,
            model,
            config=config,
            history=history,
            x_test=x_test,
            y_test=test.y,
            class_names=list(test.class_names),
            timings=timings,
        )
    except (ValueError, TypeError, OSError, ImportError) as exc:
        print(f"warning: report.html not written ({type(exc).__name__}: {exc})")
        return False
    return (out / runs.REPORT).is_file()


def _data_source(args, config: dict, hint: str) -> tuple[str, str | None]:
    """The data set (and folder) asked for, else the one the run was trained on."""
    name = args.dataset or config.get("dataset")
    if name is None:
        raise UsageError(f"no config.json beside the model names its data set: {hint}")
    data_dir, trained_on = args.data_dir, config.get("data_dir")
    if data_dir is None and trained_on and Path(trained_on).exists():
        data_dir = trained_on
    return name, data_dir


# -- evaluate --------------------------------------------------------------------------
def _test_data(args, model, config: dict, split: str = "test"):
    """The split to evaluate on, preprocessed like the model's training data."""
    name, data_dir = _data_source(args, config, "give --dataset")
    ds = runs.limit(runs.load_split(name, split, data_dir), args.limit)
    runs.check_shape(model, ds)
    return ds, runs.model_input(ds.x, model, config, args.target)


def _out_folder(out: str | None, default: Path) -> Path:
    """``--out`` (default ``default``), checked before any work is done."""
    folder = Path(out) if out else default
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if existing == folder and not folder.is_dir():
        raise UsageError(f"--out {folder}: exists and is not a folder")
    if not existing.is_dir():
        raise UsageError(f"--out {folder}: {existing} is a file, not a folder")
    return folder


def evaluate(args) -> int:
    """Loss (when the model file names its loss), accuracy, per-class accuracy and the
    confusion matrix of a run or model file on a data set."""
    model, config, folder = runs.open_run(args.target)
    out = _out_folder(args.out, folder)
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
    if model.loss is None:  # a custom loss, or saved without compile()
        print(f"loss n/a (the model file names no loss)  accuracy {accuracy:.2%}")
    else:
        if model.optimizer is None:  # evaluate() wants one; no step is taken
            model.optimizer = optimizers.get("sgd")
        loss = model.evaluate(x, ds.y)["loss"]
        print(f"loss {loss:.4f}  accuracy {accuracy:.2%}")
    counts = matrix.sum(axis=1)
    for name, acc, n in zip(
        names, metrics.per_class_accuracy(matrix), counts, strict=True
    ):
        shown = "   n/a" if np.isnan(acc) else f"{acc:7.2%}"
        print(f"  {name:>12}  {shown}  ({n:,} images)")
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", ds.name)
    path = out / f"confusion_matrix_{safe}_{ds.split}.png"
    from cnnumpy import visualize

    visualize.confusion_matrix(ds.y, outputs, names, save=path)
    print(f"confusion matrix: {path}")
    return 0


# -- predict ---------------------------------------------------------------------------
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


def _shown(value: float, probabilities: bool) -> str:
    return f"{value:.2%}" if probabilities else f"score {value:.4g}"


def predict(args) -> int:
    """The top classes of each image file, with their probabilities (or scores)."""
    model, config, _ = runs.open_run(args.target)
    shape = tuple(model.input_shape)
    images = np.stack([runs.read_image(p, shape, args.invert) for p in args.images])
    x = runs.model_input(images, model, config, args.target)
    outputs, probabilities = class_outputs(model, x)
    names = runs.class_names_of(config, outputs.shape[1])
    k = min(args.top, outputs.shape[1])
    for path, row in zip(args.images, outputs, strict=True):
        best = np.argsort(-row, kind="stable")[:k]
        ranked = ", ".join(
            f"{names[i]} ({_shown(row[i], probabilities)})" for i in best
        )
        print(f"{path}: {ranked}")
    return 0


# -- visualize -------------------------------------------------------------------------
CONV_METHODS = ("features", "filters", "gradcam")  # they read a Conv2D layer


def _one_image(args, model, config: dict):
    """(image (C, H, W) preprocessed, true label or None, tag for file names)."""
    if args.image is not None:
        raw = runs.read_image(args.image, tuple(model.input_shape), args.invert)
        label, tag = None, Path(args.image).stem
    else:
        name, data_dir = _data_source(args, config, "give --image, or --dataset")
        ds = runs.load_split(name, "test", data_dir)
        runs.check_shape(model, ds)
        if not 0 <= args.index < len(ds):
            raise UsageError(
                f"--index {args.index}: the {name} test split has "
                f"{len(ds):,} images (0..{len(ds) - 1})"
            )
        raw, label, tag = ds.x[args.index], int(ds.y[args.index]), f"test{args.index}"
    return runs.model_input(raw[None], model, config, args.target)[0], label, tag


def _methods(asked: list[str], model) -> list[str]:
    """The methods asked for that apply: those reading a Conv2D layer are skipped, one
    line each, for a model without one (an MLP); none left is a UsageError."""
    methods = list(dict.fromkeys(asked))
    if any(type(layer).__name__ == "Conv2D" for layer in model.layers):
        return methods
    skipped = [m for m in methods if m in CONV_METHODS]
    kept = [m for m in methods if m not in CONV_METHODS]
    if not kept:
        raise UsageError(
            f"{', '.join(skipped)}: the model has no Conv2D layer "
            "(occlusion and saliency work on any model)"
        )
    for method in skipped:
        print(f"{method}: skipped, the model has no Conv2D layer")
    return kept


def visualize(args) -> int:
    """Feature maps, filters, occlusion, saliency and Grad-CAM as PNG files."""
    from cnnumpy import visualize as vis

    model, config, folder = runs.open_run(args.target)
    out = _out_folder(args.out, folder / "visualize")
    methods = _methods(args.method, model)
    needs_image = [m for m in methods if m != "filters"]
    x = label = tag = target = None
    if needs_image:
        x, label, tag = _one_image(args, model, config)
        outputs, probabilities = class_outputs(model, x[None])
        row = outputs[0]
        names = runs.class_names_of(config, len(row))
        predicted = int(np.argmax(row))
        target = predicted if args.label is None else args.label
        if not 0 <= target < len(names):
            raise UsageError(f"--label {target}: expected 0..{len(names) - 1}")
        truth = "" if label is None else f"true {names[label]}, "
        print(
            f"{tag}: {truth}predicted {names[predicted]} "
            f"({_shown(row[predicted], probabilities)}); maps for class {names[target]}"
        )
    for method in methods:
        for path in _draw(vis, method, model, x, target, out, tag):
            print(path)
    return 0


def _draw(vis, method: str, model, x, label, out: Path, tag) -> list[Path]:
    if method == "filters":
        path = out / "filters.png"
        vis.filters(model, save=path)
        return [path]
    if method == "features":
        paths = []
        convs = [
            i
            for i, layer in enumerate(model.layers)
            if type(layer).__name__ == "Conv2D"
        ]
        if not convs:
            raise UsageError("features: the model has no Conv2D layer")
        for i in convs:
            index = vis.grad_cam_target(model, i)
            path = out / f"features-layer{index}-{tag}.png"
            vis.feature_maps(model, x, index, save=path)
            paths.append(path)
        return paths
    path = out / f"{method}-{tag}.png"
    if method == "occlusion":
        H, W = x.shape[1:]
        patch = max(2, min(H, W) // 4)
        stride = max(1, patch // 4)
        vis.occlusion(model, x, label, patch=patch, stride=stride, save=path)
    elif method == "saliency":
        vis.saliency(model, x, label, save=path)
    else:
        vis.grad_cam(model, x, label, save=path)
    return [path]


# -- bench -----------------------------------------------------------------------------
def bench(args) -> int:
    """The technique lab (``cnnumpy.functional.techniques``): time and compare."""
    import json

    try:
        from cnnumpy.functional.techniques import format_table, run_lab
    except ImportError:
        raise UsageError(
            "bench: the technique lab (cnnumpy.functional.techniques) is not "
            "available in this version"
        ) from None
    dtype = np.dtype(args.dtype)
    rtol = 1e-6 if dtype == np.float64 else 1e-3  # float32 sums round differently
    try:
        rows = run_lab(
            args.layers,
            repeats=args.repeats,
            dtype=dtype,
            rtol=rtol,
            network=args.network,
        )
    except AssertionError as exc:
        print(f"cnnumpy bench: techniques disagree: {exc}", file=sys.stderr)
        return 1
    print(format_table(rows))
    if args.json:
        for row in rows:
            print(json.dumps(row))
    return 0
