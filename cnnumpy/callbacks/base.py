"""Callbacks: code ``fit`` calls at the start and end of training, epochs and batches.

Write your own by subclassing ``Callback`` and overriding any ``on_*`` method, or pass
functions to ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``. ``self.model`` is
the model being trained; setting ``self.model.stop_training = True`` ends training after
the current epoch.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType


class Callback:
    """Base class; every hook does nothing by default.

    ``logs`` is a dict of metric values. ``fit`` sets ``model`` and ``params`` before
    ``on_train_begin``: ``params`` holds ``epochs``, ``batch_size``, ``verbose``,
    ``log_keys`` (the keys ``on_epoch_end``'s logs will have, in order) and
    ``callbacks`` (every callback of the run, in order). If ``fit`` raises, each
    callback's ``on_train_error(error)`` runs instead of ``on_train_end``.
    """

    model = None
    params: Mapping = MappingProxyType({})  # until fit sets it

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_train_begin(self, logs: dict | None = None) -> None: ...

    def on_train_end(self, logs: dict | None = None) -> None: ...

    def on_train_error(self, error: BaseException) -> None:
        """Called instead of ``on_train_end`` when ``fit`` stops on an exception
        (which ``fit`` then raises again): undo what ``on_train_begin`` set up."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None: ...

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None: ...

    def on_validation_begin(self, epoch: int) -> None:
        """Called before ``fit`` evaluates its validation data after an epoch."""

    def on_validation_end(self, epoch: int) -> None:
        """Called after that evaluation (even if it raised), in reverse order."""

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
