"""The values of the ``cnnumpy`` options: each type parses one value or says what it
expected, ``expected an integer >= 1, got '0'``, which argparse puts after the
option's name."""

from __future__ import annotations

import argparse
import math

from cnnumpy.distributed.replicas import check_processes


def _number(kind, test, expected: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not test(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = expected  # argparse names the type in some messages
    return parse


positive_int = _number(int, lambda v: v >= 1, "an integer >= 1")
natural_int = _number(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _number(float, lambda v: math.isfinite(v) and v > 0, "a number > 0")
natural_float = _number(float, lambda v: math.isfinite(v) and v >= 0, "a number >= 0")
fraction = _number(float, lambda v: 0 <= v < 1, "a number in [0, 1)")


def process_count(text: str) -> int:
    """``--processes``: an integer from 1 to the cores this process may use."""
    try:
        return check_processes(positive_int(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
