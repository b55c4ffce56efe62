"""The networks of the accuracy targets: small, BatchNorm'd, fast on a laptop CPU.

``benchmarks/recipes.py`` trains them with the recipes of ``docs/recipes.md`` (and
``resnet20`` of :mod:`cnnumpy.zoo_graphs` for CIFAR-10); the README's accuracy table
gives what each reaches and in how long.

``mnist_cnn``: LeNet's plan (convolutions, then pooling, then a dense classifier) with
what came after it: BatchNorm after each convolution (the convolutions carry no bias,
beta does that job), ReLU, two 3x3 convolutions where LeNet-5 has one 5x5 (seed 003's
argument for VGG's small filters), Dropout before the last layer::

    conv 5x5, 32  -> 24x24   BN ReLU   max-pool 2 -> 12x12
    conv 3x3, 64  -> 10x10   BN ReLU
    conv 3x3, 64  ->  8x8    BN ReLU   max-pool 2 ->  4x4
    dense 1024 -> 128, ReLU, Dropout 0.3, dense 128 -> 10

About 29 MFLOP per image for a training step (forward and backward), 188,906
parameters: an epoch of MNIST takes about half a minute on two cores.
"""

from __future__ import annotations

from cnnumpy.layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
from cnnumpy.sequential import Sequential


def _conv_bn_relu(filters: int, size: int, **options) -> list:
    return [Conv2D(filters, size, use_bias=False, **options), BatchNorm(), ReLU()]


def mnist_cnn(input_shape=(1, 28, 28), num_classes=10, width=32) -> Sequential:
    """The MNIST target's network (see the module): 188,906 parameters at width 32."""
    layers = [
        *_conv_bn_relu(width, 5),
        MaxPool2D(2),
        *_conv_bn_relu(2 * width, 3),
        *_conv_bn_relu(2 * width, 3),
        MaxPool2D(2),
        Flatten(),
        Dense(128),
        ReLU(),
        Dropout(0.3),
        Dense(num_classes),
    ]
    return Sequential(layers, input_shape=input_shape, name="mnist_cnn")
