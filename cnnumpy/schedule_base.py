"""What every learning-rate schedule shares: the call, the config and its checks.

A schedule maps a counter ``t`` (an epoch for :mod:`cnnumpy.schedules`' per-epoch
schedules, an optimiser step for :mod:`cnnumpy.step_schedules`') to the rate eta[t] of
seed 003's ``w[k+1] = w[k] - eta[k] grad E``.
"""

from __future__ import annotations

import numbers
from typing import Any

from cnnumpy.textbook.arguments import is_int

__all__ = ["Schedule", "check", "is_number"]


def check(owner: str, name: str, value: Any, ok: bool, expected: str) -> None:
    """Raise ``ValueError("owner: name must be expected, got value")`` unless ``ok``."""
    if not ok:
        raise ValueError(f"{owner}: {name} must be {expected}, got {value!r}")


def is_number(value: Any) -> bool:
    """A real number, and not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class Schedule:
    """Base class: validates the counter, then calls ``lr_at(t)``.

    Attributes:
        unit: what the counter counts, ``"epoch"`` or ``"step"`` (error messages).
    """

    unit = "epoch"

    def __call__(self, t: int) -> float:
        if not is_int(t) or t < 0:
            raise ValueError(f"{self!r}: {self.unit} must be an int >= 0, got {t!r}")
        return float(self.lr_at(int(t)))

    def lr_at(self, t: int) -> float:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments (JSON-serialisable)."""
        return dict(self._config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._config.items())
        return f"{type(self).__name__}({args})"

    def _set_config(self, **config: Any) -> None:
        """Validate the numbers all schedules share; keep the constructor kwargs."""
        name = type(self).__name__
        for key, value in config.items():
            check(name, key, value, is_number(value), "a number")
        for key in ("lr", "c", "min_lr", "max_lr"):
            if key in config:
                check(name, key, config[key], config[key] >= 0, ">= 0")
        # plain Python numbers, so that get_config() is JSON-serialisable
        self._config = {
            k: int(v) if is_int(v) else float(v) for k, v in config.items()
        }
