"""The training loop behind ``Sequential.fit``: epochs, mini-batches, callbacks, backup.

One step is the notes' loop (seed 002, ``Network.fit``; seed 000, ``train``): forward
through every layer, loss, backward in reverse order, one optimiser update.

A run that diverges stops with :class:`TrainingDiverged` as soon as a batch loss, an
epoch's logged value or a weight is NaN or infinite: nothing after a NaN can be
trusted, and a checkpoint is never overwritten with it.

Under MPI (``distributed``, :mod:`cnnumpy.distributed.data_parallel`) every rank runs
this same loop on the same batches, each computing its rows of every step; rank 0
alone prints and writes the ``resume_from`` folder.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnumpy.callbacks import Callback, History
from cnnumpy.distributed import mpi
from cnnumpy.distributed.data_parallel import DataParallel, resume_backup
from cnnumpy.divergence import TrainingDiverged, check_epoch
from cnnumpy.progress import ProgressBar
from cnnumpy.rng import as_rng
from cnnumpy.saving.backup import Backup, run_signature
from cnnumpy.validation import cast_inputs, check_batch_size, check_data


@dataclass
class Run:
    """One call of ``fit``: what every epoch and batch needs."""

    model: Any
    x: np.ndarray
    y: np.ndarray
    epochs: int
    batch_size: int
    shuffle: bool
    validation_data: tuple | None
    callbacks: list
    verbose: int
    augment: Callable | None
    rng: np.random.Generator  # shuffles, and is handed to augment


def fit(
    model,
    x,
    y,
    *,
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
    distributed=None,
) -> History:
    """The body of ``Sequential.fit`` (see its docstring for the arguments)."""
    model.require_compiled("fit")
    check_fit_args(epochs, batch_size, validation_split)
    comm = mpi.world() if mpi.wanted(distributed) else None
    if comm is not None and comm.rank != 0:
        verbose = 0  # rank 0 alone prints
    x, y, validation_data = _training_data(
        model, x, y, validation_data, validation_split
    )
    check_last_batch(model, len(x), batch_size)
    callbacks = _attach(model, [History(), *(callbacks or [])])
    run = Run(
        model, x, y, epochs, batch_size, shuffle, validation_data, callbacks,
        verbose, augment, as_rng(seed),
    )  # fmt: skip
    params = {
        "epochs": epochs,
        "batch_size": batch_size,
        "verbose": verbose,
        "log_keys": log_keys(model, validation_data is not None),
        "callbacks": callbacks,
    }
    for cb in callbacks:
        cb.set_params(params)
    model.history, model.stop_training, model.stop_now = callbacks[0], False, False
    if comm is None:
        return _fit(run, resume_from, None)
    # a rank that raises stops them all (the others would wait for it); a diverged
    # loss is seen by every rank at once
    with mpi.abort_on_error(comm, passes=(TrainingDiverged,)):
        with DataParallel(model, comm) as group:
            return _fit(run, resume_from, group)


def _fit(run: Run, resume_from, group: DataParallel | None) -> History:
    """The epochs, from the checkpoint in ``resume_from`` if there is one; ``group``:
    the MPI ranks that split every batch, or None."""
    if resume_from is None:
        if group is not None:
            run.rng = group.synchronise(run.rng)
        return _train(run, None, 0)
    model, epochs = run.model, run.epochs
    signature = run_signature(model, run.x, run.y, run.validation_data, run.batch_size)
    if group is None:
        backup = Backup(resume_from, model, run.callbacks, run.rng, signature)
    else:  # rank 0 holds the folder; the others resume from its checkpoint's bytes
        backup = resume_backup(
            resume_from, model, run.callbacks, run.rng, signature, group.comm
        )
    with backup as backup:
        first_epoch = backup.restore(epochs)
        run.rng = backup.rng  # the checkpoint's, when it resumes
        if group is not None:
            run.rng = group.synchronise(run.rng)
        done = backup.done_message(epochs)
        if done is not None and run.verbose:
            print(done, flush=True)
        try:
            return _train(run, backup, first_epoch)
        except TrainingDiverged as exc:
            exc.checkpoint, exc.completed = backup.path, backup.completed
            raise


def _train(run: Run, backup: Backup | None, first_epoch: int) -> History:
    """The epochs between the callbacks' ``on_train_begin`` and ``on_train_end``;
    if anything raises, their ``on_train_error`` instead, then the error goes on
    (a callback that wrapped the layers unwraps them there)."""
    callbacks = run.callbacks
    if backup is not None and backup.stopped:  # it had stopped early: stay stopped
        first_epoch = run.epochs
    try:
        for cb in callbacks:
            cb.on_train_begin({})
        _epochs(run, backup, first_epoch)
        for cb in callbacks:
            cb.on_train_end({})
    except BaseException as error:  # KeyboardInterrupt too
        for cb in callbacks:
            cb.on_train_error(error)
        raise
    return callbacks[0]


def _epochs(run: Run, backup: Backup | None, first_epoch: int) -> None:
    """Epochs ``first_epoch`` to ``run.epochs - 1``, each followed by the
    validation, the divergence check, the callbacks and the backup."""
    model, callbacks = run.model, run.callbacks
    for epoch in range(first_epoch, run.epochs):
        for cb in callbacks:
            cb.on_epoch_begin(epoch, {})
        logs = train_epoch(run, epoch)
        if run.validation_data is not None and not model.stop_now:
            logs.update(_validate(run, epoch))
        logs["lr"] = float(model.optimizer.lr)
        if not model.stop_now:  # (stop_now: TerminateOnNaN's quiet stop, as before)
            check_epoch(model, epoch, logs)
        for cb in callbacks:
            cb.on_epoch_end(epoch, logs)
        if run.verbose:
            print(epoch_line(epoch, run.epochs, logs), flush=True)
        if backup is not None and not model.stop_now:
            backup.save(epoch)
        if model.stop_training:
            break


def _validate(run: Run, epoch: int) -> dict:
    """The ``val_*`` logs of an epoch, between the callbacks' ``on_validation_begin``
    and ``on_validation_end`` (an EMA swaps its average in there)."""
    begun = []  # the callbacks whose on_validation_begin ran: they get their end
    try:
        for cb in run.callbacks:
            cb.on_validation_begin(epoch)
            begun.append(cb)
        size = max(run.batch_size, 256)
        val = run.model.evaluate(*run.validation_data, batch_size=size)
    finally:
        for cb in reversed(begun):
            cb.on_validation_end(epoch)
    return {f"val_{k}": v for k, v in val.items()}


def log_keys(model, validation: bool) -> list[str]:
    """The keys of the logs ``on_epoch_end`` receives, in order."""
    keys = ["loss", *model.metrics, "time"]
    if validation:
        keys += [f"val_{k}" for k in ("loss", *model.metrics)]
    return [*keys, "lr"]


def _training_data(model, x, y, validation_data, validation_split):
    """Checked (x, y) and validation pair; ``validation_split`` holds out the last
    examples (like Keras)."""
    x, y = check_data(model, x, y, "fit")
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
        x_val, y_val = _pair(validation_data)
        validation_data = check_data(model, x_val, y_val, "fit (validation_data)")
    return x, y, validation_data


def _pair(validation_data) -> tuple:
    """``(x_val, y_val)`` from a tuple or list of two, else a clear error."""
    expected = "fit: validation_data must be a pair (x_val, y_val), got"
    if not isinstance(validation_data, (tuple, list)):
        raise TypeError(f"{expected} {type(validation_data).__name__}")
    if len(validation_data) != 2:
        kind = type(validation_data).__name__
        raise ValueError(f"{expected} a {kind} of {len(validation_data)}")
    return tuple(validation_data)


def _attach(model, callbacks: list) -> list:
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"fit: callbacks must be Callback objects, got {cb!r}")
        cb.set_model(model)
    return callbacks


def check_last_batch(model, n: int, batch_size: int) -> None:
    """BatchNorm on (N, features) cannot normalise a batch of one example."""
    for layer, shape in zip(model.layers, model.layer_input_shapes(), strict=True):
        if type(layer).__name__ == "BatchNorm" and len(shape) == 1:
            if n % batch_size == 1 or n == 1:
                raise ValueError(
                    f"fit: with batch_size={batch_size}, {n} examples leave a last "
                    f"batch of 1, which {layer!r} on features cannot normalise in "
                    "training; choose another batch_size or drop one example"
                )


def train_epoch(run: Run, epoch: int) -> dict:
    """One pass over the shuffled batches; returns the epoch's mean loss and metrics.

    Raises:
        TrainingDiverged: a batch loss is NaN or infinite (unless a callback such as
            TerminateOnNaN stops at once, setting ``model.stop_now``).
    """
    model, x, y = run.model, run.x, run.y
    n = len(x)
    order = run.rng.permutation(n) if run.shuffle else np.arange(n)
    totals = {"loss": 0.0, **{name: 0.0 for name in model.metrics}}
    seen, start = 0, time.perf_counter()
    bar = ProgressBar(n, f"epoch {epoch + 1}/{run.epochs}", enabled=run.verbose == 1)
    try:
        for batch, lo in enumerate(range(0, n, run.batch_size)):
            idx = order[lo : lo + run.batch_size]
            xb = cast_inputs(model, x[idx])  # ids stay integer for an Embedding
            if run.augment is not None:
                xb = run.augment(xb, run.rng)
            for cb in run.callbacks:
                cb.on_batch_begin(batch, {})
            loss, out = model.train_step(xb, y[idx])
            totals["loss"] += loss * len(idx)
            scores = model.loss.to_probabilities(out) if model.metrics else None
            for name, fn in model.metrics.items():
                totals[name] += fn(y[idx], scores) * len(idx)
            seen += len(idx)
            batch_logs = {k: v / seen for k, v in totals.items()}
            bar.update(len(idx), batch_logs)
            for cb in run.callbacks:
                cb.on_batch_end(batch, {**batch_logs, "loss": loss})
            if model.stop_now:
                break
            if not math.isfinite(loss):
                raise TrainingDiverged(f"the loss is {loss}", epoch, batch)
    finally:
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
