"""Seed 003's LeNet-1 and LeNet-5, trained on MNIST: test error beside LeCun's.

The notes (slides 166-169) give the layers only: a 28x28x1 input, 5x5 "valid"
convolutions followed by tanh (4 and 12 filters for LeNet-1, 6 and 16 for LeNet-5),
two average poolings, then one dense layer (LeNet-1) or three (120, 84, 10; LeNet-5).
They print no error rate; the figures set beside cnnumpy's are those of the paper the
notes cite for LeNet-5, LeCun, Bottou, Bengio & Haffner (1998), Fig. 9: 1.7 % test
error for LeNet-1 and 0.95 % for LeNet-5 on MNIST (0.8 % with distorted training
images, not tried here).

What is the notes' and what is cnnumpy's: the networks are ``zoo.lenet1`` and
``zoo.lenet5`` exactly as the notes draw them (tanh, average pooling, valid
convolutions, a plain dense output). The training is not in the notes; it follows the
paper where it can: 20 passes over the 60,000 training images, the paper's step-down
learning rate (divided by 2.5, 2, 2 and 5 after passes 2, 5, 8 and 12), inputs
normalised to mean 0 and variance 1 (the paper maps the background to -0.1 and the ink
to 1.175 for the same end). It departs from the paper in the optimiser (SGD with
momentum 0.9 on batches of 64 instead of stochastic diagonal Levenberg-Marquardt on
single examples), the loss (softmax cross-entropy instead of the RBF output layer and
its MSE-like criterion), the initialisation (Glorot uniform, seeded, instead of the
paper's uniform +-2.4/F_in) and the networks themselves: the paper's LeNet-5 reads
32x32 images and its C3 layer connects each map to only some of S2's maps, about
60,000 parameters against the notes' 44,426.
"""

from __future__ import annotations

import os

import numpy as np
from reproduce import Reproduction

import cnnumpy
from cnnumpy import callbacks, optimizers, zoo
from cnnumpy.data import load_mnist, standardize

LR = 0.05  # SGD learning rate of the first two passes (benchmarks/accuracy.py's)
MOMENTUM = 0.9
BATCH = 64
EPOCHS = 20  # the paper's 20 passes over the training set
QUICK_IMAGES = 10_000  # --quick: one pass over the first 10,000 training images
PAPER_ERROR = {"lenet1": 1.7, "lenet5": 0.95}  # LeCun et al. 1998, Fig. 9, in %


def paper_schedule(epoch: int) -> float:
    """LeCun et al. 1998's step-down rate, relative: their 0.0005, 0.0002, 0.0001,
    0.00005 and 0.00001 for passes 1-2, 3-5, 6-8, 9-12 and 13-20, scaled so that the
    first two passes run at ``LR``."""
    for last_pass, factor in ((2, 1.0), (5, 0.4), (8, 0.2), (12, 0.1)):
        if epoch < last_pass:
            return LR * factor
    return LR * 0.02


def mnist(train_images: int | None = None):
    """(x_train, y_train, x_test, y_test): standardised with the training statistics,
    from ``$CNNUMPY_DATA`` (or the cache); nothing is downloaded."""
    train = load_mnist("train", download=False)
    test = load_mnist("test", download=False)
    x_train, y_train = train.x[:train_images], train.y[:train_images]
    x_train, x_test, _ = standardize(x_train, test.x)
    return x_train, y_train, x_test, test.y


def train_lenet(name: str, quick: bool, train_images: int | None = None) -> dict:
    """Train ``zoo.<name>`` as the module says; its test error beside the paper's."""
    if train_images is None:
        train_images = QUICK_IMAGES if quick else None
    epochs = 1 if quick else EPOCHS
    x_train, y_train, x_test, y_test = mnist(train_images)
    cnnumpy.seed(0)
    model = zoo.get(name)
    model.compile(
        optimizers.SGD(lr=LR, momentum=MOMENTUM),
        loss="cross_entropy",
        metrics=["accuracy"],
    )
    print(
        f"   {name}: {model.count_params():,} parameters; {len(x_train):,} training "
        f"images, {epochs} epoch(s), SGD lr {LR} momentum {MOMENTUM}, batch {BATCH}",
        flush=True,
    )
    history = model.fit(
        x_train,
        y_train,
        epochs=epochs,
        batch_size=BATCH,
        callbacks=[callbacks.LearningRateScheduler(paper_schedule)],
        verbose=2,
        seed=0,
    )
    result = model.evaluate(x_test, y_test)
    error = 100.0 * (1.0 - result["accuracy"])
    paper = PAPER_ERROR[name]
    shortened = (
        f"--quick: {epochs} epoch on {len(x_train):,} images, not the paper's 20 "
        "passes on 60,000; "
        if quick
        else ""
    )
    return {
        "cnnumpy": f"test error {error:.2f} % ({result['accuracy']:.2%} accuracy on "
        f"{len(y_test):,} test images) against the paper's {paper} %",
        "differences": shortened + "training as the module docstring says: SGD with "
        "momentum on batches of 64, softmax cross-entropy and Glorot init instead of "
        "the paper's SDLM on single examples, RBF outputs and its own init"
        + (
            "; the paper's LeNet-5 reads 32x32 images, has a partly connected C3 and "
            "~60,000 parameters, the notes' 44,426"
            if name == "lenet5"
            else ""
        ),
        "test_error_percent": round(error, 3),
        "paper_error_percent": paper,
        "test_loss": round(float(result["loss"]), 4),
        "train_loss": [round(float(v), 4) for v in history.history["loss"]],
        "params": model.count_params(),
        "settings": {
            "epochs": epochs,
            "train_images": len(x_train),
            "batch_size": BATCH,
            "optimizer": f"SGD(lr={LR}, momentum={MOMENTUM})",
            "schedule": "paper's step-down x1, 0.4, 0.2, 0.1, 0.02",
            "seed": 0,
            "data": os.environ.get("CNNUMPY_DATA", "(default search)"),
            "dtype": np.dtype(model.dtype).name,
        },
    }


def lenet1(quick: bool) -> dict:
    """LeNet-1 on MNIST (seed 003, slides 166-167)."""
    return train_lenet("lenet1", quick)


def lenet5(quick: bool) -> dict:
    """LeNet-5 on MNIST (seed 003, slides 168-169)."""
    return train_lenet("lenet5", quick)


REPRODUCTIONS = [
    Reproduction(
        "seed003_lenet1",
        "seed 003, slides 166-167 (LeNet-1); error from LeCun et al. 1998, Fig. 9",
        "LeNet-1: 28x28x1, conv 4@5x5 and 12@5x5 valid + tanh, 2 average poolings, "
        "1 dense layer, 10 classes; no error printed (LeCun et al. 1998: 1.7 % "
        "test error on MNIST)",
        lenet1,
        minutes=1.7,  # measured: 102 s for the full run, 2 cores shared
    ),
    Reproduction(
        "seed003_lenet5",
        "seed 003, slides 168-169 (LeNet-5); error from LeCun et al. 1998, Fig. 9",
        "LeNet-5: 28x28x1, conv 6@5x5 and 16@5x5 valid + tanh, 2 average poolings, "
        "dense 120, 84, 10; no error printed (LeCun et al. 1998: 0.95 % test error "
        "on MNIST)",
        lenet5,
        minutes=2.8,  # measured: 169 s for the full run, 2 cores shared
    ),
]
