"""Seed 002's first network: XOR, Dense 3 -> tanh -> Dense 1 -> tanh, MSE, SGD lr 0.1.

Run: python examples/xor.py

``XOR_X``, ``XOR_Y`` and ``xor_network`` are shared with the reproduction of the
notes' run (``benchmarks/reproduce.py seed002_xor``), which builds the network with
the notes' own initialisation, ``uniform_half``.
"""

from collections.abc import Callable

import numpy as np

import cnnumpy
from cnnumpy.layers import Dense, Tanh
from cnnumpy.optimizers import SGD

# the notes' x_train and y_train, one example per row
XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
XOR_Y = np.array([[0], [1], [1], [0]], dtype=np.float32)


def xor_network(
    initializer: str | Callable = "glorot_uniform",
    bias_initializer: str | Callable = "zeros",
) -> cnnumpy.Sequential:
    """The notes' FCLayer(2, 3), tanh, FCLayer(3, 1), tanh, from the global seed."""
    inits = {"kernel_initializer": initializer, "bias_initializer": bias_initializer}
    return cnnumpy.Sequential(
        [Dense(3, **inits), Tanh(), Dense(1, **inits), Tanh()],
        input_shape=(2,),
        name="xor",
    )


def main() -> None:
    cnnumpy.seed(0)
    model = xor_network()
    model.compile(optimizer=SGD(lr=0.1), loss="mse", metrics=[])
    # the notes update after every example: batch_size=1
    history = model.fit(XOR_X, XOR_Y, epochs=1000, batch_size=1, verbose=0, seed=0)
    print(
        f"loss: epoch 1 {history['loss'][0]:.6f}, epoch 1000 {history['loss'][-1]:.6f}"
    )
    for inputs, target, out in zip(XOR_X, XOR_Y, model.predict(XOR_X), strict=True):
        print(f"{inputs.astype(int)} -> {out[0]:+.3f}  (target {int(target[0])})")


if __name__ == "__main__":
    main()
