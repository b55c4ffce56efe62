"""The public visualisations: each returns its array; ``save=path`` also writes a PNG.

The arrays come from :mod:`cnnumpy.visualize.maps` (NumPy only); matplotlib is imported
only when a PNG is asked for. Files are written atomically (``cnnumpy.fileio``).
"""

from __future__ import annotations

import os

import numpy as np

from cnnumpy import metrics
from cnnumpy.fileio import atomic_write_bytes
from cnnumpy.visualize import _checks as ck
from cnnumpy.visualize import maps

PathLike = str | os.PathLike


def _save(save: PathLike | None, render) -> None:
    """Render the PNG only when it is wanted (``render()`` returns its bytes)."""
    if save is not None:
        atomic_write_bytes(save, render())


def feature_maps(
    model, x: np.ndarray, layer, save: PathLike | None = None
) -> np.ndarray:
    """The output of ``layer`` for one image, every channel (seed 001, Figure 2).

    Args:
        model: a built Sequential.
        x: one image ``(C, H, W)``.
        layer: index (negative counts from the end), Layer object or layer name.
        save: PNG path for a grid of every channel (150 x 150 pixels per tile).

    Returns:
        ``(channels, h, w)`` (``(features, 1, 1)`` for a vector output).
    """
    out = maps.feature_maps_array(model, x, layer)
    index = ck.layer_index(model, layer, "feature_maps")

    def render():
        from cnnumpy.visualize import plots

        title = f"layer {index}: {model.layers[index]!r}, {out.shape[0]} maps"
        return plots.grid_png(list(out), [str(i) for i in range(len(out))], title)

    _save(save, render)
    return out


def filters(model, layer=None, save: PathLike | None = None) -> np.ndarray:
    """The kernels of the first (or chosen) Conv2D layer, each scaled to [0, 1].

    Returns:
        ``(F, KH, KW, 3)`` RGB when the layer sees 3 channels, else ``(F, C, KH, KW)``.
        The PNG shows one tile per filter (per filter and channel when C is neither 1
        nor 3, one row per filter).
    """
    kernels = maps.filters_array(model, layer)
    _save(save, lambda: filters_png(model, layer))
    return kernels


def filters_png(model, layer=None) -> bytes:
    """PNG of ``filters``: a tile per filter (a row per filter when C is not 1 or 3)."""
    from cnnumpy.visualize import plots

    kernels = maps.filters_array(model, layer)
    index = ck.first_conv_index(model, layer, "filters")
    channels = model.layers[index].params["W"].shape[1]
    if channels in (1, 3):
        tiles = list(kernels[:, 0]) if channels == 1 else list(kernels)
        cols = None
    else:
        tiles, cols = list(kernels.reshape(-1, *kernels.shape[2:])), channels
    title = f"layer {index}: {len(kernels)} filters"
    return plots.grid_png(tiles, None, title, cols, cmap="gray")


def _map_view(name: str, x, heat: np.ndarray, label: int, save) -> np.ndarray:
    def render():
        from cnnumpy.visualize import plots

        return plots.maps_png(x, {name: heat}, f"class {label}")

    _save(save, render)
    return heat


def occlusion(
    model,
    x: np.ndarray,
    label: int,
    patch: int | tuple[int, int] = 8,
    stride: int | tuple[int, int] = 2,
    fill: float | str = 0.0,
    save: PathLike | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """Occlusion heat map (Zeiler & Fergus 2014; seed 000's ``visual``).

    A ``patch`` x ``patch`` square set to ``fill`` (a number, or ``"mean"``: each
    channel's mean) slides over the image every ``stride`` pixels; all occluded copies
    run through the model in batches of ``batch_size``. Each pixel gets the mean drop of
    ``p(label)`` over the patches covering it.

    Returns:
        ``(H, W)`` drops in probability (may be negative). The PNG (600 x 300 pixels)
        shows the image and the map over it with a diverging colour bar.
    """
    heat = maps.occlusion_map(model, x, label, patch, stride, fill, batch_size)
    return _map_view("occlusion (drop of p)", x, heat, label, save)


def saliency(
    model, x: np.ndarray, label: int, save: PathLike | None = None
) -> np.ndarray:
    """Responsibility map of seed 000: ``sum_c |d logit_label / d x_c|``, max 1.

    Returns:
        ``(H, W)`` in [0, 1]; the PNG is 600 x 300 pixels.
    """
    heat = maps.saliency_map(model, x, label)
    return _map_view("saliency", x, heat, label, save)


def grad_cam(
    model, x: np.ndarray, label: int, layer=None, save: PathLike | None = None
) -> np.ndarray:
    """Grad-CAM (Selvaraju et al. 2017) on the last (or chosen) Conv2D layer.

    The feature maps used are the conv layer's output after its activation when an
    activation layer follows it (see ``maps.grad_cam_target``).

    Returns:
        ``(H, W)`` in [0, 1], upsampled bilinearly to the input; the PNG is 600 x 300.
    """
    heat = maps.grad_cam_map(model, x, label, layer)
    return _map_view("Grad-CAM", x, heat, label, save)


def history_dict(history) -> dict[str, list[float]]:
    """The per-epoch lists of a ``History`` (or of a plain dict of lists)."""
    if hasattr(history, "history") and not isinstance(history, dict):
        history = history.history
    if history is None:
        return {}
    if hasattr(history, "history"):  # a model whose .history was a History
        history = history.history
    if not isinstance(history, dict):
        raise TypeError(
            f"training_curves: expected a History or a dict of lists, got "
            f"{type(history).__name__}"
        )
    return {str(k): [float(v) for v in values] for k, values in history.items()}


def training_curves(history, save: PathLike | None = None) -> dict[str, np.ndarray]:
    """Loss and accuracy per epoch, train and validation (1000 x 400 pixel PNG).

    A char run's history (it records ``bpc`` or ``val_bpc``, as ``cnnumpy train
    --text`` does) is drawn as bits per character instead, train and validation.

    Args:
        history: a ``cnnumpy.callbacks.History`` or its ``.history`` dict (keys loss,
            accuracy, val_loss, val_accuracy, bpc, val_bpc, ...).

    Returns:
        ``{"loss": array, "accuracy": ..., "val_loss": ..., "val_accuracy": ...,
        "bpc": ..., "val_bpc": ...}`` for the keys present.
    """
    values = history_dict(history)
    keys = ("loss", "accuracy", "val_loss", "val_accuracy", "bpc", "val_bpc")
    curves = {k: np.asarray(values[k], dtype=np.float64) for k in keys if k in values}

    def render():
        from cnnumpy.visualize import plots

        return plots.curves_png(values)

    _save(save, render)
    return curves


def confusion_matrix(
    y_true: np.ndarray, y_pred: np.ndarray, class_names, save: PathLike | None = None
) -> np.ndarray:
    """Counts ``M[i, j]`` of class-i examples predicted as j, as a labelled PNG.

    Args:
        y_true: class ids ``(N,)`` or one-hot ``(N, K)``.
        y_pred: class ids ``(N,)`` or scores ``(N, K)``.
        class_names: the K names (their number fixes K).

    Returns:
        ``(K, K)`` int64 counts.
    """
    names = [str(c) for c in class_names]
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) != len(y_pred):
        raise ValueError(
            f"confusion_matrix: {len(y_true)} labels for {len(y_pred)} predictions"
        )
    matrix = metrics.confusion_matrix(y_true, y_pred, num_classes=len(names))

    def render():
        from cnnumpy.visualize import plots

        return plots.confusion_png(matrix, names)

    _save(save, render)
    return matrix


def misclassified(
    model,
    x: np.ndarray,
    y: np.ndarray,
    k: int = 9,
    class_names=None,
    save: PathLike | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """The ``k`` test examples the model gets wrong with the highest confidence.

    Returns:
        Their indices, most confident mistake first (fewer than ``k`` if the model makes
        fewer mistakes). The PNG grid titles each image "true -> predicted (p)".
    """
    ck.check_built(model, "misclassified")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"misclassified: k must be a positive int, got {k!r}")
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"misclassified: {len(x)} images for {len(y)} labels")
    probs = maps.class_probabilities(model, x, batch_size)
    index = maps.misclassified_indices(probs, y, int(k))
    _save(save, lambda: misclassified_png(x, y, probs, index, class_names))
    return index


def misclassified_png(
    x: np.ndarray, y: np.ndarray, probs: np.ndarray, index: np.ndarray, class_names=None
) -> bytes:
    """Grid of ``x[index]`` titled "true -> predicted (p)", 150 x 150 px per tile."""
    from cnnumpy.visualize import plots

    full = np.hstack([1 - probs, probs]) if probs.shape[1] == 1 else probs
    names = (
        [str(c) for c in class_names]
        if class_names is not None
        else [str(i) for i in range(full.shape[1])]
    )
    ids = y.argmax(axis=1) if y.ndim == 2 else y
    titles = [
        f"{names[int(ids[i])]} -> {names[int(full[i].argmax())]} ({full[i].max():.2f})"
        for i in index
    ]
    tiles = [plots.display_image(x[i]) for i in index]
    if not tiles:
        tiles, titles = [np.ones((2, 2))], ["no mistakes"]
    return plots.grid_png(
        tiles, titles, f"{len(index)} most confident mistakes", cmap="gray"
    )
