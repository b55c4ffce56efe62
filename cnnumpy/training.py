"""The training loop behind ``Sequential.fit``: epochs, mini-batches, callbacks, backup.

One step is the notes' loop (seed 002, ``Network.fit``; seed 000, ``train``): forward
through every layer, loss, backward in reverse order, one optimiser update.
"""

from __future__ import annotations

import math
import time

import numpy as np

from cnnumpy.backup import Backup
from cnnumpy.callbacks import Callback, History
from cnnumpy.progress import ProgressBar
from cnnumpy.rng import as_rng
from cnnumpy.validation import check_batch_size


def fit(
    model,
    x,
    y,
    epochs,
    batch_size,
    shuffle,
    validation_data,
    validation_split,
    callbacks,
    verbose,
    seed,
    augment,
    resume_from,
) -> History:
    """The body of ``Sequential.fit`` (see its docstring for the arguments)."""
    model._require_compiled("fit")
    check_fit_args(epochs, batch_size, validation_split)
    x, y, validation_data = _training_data(
        model, x, y, validation_data, validation_split
    )
    check_last_batch(model, len(x), batch_size)
    model._fit_rng = as_rng(seed)
    history = History()
    callbacks = _attach(model, [history, *(callbacks or [])])
    model.history, model.stop_training, model.stop_now = history, False, False
    backup = Backup(resume_from, model, callbacks) if resume_from is not None else None
    first_epoch = backup.restore() if backup is not None else 0
    if backup is not None and backup.stopped:  # it had stopped early: stay stopped
        first_epoch = epochs
    for cb in callbacks:
        cb.on_train_begin({})
    for epoch in range(first_epoch, epochs):
        for cb in callbacks:
            cb.on_epoch_begin(epoch, {})
        logs = train_epoch(
            model, x, y, batch_size, shuffle, augment, callbacks, epoch, epochs, verbose
        )
        if validation_data is not None and not model.stop_now:
            val = model.evaluate(*validation_data, batch_size=max(batch_size, 256))
            logs.update({f"val_{k}": v for k, v in val.items()})
        logs["lr"] = float(model.optimizer.lr)
        for cb in callbacks:
            cb.on_epoch_end(epoch, logs)
        if verbose:
            print(epoch_line(epoch, epochs, logs), flush=True)
        if backup is not None and not model.stop_now:
            backup.save(epoch)
        if model.stop_training:
            break
    for cb in callbacks:
        cb.on_train_end({})
    return history


def _training_data(model, x, y, validation_data, validation_split):
    """Checked (x, y) and validation pair; ``validation_split`` holds out the last
    examples (like Keras)."""
    x, y = model._check_data(x, y, "fit")
    if validation_split > 0:
        if validation_data is not None:
            raise ValueError("fit: give validation_data or validation_split, not both")
        split = len(x) - max(1, int(round(len(x) * validation_split)))
        if split < 1:
            raise ValueError(
                f"fit: validation_split={validation_split} leaves no training data"
            )
        x, y, validation_data = x[:split], y[:split], (x[split:], y[split:])
    if validation_data is not None:
        validation_data = model._check_data(*validation_data, "fit (validation_data)")
    return x, y, validation_data


def _attach(model, callbacks: list) -> list:
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"fit: callbacks must be Callback objects, got {cb!r}")
        cb.set_model(model)
    return callbacks


def check_last_batch(model, n: int, batch_size: int) -> None:
    """BatchNorm on (N, features) cannot normalise a batch of one example."""
    shape = model.input_shape
    for layer in model.layers:
        if type(layer).__name__ == "BatchNorm" and len(shape) == 1:
            if n % batch_size == 1 or n == 1:
                raise ValueError(
                    f"fit: with batch_size={batch_size}, {n} examples leave a last "
                    f"batch of 1, which {layer!r} on features cannot normalise in "
                    "training; choose another batch_size or drop one example"
                )
        shape = layer.output_shape(shape)


def train_epoch(
    model, x, y, batch_size, shuffle, augment, callbacks, epoch, epochs, verbose
) -> dict:
    n = len(x)
    order = model._fit_rng.permutation(n) if shuffle else np.arange(n)
    totals = {"loss": 0.0, **{name: 0.0 for name in model.metrics}}
    seen, start = 0, time.perf_counter()
    bar = ProgressBar(n, f"epoch {epoch + 1}/{epochs}", enabled=verbose == 1)
    for batch, lo in enumerate(range(0, n, batch_size)):
        idx = order[lo : lo + batch_size]
        xb = x[idx].astype(model.dtype, copy=False)
        if augment is not None:
            xb = augment(xb, model._fit_rng)
        for cb in callbacks:
            cb.on_batch_begin(batch, {})
        loss, out = model._step(xb, y[idx])
        totals["loss"] += loss * len(idx)
        scores = model.loss.to_probabilities(out) if model.metrics else None
        for name, fn in model.metrics.items():
            totals[name] += fn(y[idx], scores) * len(idx)
        seen += len(idx)
        batch_logs = {k: v / seen for k, v in totals.items()}
        bar.update(len(idx), batch_logs)
        for cb in callbacks:
            cb.on_batch_end(batch, {**batch_logs, "loss": loss})
        if model.stop_now:
            break
    bar.close()
    logs = {k: v / max(seen, 1) for k, v in totals.items()}
    logs["time"] = time.perf_counter() - start
    return logs


def check_fit_args(epochs, batch_size, validation_split) -> None:
    if (
        isinstance(epochs, bool)
        or not isinstance(epochs, (int, np.integer))
        or epochs < 0
    ):
        raise ValueError(f"fit: epochs must be a non-negative integer, got {epochs!r}")
    check_batch_size(batch_size, "fit")
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(
            f"fit: validation_split must be in [0, 1), got {validation_split!r}"
        )


def epoch_line(epoch: int, epochs: int, logs: dict) -> str:
    parts = [f"epoch {epoch + 1}/{epochs}"]
    for key, value in logs.items():
        if key == "time":
            parts.append(f"{value:.1f}s")
        elif isinstance(value, float) and math.isfinite(value):
            parts.append(f"{key}={value:.4g}")
        else:
            parts.append(f"{key}={value}")
    return "  ".join(parts)
