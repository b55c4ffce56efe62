"""``cnnumpy evaluate | predict | visualize``, and the files written at the end of a
training run (metrics, curves, confusion matrix, report)."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import numpy as np

from cnnumpy import metrics, optimizers, runs
from cnnumpy.runs import UsageError

METHODS = ("features", "filters", "occlusion", "saliency", "gradcam")


# -- the end of `train` ----------------------------------------------------------------
def finish_run(
    out: Path, model, config: dict, x_test, test, timings: dict, report: bool = True
) -> int:
    """Evaluate on the test set, write metrics, figures and report."""
    from cnnumpy.cli_train import per_class

    start = time.perf_counter()
    result = model.evaluate(x_test, test.y)
    probs = model.predict(x_test)
    timings["evaluate"] = time.perf_counter() - start
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
    """The split to evaluate on, preprocessed like the run's training data."""
    name, data_dir = _data_source(args, config, "give --dataset")
    ds = runs.limit(runs.load_split(name, split, data_dir), args.limit)
    runs.check_shape(model, ds)
    mean, std = runs.stats_of(config, model.input_shape[0])
    return ds, runs.preprocess(ds.x, mean, std, model.dtype)


def evaluate(args) -> int:
    model, config, folder = runs.open_run(args.target)
    ds, x = _test_data(args, model, config, args.split)
    if model.loss is None:
        model.compile(loss="cross_entropy")
    if model.optimizer is None:  # evaluate() wants a compiled model; no step is taken
        model.optimizer = optimizers.get("sgd")
    result = model.evaluate(x, ds.y)
    probs = model.predict(x)
    names = runs.class_names_of(config, probs.shape[1])
    matrix = metrics.confusion_matrix(ds.y, probs, num_classes=len(names))
    print(runs.describe(ds))
    print(f"loss {result['loss']:.4f}  accuracy {result['accuracy']:.2%}")
    counts = matrix.sum(axis=1)
    for name, acc, n in zip(
        names, metrics.per_class_accuracy(matrix), counts, strict=True
    ):
        shown = "   n/a" if np.isnan(acc) else f"{acc:7.2%}"
        print(f"  {name:>12}  {shown}  ({n:,} images)")
    out = Path(args.out) if args.out else folder
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", ds.name)
    path = out / f"confusion_matrix_{safe}_{ds.split}.png"
    from cnnumpy import visualize

    visualize.confusion_matrix(ds.y, probs, names, save=path)
    print(f"confusion matrix: {path}")
    return 0


# -- predict ---------------------------------------------------------------------------
def predict(args) -> int:
    model, config, _ = runs.open_run(args.target)
    shape = tuple(model.input_shape)
    images = np.stack([runs.read_image(p, shape, args.invert) for p in args.images])
    mean, std = runs.stats_of(config, shape[0])
    probs = model.predict(runs.preprocess(images, mean, std, model.dtype))
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise UsageError(f"predict needs a classifier, the model outputs {probs.shape}")
    names = runs.class_names_of(config, probs.shape[1])
    k = min(args.top, probs.shape[1])
    for path, p in zip(args.images, probs, strict=True):
        best = np.argsort(-p, kind="stable")[:k]
        ranked = ", ".join(f"{names[i]} ({p[i]:.2%})" for i in best)
        print(f"{path}: {ranked}")
    return 0


# -- visualize -------------------------------------------------------------------------
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
    mean, std = runs.stats_of(config, model.input_shape[0])
    return runs.preprocess(raw[None], mean, std, model.dtype)[0], label, tag


def visualize(args) -> int:
    from cnnumpy import visualize as vis

    model, config, folder = runs.open_run(args.target)
    out = Path(args.out) if args.out else folder / "visualize"
    methods = list(dict.fromkeys(args.method))
    needs_image = [m for m in methods if m != "filters"]
    x = label = tag = None
    if needs_image:
        x, label, tag = _one_image(args, model, config)
        probs = model.predict(x[None])[0]
        names = runs.class_names_of(config, len(probs))
        predicted = int(np.argmax(probs))
        target = predicted if args.label is None else args.label
        if not 0 <= target < len(names):
            raise UsageError(f"--label {target}: expected 0..{len(names) - 1}")
        truth = "" if label is None else f"true {names[label]}, "
        print(
            f"{tag}: {truth}predicted {names[predicted]} ({probs[predicted]:.2%}); "
            f"maps for class {names[target]}"
        )
    for method in methods:
        for path in _draw(
            vis, method, model, x, target if needs_image else None, out, tag
        ):
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
