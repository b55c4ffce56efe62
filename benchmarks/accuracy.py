"""Accuracy benchmark: train a zoo model on real data; print test accuracy and time.

The data must be found locally (``--data-dir``, else ``$CNNUMPY_DATA``, else the cache);
nothing is downloaded. Preprocessing is the CLI's: pixels scaled to [0, 1], then
standardised per channel with the training split's mean and standard deviation.

A named recipe (``recipes.py``: network, SGD, schedule, augmentation, label smoothing,
average of the weights, test-time flip) in cnnumpy, or in PyTorch from the same
initial weights on the same batches (``torch_training.py``)::

    CNNUMPY_DATA=../shared/data python benchmarks/accuracy.py --recipe cifar10 \\
        --curves cifar10.png --history cifar10.json
    CNNUMPY_DATA=../shared/data python benchmarks/accuracy.py --recipe cifar10 \\
        --framework torch
    ... --recipe cifar10 --epochs 4 --without cutout ema    # an ablation's row

Or the single settings of the first benchmarks::

    CNNUMPY_DATA=../shared/data python benchmarks/accuracy.py --model lenet5 \\
        --dataset mnist --epochs 4
    CNNUMPY_DATA=../shared/data python benchmarks/accuracy.py --model seed_cifar \\
        --dataset cifar10 --epochs 10 --optimizer adam --lr 0.003

The test split is evaluated after every epoch (with the average of the weights when
the recipe keeps one). That time is not training time: ``train_s`` is the sum of the
epochs' training times, from the first training step to the last, and each epoch's
record gives the training clock when it ended. ``--time-budget S`` stops after the
epoch that passes S seconds on that clock; the learning-rate schedule is still planned
for all the epochs, so a stopped one-cycle run has not annealed.

The last line printed is one JSON object (model, data, recipe, framework, settings,
accuracies, times, per-epoch history, machine), so that results can be collected by a
script.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time
import warnings

import numpy as np
from recipes import (
    FIRST_LOSSES,
    INGREDIENTS,
    RECIPES,
    Data,
    Recipe,
    accuracies,
    augmenter,
    build_model,
    epoch_record,
    lr_schedule,
    without,
)

import cnnumpy
from cnnumpy import callbacks, optimizers, tta, zoo
from cnnumpy.data import (
    ChecksumWarning,
    load_cifar10,
    load_fashion_mnist,
    load_mnist,
    standardize,
)
from cnnumpy.losses import CrossEntropy

LOADERS = {
    "mnist": load_mnist,
    "fashion-mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
}
LEGACY = {"model": "lenet5", "dataset": "mnist", "epochs": 4, "batch_size": 64,
          "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.0,
          "schedule": "cosine"}  # fmt: skip


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", choices=sorted(RECIPES), help="a named recipe")
    removed = f"ingredients removed: {', '.join(INGREDIENTS)}"
    p.add_argument("--without", nargs="+", default=[], choices=list(INGREDIENTS),
                   metavar="ING", help=removed)  # fmt: skip
    p.add_argument("--framework", default="cnnumpy", choices=("cnnumpy", "torch"))
    p.add_argument("--data-dir", help="folder with the files (default: $CNNUMPY_DATA)")
    p.add_argument("--epochs", type=int, help="default 4, or the recipe's")
    budget = "stop after the epoch that passes this training time"
    p.add_argument("--time-budget", type=float, metavar="SECONDS", help=budget)
    p.add_argument("--limit", type=int, help="first N training images only")
    p.add_argument("--test-limit", type=int, help="first N test images (smoke runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--curves", metavar="FILE.png", help="plot the learning curves")
    p.add_argument("--history", metavar="FILE.json", help="write the JSON result")
    legacy = p.add_argument_group("without --recipe")
    legacy.add_argument("--model", choices=sorted(zoo.MODELS), help="default lenet5")
    legacy.add_argument("--dataset", choices=sorted(LOADERS), help="default mnist")
    legacy.add_argument("--batch-size", type=int, help="default 64")
    names = sorted(optimizers.OPTIMIZERS)
    legacy.add_argument("--optimizer", choices=names, help="default sgd")
    legacy.add_argument("--lr", type=float, help="default 0.05")
    legacy.add_argument("--momentum", type=float, help="SGD only; default 0.9")
    legacy.add_argument("--weight-decay", type=float, help="default 0")
    schedule = "cosine per epoch (default) or none"
    legacy.add_argument("--schedule", choices=("none", "cosine"), help=schedule)
    legacy.add_argument("--augment", action="store_true", help="random crops (+ flips)")
    return p.parse_args(argv)


def chosen_recipe(args) -> Recipe:
    """The named recipe (``--epochs`` may shorten it), else one from the flags."""
    given = [k for k in LEGACY if k != "epochs" and getattr(args, k) is not None]
    given += ["augment"] if args.augment else []
    if args.recipe is not None:
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise SystemExit(f"accuracy.py: --recipe sets {flags} itself")
        recipe = RECIPES[args.recipe]
        if args.epochs is not None:
            recipe = dataclasses.replace(recipe, epochs=args.epochs)
        return without(recipe, args.without)
    s = {k: LEGACY[k] if getattr(args, k) is None else getattr(args, k) for k in LEGACY}
    colour = s["dataset"] == "cifar10"
    crop = (4 if colour else 2) if args.augment else 0
    recipe = Recipe(
        dataset=s["dataset"], model=s["model"], epochs=s["epochs"],
        batch_size=s["batch_size"], optimizer=s["optimizer"], lr=s["lr"],
        momentum=s["momentum"], nesterov=False, weight_decay=s["weight_decay"],
        no_decay_on_norms=False, warmup=0.0, crop=crop, flip=colour and args.augment,
        schedule="epoch_cosine" if s["schedule"] == "cosine" else "none",
    )  # fmt: skip
    return without(recipe, args.without)


def load(dataset: str, data_dir=None, limit=None, test_limit=None) -> Data:
    """The standardised splits (training statistics), the first ``limit`` images."""
    loader = LOADERS[dataset]
    with warnings.catch_warnings():
        # The shared CIFAR-10 copy went through JPEG: its md5s differ, by design.
        warnings.simplefilter("ignore", ChecksumWarning)
        train = loader("train", path=data_dir, download=False)
        test = loader("test", path=data_dir, download=False)
    x_train, y_train = train.x[:limit], train.y[:limit]
    x_test, y_test = test.x[:test_limit], test.y[:test_limit]
    x_train, x_test, _ = standardize(x_train, x_test)
    return Data(x_train, y_train, x_test, y_test, train.source)


class Recorder(callbacks.Callback):
    """The first batch losses, one record per epoch, and the time budget."""

    def __init__(self, time_budget: float | None) -> None:
        self.time_budget, self.clock = time_budget, 0.0
        self.history, self.first_losses = [], []

    def on_batch_end(self, batch, logs=None):
        if len(self.first_losses) < FIRST_LOSSES:
            self.first_losses.append(float(logs["loss"]))

    def on_epoch_end(self, epoch, logs=None):
        self.clock += logs["time"]  # train_epoch's time: the test is not in it
        test = {"loss": logs["val_loss"], "accuracy": logs["val_accuracy"]}
        record = epoch_record(epoch, logs, test, logs["lr"], logs["time"], self.clock)
        self.history.append(record)
        if self.time_budget is not None and self.clock >= self.time_budget:
            self.model.stop_training = True


def compile_model(model, recipe: Recipe) -> None:
    """Compile with the recipe's optimiser (SGD or Adam) and loss."""
    options = {"lr": recipe.lr, "weight_decay": recipe.weight_decay,
               "decay_biases": not recipe.no_decay_on_norms}  # fmt: skip
    if recipe.optimizer == "sgd":
        nesterov = recipe.nesterov and recipe.momentum > 0
        options.update(momentum=recipe.momentum, nesterov=nesterov)
    loss = CrossEntropy(label_smoothing=recipe.label_smoothing)
    model.compile(optimizers.get(recipe.optimizer, **options), loss=loss)


def train_cnnumpy(recipe: Recipe, data: Data, seed=0, time_budget=None, verbose=True):
    """``model.fit`` with the recipe; the same result as ``torch_training.train``."""
    model = build_model(recipe, data.x_train.shape[1:], seed)
    compile_model(model, recipe)
    schedule, unit = lr_schedule(recipe, len(data.x_train))
    hooks = [Recorder(time_budget)]
    if unit == "step":
        hooks.append(callbacks.StepScheduler(schedule))
    elif unit == "epoch":
        hooks.append(callbacks.LearningRateScheduler(schedule))
    ema = None if recipe.ema is None else callbacks.EMA(recipe.ema, warmup=True)
    hooks += [ema] if ema is not None else []
    model.fit(
        data.x_train, data.y_train, epochs=recipe.epochs,
        batch_size=recipe.batch_size, callbacks=hooks, verbose=2 if verbose else 0,
        seed=seed, augment=augmenter(recipe),
        validation_data=(data.x_test, data.y_test),
    )  # fmt: skip
    last = hooks[0].history[-1]
    tests = {"test": {"loss": last["test_loss"], "accuracy": last["test_accuracy"]}}
    tests["tta"] = tests["raw"] = None
    x_test, y_test = data.x_test, data.y_test
    if recipe.tta:
        with ema.apply_to(model) if ema is not None else contextlib.nullcontext():
            tests["tta"] = tta.evaluate_flipped(model, x_test, y_test)
    if ema is not None:  # the raw weights: the run without the average
        flipped = tta.evaluate_flipped(model, x_test, y_test) if recipe.tta else None
        tests["raw"] = {"test": model.evaluate(x_test, y_test), "tta": flipped}
    return {"params": model.count_params(), "history": hooks[0].history,
            "first_losses": hooks[0].first_losses, "tests": tests}  # fmt: skip


def train(recipe: Recipe, data: Data, framework: str, seed=0, time_budget=None,
          verbose=True) -> dict:  # fmt: skip
    """The run of ``recipe`` in ``framework``: see ``train_cnnumpy``."""
    if framework == "torch":
        import torch_training  # PyTorch is imported only for its runs

        return torch_training.train(recipe, data, seed, time_budget, verbose)
    return train_cnnumpy(recipe, data, seed, time_budget, verbose)


def machine(framework: str) -> dict:
    """The CPU model, cores, versions and thread counts of this run."""
    from cnnumpy.engine.kernels.threads import WORKERS

    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        names = [line.split(":", 1)[1].strip() for line in f if "model name" in line]
        cpu = names[0] if names else cpu
    info = {"cpu": cpu, "cores": os.cpu_count(), "numpy": np.__version__,
            "cnnumpy": cnnumpy.__version__, "cnnumpy_threads": WORKERS}  # fmt: skip
    with contextlib.suppress(ImportError):
        import threadpoolctl

        pools = threadpoolctl.threadpool_info()
        info["blas_threads"] = [
            p["num_threads"] for p in pools if p["user_api"] == "blas"
        ]
    if framework == "torch":
        import torch

        info.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
    return info


def plot_curves(history: list[dict], path: str, title: str, smoothing=0.0) -> None:
    """Loss and accuracy per epoch against the training clock, in minutes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [r["train_s"] / 60 for r in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for split in ("train", "test"):
        left.plot(minutes, [r[f"{split}_loss"] for r in history], "o-", label=split)
        accuracy = [100 * r[f"{split}_accuracy"] for r in history]
        right.plot(minutes, accuracy, "o-", label=split)
    loss = f"loss (label smoothing {smoothing})" if smoothing else "loss"
    left.set(xlabel="training time (min)", ylabel=loss)
    right.set(xlabel="training time (min)", ylabel="accuracy (%)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(args, recipe: Recipe, data: Data, result: dict, load_s: float) -> dict:
    """The JSON summary of one run."""
    history = result["history"]
    settings = {
        **recipe.settings(),
        "seed": args.seed,
        "limit": args.limit,
        "test_limit": args.test_limit,
        "time_budget": args.time_budget,
    }
    return {
        "model": recipe.model, "dataset": recipe.dataset, "recipe": args.recipe,
        "without": list(args.without), "framework": args.framework,
        "settings": settings, "params": result["params"],
        "train_images": len(data.x_train), "test_images": len(data.x_test),
        **accuracies(recipe, result["tests"]),
        "epochs": recipe.epochs, "epochs_run": len(history),
        "train_s": history[-1]["train_s"] if history else 0.0,
        "load_s": round(load_s, 1), "first_losses": result["first_losses"],
        "history": history, "machine": machine(args.framework),
    }  # fmt: skip


def main(argv=None) -> int:
    args = parse_args(argv)
    recipe = chosen_recipe(args)
    start = time.perf_counter()
    data = load(recipe.dataset, args.data_dir, args.limit, args.test_limit)
    load_s = time.perf_counter() - start
    print(
        f"{recipe.model} on {recipe.dataset} ({args.framework}): "
        f"{len(data.x_train):,} train, {len(data.x_test):,} test images from "
        f"{data.source}",
        flush=True,
    )
    result = train(recipe, data, args.framework, args.seed, args.time_budget)
    summary = report(args, recipe, data, result, load_s)
    summary["total_s"] = round(time.perf_counter() - start, 1)
    tail = "" if summary["test_accuracy_tta"] is None else " with flip averaging"
    print(
        f"test accuracy {summary['test_accuracy']:.2%}{tail} (plain "
        f"{summary['test_accuracy_plain']:.2%}); training {summary['train_s']:.0f} s "
        f"over {summary['epochs_run']} epochs, total {summary['total_s']:.0f} s"
    )
    if args.history:
        with open(args.history, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1)
    if args.curves:
        title = f"{recipe.model} on {recipe.dataset}, {args.framework}"
        plot_curves(result["history"], args.curves, title, recipe.label_smoothing)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
