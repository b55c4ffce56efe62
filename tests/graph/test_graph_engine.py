"""The engine on graph models (cnnumpy/engine/executor.py execution_steps, fusion.py):
training with the engine equals training with the book, fused inference equals
``model.forward``, and a ReLU / MaxPool pair is swapped only where its ReLU's output
goes to the pool alone.

Tolerances, float64: weights after a few training steps ``rtol=1e-10, atol=1e-12``
(the kernels sum in other orders, momentum carries the differences on); fused
inference ``1e-12`` relative to the largest output (BatchNorm folded into the
kernels rounds differently), as tests/engine/test_inference.py.
"""

import graph_blocks
import numpy as np
import pytest

import cnnumpy
from cnnumpy import engine
from cnnumpy import layers as L
from cnnumpy.engine import fusion
from cnnumpy.engine.executor import Step, execution_steps

# the engine's own machinery: run with its kernels, whatever CNNUMPY_ENGINE says
pytestmark = pytest.mark.usefixtures("engine_on")


def _data(model, n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *model.input_shape)), rng.integers(0, 3, n)


def _trained(engine_on: bool, steps: int = 4):
    model = graph_blocks.resnet_like()
    model.compile(cnnumpy.optimizers.SGD(0.05, momentum=0.9), "cross_entropy")
    x, y = _data(model, 16)
    with engine.on() if engine_on else engine.off():
        losses = [model.train_on_batch(x[i::2], y[i::2]) for i in range(steps)]
        history = model.fit(x, y, epochs=2, batch_size=4, verbose=0, seed=3)
        probs = model.predict(x)
        scores = model.evaluate(x, y)
    return model, losses + history.history["loss"], probs, scores


def test_training_with_the_engine_equals_the_book():
    fast, fast_losses, fast_probs, fast_scores = _trained(True)
    book, book_losses, book_probs, book_scores = _trained(False)
    np.testing.assert_allclose(fast_losses, book_losses, rtol=1e-10)
    for layer, a, b in zip(
        fast.layers, fast.get_weights(), book.get_weights(), strict=True
    ):
        for key in a:
            np.testing.assert_allclose(
                a[key], b[key], rtol=1e-10, atol=1e-12, err_msg=f"{layer!r} {key}"
            )
    np.testing.assert_allclose(fast_probs, book_probs, rtol=1e-10, atol=1e-12)
    assert fast_scores == pytest.approx(book_scores, rel=1e-10)
    assert fast_losses[-1] < fast_losses[0]  # it trained


def _check_fused(model, x):
    want = model.forward(x)
    got = model.executor.fused_forward(x)
    wants, gots = (want, got) if isinstance(want, list) else ([want], [got])
    for w, g in zip(wants, gots, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype == np.float64
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12 * np.abs(w).max())


@pytest.mark.parametrize("make", ["resnet_like", "residual", "inception"])
def test_fused_inference_equals_forward(make):
    model = getattr(graph_blocks, make)()
    graph_blocks.randomise(model)
    x, _ = _data(model)
    _check_fused(model, x)
    groups = fusion.plan(model.layers, execution_steps(model), model.output_ids)
    # every BatchNorm follows a convolution that nothing else reads: all folded
    folded = {g[1] for g in groups if g[1] is not None}
    bns = {j for j, la in enumerate(model.layers) if isinstance(la, L.BatchNorm)}
    assert folded == bns


def _shared_relu_model(relu_is_output: bool = False, conv_shared: bool = False):
    """Conv-BN-ReLU-MaxPool in a branch where the ReLU's output also feeds a
    stride-2 convolution (or is a model output); with ``conv_shared`` the first
    convolution's output also feeds a max-pool (no BatchNorm folded into it)."""
    cnnumpy.seed(0)
    x = cnnumpy.Input((2, 8, 8))
    c = L.Conv2D(3, 3, padding=1)(x)
    r = L.ReLU(name="relu")(L.BatchNorm()(c))
    p = L.MaxPool2D(2)(r)
    side = r if relu_is_output else L.Conv2D(3, 2, stride=2)(r)
    merged = L.Add()([p, L.MaxPool2D(2)(c)]) if conv_shared else p
    out = L.Dense(3)(L.Flatten()(merged))
    outputs = [out, side] if relu_is_output else [out, L.Flatten()(side)]
    return cnnumpy.Model(x, outputs).astype("float64")


def _swapped(model) -> set[int]:
    """The layers whose step is not their own (index, sources) of the model's order."""
    n = model.n_inputs
    return {
        s.index
        for j, s in enumerate(execution_steps(model))
        if s != Step(j, tuple(model.sources[j]), n + j)
    }


def _pairs(model):
    """(ReLU index, MaxPool index) of every ReLU a max-pool reads."""
    for j, srcs in enumerate(model.sources):
        src = srcs[0] - model.n_inputs
        if isinstance(model.layers[j], L.MaxPool2D) and src >= 0:
            if isinstance(model.layers[src], L.ReLU):
                yield src, j


def test_relu_pool_pairs_inside_branches_are_swapped():
    model = graph_blocks.resnet_like()
    pairs = list(_pairs(model))
    assert len(pairs) == 2
    steps = execution_steps(model)
    order = [s.index for s in steps]
    for relu, pool in pairs:
        assert order.index(pool) == order.index(relu) - 1
        pool_step, relu_step = steps[order.index(pool)], steps[order.index(relu)]
        assert pool_step.sources == tuple(model.sources[relu])  # reads the BN
        assert relu_step.sources == (pool_step.dest,)
        assert relu_step.dest == model.n_inputs + pool  # the value the graph reads
    assert _swapped(model) == {j for pair in pairs for j in pair}
    with engine.off():
        assert _swapped(model) == set()  # the book runs the model's own order


@pytest.mark.parametrize("relu_is_output", [False, True], ids=["read-twice", "output"])
def test_a_relu_whose_output_goes_elsewhere_too_is_not_swapped(relu_is_output):
    model = _shared_relu_model(relu_is_output)
    ((relu, pool),) = _pairs(model)
    assert order_of(model).index(pool) == order_of(model).index(relu) + 1
    assert _swapped(model) == set()


def order_of(model):
    return [s.index for s in execution_steps(model)]


@pytest.mark.parametrize("relu_is_output", [False, True], ids=["read-twice", "output"])
@pytest.mark.parametrize("conv_shared", [False, True], ids=["", "conv-shared"])
def test_fused_inference_and_gradients_where_values_are_shared(
    relu_is_output, conv_shared
):
    """No fusion merges a layer whose output another layer or the model reads."""
    model = _shared_relu_model(relu_is_output, conv_shared)
    graph_blocks.randomise(model)
    groups = fusion.plan(model.layers, execution_steps(model), model.output_ids)
    assert groups[0] == ((0, None, None, None) if conv_shared else (0, 1, None, 2))
    x = np.random.default_rng(2).standard_normal((3, 2, 8, 8))
    _check_fused(model, x)
    outs = model.forward(x, training=True)
    douts = [
        np.random.default_rng(k).standard_normal(o.shape) for k, o in enumerate(outs)
    ]
    dx = model.backward(douts)
    grads = [{k: g.copy() for k, g in la.grads.items()} for la in model.layers]
    exec_outs = model.executor.forward(x, training=True)
    for a, b in zip(exec_outs, outs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        model.executor.backward(douts), dx, rtol=1e-12, atol=1e-14
    )
    for la, want in zip(model.layers, grads, strict=True):
        for k, g in want.items():
            np.testing.assert_allclose(la.grads[k], g, rtol=1e-12, atol=1e-14)


# the first fused group (conv, folded BatchNorm, pool, activation) when ``which``
# value is also a model output
FIRST_GROUP = {
    "conv": (0, None, None, None),
    "bn": (0, 1, None, None),
    "relu": (0, 1, None, 2),
    "pool": (0, 1, 3, 2),
}


@pytest.mark.parametrize("which", list(FIRST_GROUP))
def test_fused_inference_with_a_value_of_the_chain_as_a_second_output(which):
    """Conv-BN-ReLU-MaxPool where one of them is also a model output: the fusion
    stops at that value (nothing after it merges into its group)."""
    cnnumpy.seed(0)
    x = cnnumpy.Input((2, 8, 8))
    c = L.Conv2D(3, 3, padding=1)(x)
    b = L.BatchNorm()(c)
    r = L.ReLU()(b)
    p = L.MaxPool2D(2)(r)
    extra = {"conv": c, "bn": b, "relu": r, "pool": p}[which]
    model = cnnumpy.Model(x, [L.Dense(2)(L.Flatten()(p)), extra]).astype("float64")
    graph_blocks.randomise(model)
    groups = fusion.plan(model.layers, execution_steps(model), model.output_ids)
    assert groups[0] == FIRST_GROUP[which]
    _check_fused(model, np.random.default_rng(0).standard_normal((3, 2, 8, 8)))


def test_the_first_layer_is_never_moved():
    """A ReLU reading the model's input stays first (it returns no input gradient
    in a training step)."""
    cnnumpy.seed(0)
    x = cnnumpy.Input((1, 4, 4))
    y = L.Dense(2)(L.Flatten()(L.MaxPool2D(2)(L.ReLU()(x))))
    model = cnnumpy.Model(x, y)
    assert _swapped(model) == set()


def _two_inputs():
    cnnumpy.seed(0)
    image, vector = cnnumpy.Input((2, 4, 4)), cnnumpy.Input((3,))
    h = L.Flatten()(
        L.MaxPool2D(2)(L.ReLU()(L.BatchNorm()(L.Conv2D(3, 3, padding=1)(image))))
    )
    out = L.Dense(2)(L.Concatenate()([h, L.Dense(4)(vector)]))
    model = cnnumpy.Model([image, vector], out).astype("float64")
    graph_blocks.randomise(model)
    rng = np.random.default_rng(3)
    return model, [rng.standard_normal((3, 2, 4, 4)), rng.standard_normal((3, 3))]


def test_fused_inference_of_two_inputs_given_as_arrays():
    from cnnumpy.validation import Arrays

    model, xs = _two_inputs()
    want = model.forward(xs)
    got = model.executor.fused_forward(Arrays(xs))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


def test_the_executor_takes_a_list_of_arrays_like_model_forward():
    """The executor's forward and fused_forward take a list of arrays for several
    inputs, as Model.forward does (a regression: they once took Arrays only)."""
    model, xs = _two_inputs()
    want = model.forward(xs)
    got = model.executor.fused_forward(xs)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())
    np.testing.assert_allclose(model.executor.forward(xs), want, rtol=1e-12)
