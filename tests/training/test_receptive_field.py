"""receptive_field(): size, jump and start of every layer's field, against values
computed by hand, seed 003's 3x3 argument, and the gradient of one output unit."""

import numpy as np
import pytest

import cnnumpy
from cnnumpy import zoo
from cnnumpy.layers import (
    Add,
    AvgPool2D,
    Conv1D,
    Conv2D,
    Dense,
    Flatten,
    Layer,
    LocalResponseNorm,
    MaxPool1D,
    MaxPool2D,
    ReLU,
    Softmax,
    Tanh,
)
from cnnumpy.receptive_field import Field, receptive_field


def fields(model) -> list[tuple[int, int, float]]:
    """(size, jump, start) along the height, for square fields."""
    found = []
    for f in receptive_field(model):
        assert len(set(f.size)) == len(set(f.jump)) == len(set(f.start)) == 1
        found.append((f.size[0], f.jump[0], f.start[0]))
    return found


@pytest.mark.parametrize("C", [1, 3, 16])
def test_seed_003_three_3x3_convolutions_see_7x7_with_27_C2_weights(C):
    three = cnnumpy.Sequential(
        [
            Conv2D(C, 3, padding=1, use_bias=False),
            ReLU(),
            Conv2D(C, 3, padding=1, use_bias=False),
            ReLU(),
            Conv2D(C, 3, padding=1, use_bias=False),
        ],
        input_shape=(C, 16, 16),
    )
    one = cnnumpy.Sequential(
        [Conv2D(C, 7, padding=3, use_bias=False)], input_shape=(C, 16, 16)
    )
    assert receptive_field(three, layer=-1).size == (7, 7)
    assert receptive_field(one, layer=0).size == (7, 7)
    assert three.count_params() == 27 * C**2
    assert one.count_params() == 49 * C**2
    assert [f[0] for f in fields(three)] == [3, 3, 5, 5, 7]


def test_lenet5_by_hand():
    # conv 5: r = 5, start 2; pool 2: r = 5 + 1*1 = 6, j = 2, start 2 + 0.5*1;
    # conv 5: r = 6 + 4*2 = 14, start 2.5 + 2*2; pool 2: r = 14 + 1*2, j = 4,
    # start 6.5 + 0.5*2: each unit of the last 4x4 map sees 16x16 of the 28x28
    assert fields(zoo.lenet5()) == [
        (5, 1, 2.0),
        (5, 1, 2.0),
        (6, 2, 2.5),
        (14, 2, 6.5),
        (14, 2, 6.5),
        (16, 4, 7.5),
    ]  # then Flatten: the spatial part ends


def test_vgg_cifar_by_hand():
    # three blocks of two 3x3 pad-1 convs and a 2x2 pool; each conv adds 2 * j,
    # each pool 1 * j and doubles j; "same" convs keep the start, pools move it j/2
    per_conv_and_pool = [
        (3, 1, 0.0),
        (5, 1, 0.0),
        (6, 2, 0.5),
        (10, 2, 0.5),
        (14, 2, 0.5),
        (16, 4, 1.5),
        (24, 4, 1.5),
        (32, 4, 1.5),
        (36, 8, 3.5),
    ]
    model = zoo.vgg_cifar()
    found = fields(model)
    moving = [
        i for i, lay in enumerate(model.layers) if isinstance(lay, (Conv2D, MaxPool2D))
    ]
    assert [found[i] for i in moving] == per_conv_and_pool
    assert len(found) == 21  # BatchNorm and ReLU keep the field; Flatten ends it


def test_alexnet_stem_strides_and_padding():
    # conv 11/4: r = 11, j = 4, start 5; pool 3/2: r = 11 + 2*4, j = 8, start 5 + 4;
    # conv 5 pad 2: r = 19 + 4*8, start unchanged; pool 3/2: r = 51 + 2*8, j = 16
    stem = cnnumpy.Sequential(
        [
            Conv2D(2, 11, stride=4),
            ReLU(),
            MaxPool2D(3, stride=2),
            LocalResponseNorm(5),
            Conv2D(2, 5, padding=2),
            ReLU(),
            MaxPool2D(3, stride=2),
        ],
        input_shape=(3, 227, 227),
    )
    assert fields(stem)[2] == (19, 8, 9.0)
    assert fields(stem)[-1] == (67, 16, 17.0)


def test_one_dimensional_and_uneven_fields():
    seq = cnnumpy.Sequential(
        [Conv1D(2, 3, stride=2), MaxPool1D(2)], input_shape=(1, 11)
    )
    assert receptive_field(seq) == [
        Field(0, "Conv1D(2, 3, stride=2)", (3,), (2,), (1.0,)),
        Field(1, "MaxPool1D(2)", (5,), (4,), (2.0,)),
    ]
    image = cnnumpy.Sequential(
        [Conv2D(1, (3, 5), stride=(1, 2), padding="same")], input_shape=(1, 8, 8)
    )
    f = receptive_field(image, 0)
    # "same" pads 1 above (KH 3, stride 1), and 5 - 2 = 3 columns for stride 2 on 8:
    # 1 on the left, 2 on the right
    assert (f.size, f.jump, f.start) == ((3, 5), (1, 2), (0.0, 1.0))


def test_dilation_when_a_layer_has_it():
    conv = Conv2D(1, 3)
    conv.dilation = 2  # none of cnnumpy's convolutions has one yet
    model = cnnumpy.Sequential([conv], input_shape=(1, 9, 9))
    assert receptive_field(model, 0).size == (5, 5)  # k_eff = 2 * (3 - 1) + 1
    assert receptive_field(model, 0).start == (2.0, 2.0)


def test_the_gradient_of_one_unit_reaches_exactly_its_field(rng):
    """Backpropagate 1 from one output unit of the last layer: the input pixels with
    a non-zero gradient are the field centred at start + i * jump."""
    model = cnnumpy.Sequential(
        [
            Conv2D(2, 3, padding=1),
            Tanh(),
            AvgPool2D(2),
            Conv2D(2, 3, stride=2),
            Tanh(),
            AvgPool2D(3, stride=1),
        ],
        input_shape=(1, 30, 30),
    ).astype(np.float64)
    x = rng.standard_normal((1, 1, 30, 30))
    out = model.forward(x, training=True)
    i = j = 2
    dout = np.zeros_like(out)
    dout[0, 0, i, j] = 1.0
    dx = model.backward(dout)[0, 0]
    rows, cols = np.nonzero(dx)
    f = receptive_field(model, layer=-1)
    for seen, axis, pos in ((rows, 0, i), (cols, 1, j)):
        centre = f.start[axis] + pos * f.jump[axis]
        half = (f.size[axis] - 1) / 2
        assert (seen.min(), seen.max()) == (centre - half, centre + half)


def test_a_layer_by_name_or_object_and_the_errors():
    pool = MaxPool2D(2, name="pool")
    model = cnnumpy.Sequential(
        [Conv2D(2, 3), pool, Flatten(), Dense(3)], input_shape=(1, 8, 8)
    )
    assert receptive_field(model, "pool") == receptive_field(model, pool)
    assert receptive_field(model, 1).size == (4, 4)
    with pytest.raises(ValueError, match=r"layer 3 Dense\(3\) comes after the spatial"):
        receptive_field(model, 3)
    with pytest.raises(ValueError, match="layer index 4 out of range for a model of 4"):
        receptive_field(model, 4)
    with pytest.raises(ValueError, match=r"layer 'conv' is not in the model \(named"):
        receptive_field(model, "conv")
    with pytest.raises(TypeError, match="expected a layer index, name or Layer, got"):
        receptive_field(model, 1.5)
    with pytest.raises(ValueError, match="the model is not built"):
        receptive_field(cnnumpy.Sequential([Conv2D(1, 3)]))


class Shift(Layer):
    """A user's own layer: how it moves positions is unknown."""

    def forward(self, x, training=False):
        return np.roll(x, 1, axis=-1)


@pytest.mark.parametrize("odd", [Shift(), Softmax()])  # Softmax over the width
def test_a_layer_that_may_move_positions_is_refused(odd):
    model = cnnumpy.Sequential([Conv2D(1, 3), odd], input_shape=(1, 6, 6))
    with pytest.raises(ValueError, match="expected a convolution, a pooling or"):
        receptive_field(model)


def test_softmax_over_the_channels_keeps_the_field():
    model = cnnumpy.Sequential([Conv2D(3, 3), Softmax(axis=1)], input_shape=(1, 6, 6))
    assert receptive_field(model, 1).size == (3, 3)


def test_exported_from_the_package():
    assert cnnumpy.receptive_field is receptive_field
    assert "receptive_field" in cnnumpy.__all__


def test_graph_merges_see_the_union_of_their_branches():
    """An Add of a 3x3 branch (field 3) and a 5x5 one (field 5) sees 5x5; ResNet-20's
    last block sees 81 pixels: 1 + 2 (the stem) + 2 * 6 at jump 1, + 2 * 6 at jump 2,
    + 2 * 6 at jump 4 (each stage's first convolution halves the map)."""
    x = cnnumpy.Input((1, 12, 12))
    a = Conv2D(2, 3, padding=1)(x)
    b = Conv2D(2, 5, padding=2)(x)
    out = Dense(2)(Flatten()(Add()([a, b])))
    model = cnnumpy.Model(x, out)
    merge = receptive_field(model, 2)
    assert merge.layer == "Add()" and merge.size == (5, 5) and merge.jump == (1, 1)
    assert merge.start == (0.0, 0.0)
    assert [f.index for f in receptive_field(model)] == [0, 1, 2]
    with pytest.raises(ValueError, match="layer 4 Dense.* comes after the spatial"):
        receptive_field(model, 4)
    last = receptive_field(zoo.resnet20())[-1]
    assert last.size == (81, 81) and last.jump == (4, 4)
