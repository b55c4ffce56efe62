"""Seed 001 (Melpy's report): loops against NumPy, the index-array im2col, and the
MNIST and CIFAR-10 trainings of its Tables 2 to 4.

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
from cnnumpy.textbook.im2col import col2im, im2col
from cnnumpy.textbook.im2col_indices import col2im_indices, im2col_indices
from cnnumpy.textbook.padding import output_size, pad2d

ROOT = Path(__file__).resolve().parents[2]


def hms(seconds: float) -> str:
    """``1702`` -> ``"28 min 22 s"``, the notes' way of writing a duration."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    s = round(seconds)
    h, m, s = s // 3600, s % 3600 // 60, s % 60
    return f"{h} h {m:02d} min {s:02d} s" if h else f"{m} min {s:02d} s"


def best_time(fn, budget: float = 0.2, max_calls: int = 50) -> float:
    """The fastest of repeated calls of ``fn``; calls again until ``budget`` seconds
    are spent (a call longer than the budget runs once)."""
    best, spent, calls = float("inf"), 0.0, 0
    while calls == 0 or (spent < budget and calls < max_calls):
        started = time.perf_counter()
        fn()
        took = time.perf_counter() - started
        best, spent, calls = min(best, took), spent + took, calls + 1
    return best


# -- Table 1: a matrix product with three Python loops, against NumPy's ------------
# (rows of A, inner size, columns of B), the notes' loops and NumPy seconds, ratio
TABLE1 = (
    ((100, 10, 100), 0.029, 0.00046, 63.04),
    ((1000, 100, 1000), 10.65, 0.07, 152.14),
    ((1000, 1000, 1000), 124.64, 0.6, 207.73),
)


def matmul_loops(A: list, B: list) -> list:
    """``C = A B`` on lists of lists, one multiply-add per statement: the notes'
    "méthode naïve", every element visited by the interpreter."""
    n, m, p = len(A), len(B), len(B[0])
    C = [[0.0] * p for _ in range(n)]
    for i in range(n):
        for j in range(p):
            total = 0.0
            for k in range(m):
                total += A[i][k] * B[k][j]
            C[i][j] = total
    return C


def time_matmul(shape: tuple[int, int, int], rows: int | None, rng) -> dict:
    """Loops and NumPy on ``A (n, m) @ B (m, p)``, float64.

    With ``rows``, the loops compute only the first ``rows`` rows of the product and
    their time is scaled by ``n / rows``: every row of C costs the same ``m * p``
    multiply-adds. The rows computed are checked against NumPy's.
    """
    n, m, p = shape
    A, B = rng.standard_normal((n, m)), rng.standard_normal((m, p))
    rows = n if rows is None else min(rows, n)
    A_part, B_list = A[:rows].tolist(), B.tolist()
    products: list = []
    loop_s = best_time(lambda: products.append(matmul_loops(A_part, B_list)))
    np.testing.assert_allclose(products[-1], A[:rows] @ B, rtol=1e-9, atol=1e-9)
    loops_s = loop_s * n / rows
    numpy_s = best_time(lambda: A @ B)
    return {
        "shape": list(shape),
        "rows_timed": rows,
        "loops_s": loops_s,
        "numpy_s": numpy_s,
        "speedup": loops_s / numpy_s,
    }


def table1(quick: bool, plan: tuple = ()) -> dict:
    """Table 1 row by row; ``plan`` gives the rows the loops time at each size
    (``None``: all), by default all but 50 of the largest's 1,000 (--quick: the two
    small sizes, 20 rows of the middle one)."""
    plan = plan or ((None, 20) if quick else (None, None, 50))
    rng = np.random.default_rng(0)
    rows = []
    for (shape, t1, t2, ratio), timed in zip(TABLE1, plan, strict=False):
        r = time_matmul(shape, timed, rng)
        n, m, p = shape
        scaled = ""
        if r["rows_timed"] != n:
            scaled = f" (loops: {r['rows_timed']} of {n} rows, times {n / timed:g})"
        print(
            f"   ({n}, {m}) . ({m}, {p}): loops {r['loops_s']:.4g} s, NumPy "
            f"{r['numpy_s']:.3g} s, {r['speedup']:,.0f}x{scaled}; the notes "
            f"{t1:g} / {t2:g} = {ratio:g}x",
            flush=True,
        )
        rows.append(r)
    scaled_sizes = [
        f"{r['rows_timed']} of {r['shape'][0]}"
        for r in rows
        if r["rows_timed"] != r["shape"][0]
    ]
    differences = (
        "NumPy's product in float64 on this machine's BLAS, threads and all (the "
        "notes give neither); loops on Python lists, timed on the first rows of A "
        f"and scaled by the row count where said ({', '.join(scaled_sizes)} rows)"
    )
    if quick:
        differences += "; --quick leaves out 1000x1000x1000"
    return {
        "cnnumpy": "NumPy "
        + ", ".join(f"{r['speedup']:,.0f}x" for r in rows)
        + " faster (loops "
        + ", ".join(f"{r['loops_s']:.3g}" for r in rows)
        + " s; NumPy "
        + ", ".join(f"{r['numpy_s']:.2g}" for r in rows)
        + " s)",
        "differences": differences,
        "rows": rows,
    }


# -- The notes' index-array im2col, timed against the book's and the loops --------
def im2col_loops(xp: np.ndarray, kernel, stride) -> np.ndarray:
    """The column matrix filled one element per statement (the reference)."""
    N, C, Hp, Wp = xp.shape
    (KH, KW), (SH, SW) = kernel, stride
    H_out, W_out = output_size(Hp, KH, SH), output_size(Wp, KW, SW)
    cols = np.empty((C * KH * KW, N * H_out * W_out), dtype=xp.dtype)
    for n in range(N):
        for ho in range(H_out):
            for wo in range(W_out):
                column = (n * H_out + ho) * W_out + wo
                for c in range(C):
                    for kh in range(KH):
                        for kw in range(KW):
                            row = (c * KH + kh) * KW + kw
                            cols[row, column] = xp[n, c, ho * SH + kh, wo * SW + kw]
    return cols


def col2im_loops(cols: np.ndarray, xp_shape, kernel, stride) -> np.ndarray:
    """Every entry of the column matrix added back to its pixel, one at a time."""
    N, C, Hp, Wp = xp_shape
    (KH, KW), (SH, SW) = kernel, stride
    H_out, W_out = output_size(Hp, KH, SH), output_size(Wp, KW, SW)
    xp = np.zeros(xp_shape, dtype=cols.dtype)
    for n in range(N):
        for ho in range(H_out):
            for wo in range(W_out):
                column = (n * H_out + ho) * W_out + wo
                for c in range(C):
                    for kh in range(KH):
                        for kw in range(KW):
                            row = (c * KH + kh) * KW + kw
                            xp[n, c, ho * SH + kh, wo * SW + kw] += cols[row, column]
    return xp


# The inputs of melpy_mnist's two convolutions (2x2, "same": padded by 0 above and
# left, 1 below and right), at the report's batch of 256.
IM2COL_CASES = (
    ("melpy_mnist conv 1", (256, 1, 28, 28)),
    ("melpy_mnist conv 2", (256, 16, 14, 14)),
)
WAYS = (  # name, im2col, col2im
    ("loops", im2col_loops, col2im_loops),
    ("index arrays (the notes)", im2col_indices, col2im_indices),
    ("strided view (the book)", im2col, col2im),
)


def time_im2col(shape: tuple[int, ...], kernel=(2, 2), stride=(1, 1)) -> dict:
    """im2col and col2im of ``shape`` (float32, "same" padding for 2x2) three ways;
    the three results are checked equal before they are timed."""
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    xp = pad2d(x, ((0, 1), (0, 1)))
    cols = {name: fwd(xp, kernel, stride) for name, fwd, _ in WAYS}
    back = {name: bwd(cols[name], xp.shape, kernel, stride) for name, _, bwd in WAYS}
    for name, _, _ in WAYS[1:]:
        np.testing.assert_array_equal(cols[name], cols["loops"])
        np.testing.assert_allclose(back[name], back["loops"], rtol=1e-6, atol=1e-6)
    seconds = {}
    for name, fwd, bwd in WAYS:
        c = cols[name]
        seconds[name] = (
            best_time(lambda f=fwd: f(xp, kernel, stride)),
            best_time(lambda b=bwd, c=c: b(c, xp.shape, kernel, stride)),
        )
    return seconds


def im2col_speed(quick: bool, batch: int | None = None) -> dict:
    """The three im2cols on melpy_mnist's conv inputs (--quick: a batch of 16)."""
    batch = batch or (16 if quick else 256)
    results, summary = {}, []
    for case, shape in IM2COL_CASES:
        shape = (batch, *shape[1:])
        seconds = time_im2col(shape)
        results[case] = {"shape": list(shape), **seconds}
        loops, index, book = (seconds[name] for name, _, _ in WAYS)
        for part, which in (("im2col", 0), ("col2im", 1)):
            print(
                f"   {case} {shape} {part}: loops {loops[which] * 1e3:.1f} ms, "
                f"index arrays {index[which] * 1e3:.2f} ms "
                f"({loops[which] / index[which]:,.0f}x the loops), strided view "
                f"{book[which] * 1e3:.2f} ms ({index[which] / book[which]:.1f}x the "
                "index arrays)",
                flush=True,
            )
        summary.append(
            f"{case} {'x'.join(map(str, shape))}: index arrays "
            f"{loops[0] / index[0]:,.0f}x / {loops[1] / index[1]:,.0f}x faster than "
            f"the loops (im2col / col2im), the strided view {index[0] / book[0]:.1f}x"
            f" / {index[1] / book[1]:.1f}x faster than the index arrays"
        )
    return {
        "cnnumpy": "; ".join(summary),
        "differences": "the notes time no im2col; the three give equal matrices "
        "(checked before timing), float32, best of repeated calls",
        "seconds": results,
    }


# -- Tables 2 to 4: Melpy's selected models, with its settings ---------------------
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
        "seed001_table1_matmul",
        "seed 001, 3 (Implémentation), Table 1",
        "three loops against NumPy's product: 0.029/0.00046 s = 63x at "
        "100x10·10x100, 10.65/0.07 s = 152x at 1000x100·100x1000, 124.64/0.6 s = "
        "208x at 1000x1000·1000x1000",
        table1,
        minutes=0.3,  # measured: 17 s (loops: 4.4 s at 10^8, 11 s on 50 rows of 10^9)
    ),
    Reproduction(
        "seed001_im2col_indices",
        "seed 001, 3.1 (La méthode Im2Col)",
        "im2col by index arrays (np.repeat / np.tile), col2im by np.add.at, to "
        "replace the loops; no time given",
        im2col_speed,
        minutes=0.2,  # measured: 9 s (mostly the loops on 256 x 16 x 14 x 14)
    ),
    Reproduction(
        "seed001_table2_mnist",
        "seed 001, 4.2, Table 2 model 3 and Table 4",
        "MNIST model 3 (806,394 parameters), Adam lr 1e-4, batch 256, 15 epochs: "
        "~98% validation accuracy, 1 min 53 s per epoch, 28 min 22 s (Keras: "
        "1 min 15 s)",
        lambda quick: melpy_table(quick, TABLE2),
        minutes=3.5,  # measured: 3 min 29 s, 97.94% (epochs of 7 to 20 s: a shared CPU)
    ),
    Reproduction(
        "seed001_table3_cifar",
        "seed 001, 4.2, Table 3 model 7 and Table 4",
        "CIFAR-10 model 7 (544,122 parameters), Adam lr 5e-5, batch 64, 50 epochs: "
        "~65% validation accuracy, 5 min 53 s per epoch, 4 h 54 min 52 s (Keras: "
        "10 min 43 s)",
        lambda quick: melpy_table(quick, TABLE3),
        # estimated, not run: 50 epochs of 25 s (a step of batch 64 takes 30 ms on an
        # idle machine; --quick measured 51 s per epoch on a loaded one)
        minutes=25,
    ),
]
