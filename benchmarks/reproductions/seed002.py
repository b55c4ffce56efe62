"""Seed 002's experiments: the XOR network, the toy three-convolution network and the
first CNN on MNIST, each with the notes' own setup.

What the notes' code does, and how cnnumpy matches it:

- Initialisation: ``FCLayer`` and ``ConvLayer`` draw weights *and* biases as
  ``np.random.rand(...) - 0.5``: cnnumpy's ``uniform_half`` for both. The notes never
  seed NumPy, so their exact numbers cannot be matched; each experiment runs several
  seeds and reports the spread beside the notes' one run.
- Loss: ``mse = np.mean((t - y)**2)``, ``mse_prime = 2 (y - t) / y.size``, on one
  example at a time. cnnumpy's ``"mse"`` is the same mean over all elements with the
  same gradient 2 (y - t) / n; with ``batch_size=1``, n is one example's size, so the
  gradient and the learning rate are the notes' exactly (no rescaling of lr is needed:
  the notes' E is a mean, not ½Σ).
- Training: ``Network.fit`` updates after every example, in order, and prints the mean
  over the epoch of each example's error taken before its update; ``fit(batch_size=1,
  shuffle=False)`` logs exactly that as ``history["loss"]``.
- Arithmetic: ``np.random.rand`` gives float64 weights, so the notes compute in float64;
  the models here are converted with ``astype(np.float64)``.
- ``ConvLayer.backward_propagation`` writes ``dBias[k] = layer_depth * sum(dE/dY_k)``:
  the bias gradient is multiplied by the number of filters. For one filter that is the
  true gradient; the toy network's last layer has two, so its biases step at twice
  the rate. cnnumpy reproduces it with a per-parameter learning rate
  (``groups={("conv3", "b"): {"lr": 2 * lr}}``). (Its forward pass also adds the bias
  once per input channel; every ConvLayer here has one input channel, so that is the
  usual single bias.)

``tests/training/test_reproductions_seed002.py`` runs a line-by-line NumPy transcription
of the notes' classes beside these models and checks they agree step for step.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from reproduce import Reproduction

import cnnumpy
from cnnumpy.data import DatasetError, load_mnist, load_mnist_sample
from cnnumpy.layers import Conv2D, Dense, Flatten, Tanh
from cnnumpy.optimizers import SGD, Optimizer
from examples.xor import XOR_X, XOR_Y, xor_network

NOTES_INIT = "uniform_half"  # np.random.rand(...) - 0.5, for weights and biases


def spread(values) -> str:
    """``median m (range lo to hi)``, the way each experiment reports its seeds."""
    values = list(values)
    return (
        f"median {statistics.median(values):.6f} "
        f"(range {min(values):.6f} to {max(values):.6f})"
    )


def notes_compile(model, lr_or_optimizer) -> cnnumpy.Sequential:
    """The notes' ``net.use(mse, mse_prime)``, in float64, plain SGD at ``lr``."""
    optimizer = lr_or_optimizer
    if not isinstance(optimizer, Optimizer):
        optimizer = SGD(lr=lr_or_optimizer)
    model.astype(np.float64)
    model.compile(optimizer=optimizer, loss="mse", metrics=[])
    return model


def notes_epochs(model, x, t, epochs: int) -> list[float]:
    """The notes' ``net.fit(x, t, epochs, learning_rate)`` on a compiled model.

    One example at a time, in order; returns the notes' printed error for each epoch.
    """
    history = model.fit(x, t, epochs=epochs, batch_size=1, shuffle=False, verbose=0)
    return [float(e) for e in history["loss"]]


def notes_fit(model, x, t, epochs: int, lr_or_optimizer) -> list[float]:
    """``notes_compile`` then ``notes_epochs``: the notes' use and fit."""
    return notes_epochs(notes_compile(model, lr_or_optimizer), x, t, epochs)


# -- XOR (seed 002, XI "Construire un réseau de neurone") -----------------------------

XOR_NOTES = {
    "error_epoch1": 0.322980,
    "error_epoch1000": 0.000242,
    "outputs": [0.00077435, 0.97760742, 0.97847793, -0.00131305],
}
XOR_LR, XOR_EPOCHS = 0.1, 1000


def train_xor(seed: int, epochs: int = XOR_EPOCHS):
    """The notes' XOR run from ``cnnumpy.seed(seed)``: (model, errors per epoch)."""
    cnnumpy.seed(seed)
    model = xor_network(NOTES_INIT, NOTES_INIT)
    errors = notes_fit(model, XOR_X.astype(np.float64), XOR_Y, epochs, XOR_LR)
    return model, errors


def _solves(outputs: np.ndarray) -> bool:
    """Every one of the four outputs within 0.1 of its XOR target."""
    return bool(np.all(np.abs(outputs - XOR_Y.ravel()) < 0.1))


def xor(quick: bool, seeds: int | None = None) -> dict:
    """The XOR network over several seeds, beside the notes' single run."""
    seeds = seeds or (4 if quick else 10)
    print(
        f"   2-3-1 tanh, uniform_half, MSE, lr {XOR_LR}, {XOR_EPOCHS} epochs of 4 "
        f"examples one at a time, float64; seeds 0..{seeds - 1}"
    )
    first, last, solved, outputs = [], [], 0, []
    for seed in range(seeds):
        model, errors = train_xor(seed)
        out = model.predict(XOR_X.astype(np.float64)).ravel()
        ok = _solves(out)
        solved += ok
        outputs.append(out)
        first.append(errors[0])
        last.append(errors[-1])
        shown = ", ".join(f"{o:+.5f}" for o in out)
        print(
            f"   seed {seed}: error epoch 1 {errors[0]:.6f}, epoch {XOR_EPOCHS} "
            f"{errors[-1]:.6f}; outputs {shown}" + ("" if ok else "  (not solved)")
        )
    stalled = ""
    if solved < seeds:
        ends = [(_solves(out), e) for out, e in zip(outputs, last, strict=True)]
        stuck = [e for ok, e in ends if not ok]
        stalled = (
            f"; the other {len(stuck)} stall in a local minimum, error "
            f"{spread(stuck)}; the solved ones end at "
            f"{spread([e for ok, e in ends if ok] or [float('nan')])}"
        )
    notes_out = ", ".join(f"{o:+.5f}" for o in XOR_NOTES["outputs"])
    print(f"   the notes (one unseeded run): 0.322980, 0.000242; outputs {notes_out}")
    return {
        "cnnumpy": f"over {seeds} seeds, error at epoch 1 {spread(first)}, at epoch "
        f"{XOR_EPOCHS} {spread(last)}; {solved}/{seeds} seeds solve XOR (every "
        "output within 0.1 of its target)" + stalled,
        "differences": "the notes' init is unseeded np.random.rand - 0.5, so their "
        "exact numbers cannot be matched: cnnumpy draws the same law from "
        "cnnumpy.seed(0..n-1); the loss, its gradient, lr, order and float64 "
        "arithmetic are the notes' own (checked step for step by the tests)",
        "settings": {"lr": XOR_LR, "epochs": XOR_EPOCHS, "batch_size": 1},
        "seeds": seeds,
        "error_epoch1": first,
        "error_last": last,
        "solved": solved,
        "outputs": [[float(o) for o in out] for out in outputs],
    }


# -- the toy network of three convolutions (seed 002, VII "exemple") ------------------

TOY_LR, TOY_EPOCHS = 0.3, 1000


def toy_convs_network() -> cnnumpy.Sequential:
    """ConvLayer((10,10,1),(3,3),1), ((8,8,1),(3,3),1), ((6,6,1),(3,3),2), each tanh."""
    inits = {"kernel_initializer": NOTES_INIT, "bias_initializer": NOTES_INIT}
    return cnnumpy.Sequential(
        [
            Conv2D(1, 3, name="conv1", **inits),
            Tanh(),
            Conv2D(1, 3, name="conv2", **inits),
            Tanh(),
            Conv2D(2, 3, name="conv3", **inits),
            Tanh(),
        ],
        input_shape=(1, 10, 10),
        name="seed002_toy_convs",
    )


def toy_convs_optimizer(lr: float = TOY_LR) -> SGD:
    """SGD at lr, conv3's biases at 2 lr: the notes' ``dBias = layer_depth * ...``."""
    return SGD(lr=lr, groups={("conv3", "b"): {"lr": 2 * lr}})


def train_toy_convs(seed: int, epochs: int = TOY_EPOCHS):
    """``x = rand(10,10,1)``, ``t = rand(4,4,2)`` and the weights from ``seed``."""
    data = np.random.default_rng(seed)
    x = data.random((1, 1, 10, 10))  # the notes' (10, 10, 1), channels first
    t = data.random((1, 2, 4, 4))  # the notes' (4, 4, 2)
    cnnumpy.seed(seed)
    model = toy_convs_network()
    return model, notes_fit(model, x, t, epochs, toy_convs_optimizer())


def toy_convs(quick: bool, seeds: int | None = None) -> dict:
    """The toy network's error every 200 epochs, median and range over seeds."""
    seeds = seeds or (5 if quick else 10)
    print(
        f"   10x10x1 -> conv 1@3x3 -> conv 1@3x3 -> conv 2@3x3 (tanh each) -> 4x4x2, "
        f"MSE against rand(4,4,2), lr {TOY_LR}, {TOY_EPOCHS} epochs; seeds "
        f"0..{seeds - 1}"
    )
    runs = [train_toy_convs(seed)[1] for seed in range(seeds)]
    marks = [1, 200, 400, 600, 800, 1000]
    for epoch in marks:
        errors = spread(r[epoch - 1] for r in runs)
        print(f"   epoch {epoch:4d}/{TOY_EPOCHS}  error {errors}")
    first = [r[0] for r in runs]
    last = [r[-1] for r in runs]
    return {
        "cnnumpy": f"over {seeds} seeds, error at epoch 1 {spread(first)}, at epoch "
        f"{TOY_EPOCHS} {spread(last)}",
        "differences": "the notes print no figure for this run (their fit prints the "
        "error every epoch, but the page shows neither it nor the predicted and "
        "expected arrays), so there is nothing to compare; their input, target and "
        "weights are unseeded np.random.rand draws; their conv3 bias gradient is "
        "doubled (dBias = layer_depth * sum), reproduced as an lr of 0.6 for conv3's "
        "biases",
        "settings": {"lr": TOY_LR, "epochs": TOY_EPOCHS, "conv3_bias_lr": 2 * TOY_LR},
        "seeds": seeds,
        "error_by_epoch": {str(e): [r[e - 1] for r in runs] for e in marks},
        "error_epoch1": first,
        "error_last": last,
    }


# -- the first CNN on MNIST (seed 002, XIII "Le deep learning") -----------------------

CNN_LR, CNN_EPOCHS, CNN_TRAIN = 0.1, 100, 1000
# one class for every digit scores about 10%; 15% is clearly better than that
PLATEAU_EXIT = 0.15


def first_cnn_network() -> cnnumpy.Sequential:
    """ConvLayer((28,28,1), (3,3), 1), tanh, Flatten, FC 676-100-10, each tanh."""
    inits = {"kernel_initializer": NOTES_INIT, "bias_initializer": NOTES_INIT}
    return cnnumpy.Sequential(
        [
            Conv2D(1, 3, name="conv", **inits),
            Tanh(),
            Flatten(),
            Dense(100, name="fc1", **inits),
            Tanh(),
            Dense(10, name="fc2", **inits),
            Tanh(),
        ],
        input_shape=(1, 28, 28),
        name="seed002_first_cnn",
    )


def mnist_split(train: int) -> tuple:
    """(x_train, t_train one-hot, x_test, y_test, where): MNIST, else the 5k sample."""
    try:
        tr = load_mnist("train", dtype="float64")
        te = load_mnist("test", dtype="float64")
        where = "MNIST (the notes' keras mnist.load_data, same files)"
        x_tr, y_tr, x_te, y_te = tr.x[:train], tr.y[:train], te.x, te.y
    except DatasetError:
        sample = load_mnist_sample(dtype="float64")
        where = (
            f"MNIST not found (set CNNUMPY_DATA): the {len(sample.x)}-digit sample, "
            f"first {train} to train, the rest to test"
        )
        x_tr, y_tr = sample.x[:train], sample.y[:train]
        x_te, y_te = sample.x[train:], sample.y[train:]
    return x_tr, np.eye(10)[y_tr], x_te, y_te, where


def accuracy_on(model, x_test, y_test) -> float:
    """Fraction of test digits whose largest tanh output is the right class."""
    return float(np.mean(model.predict(x_test).argmax(axis=1) == y_test))


def saturated_fraction(model, x) -> float:
    """Fraction of the hidden tanh outputs (FC 100) with |a| > 0.99 on images ``x``."""
    hidden = x
    for layer in model.layers[:5]:  # conv, tanh, flatten, fc1, tanh
        hidden = layer.forward(hidden)
    return float(np.mean(np.abs(hidden) > 0.99))


def plateau_end(accuracy: dict[int, float]) -> int | None:
    """The first checkpoint epoch whose test accuracy is off the 10% plateau."""
    return next((e for e, a in accuracy.items() if a >= PLATEAU_EXIT), None)


def train_first_cnn(seed: int, data: tuple, checkpoints: list[int]):
    """The notes' fit from ``seed``, with the test accuracy at each checkpoint epoch.

    Returns (model, errors per epoch, {epoch: test accuracy}, the fraction of hidden
    units saturated at initialisation on the first 200 training images).
    """
    x_tr, t_tr, x_te, y_te = data[:4]
    cnnumpy.seed(seed)
    model = notes_compile(first_cnn_network(), CNN_LR)
    saturated = saturated_fraction(model, x_tr[:200])
    errors, accuracy, done = [], {}, 0
    for epoch in checkpoints:
        errors += notes_epochs(model, x_tr, t_tr, epoch - done)
        accuracy[epoch] = accuracy_on(model, x_te, y_te)
        done = epoch
    return model, errors, accuracy, saturated


def first_cnn(quick: bool, seeds: int | None = None, train: int = CNN_TRAIN) -> dict:
    """The first CNN, the notes' 1,000 images one at a time, over a few seeds."""
    seeds = seeds or (2 if quick else 3)
    epochs = 10 if quick else CNN_EPOCHS
    checkpoints = [e for e in (1, 2, 5, 10, 20, 50, 100) if e < epochs] + [epochs]
    data = mnist_split(train)
    x_te, y_te = data[2], data[3]
    print(
        f"   conv 1@3x3 tanh -> 676 -> FC 100 tanh -> FC 10 tanh, uniform_half, MSE "
        f"on one-hot, lr {CNN_LR}, {len(data[0])} images one at a time, {epochs} "
        f"epochs, float64; seeds 0..{seeds - 1}; {data[4]}"
    )
    final, first, last, seconds, curves, saturation = [], [], [], [], [], []
    for seed in range(seeds):
        started = time.perf_counter()
        model, errors, accuracy, saturated = train_first_cnn(seed, data, checkpoints)
        seconds.append(time.perf_counter() - started)
        saturation.append(saturated)
        final.append(accuracy[epochs])
        curves.append(accuracy)
        first.append(errors[0])
        last.append(errors[-1])
        curve = ", ".join(f"{e}: {a:.3f}" for e, a in accuracy.items())
        digits = model.predict(x_te[:3]).argmax(axis=1).tolist()
        print(
            f"   seed {seed}: {saturated:.0%} of hidden units saturated at init; error "
            f"epoch 1 {errors[0]:.4f}, epoch {epochs} {errors[-1]:.4f}; test "
            f"accuracy by epoch {{{curve}}} on {len(y_te)}; the notes' 3 test digits "
            f"-> {digits} (true {y_te[:3].tolist()})"
        )
    # seconds include the test evaluations (~0.1 s each), negligible beside training
    per_1000 = statistics.median(seconds) / epochs * 1000 / len(data[0])
    full = per_1000 * CNN_EPOCHS * CNN_TRAIN / 1000
    print(
        f"   {per_1000:.2f} s per 1,000 examples: the notes' {CNN_EPOCHS} epochs of "
        f"{CNN_TRAIN:,} take about {full:.0f} s per seed here"
    )
    exits = [plateau_end(c) for c in curves]
    left = sorted(e for e in exits if e is not None)
    plateau = f"{len(left)}/{seeds} seeds left the 10% plateau"
    if left:
        upto = f" to {left[-1]}" if left[-1] != left[0] else ""
        plateau += f" (by epoch {left[0]}{upto})"
    return {
        "cnnumpy": f"after {epochs} epochs over {seeds} seeds, test accuracy "
        f"{spread(final)}; {plateau}; training error epoch 1 {spread(first)}, epoch "
        f"{epochs} {spread(last)}",
        "differences": "the notes report no accuracy (they print the outputs for 3 "
        "test images, not shown) and their init is unseeded; with rand - 0.5 on 676 "
        f"inputs {min(saturation):.0%} to {max(saturation):.0%} of the hidden tanh "
        "units start saturated, and training first sits on a plateau where nearly "
        "every digit gets the same class (about 10% accuracy) while the error falls"
        + ("" if data[4].startswith("MNIST (") else "; " + data[4]),
        "settings": {"lr": CNN_LR, "epochs": epochs, "train": len(data[0])},
        "seeds": seeds,
        "accuracy": final,
        "plateau_left_by_epoch": exits,
        "saturated_at_init": saturation,
        "accuracy_by_epoch": {str(e): [c[e] for c in curves] for e in checkpoints},
        "error_epoch1": first,
        "error_last": last,
        "seconds_per_1000_examples": round(per_1000, 3),
        "full_run_seconds_per_seed": round(full, 1),
    }


REPRODUCTIONS = [
    Reproduction(
        "seed002_xor",
        "seed 002, XI: XOR, 2-3-1 tanh, MSE, lr 0.1, 1000 epochs",
        "error 0.322980 at epoch 1, 0.000242 at epoch 1000; outputs 0.00077, "
        "0.97761, 0.97848, -0.00131 (one unseeded run)",
        xor,
        minutes=0.15,  # measured: 10 seeds in 6 to 9 s
    ),
    Reproduction(
        "seed002_toy_convs",
        "seed 002, VII: three ConvLayers 3x3 (1, 1, 2 filters), tanh, 10x10x1 -> "
        "4x4x2, lr 0.3, 1000 epochs",
        "no printout shown (the code prints the error every epoch)",
        toy_convs,
        minutes=0.12,  # measured: 10 seeds in 7 s
    ),
    Reproduction(
        "seed002_first_cnn",
        "seed 002, XIII: conv 1@3x3 tanh, FC 676-100-10 tanh, MSE, lr 0.1, "
        "1000 MNIST images one at a time, 100 epochs",
        "no accuracy reported (outputs for 3 test images, not shown)",
        first_cnn,
        minutes=3.2,  # measured: 3 seeds x 100 epochs in 194 s (0.65 s / 1,000)
    ),
]
