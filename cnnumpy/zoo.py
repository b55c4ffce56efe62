"""The notes' networks, by name (layers and parameter counts as the shared ZOO.md pins).

Each function returns a built, uncompiled model: a ``Sequential``, or a graph
``Model`` for the residual and Inception networks (:mod:`cnnumpy.zoo_graphs`).
Networks with tanh activations use Glorot initialisation (Glorot & Bengio 2010 derive
it for tanh); ReLU networks use He's.

| name          | source                     | input      | parameters  |
|---------------|----------------------------|------------|-------------|
| mnist_mlp     | seed 002                   | 1x28x28    | 84,060      |
| lenet1        | seed 003                   | 1x28x28    | 3,246       |
| lenet5        | seed 003                   | 1x28x28    | 44,426      |
| lenet5_classic| padding 2, ReLU, max-pool  | 1x28x28    | 61,706      |
| seed_cifar    | seed 000                   | 3x32x32    | 22,466      |
| seed000_cifar | seed 000, its own setup    | 3x32x32    | 22,466      |
| melpy_mnist   | seed 001, Table 2 model 3  | 1x28x28    | 806,394     |
| melpy_cifar   | seed 001, Table 3 model 7  | 3x32x32    | 544,122     |
| vgg_cifar     | VGG-style with BatchNorm   | 3x32x32    | 307,946     |
| resnet8       | He et al. 2016, n = 1      | 3x32x32    | 78,042      |
| resnet20      | He et al. 2016, n = 3      | 3x32x32    | 272,474     |
| resnet32      | He et al. 2016, n = 5      | 3x32x32    | 466,906     |
| mini_googlenet| seed 000 (Zhang et al.)    | 3x32x32    | 1,651,114   |
| mnist_cnn     | the MNIST target's net     | 1x28x28    | 188,906     |
| alexnet       | seed 003 (one tower)       | 3x227x227  | 62,378,344  |
| vgg16         | seed 003                   | 3x224x224  | 138,357,544 |
| vgg19         | seed 003 ("16 ou 19")      | 3x224x224  | 143,667,240 |
| char_rnn      | min-char-rnn (seed 003)    | 25x65      | 23,265      |
| char_lstm     | its LSTM twin              | 25x65      | 73,365      |

The two char models read one-hot characters ``(N, T, K)`` (K = ``vocab_size``, 65 by
default: the tiny-Shakespeare alphabet) rather than an Embedding, as min-char-rnn
does: the recurrent layer then sees the notes' ``x_t``, and the issue's count holds,
4·100·(65 + 100) + 2·4·100 = 66,800 for ``LSTM(100)``. They give logits ``(N, T, K)``
for any T (25 is min-char-rnn's window); ``cnnumpy.generation`` samples from them.

The image networks live in :mod:`cnnumpy.zoo_images` (stacks) and
:mod:`cnnumpy.zoo_graphs` (graphs), the char models in :mod:`cnnumpy.zoo_text`; every
name is importable from here too (``from cnnumpy.zoo import lenet5, char_lstm``).
"""

from __future__ import annotations

from collections.abc import Callable

from cnnumpy.model import Model
from cnnumpy.zoo_graphs import mini_googlenet, resnet8, resnet20, resnet32
from cnnumpy.zoo_images import (
    GLOROT,
    alexnet,
    lenet1,
    lenet5,
    lenet5_classic,
    melpy_cifar,
    melpy_mnist,
    mnist_mlp,
    seed000_cifar,
    seed_cifar,
    vgg16,
    vgg19,
    vgg_cifar,
)
from cnnumpy.zoo_targets import mnist_cnn
from cnnumpy.zoo_text import CHAR_VOCAB, CHAR_WINDOW, TEXT_MODELS, char_lstm, char_rnn

__all__ = [
    "CHAR_VOCAB",
    "CHAR_WINDOW",
    "GLOROT",
    "MODELS",
    "TEXT_MODELS",
    "alexnet",
    "char_lstm",
    "char_rnn",
    "default_loss",
    "get",
    "lenet1",
    "lenet5",
    "lenet5_classic",
    "melpy_cifar",
    "melpy_mnist",
    "mini_googlenet",
    "mnist_cnn",
    "mnist_mlp",
    "resnet8",
    "resnet20",
    "resnet32",
    "seed000_cifar",
    "seed_cifar",
    "vgg16",
    "vgg19",
    "vgg_cifar",
]

MODELS: dict[str, Callable[..., Model]] = {
    f.__name__: f
    for f in (
        mnist_mlp,
        lenet1,
        lenet5,
        lenet5_classic,
        seed_cifar,
        seed000_cifar,
        melpy_mnist,
        melpy_cifar,
        vgg_cifar,
        mnist_cnn,
        resnet8,
        resnet20,
        resnet32,
        mini_googlenet,
        alexnet,
        vgg16,
        vgg19,
        char_rnn,
        char_lstm,
    )
}


# The loss a zoo model trains with when none is named (``cnnumpy train`` without
# --loss): seed 002 trains its MLP's tanh outputs with the mean squared error against
# one-hot rows; a softmax over outputs held in [-1, 1] could not fall below about 0.85
# of cross-entropy, however well it classifies. Every other model: cross-entropy.
DEFAULT_LOSSES = {"mnist_mlp": "mse"}


def default_loss(name: str) -> str:
    """The loss model ``name`` trains with unless told (``DEFAULT_LOSSES``)."""
    return DEFAULT_LOSSES.get(name, "cross_entropy")


def get(name: str, **kwargs) -> Model:
    """Build the network called ``name`` (see ``MODELS``)."""
    if name not in MODELS:
        raise ValueError(
            f"unknown model {name!r}; expected one of {', '.join(sorted(MODELS))}"
        )
    return MODELS[name](**kwargs)
