"""When training has gone wrong: NaN or infinite losses, logged values or weights.

A run that diverges stops with :class:`TrainingDiverged` as soon as a batch loss, an
epoch's logged value or a weight is NaN or infinite: nothing after a NaN can be
trusted, and a checkpoint is never overwritten with it.
"""

from __future__ import annotations

import math

import numpy as np


class TrainingDiverged(ArithmeticError):
    """The loss, a logged value or a weight became NaN or infinite during ``fit``.

    The usual causes are a learning rate too large for the data's scale, or inputs
    that were not standardised; a smaller ``lr`` or gradient clipping (``clipnorm=``
    of every optimiser) usually helps. The model's weights are then unusable; with
    ``resume_from`` the folder keeps the last good epoch (``load_model`` reads it).

    Attributes:
        reason: what was not finite, e.g. ``"the loss is nan"``.
        epoch: the epoch it happened in (0-based).
        batch: the batch (0-based), or None when found at the end of the epoch.
        checkpoint: the ``resume_from`` checkpoint file, or None without one.
        completed: the epochs that checkpoint holds (0: none was written).
    """

    def __init__(self, reason: str, epoch: int, batch: int | None = None) -> None:
        super().__init__(reason, epoch, batch)
        self.reason, self.epoch, self.batch = reason, epoch, batch
        self.checkpoint = None
        self.completed = 0

    def __str__(self) -> str:
        where = f"epoch {self.epoch + 1}"
        if self.batch is not None:
            where += f", batch {self.batch + 1}"
        text = f"training diverged at {where}: {self.reason}"
        if self.checkpoint is not None and self.completed:
            text += (
                f"; the last good checkpoint ({self.completed} epochs) is kept in "
                f"{self.checkpoint}"
            )
        elif self.checkpoint is not None:
            text += "; no epoch had completed, so no checkpoint was written"
        return text


def non_finite(model) -> str | None:
    """What in the model or its optimiser is NaN or infinite, or None if nothing."""
    for i, layer in enumerate(model.layers):
        for store, kind in ((layer.params, "parameter"), (layer.state, "state")):
            for key, value in store.items():
                if not np.isfinite(value).all():
                    return f"layer {i} ({layer!r}) {kind} {key} is not finite"
    for slot_key, slots in getattr(model.optimizer, "slots", {}).items():
        for name, value in slots.items():
            if not np.isfinite(value).all():
                return f"the optimiser's {name} of {slot_key} is not finite"
    return None


def check_epoch(model, epoch: int, logs: dict) -> None:
    """Raise ``TrainingDiverged`` if a logged value or a weight is not finite."""
    for key, value in logs.items():
        if isinstance(value, (float, np.floating)) and not math.isfinite(value):
            raise TrainingDiverged(f"the epoch's {key} is {value}", epoch)
    bad = non_finite(model)
    if bad is not None:
        raise TrainingDiverged(bad, epoch)
