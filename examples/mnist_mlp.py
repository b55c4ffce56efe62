"""Seed 002's MNIST network: 784 -> Dense 100 tanh -> Dense 50 tanh -> Dense 10 tanh,
MSE.

The notes train it on 1,000 images, one at a time, for 35 epochs at lr 0.1. Here the
same network and loss train on all 60,000 images in mini-batches, which takes a minute.

Run: CNNUMPY_DATA=../shared/data python examples/mnist_mlp.py [--epochs 5]
(without CNNUMPY_DATA, MNIST is taken from the cache or downloaded once).
"""

import argparse

import numpy as np

import cnnumpy
from cnnumpy import zoo
from cnnumpy.data import load_mnist
from cnnumpy.optimizers import SGD


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.1)
    args = parser.parse_args()

    train, test = (
        load_mnist("train", dtype="float32"),
        load_mnist("test", dtype="float32"),
    )
    print(f"data: {train.source}")
    # as in the notes: tanh outputs regressed with MSE onto one-hot targets
    t_train = np.eye(10, dtype=np.float32)[train.y]
    cnnumpy.seed(0)
    model = zoo.mnist_mlp()
    model.summary()
    model.compile(
        optimizer=SGD(lr=args.lr, momentum=0.9), loss="mse", metrics=["accuracy"]
    )
    model.fit(
        train.x,
        t_train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=0,
        validation_data=(test.x, np.eye(10, dtype=np.float32)[test.y]),
    )
    accuracy = np.mean(model.predict(test.x).argmax(axis=1) == test.y)
    print(f"test accuracy: {accuracy:.4f}")


if __name__ == "__main__":
    main()
