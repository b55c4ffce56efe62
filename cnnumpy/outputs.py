"""Losses and metrics of a model with several outputs.

A graph model may end in several outputs (a class and a box, or a digit and its
parity), each with its own targets and loss. The loss minimised is their weighted
sum, ``L = sum_k w_k L_k(y_k, t_k)``, so output ``k``'s gradient is ``w_k dL_k/dy_k``:
each output's backward pass starts from its own loss, scaled by its weight.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnumpy import losses as losses_module
from cnnumpy import metrics as metrics_module
from cnnumpy.losses import Loss
from cnnumpy.validation import part


class PerOutput(Loss):
    """One loss per output, weighted and summed: ``L = sum_k w_k L_k(y_k, t_k)``.

    Args:
        losses: one loss (name, class, config dict or object) per output.
        weights: one number ``w_k`` per output; None: all 1.

    ``forward`` takes the list of outputs and the targets (a list or
    :class:`~cnnumpy.validation.Arrays`); ``backward`` returns the list of
    ``w_k dL_k/dy_k``; ``to_probabilities`` maps each output by its own loss.
    """

    name = "per_output"

    def __init__(self, losses, weights=None) -> None:
        super().__init__()
        if not isinstance(losses, (list, tuple)) or not losses:
            raise TypeError(f"PerOutput: expected a list of losses, got {losses!r}")
        self.losses = [losses_module.get(loss) for loss in losses]
        if weights is None:
            weights = [1.0] * len(self.losses)
        ok = isinstance(weights, (list, tuple)) and len(weights) == len(self.losses)
        ok = ok and all(
            isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0
            for w in weights
        )
        if not ok:
            raise ValueError(
                f"PerOutput: loss_weights must be {len(self.losses)} numbers >= 0 "
                f"(one per output), got {weights!r}"
            )
        self.weights = [float(w) for w in weights]

    def forward(self, y_pred, y_true) -> float:
        total, grads = 0.0, []
        for k, (loss, w) in enumerate(zip(self.losses, self.weights, strict=True)):
            total += w * float(loss(y_pred[k], part(y_true, k)))
            grad = loss.backward()
            grads.append(grad if w == 1.0 else grad * grad.dtype.type(w))
        self._grad = grads
        return total

    def to_probabilities(self, output) -> list[np.ndarray]:
        return [
            loss.to_probabilities(o)
            for loss, o in zip(self.losses, output, strict=True)
        ]

    def get_config(self) -> dict[str, Any]:
        return {
            "losses": [losses_module.serialize(loss) for loss in self.losses],
            "weights": list(self.weights),
        }

    def __repr__(self) -> str:
        return f"PerOutput({self.losses!r}, weights={self.weights})"


def per_output(name: str, k: int):
    """The metric ``name`` of output ``k``: ``fn(y[k], scores[k])``."""
    fn = metrics_module.get(name)

    def metric(y_true, y_pred) -> float:
        return fn(part(y_true, k), y_pred[k])

    metric.__name__ = f"{name}_{k}"
    return metric
