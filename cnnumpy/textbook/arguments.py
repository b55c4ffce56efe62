"""How a window's size, step and padding are given: an int, the same along every
axis, or one int per axis (``(3, 5)``, or ``[3, 5]`` from a saved config).

The one reader of these arguments: the book's and the engine's convolutions and
poolings normalise theirs with :func:`int_tuple`, and the layers check their
constructor arguments with it and with :func:`padding_tuple` (which also takes
``"valid"`` and ``"same"``, resolved by :func:`cnnumpy.textbook.padding.resolve_padding`
once the input size is known). A bad argument raises a ``TypeError`` or a
``ValueError`` that names its user, the argument and what it got.
"""

from __future__ import annotations

import numpy as np


def is_int(value) -> bool:
    """An int or a NumPy integer, not a bool (``True`` is no size)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _int_form(length: int) -> str:
    """How an argument of ``length`` ints may be given, for error messages."""
    if length == 1:
        return "an int"
    return "an int or a pair of ints" if length == 2 else f"an int or {length} ints"


def int_tuple(
    value: int | tuple[int, ...] | list[int],
    length: int = 2,
    what: str = "value",
    owner: str = "",
    minimum: int | None = None,
) -> tuple[int, ...]:
    """A window size, step or padding as ``length`` ints: an int is the same along
    every axis, ``(3, 5)`` or a config's ``[3, 5]`` one per axis.

    Args:
        value: the argument as given.
        length: how many ints (the number of axes, or 2 for ``(before, after)``).
        what, owner: the argument's and its user's names, for the messages.
        minimum: the least value allowed (1: "positive", 0: "non-negative"), or
            None to leave the range to the caller.

    Raises:
        TypeError: not an int nor ``length`` ints (a bool is not an int).
        ValueError: a value below ``minimum``.
    """
    prefix = f"{owner}: " if owner else ""
    if is_int(value):
        values = (int(value),) * length
    elif (
        isinstance(value, (tuple, list))
        and len(value) == length
        and all(is_int(v) for v in value)
    ):
        values = tuple(int(v) for v in value)
    else:
        raise TypeError(f"{prefix}{what} must be {_int_form(length)}, got {value!r}")
    if minimum is not None and min(values) < minimum:
        least = {0: "non-negative", 1: "positive"}.get(minimum, f">= {minimum}")
        raise ValueError(f"{prefix}{what} must be {least}, got {value!r}")
    return values


def padding_tuple(
    padding: int | str | tuple[int, ...] | list[int],
    length: int = 2,
    owner: str = "",
    modes: tuple[str, ...] = ("valid", "same"),
    minimum: int | None = 0,
) -> str | tuple[int, ...]:
    """A padding argument: one of ``modes`` as it is, else :func:`int_tuple`'s
    ``length`` ints (``(PH, PW)`` for an image, ``(left, right)`` for a sequence).

    ``modes=()`` takes ints only (the poolings); ``minimum`` as in :func:`int_tuple`.
    """
    if not modes:
        return int_tuple(padding, length, "padding", owner, minimum)
    prefix = f"{owner}: " if owner else ""
    choices = ", ".join(repr(m) for m in modes)
    if isinstance(padding, str):
        if padding not in modes:
            raise ValueError(
                f"{prefix}padding must be {choices}, an int or a pair, got {padding!r}"
            )
        return padding
    try:
        return int_tuple(padding, length, "padding", owner, minimum)
    except TypeError:
        raise TypeError(
            f"{prefix}padding must be {choices}, {_int_form(length)}, got {padding!r}"
        ) from None
