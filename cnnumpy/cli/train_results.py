"""The end of ``cnnumpy train``: evaluate on the test split, then write the model, the
metrics, the figures and the report into the run folder (``cnnumpy.cli.runs`` lists
the files)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from cnnumpy import metrics, visualize
from cnnumpy.cli import runs
from cnnumpy.cli.train_recipes import flipped_test
from cnnumpy.divergence import TrainingDiverged


def finish_run(
    out: Path,
    model,
    config: dict,
    x_test,
    test,
    timings: dict,
    report: bool = True,
    tta_flip: bool = False,
) -> int:
    """Evaluate on the test set, then write the model, metrics, figures and report.

    With ``tta_flip`` the test is also run on the mean of the probabilities of each
    image and its mirror image (``cnnumpy.tta``): ``tta_flip_test_loss`` and
    ``tta_flip_test_accuracy`` in ``metrics.json``.

    Raises:
        TrainingDiverged: the test loss or accuracy is NaN or infinite (weights too
            large to use); nothing is written then.
    """
    start = time.perf_counter()
    result = model.evaluate(x_test, test.y)
    _check_finite(result, len(model.history.epoch))
    if tta_flip:
        result.update(flipped_test(model, x_test, test.y))
    probs = model.predict(x_test)
    timings["evaluate"] = time.perf_counter() - start
    model.save(out / runs.MODEL, include_optimizer=False)
    names = list(test.class_names)
    history = model.history
    _write_metrics(out, config, test, result, probs, history, timings)
    written = [runs.MODEL, runs.CONFIG, runs.METRICS, runs.HISTORY]
    written += _pictures(out, history, test.y, probs, names)
    if report:
        report = _report(out, model, config, history, x_test, test, timings)
    written += [runs.REPORT] if report else []
    _print_outcome(out, config, test, result, timings, written, report)
    return 0


def per_class(matrix: np.ndarray, names) -> dict[str, float | None]:
    """Accuracy per class name; None for a class with no test image."""
    accuracy = metrics.per_class_accuracy(matrix)
    pairs = zip(names, accuracy, strict=True)
    return {str(n): (None if np.isnan(a) else float(a)) for n, a in pairs}


def _check_finite(result: dict, epochs: int) -> None:
    """Raise ``TrainingDiverged`` if the test loss or accuracy is not finite."""
    for key in ("loss", "accuracy"):
        if not math.isfinite(result[key]):
            reason = f"the test {key} is {result[key]} after the last epoch"
            raise TrainingDiverged(reason, epoch=max(epochs - 1, 0))


def _write_metrics(out: Path, config, test, result, probs, history, timings) -> None:
    """``metrics.json``: test loss and accuracy, per-class accuracy, confusion, time."""
    names = list(test.class_names)
    matrix = metrics.confusion_matrix(test.y, probs, num_classes=len(names))
    last = {k: v[-1] for k, v in history.history.items() if v}
    runs.write_json(
        out / runs.METRICS,
        {
            "dataset": config["dataset"],
            "test_source": test.source,
            "test_loss": result["loss"],
            "test_accuracy": result["accuracy"],
            **{k: v for k, v in result.items() if k.startswith("tta_flip_")},
            "test_examples": len(test),
            "epochs_completed": len(history.epoch),
            "last_epoch": last,
            "per_class_accuracy": per_class(matrix, names),
            "confusion_matrix": matrix.tolist(),
            "timings_s": timings,
        },
    )


def _pictures(out: Path, history, y, probs, names) -> list[str]:
    try:  # matplotlib is imported only now, and may be missing
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


def _print_outcome(out: Path, config, test, result, timings, written, report) -> None:
    print(f"data used: {config['data']['train']}")
    loss = runs.loss_text(result["loss"])
    print(
        f"test accuracy: {result['accuracy']:.2%} (loss {loss}) on "
        f"{len(test):,} {test.name} test images; trained {timings['train']:.0f} s"
    )
    if "tta_flip_test_accuracy" in result:
        loss = runs.loss_text(result["tta_flip_test_loss"])
        print(
            f"with flip TTA: {result['tta_flip_test_accuracy']:.2%} (loss "
            f"{loss}), the mean of each image's and its "
            "mirror image's probabilities"
        )
    print(f"run folder: {out} ({', '.join(written)})")
    if report:
        print(f"report: {out / runs.REPORT}")
