"""Learning-rate schedules per optimiser step, with a warm-up: one cycle, and a linear
warm-up followed by cosine decay.

The counter is the optimiser's step ``t`` (``optimizer.iterations`` before the step:
0 for the first batch), not the epoch: the ``StepScheduler`` callback sets
``optimizer.lr = schedule(t)`` before every batch. ``total_steps`` is then
``epochs * ceil(N / batch_size)``.

Why a warm-up: early in training the weights and BatchNorm statistics are far from
their working range, and a large rate at once can make the loss diverge (Goyal et al.
2017, "Accurate, large minibatch SGD", section 2.2); rising to the peak rate over the
first steps avoids it.
"""

from __future__ import annotations

import math
from typing import Any

from cnnumpy.schedule_base import Schedule, check
from cnnumpy.textbook.arguments import is_int

__all__ = ["OneCycle", "WarmupCosine", "anneal"]

ANNEALING = ("cos", "linear")


def anneal(start: float, end: float, fraction: float, strategy: str = "cos") -> float:
    """From ``start`` (fraction 0) to ``end`` (fraction 1):

        cos:     end + (start - end) * (1 + cos(pi * fraction)) / 2
        linear:  start + (end - start) * fraction

    PyTorch's ``OneCycleLR._annealing_cos`` and ``_annealing_linear``.
    """
    if strategy == "cos":
        return end + (start - end) * (1 + math.cos(math.pi * fraction)) / 2
    return start + (end - start) * fraction


def _check_steps(owner: str, total_steps: Any, warmup_steps: Any) -> None:
    ok = is_int(total_steps) and total_steps >= 1
    check(owner, "total_steps", total_steps, ok, "an int >= 1")
    if warmup_steps is not None:
        ok = is_int(warmup_steps) and 0 <= warmup_steps < total_steps
        expected = f"an int in [0, total_steps={total_steps})"
        check(owner, "warmup_steps", warmup_steps, ok, expected)


class OneCycle(Schedule):
    """One cycle (Smith & Topin 2018, "Super-convergence"), per optimiser step.

    The rate rises from ``lr0 = max_lr / div_factor`` to ``max_lr`` over the first
    steps (the warm-up), then anneals to ``lr_min = lr0 / final_div_factor``. With
    ``T = total_steps`` and ``P`` the step of the peak, ``P = pct_start * T - 1`` (or
    ``warmup_steps - 1``)::

        t <= P:   lr(t) = anneal(lr0, max_lr, t / P)
        t >  P:   lr(t) = anneal(max_lr, lr_min, (t - P) / (T - 1 - P))

    with :func:`anneal` cosine or linear. These are the values of
    ``torch.optim.lr_scheduler.OneCycleLR`` (``three_phase=False``) step for step,
    except that: after step ``T - 1`` the rate stays at ``lr_min`` (PyTorch raises);
    ``P == 0`` gives ``max_lr`` at step 0 (PyTorch divides by zero); and the momentum
    is not cycled (PyTorch's ``cycle_momentum``): the optimiser keeps its own.

    Args:
        max_lr: the peak rate.
        total_steps: the number of optimiser steps of the whole training.
        pct_start: the fraction of the steps spent rising, in [0, 1].
        anneal_strategy: ``"cos"`` or ``"linear"``, for both phases.
        div_factor: ``lr0 = max_lr / div_factor``.
        final_div_factor: ``lr_min = lr0 / final_div_factor``.
        warmup_steps: the steps spent rising, instead of ``pct_start`` (an int in
            ``[0, total_steps)``).
    """

    unit = "step"

    def __init__(
        self,
        max_lr: float,
        total_steps: int,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        warmup_steps: int | None = None,
    ) -> None:
        _check_steps("OneCycle", total_steps, warmup_steps)
        numbers = dict(max_lr=max_lr, total_steps=total_steps, pct_start=pct_start)
        numbers.update(div_factor=div_factor, final_div_factor=final_div_factor)
        self._set_config(**numbers)
        check("OneCycle", "pct_start", pct_start, 0 <= pct_start <= 1, "in [0, 1]")
        for name in ("div_factor", "final_div_factor"):
            check("OneCycle", name, numbers[name], numbers[name] > 0, "> 0")
        ok = anneal_strategy in ANNEALING
        check("OneCycle", "anneal_strategy", anneal_strategy, ok, "'cos' or 'linear'")
        self._config["anneal_strategy"] = anneal_strategy
        if warmup_steps is not None:
            self._config["warmup_steps"] = int(warmup_steps)

    def peak_step(self) -> float:
        """``P``: the step at which the rate is ``max_lr`` (a float, as PyTorch's)."""
        c = self._config
        if "warmup_steps" in c:
            return float(c["warmup_steps"] - 1)
        return float(c["pct_start"] * c["total_steps"]) - 1

    def lr_at(self, step: int) -> float:
        c = self._config
        lr0 = c["max_lr"] / c["div_factor"]
        lr_min = lr0 / c["final_div_factor"]
        peak, last = self.peak_step(), c["total_steps"] - 1
        t = min(step, last)
        if t <= peak:
            fraction = t / peak if peak > 0 else 1.0
            return anneal(lr0, c["max_lr"], fraction, c["anneal_strategy"])
        fraction = (t - peak) / (last - peak)
        return anneal(c["max_lr"], lr_min, fraction, c["anneal_strategy"])


class WarmupCosine(Schedule):
    """A linear warm-up from 0 to ``lr`` over ``warmup_steps`` steps, then cosine
    decay to ``min_lr`` at ``total_steps`` (Goyal et al. 2017's warm-up; Loshchilov &
    Hutter 2017's cosine). With ``W = warmup_steps`` and ``T = total_steps``::

        t <  W:   lr(t) = lr * t / W
        t >= W:   lr(t) = min_lr + (lr - min_lr) * (1 + cos(pi * (t - W) / (T - W))) / 2

    and ``min_lr`` after ``T``. For ``min_lr = 0`` these are the values of Hugging
    Face's ``get_cosine_schedule_with_warmup``; after the warm-up, those of
    ``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=T - W, eta_min=min_lr)``.

    Args:
        lr: the peak rate, reached at step ``W``.
        total_steps: the number of optimiser steps of the whole training.
        warmup_steps: the steps of the linear rise, in ``[0, total_steps)``.
        min_lr: the rate at the end.
    """

    unit = "step"

    def __init__(
        self, lr: float, total_steps: int, warmup_steps: int = 0, min_lr: float = 0.0
    ) -> None:
        _check_steps("WarmupCosine", total_steps, warmup_steps)
        self._set_config(
            lr=lr, total_steps=total_steps, warmup_steps=warmup_steps, min_lr=min_lr
        )

    def lr_at(self, step: int) -> float:
        c = self._config
        W, T = c["warmup_steps"], c["total_steps"]
        if step < W:
            return c["lr"] * step / W
        fraction = (min(step, T) - W) / (T - W)
        return anneal(c["lr"], c["min_lr"], fraction, "cos")
