"""Callbacks that write files: the epochs' logs as CSV, and model checkpoints."""

from __future__ import annotations

import csv
import io
import math
import string
from pathlib import Path

from cnnumpy.callbacks.base import Callback
from cnnumpy.callbacks.monitoring import monitor_mode, monitored
from cnnumpy.fileio import atomic_write_text


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
        self.mode = monitor_mode(monitor, mode)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.saved: list[str] = []

    def on_train_begin(self, logs=None):
        keys = self.params.get("log_keys")  # set by fit
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
            value = monitored(logs, self.monitor, "ModelCheckpoint")
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
