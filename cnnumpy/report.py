"""The HTML run report: one self-contained ``report.html`` per training run.

``write_report`` gathers what a run produced into a single file that opens in any
browser with nothing beside it: the configuration, the model summary (seed 003's
bookkeeping), the training curves, the test accuracy and confusion matrix, the most
confident mistakes, the first layer's filters, and for a few test images what the
network looks at (occlusion, saliency, Grad-CAM; ``cnnumpy.visualize``), then the
timings. Images are PNGs embedded as base64 ``data:`` URIs; every piece of text is
HTML-escaped.

Typical call, after training (the CLI does this)::

    history = model.fit(x_train, y_train, ...)
    write_report("runs/lenet5", model, config=vars(args), history=history,
                 x_test=x_test, y_test=y_test, class_names=test.class_names,
                 timings={"train": 812.4, "evaluate": 3.1})

A section whose inputs are missing says so; a figure that cannot be drawn (e.g. Grad-CAM
for a model without convolution) is replaced by the error message, so a report written
after hours of training never fails for a side issue. Wrong arguments still raise.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import os
import time
from pathlib import Path

import numpy as np

from cnnumpy import metrics
from cnnumpy.fileio import atomic_write_text
from cnnumpy.summary import summary_text
from cnnumpy.visualize import maps, views

SECTIONS = ("configuration", "model", "curves", "evaluation", "maps", "timings")

_CSS = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:left;vertical-align:top}pre{background:#f6f6f6;padding:.8em;overflow-x:auto}
img{max-width:100%;display:block;margin:.5em 0}.note{color:#777}"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _figure(render, alt: str) -> str:
    """``<img>`` of ``render()``, or the reason it could not be drawn."""
    try:
        return _img(render(), alt)
    except (ValueError, TypeError) as exc:
        return f'<p class="note">{_e(alt)}: not drawn ({_e(exc)})</p>'


def _table(rows, header=("", "")) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(key: str, title: str, body: str) -> str:
    return f'<section id="{key}">\n<h2>{_e(title)}</h2>\n{body}\n</section>'


def _missing(what: str) -> str:
    return f'<p class="note">No {_e(what)} given.</p>'


def _config_section(config: dict | None) -> str:
    if not config:
        return _missing("configuration")
    rows = [
        (k, v if isinstance(v, str) else json.dumps(v, default=str))
        for k, v in config.items()
    ]
    return _table(rows, ("setting", "value"))


def _curves_section(history) -> str:
    values = views.history_dict(history) if history is not None else {}
    if not values:
        return _missing("training history")
    from cnnumpy.visualize import plots

    last = [(k, f"{v[-1]:.4g}") for k, v in values.items() if v and k != "time"]
    return _figure(lambda: plots.curves_png(values), "training curves") + _table(
        last, ("after the last epoch", "value")
    )


def _evaluation_section(x, y, probs, names) -> str:
    from cnnumpy.visualize import plots

    ids = np.asarray(y).argmax(axis=1) if np.asarray(y).ndim == 2 else np.asarray(y)
    full = np.hstack([1 - probs, probs]) if probs.shape[1] == 1 else probs
    accuracy = float(np.mean(full.argmax(axis=1) == ids))
    matrix = views.confusion_matrix(ids, full, names)
    index = maps.misclassified_indices(probs, y, 9)
    recall = metrics.per_class_accuracy(matrix)
    rows = [
        (
            name,
            f"{int(matrix[i].sum()):,}",
            "-" if np.isnan(recall[i]) else f"{recall[i]:.2%}",
        )
        for i, name in enumerate(names)
    ]
    return (
        f"<p>Test accuracy: <b>{accuracy:.2%}</b> on {len(ids):,} examples.</p>"
        + _table(rows, ("class", "examples", "accuracy (recall)"))
        + _figure(lambda: plots.confusion_png(matrix, names), "confusion matrix")
        + "<h3>Most confident mistakes</h3>"
        + _figure(
            lambda: views.misclassified_png(x, y, probs, index, names),
            "most confident mistakes",
        )
    )


def pick_examples(y: np.ndarray, n: int) -> list[int]:
    """Up to ``n`` test indices: the first example of each class, then the next ones."""
    ids = np.asarray(y).argmax(axis=1) if np.asarray(y).ndim == 2 else np.asarray(y)
    chosen: list[int] = []
    for c in np.unique(ids):
        if len(chosen) < n:
            chosen.append(int(np.flatnonzero(ids == c)[0]))
    rest = [i for i in range(len(ids)) if i not in set(chosen)]
    return sorted(chosen) + rest[: n - len(chosen)]


def _example_maps(model, x, label, patch, stride) -> dict[str, np.ndarray]:
    result = {
        "occlusion (drop of p)": maps.occlusion_map(model, x, label, patch, stride)
    }
    result["saliency"] = maps.saliency_map(model, x, label)
    try:
        result["Grad-CAM"] = maps.grad_cam_map(model, x, label)
    except (ValueError, TypeError):
        pass  # no Conv2D layer: the other two maps still say something
    return result


def _example_png(model, image, label, patch, stride, title) -> bytes:
    from cnnumpy.visualize import plots

    image = image.astype(model.dtype)
    return plots.maps_png(
        image, _example_maps(model, image, label, patch, stride), title
    )


def _maps_section(model, x, y, probs, names, n_examples, patch, stride) -> str:
    H, W = x.shape[2:]
    patch = patch or max(2, min(H, W) // 4)
    stride = stride or max(1, patch // 4)
    parts = [
        f"<p>Occlusion: patch {patch}, stride {stride}, filled with 0 (Zeiler &amp; "
        "Fergus); saliency: |d logit / d pixel|; Grad-CAM on the last Conv2D "
        "(in a graph: the last feature maps).</p>"
    ]
    ids = np.asarray(y).argmax(axis=1) if np.asarray(y).ndim == 2 else np.asarray(y)
    full = np.hstack([1 - probs, probs]) if probs.shape[1] == 1 else probs
    for i in pick_examples(ids, n_examples):
        label, pred = int(ids[i]), int(full[i].argmax())
        title = (
            f"test #{i}: true {names[label]}, predicted {names[pred]} "
            f"(p = {full[i, pred]:.2f})"
        )
        render = functools.partial(
            _example_png, model, x[i], label, patch, stride, title
        )
        parts.append(f"<h3>{_e(title)}</h3>")
        parts.append(_figure(render, title))
    parts.append("<h3>First-layer filters</h3>")
    parts.append(_figure(lambda: views.filters_png(model), "first-layer filters"))
    return "\n".join(parts)


def _timings_section(timings: dict | None) -> str:
    if not timings:
        return _missing("timings")
    rows = [
        (
            k,
            f"{v:,.3f} s"
            if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
            else v,
        )
        for k, v in timings.items()
    ]
    return _table(rows, ("step", "time"))


def _check_test_data(model, x_test, y_test, class_names):
    x = np.asarray(x_test)
    y = np.asarray(y_test)
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(model.input_shape):
        raise ValueError(
            f"write_report: x_test must have shape (N, "
            f"{', '.join(map(str, model.input_shape))}), got {x.shape}"
        )
    if len(y) != len(x):
        raise ValueError(f"write_report: {len(x)} test images for {len(y)} labels")
    k = max(int(model.output_shape[-1]), 2)
    names = (
        [str(c) for c in class_names]
        if class_names is not None
        else [str(i) for i in range(k)]
    )
    if len(names) != k:
        raise ValueError(f"write_report: {len(names)} class names for {k} classes")
    return x, y, names


def write_report(
    run_dir: str | os.PathLike,
    model,
    config: dict | None = None,
    history=None,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    class_names=None,
    timings: dict | None = None,
    *,
    n_examples: int = 4,
    title: str | None = None,
    occlusion_patch: int | None = None,
    occlusion_stride: int | None = None,
    max_test: int | None = None,
    filename: str = "report.html",
) -> Path:
    """Write ``run_dir/report.html``, one self-contained page about a training run.

    Args:
        run_dir: the run folder (created if needed).
        model: the trained, built Sequential (compiled or not).
        config: the run's settings, shown as a table (values JSON-encoded).
        history: the ``History`` from ``fit`` (or its ``.history`` dict, or None).
        x_test, y_test: test images ``(N, C, H, W)``, preprocessed as for training,
            and class ids ``(N,)`` (or one-hot). Without them the evaluation and the
            maps are left out.
        class_names: one name per class (default "0", "1", ...).
        timings: step name -> seconds (numbers are shown as seconds, other values as
            they are), e.g. ``{"train": 812.4, "evaluate": 3.1}``.
        n_examples: how many test images get occlusion, saliency and Grad-CAM maps
            (the first example of each class in turn).
        title: page title (default: the model's name).
        occlusion_patch, occlusion_stride: default ``min(H, W) // 4`` and a quarter of
            the patch (8 and 2 on 32x32).
        max_test: evaluate on the first ``max_test`` test examples only.
        filename: the file name inside ``run_dir``.

    Returns:
        The path of the written file (written atomically).
    """
    if model.input_shape is None:
        raise ValueError("write_report: the model is not built")
    if (
        isinstance(n_examples, bool)
        or not isinstance(n_examples, int)
        or n_examples < 0
    ):
        raise ValueError(
            f"write_report: n_examples must be an int >= 0, got {n_examples!r}"
        )
    name = title or model.name or "Sequential"
    body = [
        _section("configuration", "Configuration", _config_section(config)),
        _section("model", "Model", f"<pre>{_e(summary_text(model))}</pre>"),
        _section("curves", "Training curves", _curves_section(history)),
        *_test_sections(
            model,
            (x_test, y_test, class_names, max_test),
            (n_examples, occlusion_patch, occlusion_stride),
        ),
        _section("timings", "Timings", _timings_section(timings)),
    ]
    path = Path(run_dir) / filename
    atomic_write_text(path, _page(name, body))
    return path


def _test_sections(model, test, map_settings) -> list[str]:
    """The evaluation and the maps, from ``test = (x, y, class_names, max_test)``
    and ``map_settings = (n_examples, occlusion_patch, occlusion_stride)``."""
    x_test, y_test, class_names, max_test = test
    if x_test is None or y_test is None:
        missing = _missing("test data")
        return [_section("evaluation", "Evaluation on the test set", missing)]
    x, y, names = _check_test_data(model, x_test, y_test, class_names)
    x, y = x[:max_test], y[:max_test]
    probs = maps.class_probabilities(model, x)
    evaluation = _evaluation_section(x, y, probs, names)
    seen = _maps_section(model, x, y, probs, names, *map_settings)
    return [
        _section("evaluation", "Evaluation on the test set", evaluation),
        _section("maps", "What the network sees", seen),
    ]


def _page(name: str, body: list[str]) -> str:
    """The whole HTML page around the sections."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(name)} - cnnumpy report</title>\n<style>{_CSS}</style>\n"
        f"</head>\n<body>\n<h1>{_e(name)}</h1>\n"
        f'<p class="note">cnnumpy run report, written {_e(stamp)}.</p>\n'
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
