"""PNG rendering of the visualisations with matplotlib (imported lazily, Agg backend).

Every function returns the PNG file as ``bytes`` (the report embeds them; the public
functions of :mod:`cnnumpy.visualize` write them atomically). Figures are built with the
object API (``matplotlib.figure.Figure``), never pyplot's global state, so they work in
threads and scripts alike, and their pixel size is fixed: ``figsize * DPI``, no "tight"
cropping. The sizes are documented per function (width x height in pixels).
"""

from __future__ import annotations

import io
import math
import sys

import numpy as np

DPI = 100
TILE = 1.5  # inches per grid tile: 150 x 150 pixels
TITLE_BAND = 0.4  # inches above a grid for its title: 40 pixels


def _figure(width: float, height: float):
    """A matplotlib Figure of ``width x height`` inches, with the Agg backend."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:  # do not switch a backend already in use
        matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI)


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def display_image(x: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` -> ``(H, W)`` grey or ``(H, W, 3)`` RGB in [0, 1] (min-max scaled).

    Other channel counts are shown as their mean.
    """
    x = np.asarray(x, dtype=np.float64)
    image = x.transpose(1, 2, 0) if x.shape[0] == 3 else x.mean(axis=0)
    low, high = image.min(), image.max()
    return (image - low) / (high - low) if high > low else np.zeros_like(image)


def _grey(x: np.ndarray) -> np.ndarray:
    image = display_image(x)
    return image.mean(axis=2) if image.ndim == 3 else image


def grid_shape(n: int, cols: int | None = None) -> tuple[int, int]:
    """(rows, cols) of a near-square grid holding ``n`` tiles."""
    cols = cols or max(1, math.ceil(math.sqrt(n)))
    return math.ceil(n / cols), cols


def grid_png(
    tiles,
    titles=None,
    suptitle: str | None = None,
    cols: int | None = None,
    cmap: str = "viridis",
) -> bytes:
    """Tiles side by side: ``(cols * 150) x (rows * 150 + 40)`` pixels (no 40 without
    ``suptitle``).

    Args:
        tiles: 2-D arrays (drawn with ``cmap``, each on its own scale) or ``(h, w, 3)``
            RGB arrays in [0, 1].
        titles: one short text per tile, or None.
    """
    rows, cols = grid_shape(len(tiles), cols)
    band = TITLE_BAND if suptitle else 0.0
    height = rows * TILE + band
    fig = _figure(cols * TILE, height)
    top = 1.0 - (band + (0.25 if titles else 0.05)) / height
    fig.subplots_adjust(
        left=0.02,
        right=0.98,
        bottom=0.02,
        top=top,
        wspace=0.1,
        hspace=0.3 if titles else 0.1,
    )
    for i in range(rows * cols):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.axis("off")
        if i < len(tiles):
            ax.imshow(tiles[i], cmap=cmap, interpolation="nearest")
            if titles:
                ax.set_title(str(titles[i]), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9, y=1.0 - 0.08 / height, va="top")
    return _png(fig)


def _overlay(fig, ax, x: np.ndarray, heat: np.ndarray, title: str, diverging: bool):
    """Grey image under the heat map (alpha 0.5), with a colour bar."""
    ax.imshow(_grey(x), cmap="gray", interpolation="nearest")
    if diverging:  # occlusion: drops may be negative; 0 is white
        limit = float(np.abs(heat).max()) or 1.0
        im = ax.imshow(
            heat,
            cmap="coolwarm",
            vmin=-limit,
            vmax=limit,
            alpha=0.6,
            interpolation="nearest",
        )
    else:
        im = ax.imshow(
            heat, cmap="jet", vmin=0.0, vmax=1.0, alpha=0.5, interpolation="nearest"
        )
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def maps_png(x: np.ndarray, maps: dict[str, np.ndarray], title: str = "") -> bytes:
    """The image, then each map over it with a colour bar: ``(1 + n) * 300 x 300`` px.

    Args:
        x: the image ``(C, H, W)``.
        maps: title -> ``(H, W)`` map; a title starting with "occlusion" gets a
            diverging colour scale centred on 0, the others a [0, 1] scale.
    """
    n = len(maps) + 1
    fig = _figure(3.0 * n, 3.0)
    fig.subplots_adjust(left=0.02, right=0.9, bottom=0.04, top=0.82, wspace=0.45)
    ax = fig.add_subplot(1, n, 1)
    image = display_image(x)
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
    ax.set_title("input", fontsize=9)
    ax.axis("off")
    for i, (name, heat) in enumerate(maps.items()):
        _overlay(
            fig,
            fig.add_subplot(1, n, i + 2),
            x,
            heat,
            name,
            diverging=name.startswith("occlusion"),
        )
    if title:
        fig.suptitle(title, fontsize=10)
    return _png(fig)


LN2 = math.log(2)  # bits per character = cross-entropy in nats / ln 2

BPC_LABEL = "bits per character"


def is_char_history(history: dict[str, list[float]]) -> bool:
    """A char run's history: it records bits per character (``bpc``, ``val_bpc``)."""
    return bool(history.get("bpc") or history.get("val_bpc"))


def bpc_curves(history: dict[str, list[float]]) -> dict[str, list[float]]:
    """``bpc`` and ``val_bpc`` of a char run, each from its loss when not recorded.

    ``bpc = loss / ln 2``: the cross-entropy in nats per character, in bits.
    """
    curves = {}
    for bpc, loss in (("bpc", "loss"), ("val_bpc", "val_loss")):
        if history.get(bpc):
            curves[bpc] = list(history[bpc])
        elif history.get(loss):
            curves[bpc] = [value / LN2 for value in history[loss]]
    return curves


def _curve_panel(ax, series, title: str) -> None:
    """One panel: ``(label, values, style)`` per curve against epochs 1, 2, ..."""
    from matplotlib.ticker import MaxNLocator

    for label, values, style in series:
        if values:
            epochs = np.arange(1, len(values) + 1)
            ax.plot(epochs, values, style, markersize=3, label=label)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    else:
        ax.text(
            0.5,
            0.5,
            "not recorded",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )


def _loss_accuracy_figure(history: dict[str, list[float]]):
    fig = _figure(10.0, 4.0)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.9, wspace=0.25)
    for i, metric in enumerate(("loss", "accuracy")):
        ax = fig.add_subplot(1, 2, i + 1)
        series = [
            (key, history.get(key), style)
            for key, style in ((metric, "-o"), (f"val_{metric}", "--s"))
        ]
        _curve_panel(ax, series, metric)
    return fig


def _bpc_figure(history: dict[str, list[float]]):
    """One panel: training and validation bits per character (lower is better)."""
    curves = bpc_curves(history)
    fig = _figure(10.0, 4.0)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.9)
    ax = fig.add_subplot(1, 1, 1)
    series = [
        (f"{name} (last {curves[key][-1]:.3f})", curves[key], style)
        for key, name, style in (
            ("bpc", "training", "-o"),
            ("val_bpc", "validation", "--s"),
        )
        if curves.get(key)
    ]
    title = (
        f"{BPC_LABEL} = cross-entropy / ln 2 "
        "(training: mean over the epoch; validation: at its end)"
    )
    _curve_panel(ax, series, title)
    ax.set_ylabel(BPC_LABEL)
    return fig


def curves_figure(history: dict[str, list[float]]):
    """The matplotlib Figure of :func:`curves_png` (1000 x 400 pixels).

    A char run (its history records ``bpc`` or ``val_bpc``) gets one panel of bits
    per character, training and validation; any other run gets loss (left) and
    accuracy (right), train and val.
    """
    if is_char_history(history):
        return _bpc_figure(history)
    return _loss_accuracy_figure(history)


def curves_png(history: dict[str, list[float]]) -> bytes:
    """Training curves per epoch as a PNG, 1000 x 400 pixels (see ``curves_figure``).

    Loss (left) and accuracy (right), train and val; bits per character for a char
    run.
    """
    return _png(curves_figure(history))


def confusion_side(num_classes: int) -> float:
    """Side in inches of the confusion-matrix figure (grows with the class count)."""
    return max(5.0, 0.5 * num_classes + 2.5)


def confusion_png(matrix: np.ndarray, class_names: list[str]) -> bytes:
    """Counts, row-normalised colours; a square of ``confusion_side(K) * 100`` px."""
    K = len(class_names)
    side = confusion_side(K)
    fig = _figure(side, side)
    fig.subplots_adjust(left=0.2, right=0.95, bottom=0.2, top=0.92)
    ax = fig.add_subplot(1, 1, 1)
    totals = matrix.sum(axis=1, keepdims=True)
    rates = matrix / np.where(totals > 0, totals, 1)
    ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(K):
        for j in range(K):
            colour = "white" if rates[i, j] > 0.5 else "black"
            ax.text(
                j,
                i,
                str(int(matrix[i, j])),
                ha="center",
                va="center",
                fontsize=7,
                color=colour,
            )
    ax.set_xticks(
        range(K), [str(c) for c in class_names], rotation=45, ha="right", fontsize=8
    )
    ax.set_yticks(range(K), [str(c) for c in class_names], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix", fontsize=10)
    return _png(fig)
