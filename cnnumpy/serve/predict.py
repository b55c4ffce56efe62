"""What the Draw and Compare pages show, as JSON: class probabilities, the maps of
``cnnumpy.visualize`` (occlusion, saliency, Grad-CAM), every layer's feature maps,
the first convolution's filters, and a run's training history.

Arrays travel as "maps" (``as_map``): ``{"shape": [h, w], "min", "max", "data":
[row-major floats, 4 significant digits]}``, which the page paints on a canvas.

Every computation holds the run's lock (``LoadedRun.lock``: a layer keeps its
forward pass's values for its backward pass, so one model serves one request at a
time) and holds the BLAS to one thread (``blas_one_thread``). Why the latter: the
maps run the layers one image batch at a time outside the model's executor, and a
multi-threaded OpenBLAS on these small products waits for its own threads; measured
on LeNet-5 (2 cores, another job running), a forward pass of 64 images took 16 ms
with the BLAS free and 1.8 ms held, and the occlusion map 20 ms and 4.7 ms.
"""

from __future__ import annotations

import csv
import io
import math
import time

import numpy as np

from cnnumpy.cli import runs
from cnnumpy.cli.tools import class_outputs
from cnnumpy.engine.kernels.parallel import blas_one_thread
from cnnumpy.fileio import read_small_text
from cnnumpy.graph import arguments
from cnnumpy.layers.conv import Conv2D
from cnnumpy.serve.errors import ApiError
from cnnumpy.serve.images import Upload
from cnnumpy.serve.store import LoadedRun
from cnnumpy.textbook.activations import softmax
from cnnumpy.visualize.maps import grad_cam_map, occlusion_map, saliency_map

MAX_CHANNEL_MAPS = 32  # feature maps shown per layer
MAX_FILTER_MAPS = 64  # (filter, channel) kernels shown
MAX_HISTORY_BYTES = 4 * 2**20  # history.csv: one short row per epoch
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr")


# -- maps ------------------------------------------------------------------------------
def as_map(values: np.ndarray) -> dict:
    """A 2-D array (a 1-D one becomes one row ``1 x n``) as a map for the page.

    NaN becomes 0 and infinities the largest finite floats: JSON has neither.
    """
    grid = np.asarray(values, dtype=np.float64)
    if grid.ndim == 1:
        grid = grid[None]
    if grid.ndim != 2:
        raise ValueError(f"as_map: expected a 2-D array (h, w), got {grid.shape}")
    grid = np.nan_to_num(grid)
    low, high = (float(grid.min()), float(grid.max())) if grid.size else (0.0, 0.0)
    return {
        "shape": list(grid.shape),
        "min": significant(low),
        "max": significant(high),
        "data": [significant(v) for v in grid.ravel().tolist()],
    }


def significant(value: float) -> float:
    """``value`` rounded to 4 significant digits (``0.12345678`` -> ``0.1235``)."""
    return float(f"{value:.4g}")


def input_map(pixels: np.ndarray) -> dict:
    """What the model saw, ``(C, H, W)`` in [0, 255], as a map of its grey levels.

    A colour image's map is the mean of its channels, and carries ``"rgb"``: the
    pixels row-major, three integers each, as a canvas's image data takes them.
    """
    grey = pixels.mean(axis=0)
    result = as_map(grey)
    if pixels.shape[0] == 3:
        hwc = np.clip(np.rint(pixels.transpose(1, 2, 0)), 0, 255)
        result["rgb"] = hwc.astype(np.uint8).ravel().tolist()
    return result


# -- predict ---------------------------------------------------------------------------
def occlusion_settings(height: int, width: int) -> tuple[int, int]:
    """``(patch, stride)`` of the occlusion map: a quarter of the side (7 for 28
    pixels, a stroke of a digit), moved a third of a patch at a time (2: 144 occluded
    copies of a 28 x 28 image in one batch; on LeNet-5 here, 5 ms, 11 ms with both
    cores busy, where a stride of 1, 484 copies, takes twice as long)."""
    patch = max(2, min(height, width) // 4)
    return patch, max(1, patch // 3)


def probabilities_of(model, x: np.ndarray) -> np.ndarray:
    """``(K,)`` class probabilities for one input ``(1, C, H, W)``.

    A model trained with cross-entropy gives its softmax (``model.predict``); one
    whose outputs are raw scores (MSE) gets the softmax of its scores.
    """
    values, are_probabilities = class_outputs(model, x)
    row = values[0].astype(np.float64)
    if not np.all(np.isfinite(row)):
        raise ApiError(
            500,
            "the model's outputs are not finite (NaN or infinity): "
            "its weights are broken (a training that diverged?)",
        )
    return row if are_probabilities else softmax(row[None], axis=-1)[0]


def top_classes(probs: np.ndarray, names: list[str], top: int) -> list[dict]:
    """The ``top`` likeliest classes, likeliest first (ties: the lower index)."""
    order = np.argsort(-probs, kind="stable")[:top]
    return [{"class": names[i], "probability": float(probs[i])} for i in order]


def explanation_maps(model, x: np.ndarray, label: int) -> dict:
    """Occlusion, saliency and Grad-CAM maps ``(H, W)`` of ``label`` for one input
    ``(C, H, W)``; Grad-CAM is None for a model without a convolution."""
    patch, stride = occlusion_settings(*x.shape[1:])
    maps = {
        "occlusion": as_map(occlusion_map(model, x, label, patch=patch, stride=stride)),
        "saliency": as_map(saliency_map(model, x, label)),
        "grad_cam": None,
    }
    if has_convolution(model):
        maps["grad_cam"] = as_map(grad_cam_map(model, x, label))
    return maps


def has_convolution(model) -> bool:
    return any(isinstance(layer, Conv2D) for layer in model.layers)


def predict_response(
    run: LoadedRun, upload: Upload, *, top: int = 5, with_maps: bool = True
) -> dict:
    """The answer of ``POST /api/predict``: top classes, the input, the maps.

    ``time_ms`` gives the server's time in milliseconds: ``predict`` (preprocessing
    and the forward pass), ``maps`` (the three maps), ``json`` (rounding the numbers).
    """
    started = time.perf_counter()
    with run.lock, blas_one_thread():
        x = run.model_input(upload.pixels)
        probs = probabilities_of(run.model, x)
        label = int(np.argmax(probs))
        predicted = time.perf_counter()
        maps = explanation_maps(run.model, x[0], label) if with_maps else None
        mapped = time.perf_counter()
    names = run.class_names
    answer = {
        "top": top_classes(probs, names, min(top, len(probs))),
        "label": label,
        "input": input_map(upload.pixels),
        "maps": maps,
        "inverted": upload.inverted,
        "fitted": upload.fitted,
    }
    answer["time_ms"] = {
        "predict": _ms(predicted - started),
        "maps": _ms(mapped - predicted),
        "json": _ms(time.perf_counter() - mapped),
    }
    return answer


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


# -- features and filters --------------------------------------------------------------
def layer_outputs(model, x: np.ndarray) -> list[np.ndarray]:
    """Every layer's output for one input ``(1, C, H, W)``, in inference mode (no
    dropout, BatchNorm's running statistics), in one pass; a graph's layers read
    their sources' values (``cnnumpy.graph.arguments``)."""
    values = {0: x}
    n = model.n_inputs
    for j, (layer, sources) in enumerate(model.nodes):
        values[n + j] = layer.forward(arguments(layer, values, sources), training=False)
    return [values[n + j][0] for j in range(len(model.layers))]


def output_maps(output: np.ndarray) -> tuple[list[dict], bool]:
    """One example's output as maps: one per channel of ``(C, h, w)`` (at most
    ``MAX_CHANNEL_MAPS``), else one map (``1 x n`` for a vector); and whether
    channels were left out."""
    if output.ndim == 3:
        shown = output[:MAX_CHANNEL_MAPS]
        return [as_map(channel) for channel in shown], len(output) > len(shown)
    if output.ndim == 2:
        return [as_map(output)], False
    return [as_map(output.reshape(-1))], False


def layer_name(layer, index: int) -> str:
    return layer.name or f"{type(layer).__name__.lower()}_{index}"


def filters_json(model) -> dict | None:
    """The first convolution's kernels ``W[f, c]`` (raw weights), one map per
    (filter, channel), filter by filter, at most ``MAX_FILTER_MAPS``; None without
    a convolution."""
    index = next(
        (i for i, layer in enumerate(model.layers) if isinstance(layer, Conv2D)), None
    )
    if index is None:
        return None
    layer = model.layers[index]
    W = layer.params["W"]
    F, C = W.shape[:2]
    pairs = [(f, c) for f in range(F) for c in range(C)][:MAX_FILTER_MAPS]
    return {
        "layer": index,
        "name": layer_name(layer, index),
        "shape": list(W.shape),
        "maps": [as_map(W[f, c]) for f, c in pairs],
        "truncated": F * C > len(pairs),
    }


def features_response(run: LoadedRun, upload: Upload) -> dict:
    """The answer of ``POST /api/features``: each layer's output maps, the filters."""
    with run.lock, blas_one_thread():
        x = run.model_input(upload.pixels)
        outputs = layer_outputs(run.model, x)
        filters = filters_json(run.model)
    layers = []
    for index, (layer, output) in enumerate(
        zip(run.model.layers, outputs, strict=True)
    ):
        maps, truncated = output_maps(output)
        layers.append(
            {
                "index": index,
                "name": layer_name(layer, index),
                "type": type(layer).__name__,
                "shape": list(output.shape),
                "maps": maps,
                "truncated": truncated,
            }
        )
    return {"layers": layers, "filters": filters}


# -- history ---------------------------------------------------------------------------
def history_response(name: str, folder) -> dict:
    """The answer of ``GET /api/runs/NAME/history``: the columns of ``history.csv``
    (one value per epoch; ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``,
    ``lr`` always present, empty without the file) and ``metrics.json`` (or null)."""
    history = {key: [] for key in HISTORY_KEYS}
    path = folder / runs.HISTORY
    if path.is_file():
        history.update(read_history(path))
    metrics_path = folder / runs.METRICS
    metrics = None
    if metrics_path.is_file():
        try:
            metrics = runs.read_json(metrics_path)
        except runs.UsageError as exc:
            raise ApiError(500, f"run {name}: {exc}") from None
    return {"name": name, "history": history, "metrics": metrics}


def read_history(path) -> dict[str, list]:
    """``history.csv`` as columns; an empty or non-numeric cell is None."""
    try:
        text = read_small_text(path, MAX_HISTORY_BYTES)
    except (OSError, ValueError) as exc:
        raise ApiError(500, f"cannot read {path.name}: {exc}") from None
    columns: dict[str, list] = {}
    for row in csv.DictReader(io.StringIO(text)):
        for key, cell in row.items():
            if key is not None:
                columns.setdefault(key, []).append(_number(cell))
    return columns


def _number(cell) -> float | None:
    try:
        value = float(cell)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
