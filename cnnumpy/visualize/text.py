"""What a char model sees in a text: Karpathy's coloured-text pictures.

Karpathy, Johnson & Fei-Fei, "Visualizing and understanding recurrent networks"
(2015), colour each character of a text by what the model did there: how probable it
found the character (the well-predicted ends of words, the surprising starts), and
how active one hidden unit was (a unit that tracks quotes, line length, indentation).
Seed 003's recurrent chapter ends with these pictures.

- :func:`char_probabilities` and :func:`hidden_activations` (the numbers, from
  :mod:`cnnumpy.visualize.text_states`): the probability the model gave every
  character after the first, and the hidden states ``h_t`` of one recurrent layer.
- :func:`text_heat_html`: a self-contained, escaped HTML fragment, one coloured span
  per character (spaces and newlines shown).
- :func:`text_sections` and :func:`write_text_report`: both pictures as HTML, alone
  or as a standalone page written atomically.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np

from cnnumpy.data.text import Vocabulary
from cnnumpy.fileio import atomic_write_text
from cnnumpy.visualize.text_states import (
    CHUNK,
    char_probabilities,
    hidden_activations,
    most_variable_unit,
    probabilities_and_hidden,
)

__all__ = [
    "CHUNK",
    "PALETTES",
    "char_probabilities",
    "hidden_activations",
    "most_variable_unit",
    "text_heat_html",
    "text_sections",
    "write_text_report",
]

#: Colour stops (RGB, evenly spaced from vmin to vmax), linearly interpolated.
PALETTES: dict[str, tuple[tuple[int, int, int], ...]] = {
    # probability: white (the model did not expect it) to green (it did)
    "white-green": ((255, 255, 255), (0, 128, 0)),
    # an activation in [-1, 1]: blue below 0, white at 0, red above (Karpathy's)
    "blue-white-red": ((33, 102, 172), (255, 255, 255), (178, 24, 43)),
}


def _colours(values: np.ndarray, vmin: float, vmax: float, palette: str) -> np.ndarray:
    """RGB ``(n, 3)`` ints: ``values`` clipped to [vmin, vmax], mapped on the stops."""
    stops = np.asarray(PALETTES[palette], dtype=np.float64)
    s = (np.clip(values, vmin, vmax) - vmin) / (vmax - vmin)  # in [0, 1]
    position = s * (len(stops) - 1)
    lo = np.minimum(np.floor(position).astype(int), len(stops) - 2)
    frac = (position - lo)[:, None]
    return np.rint(stops[lo] * (1 - frac) + stops[lo + 1] * frac).astype(int)


def _check_heat_args(text, values, vmin, vmax, palette) -> np.ndarray:
    where = "text_heat_html"
    if not isinstance(text, str):
        raise TypeError(f"{where}: text must be a str, got {type(text).__name__}")
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (len(text),):
        raise ValueError(
            f"{where}: expected one value per character ({len(text)},), got "
            f"{values.shape}"
        )
    if not (np.isfinite(vmin) and np.isfinite(vmax) and vmin < vmax):
        raise ValueError(f"{where}: expected vmin < vmax, got {vmin} and {vmax}")
    if palette not in PALETTES:
        raise ValueError(
            f"{where}: palette must be one of {sorted(PALETTES)}, got {palette!r}"
        )
    return values


def text_heat_html(
    text: str,
    values,
    vmin: float = 0.0,
    vmax: float = 1.0,
    title: str = "",
    palette: str = "white-green",
) -> str:
    """``text`` as HTML, each character's background coloured by its value.

    A self-contained fragment (inline styles only): a ``<div>`` holding the title,
    a legend from vmin to vmax, and one ``<span>`` per character whose tooltip gives
    its value. Values are clipped to ``[vmin, vmax]``; NaN (no value, such as the
    first character's probability) is left uncoloured. Spaces are kept
    (``white-space: pre-wrap``), a newline is shown as ``↵`` before the break;
    every character and the title are HTML-escaped.

    Args:
        text: the characters.
        values: ``(len(text),)`` numbers.
        vmin: the value of the palette's first colour.
        vmax: the value of the palette's last colour.
        title: a heading above the text.
        palette: a name of :data:`PALETTES`.
    """
    values = _check_heat_args(text, values, vmin, vmax, palette)
    known = np.isfinite(values)
    rgb = _colours(np.where(known, values, vmin), vmin, vmax, palette)
    spans = []
    for char, value, ok, (r, g, b) in zip(text, values, known, rgb, strict=True):
        shown = "\u21b5\n" if char == "\n" else char
        if not ok:
            spans.append(
                f'<span title="{html.escape(repr(char))}">{html.escape(shown)}</span>'
            )
            continue
        ink = "#fff" if 0.299 * r + 0.587 * g + 0.114 * b < 128 else "#000"
        tip = html.escape(f"{char!r}: {value:.4g}", quote=True)
        spans.append(
            f'<span style="background:#{r:02x}{g:02x}{b:02x};color:{ink}" '
            f'title="{tip}">{html.escape(shown)}</span>'
        )
    return (
        '<div class="text-heat">'
        f"<h3>{html.escape(title)}</h3>{_legend(vmin, vmax, palette)}"
        '<div style="font-family:monospace;white-space:pre-wrap;line-height:1.5;'
        'border:1px solid #ccc;padding:.5em">' + "".join(spans) + "</div></div>"
    )


def _legend(vmin: float, vmax: float, palette: str) -> str:
    stops = ", ".join(f"rgb({r},{g},{b})" for r, g, b in PALETTES[palette])
    return (
        f'<p style="font-size:.85em">{vmin:.4g} '
        f'<span style="display:inline-block;width:10em;height:.8em;'
        f'background:linear-gradient(to right, {stops})"></span> {vmax:.4g}</p>'
    )


def _check_unit(unit, units: int, where: str) -> None:
    if isinstance(unit, bool) or not isinstance(unit, (int, np.integer)):
        raise TypeError(f"{where}: unit must be an int, got {unit!r}")
    if not 0 <= unit < units:
        raise ValueError(f"{where}: unit must be in [0, {units}), got {unit}")


def text_sections(
    model, vocabulary: Vocabulary, text: str, unit: int | None = None, layer=None
) -> str:
    """Both pictures as one HTML fragment: probabilities, then one hidden unit.

    ``unit`` defaults to :func:`most_variable_unit`. The unit's colours span [-1, 1]
    (tanh-bounded units); a ReLU unit beyond it widens the span symmetrically.
    """
    where = "text_sections"
    index, probs, hidden = probabilities_and_hidden(
        model, vocabulary, text, layer, where
    )
    unit = most_variable_unit(hidden) if unit is None else unit
    _check_unit(unit, hidden.shape[1], where)
    activation = hidden[:, unit].astype(np.float64)
    bound = max(1.0, float(np.abs(activation).max()))
    layer_name = f"layer {index} ({model.layers[index]!r})"
    return "\n".join(
        [
            '<section id="char-probabilities">',
            text_heat_html(
                text,
                np.concatenate([[np.nan], probs]),  # the first char has no p
                0.0,
                1.0,
                f"Probability the model gave each character (mean {probs.mean():.3f})",
                "white-green",
            ),
            "</section>",
            '<section id="hidden-unit">',
            text_heat_html(
                text,
                activation,
                -bound,
                bound,
                f"Hidden unit {unit} of {layer_name}",
                "blue-white-red",
            ),
            "</section>",
        ]
    )


def write_text_report(
    path: str | os.PathLike,
    model,
    vocabulary: Vocabulary,
    text: str,
    unit: int | None = None,
) -> Path:
    """Write a standalone HTML page with :func:`text_sections`, atomically.

    Returns:
        The path written.
    """
    body = text_sections(model, vocabulary, text, unit)
    name = html.escape(model.name or "char model")
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{name} - what the char model sees</title>\n</head>\n"
        f'<body style="font-family:sans-serif;max-width:1100px;margin:2em auto">\n'
        f"<h1>{name}</h1>\n{body}\n</body>\n</html>\n"
    )
    atomic_write_text(path, page)
    return Path(path)
