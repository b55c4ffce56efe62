"""Graph networks: residual networks for CIFAR and a small Inception network.

Each function returns a built, uncompiled :class:`~cnnumpy.model.Model` written with
the functional API (:mod:`cnnumpy.graph`); :mod:`cnnumpy.zoo` lists them with their
parameter counts.

**CIFAR ResNets** (He et al. 2016, "Deep Residual Learning for Image Recognition",
section 4.2): a 3x3 convolution of 16 filters, then three stages of ``n`` basic
blocks on maps of 32x32, 16x16 and 8x8 with 16, 32 and 64 filters, then global
average pooling and a dense layer: ``6n + 2`` weighted layers (``resnet8``: n = 1,
``resnet20``: n = 3, ``resnet32``: n = 5). A basic block computes

    y = ReLU(x' + BN(conv(ReLU(BN(conv(x))))))

where ``x'`` is ``x`` itself, or, where the block halves the map and doubles the
filters (its first convolution has stride 2), a 1x1 convolution of stride 2 with a
BatchNorm (the paper's option B; its option A pads with zero channels instead and
adds no parameter: the paper's 0.27M for ``resnet20``, ours 272,474). With
``zero_gamma=True`` the last BatchNorm of each branch starts with gamma = 0 (Goyal et
al. 2017), so that every block starts as the identity and the network as a shallow
one. Convolutions before a BatchNorm carry no bias: its beta does that job.

**MiniGoogLeNet** (seed 000 names it for CIFAR-10; the "Inception (small)" network of
Zhang et al. 2017, "Understanding deep learning requires rethinking
generalization", appendix A): a 3x3 convolution of 96 filters, then Inception modules
that concatenate a 1x1 and a 3x3 branch (each convolution + BatchNorm + ReLU) and
downsample modules that concatenate a 3x3 convolution of stride 2 and a 3x3 max-pool
of stride 2; global average pooling over the last 7x7 maps, Dropout 0.5, a dense layer.
"""

from __future__ import annotations

from cnnumpy.graph import Input
from cnnumpy.layers import (
    Add,
    BatchNorm,
    Concatenate,
    Conv2D,
    Dense,
    Dropout,
    GlobalAvgPool2D,
    MaxPool2D,
    ReLU,
)
from cnnumpy.model import Model


def conv_bn_relu(x, filters: int, size: int, stride: int = 1, padding="same"):
    """``ReLU(BN(conv(x)))``, the convolution without bias (BN's beta is one). A
    strided convolution floors its output size like the frameworks (32 -> 16 for a
    3x3 of stride 2 padded by 1)."""
    if stride != 1 and padding == "same":
        padding = size // 2
    h = Conv2D(
        filters,
        size,
        stride=stride,
        padding=padding,
        use_bias=False,
        allow_uneven=stride != 1,
    )(x)
    return ReLU()(BatchNorm()(h))


def basic_block(x, filters: int, stride: int = 1, zero_gamma: bool = False):
    """He et al. 2016's basic block: two 3x3 convolutions and a shortcut (see the
    module); the shortcut is a 1x1 convolution of ``stride`` when the shape
    changes."""
    h = conv_bn_relu(x, filters, 3, stride)
    h = Conv2D(filters, 3, padding=1, use_bias=False)(h)
    h = BatchNorm(gamma_initializer="zeros" if zero_gamma else "ones")(h)
    shortcut = x
    if stride != 1 or x.shape[0] != filters:
        shortcut = Conv2D(
            filters, 1, stride=stride, use_bias=False, allow_uneven=stride != 1
        )(x)
        shortcut = BatchNorm()(shortcut)
    return ReLU()(Add()([h, shortcut]))


def cifar_resnet(
    n: int,
    input_shape=(3, 32, 32),
    num_classes: int = 10,
    zero_gamma: bool = False,
    name: str | None = None,
) -> Model:
    """The CIFAR ResNet of ``6n + 2`` layers (see the module)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"cifar_resnet: n must be an int >= 1, got {n!r}")
    x = Input(input_shape)
    h = conv_bn_relu(x, 16, 3)
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(n):
            stride = 2 if stage > 0 and block == 0 else 1
            h = basic_block(h, filters, stride, zero_gamma)
    logits = Dense(num_classes)(GlobalAvgPool2D()(h))
    return Model(x, logits, name=name or f"resnet{6 * n + 2}")


def resnet8(input_shape=(3, 32, 32), num_classes=10, zero_gamma=False) -> Model:
    """ResNet-8 for CIFAR (n = 1): 78,042 parameters."""
    return cifar_resnet(1, input_shape, num_classes, zero_gamma, "resnet8")


def resnet20(input_shape=(3, 32, 32), num_classes=10, zero_gamma=False) -> Model:
    """ResNet-20 for CIFAR (n = 3): 272,474 parameters."""
    return cifar_resnet(3, input_shape, num_classes, zero_gamma, "resnet20")


def resnet32(input_shape=(3, 32, 32), num_classes=10, zero_gamma=False) -> Model:
    """ResNet-32 for CIFAR (n = 5): 466,906 parameters."""
    return cifar_resnet(5, input_shape, num_classes, zero_gamma, "resnet32")


def inception_module(x, filters_1x1: int, filters_3x3: int):
    """A 1x1 and a 3x3 branch (each conv + BN + ReLU), concatenated on channels."""
    a = conv_bn_relu(x, filters_1x1, 1)
    b = conv_bn_relu(x, filters_3x3, 3)
    return Concatenate(axis=1)([a, b])


def downsample_module(x, filters: int):
    """A 3x3 convolution of stride 2 and a 3x3 max-pool of stride 2 (no padding:
    ``(H - 3) // 2 + 1``), concatenated on channels."""
    a = conv_bn_relu(x, filters, 3, stride=2, padding=0)
    b = MaxPool2D(3, stride=2)(x)
    return Concatenate(axis=1)([a, b])


def mini_googlenet(input_shape=(3, 32, 32), num_classes=10, dropout=0.5) -> Model:
    """MiniGoogLeNet for CIFAR-10 (see the module): 1,651,114 parameters."""
    x = Input(input_shape)
    h = conv_bn_relu(x, 96, 3)
    h = inception_module(h, 32, 32)
    h = inception_module(h, 32, 48)
    h = downsample_module(h, 80)
    for f1, f3 in ((112, 48), (96, 64), (80, 80), (48, 96)):
        h = inception_module(h, f1, f3)
    h = downsample_module(h, 96)
    h = inception_module(h, 176, 160)
    h = inception_module(h, 176, 160)
    h = Dropout(dropout)(GlobalAvgPool2D()(h))
    return Model(x, Dense(num_classes)(h), name="mini_googlenet")
