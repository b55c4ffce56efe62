"""Accuracy benchmark: train a zoo model on real data; print test accuracy and time.

The data must be found locally (``--data-dir``, else ``$CNNUMPY_DATA``, else the cache);
nothing is downloaded. Preprocessing is the CLI's: pixels scaled to [0, 1], then
standardised per channel with the training split's mean and standard deviation.

    CNNUMPY_DATA=../shared/data python benchmarks/accuracy.py --model lenet5 \\
        --dataset mnist --epochs 4
    CNNUMPY_DATA=../shared/data python benchmarks/accuracy.py --model seed_cifar \\
        --dataset cifar10 --epochs 10 --augment

The last line printed is one JSON object (model, data, settings, accuracy, seconds), so
that results can be collected by a script.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import numpy as np

import cnnumpy
from cnnumpy import callbacks, optimizers, schedules, zoo
from cnnumpy.data import (
    ChecksumWarning,
    cifar_augment,
    load_cifar10,
    load_fashion_mnist,
    load_mnist,
    random_crop,
    standardize,
)

LOADERS = {
    "mnist": load_mnist,
    "fashion-mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="lenet5", choices=sorted(zoo.MODELS))
    p.add_argument("--dataset", default="mnist", choices=sorted(LOADERS))
    p.add_argument("--data-dir", help="folder with the files (default: $CNNUMPY_DATA)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--optimizer", default="sgd", choices=sorted(optimizers.OPTIMIZERS))
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9, help="SGD only")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--schedule", default="cosine", choices=("none", "cosine"))
    p.add_argument("--augment", action="store_true", help="random crops (+ flips)")
    p.add_argument("--limit", type=int, help="first N training images only")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def load(args):
    """(x_train, y_train, x_test, y_test, source) standardised with training stats."""
    loader = LOADERS[args.dataset]
    with warnings.catch_warnings():
        # The shared CIFAR-10 copy went through JPEG: its md5s differ, by design.
        warnings.simplefilter("ignore", ChecksumWarning)
        train = loader("train", path=args.data_dir, download=False)
        test = loader("test", path=args.data_dir, download=False)
    x_train, y_train = train.x[: args.limit], train.y[: args.limit]
    x_train, x_test, _ = standardize(x_train, test.x)
    return x_train, y_train, x_test, test.y, train.source


def build(args, input_shape, epochs: int):
    cnnumpy.seed(args.seed)
    model = zoo.get(args.model, input_shape=input_shape, num_classes=10)
    options = {"lr": args.lr, "weight_decay": args.weight_decay}
    if args.optimizer == "sgd":
        options["momentum"] = args.momentum
    model.compile(optimizers.get(args.optimizer, **options), loss="cross_entropy")
    hooks = []
    if args.schedule == "cosine":
        hooks.append(callbacks.LearningRateScheduler(schedules.Cosine(args.lr, epochs)))
    return model, hooks


def augmenter(channels: int):
    if channels == 3:
        return cifar_augment
    return lambda xb, rng: random_crop(xb, padding=2, rng=rng)


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    x_train, y_train, x_test, y_test, source = load(args)
    loaded = time.perf_counter()
    model, hooks = build(args, x_train.shape[1:], args.epochs)
    print(
        f"{args.model} ({model.count_params():,} parameters) on {args.dataset}: "
        f"{len(x_train):,} train, {len(x_test):,} test images from {source}",
        flush=True,
    )
    model.fit(
        x_train,
        y_train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        callbacks=hooks,
        verbose=2,
        seed=args.seed,
        augment=augmenter(x_train.shape[1]) if args.augment else None,
    )
    trained = time.perf_counter()
    result = model.evaluate(x_test, y_test)
    done = time.perf_counter()
    summary = {
        "model": args.model,
        "dataset": args.dataset,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "schedule": args.schedule,
        "augment": args.augment,
        "seed": args.seed,
        "train_images": len(x_train),
        "test_accuracy": round(result["accuracy"], 4),
        "test_loss": round(result["loss"], 4),
        "load_s": round(loaded - start, 1),
        "train_s": round(trained - loaded, 1),
        "total_s": round(done - start, 1),
    }
    print(
        f"test accuracy {result['accuracy']:.2%}  (loss {result['loss']:.4f}); "
        f"training {trained - loaded:.0f} s, total {done - start:.0f} s "
        f"({np.dtype(model.dtype).name}, numpy {np.__version__})"
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
