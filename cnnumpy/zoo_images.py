"""The notes' image networks: the MLP, the LeNets, the CIFAR nets, AlexNet and VGG16.

Each function returns a built, uncompiled ``Sequential``; :mod:`cnnumpy.zoo` lists
them with their parameter counts and builds any of them by name. Networks with tanh
activations use Glorot initialisation (Glorot & Bengio 2010 derive it for tanh); ReLU
networks use He's; ``seed000_cifar`` uses its report's own laws.

AlexNet: the notes print "~68 millions de paramètres", but the layer list they give (one
tower, no grouped convolutions) has 62,378,344 parameters; that list is what ``alexnet``
builds.
"""

from __future__ import annotations

from cnnumpy.layers import (
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    LeakyReLU,
    LocalResponseNorm,
    MaxPool2D,
    ReLU,
    Tanh,
)
from cnnumpy.sequential import Sequential

GLOROT = "glorot_uniform"


def mnist_mlp(input_shape=(1, 28, 28), num_classes=10) -> Sequential:
    """Seed 002's MLP: 784 -> Dense 100 tanh -> Dense 50 tanh -> Dense 10 tanh.

    Train it with MSE.
    """
    return Sequential(
        [
            Flatten(),
            Dense(100, kernel_initializer=GLOROT),
            Tanh(),
            Dense(50, kernel_initializer=GLOROT),
            Tanh(),
            Dense(num_classes, kernel_initializer=GLOROT),
            Tanh(),
        ],
        input_shape=input_shape,
        name="mnist_mlp",
    )


def lenet1(input_shape=(1, 28, 28), num_classes=10) -> Sequential:
    """LeNet-1 (seed 003).

    Layers: conv 4@5x5, tanh, avg-pool 2, conv 12@5x5, tanh, avg-pool 2, dense.
    """
    return Sequential(
        [
            Conv2D(4, 5, kernel_initializer=GLOROT),
            Tanh(),
            AvgPool2D(2),
            Conv2D(12, 5, kernel_initializer=GLOROT),
            Tanh(),
            AvgPool2D(2),
            Flatten(),
            Dense(num_classes, kernel_initializer=GLOROT),
        ],
        input_shape=input_shape,
        name="lenet1",
    )


def lenet5(input_shape=(1, 28, 28), num_classes=10) -> Sequential:
    """LeNet-5 as seed 003 draws it on 28x28.

    Valid 5x5 convs (6, 16), tanh, average pooling.
    """
    return Sequential(
        [
            Conv2D(6, 5, kernel_initializer=GLOROT),
            Tanh(),
            AvgPool2D(2),
            Conv2D(16, 5, kernel_initializer=GLOROT),
            Tanh(),
            AvgPool2D(2),
            Flatten(),
            Dense(120, kernel_initializer=GLOROT),
            Tanh(),
            Dense(84, kernel_initializer=GLOROT),
            Tanh(),
            Dense(num_classes, kernel_initializer=GLOROT),
        ],
        input_shape=input_shape,
        name="lenet5",
    )


def lenet5_classic(input_shape=(1, 28, 28), num_classes=10) -> Sequential:
    """The common modern LeNet-5.

    First conv padded by 2 (28x28 -> 28x28), ReLU, max-pooling.
    """
    return Sequential(
        [
            Conv2D(6, 5, padding=2),
            ReLU(),
            MaxPool2D(2),
            Conv2D(16, 5),
            ReLU(),
            MaxPool2D(2),
            Flatten(),
            Dense(120),
            ReLU(),
            Dense(84),
            ReLU(),
            Dense(num_classes),
        ],
        input_shape=input_shape,
        name="lenet5_classic",
    )


def seed_cifar(input_shape=(3, 32, 32), num_classes=10) -> Sequential:
    """Seed 000's CIFAR-10 network: its shapes, with cnnumpy's usual ReLU setup.

    3 x [conv 5x5 pad 2, ReLU, max-pool 2] (16, 20, 20), dense; 22,466 parameters,
    the report's count. Other benchmarks train it as a plain modern ReLU net, so it
    stays as it is; :func:`seed000_cifar` is the report's network. What differs from
    the report (seed 000, III. 1 and II. 2):

    - activation: plain ``ReLU``; the report's "Relu" is leaky, ``max(x, 0.01 x)``;
    - initialisation: He normal weights and zero biases; the report draws FC weights
      and biases ``randn * 0.01 / sqrt(D1*H1*W1)``, conv weights ``randn /
      sqrt(D1*H1*W1)`` and conv biases ``ones / sqrt(D1*H1*W1)``, D1*H1*W1 the size
      of the layer's whole input;
    - training: whatever the caller compiles it with; the report's per-layer
      (α, η, ε) = (0.01, 0.9, 1e-4) update, with no decay of the biases and the
      conv gradients divided by H*W, is built in ``benchmarks/reproductions/
      seed000.py`` (``seed000_sgd``).
    """
    layers = []
    for filters in (16, 20, 20):
        layers += [Conv2D(filters, 5, padding=2), ReLU(), MaxPool2D(2)]
    layers += [Flatten(), Dense(num_classes)]
    return Sequential(layers, input_shape=input_shape, name="seed_cifar")


def seed000_cifar(input_shape=(3, 32, 32), num_classes=10) -> Sequential:
    """Seed 000's CIFAR-10 network as the report sets it up (III. 1, ``Train_CIFAR``).

    Layers (the report's list, output shapes for 3x32x32)::

        conv1  Conv 16@5x5, stride 1, pad 2  16x32x32   LeakyReLU(0.01)  MaxPool 2
        conv2  Conv 20@5x5, stride 1, pad 2  20x16x16   LeakyReLU(0.01)  MaxPool 2
        conv3  Conv 20@5x5, stride 1, pad 2  20x8x8     LeakyReLU(0.01)  MaxPool 2
        fc     Dense 10 on 20x4x4 = 320 values (then the report's Softmax, which
               cnnumpy's "cross_entropy" loss fuses in: the model outputs logits)

    22,466 parameters. The report's "Relu" is ``np.maximum(x, 0.01 * x)``, a leaky
    ReLU of slope 0.01 (II. 2. d). Its initialisations (II. 2. b), by name
    (:mod:`cnnumpy.initializers`), D1*H1*W1 being the size of the layer's whole input:

    - conv weights ``seed000_conv``: randn / sqrt(D1*H1*W1) (3*32*32 for conv1);
    - conv biases ``seed000_conv_bias``: ones / sqrt(D1*H1*W1);
    - FC weights and biases ``seed000_fc``: randn * 0.01 / sqrt(D1*H1*W1) (320).

    The report trains it with its own per-layer update (momentum, weight decay of
    the weights only, conv gradients divided by H*W); ``benchmarks/reproductions/
    seed000.py`` derives it and builds it with per-layer SGD options
    (``seed000_sgd``). The layers are named ``conv1``, ``conv2``, ``conv3`` and
    ``fc`` so that those options can name them.
    """
    layers = []
    for i, filters in enumerate((16, 20, 20), start=1):
        layers += [
            Conv2D(
                filters,
                5,
                stride=1,
                padding=2,
                kernel_initializer="seed000_conv",
                bias_initializer="seed000_conv_bias",
                name=f"conv{i}",
            ),
            LeakyReLU(0.01),
            MaxPool2D(2),
        ]
    layers += [
        Flatten(),
        Dense(
            num_classes,
            kernel_initializer="seed000_fc",
            bias_initializer="seed000_fc",
            name="fc",
        ),
    ]
    return Sequential(layers, input_shape=input_shape, name="seed000_cifar")


def melpy_mnist(input_shape=(1, 28, 28), num_classes=10) -> Sequential:
    """Seed 001, Table 2, model 3.

    With 2x2 "same" kernels, which its parameter counts imply.
    """
    return Sequential(
        [
            Conv2D(16, 2, padding="same"),
            LeakyReLU(),
            MaxPool2D(2),
            Conv2D(32, 2, padding="same"),
            LeakyReLU(),
            Flatten(),
            Dense(128),
            LeakyReLU(),
            Dense(num_classes),
        ],
        input_shape=input_shape,
        name="melpy_mnist",
    )


def melpy_cifar(input_shape=(3, 32, 32), num_classes=10) -> Sequential:
    """Seed 001, Table 3, model 7."""
    layers = [
        Conv2D(32, 2, padding="same"),
        LeakyReLU(),
        MaxPool2D(2),
        Conv2D(64, 2, padding="same"),
        LeakyReLU(),
        MaxPool2D(2),
        Flatten(),
    ]
    for units in (128, 64, 32, 16):
        layers += [Dense(units), LeakyReLU()]
    layers.append(Dense(num_classes))
    return Sequential(layers, input_shape=input_shape, name="melpy_cifar")


def _vgg_blocks(config) -> list:
    """VGG's pattern: 3x3 convolutions padded by 1, "M" a 2x2 max-pool."""
    layers = []
    for item in config:
        if item == "M":
            layers.append(MaxPool2D(2))
        else:
            layers += [Conv2D(item, 3, padding=1), ReLU()]
    return layers


def vgg_cifar(input_shape=(3, 32, 32), num_classes=10, dropout=0.3) -> Sequential:
    """A small VGG-style CIFAR-10 net.

    3 blocks of two conv 3x3 + BatchNorm + ReLU, max-pool.

    Convolutions before BatchNorm carry no bias: BatchNorm's beta does that job.
    """
    layers = []
    for filters in (32, 64, 128):
        for _ in range(2):
            layers += [
                Conv2D(filters, 3, padding=1, use_bias=False),
                BatchNorm(),
                ReLU(),
            ]
        layers.append(MaxPool2D(2))
    layers += [Flatten(), Dropout(dropout), Dense(num_classes)]
    return Sequential(layers, input_shape=input_shape, name="vgg_cifar")


def alexnet(input_shape=(3, 227, 227), num_classes=1000) -> Sequential:
    """AlexNet as one tower (seed 003).

    5 convs, 3 overlapping max-pools 3x3/2, 2 LRN, 3 dense.
    """
    return Sequential(
        [
            Conv2D(96, 11, stride=4),
            ReLU(),
            MaxPool2D(3, stride=2),
            LocalResponseNorm(5),
            Conv2D(256, 5, padding=2),
            ReLU(),
            MaxPool2D(3, stride=2),
            LocalResponseNorm(5),
            Conv2D(384, 3, padding=1),
            ReLU(),
            Conv2D(384, 3, padding=1),
            ReLU(),
            Conv2D(256, 3, padding=1),
            ReLU(),
            MaxPool2D(3, stride=2),
            Flatten(),
            Dense(4096),
            ReLU(),
            Dropout(0.5),
            Dense(4096),
            ReLU(),
            Dropout(0.5),
            Dense(num_classes),
        ],
        input_shape=input_shape,
        name="alexnet",
    )


def vgg16(input_shape=(3, 224, 224), num_classes=1000) -> Sequential:
    """VGG16 (Simonyan & Zisserman 2014): 13 convs 3x3 pad 1, 5 max-pools, 3 dense."""
    config = [
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        "M",
    ]
    layers = _vgg_blocks(config) + [
        Flatten(),
        Dense(4096),
        ReLU(),
        Dropout(0.5),
        Dense(4096),
        ReLU(),
        Dropout(0.5),
        Dense(num_classes),
    ]
    return Sequential(layers, input_shape=input_shape, name="vgg16")


def vgg19(input_shape=(3, 224, 224), num_classes=1000) -> Sequential:
    """VGG19 (Simonyan & Zisserman 2014, configuration E): 16 convs 3x3 pad 1, 3 dense.

    Seed 003: "VGGNet : 16 ou 19 couches". Five max-pools, as VGG16; 143,667,240
    parameters with 1000 classes, the count of torchvision's ``vgg19``.
    """
    config = [64, 64, "M", 128, 128, "M"] + [256] * 4 + ["M"]
    config += ([512] * 4 + ["M"]) * 2
    layers = _vgg_blocks(config) + [
        Flatten(),
        Dense(4096),
        ReLU(),
        Dropout(0.5),
        Dense(4096),
        ReLU(),
        Dropout(0.5),
        Dense(num_classes),
    ]
    return Sequential(layers, input_shape=input_shape, name="vgg19")
