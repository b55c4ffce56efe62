"""Seed 002's first network: XOR, Dense 3 -> tanh -> Dense 1 -> tanh, MSE, SGD lr 0.1.

Run: python examples/xor.py
"""

import numpy as np

import cnnumpy
from cnnumpy.layers import Dense, Tanh
from cnnumpy.optimizers import SGD


def main() -> None:
    cnnumpy.seed(0)
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    model = cnnumpy.Sequential(
        [
            Dense(3, kernel_initializer="glorot_uniform"),
            Tanh(),
            Dense(1, kernel_initializer="glorot_uniform"),
            Tanh(),
        ],
        input_shape=(2,),
        name="xor",
    )
    model.compile(optimizer=SGD(lr=0.1), loss="mse", metrics=[])
    # the notes update after every example: batch_size=1
    history = model.fit(x, y, epochs=1000, batch_size=1, verbose=0, seed=0)
    print(
        f"loss: epoch 1 {history['loss'][0]:.6f}, epoch 1000 {history['loss'][-1]:.6f}"
    )
    for inputs, target, out in zip(x, y, model.predict(x), strict=True):
        print(f"{inputs.astype(int)} -> {out[0]:+.3f}  (target {int(target[0])})")


if __name__ == "__main__":
    main()
