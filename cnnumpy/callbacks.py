"""Callbacks: code ``fit`` calls at the start and end of training, epochs and batches.

Write your own by subclassing ``Callback`` and overriding any ``on_*`` method, or pass
functions to ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``. ``self.model`` is
the model being trained; setting ``self.model.stop_training = True`` ends training after
the current epoch.
"""

from __future__ import annotations

import csv
import io
import math
import string
from pathlib import Path

import numpy as np

from cnnumpy.fileio import atomic_write_text


class Callback:
    """Base class; every hook does nothing by default.

    ``logs`` is a dict of metric values.
    """

    model = None

    def set_model(self, model) -> None:
        self.model = model

    def on_train_begin(self, logs: dict | None = None) -> None: ...

    def on_train_end(self, logs: dict | None = None) -> None: ...

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None: ...

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None: ...

    def on_batch_begin(self, batch: int, logs: dict | None = None) -> None: ...

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None: ...


class LambdaCallback(Callback):
    """A callback made of plain functions, e.g. ``LambdaCallback(on_epoch_end=f)``."""

    def __init__(self, **hooks) -> None:
        for hook_name, fn in hooks.items():
            if not hook_name.startswith("on_") or not hasattr(Callback, hook_name):
                raise ValueError(f"LambdaCallback: unknown hook {hook_name!r}")
            setattr(self, hook_name, fn)


class History(Callback):
    """Per-epoch metrics.

    ``history.history["loss"]`` is a list with one value per epoch.
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={sorted(self.history)})"


def _monitor_mode(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


def _monitored(logs: dict | None, monitor: str, owner: str) -> float:
    if not logs or monitor not in logs:
        available = sorted(logs or {})
        raise ValueError(
            f"{owner}: metric {monitor!r} is not in the logs; available: {available}"
        )
    return float(logs[monitor])


def _check_validation_monitor(callback, owner: str) -> None:
    """Refuse, when ``fit`` starts, a ``val_*`` monitor that only validation data give.

    Like ``ModelCheckpoint``, this reads the log keys ``fit`` will write
    (``model._fit_log_keys``). It says nothing when a callback of the user's own (a
    ``LambdaCallback`` or a ``Callback`` subclass defined elsewhere) with an
    ``on_epoch_end`` runs before ``callback``: that one may put the key in the logs
    itself.
    """
    keys = getattr(callback.model, "_fit_log_keys", None)  # set by fit
    callbacks = getattr(callback.model, "_fit_callbacks", [])  # set by fit
    monitor = callback.monitor
    if keys is None or callback not in callbacks or monitor in keys:
        return
    from_validation = monitor.startswith("val_") and monitor[len("val_") :] in keys
    earlier = callbacks[: callbacks.index(callback)]
    if from_validation and not any(_may_add_logs(cb) for cb in earlier):
        raise ValueError(
            f"{owner}: monitor={monitor!r} needs validation data "
            "(validation_data= or validation_split=); got none"
        )


def _may_add_logs(callback) -> bool:
    """Whether ``callback`` runs the user's own ``on_epoch_end``, which may add keys
    to the epoch's logs."""
    hook = callback.on_epoch_end
    overridden = getattr(hook, "__func__", hook) is not Callback.on_epoch_end
    ours = type(callback).__module__ == __name__
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
        self.mode = _monitor_mode(monitor, mode)
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
        _check_validation_monitor(self, "EarlyStopping")

    def on_epoch_end(self, epoch, logs=None):
        if self.model.stop_now:  # a diverged epoch (TerminateOnNaN) has no metrics
            return
        value = _monitored(logs, self.monitor, "EarlyStopping")
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
        from cnnumpy.schedules import ReduceOnPlateau

        self.monitor = monitor
        self.plateau = ReduceOnPlateau(
            factor=factor,
            patience=patience,
            mode=_monitor_mode(monitor, mode),
            min_delta=min_delta,
            cooldown=cooldown,
            min_lr=min_lr,
        )

    def on_train_begin(self, logs=None):
        _check_validation_monitor(self, "ReduceLROnPlateau")

    def on_epoch_end(self, epoch, logs=None):
        if self.model.stop_now:  # a diverged epoch (TerminateOnNaN) has no metrics
            return
        value = _monitored(logs, self.monitor, "ReduceLROnPlateau")
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


class CSVLogger(Callback):
    """Write one CSV row of metrics per epoch.

    The file is rewritten atomically each epoch.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rows: list[dict] = []

    def on_epoch_end(self, epoch, logs=None):
        self.rows.append({"epoch": epoch, **(logs or {})})
        keys: list[str] = []
        for row in self.rows:
            keys += [k for k in row if k not in keys]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, buffer.getvalue())


class ModelCheckpoint(Callback):
    """Save the model each epoch, or only if ``monitor`` improves (``save_best_only``).

    ``path`` may contain ``{epoch}`` (1-based) and any logged metric, e.g.
    ``"ckpt/model-{epoch:02d}-{val_loss:.3f}.safetensors"``. Writes are atomic, so the
    previous file survives a crash during a save.

    The fields of ``path`` (and ``monitor`` with ``save_best_only``) are checked when
    ``fit`` starts against the logs it will write (``loss``, the metrics, ``time``,
    ``lr``, and ``val_*`` with validation data), so a typo or a ``{val_loss}``
    without validation data fails before the first epoch, not after it. (So a key
    that your own callback adds to the logs cannot be used here.) A field must be a
    plain name: ``{epoch.__class__}`` or ``{loss[0]}`` would look up attributes or
    items, and is refused at once (``ValueError``).
    """

    def __init__(
        self, path, monitor="val_loss", save_best_only=False, mode="auto"
    ) -> None:
        self.path = str(path)
        _check_plain_fields(self.path)
        self.monitor = monitor
        self.save_best_only = save_best_only
        self.mode = _monitor_mode(monitor, mode)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.saved: list[str] = []

    def on_train_begin(self, logs=None):
        keys = getattr(self.model, "_fit_log_keys", None)  # set by fit
        if keys is None:
            return
        hint = ""
        if not any(k.startswith("val_") for k in keys):
            hint = " (val_* keys need validation_data or validation_split)"
        if self.save_best_only and self.monitor not in keys:
            raise ValueError(
                f"ModelCheckpoint: monitor {self.monitor!r} is not in the logs; "
                f"the logs will hold {keys}{hint}"
            )
        try:
            self.path.format(epoch=1, **dict.fromkeys(keys, 0.0))
        except KeyError as exc:
            raise ValueError(
                f"ModelCheckpoint: {exc.args[0]!r} (in the path {self.path!r}) is not "
                f"in the logs; the logs will hold {keys} and 'epoch'{hint}"
            ) from None
        except IndexError:
            raise ValueError(
                f"ModelCheckpoint: the path {self.path!r} has a positional field "
                "'{}'; name what goes there, e.g. {epoch}"
            ) from None
        except (ValueError, TypeError, AttributeError) as exc:
            raise ValueError(
                f"ModelCheckpoint: cannot format the path {self.path!r}: {exc}"
            ) from None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.model.stop_now or not math.isfinite(logs.get("loss", 0.0)):
            return  # a diverged epoch (TerminateOnNaN): keep the last good file
        if self.save_best_only:
            value = _monitored(logs, self.monitor, "ModelCheckpoint")
            better = value < self.best if self.mode == "min" else value > self.best
            if not better:
                return
            self.best = value
        path = self.path.format(epoch=epoch + 1, **logs)
        self.model.save(path)
        self.saved.append(path)

    def state_dict(self) -> dict:
        return {"best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self.best = float(state["best"])


_EXAMPLE_KEYS = "epoch, loss, accuracy, time, lr, val_loss, val_accuracy, ..."


def _check_plain_fields(path: str, template: str | None = None) -> None:
    """Refuse fields of ``path`` that look up attributes or items (``.`` or ``[``).

    ``str.format`` would evaluate ``{epoch.__class__}`` or ``{loss[0]}``; only the
    logs' keys themselves may be named. Fields inside a format spec, as in
    ``{loss:{width}}``, are checked too. ``template`` is the part being parsed.
    """
    try:
        fields = list(string.Formatter().parse(path if template is None else template))
    except ValueError as exc:  # e.g. "Single '}' encountered in format string"
        raise ValueError(
            f"ModelCheckpoint: cannot read the path {path!r}: {exc}"
        ) from None
    for _literal, name, spec, _conversion in fields:
        if name is None:
            continue  # literal text only
        if "." in name or "[" in name:
            raise ValueError(
                f"ModelCheckpoint: the field {name!r} in the path {path!r} looks up an "
                f"attribute or an item; use a plain key of the logs ({_EXAMPLE_KEYS}),"
                " e.g. {val_loss:.3f}"
            )
        if spec:
            _check_plain_fields(path, spec)
