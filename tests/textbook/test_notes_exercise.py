"""Seed 002's last "Exercice" (convolution layer), and seed 003's counting exercises.

The exercise: a 3x3 input with 2 channels,

    x[:, :, 0] = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    x[:, :, 1] = [[1.5, 2.5, 3.5], [4.5, 5.5, 6.5], [7.5, 8.5, 9.5]]

(the notes' stacked listing prints 9.6 for the last value, a typo: the per-channel
matrix and the printed ``output2 = [[51, 63], [87, 99]]`` both need 9.5), one 2x2x2
filter ``[[1, 2], [3, 4]]`` / ``[[1.5, 2.5], [3.5, 4.5]]``, bias ``B = [2]``, stride 1,
no padding.

Errata, pinned below:

1. Forward. The notes print ``output = [[90, 112], [156, 178]]``: they add the bias to
   each channel's correlation before summing (``output1 + B`` and ``output2 + B``, and
   the chapter's ``ConvLayer`` adds ``self.bias[k]`` inside its loop over input
   channels), so the bias is counted once per input channel. A convolution layer adds it
   once per output map: ``37 + 49 + 2 = 88`` and the correct output is
   ``[[88, 110], [154, 176]]``. The notes' numbers are the correct ones plus
   ``(C - 1) * b = 2``.
2. Backward. With the exercise's upstream gradient ``dE/dY = [[0, 0], [0, 0.5]]`` the
   notes' dW and dX are right, and our layer reproduces them exactly. Their bias
   gradient ``dBias[k] = layer_depth * sum(dE/dY[:, :, k])`` is wrong: the bias of map k
   is added once to every output of map k, so ``dE/db[k] = sum(dE/dY[:, :, k])``,
   without the number of output maps as a factor. In the exercise ``layer_depth = 1``,
   which hides the error (0.5 either way); with two output maps the notes' formula
   doubles the gradient, which a finite difference exposes. (For the notes' own forward
   pass, which counts the bias C times, the right factor would have been C, not the
   number of output maps.)
"""

import numpy as np
import pytest

from cnnumpy.layers import Conv2D
from gradcheck import numerical_gradient

X0 = np.array([[1.0, 2, 3], [4, 5, 6], [7, 8, 9]])
X1 = X0 + 0.5
W0 = np.array([[1.0, 2], [3, 4]])
W1 = W0 + 0.5
DOUT = np.array([[0.0, 0], [0, 0.5]])


def _exercise_layer() -> Conv2D:
    layer = Conv2D(1, 2).astype(np.float64)
    layer.build((2, 3, 3))
    layer.params["W"][...] = np.stack([W0, W1])[None]  # (F=1, C=2, 2, 2)
    layer.params["b"][...] = 2.0
    return layer


def _correlate_valid(x, w):
    """The notes' ``signal.correlate2d(x, w, 'valid')``, written out."""
    kh, kw = w.shape
    return np.array(
        [
            [np.sum(x[i : i + kh, j : j + kw] * w) for j in range(x.shape[1] - kw + 1)]
            for i in range(x.shape[0] - kh + 1)
        ]
    )


def test_forward_correct_output_and_the_notes_variant():
    layer = _exercise_layer()
    x = np.stack([X0, X1])[None]  # (1, 2, 3, 3)
    y = layer.forward(x)
    np.testing.assert_array_equal(y[0, 0], [[88, 110], [154, 176]])

    # The notes' ConvLayer.forward_propagation: bias added inside the channel loop.
    notes = np.zeros((2, 2))
    for x_d, w_d in ((X0, W0), (X1, W1)):
        notes += _correlate_valid(x_d, w_d) + 2.0
    np.testing.assert_array_equal(_correlate_valid(X0, W0) + 2, [[39, 49], [69, 79]])
    np.testing.assert_array_equal(_correlate_valid(X1, W1) + 2, [[51, 63], [87, 99]])
    np.testing.assert_array_equal(notes, [[90, 112], [156, 178]])  # the notes' print
    np.testing.assert_array_equal(notes - y[0, 0], 2.0)  # (C - 1) * b too much

    # The notes' MSE against y_train = [[90, 112], [156, 177]] gives their dE/dY.
    y_train = np.array([[90.0, 112], [156, 177]])
    assert np.mean((notes - y_train) ** 2) == 0.25
    np.testing.assert_array_equal(2 / 4 * (notes - y_train), DOUT)


def test_backward_matches_the_exercise_exactly():
    layer = _exercise_layer()
    layer.forward(np.stack([X0, X1])[None])
    dx = layer.backward(DOUT[None, None])
    np.testing.assert_array_equal(layer.grads["W"][0, 0], [[2.5, 3], [4, 4.5]])
    np.testing.assert_array_equal(layer.grads["W"][0, 1], [[2.75, 3.25], [4.25, 4.75]])
    np.testing.assert_array_equal(dx[0, 0], [[0, 0, 0], [0, 0.5, 1], [0, 1.5, 2]])
    np.testing.assert_array_equal(
        dx[0, 1], [[0, 0, 0], [0, 0.75, 1.25], [0, 1.75, 2.25]]
    )
    np.testing.assert_array_equal(layer.grads["b"], [0.5])  # sum(dE/dY)

    # The update the notes leave blank, with alpha = 0.1.
    w_new = layer.params["W"] - 0.1 * layer.grads["W"]
    b_new = layer.params["b"] - 0.1 * layer.grads["b"]
    np.testing.assert_allclose(w_new[0, 0], [[0.75, 1.7], [2.6, 3.55]], rtol=1e-15)
    np.testing.assert_allclose(
        w_new[0, 1], [[1.225, 2.175], [3.075, 4.025]], rtol=1e-15
    )
    np.testing.assert_allclose(b_new, [1.95], rtol=1e-15)


def test_bias_gradient_has_no_layer_depth_factor():
    rng = np.random.default_rng(0)
    layer = Conv2D(2, 2).astype(np.float64)  # layer_depth = 2 output maps
    x = rng.standard_normal((1, 2, 3, 3))
    dout = rng.standard_normal((1, 2, 2, 2))
    layer.forward(x)
    layer.backward(dout)
    numeric = numerical_gradient(lambda: layer.forward(x), layer.params["b"], dout)
    np.testing.assert_allclose(layer.grads["b"], numeric, rtol=1e-7)
    np.testing.assert_allclose(layer.grads["b"], dout.sum(axis=(0, 2, 3)), rtol=1e-12)
    notes_formula = 2 * dout.sum(axis=(0, 2, 3))  # layer_depth * sum
    assert not np.allclose(notes_formula, numeric)


# -- seed 003's counting exercises (see /work/shared/ZOO.md) ---------------------------
def _neurons(layer, input_shape):
    return int(np.prod(layer.output_shape(input_shape)))


@pytest.mark.parametrize(
    "layer,input_shape,params,neurons",
    [
        (Conv2D(10, 5, padding="same", use_bias=False), (3, 32, 32), 750, 10_240),
        (Conv2D(10, 5, padding="same"), (3, 32, 32), 760, 10_240),
        (Conv2D(10, 5, padding="valid"), (3, 32, 32), 760, 7_840),
        (Conv2D(6, 5, padding="valid", use_bias=False), (1, 100, 100), 150, 55_296),
        (Conv2D(6, 5, padding="same", use_bias=False), (3, 32, 32), 450, 6_144),
        (
            Conv2D(6, 5, stride=3, padding="valid", use_bias=False),
            (3, 32, 32),
            450,
            600,
        ),
    ],
)
def test_counting_exercises(layer, input_shape, params, neurons):
    layer.build(input_shape)
    assert layer.count_params() == params
    assert _neurons(layer, input_shape) == neurons


@pytest.mark.parametrize(
    "padding,neurons", [("same", [3_072, 5_120, 4_096]), ("valid", [2_028, 1_620, 256])]
)
def test_three_layer_exercise(padding, neurons):
    shape = (3, 32, 32)
    counts = []
    for filters, kernel in ((3, 7), (5, 9), (4, 11)):
        layer = Conv2D(filters, kernel, padding=padding, use_bias=False)
        layer.build(shape)
        counts.append(layer.count_params())
        shape = layer.output_shape(shape)
        assert int(np.prod(shape)) == neurons[len(counts) - 1]
    assert counts == [441, 1_215, 2_420] and sum(counts) == 4_076
    assert sum(neurons) == (12_288 if padding == "same" else 3_904)
