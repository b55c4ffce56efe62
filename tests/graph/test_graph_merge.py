"""Add, Multiply and Concatenate (cnnumpy/layers/merge.py, the book's
cnnumpy/textbook/merge.py): finite differences for every input, PyTorch's
``torch.add`` / ``torch.mul`` / ``torch.cat`` for outputs and gradients, shape errors
and configs.

Tolerances: finite differences ``rtol=1e-6, atol=1e-8`` (h = 1e-6 in float64: the
truncation error of a product of three inputs is ~h^2); PyTorch ``rtol=1e-12,
atol=1e-14`` in float64 (a sum, a product or a copy: the same operations in the same
order, up to the order of the sum over broadcast axes).
"""

import json

import engine_modes
import numpy as np
import pytest
import torch

from cnnumpy.layers import Add, Concatenate, Multiply, layer_from_config
from cnnumpy.layers import layer_to_config as to_config
from gradcheck import numerical_gradient

pytestmark = pytest.mark.torch


@pytest.fixture(autouse=True, params=engine_modes.modes())
def engine_mode(request):
    """Every test with the engine and with the book (the merges have no kernel of
    their own: both must run the book's code)."""
    with engine_modes.running(request.param):
        yield request.param


FD = {"rtol": 1e-6, "atol": 1e-8}
TORCH = {"rtol": 1e-12, "atol": 1e-14}

# (layer factory, per-input shapes with the batch axis, torch function)
CASES = {
    "add-2": (Add, [(3, 4, 5), (3, 4, 5)], lambda ts: torch.add(ts[0], ts[1])),
    "add-3": (Add, [(2, 3, 4, 4)] * 3, lambda ts: ts[0] + ts[1] + ts[2]),
    "add-broadcast": (Add, [(2, 3, 1, 1), (2, 3, 4, 5)], lambda ts: ts[0] + ts[1]),
    "add-batch-1": (Add, [(1, 6), (1, 6)], lambda ts: torch.add(ts[0], ts[1])),
    "mul-2": (Multiply, [(3, 4, 5), (3, 4, 5)], lambda ts: torch.mul(ts[0], ts[1])),
    "mul-gate": (
        Multiply,
        [(2, 3, 1, 1), (2, 3, 4, 5)],
        lambda ts: torch.mul(ts[0], ts[1]),
    ),
    "mul-3-broadcast": (
        Multiply,
        [(2, 3, 4, 5), (2, 1, 4, 5), (2, 3, 1, 1)],
        lambda ts: ts[0] * ts[1] * ts[2],
    ),
    "cat-channels": (
        lambda: Concatenate(axis=1),
        [(2, 1, 4, 4), (2, 3, 4, 4), (2, 2, 4, 4)],
        lambda ts: torch.cat(ts, dim=1),
    ),
    "cat-width": (
        lambda: Concatenate(axis=3),
        [(2, 3, 4, 2), (2, 3, 4, 5)],
        lambda ts: torch.cat(ts, dim=3),
    ),
    "cat-last-negative": (
        lambda: Concatenate(axis=-1),
        [(3, 2, 1), (3, 2, 4), (3, 2, 2)],
        lambda ts: torch.cat(ts, dim=-1),
    ),
    "cat-features": (
        Concatenate,
        [(4, 3), (4, 1)],
        lambda ts: torch.cat(ts, dim=1),
    ),
}


def _inputs(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


def _layer(make):
    layer = make()
    layer.astype(np.float64)
    return layer


@pytest.mark.parametrize("case", list(CASES))
def test_gradients_of_every_input_match_finite_differences(case):
    make, shapes, _ = CASES[case]
    layer = _layer(make)
    xs = _inputs(shapes)
    out = layer.forward(xs, training=True)
    dout = np.random.default_rng(1).standard_normal(out.shape)
    dxs = layer.backward(dout)
    assert isinstance(dxs, list) and len(dxs) == len(xs)
    for k, (x, dx) in enumerate(zip(xs, dxs, strict=True)):
        num = numerical_gradient(lambda: layer.forward(xs, training=True), x, dout)
        assert dx.shape == x.shape, f"dx[{k}] has shape {dx.shape}, not {x.shape}"
        np.testing.assert_allclose(dx, num, err_msg=f"dx[{k}]", **FD)
    assert layer.params == {} and layer.grads == {}


@pytest.mark.parametrize("case", list(CASES))
def test_outputs_and_gradients_match_torch(case):
    make, shapes, torch_fn = CASES[case]
    layer = _layer(make)
    xs = _inputs(shapes, seed=2)
    out = layer.forward(xs)
    ts = [torch.tensor(x, requires_grad=True) for x in xs]
    expected = torch_fn(ts)
    assert out.shape == tuple(expected.shape)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, expected.detach().numpy(), **TORCH)
    dout = np.random.default_rng(3).standard_normal(out.shape)
    expected.backward(torch.from_numpy(dout))
    for k, (dx, t) in enumerate(zip(layer.backward(dout), ts, strict=True)):
        assert dx.shape == tuple(t.grad.shape), f"dx[{k}] shape"
        np.testing.assert_allclose(dx, t.grad.numpy(), err_msg=f"dx[{k}]", **TORCH)
    # the layer's declared output shape is the one forward returned
    assert layer.output_shape([s[1:] for s in shapes]) == out.shape[1:]


def test_multiply_by_zero_has_the_product_of_the_others_as_gradient():
    """The book takes the product of the other inputs, never y / x_i."""
    layer = _layer(Multiply)
    a, b, c = _inputs([(2, 3)] * 3)
    a[0, 0] = 0.0
    layer.forward([a, b, c])
    da, db, dc = layer.backward(np.ones((2, 3)))
    assert np.all(np.isfinite(da))
    np.testing.assert_allclose(da, b * c, rtol=1e-15)
    assert db[0, 0] == 0.0 and dc[0, 0] == 0.0


def test_add_of_float32_inputs_in_a_float64_layer_is_float64():
    layer = _layer(Add)
    xs = [x.astype(np.float32) for x in _inputs([(2, 3), (2, 3)])]
    assert layer.forward(xs).dtype == np.float64


@pytest.mark.parametrize(
    "make, xs, error, message",
    [
        (
            Add,
            [np.zeros((2, 3)), np.zeros((2, 4))],
            ValueError,
            r"Add\(\): the input shapes \[\(3,\), \(4,\)\] do not broadcast",
        ),
        (
            Multiply,
            [np.zeros((2, 3, 4)), np.zeros((2, 2, 4))],
            ValueError,
            r"Multiply\(\): the input shapes .* do not broadcast to one shape",
        ),
        (
            Add,
            [np.zeros((2, 3)), np.zeros((3, 3))],
            ValueError,
            r"Add\(\): the inputs must have one batch size, got shapes "
            r"\[\(2, 3\), \(3, 3\)\]",
        ),
        (
            Add,
            [np.zeros((2, 3))],
            TypeError,
            r"Add\(\): expected a list of two or more arrays, got 1",
        ),
        (
            Multiply,
            np.zeros((2, 3)),
            TypeError,
            r"Multiply\(\): expected a list of two or more arrays, got ndarray",
        ),
        (
            Concatenate,
            [np.zeros((2, 3, 4)), np.zeros((2, 3, 5))],
            ValueError,
            r"Concatenate\(\): the inputs may differ only along axis 1, got shapes "
            r"\[\(3, 4\), \(3, 5\)\]",
        ),
        (
            Concatenate,
            [np.zeros((2, 3, 4)), np.zeros((2, 3))],
            ValueError,
            r"Concatenate\(\): the inputs must have one rank",
        ),
        (
            lambda: Concatenate(axis=3),
            [np.zeros((2, 3, 4)), np.zeros((2, 3, 4))],
            ValueError,
            r"Concatenate\(axis=3\): axis 3 is out of range for inputs of rank 3",
        ),
        (
            Concatenate,
            [np.zeros((2, 3)), [[1.0, 2.0, 3.0]] * 2],
            TypeError,
            r"Concatenate\(\): expected arrays \(N, \.\.\.\), got list",
        ),
    ],
    ids=[
        "add-shapes",
        "mul-shapes",
        "batch-sizes",
        "single",
        "not-a-list",
        "cat-other-axis",
        "cat-rank",
        "cat-axis-range",
        "cat-not-array",
    ],
)
def test_bad_inputs_are_refused_with_the_layer_named(make, xs, error, message):
    with pytest.raises(error, match=message):
        make().forward(xs)


def test_axis_zero_and_non_int_axes_are_refused():
    with pytest.raises(ValueError, match="Concatenate: axis 0 is the batch axis"):
        Concatenate(axis=0)
    for bad in (1.0, True, "1", None):
        with pytest.raises(TypeError, match="Concatenate: axis must be an int"):
            Concatenate(axis=bad)


def test_build_takes_a_list_of_two_shapes_or_more():
    for bad in ([(3,)], (3, 4), "shapes"):
        with pytest.raises(ValueError, match=r"Add\(\): expected a list of at least"):
            Add().build(bad)


def test_backward_before_forward_is_an_error():
    with pytest.raises(RuntimeError, match=r"Concatenate\(\): backward called before"):
        Concatenate().backward(np.zeros((2, 3)))


def test_broadcasting_over_examples_of_different_ranks_keeps_the_declared_shape():
    """Per-example shapes (8,) and (3, 1, 8) would broadcast to (3, 1, 8), but the
    batch arrays (N, 8) and (N, 3, 1, 8) to (N, 3, N, 8): inputs of different
    ranks are refused (a regression), or the output keeps its declared shape."""
    for make in (Add, Multiply):
        layer = _layer(make)
        try:
            declared = layer.output_shape([(8,), (3, 1, 8)])
        except ValueError:
            continue  # refused: a fix
        out = layer.forward(_inputs([(2, 8), (2, 3, 1, 8)]))
        assert out.shape == (2, *declared), f"{layer!r}: {out.shape} vs {declared}"


@pytest.mark.parametrize(
    "layer",
    [Add(), Multiply(name="gate"), Concatenate(), Concatenate(axis=-2, name="cat")],
    ids=repr,
)
def test_config_round_trip(layer):
    config = to_config(layer)
    json_ready = json.loads(json.dumps(config))
    copy = layer_from_config(json_ready, 0)
    assert type(copy) is type(layer) and copy is not layer
    assert repr(copy) == repr(layer)
    assert copy.get_config() == layer.get_config()
    assert copy.name == layer.name and copy.multiple_inputs
    if isinstance(layer, Concatenate):
        assert copy.axis == layer.axis
