"""The run folder as ``cnnumpy train`` fills it: checked and cleared before the run,
``config.json`` (checked against the saved one on ``--resume``) and ``history.csv``
written while it trains.

One training at a time holds a run folder (``cnnumpy.folderlock.FolderLock``, taken
by ``cnnumpy.cli.train`` before anything here reads or deletes a file, ``--overwrite``
included). ``--overwrite`` removes the previous run's files (``RUN_FILES`` and the
checkpoint, never other files) before the new run writes any, so that a new run
stopped early never leaves the old model beside its new ``config.json``.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from cnnumpy import callbacks
from cnnumpy.cli import runs
from cnnumpy.cli.runs import UsageError
from cnnumpy.divergence import TrainingDiverged
from cnnumpy.fileio import atomic_write_text, file_kind, remove_stale_temporaries
from cnnumpy.folderlock import FolderLock
from cnnumpy.version import __version__

# The files cnnumpy train writes in a run folder (besides the checkpoint): a new run
# removes their stale temporary files, --overwrite the files themselves.
RUN_FILES = (
    runs.MODEL,
    runs.CONFIG,
    runs.METRICS,
    runs.HISTORY,
    runs.CURVES,
    runs.CONFUSION,
    runs.REPORT,
)

# Settings a resumed run must share with the run it continues (epochs may grow).
SAME_ON_RESUME = (
    "model",
    "dataset",
    "loss",
    "batch_size",
    "optimizer",
    "lr",
    "momentum",
    "nesterov",
    "weight_decay",
    "schedule",
    "warmup",
    "augment",
    "cutout",
    "label_smoothing",
    "decay_biases",
    "ema",
    "limit",
    "val_split",
    "seed",
    "dtype",
)
# What a config.json written before a setting existed meant by its absence: runs
# saved before --loss trained with cross-entropy, before the recipes without them.
SAVED_DEFAULTS = {
    "loss": "cross_entropy",
    "nesterov": False,
    "warmup": None,
    "cutout": None,
    "label_smoothing": 0.0,
    "decay_biases": True,
    "ema": None,
}


# -- before the run --------------------------------------------------------------------
def check_out(out: Path, resume: bool, overwrite: bool) -> None:
    """``--out``, ``--resume`` and ``--overwrite``, checked before the lock is taken."""
    if resume and overwrite:
        raise UsageError("--resume continues a run, --overwrite restarts it: pick one")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")


def prepare_folder(out: Path, resume: bool, overwrite: bool) -> Path:
    """Check what ``out`` holds against the flags; ``--overwrite`` deletes the
    previous run's files. Called holding the folder's lock. Returns the checkpoint
    folder."""
    checkpoint = out / runs.CHECKPOINT_DIR / runs.CHECKPOINT
    _check_checkpoint_folder(checkpoint.parent)
    exists = (out / runs.MODEL).exists() or checkpoint.exists()
    if exists and not (resume or overwrite):
        raise UsageError(
            f"{out} already holds a run; add --resume to continue it, "
            "--overwrite to start again, or choose another --out"
        )
    if overwrite:
        _remove_previous_run(out)
    if resume and not checkpoint.exists():
        print(f"no checkpoint in {checkpoint.parent}: starting from epoch 1")
    return checkpoint.parent


def _check_checkpoint_folder(folder: Path) -> None:
    """``RUN/checkpoint`` must be a folder, or not exist yet."""
    if folder.exists() and not folder.is_dir():
        kind = file_kind(folder.stat().st_mode)
        raise UsageError(
            f"{folder} is a {kind}, not a folder: the run keeps its checkpoint there; "
            "move it away or choose another --out"
        )


def _remove_previous_run(out: Path) -> None:
    """``--overwrite``: remove the files the previous run wrote, and say which.

    They must go before the new run writes its ``config.json``: a new run stopped (or
    diverged) before its end would otherwise leave the old model beside the new
    settings, and ``predict`` or ``evaluate`` would use the two together. Files
    ``cnnumpy train`` does not write are the user's and stay.
    """
    checkpoint = f"{runs.CHECKPOINT_DIR}/{runs.CHECKPOINT}"
    removed = []
    for name in (*RUN_FILES, checkpoint):
        path = out / name
        if path.is_symlink() or path.is_file():  # a symlink goes, not its target
            path.unlink()
            removed.append(name)
    if removed:
        print(f"--overwrite: removed the previous run's {', '.join(removed)}")


# -- config.json -----------------------------------------------------------------------
def make_config(args, train, test, parts, mean, std) -> dict:
    """``config.json``: the settings, the data used and the preprocessing statistics."""
    x_tr, _, x_val, _ = parts
    return {
        "command": "train",
        "model": args.model,
        "dataset": args.dataset,
        "data_dir": args.data_dir and str(Path(args.data_dir).resolve()),
        "epochs": args.epochs,
        "loss": args.loss,
        "batch_size": args.batch_size,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "momentum": args.momentum,
        "nesterov": args.nesterov,
        "weight_decay": args.weight_decay,
        "schedule": args.schedule,
        "warmup": args.warmup,
        "augment": args.augment,
        "cutout": args.cutout,
        "label_smoothing": args.label_smoothing,
        "decay_biases": not args.no_decay_biases,
        "ema": args.ema,
        "tta_flip": args.tta_flip,
        "limit": args.limit,
        "val_split": args.val_split,
        "seed": args.seed,
        "dtype": args.dtype,
        "input_shape": list(train.x.shape[1:]),
        "class_names": list(train.class_names),
        "data": {
            "train": runs.describe(train),
            "test": runs.describe(test),
            "n_train": len(x_tr),
            "n_val": 0 if x_val is None else len(x_val),
            "n_test": len(test),
            "checksum_ok": train.checksum_ok,
        },
        "preprocessing": {
            "scale": "x / 255",
            "mean": mean,
            "std": std,
            "formula": "(x / 255 - mean[c]) / std[c]",
        },
        "cnnumpy_version": __version__,
    }


def check_resume(path: Path, config: dict, keys=SAME_ON_RESUME) -> None:
    """``--resume``: the saved run's settings must be ``config``'s (those in
    ``keys``)."""
    if not path.exists():
        return
    saved = runs.read_json(path)  # refuses a FIFO, a huge or a too deep file
    saved = {**SAVED_DEFAULTS, **saved}
    diff = [
        f"{k}: {saved.get(k)!r} -> {config[k]!r}"
        for k in keys
        if saved.get(k) != config[k]
    ]
    if diff:
        raise UsageError(
            "--resume with other settings than the saved run (" + "; ".join(diff) + ")"
        )


class WriteConfig(callbacks.Callback):
    """Write ``config.json`` once ``fit`` has accepted the run: a resume it refuses
    (fewer epochs, other data) leaves the saved config as it was."""

    def __init__(self, path: Path, config: dict) -> None:
        self.path, self.config = path, config

    def on_train_begin(self, logs=None):
        runs.write_json(self.path, self.config)


# -- history.csv -----------------------------------------------------------------------
class HistoryCSV(callbacks.Callback):
    """Rewrite ``history.csv`` after every epoch from the model's whole history, so a
    resumed run's file also holds the epochs run before the interruption."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        write_history_csv(self.path, self.model.history)


def write_history_csv(path: Path, history) -> None:
    keys = list(history.history)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["epoch", *keys])
    for row, epoch in enumerate(history.epoch):
        values = [
            history.history[k][row] if row < len(history.history[k]) else ""
            for k in keys
        ]
        writer.writerow([epoch + 1, *values])
    atomic_write_text(path, buffer.getvalue())


DIVERGED = 3  # the exit code of a run whose loss or weights became NaN or infinite


def train_in_folder(args, train) -> int:
    """Hold the run folder ``args.out`` (a lock, before anything in it is read or
    deleted), prepare it, and return ``train(checkpoint_dir)``: 0, or
    :data:`DIVERGED` with one line on stderr when training diverged."""
    out = Path(args.out)
    check_out(out, args.resume, args.overwrite)
    with FolderLock(out, "--out "):
        checkpoint_dir = prepare_folder(out, args.resume, args.overwrite)
        for name in RUN_FILES:
            remove_stale_temporaries(out / name)
        try:
            return train(checkpoint_dir)
        except TrainingDiverged as exc:
            print(
                f"cnnumpy: error: {exc}; start again with a smaller --lr and "
                "--overwrite",
                file=sys.stderr,
            )
            return DIVERGED
