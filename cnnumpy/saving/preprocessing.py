"""``model.preprocessing``: how the CLI tools turn pixels into a model's inputs.

It is saved in the model file's metadata and checked, field by field, both when it is
saved and when it is loaded, so that a tool never standardises images with a NaN or a
zero standard deviation.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["PREPROCESSING_KEYS", "check_preprocessing"]

PREPROCESSING_KEYS = ("scale", "mean", "std")


def check_preprocessing(value, input_shape, where: str) -> dict | None:
    """``model.preprocessing`` checked field by field, as a new JSON-able dict.

    None, or ``{"scale": s, "mean": [m_c], "std": [s_c]}`` for a model on images
    ``(C, H, W)``: C finite means, C finite stds > 0 and a finite ``s > 0``, which
    standardise pixels as ``x' = (x * s - m_c) / s_c``.

    Raises:
        ValueError: naming the field, what was expected and what was found.
    """
    if value is None:
        return None
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
