"""Conv2D / Conv1D: gradients, naive twins, output sizes, padding modes, bad input."""

import json

import engine_modes
import numpy as np
import pytest

from cnnumpy.engine.kernels.conv import (
    conv1d_backward,
    conv1d_forward,
    conv2d_backward,
    conv2d_forward,
    resolve_padding,
)
from cnnumpy.engine.kernels.im2col import col2im, im2col, pad2d, pad2d_backward
from cnnumpy.layers import Conv1D, Conv2D
from cnnumpy.textbook.loops import (
    conv1d_backward_loops,
    conv1d_forward_loops,
    conv2d_backward_loops,
    conv2d_forward_loops,
)
from gradcheck import check_layer_gradients, numerical_gradient


@pytest.fixture(autouse=True, params=engine_modes.modes("conv2d"))
def engine_mode(request):
    """Every test once per mode: the engine, the book, each conv2d kernel forced."""
    with engine_modes.running(request.param):
        yield request.param


# (kernel, stride, padding, padding_mode, (H, W), allow_uneven): all valid D-F-S combos.
CASES_2D = [
    (3, 1, 0, "zeros", (5, 5), False),
    (3, 1, 1, "zeros", (5, 5), False),
    (3, 2, 1, "zeros", (5, 5), False),
    (3, 2, 0, "zeros", (7, 5), False),
    (1, 1, 0, "zeros", (5, 5), False),
    (1, 2, 0, "zeros", (5, 3), False),
    (2, 1, 0, "zeros", (5, 4), False),
    (2, 2, 0, "zeros", (4, 6), False),
    ((2, 3), (1, 2), (1, 1), "zeros", (5, 5), False),
    ((3, 1), 1, (1, 0), "zeros", (5, 4), False),
    (3, 1, "same", "zeros", (5, 5), False),
    (2, 1, "same", "zeros", (5, 4), False),
    (4, 1, "same", "reflect", (5, 5), False),
    (3, 2, "same", "zeros", (6, 5), False),
    (3, 1, "valid", "zeros", (5, 6), False),
    (3, 1, 1, "reflect", (5, 5), False),
    (3, 1, (2, 1), "reflect", (5, 4), False),
    (3, 1, 2, "replicate", (5, 5), False),
    (2, 1, "same", "replicate", (5, 5), False),
    (3, 2, 1, "replicate", (7, 5), False),
    (3, 2, 0, "zeros", (6, 6), True),
    (3, 3, 1, "reflect", (6, 5), True),
]
IDS_2D = [f"k{c[0]}-s{c[1]}-p{c[2]}-{c[3]}-{c[4][0]}x{c[4][1]}" for c in CASES_2D]

# (kernel, stride, padding, padding_mode, L, allow_uneven)
CASES_1D = [
    (3, 1, 0, "zeros", 7, False),
    (3, 2, 1, "zeros", 7, False),
    (1, 1, 0, "zeros", 5, False),
    (2, 1, "same", "zeros", 6, False),
    (3, 1, "same", "reflect", 5, False),
    (4, 1, (2, 1), "replicate", 5, False),
    (3, 1, "valid", "replicate", 6, False),
    (5, 3, 0, "zeros", 9, True),
]
IDS_1D = [f"k{c[0]}-s{c[1]}-p{c[2]}-{c[3]}-L{c[4]}" for c in CASES_1D]


def _conv2d(kernel, stride, padding, mode, uneven, use_bias=True, filters=3):
    return Conv2D(
        filters,
        kernel,
        stride=stride,
        padding=padding,
        padding_mode=mode,
        use_bias=use_bias,
        allow_uneven=uneven,
    )


# -- finite-difference gradient checks (float64) ---------------------------------------
@pytest.mark.parametrize("kernel,stride,padding,mode,size,uneven", CASES_2D, ids=IDS_2D)
def test_conv2d_gradients(kernel, stride, padding, mode, size, uneven):
    layer = _conv2d(kernel, stride, padding, mode, uneven)
    x = np.random.default_rng(0).standard_normal((2, 2, *size))
    check_layer_gradients(layer, x)


@pytest.mark.parametrize("use_bias", [True, False])
def test_conv2d_gradients_batch1_and_bias(use_bias):
    layer = Conv2D(2, 3, stride=2, padding=1, use_bias=use_bias)
    x = np.random.default_rng(0).standard_normal((1, 3, 5, 7))
    check_layer_gradients(layer, x)
    assert ("b" in layer.params) == use_bias


@pytest.mark.parametrize(
    "kernel,stride,padding,mode,length,uneven", CASES_1D, ids=IDS_1D
)
def test_conv1d_gradients(kernel, stride, padding, mode, length, uneven):
    layer = Conv1D(
        3,
        kernel,
        stride=stride,
        padding=padding,
        padding_mode=mode,
        allow_uneven=uneven,
    )
    x = np.random.default_rng(0).standard_normal((2, 2, length))
    check_layer_gradients(layer, x)


def test_conv1d_gradients_no_bias_batch1():
    layer = Conv1D(2, 3, padding=1, use_bias=False)
    check_layer_gradients(layer, np.random.default_rng(0).standard_normal((1, 3, 5)))
    assert set(layer.grads) == {"W"}


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate"])
def test_pad2d_backward_matches_finite_differences(mode):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 1, 4, 5))
    pads = ((2, 1), (3, 0))
    dout = rng.standard_normal(pad2d(x, pads, mode).shape)
    numeric = numerical_gradient(lambda: pad2d(x, pads, mode), x, dout)
    np.testing.assert_allclose(
        pad2d_backward(dout, pads, mode), numeric, rtol=1e-6, atol=1e-9
    )


# -- naive twin == vectorised kernel ---------------------------------------------------
@pytest.mark.parametrize("kernel,stride,padding,mode,size,uneven", CASES_2D, ids=IDS_2D)
def test_conv2d_matches_naive(kernel, stride, padding, mode, size, uneven):
    rng = np.random.default_rng(0)
    KH, KW = (kernel, kernel) if np.isscalar(kernel) else kernel
    x = rng.standard_normal((2, 3, *size))
    w = rng.standard_normal((4, 3, KH, KW))
    b = rng.standard_normal(4)
    out, cache = conv2d_forward(x, w, b, stride, padding, mode)
    out_naive, cache_naive = conv2d_forward_loops(x, w, b, stride, padding, mode)
    assert out.shape == out_naive.shape
    np.testing.assert_allclose(out, out_naive, rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    for got, want in zip(
        conv2d_backward(dout, cache),
        conv2d_backward_loops(dout, cache_naive),
        strict=True,
    ):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "kernel,stride,padding,mode,length,uneven", CASES_1D, ids=IDS_1D
)
def test_conv1d_matches_naive(kernel, stride, padding, mode, length, uneven):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, length))
    w = rng.standard_normal((4, 3, kernel))
    out, cache = conv1d_forward(x, w, None, stride, padding, mode)
    out_naive, cache_naive = conv1d_forward_loops(x, w, None, stride, padding, mode)
    np.testing.assert_allclose(out, out_naive, rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = conv1d_backward(dout, cache)
    dx_n, dw_n, db_n = conv1d_backward_loops(dout, cache_naive)
    assert db is None and db_n is None
    np.testing.assert_allclose(dx, dx_n, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, dw_n, rtol=1e-12, atol=1e-12)


def test_backward_need_dx_false_skips_dx():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3))
    out, cache = conv2d_forward(x, w, None, 1, 1)
    dx, dw, db = conv2d_backward(np.ones_like(out), cache, need_dx=False)
    assert dx is None and db is None and dw.shape == w.shape
    layer = Conv2D(3, 3)
    layer.need_input_grad = False
    y = layer.forward(x.astype(np.float32))
    assert layer.backward(np.ones_like(y)) is None
    assert layer.grads["W"].shape == (3, 2, 3, 3) and layer.grads["b"].shape == (3,)


def test_im2col_col2im_are_adjoint():
    # <im2col(x), c> == <x, col2im(c)>: col2im is the transpose of im2col.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6))
    cols = im2col(x, (3, 2), (2, 1))
    c = rng.standard_normal(cols.shape)
    back = col2im(c, x.shape, (3, 2), (2, 1))
    np.testing.assert_allclose(np.sum(cols * c), np.sum(x * back), rtol=1e-12)


# -- padding modes: the notes' 1-D example (seed 003) ----------------------------------
@pytest.mark.parametrize(
    "mode,expected",
    [
        ("zeros", [0, 10, 20, 30, 40, 50, 0]),
        ("reflect", [20, 10, 20, 30, 40, 50, 40]),
        ("replicate", [10, 10, 20, 30, 40, 50, 50]),
    ],
)
def test_pad2d_notes_example(mode, expected):
    f = np.array([[[[10.0, 20, 30, 40, 50]]]])
    np.testing.assert_array_equal(pad2d(f, ((0, 0), (1, 1)), mode)[0, 0, 0], expected)


# -- output sizes: (H - F + 2P) / S + 1 ------------------------------------------------
@pytest.mark.parametrize(
    "layer,input_shape,expected",
    [
        (Conv2D(1, 3), (1, 7, 7), (1, 5, 5)),  # notes: 7x7, 3x3, S=1
        (Conv2D(1, 3, stride=2), (1, 7, 7), (1, 3, 3)),  # notes: S=2 -> 3x3
        (Conv2D(6, 5, stride=3), (3, 32, 32), (6, 10, 10)),  # notes: (32-5)/3+1 = 10
        (Conv2D(6, 5, padding="valid"), (1, 100, 100), (6, 96, 96)),
        (Conv2D(10, 5, padding="same"), (3, 32, 32), (10, 32, 32)),
        (Conv2D(4, 2, padding="same"), (3, 7, 6), (4, 7, 6)),
        (Conv2D(4, 3, stride=2, padding="same"), (3, 7, 6), (4, 4, 3)),  # ceil(H / S)
        (Conv2D(16, 5, padding=2), (3, 32, 32), (16, 32, 32)),
        (Conv2D(2, (3, 5), stride=(2, 1), padding=(1, 0)), (1, 9, 9), (2, 5, 5)),
        (Conv2D(8, 1), (3, 5, 7), (8, 5, 7)),
        (
            Conv2D(1, 7, stride=2, padding=3, allow_uneven=True),
            (3, 224, 224),
            (1, 112, 112),
        ),
        (Conv1D(4, 3), (2, 10), (4, 8)),
        (Conv1D(4, 5, stride=3, padding=1), (2, 9), (4, 3)),
        (Conv1D(4, 4, padding="same"), (2, 9), (4, 9)),
    ],
)
def test_output_shape_follows_formula(layer, input_shape, expected):
    assert layer.output_shape(input_shape) == expected
    x = (
        np.zeros((2, *input_shape), dtype=np.float32)
        if np.prod(input_shape) < 1e5
        else None
    )
    if x is not None:
        assert layer.forward(x).shape == (2, *expected)


def test_same_padding_even_kernel_is_asymmetric_like_keras():
    assert resolve_padding("same", (2, 4)) == ((0, 1), (1, 2))
    assert resolve_padding("same", (3, 3)) == ((1, 1), (1, 1))


# -- dtypes, config, repr --------------------------------------------------------------
def test_dtype_float32_by_default_and_float64_after_astype():
    layer = Conv2D(2, 3)
    y = layer.forward(
        np.ones((1, 1, 4, 4))
    )  # float64 input is cast to the params' dtype
    assert y.dtype == np.float32 and layer.params["W"].dtype == np.float32
    assert layer.backward(np.ones_like(y)).dtype == np.float32
    layer.astype(np.float64)
    assert layer.forward(np.ones((1, 1, 4, 4), dtype=np.float32)).dtype == np.float64


def test_config_roundtrip_and_repr():
    layer = Conv2D(
        16, (3, 5), stride=2, padding="same", padding_mode="reflect", use_bias=False
    )
    config = json.loads(json.dumps(layer.get_config()))
    clone = Conv2D.from_config(config)
    assert clone.get_config() == layer.get_config()
    assert repr(layer) == (
        "Conv2D(16, (3, 5), stride=2, padding='same', padding_mode='reflect', "
        "use_bias=False)"
    )
    assert repr(Conv2D(16, 3)) == "Conv2D(16, 3)"
    assert repr(Conv1D(4, 3, padding=(1, 0))) == "Conv1D(4, 3, padding=(1, 0))"
    layer.build((3, 8, 8))
    assert layer.params["W"].shape == (16, 3, 3, 5) and "b" not in layer.params
    assert Conv1D(4, 3).output_shape((2, 6)) == (4, 4)


# -- bad input -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (
            {"filters": 0, "kernel_size": 3},
            ValueError,
            r"filters must be a positive int, got 0",
        ),
        (
            {"filters": 2.5, "kernel_size": 3},
            ValueError,
            r"filters must be a positive int",
        ),
        (
            {"filters": 4, "kernel_size": 0},
            ValueError,
            r"kernel_size must be positive, got 0",
        ),
        (
            {"filters": 4, "kernel_size": (3, 3, 3)},
            TypeError,
            r"kernel_size must be an int or a pair",
        ),
        (
            {"filters": 4, "kernel_size": 3, "stride": (1, 0)},
            ValueError,
            r"stride must be positive",
        ),
        (
            {"filters": 4, "kernel_size": 3, "padding": -1},
            ValueError,
            r"padding must be non-negative",
        ),
        (
            {"filters": 4, "kernel_size": 3, "padding": "full"},
            ValueError,
            r"padding must be 'valid', 'same', an int or a pair, got 'full'",
        ),
        (
            {"filters": 4, "kernel_size": 3, "padding": 1.5},
            TypeError,
            r"padding must be",
        ),
        (
            {"filters": 4, "kernel_size": 3, "padding_mode": "circular"},
            ValueError,
            (
                r"padding_mode must be one of \('zeros', 'reflect', 'replicate'\), "
                r"got 'circular'"
            ),
        ),
        (
            {"filters": 4, "kernel_size": 3, "use_bias": "yes"},
            TypeError,
            r"use_bias and allow_uneven",
        ),
        (
            {"filters": 4, "kernel_size": 3, "kernel_initializer": "bogus"},
            ValueError,
            r"Conv2D\(4, 3\): unknown initializer 'bogus'",
        ),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        Conv2D(**kwargs)


def test_conv1d_rejects_pair_kernel():
    with pytest.raises(
        TypeError, match=r"Conv1D\(4, \(3, 3\)\): kernel_size must be an int"
    ):
        Conv1D(4, (3, 3))


@pytest.mark.parametrize(
    "layer,shape,match",
    [
        (
            Conv2D(4, 3),
            (2, 3, 8),
            r"Conv2D\(4, 3\): expected input of rank 4 \(N, C, H, W\)",
        ),
        (
            Conv1D(4, 3),
            (2, 3, 8, 8),
            r"Conv1D\(4, 3\): expected input of rank 3 \(N, C, L\)",
        ),
        (
            Conv2D(4, 5),
            (2, 1, 4, 4),
            (
                r"kernel height 5 is larger than the padded input height "
                r"4 \+ 0 = 4"
            ),
        ),
        (
            Conv2D(4, (3, 7), padding=1),
            (2, 1, 8, 4),
            (
                r"kernel width 7 is larger than the padded "
                r"input width 4 \+ 2 = 6"
            ),
        ),
        (
            Conv2D(4, 3, padding=3, padding_mode="reflect"),
            (2, 1, 3, 8),
            (
                r"reflect padding needs padding < input height, "
                r"got padding \(3, 3\) for input height 3"
            ),
        ),
        (
            Conv2D(4, 3, stride=3),
            (2, 1, 7, 7),
            (
                r"invalid D-F-S combination along height: \(D - F \+ 2P\) / S \+ 1 = "
                r"\(7 - 3 \+ 0\) / 3 \+ 1 is not an integer \(4 is not divisible by 3\)"
            ),
        ),
        (
            Conv1D(1, 5, stride=3),
            (1, 1, 9),  # the notes' D=9, F=5, S=3 example
            r"invalid D-F-S combination along length: .*\(9 - 5 \+ 0\) / 3 \+ 1",
        ),
    ],
)
def test_forward_rejects_bad_input(layer, shape, match):
    with pytest.raises(ValueError, match=match):
        layer.forward(np.zeros(shape, dtype=np.float32))


def test_wrong_channel_count_after_build():
    layer = Conv2D(16, 3)
    layer.build((3, 28, 28))
    with pytest.raises(
        ValueError,
        match=r"Conv2D\(16, 3\): expected input \(N, 3, H, W\), "
        r"got \(64, 1, 28, 28\)",
    ):
        layer.forward(np.zeros((64, 1, 28, 28), dtype=np.float32))
    with pytest.raises(
        ValueError, match=r"expected input \(N, 3, H, W\), got \(N, \*\(1, 5, 5\)"
    ):
        layer.output_shape((1, 5, 5))
    with pytest.raises(
        ValueError, match=r"expected input shape \(C, H, W\) without the batch"
    ):
        layer.output_shape((3, 5))


def test_backward_misuse():
    layer = Conv2D(2, 3)
    with pytest.raises(
        ValueError, match=r"Conv2D\(2, 3\): backward\(\) called before forward"
    ):
        layer.backward(np.zeros((1, 2, 3, 3)))
    layer.forward(np.zeros((1, 1, 5, 5), dtype=np.float32))
    with pytest.raises(
        ValueError, match=r"expected dout of shape \(1, 2, 3, 3\), got \(1, 2, 4"
    ):
        layer.backward(np.zeros((1, 2, 4, 4)))


def test_pad2d_reflect_too_large_raises():
    with pytest.raises(
        ValueError, match=r"reflect padding needs each pad < the input size"
    ):
        pad2d(np.zeros((1, 1, 2, 5)), 2, "reflect")
