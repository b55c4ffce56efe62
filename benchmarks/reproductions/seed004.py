"""Seed 004, 1.3 "Activation function": sigmoid and arctan against ReLU.

The notes say: "In some cases, we want to avoid too large values. For optimization
purposes, we also want the activation function to be derivable. Both the sigmoid
function [...] and the arctan function have these desired properties, though the
simple ReLU [...] is shown to be more efficient for optimization (source Goodfellow)
and thus more common in practice." They show no figure and no number.

Two parts, each through cnnumpy's own layers (``Sigmoid``, ``Arctan``, ``ReLU``, and
``Tanh`` and ``ELU`` beside them, which seed 003 names):

1. the properties, by computation in float64: the range of f over [-1000, 1000]
   (bounded or not), the derivative the layer's backward pass gives (its largest value,
   its value at x = +-5, where the bounded functions saturate) and its distance to
   centred finite differences (derivable);
2. the optimisation claim, on the network of the notes' section 3 (Escontrela's
   NumPy CNN for MNIST: two valid 5x5 convolutions of 8 filters, a 2x2 max-pool of
   stride 2, Dense 128, Dense 10), its three ReLUs swapped for each activation in
   turn, everything else equal: the same seeded initial weights (Escontrela's laws:
   N(0, 1/fan_in) for the filters, N(0, 0.01^2) for the dense weights, zero biases),
   the same batches, plain gradient descent (the notes' 1.2) at one learning rate.
   The training loss after a fixed number of steps says which optimises fastest.

The notes give no optimiser: Escontrela's code uses a hand-written Adam (lr 0.01,
batches of 32, 2 epochs over 50,000 images); gradient descent without momentum shows
what the notes' gradient argument is about, and Adam's per-weight scaling would hide
part of it (it rescales small gradients). The learning rate, ``LR``, is one value for
all, not tuned per activation.
"""

from __future__ import annotations

import math

import numpy as np
from reproduce import Reproduction

import cnnumpy
from cnnumpy import optimizers
from cnnumpy.callbacks import BatchLossHistory
from cnnumpy.data import load_mnist, standardize
from cnnumpy.layers import (
    ELU,
    Arctan,
    Conv2D,
    Dense,
    Flatten,
    MaxPool2D,
    ReLU,
    Sigmoid,
    Tanh,
)

ACTIVATIONS = {
    "relu": ReLU,
    "sigmoid": Sigmoid,
    "arctan": Arctan,
    "tanh": Tanh,
    "elu": ELU,
}
NOTES_BOUNDED = {"sigmoid", "arctan"}  # the notes: "avoid too large values"
LR = 0.1  # gradient descent's rate, the same for every activation
BATCH = 32  # Escontrela's
TRAIN_IMAGES = 50_000  # Escontrela's m = 50,000 ...
EPOCHS = 2  # ... and 2 epochs
QUICK_IMAGES = 6_000  # --quick: one epoch over the first 6,000


# -- 1. the properties ---------------------------------------------------------------
def through_layer(name: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """f(x) and f'(x) from the layer's forward and backward passes (dout = 1)."""
    layer = ACTIVATIONS[name]()
    out = layer.forward(x[None, :])
    slope = layer.backward(np.ones_like(out))
    return out[0], slope[0]


def properties(name: str) -> dict:
    """Range, largest derivative, derivative at +-5, finite-difference check."""
    wide = np.linspace(-1000.0, 1000.0, 200_001)
    out, slope = through_layer(name, wide)
    probe = np.array([-5.0, 5.0])
    _, at_five = through_layer(name, probe)
    h = 1e-6  # centred differences away from 0, where ReLU has no derivative
    points = np.array([-3.0, -1.0, -0.5, 0.5, 1.0, 3.0])
    _, exact = through_layer(name, points)
    plus, _ = through_layer(name, points + h)
    minus, _ = through_layer(name, points - h)
    fd_error = float(np.max(np.abs((plus - minus) / (2 * h) - exact)))
    low, high = float(out.min()), float(out.max())
    bounded = high < 100 and low > -100  # on [-1000, 1000], x itself reaches 1000
    return {
        "range": [round(low, 4), round(high, 4)],
        "bounded": bounded,
        "max_slope": round(float(slope.max()), 4),
        "slope_at_-5": float(f"{at_five[0]:.3g}"),
        "slope_at_5": float(f"{at_five[1]:.3g}"),
        "fd_error": fd_error,
    }


# -- 2. the optimisation claim ------------------------------------------------------
def dense_init(shape, rng, dtype=np.float32):
    """Escontrela's ``initializeWeight``: N(0, 0.01^2) for the dense weights."""
    return (0.01 * rng.standard_normal(shape)).astype(dtype)


def notes_network(activation: str) -> cnnumpy.Sequential:
    """Seed 004's section 3 network, its ReLUs replaced by ``activation``."""
    act = ACTIVATIONS[activation]
    return cnnumpy.Sequential(
        [
            Conv2D(8, 5, kernel_initializer="lecun_normal"),
            act(),
            Conv2D(8, 5, kernel_initializer="lecun_normal"),
            act(),
            MaxPool2D(2, stride=2),
            Flatten(),
            Dense(128, kernel_initializer=dense_init),
            act(),
            Dense(10, kernel_initializer=dense_init),
        ],
        input_shape=(1, 28, 28),
        name=f"seed004_{activation}",
    )


def train(activation: str, x, y, x_test, y_test, epochs: int) -> dict:
    """Gradient descent on the notes' network: the batch losses, averaged over each
    quarter of the steps; the loss on the training images after it; test accuracy."""
    cnnumpy.seed(0)  # the same initial filters and dense weights for every activation
    model = notes_network(activation)
    model.compile(optimizers.SGD(lr=LR), loss="cross_entropy", metrics=["accuracy"])
    steps = BatchLossHistory()
    model.fit(
        x, y, epochs=epochs, batch_size=BATCH, verbose=0, seed=0, callbacks=[steps]
    )
    quarters = [round(float(q.mean()), 4) for q in np.array_split(steps.flat, 4)]
    seen = slice(0, min(len(x), 10_000))
    final = model.evaluate(x[seen], y[seen])["loss"]
    accuracy = model.evaluate(x_test, y_test)["accuracy"]
    print(
        f"   {activation:8s} batch loss by quarter {quarters}, then training loss "
        f"{final:.4f}, test accuracy {accuracy:.2%}",
        flush=True,
    )
    return {
        "loss_by_quarter": quarters,
        "final_train_loss": round(float(final), 4),
        "test_accuracy": round(float(accuracy), 4),
    }


def mnist(train_images: int):
    train = load_mnist("train", download=False)
    test = load_mnist("test", download=False)
    x, x_test, _ = standardize(train.x[:train_images], test.x)
    return x, train.y[:train_images], x_test, test.y


def activations(quick: bool, train_images: int | None = None) -> dict:
    """Both parts; ``train_images`` overrides the size (tests)."""
    table = {}
    print("   f        range on [-1000, 1000]     max f'   f'(-5)    f'(5)   |FD-f'|")
    for name in ACTIVATIONS:
        p = table[name] = properties(name)
        print(
            f"   {name:8s} [{p['range'][0]:9.4f}, {p['range'][1]:9.4f}]"
            f"{'  bounded' if p['bounded'] else '         '}  {p['max_slope']:6.4f}"
            f"  {p['slope_at_-5']:8.3g} {p['slope_at_5']:8.3g}   {p['fd_error']:.1e}"
        )
    images = train_images or (QUICK_IMAGES if quick else TRAIN_IMAGES)
    epochs = 1 if quick else EPOCHS
    print(
        f"   seed 004's network, gradient descent lr {LR}, batch {BATCH}, {epochs} "
        f"epoch(s) on {images:,} MNIST images:",
        flush=True,
    )
    data = mnist(images)
    runs = {name: train(name, *data, epochs) for name in ACTIVATIONS}
    final = {name: run["final_train_loss"] for name, run in runs.items()}
    order = sorted(final, key=final.get)
    return {
        "cnnumpy": f"sigmoid in ({table['sigmoid']['range'][0]:g}, "
        f"{table['sigmoid']['range'][1]:g}), arctan in "
        f"(-{math.pi / 2:.4f}, {math.pi / 2:.4f}), both derivable (largest f' "
        f"{table['sigmoid']['max_slope']} and {table['arctan']['max_slope']}), "
        "ReLU unbounded; final training loss "
        + ", ".join(f"{n} {final[n]:.3f}" for n in order),
        "differences": "the notes give no setup for their claim: cnnumpy trains their "
        f"section 3 network with plain gradient descent (lr {LR}, one rate for all) "
        "instead of Escontrela's Adam"
        + (
            f"; --quick: 1 epoch on {images:,} images, not 2 on 50,000" if quick else ""
        ),
        "properties": table,
        "training": runs,
        "order_by_final_loss": order,
        "settings": {
            "lr": LR,
            "batch_size": BATCH,
            "epochs": epochs,
            "train_images": images,
            "optimizer": "SGD (no momentum)",
            "seed": 0,
        },
    }


REPRODUCTIONS = [
    Reproduction(
        "seed004_activations",
        "seed 004, 1.3 (Activation function)",
        "sigmoid and arctan avoid too large values and are derivable; ReLU "
        "max(0, x) is more efficient for optimization (Goodfellow), hence more "
        "common; no figure or number",
        activations,
        minutes=3.5,  # estimated: 1 epoch on 15,000 images took 28 s, x6.7
    ),
]
