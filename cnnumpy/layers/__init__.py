"""Layers: thin classes holding ``params`` and ``grads``.

The math they call lives in ``cnnumpy.textbook`` (the notes' code) and runs on
the kernel ``cnnumpy.engine`` chooses.
"""

from cnnumpy.layers.activations import (
    ELU,
    Arctan,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from cnnumpy.layers.base import LAYERS, Layer, layer_from_config, layer_to_config
from cnnumpy.layers.conv import Conv1D, Conv2D
from cnnumpy.layers.dense import Dense
from cnnumpy.layers.dropout import Dropout
from cnnumpy.layers.embedding import Embedding
from cnnumpy.layers.lrn import LocalResponseNorm
from cnnumpy.layers.merge import Add, Concatenate, Multiply
from cnnumpy.layers.normalization import BatchNorm
from cnnumpy.layers.pooling import (
    AvgPool1D,
    AvgPool2D,
    GlobalAvgPool2D,
    MaxPool1D,
    MaxPool2D,
)
from cnnumpy.layers.recurrent import GRU, LSTM, SimpleRNN
from cnnumpy.layers.reshape import Flatten

__all__ = [
    "LAYERS",
    "Add",
    "Arctan",
    "AvgPool1D",
    "AvgPool2D",
    "BatchNorm",
    "Concatenate",
    "Conv1D",
    "Conv2D",
    "Dense",
    "Dropout",
    "ELU",
    "Embedding",
    "Flatten",
    "GRU",
    "GlobalAvgPool2D",
    "LSTM",
    "Layer",
    "LeakyReLU",
    "LocalResponseNorm",
    "MaxPool1D",
    "MaxPool2D",
    "Multiply",
    "ReLU",
    "Sigmoid",
    "SimpleRNN",
    "Softmax",
    "Tanh",
    "layer_from_config",
    "layer_to_config",
]
