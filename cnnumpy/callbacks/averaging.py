"""An exponential moving average of the weights, to evaluate with (Polyak averaging).

SGD's last iterate jitters around a minimum by about the learning rate times the
gradient noise; the average of the recent iterates sits closer to it (Polyak &
Juditsky 1992). An exponential average keeps one shadow copy per weight, updated
after every optimiser step:

    shadow <- d * shadow + (1 - d) * w

as timm's ``ModelEmaV2`` and TensorFlow's ``ExponentialMovingAverage`` do; with
d = 0.999 the shadow averages roughly the last 1 / (1 - d) = 1000 steps. BatchNorm's
running statistics (``layer.state``) are averaged with the parameters, as timm does
with a model's buffers, so that the averaged network has statistics of its own.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from numbers import Real
from typing import Any

import numpy as np

from cnnumpy.callbacks.base import Callback

__all__ = ["EMA", "averaged_arrays"]

Weights = list[dict[str, np.ndarray]]  # one dict per layer, like get_weights()


def averaged_arrays(layer: Any) -> dict[str, np.ndarray]:
    """The arrays of ``layer`` the average covers: every parameter and every float
    state array (BatchNorm's ``running_mean`` and ``running_var``)."""
    arrays = dict(layer.params)
    for key, value in layer.state.items():
        if np.issubdtype(value.dtype, np.floating):
            arrays[key] = value
    return arrays


def ema_update(shadow: np.ndarray, w: np.ndarray, decay: float) -> None:
    """``shadow <- decay * shadow + (1 - decay) * w``, in place."""
    shadow *= decay
    shadow += (1 - decay) * w


class EMA(Callback):
    """Keep an exponential moving average of every weight, updated after each batch.

    After every batch (``on_batch_end``), for every parameter and BatchNorm running
    statistic ``w`` (:func:`averaged_arrays` over ``model.layers``)::

        shadow <- d_t * shadow + (1 - d_t) * w
        d_t = decay,  or with warmup=True:  d_t = min(decay, (1 + t) / (10 + t))

    where ``t`` counts the updates made before this one (0 at the first), the
    ``num_updates`` of TensorFlow's ``ExponentialMovingAverage``: early on, when the
    weights move fast, the average forgets the random initial weights sooner. The
    shadow starts as a copy of the weights when ``fit`` begins; a batch whose loss is
    not finite is not averaged.

    ``fit``'s validation after each epoch uses the average (swapped in by
    ``on_validation_begin``, out by ``on_validation_end``; ``validate_average=False``
    validates the model's own weights). Elsewhere, swap it in: ``with
    ema.apply_to(model): model.evaluate(x, y)``, or ``keep_average=True`` to leave it
    in the model when training ends. ``fit(resume_from=...)`` saves and
    restores the shadow and ``t`` with the run. The shadow lives on across ``fit``
    calls (the average goes on); :meth:`reset` starts again.

    Args:
        decay: ``d`` in [0, 1); 0.999 (timm's default 0.9998 for ImageNet).
        warmup: use ``min(decay, (1 + t) / (10 + t))``.
        keep_average: at the end of training, copy the averaged weights into the
            model (its last weights are then lost).
        validate_average: evaluate ``fit``'s validation data with the average.

    Attributes:
        shadow: the averaged arrays, one dict per layer (like ``get_weights()``), or
            None before the first ``fit``.
        updates: ``t``, the number of averaging updates made.
    """

    def __init__(
        self,
        decay: float = 0.999,
        warmup: bool = False,
        keep_average: bool = False,
        validate_average: bool = True,
    ) -> None:
        number = isinstance(decay, Real) and not isinstance(decay, bool)
        if not (number and 0.0 <= decay < 1.0):
            raise ValueError(f"EMA: decay must be a number in [0, 1), got {decay!r}")
        flags = {
            "warmup": warmup,
            "keep_average": keep_average,
            "validate_average": validate_average,
        }
        for name, flag in flags.items():
            if not isinstance(flag, bool):
                raise TypeError(f"EMA: {name} must be True or False, got {flag!r}")
        self.decay, self.warmup, self.keep_average = float(decay), warmup, keep_average
        self.validate_average = validate_average
        self.shadow: Weights | None = None
        self.updates = 0

    def __repr__(self) -> str:
        return (
            f"EMA(decay={self.decay}, warmup={self.warmup}, "
            f"keep_average={self.keep_average}, "
            f"validate_average={self.validate_average})"
        )

    def current_decay(self) -> float:
        """``d_t`` for the next update."""
        if not self.warmup:
            return self.decay
        t = self.updates
        return min(self.decay, (1 + t) / (10 + t))

    def reset(self) -> None:
        """Forget the average: the next ``fit`` starts it from the weights again."""
        self.shadow, self.updates = None, 0

    # -- fit's hooks -------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        if self.shadow is None:
            self.shadow = [
                {key: value.copy() for key, value in averaged_arrays(layer).items()}
                for layer in self.model.layers
            ]
        self._check_shadow(self.model)

    def on_batch_end(self, batch, logs=None):
        if not math.isfinite((logs or {}).get("loss", 0.0)):
            return  # NaN weights would poison the average for good
        decay = self.current_decay()
        for layer, shadow in zip(self.model.layers, self.shadow, strict=True):
            for key, w in averaged_arrays(layer).items():
                ema_update(shadow[key], w, decay)
        self.updates += 1

    def on_validation_begin(self, epoch):
        if self.validate_average:
            self.swap(self.model)

    def on_validation_end(self, epoch):
        if self.validate_average:
            self.swap(self.model)

    def on_train_end(self, logs=None):
        if self.keep_average:
            self.copy_to(self.model)

    # -- using the average -------------------------------------------------------------
    def copy_to(self, model: Any = None) -> None:
        """Overwrite the weights of ``model`` (default: the trained one) with the
        average."""
        model = self._target(model)
        for layer, shadow in zip(model.layers, self.shadow, strict=True):
            for key, w in averaged_arrays(layer).items():
                w[...] = shadow[key]

    def swap(self, model: Any = None) -> None:
        """Exchange the weights of ``model`` and the average, in place: call it once
        to evaluate with the average, once more to go back."""
        model = self._target(model)
        for layer, shadow in zip(model.layers, self.shadow, strict=True):
            for key, w in averaged_arrays(layer).items():
                kept = w.copy()
                w[...] = shadow[key]
                shadow[key][...] = kept

    @contextlib.contextmanager
    def apply_to(self, model: Any = None) -> Iterator[Any]:
        """``with ema.apply_to(model):`` the model has the averaged weights inside
        the block, its own again after it (even if the block raises)."""
        model = self._target(model)
        self.swap(model)
        try:
            yield model
        finally:
            self.swap(model)

    def _target(self, model: Any) -> Any:
        model = self.model if model is None else model
        if self.shadow is None or model is None:
            raise RuntimeError(
                "EMA: no average yet; train with fit(callbacks=[ema]) first"
            )
        self._check_shadow(model)
        return model

    def _check_shadow(self, model: Any) -> None:
        if len(self.shadow) != len(model.layers):
            raise ValueError(
                f"EMA: the average holds {len(self.shadow)} layers, the model has "
                f"{len(model.layers)}; call reset() to average another model"
            )
        pairs = zip(model.layers, self.shadow, strict=True)
        for i, (layer, shadow) in enumerate(pairs):
            arrays = averaged_arrays(layer)
            shapes = {key: value.shape for key, value in arrays.items()}
            saved = {key: value.shape for key, value in shadow.items()}
            if shapes != saved:
                raise ValueError(
                    f"EMA: layer {i} ({layer!r}) has arrays {shapes}, the average "
                    f"{saved}; call reset() to average another model"
                )

    # -- fit(resume_from=...) ----------------------------------------------------------
    def state_dict(self) -> dict:
        return {"updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])

    def state_tensors(self) -> dict[str, np.ndarray]:
        """The shadow as ``{"{layer}.{name}": array}``, for checkpoints."""
        return {
            f"{i}.{key}": value
            for i, shadow in enumerate(self.shadow or [])
            for key, value in shadow.items()
        }

    def load_state_tensors(self, tensors: dict[str, np.ndarray]) -> None:
        shadow: Weights = [{} for _ in self.model.layers]
        for name, value in tensors.items():
            index, key = name.split(".", 1)
            shadow[int(index)][key] = np.array(value, copy=True)
        self.shadow = shadow
