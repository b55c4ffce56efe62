"""``model.preprocessing``: how the CLI tools turn pixels, or characters, into a
model's inputs.

It is saved in the model file's metadata and checked, field by field, both when it is
saved and when it is loaded, so that a tool never standardises images with a NaN or a
zero standard deviation, nor decodes text with a vocabulary that is not the model's.
Two forms: ``{"scale", "mean", "std"}`` for an image model, ``{"vocabulary":
[symbols]}`` for a char model (``cnnumpy train --text``; ``cnnumpy generate`` decodes
its outputs with it). Both are plain JSON: reading them never runs code.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["PREPROCESSING_KEYS", "VOCABULARY_KEY", "check_preprocessing"]

PREPROCESSING_KEYS = ("scale", "mean", "std")
VOCABULARY_KEY = "vocabulary"
MAX_SYMBOLS = 2**16  # a char model's alphabet; far more would be a word model


def check_preprocessing(value, input_shape, where: str) -> dict | None:
    """``model.preprocessing`` checked field by field, as a new JSON-able dict.

    None, or ``{"scale": s, "mean": [m_c], "std": [s_c]}`` for a model on images
    ``(C, H, W)``: C finite means, C finite stds > 0 and a finite ``s > 0``, which
    standardise pixels as ``x' = (x * s - m_c) / s_c``; or ``{"vocabulary": [...]}``
    for a char model (see ``check_vocabulary``).

    Raises:
        ValueError: naming the field, what was expected and what was found.
    """
    if value is None:
        return None
    if isinstance(value, dict) and list(value) == [VOCABULARY_KEY]:
        symbols = check_vocabulary(value[VOCABULARY_KEY], input_shape, where)
        return {VOCABULARY_KEY: symbols}
    if not isinstance(value, dict) or sorted(value) != sorted(PREPROCESSING_KEYS):
        found = sorted(map(str, value)) if isinstance(value, dict) else _short(value)
        raise ValueError(
            f"{where}: preprocessing must be a dict with the keys scale, mean and "
            f"std, got {found}"
        )
    if input_shape is None or len(input_shape) != 3:
        raise ValueError(
            f"{where}: preprocessing is per channel of images (C, H, W), "
            f"the model takes {input_shape}"
        )
    scale = _finite(value["scale"])
    if scale is None or scale <= 0:
        raise ValueError(
            f"{where}: preprocessing scale must be a number > 0, "
            f"got {_short(value['scale'])}"
        )
    checked = {"scale": scale}
    for key, kind in (("mean", "finite numbers"), ("std", "numbers > 0")):
        numbers = _per_channel(value[key], input_shape[0], positive=key == "std")
        if numbers is None:
            raise ValueError(
                f"{where}: preprocessing {key} must be a list of {kind}, one per "
                f"input channel ({input_shape[0]}), got {_short(value[key])}"
            )
        checked[key] = numbers
    return checked


def check_vocabulary(symbols, input_shape, where: str) -> list[str]:
    """A char model's vocabulary: 1 to ``MAX_SYMBOLS`` distinct one-character strings,
    in id order. A model on one-hot characters ``(T, K)`` must have K of them (a
    model on ids ``(T,)``, Embedding first, is checked against its outputs when used).

    Raises:
        ValueError: naming ``where``, what was expected and what was found.
    """
    if (
        not isinstance(symbols, list)
        or not 0 < len(symbols) <= MAX_SYMBOLS
        or not all(isinstance(s, str) and len(s) == 1 for s in symbols)
        or len(set(symbols)) != len(symbols)
    ):
        raise ValueError(
            f"{where}: preprocessing vocabulary must be a list of 1 to {MAX_SYMBOLS} "
            f"distinct characters, got {_short(symbols)}"
        )
    if input_shape is None or len(input_shape) not in (1, 2):
        raise ValueError(
            f"{where}: a vocabulary is for a model on characters (T, K) or ids (T,), "
            f"the model takes {input_shape}"
        )
    if len(input_shape) == 2 and input_shape[-1] != len(symbols):
        raise ValueError(
            f"{where}: the vocabulary has {len(symbols)} characters, the model reads "
            f"one-hot vectors of {input_shape[-1]}"
        )
    return list(symbols)


def _per_channel(values, channels: int, positive: bool) -> list[float] | None:
    """``channels`` finite floats (all > 0 if ``positive``) from a list, else None."""
    if not isinstance(values, (list, tuple)) or len(values) != channels:
        return None
    numbers = [_finite(v) for v in values]
    if any(v is None or (positive and v <= 0) for v in numbers):
        return None
    return numbers


def _finite(value) -> float | None:
    """``value`` as a float if it is a finite int or float (not a bool), else None."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        return None
    return number if math.isfinite(number) else None


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
