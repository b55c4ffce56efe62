"""Callbacks that watch a logged value or a counter: stop early, change the learning
rate (per epoch, per step, on a plateau), stop on NaN; and the checks of their
``monitor`` that every such callback shares."""

from __future__ import annotations

import math

import numpy as np

from cnnumpy.callbacks.base import Callback, LambdaCallback
from cnnumpy.schedules import ReduceOnPlateau


def monitor_mode(monitor: str, mode: str) -> str:
    """``mode`` checked; ``"auto"``: ``"max"`` for an accuracy, else ``"min"``."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


def monitored(logs: dict | None, monitor: str, owner: str) -> float:
    """``logs[monitor]`` as a float; a ValueError naming ``owner`` if absent."""
    if not logs or monitor not in logs:
        available = sorted(logs or {})
        raise ValueError(
            f"{owner}: metric {monitor!r} is not in the logs; available: {available}"
        )
    return float(logs[monitor])


def check_validation_monitor(callback, owner: str) -> None:
    """Refuse, when ``fit`` starts, a ``val_*`` monitor that only validation data give.

    Like ``ModelCheckpoint``, this reads the log keys ``fit`` will write
    (``params["log_keys"]``). It says nothing when a callback of the user's own (a
    ``LambdaCallback`` or a ``Callback`` subclass defined elsewhere) with an
    ``on_epoch_end`` runs before ``callback``: that one may put the key in the logs
    itself.
    """
    keys = callback.params.get("log_keys")  # set by fit
    callbacks = callback.params.get("callbacks", [])
    monitor = callback.monitor
    if keys is None or callback not in callbacks or monitor in keys:
        return
    from_validation = monitor.startswith("val_") and monitor[len("val_") :] in keys
    earlier = callbacks[: callbacks.index(callback)]
    if from_validation and not any(may_add_logs(cb) for cb in earlier):
        raise ValueError(
            f"{owner}: monitor={monitor!r} needs validation data "
            "(validation_data= or validation_split=); got none"
        )


def may_add_logs(callback) -> bool:
    """Whether ``callback`` runs the user's own ``on_epoch_end``, which may add keys
    to the epoch's logs."""
    hook = callback.on_epoch_end
    overridden = getattr(hook, "__func__", hook) is not Callback.on_epoch_end
    ours = type(callback).__module__.startswith("cnnumpy.callbacks")
    return overridden and (not ours or isinstance(callback, LambdaCallback))


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    With ``restore_best_weights`` the model gets back the weights of its best epoch at
    the end. A ``val_*`` monitor without validation data is refused when ``fit``
    starts (``ValueError``), unless a callback of your own that runs before this one
    has an ``on_epoch_end`` (it may add the key to the logs).
    """

    def __init__(
        self,
        monitor="val_loss",
        patience=5,
        min_delta=0.0,
        mode="auto",
        restore_best_weights=True,
    ) -> None:
        if patience < 0:
            raise ValueError(f"EarlyStopping: patience must be >= 0, got {patience}")
        self.monitor = monitor
        self.patience = int(patience)
        self.min_delta = abs(float(min_delta))
        self.mode = monitor_mode(monitor, mode)
        self.restore_best_weights = restore_best_weights
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = -1
        self.wait = 0
        self.stopped_epoch = None
        self._best_weights = None

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_train_begin(self, logs=None):
        check_validation_monitor(self, "EarlyStopping")

    def on_epoch_end(self, epoch, logs=None):
        if self.model.stop_now:  # a diverged epoch (TerminateOnNaN) has no metrics
            return
        value = monitored(logs, self.monitor, "EarlyStopping")
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self._best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self._best_weights is not None:
            self.model.set_weights(self._best_weights)

    def state_dict(self) -> dict:
        """Counters for resume.

        The best weights themselves are not kept across a restart.
        """
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = float(state["best"]), int(state["best_epoch"])
        self.wait = int(state["wait"])

    def state_tensors(self) -> dict:
        """The best weights as ``{"{layer}.{name}": array}``, for checkpoints."""
        return {
            f"{i}.{name}": value
            for i, weights in enumerate(self._best_weights or [])
            for name, value in weights.items()
        }

    def load_state_tensors(self, tensors: dict) -> None:
        best = [{} for _ in self.model.layers]
        for key, value in tensors.items():
            index, name = key.split(".", 1)
            best[int(index)][name] = value.copy()
        self._best_weights = best


class LearningRateScheduler(Callback):
    """Set the optimiser's learning rate at the start of each epoch.

    The rate is ``schedule(epoch)``.
    """

    def __init__(self, schedule) -> None:
        if not callable(schedule):
            raise TypeError(
                f"LearningRateScheduler: schedule must be callable, got {schedule!r}"
            )
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.lr = float(self.schedule(epoch))


class StepScheduler(Callback):
    """Set the optimiser's learning rate before every batch, per optimiser step.

    The rate is ``schedule(t)`` with ``t = model.optimizer.iterations``, the number of
    updates the optimiser has made (0 before the first batch): a per-step schedule
    such as :class:`~cnnumpy.schedules.OneCycle` or
    :class:`~cnnumpy.schedules.WarmupCosine`. The counter is the optimiser's, which
    ``fit(resume_from=...)`` saves and restores, so a resumed run goes on at the step
    it had reached; a second ``fit`` with the same optimiser goes on counting too.
    """

    def __init__(self, schedule) -> None:
        if not callable(schedule):
            raise TypeError(
                f"StepScheduler: schedule must be callable step -> lr, got {schedule!r}"
            )
        self.schedule = schedule

    def on_batch_begin(self, batch, logs=None):
        optimizer = self.model.optimizer
        optimizer.lr = float(self.schedule(optimizer.iterations))


class ReduceLROnPlateau(Callback):
    """Divide the learning rate by 1/factor on a plateau.

    1/factor is 10 by default, as AlexNet did. A ``val_*`` monitor needs validation
    data, as for ``EarlyStopping``.
    """

    def __init__(
        self,
        monitor="val_loss",
        factor=0.1,
        patience=3,
        mode="auto",
        min_delta=1e-4,
        cooldown=0,
        min_lr=0.0,
    ) -> None:
        self.monitor = monitor
        self.plateau = ReduceOnPlateau(
            factor=factor,
            patience=patience,
            mode=monitor_mode(monitor, mode),
            min_delta=min_delta,
            cooldown=cooldown,
            min_lr=min_lr,
        )

    def on_train_begin(self, logs=None):
        check_validation_monitor(self, "ReduceLROnPlateau")

    def on_epoch_end(self, epoch, logs=None):
        if self.model.stop_now:  # a diverged epoch (TerminateOnNaN) has no metrics
            return
        value = monitored(logs, self.monitor, "ReduceLROnPlateau")
        optimizer = self.model.optimizer
        optimizer.lr = float(self.plateau.step(value, optimizer.lr))

    def state_dict(self) -> dict:
        return self.plateau.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.plateau.load_state_dict(state)


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch loss is NaN or infinite, quietly.

    Without it, ``fit`` raises ``TrainingDiverged`` instead; with it, ``fit`` returns
    normally (the cut epoch is logged with its NaN loss and never checkpointed).
    """

    def __init__(self) -> None:
        self.terminated_at = None

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            self.terminated_at = batch
            self.model.stop_training = True
            self.model.stop_now = True
