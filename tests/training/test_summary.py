"""summary(): the notes' parameter and neuron counts, exactly.

See seed 003 and shared/ZOO.md.
"""

import pytest
from test_training_torch import lenet5_torch

import cnnumpy
from cnnumpy import zoo
from cnnumpy.layers import Conv2D
from cnnumpy.summary import totals
from cnnumpy.zoo_graphs import cifar_resnet


def counts(layers, input_shape):
    model = cnnumpy.Sequential(layers, input_shape=input_shape)
    t = totals(model)
    return t["params"], t["neurons"]


def test_seed_003_counting_exercises():
    assert counts([Conv2D(10, 5)], (3, 32, 32))[0] == 760
    assert counts([Conv2D(6, 5, use_bias=False)], (1, 100, 100)) == (150, 55_296)
    same = [
        Conv2D(3, 7, padding="same", use_bias=False),
        Conv2D(5, 9, padding="same", use_bias=False),
        Conv2D(4, 11, padding="same", use_bias=False),
    ]
    assert counts(same, (3, 32, 32)) == (441 + 1_215 + 2_420, 12_288)
    valid = [
        Conv2D(3, 7, use_bias=False),
        Conv2D(5, 9, use_bias=False),
        Conv2D(4, 11, use_bias=False),
    ]
    assert counts(valid, (3, 32, 32)) == (4_076, 2_028 + 1_620 + 256)


@pytest.mark.parametrize(
    "name, params",
    [
        ("mnist_mlp", 84_060),
        ("lenet1", 3_246),
        ("lenet5", 44_426),
        ("lenet5_classic", 61_706),
        ("seed_cifar", 22_466),
        ("melpy_mnist", 806_394),
        ("melpy_cifar", 544_122),
        ("vgg_cifar", 307_946),
        ("resnet8", 78_042),
        ("resnet20", 272_474),
        ("resnet32", 466_906),
        ("mini_googlenet", 1_651_114),
        ("mnist_cnn", 188_906),
    ],
)
def test_zoo_parameter_counts(name, params):
    assert zoo.get(name).count_params() == params


def _resnet_count(n: int, classes: int = 10) -> int:
    """He et al.'s CIFAR ResNet counted by hand: 3x3 convolutions without bias, a
    BatchNorm (2 parameters per channel) after each, a 1x1 projection with its
    BatchNorm where a stage starts, the dense layer."""

    def conv_bn(c_in, c_out, k):
        return c_in * c_out * k * k + 2 * c_out

    total = conv_bn(3, 16, 3)
    c_in = 16
    for filters in (16, 32, 64):
        for _block in range(n):
            total += conv_bn(c_in, filters, 3) + conv_bn(filters, filters, 3)
            if c_in != filters:
                total += conv_bn(c_in, filters, 1)
            c_in = filters
    return total + 64 * classes + classes


@pytest.mark.parametrize("n", [1, 3, 5, 9])
def test_cifar_resnets_count_6n_plus_2_layers(n):
    model = cifar_resnet(n)
    assert model.count_params() == _resnet_count(n)
    weighted = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    projections = [layer for layer in weighted if layer.kernel_size == (1, 1)]
    assert len(weighted) - len(projections) + 1 == 6 * n + 2  # + the dense layer
    assert model.output_shape == (10,)


@pytest.mark.slow
def test_alexnet_and_vgg16_as_the_notes_count_them():
    alexnet = zoo.alexnet()
    assert alexnet.count_params() == 62_378_344  # the notes' "~68 M" is for two towers
    del alexnet
    vgg = zoo.vgg16()
    t = totals(vgg)
    assert t["params"] == 138_357_544
    # conv, pool and dense outputs; the notes round to "~15 M" neurons and "~60 Mo"
    assert t["neurons"] == 15_087_080
    assert round(t["activations_mb"], 1) == 60.3
    assert round(t["params_mb"]) == 553
    assert round(t["forward_mb"]) == 614  # the notes' "~612 Mo" = 552 + 60
    text = vgg.summary(print_fn=None)
    assert "Total parameters: 138,357,544" in text and "15,087,080" in text


@pytest.mark.torch
def test_lenet5_count_matches_pytorch():
    twin = lenet5_torch()
    assert zoo.lenet5().count_params() == sum(p.numel() for p in twin.parameters())


def test_summary_rows_show_shapes_params_and_neurons():
    text = zoo.lenet5().summary(print_fn=None)
    assert "(6, 24, 24)" in text and "(16, 4, 4)" in text
    assert "Total parameters: 44,426" in text
    assert "Conv2D(6, 5, kernel_initializer='glorot_uniform')" in text
