"""Learning-rate schedules: the eta[k] of seed 003's ``w[k+1] = w[k] - eta[k] grad E``.

A schedule is a callable ``schedule(epoch) -> lr``, with epochs counted from 0; the
``LearningRateScheduler`` callback sets ``optimizer.lr`` from it at the start of every
epoch. Any function of the epoch works the same way; the classes here add
``get_config`` so that a run can be saved and described.

:class:`OneCycle` and :class:`WarmupCosine` (from :mod:`cnnumpy.step_schedules`) count
optimiser steps instead of epochs: the ``StepScheduler`` callback sets the rate before
every batch.

:class:`ReduceOnPlateau` is different: it watches a metric instead of the epoch number
(``step(metric, current_lr) -> new_lr``), the way AlexNet divided its learning rate by
10 whenever the validation error stopped improving (seed 003).

Layers with their own learning rate (``optimizer.set_options(layer, lr=...)``) follow
the schedule in proportion: the schedule sets ``optimizer.lr`` to ``lr(t)`` and a layer
given ``lr_layer`` steps with ``lr_layer * lr(t) / optimizer.initial_lr``.
"""

from __future__ import annotations

import math
from typing import Any

from cnnumpy.schedule_base import Schedule, check, is_number
from cnnumpy.step_schedules import OneCycle, WarmupCosine
from cnnumpy.textbook.arguments import is_int

__all__ = [
    "Constant",
    "Cosine",
    "Exponential",
    "InverseTime",
    "InverseTimeDecay",
    "OneCycle",
    "ReduceOnPlateau",
    "Schedule",
    "StepDecay",
    "WarmupCosine",
    "get",
]


class Constant(Schedule):
    """eta[k] = lr."""

    def __init__(self, lr: float) -> None:
        self._set_config(lr=lr)

    def lr_at(self, epoch: int) -> float:
        return self._config["lr"]


class StepDecay(Schedule):
    """lr * gamma^(epoch // step_size): divide by 1/gamma every ``step_size`` epochs.

    Equal to ``torch.optim.lr_scheduler.StepLR`` (same rounding up to a few ulps: torch
    multiplies by gamma repeatedly).
    """

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1) -> None:
        ok = is_int(step_size)
        check(
            "StepDecay", "step_size", step_size, ok and step_size >= 1, "an int >= 1"
        )
        self._set_config(lr=lr, step_size=step_size, gamma=gamma)
        check("StepDecay", "gamma", gamma, gamma > 0, "> 0")

    def lr_at(self, epoch: int) -> float:
        c = self._config
        return c["lr"] * c["gamma"] ** (epoch // c["step_size"])


class InverseTime(Schedule):
    """eta[k] = c / k with k = epoch + 1, the "parfois eta[k] = cst / k" of seed 003.

    Robbins and Monro's condition (sum eta = inf, sum eta^2 < inf) for stochastic
    gradient descent to converge holds for this choice.
    """

    def __init__(self, c: float) -> None:
        self._set_config(c=c)

    def lr_at(self, epoch: int) -> float:
        return self._config["c"] / (epoch + 1)


class InverseTimeDecay(Schedule):
    """lr / (1 + decay * epoch): c / k shifted to start at lr and decay more gently."""

    def __init__(self, lr: float, decay: float) -> None:
        self._set_config(lr=lr, decay=decay)
        check("InverseTimeDecay", "decay", decay, decay >= 0, ">= 0")

    def lr_at(self, epoch: int) -> float:
        return self._config["lr"] / (1 + self._config["decay"] * epoch)


class Exponential(Schedule):
    """lr * gamma^epoch (``torch.optim.lr_scheduler.ExponentialLR``)."""

    def __init__(self, lr: float, gamma: float) -> None:
        self._set_config(lr=lr, gamma=gamma)
        check("Exponential", "gamma", gamma, gamma > 0, "> 0")

    def lr_at(self, epoch: int) -> float:
        return self._config["lr"] * self._config["gamma"] ** epoch


class Cosine(Schedule):
    """Cosine annealing from lr down to min_lr (Loshchilov & Hutter 2017, SGDR).

        lr(t) = min_lr + (lr - min_lr) * (1 + cos(pi * t / T)) / 2,   T = total_epochs

    the closed form of ``torch.optim.lr_scheduler.CosineAnnealingLR``, for 0 <= t <= T.
    After T the schedule stays at min_lr (torch's formula would rise again).
    """

    def __init__(self, lr: float, total_epochs: int, min_lr: float = 0.0) -> None:
        ok = is_int(total_epochs)
        check(
            "Cosine",
            "total_epochs",
            total_epochs,
            ok and total_epochs >= 1,
            "an int >= 1",
        )
        self._set_config(lr=lr, total_epochs=total_epochs, min_lr=min_lr)

    def lr_at(self, epoch: int) -> float:
        c = self._config
        t = min(epoch, c["total_epochs"])
        cosine = (1 + math.cos(math.pi * t / c["total_epochs"])) / 2
        return c["min_lr"] + (c["lr"] - c["min_lr"]) * cosine


class ReduceOnPlateau:
    """Multiply the learning rate by ``factor`` when a metric stops improving.

    Same rules as ``torch.optim.lr_scheduler.ReduceLROnPlateau``. After each epoch,
    ``step(metric, lr)``: if the metric beats ``best`` (by ``min_delta``, see below) it
    becomes the new best and ``num_bad_epochs`` returns to 0, otherwise
    ``num_bad_epochs`` grows; during a cooldown bad epochs are not counted. When
    ``num_bad_epochs > patience`` the rate becomes ``max(lr * factor, min_lr)``, the
    count restarts and a cooldown of ``cooldown`` epochs begins. A change smaller than
    ``eps`` is ignored.

    Args:
        factor: in (0, 1); 0.1 divides by 10, as AlexNet did (seed 003).
        patience: bad epochs tolerated before reducing.
        mode: "min" (a loss) or "max" (an accuracy).
        min_delta: the smallest improvement that counts. With ``threshold_mode="rel"``
            (torch's default) "min" needs metric < best * (1 - min_delta); with "abs",
            metric < best - min_delta. "max": metric > best * (1 + min_delta), or
            metric > best + min_delta.
        cooldown: epochs to wait after a reduction before counting bad epochs again.
        min_lr: the rate is never reduced below it.
        threshold_mode: "rel" or "abs".
        eps: reductions smaller than this are skipped.
    """

    def __init__(
        self,
        factor: float = 0.1,
        patience: int = 10,
        mode: str = "min",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
        threshold_mode: str = "rel",
        eps: float = 1e-8,
    ) -> None:
        owner = "ReduceOnPlateau"
        check(
            owner, "factor", factor, is_number(factor) and 0 < factor < 1, "in (0, 1)"
        )
        for name, value in (("patience", patience), ("cooldown", cooldown)):
            ok = is_int(value) and value >= 0
            check(owner, name, value, ok, "an int >= 0")
        check(owner, "mode", mode, mode in ("min", "max"), "'min' or 'max'")
        ok = threshold_mode in ("rel", "abs")
        check(owner, "threshold_mode", threshold_mode, ok, "'rel' or 'abs'")
        for name, value in (("min_delta", min_delta), ("min_lr", min_lr), ("eps", eps)):
            check(
                owner, name, value, is_number(value) and value >= 0, "a number >= 0"
            )
        self.factor, self.patience, self.mode = float(factor), int(patience), mode
        self.min_delta, self.cooldown = float(min_delta), int(cooldown)
        self.min_lr = float(min_lr)
        self.threshold_mode, self.eps = threshold_mode, float(eps)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0

    def is_better(self, metric: float, best: float) -> bool:
        """Whether ``metric`` improves on ``best`` by more than ``min_delta``."""
        relative = self.threshold_mode == "rel"
        if self.mode == "min":
            if relative:
                return metric < best * (1 - self.min_delta)
            return metric < best - self.min_delta
        if relative:
            return metric > best * (1 + self.min_delta)
        return metric > best + self.min_delta

    def step(self, metric: float, current_lr: float) -> float:
        """Record one epoch's metric and return the learning rate for the next epoch."""
        metric = float(metric)
        self.last_epoch += 1
        if self.is_better(metric, self.best):
            self.best = metric
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs during a cooldown do not count
        if self.num_bad_epochs > self.patience:
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
            new_lr = max(current_lr * self.factor, self.min_lr)
            if current_lr - new_lr > self.eps:
                return float(new_lr)
        return float(current_lr)

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments (JSON-serialisable)."""
        names = ("factor", "patience", "mode", "min_delta", "cooldown", "min_lr")
        config = {name: getattr(self, name) for name in names}
        return {**config, "threshold_mode": self.threshold_mode, "eps": self.eps}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"ReduceOnPlateau({args})"

    _STATE = ("best", "num_bad_epochs", "cooldown_counter", "last_epoch")

    def state_dict(self) -> dict[str, Any]:
        """The counters that evolve during training (JSON-serialisable)."""
        return {name: getattr(self, name) for name in self._STATE}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = set(self._STATE) - set(state)
        if missing:
            raise ValueError(f"{self!r}: state_dict is missing {sorted(missing)}")
        self.best = float(state["best"])
        for name in self._STATE[1:]:
            setattr(self, name, int(state[name]))


SCHEDULES: dict[str, type] = {
    "constant": Constant,
    "step": StepDecay,
    "step_decay": StepDecay,
    "inverse_time": InverseTime,
    "inverse_time_decay": InverseTimeDecay,
    "exponential": Exponential,
    "cosine": Cosine,
    "reduce_on_plateau": ReduceOnPlateau,
    "onecycle": OneCycle,
    "one_cycle": OneCycle,
    "warmup_cosine": WarmupCosine,
}


def get(schedule: str | Any, **kwargs: Any) -> Any:
    """A schedule from its name and kwargs (``get("cosine", lr=0.1, total_epochs=30)``).

    A schedule object, a ``ReduceOnPlateau`` or any callable ``epoch -> lr`` is returned
    as is.
    """
    if isinstance(schedule, str):
        cls = SCHEDULES.get(schedule.lower())
        if cls is None:
            raise ValueError(
                f"schedules.get: unknown schedule {schedule!r}, expected one of "
                f"{sorted(SCHEDULES)}"
            )
        return cls(**kwargs)
    if isinstance(schedule, (Schedule, ReduceOnPlateau)) or callable(schedule):
        if kwargs:
            raise TypeError(
                f"schedules.get: keyword arguments {sorted(kwargs)} given with the "
                f"schedule object {schedule!r}; pass them to its constructor instead"
            )
        return schedule
    raise TypeError(
        "schedules.get: expected a schedule name, object or callable, "
        f"got {type(schedule).__name__}"
    )
