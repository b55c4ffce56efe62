"""Layers: thin classes holding ``params`` and ``grads`` and calling ``cnnumpy.functional``."""

from cnnumpy.layers.base import LAYERS, Layer

# [conv] from cnnumpy.layers.conv import Conv1D, Conv2D
# [pool] from cnnumpy.layers.pooling import ...
# [pool] from cnnumpy.layers.reshape import Flatten
# [pool] from cnnumpy.layers.dropout import Dropout
# [pool] from cnnumpy.layers.normalization import BatchNorm
from cnnumpy.layers.dense import Dense
from cnnumpy.layers.activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh

__all__ = [
    "LAYERS",
    "Dense",
    "Layer",
    "LeakyReLU",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
]
