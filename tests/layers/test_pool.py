"""Pooling: finite differences, naive loop twins, shapes, the notes' example, errors."""

import engine_modes
import numpy as np
import pytest

from cnnumpy.engine import ops
from cnnumpy.layers import AvgPool1D, AvgPool2D, GlobalAvgPool2D, MaxPool1D, MaxPool2D
from cnnumpy.textbook import loops as PN
from tests.gradcheck import check_layer_gradients


@pytest.fixture(autouse=True, params=engine_modes.modes("maxpool2d", "avgpool2d"))
def engine_mode(request):
    """Every test once per mode: the engine, the book, each pooling kernel forced."""
    with engine_modes.running(request.param):
        yield request.param


# (pool, stride, padding, input shape): tiling 2x2/2, non-dividing sizes, overlapping
# 3x3/2 (AlexNet), padding, stride 1, batch 1, rectangular windows.
CASES_2D = [
    (2, None, 0, (2, 2, 4, 4)),
    (2, 2, 0, (2, 2, 5, 5)),
    (3, 2, 0, (2, 2, 5, 5)),
    (3, 2, 1, (2, 2, 5, 6)),
    (2, 1, 0, (1, 2, 4, 5)),
    (3, 3, 0, (1, 1, 7, 8)),
    ((2, 3), (1, 2), (1, 1), (2, 1, 5, 6)),
]
CASES_1D = [
    (2, None, 0, (2, 2, 6)),
    (2, 2, 0, (2, 2, 7)),
    (3, 2, 1, (2, 3, 7)),
    (3, 1, 0, (1, 2, 5)),
]
IDS_2D = [f"k{c[0]}-s{c[1]}-p{c[2]}-{c[3]}" for c in CASES_2D]
IDS_1D = [f"k{c[0]}-s{c[1]}-p{c[2]}-{c[3]}" for c in CASES_1D]

FUNCS_2D = {
    "max": (ops.maxpool2d, PN.maxpool2d_forward_loops, PN.maxpool2d_backward_loops),
    "avg": (ops.avgpool2d, PN.avgpool2d_forward_loops, PN.avgpool2d_backward_loops),
}
FUNCS_1D = {
    "max": (MaxPool1D, PN.maxpool1d_forward_loops, PN.maxpool1d_backward_loops),
    "avg": (AvgPool1D, PN.avgpool1d_forward_loops, PN.avgpool1d_backward_loops),
}


# -- finite differences, float64 -------------------------------------------------------
@pytest.mark.parametrize("cls", [MaxPool2D, AvgPool2D])
@pytest.mark.parametrize(("pool", "stride", "padding", "shape"), CASES_2D, ids=IDS_2D)
def test_pool2d_gradcheck(cls, pool, stride, padding, shape, rng):
    x = rng.standard_normal(shape)  # continuous values: no ties, max is differentiable
    check_layer_gradients(cls(pool, stride=stride, padding=padding), x)


@pytest.mark.parametrize("cls", [MaxPool1D, AvgPool1D])
@pytest.mark.parametrize(("pool", "stride", "padding", "shape"), CASES_1D, ids=IDS_1D)
def test_pool1d_gradcheck(cls, pool, stride, padding, shape, rng):
    x = rng.standard_normal(shape)
    check_layer_gradients(cls(pool, stride=stride, padding=padding), x)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 2, 3, 3), (2, 1, 1, 1)])
def test_global_avgpool_gradcheck(shape, rng):
    check_layer_gradients(GlobalAvgPool2D(), rng.standard_normal(shape))


# -- the naive loop twins agree with the fast kernels ----------------------------------
def _inputs(shape, rng):
    """Continuous values, and small integers (many ties inside the windows)."""
    return [rng.standard_normal(shape), rng.integers(-2, 3, shape).astype(np.float64)]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize(("pool", "stride", "padding", "shape"), CASES_2D, ids=IDS_2D)
def test_pool2d_naive_twin(kind, pool, stride, padding, shape, rng):
    op, fwd_naive, bwd_naive = FUNCS_2D[kind]
    stride = pool if stride is None else stride
    for x in _inputs(shape, rng):
        out, cache = op.forward(x, pool, stride, padding)
        out_naive, cache_naive = fwd_naive(x, pool, stride, padding)
        assert out.shape == out_naive.shape
        np.testing.assert_allclose(out, out_naive, rtol=1e-12, atol=1e-12)
        dout = rng.standard_normal(out.shape)
        dx, dx_naive = op.backward(dout, cache), bwd_naive(dout, cache_naive)
        assert dx.shape == dx_naive.shape == x.shape
        np.testing.assert_allclose(dx, dx_naive, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize(("pool", "stride", "padding", "shape"), CASES_1D, ids=IDS_1D)
def test_pool1d_naive_twin(kind, pool, stride, padding, shape, rng):
    cls, fwd_naive, bwd_naive = FUNCS_1D[kind]
    stride = pool if stride is None else stride
    for x in _inputs(shape, rng):
        layer = cls(pool, stride, padding)
        layer.need_input_grad = True
        out = layer.forward(x)
        out_naive, cache_naive = fwd_naive(x, pool, stride, padding)
        np.testing.assert_allclose(out, out_naive, rtol=1e-12, atol=1e-12)
        dout = rng.standard_normal(out.shape)
        dx, dx_naive = layer.backward(dout), bwd_naive(dout, cache_naive)
        assert dx.shape == dx_naive.shape == x.shape
        np.testing.assert_allclose(dx, dx_naive, rtol=1e-12, atol=1e-12)


def test_global_avgpool_naive_twin(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    out, cache = ops.global_avgpool2d.forward(x)
    out_naive, cache_naive = PN.global_avgpool2d_forward_loops(x)
    np.testing.assert_allclose(out, out_naive, rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    np.testing.assert_allclose(
        ops.global_avgpool2d.backward(dout, cache),
        PN.global_avgpool2d_backward_loops(dout, cache_naive),
        rtol=1e-12,
        atol=1e-12,
    )


# -- ties, the notes' example, shapes --------------------------------------------------
NOTES_IMAGE = np.array(
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


def test_maxpool_notes_example():
    """Seed 003, "Max pool par filtre valid 2x2 avec stride = 2"."""
    expected = [[7, 8, 9, 6], [9, 9, 5, 3], [0, 6, 9, 8], [9, 8, 7, 4]]
    layer = MaxPool2D(2)
    out = layer.forward(NOTES_IMAGE[None, None])
    np.testing.assert_array_equal(out[0, 0], expected)
    dx = layer.backward(np.ones_like(out))[0, 0]
    # The all-5 window (rows 2-3, cols 4-5) passes its gradient to its first element.
    np.testing.assert_array_equal(dx[2:4, 4:6], [[1, 0], [0, 0]])
    assert dx.sum() == 16 and np.count_nonzero(dx) == 16


@pytest.mark.parametrize(("pool", "stride"), [(2, 2), (3, 2), (2, 1), (3, 3)])
def test_maxpool_ties_one_winner_per_window(pool, stride):
    x = np.zeros((1, 1, 7, 7))
    layer = MaxPool2D(pool, stride=stride)
    out = layer.forward(x)
    dx = layer.backward(np.ones_like(out))
    # Each window sends its gradient once, to its top-left element (first in row-major).
    assert dx.sum() == out.size
    H_out, W_out = out.shape[2:]
    expected = np.zeros((7, 7))
    for h in range(H_out):
        for w in range(W_out):
            expected[h * stride, w * stride] += 1
    np.testing.assert_array_equal(dx[0, 0], expected)


@pytest.mark.parametrize(
    ("layer", "in_shape", "out_shape"),
    [
        (MaxPool2D(2), (3, 28, 28), (3, 14, 14)),
        (MaxPool2D(2), (3, 7, 9), (3, 3, 4)),
        (MaxPool2D(3, stride=2), (96, 55, 55), (96, 27, 27)),  # AlexNet, seed 003
        (MaxPool2D(3, stride=2), (256, 27, 27), (256, 13, 13)),
        (MaxPool2D(3, stride=2), (256, 13, 13), (256, 6, 6)),
        (AvgPool2D(2), (6, 24, 24), (6, 12, 12)),  # LeNet-5
        (AvgPool2D(3, stride=1, padding=1), (2, 5, 5), (2, 5, 5)),
        (MaxPool2D((2, 3), stride=(1, 2)), (1, 5, 6), (1, 4, 2)),
        (GlobalAvgPool2D(), (8, 5, 7), (8,)),
        (MaxPool1D(2), (4, 9), (4, 4)),
        (AvgPool1D(3, stride=2, padding=1), (4, 9), (4, 5)),
    ],
)
def test_output_shape(layer, in_shape, out_shape):
    assert layer.output_shape(in_shape) == out_shape
    x = np.zeros((2, *in_shape), dtype=np.float32)
    if np.prod(in_shape) < 100_000:
        y = layer.forward(x)
        assert y.shape == (2, *out_shape) and y.dtype == np.float32


def test_dtype_and_varying_sizes(rng):
    layer = MaxPool2D(2)
    assert layer.forward(rng.standard_normal((1, 1, 4, 4))).dtype == np.float64
    assert layer.forward(np.ones((1, 1, 6, 6), dtype=np.int64)).dtype == np.float32
    assert layer.forward(np.ones((2, 3, 8, 8), dtype=np.float32)).shape == (2, 3, 4, 4)
    assert layer.backward(np.ones((2, 3, 4, 4), np.float32)).dtype == np.float32


def test_config_roundtrip():
    layer = MaxPool2D((2, 3), stride=1, padding=(1, 0))
    config = layer.get_config()
    assert config == {"pool_size": [2, 3], "stride": 1, "padding": [1, 0], "name": None}
    clone = MaxPool2D.from_config(config)
    assert (clone.pool_size, clone.stride, clone.padding) == ((2, 3), (1, 1), (1, 0))
    assert repr(MaxPool2D(3, stride=2)) == "MaxPool2D(3, stride=2)"
    assert repr(AvgPool1D(2)) == "AvgPool1D(2)"


def test_stride_defaults_to_pool_size():
    assert MaxPool2D(3).stride == (3, 3)
    assert AvgPool1D(4).stride == (4,)


# -- bad input -------------------------------------------------------------------------
def test_bad_rank():
    with pytest.raises(
        ValueError,
        match=r"MaxPool2D\(2\): expected input of rank 4 "
        r"\(N, C, H, W\), got shape \(2, 3, 4\)",
    ):
        MaxPool2D(2).forward(np.zeros((2, 3, 4)))
    with pytest.raises(
        ValueError,
        match=r"MaxPool1D\(2\): expected input of rank 3 "
        r"\(N, C, L\), got shape \(2, 3, 4, 4\)",
    ):
        MaxPool1D(2).forward(np.zeros((2, 3, 4, 4)))
    with pytest.raises(
        ValueError, match=r"GlobalAvgPool2D\(\): expected input of rank 4"
    ):
        GlobalAvgPool2D().forward(np.zeros((2, 3)))
    with pytest.raises(
        TypeError, match=r"AvgPool2D\(2\): expected a numpy array, got list"
    ):
        AvgPool2D(2).forward([[1.0]])


def test_window_larger_than_input():
    with pytest.raises(
        ValueError,
        match=r"MaxPool2D\(3\): pool window \(3, 3\) is larger "
        r"than the padded input \(2, 2\)",
    ):
        MaxPool2D(3).forward(np.zeros((1, 1, 2, 2)))
    layer = AvgPool2D(3, padding=1)
    assert layer.forward(np.zeros((1, 1, 1, 1))).shape == (1, 1, 1, 1)  # 3 <= 1 + 2
    built = MaxPool2D(2)
    built.forward(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match=r"padded input \(1, 4\)"):
        built.forward(np.zeros((1, 1, 1, 4)))
    with pytest.raises(
        ValueError, match=r"MaxPool1D\(4\): pool window \(4,\) is larger"
    ):
        MaxPool1D(4).forward(np.zeros((1, 1, 3)))


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda: MaxPool2D(2, padding=2),
            ValueError,
            r"MaxPool2D: padding must be between 0 and half the pool size, got pad",
        ),
        (
            lambda: AvgPool2D(3, padding=(0, 2)),
            ValueError,
            r"AvgPool2D: padding must be",
        ),
        (lambda: MaxPool2D(2, padding=-1), ValueError, r"padding must be between 0"),
        (
            lambda: MaxPool2D(0),
            ValueError,
            r"MaxPool2D: pool_size and stride must be >= 1, got pool_size=0",
        ),
        (lambda: AvgPool2D(2, stride=0), ValueError, r"stride must be >= 1"),
        (
            lambda: MaxPool2D("2"),
            TypeError,
            r"MaxPool2D: pool_size must be an int or a pair of ints, got '2'",
        ),
        (
            lambda: MaxPool2D(2, stride=1.5),
            TypeError,
            r"stride must be an int or a pair",
        ),
        (lambda: MaxPool1D((2, 2)), TypeError, r"MaxPool1D: pool_size must be an int"),
        (lambda: AvgPool1D(3, padding=2), ValueError, r"AvgPool1D: padding must be"),
    ],
)
def test_bad_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_backward_before_forward():
    with pytest.raises(
        RuntimeError, match=r"MaxPool2D\(2\): backward called before forward"
    ):
        MaxPool2D(2).backward(np.zeros((1, 1, 1, 1)))


def test_backward_checks_dout_shape():
    layer = AvgPool2D(2)
    layer.forward(np.zeros((2, 1, 4, 4)))
    with pytest.raises(
        ValueError, match=r"AvgPool2D\(2\): expected dout of shape \(2, 1, 2, 2\)"
    ):
        layer.backward(np.zeros((2, 1, 4, 4)))
    layer = GlobalAvgPool2D()
    layer.forward(np.zeros((2, 3, 4, 4)))
    with pytest.raises(
        ValueError, match=r"expected dout of shape \(2, 3\), got \(3,\)"
    ):
        layer.backward(np.zeros(3))
