"""Seed 001 (Melpy's report): the MNIST and CIFAR-10 trainings of its Tables 2 to 4
(Table 1 and the index-array im2col: ``seed001_speed.py``).

The report ran on an Intel i5-12600K with 32 GB; the times printed here are this
machine's. The data are read from ``$CNNUMPY_DATA`` (else ``../shared/data`` beside
the repository); nothing is downloaded.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np
from reproduce import Reproduction

import cnnumpy
from cnnumpy import optimizers, zoo
from cnnumpy.callbacks import Callback
from cnnumpy.data import ChecksumWarning, load_cifar10, load_mnist

ROOT = Path(__file__).resolve().parents[2]


def hms(seconds: float) -> str:
    """``1702`` -> ``"28 min 22 s"``, the notes' way of writing a duration."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    s = round(seconds)
    h, m, s = s // 3600, s % 3600 // 60, s % 60
    return f"{h} h {m:02d} min {s:02d} s" if h else f"{m} min {s:02d} s"


def data_root() -> str | None:
    """``$CNNUMPY_DATA``, else ``../shared/data`` beside the repository if present."""
    shared = ROOT.parent / "shared" / "data"
    return os.environ.get("CNNUMPY_DATA") or (str(shared) if shared.is_dir() else None)


def melpy_standardize(x_train: np.ndarray, x_test: np.ndarray):
    """Melpy's preprocessing (4.2.1, and its examples' ``StandardScaler``): pixels
    divided by 255, then every pixel (feature) standardised with the training
    split's mean and standard deviation, ``(x - mean) / (std + 1e-5)``; float32."""
    N, D = len(x_train), int(np.prod(x_train.shape[1:]))
    total, total_sq = np.zeros(D), np.zeros(D)
    for start in range(0, N, 10_000):  # in float64, a chunk at a time
        chunk = x_train[start : start + 10_000].reshape(-1, D) / 255.0
        total += chunk.sum(axis=0)
        total_sq += (chunk * chunk).sum(axis=0)
    mean = total / N
    std = np.sqrt(np.maximum(total_sq / N - mean * mean, 0.0)) + 1e-5

    def scale(x):
        flat = x.reshape(len(x), D) / np.float32(255) - mean.astype(np.float32)
        return (flat / std.astype(np.float32)).reshape(x.shape).astype(np.float32)

    return scale(x_train), scale(x_test)


def load(dataset: str, train: int | None, test: int | None):
    """(x, y, x_test, y_test): the first ``train`` / ``test`` examples, Melpy-scaled."""
    loader = {"mnist": load_mnist, "cifar10": load_cifar10}[dataset]
    root = data_root()
    with warnings.catch_warnings():
        # the shared CIFAR-10 copy went through JPEG: its md5s differ, by design
        warnings.simplefilter("ignore", ChecksumWarning)
        tr = loader("train", path=root, download=False)
        te = loader("test", path=root, download=False)
    x, x_test = melpy_standardize(tr.x[:train], te.x[:test])
    return x, tr.y[:train], x_test, te.y[:test]


class EpochClock(Callback):
    """Seconds of each epoch's training passes and of its test pass, printed."""

    def __init__(self) -> None:
        self.train: list[float] = []
        self.test: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = self.trained = time.perf_counter()

    def on_batch_end(self, batch, logs=None):
        self.trained = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.train.append(self.trained - self.started)
        self.test.append(time.perf_counter() - self.trained)
        print(
            f"   epoch {epoch + 1}: loss {logs['loss']:.4f}, test accuracy "
            f"{logs['val_accuracy']:.2%}; {self.train[-1]:.1f} s training + "
            f"{self.test[-1]:.1f} s testing",
            flush=True,
        )


def train_melpy(name: str, data, epochs: int, batch_size: int, lr: float) -> dict:
    """Build zoo model ``name``, train it with Adam(lr) on ``data``, testing after
    every epoch as Melpy does; the model, its history and the clock."""
    x, y, x_test, y_test = data
    cnnumpy.seed(0)
    model = zoo.get(name)
    model.compile(
        optimizer=optimizers.Adam(lr=lr), loss="cross_entropy", metrics=["accuracy"]
    )
    clock = EpochClock()
    history = model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=(x_test, y_test),
        callbacks=[clock],
        verbose=0,
        seed=0,
    )
    return {"model": model, "history": history.history, "clock": clock}


def full_epoch_seconds(clock: EpochClock, train_n, test_n, full_train, full_test):
    """One full epoch's seconds, each part scaled from the examples it ran on."""
    train_s = np.mean(clock.train) * full_train / train_n
    return train_s + np.mean(clock.test) * full_test / test_n


def melpy_table(quick: bool, spec: dict, data=None) -> dict:
    """Train Melpy's selected model for ``spec`` (Table 2 or 3); print and return the
    accuracy, the seconds per epoch and the whole run's, beside Melpy's and Keras's.

    ``data`` = (x, y, x_test, y_test) replaces the data set (the tests' small runs).
    """
    full_train, full_test = spec["sizes"]
    if data is None:
        data = load(spec["dataset"], *(spec["quick_sizes"] if quick else (None, None)))
    train_n, test_n = len(data[0]), len(data[2])
    epochs = 1 if quick else spec["epochs"]
    print(
        f"   {spec['model']} on {train_n:,} {spec['dataset']} images, Adam lr "
        f"{spec['lr']:g}, batch {spec['batch']}, {epochs} epoch(s); tested on "
        f"{test_n:,} after each",
        flush=True,
    )
    run = train_melpy(spec["model"], data, epochs, spec["batch"], spec["lr"])
    clock, history = run["clock"], run["history"]
    epoch_s = full_epoch_seconds(clock, train_n, test_n, full_train, full_test)
    measured = epochs == spec["epochs"] and (train_n, test_n) == spec["sizes"]
    if measured:
        total_s, how = sum(clock.train) + sum(clock.test), "measured"
    else:
        total_s, how = epoch_s * spec["epochs"], f"estimated, {spec['epochs']} x 1"
    accuracy = history["val_accuracy"][-1]
    melpy = spec["melpy_seconds"]
    differences = spec["differences"]
    if not measured:
        differences += (
            f"; a shortened run ({epochs} epoch on {train_n:,} training and "
            f"{test_n:,} test images; its times scaled to the full sets), so its "
            "accuracy is not the notes' figure"
        )
    return {
        "cnnumpy": f"{accuracy:.2%} test accuracy after {epochs} epoch(s) on "
        f"{train_n:,} images; {hms(epoch_s)} per full epoch, {hms(total_s)} for "
        f"{spec['epochs']} ({how.replace(' x 1', ' x one epoch')}): "
        f"{melpy / total_s:.0f}x faster than Melpy's {hms(melpy)}; Keras "
        f"{hms(spec['keras_seconds'])}",
        "differences": differences,
        "accuracy": accuracy,
        "parameters": run["model"].count_params(),
        "seconds_per_epoch": epoch_s,
        "seconds_total": total_s,
        "epoch_seconds": {"train": clock.train, "test": clock.test},
        "total_is": "measured" if measured else "estimated",
        "loss": history["loss"],
        "settings": {
            "model": spec["model"],
            "epochs": epochs,
            "batch": spec["batch"],
            "lr": spec["lr"],
            "train": train_n,
            "test": test_n,
        },
    }


DIFFERENCES = (
    "the report gives no initialisation and no seed: cnnumpy's zoo (He) "
    "initialisation, seeded; cross-entropy on logits (Melpy: Softmax, then "
    "categorical cross-entropy on one-hot labels, the same gradient); Melpy's "
    "per-pixel standardisation kept; an epoch's time includes the test pass"
)
TABLE2 = {  # seed 001, Table 2 model 3 and Table 4
    "model": "melpy_mnist",
    "dataset": "mnist",
    "epochs": 15,
    "batch": 256,
    "lr": 1e-4,
    "sizes": (60_000, 10_000),
    "quick_sizes": (10_000, 2_000),
    "melpy_seconds": 28 * 60 + 22,
    "keras_seconds": 60 + 15,
    "differences": DIFFERENCES,
}
TABLE3 = {  # seed 001, Table 3 model 7 and Table 4
    "model": "melpy_cifar",
    "dataset": "cifar10",
    "epochs": 50,
    "batch": 64,
    "lr": 5e-5,
    "sizes": (50_000, 10_000),
    "quick_sizes": (5_000, 1_000),
    "melpy_seconds": 4 * 3600 + 54 * 60 + 52,
    "keras_seconds": 10 * 60 + 43,
    "differences": DIFFERENCES + "; the shared CIFAR-10 went through JPEG "
    "(2-3 points of accuracy lower, its README says)",
}

REPRODUCTIONS = [
    Reproduction(
        "seed001_table2_mnist",
        "seed 001, 4.2, Table 2 model 3 and Table 4",
        "MNIST model 3 (806,394 parameters), Adam lr 1e-4, batch 256, 15 epochs: "
        "~98% validation accuracy, 1 min 53 s per epoch, 28 min 22 s (Keras: "
        "1 min 15 s)",
        lambda quick: melpy_table(quick, TABLE2),
        minutes=2,  # measured on a quiet machine: 1 min 46 s, 97.94%
    ),
    Reproduction(
        "seed001_table3_cifar",
        "seed 001, 4.2, Table 3 model 7 and Table 4",
        "CIFAR-10 model 7 (544,122 parameters), Adam lr 5e-5, batch 64, 50 epochs: "
        "~65% validation accuracy, 5 min 53 s per epoch, 4 h 54 min 52 s (Keras: "
        "10 min 43 s)",
        lambda quick: melpy_table(quick, TABLE3),
        minutes=14,  # measured on a quiet machine: 13 min 45 s, 61.19%
    ),
]
