"""See what the network sees: train LeNet-5 briefly on MNIST, then look inside it.

For a few test digits this writes the first layers' feature maps (seed 001, Figure 2),
the first layer's filters, the occlusion map of Zeiler & Fergus (seed 000's ``visual``),
the saliency map (seed 000's "carte des responsabilités": the correct class's score
backpropagated to the pixels) and Grad-CAM; then the training curves, the confusion
matrix, the most confident mistakes, and the HTML report that gathers it all.

    CNNUMPY_DATA=/work/shared/data python examples/what_the_network_sees.py \\
        --out runs/what_the_network_sees --epochs 2 --train-size 12000

MNIST is found by ``cnnumpy.data.load_mnist`` (``$CNNUMPY_DATA``, the cache, or a
verified download).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from cnnumpy import optimizers
from cnnumpy.data import load_mnist
from cnnumpy.fileio import atomic_write_bytes
from cnnumpy.report import pick_examples, write_report
from cnnumpy.rng import seed
from cnnumpy.visualize import (
    confusion_matrix,
    feature_maps,
    filters,
    grad_cam,
    misclassified,
    occlusion,
    saliency,
    training_curves,
)
from cnnumpy.visualize.plots import maps_png
from cnnumpy.zoo import lenet5


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/what_the_network_sees", type=Path)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=12000)
    parser.add_argument("--digits", type=int, default=4, help="test digits to explain")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def train(args):
    train_set = load_mnist("train", dtype="float32")
    test_set = load_mnist("test", dtype="float32")
    x_train, y_train = train_set.x[: args.train_size], train_set.y[: args.train_size]
    x_test, y_test = test_set.x, test_set.y
    seed(args.seed)
    model = lenet5()
    model.compile(
        optimizer=optimizers.SGD(lr=0.05, momentum=0.9),
        loss="cross_entropy",
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        epochs=args.epochs,
        batch_size=64,
        validation_data=(x_test[:2000], y_test[:2000]),
        seed=args.seed,
        verbose=2,
    )
    return (
        model,
        history,
        x_test,
        y_test,
        test_set.class_names,
        time.perf_counter() - start,
    )


def explain_digit(model, x, label, out: Path, i: int) -> list[Path]:
    """Every map of one test digit: separate PNGs and one side-by-side figure."""
    paths = {
        name: out / f"test{i}_digit{label}_{name}.png"
        for name in (
            "conv1_maps",
            "conv2_maps",
            "occlusion",
            "saliency",
            "grad_cam",
            "all_maps",
        )
    }
    feature_maps(model, x, 1, save=paths["conv1_maps"])  # after the first tanh
    feature_maps(model, x, 4, save=paths["conv2_maps"])  # after the second tanh
    heat = {
        "occlusion (drop of p)": occlusion(
            model, x, label, patch=6, stride=2, save=paths["occlusion"]
        ),
        "saliency": saliency(model, x, label, save=paths["saliency"]),
        "Grad-CAM": grad_cam(model, x, label, save=paths["grad_cam"]),
    }
    atomic_write_bytes(
        paths["all_maps"], maps_png(x, heat, f"test #{i}, digit {label}")
    )
    return list(paths.values())


def main() -> None:
    args = parse_args()
    out = args.out
    model, history, x_test, y_test, names, train_time = train(args)
    start = time.perf_counter()
    probs = model.predict(x_test)
    eval_time = time.perf_counter() - start
    print(f"test accuracy {np.mean(probs.argmax(axis=1) == y_test):.2%}")
    start = time.perf_counter()
    written = [
        out / "filters.png",
        out / "curves.png",
        out / "confusion.png",
        out / "mistakes.png",
    ]
    filters(model, save=written[0])
    training_curves(history, save=written[1])
    confusion_matrix(y_test, probs, names, save=written[2])
    misclassified(model, x_test, y_test, k=9, class_names=names, save=written[3])
    for i in pick_examples(y_test, args.digits):
        written += explain_digit(model, x_test[i], int(y_test[i]), out, i)
    maps_time = time.perf_counter() - start
    config = {"model": "lenet5", "optimizer": "Adam(lr=1e-3)", **vars(args)}
    report = write_report(
        out,
        model,
        config=config,
        history=history,
        x_test=x_test,
        y_test=y_test,
        class_names=names,
        timings={
            "train": train_time,
            "predict test set": eval_time,
            "maps and figures": maps_time,
        },
    )
    for path in [*written, report]:
        print(path)


if __name__ == "__main__":
    main()
