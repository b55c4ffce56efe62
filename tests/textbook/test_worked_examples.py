"""Every worked example of the notes with numbers, computed by cnnumpy's layers.

One test per example. Each docstring cites the seed and the slide or section; each
test asserts the notes' printed numbers where they are right, the correct number where
they slip, and that the notes' wrong value differs from it. The slips are listed in
``docs/notes_errata.md``. Seed 003's slide numbers are the page numbers its
transcription prints after each slide.

Seed 003 prints its 1-D signal ``[10, 20, -30, 40, -50]`` (slide 31); the
transcription of the padding slides drops its minus signs (``10|20|30|40|50``), but the
printed outputs (-4, -6, -21) need them.

Examples pinned elsewhere: seed 002's convolution exercise and seed 003's counting
exercises (``test_notes_exercise.py``), seed 003's max-pooling example
(``tests/layers/test_pool.py``), seed 000's softmax example
(``tests/layers/test_dense_activations.py``), the VGG 3x3 argument
(``tests/training/test_receptive_field.py``), the AlexNet and VGG16 totals
(``tests/training/test_summary.py``), seed 001's im2col example
(``test_im2col_indices.py``).
"""

import numpy as np
import pytest

from cnnumpy import zoo
from cnnumpy.layers import (
    AvgPool2D,
    Conv1D,
    Conv2D,
    Dense,
    Flatten,
    LocalResponseNorm,
    MaxPool2D,
)
from cnnumpy.losses import MSE
from cnnumpy.textbook import loops
from cnnumpy.textbook.conv import conv1d_forward
from cnnumpy.textbook.im2col import im2col
from cnnumpy.textbook.padding import output_size, pad2d

EXACT = {"rtol": 0, "atol": 1e-12}  # sums of a few products of one-decimal numbers

SIGNAL = [10.0, 20, -30, 40, -50]  # seed 003, slide 31
SIGNAL_D9 = [40.0, 50, 70, 80, 90, 10, 20, 30, 40]  # seed 003, slides 39-59, 129-133
FILTER_9 = [0.2, -0.3, 0.4, -0.5, 0.6, -0.7, 0.8, 0.9, -0.1]  # the first F taps, F=3..9

# seed 003, slides 141-144: the 8x8 map of the pooling examples
POOL_IMAGE = np.array(
    [
        [1, 2, 4, 4, 9, 3, 1, 2],
        [6, 7, 8, 4, -3, -3, 6, 3],
        [9, -9, 8, -4, 5, 5, 3, 0],
        [8, -8, 9, -9, 5, 5, 0, 1],
        [0, 0, 1, 2, 7, 9, 7, 8],
        [-1, -3, 3, 6, 8, 8, 7, 6],
        [9, 9, 8, 2, 1, 5, -1, -1],
        [1, 1, -2, 8, 3, 7, 4, -2],
    ],
    dtype=np.float64,
)


def _conv1d(signal, taps, **kwargs) -> np.ndarray:
    """One filter ``taps`` (no bias) slid over a one-channel signal by ``Conv1D``."""
    layer = Conv1D(1, len(taps), use_bias=False, **kwargs).astype(np.float64)
    layer.build((1, len(signal)))
    layer.params["W"][...] = np.asarray(taps, dtype=np.float64)[None, None]
    return layer.forward(np.asarray(signal, dtype=np.float64)[None, None])[0, 0]


def _built(layer, input_shape):
    layer.build(input_shape)
    return layer


def _neurons(layer, input_shape) -> int:
    return int(np.prod(layer.output_shape(input_shape)))


# -- seed 003: 1-D convolution ---------------------------------------------------------
def test_first_1d_convolution():
    """Seed 003, slide 31: ``[10, 20, -30, 40, -50] * [.1, .2, .3] = [-4, 8, -10]``.

    The slide annotates the first value "1+4+9"; the products are 1, 4 and -9.
    """
    out = _conv1d(SIGNAL, [0.1, 0.2, 0.3])
    np.testing.assert_allclose(out, [-4, 8, -10], **EXACT)
    products = np.multiply(SIGNAL[:3], [0.1, 0.2, 0.3])
    np.testing.assert_allclose(products, [1, 4, -9], **EXACT)
    assert not np.isclose(np.abs(products).sum(), out[0])  # "1+4+9" is 14


@pytest.mark.parametrize(
    "F,stride,printed",
    [
        (3, 1, [21, 21, 26, -7, 23, 8, 11]),  # slides 41-45, 129: size 7
        (5, 1, [35, -18, 33, 1, 32]),  # slides 46-50, 130: size 5
        (7, 1, [44, -8, 44]),  # slides 51-53, 131: size 3
        (5, 2, [35, 33, 32]),  # slides 54-56: size 3
    ],
)
def test_1d_valid_convolutions_and_strides(F, stride, printed):
    """Seed 003, "Stride et calcul de la taille de la carte d'activation": the signal
    ``D = 9`` with the first ``F`` taps of ``[.2, -.3, .4, -.5, .6, -.7, .8]``; the
    size of the map is ``(D - F) / S + 1``. All as printed."""
    out = _conv1d(SIGNAL_D9, FILTER_9[:F], stride=stride)
    np.testing.assert_allclose(out, printed, **EXACT)
    assert out.size == (9 - F) // stride + 1 == output_size(9, F, stride)


def test_invalid_d_f_s_combination():
    """Seed 003, slides 57-59: F = 5 with stride 3 gives 35, 1 and then "ERREUR!
    Combinaison D-F-S invalide": (9 - 5) / 3 + 1 is not an integer."""
    with pytest.raises(ValueError, match=r"invalid D-F-S combination.*\(9 - 5 \+ 0\)"):
        _conv1d(SIGNAL_D9, FILTER_9[:5], stride=3)
    out = _conv1d(SIGNAL_D9, FILTER_9[:5], stride=3, allow_uneven=True)
    np.testing.assert_allclose(out, [35, 1], **EXACT)  # what the frameworks keep


@pytest.mark.parametrize(
    "mode,padded,correct,printed",
    [
        ("zeros", [0, 10, 20, -30, 40, -50, 0], [8, -4, 8, -10, -6], None),
        ("reflect", [20, 10, 20, -30, 40, -50, 40], [10, -4, 8, -10, 6], 2),
        ("replicate", [10, 10, 20, -30, 40, -50, -50], [9, -4, 8, -10, -21], None),
    ],
)
def test_1d_padding_options(mode, padded, correct, printed):
    """Seed 003, slides 61-62, "Comment gérer les bords ?": ``[.1, .2, .3]`` over
    the signal padded by one value on each side.

    The notes' zero and stretching outputs are right. Their reflection output ends in 2;
    with the reflected 40 it is ``40 * .1 - 50 * .2 + 40 * .3 = 6``. (Slide 61 prints
    the fourth value of each option as 10, slide 62 as -10: the same lost minus sign
    as the input's; ``-30 * .1 + 40 * .2 - 50 * .3 = -10``.)
    """
    x = np.array(SIGNAL)[None, None]
    np.testing.assert_array_equal(
        pad2d(x[:, :, None], ((0, 0), (1, 1)), mode)[0, 0, 0], padded
    )
    out = _conv1d(SIGNAL, [0.1, 0.2, 0.3], padding=1, padding_mode=mode)
    np.testing.assert_allclose(out, correct, **EXACT)
    book, _ = conv1d_forward(x, np.array([[[0.1, 0.2, 0.3]]]), None, 1, 1, mode)
    np.testing.assert_allclose(book[0, 0], correct, **EXACT)
    if printed is not None:
        assert not np.isclose(out[-1], printed)
        assert np.isclose(40 * 0.1 - 50 * 0.2 + 40 * 0.3, 6)


def test_filter_as_large_as_the_input():
    """Seed 003, slides 132-133, "Taille filtre = nb de neurones couche précédente":
    the 9 taps ``[.2, -.3, .4, -.5, .6, -.7, .8, .9, -.1]`` over the 9 values give one
    neuron, a fully connected one.

    The notes print 31. The first seven taps give 44 (the F = 7 map's first value) and
    the last two add ``30 * .9 - 40 * .1 = 23``: 67.
    """
    out = _conv1d(SIGNAL_D9, FILTER_9)
    np.testing.assert_allclose(out, [67], **EXACT)
    assert not np.isclose(out[0], 31)
    np.testing.assert_allclose(np.dot(SIGNAL_D9[:7], FILTER_9[:7]), 44, **EXACT)
    dense = _built(Dense(1, use_bias=False).astype(np.float64), (9,))
    dense.params["W"][:, 0] = FILTER_9
    np.testing.assert_allclose(dense.forward(np.array([SIGNAL_D9])), [[67]], **EXACT)


# -- seed 003: counting parameters and neurons -----------------------------------------
def test_150_inputs_22200_parameters():
    """Seed 003, slides 25-27: "150-D en entrée avec 150 neurones dans la 1ère couche
    => 22,200 paramètres", then 148 neurons with 444 connections, then 3 shared weights.

    ``22,200 = 150 x 148``: the 148 neurons of the next two slides, the outputs of a
    3-tap "valid" filter (150 - 3 + 1). With 150 neurons the layer has
    ``150 x 150 = 22,500`` weights, 22,650 with biases.
    """
    assert _built(Dense(148, use_bias=False), (150,)).count_params() == 22_200
    assert _built(Dense(150, use_bias=False), (150,)).count_params() == 22_500 != 22_200
    assert _built(Dense(150), (150,)).count_params() == 22_650
    conv = _built(Conv1D(1, 3, use_bias=False).astype(np.float64), (1, 150))
    conv.params["W"][...] = [[[0.1, 0.2, 0.3]]]
    assert conv.count_params() == 3 and _neurons(conv, (1, 150)) == 148
    # The convolution as a 150 -> 148 matrix: row i holds the 3 taps at i..i+2.
    matrix = conv.forward(np.eye(150)[:, None, :])[:, 0, :]  # (150 inputs, 148)
    assert np.count_nonzero(matrix) == 148 * 3 == 444


def test_first_layer_parameter_counts():
    """Seed 003, slides 21-22: "7850 dans la couche 1" (a 28x28 MNIST image, 10
    neurons) and "655,370 dans la couche 1" (the brain MRI: ``65,536 x 10 + 10``,
    a 256x256 image). Slide 23's "160M" for a 3-D volume gives no size to check."""
    assert _built(Dense(10), (28 * 28,)).count_params() == 7_850
    assert _built(Dense(10), (256 * 256,)).count_params() == 655_370


def test_several_filters_per_layer():
    """Seed 003, slide 67 (1-D, five filters of size 5, with padding: "100 neurones
    par carte d'activation, 500 neurones au total, 25 (5x5) paramètres") and slide 85
    (5x5, 5 maps, "same": 10,000 per map, 50,000 in all, 5 x 5 x 5 = 125)."""
    conv1d = _built(Conv1D(5, 5, padding="same", use_bias=False), (1, 100))
    assert conv1d.output_shape((1, 100)) == (5, 100)
    assert conv1d.count_params() == 25 and _neurons(conv1d, (1, 100)) == 500
    conv2d = _built(Conv2D(5, 5, padding="same", use_bias=False), (1, 100, 100))
    assert conv2d.output_shape((1, 100, 100)) == (5, 100, 100)
    assert conv2d.count_params() == 125 and _neurons(conv2d, (1, 100, 100)) == 50_000


def test_1x1_filter_averages_the_colour_channels():
    """Seed 003, slide 106: the 1x1 filter ``[1/3, 1/3, 1/3]`` turns an RGB image
    into its grey level, the mean of red, green and blue."""
    layer = _built(Conv2D(1, 1, use_bias=False).astype(np.float64), (3, 4, 5))
    layer.params["W"][...] = 1 / 3
    rgb = np.random.default_rng(0).uniform(0, 255, (2, 3, 4, 5))
    grey = layer.forward(rgb)
    assert grey.shape == (2, 1, 4, 5) and layer.count_params() == 3
    np.testing.assert_allclose(grey[:, 0], rgb.mean(axis=1), rtol=1e-14)


def test_equivalent_configurations():
    """Seed 003, slide 138, "Configurations équivalentes": after the three "valid"
    layers (3@7x7, 5@9x9, 4@11x11) a 32x32x3 image is 4x8x8 = 256 values; a fully
    connected layer 256x4 and a layer of 4 filters 8x8 compute the same 4 outputs, with
    the same 1,024 weights. The slide's question: on a 64x64x3 image the filters give
    a 33x33 map of the 4 outputs, and the fully connected layer no longer fits."""
    shape = (3, 32, 32)
    for filters, kernel in ((3, 7), (5, 9), (4, 11)):
        shape = Conv2D(filters, kernel).output_shape(shape)
    assert shape == (4, 8, 8)
    rng = np.random.default_rng(0)
    dense = _built(Dense(4).astype(np.float64), (256,))
    conv = _built(Conv2D(4, 8).astype(np.float64), shape)
    conv.params["W"][...] = dense.params["W"].T.reshape(4, 4, 8, 8)  # C-order flatten
    bias = rng.standard_normal(4)
    dense.params["b"][...] = bias
    conv.params["b"][...] = bias
    assert conv.count_params() == dense.count_params() == 1_024 + 4
    maps = rng.standard_normal((2, *shape))
    np.testing.assert_allclose(
        conv.forward(maps)[:, :, 0, 0],
        dense.forward(Flatten().forward(maps)),
        rtol=1e-12,
    )
    shape = (3, 64, 64)
    for filters, kernel in ((3, 7), (5, 9), (4, 11)):
        shape = Conv2D(filters, kernel).output_shape(shape)
    assert shape == (4, 40, 40) and conv.output_shape(shape) == (4, 33, 33)
    with pytest.raises(ValueError, match="6400"):
        dense.forward(np.zeros((1, 4 * 40 * 40)))


# -- seed 003: convolution as a matrix product ----------------------------------------
def test_im2col_matrix_of_a_4x4_input():
    """Seed 003, slides 148-158 (and 162, 164): a 3x3 "valid" convolution of a 4x4
    input ``X0..X15`` as ``[W0..W8] x X``, one column of 9 inputs per output.

    The notes' matrix (slides 156-158, 162) prints the column of Y2 as X4, X5, X6,
    X8, X9, X10, X11, X12, X13; their own slide 152 gives
    ``Y2 = W0.X4 + ... + W6.X12 + W7.X13 + W8.X14``: the last three are X12, X13, X14.
    The two-channel matrix (slide 164) has the same slip in its second channel
    (X27, X28, X29 for X28, X29, X30).
    """
    x = np.arange(16.0).reshape(1, 1, 4, 4)  # pixel k holds the number k
    cols = im2col(x, (3, 3), (1, 1))
    expected = [
        [0, 1, 2, 4, 5, 6, 8, 9, 10],  # Y0
        [1, 2, 3, 5, 6, 7, 9, 10, 11],  # Y1
        [4, 5, 6, 8, 9, 10, 12, 13, 14],  # Y2
        [5, 6, 7, 9, 10, 11, 13, 14, 15],  # Y3
    ]
    np.testing.assert_array_equal(cols.T, expected)
    assert list(cols[6:, 2]) != [11, 12, 13]  # the notes' Y2
    two = im2col(np.arange(32.0).reshape(1, 2, 4, 4), (3, 3), (1, 1))
    np.testing.assert_array_equal(two[15:, 2], [28, 29, 30])  # notes: 27, 28, 29
    layer = _built(Conv2D(1, 3, use_bias=False).astype(np.float64), (1, 4, 4))
    w_row = layer.params["W"].reshape(1, 9)  # "en linéarisant le filtre"
    np.testing.assert_allclose(
        (w_row @ cols).reshape(2, 2), layer.forward(x)[0, 0], rtol=1e-12
    )


# -- seed 003: AlexNet -----------------------------------------------------------------
@pytest.fixture(scope="module")
def alexnet():
    return zoo.alexnet()


def test_alexnet_conv1_and_pool1(alexnet):
    """Seed 003, slides 173-177 and 179, AlexNet CONV1: 96 filters 11x11, stride 4,
    "valid", on 227x227x3: maps ``(227 - 11) / 4 + 1 = 55``, "Paramètres : 11 x 11 x
    96 x 3 = 34,848". That counts the weights; with the 96 biases the layer has
    34,944, the number cnnumpy (and every framework) reports. MAX POOL1, 3x3 stride 2:
    ``(55 - 3) / 2 + 1 = 27``, "Réponse: 0!" parameters."""
    conv1, pool1 = alexnet.layers[0], alexnet.layers[2]
    assert isinstance(conv1, Conv2D) and isinstance(pool1, MaxPool2D)
    assert conv1.params["W"].shape == (96, 3, 11, 11)
    assert conv1.params["W"].size == 11 * 11 * 96 * 3 == 34_848
    assert conv1.params["b"].size == 96
    assert conv1.count_params() == 34_944 != 34_848
    assert alexnet.output_shape_at(0) == (96, 55, 55)
    assert alexnet.output_shape_at(2) == (96, 27, 27) and pool1.count_params() == 0
    sizes = [alexnet.output_shape_at(i) for i in (3, 4, 6, 7, 8, 10, 12, 14)]
    assert sizes == [  # slide 179: NORM1, CONV2, POOL2, NORM2, CONV3, CONV4, CONV5,
        (96, 27, 27),  # POOL3
        (256, 27, 27),
        (256, 13, 13),
        (256, 13, 13),
        (384, 13, 13),
        (384, 13, 13),
        (256, 13, 13),
        (256, 6, 6),
    ]


def test_alexnet_norm_is_local_response_normalisation(alexnet):
    """Seed 003, slides 179-180: NORM1 and NORM2, "normalisation par couche" and
    "LayerNorm : peu utilisé aujourd'hui". AlexNet's layer is local response
    normalisation (Krizhevsky et al. 2012, section 3.3), which divides each value by
    the energy of 5 neighbouring channels at the same position; layer normalisation
    (Ba et al. 2016) came four years later and standardises a whole example.

    The zoo's ``LocalResponseNorm(5)`` uses PyTorch's and Caffe's convention,
    ``a / (k + alpha / n * sum a^2) ** beta`` with the paper's k = 2, alpha = 1e-4,
    beta = 0.75; the paper does not divide alpha by n, so its exact layer is
    ``LocalResponseNorm(5, alpha=5e-4)``.
    """
    norms = [layer for layer in alexnet.layers if isinstance(layer, LocalResponseNorm)]
    assert [alexnet.layers.index(layer) for layer in norms] == [3, 7]
    config = norms[0].get_config()
    assert (config["size"], config["k"], config["alpha"], config["beta"]) == (
        5,
        2.0,
        1e-4,
        0.75,
    )
    assert all(layer.count_params() == 0 for layer in norms)
    lrn = LocalResponseNorm.from_config(config).astype(np.float64)
    a = np.random.default_rng(0).uniform(0, 50, (1, 12, 3, 3))
    y = lrn.forward(a)
    bumped = a.copy()
    bumped[0, 6, 1, 1] += 10.0  # one channel at one position
    changed = ~np.isclose(lrn.forward(bumped), y, rtol=1e-9, atol=0)
    assert {tuple(c) for c in np.argwhere(changed[0])} == {
        (c, 1, 1)
        for c in range(4, 9)  # channels 6 - 2 to 6 + 2, same position
    }
    assert abs(y.mean()) > 1  # no standardisation: the mean is not 0
    paper = a * (2 + 1e-4 * _paper_window_sum(a**2)) ** -0.75
    lrn_paper = LocalResponseNorm(5, alpha=5e-4).astype(np.float64)
    np.testing.assert_allclose(lrn_paper.forward(a), paper, rtol=1e-12)
    assert not np.allclose(y, paper, rtol=1e-6)


def _paper_window_sum(v: np.ndarray) -> np.ndarray:
    """``sum_{j = c-2}^{c+2} v[:, j]`` over the channels that exist, as the paper."""
    C = v.shape[1]
    return np.stack(
        [v[:, max(0, c - 2) : min(C, c + 3)].sum(axis=1) for c in range(C)], axis=1
    )


# -- seed 003 and seeds 000 / 001: pooling ---------------------------------------------
def test_mean_pooling_example():
    """Seed 003, slide 142, "Mean pooling": 2x2 "valid" windows, stride 2, on the 8x8
    map of the max-pooling example. Twelve of the sixteen printed means are right; four
    are not: (9, 3, -3, -3) has mean 1.5 (printed 3), (1, 2, 6, 3) has 3 (printed 4),
    (1, 2, 3, 6) has 3 (printed 8), (-1, -1, 4, -2) has 0 (printed 1)."""
    printed = np.array([[4, 5, 3, 4], [0, 1, 5, 1], [-1, 8, 8, 7], [5, 4, 4, 1]])
    correct = np.array([[4, 5, 1.5, 3], [0, 1, 5, 1], [-1, 3, 8, 7], [5, 4, 4, 0]])
    out = AvgPool2D(2).astype(np.float64).forward(POOL_IMAGE[None, None])[0, 0]
    np.testing.assert_allclose(out, correct, **EXACT)
    book, _ = loops.avgpool2d_forward_loops(POOL_IMAGE[None, None], 2, 2)
    np.testing.assert_allclose(book[0, 0], correct, **EXACT)
    np.testing.assert_allclose(
        POOL_IMAGE.reshape(4, 2, 4, 2).mean(axis=(1, 3)), correct, **EXACT
    )
    wrong = np.argwhere(printed != correct)
    assert [tuple(c) for c in wrong] == [(0, 2), (0, 3), (2, 1), (3, 3)]
    assert list(correct[printed != correct]) == [1.5, 3, 3, 0]
    assert list(printed[printed != correct]) == [3, 4, 8, 1]


def test_maxpool_backward_ties():
    """Seeds 000 (II.2.c, ``M[M == 0] = 1``, drawn as ``[[1, 0], [0, 1]] x delta``)
    and 001 (3.3, ``mask = input_cols == output_cols``) send a window's gradient to
    every element equal to its maximum. In seed 003's 8x8 map the window of rows 2-3,
    columns 4-5 is all 5s: their mask passes 4 times its gradient.

    Raising the whole window by t raises its maximum by exactly t, so the gradients of
    a window must sum to its upstream gradient: cnnumpy gives it to one element, the
    first maximum in row-major order (PyTorch's choice; seed 004's ``nanargmax``).
    """
    x = POOL_IMAGE[None, None]
    layer = MaxPool2D(2).astype(np.float64)
    out = layer.forward(x)
    dx = layer.backward(np.ones_like(out))[0, 0]
    np.testing.assert_array_equal(dx[2:4, 4:6], [[1, 0], [0, 0]])
    window = x[0, 0, 2:4, 4:6]
    notes_mask = (window == window.max()).astype(float)  # seed 001's mask
    assert notes_mask.sum() == 4
    shifted = x.copy()
    shifted[0, 0, 2:4, 4:6] += 1e-3
    slope = (layer.forward(shifted) - out).sum() / 1e-3
    np.testing.assert_allclose(slope, dx[2:4, 4:6].sum(), rtol=1e-9)
    assert not np.isclose(slope, notes_mask.sum())


# -- seed 000: the loss ----------------------------------------------------------------
def test_seed_000_half_sum_of_squares_and_cnnumpy_mse():
    """Seed 000, II.2.d, "loss": ``E = sum_j (y_j - t_j)^2 / 2`` summed over the
    whole batch (``np.sum(err**2)/2``), the error term ``t - y = -dE/dy``, and the
    printed batch loss ``E / B``; its update divides by B (``speed / B``).

    cnnumpy's MSE (seed 002's, PyTorch's) is the mean over the N x K values:
    ``L = 2 E / (N K)`` and ``dL/dy = 2 (y - t) / (N K)``, so ``L`` is the notes'
    printed loss times ``2 / K``, and on a fully connected layer SGD with
    ``lr = alpha K / 2`` takes the notes' gradient step of learning rate alpha (the
    notes' convolutions also divide theirs by H x W).
    """
    rng = np.random.default_rng(0)
    N, K = 4, 10  # a batch of 4 CIFAR-10 outputs
    y, t = rng.standard_normal((N, K)), np.eye(K)[rng.integers(0, K, N)]
    err = t - y  # the notes' term
    E = np.sum(err**2) / 2
    batch_loss = E / N  # what seed 000 prints
    mse = MSE()
    L = mse(y, t)
    np.testing.assert_allclose(L, 2 * E / (N * K), rtol=1e-14)
    np.testing.assert_allclose(L, batch_loss * 2 / K, rtol=1e-14)
    np.testing.assert_allclose(mse.backward(), -2 / (N * K) * err, rtol=1e-14)
    assert not np.isclose(L, E) and not np.isclose(L, batch_loss)
    # One step of a Dense layer: the notes' Delta w = alpha / B * x^T (t - y).
    layer = _built(Dense(K).astype(np.float64), (3,))
    x, alpha = rng.standard_normal((N, 3)), 0.01
    y = layer.forward(x)
    mse(y, t)
    layer.backward(mse.backward())
    notes_step = alpha / N * x.T @ (t - y)
    cnnumpy_step = -(alpha * K / 2) * layer.grads["W"]  # SGD: -lr dL/dW
    np.testing.assert_allclose(cnnumpy_step, notes_step, rtol=1e-12)


# -- seed 002 and seed 004: formulas with a slip --------------------------------------
def test_seed_002_exercise_fc_3_1_backward():
    """Seed 002, XIV "Exercice", backward propagation of FC(3, 1): the answer writes
    ``dE/dx = [error * w1 + error * w2 + error * w3]``, one sum, and ``bias = alpha *
    output_error``. The input gradient has three entries, ``error * W^T`` (as the
    next line and the chapter's ``FCLayer`` say), and the bias moves by ``-alpha *
    error`` (the chapter's ``self.bias -= learning_rate * output_error``)."""
    layer = _built(Dense(1).astype(np.float64), (3,))
    layer.params["W"][:, 0] = [0.1, 0.2, 0.3]
    layer.params["b"][...] = 0.5
    x, error, alpha = np.array([[1.0, 2, 3]]), 0.4, 0.1
    layer.forward(x)
    dx = layer.backward(np.array([[error]]))
    np.testing.assert_allclose(dx, [[0.04, 0.08, 0.12]], rtol=1e-14)
    notes_dx = error * 0.1 + error * 0.2 + error * 0.3  # one number, 0.24
    assert dx.shape == (1, 3) and not np.allclose(dx, notes_dx)
    np.testing.assert_allclose(layer.grads["W"][:, 0], error * x[0], rtol=1e-14)
    b_new = layer.params["b"] - alpha * layer.grads["b"]
    np.testing.assert_allclose(b_new, [0.46], rtol=1e-14)
    assert not np.isclose(b_new, alpha * error).any()


def test_seed_004_output_size_and_bias():
    """Seed 004, 2.2: Eq. (7) gives the map's size as ``n(W) - n(Z) + 1`` (kernel
    minus input); it is ``n(Z) - n(W) + 1``, 24 for a 28x28 MNIST image and a 5x5
    kernel. Eqs. (13), (14), (20) and (21) put ``+ b`` inside the sums over the kernel,
    which adds it KH x KW times, while the text wants it "once per entry in the feature
    map", as its Eq. (9), its code and cnnumpy do."""
    assert output_size(28, 5) == 28 - 5 + 1 == 24
    assert output_size(28, 5) != 5 - 28 + 1  # the notes' Eq. (7)
    rng = np.random.default_rng(0)
    layer = _built(Conv2D(1, 5).astype(np.float64), (2, 28, 28))
    layer.params["b"][...] = 0.5
    M = rng.standard_normal((1, 2, 28, 28))
    out = layer.forward(M)[0, 0]
    K = layer.params["W"][0]
    correlation = np.array(
        [
            [np.sum(K * M[0, :, i : i + 5, j : j + 5]) for j in range(24)]
            for i in range(24)
        ]
    )
    np.testing.assert_allclose(out, correlation + 0.5, rtol=1e-12, atol=1e-12)
    equation_20 = correlation + 5 * 5 * 0.5
    assert not np.allclose(out, equation_20)
