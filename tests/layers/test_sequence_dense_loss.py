"""Dense on sequences (N, T, F) and cross-entropy on (N, T, K) with ignore_index:
against torch.nn.Linear and torch.nn.functional.cross_entropy, finite differences,
errors, targets checks, accuracy, and a sequence model that saves and loads.

Tolerances in float64: rtol 1e-10 / atol 1e-12 (only the summation order differs).
"""

import engine_modes
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import cnnumpy
from cnnumpy import losses
from cnnumpy.layers import Dense
from cnnumpy.layers.embedding import Embedding
from cnnumpy.metrics import accuracy
from cnnumpy.optimizers import Adam
from cnnumpy.textbook.losses import cross_entropy
from cnnumpy.validation import check_targets
from tests.gradcheck import check_layer_gradients, numerical_gradient

pytestmark = pytest.mark.torch
TOL = {"rtol": 1e-10, "atol": 1e-12}


@pytest.fixture(autouse=True, params=engine_modes.modes("dense", "embedding"))
def engine_mode(request):
    """Every test once per mode: the engine, the book, each kernel forced."""
    with engine_modes.running(request.param):
        yield request.param


def assert_close(ours, theirs, what):
    theirs = theirs.detach().numpy()
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, err_msg=what, **TOL)


# -- Dense on the last axis ----------------------------------------------------------


@pytest.mark.parametrize("N, T, F, units", [(1, 1, 3, 2), (2, 5, 4, 3), (3, 30, 1, 1)])
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_sequence_vs_torch_linear(N, T, F, units, use_bias, rng):
    layer = Dense(units, use_bias=use_bias)
    layer.build((T, F))
    layer.astype(np.float64)
    x = rng.standard_normal((N, T, F))
    out = layer.forward(x, training=True)
    twin = torch.nn.Linear(F, units, bias=use_bias, dtype=torch.float64)
    with torch.no_grad():
        twin.weight.copy_(torch.from_numpy(layer.params["W"].T))
        if use_bias:
            twin.bias.copy_(torch.from_numpy(layer.params["b"]))
    xt = torch.tensor(x, requires_grad=True)
    theirs = twin(xt)
    assert_close(out, theirs, "out")
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    theirs.backward(torch.from_numpy(dout))
    assert_close(dx, xt.grad, "dx")
    assert_close(layer.grads["W"], twin.weight.grad.T, "dW")
    if use_bias:
        assert_close(layer.grads["b"], twin.bias.grad, "db")


@pytest.mark.parametrize("N, T", [(1, 1), (2, 3)])
def test_dense_sequence_finite_differences(N, T, rng):
    check_layer_gradients(Dense(3), rng.standard_normal((N, T, 4)))


def test_dense_sequence_is_each_step(rng):
    """The same W at every step: step t of the output is Dense on x[:, t]."""
    layer = Dense(3)
    x = rng.standard_normal((2, 4, 5)).astype(np.float32)
    out = layer.forward(x)
    assert out.shape == (2, 4, 3) and out.dtype == np.float32
    for t in range(4):
        np.testing.assert_allclose(out[:, t], layer.forward(x[:, t]), rtol=1e-6)
    assert layer.output_shape((7, 5)) == (7, 3)  # any T on the built features
    assert layer.output_shape((5,)) == (3,)
    layer.need_input_grad = False
    layer.forward(x)
    assert layer.backward(np.ones((2, 4, 3), np.float32)) is None


def test_dense_sequence_errors():
    layer = Dense(16)
    layer.build((6, 5))
    assert layer.params["W"].shape == (5, 16)
    with pytest.raises(
        ValueError, match=r"Dense\(16\): expected input \(N, T, 5\), got \(N, T, 4\)"
    ):
        layer.forward(np.zeros((2, 6, 4), np.float32))
    with pytest.raises(
        ValueError,
        match=r"Dense\(16\): expected input \(N, 5\) or \(N, T, 5\), "
        r"got \(2, 6, 5, 1\); add a Flatten\(\)",
    ):
        layer.forward(np.zeros((2, 6, 5, 1), np.float32))
    layer.forward(np.zeros((2, 6, 5), np.float32))
    with pytest.raises(
        ValueError, match=r"Dense\(16\): expected dout \(2, 6, 16\), got \(12, 16\)"
    ):
        layer.backward(np.zeros((12, 16), np.float32))


# -- cross-entropy on (N, T, K), ignore_index ------------------------------------------


@pytest.mark.parametrize("N, T, K", [(1, 1, 2), (3, 5, 4), (2, 30, 7)])
@pytest.mark.parametrize("ignore_index", [None, 0, -100])
def test_sequence_cross_entropy_vs_torch(N, T, K, ignore_index, rng):
    z = rng.standard_normal((N, T, K)) * 3
    t = rng.integers(0, K, (N, T))
    if ignore_index is not None:
        t[rng.random((N, T)) < 0.3] = ignore_index
        t.flat[0] = 1  # at least one counted position
    loss = losses.CrossEntropy(ignore_index=ignore_index)
    value = loss(z, t)
    dz = loss.backward()
    zt = torch.tensor(z, requires_grad=True)
    kwargs = {} if ignore_index is None else {"ignore_index": ignore_index}
    # torch wants the classes on axis 1: (N, K, T)
    theirs = TF.cross_entropy(zt.permute(0, 2, 1), torch.from_numpy(t), **kwargs)
    theirs.backward()
    np.testing.assert_allclose(value, theirs.item(), **TOL)
    assert_close(dz, zt.grad, "dL/dz")
    if ignore_index is not None:
        assert not dz[t == ignore_index].any()  # zero at padded positions


def test_sequence_cross_entropy_finite_differences(rng):
    z = rng.standard_normal((2, 4, 3))
    t = np.array([[1, 0, 2, 0], [0, 2, 2, 1]])
    _, dz = cross_entropy(z, t, ignore_index=0)
    num = numerical_gradient(
        lambda: np.array(cross_entropy(z, t, ignore_index=0)[0]), z, np.array(1.0)
    )
    np.testing.assert_allclose(dz, num, rtol=1e-6, atol=1e-9)


def test_sequence_cross_entropy_edge_cases(rng):
    z = rng.standard_normal((2, 3, 4))
    value, dz = cross_entropy(z, np.zeros((2, 3), int), ignore_index=0)
    assert value == 0.0 and not dz.any()  # all padding: nothing to learn (torch: NaN)
    ids = rng.integers(0, 4, (2, 3))
    one_hot = np.eye(4)[ids]
    a, da = cross_entropy(z, ids)
    b, db = cross_entropy(z, one_hot)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(da, db, rtol=1e-12)
    flat, dflat = cross_entropy(z.reshape(6, 4), ids.reshape(6))  # N*T rows
    np.testing.assert_allclose(a, flat, rtol=1e-12)
    np.testing.assert_allclose(da.reshape(6, 4), dflat, rtol=1e-12)


def test_cross_entropy_ignore_index_errors(rng):
    z = rng.standard_normal((2, 3, 4))
    with pytest.raises(
        ValueError,
        match=r"cross_entropy: ignore_index=0 needs class ids, got one-hot or "
        r"probability targets \(6, 4\)",
    ):
        cross_entropy(z, np.eye(4)[np.zeros((2, 3), int)], ignore_index=0)
    with pytest.raises(
        ValueError,
        match=r"cross_entropy: expected class ids in \[0, 4\) for 4 classes, "
        r"got values in \[1, 4\]",
    ):
        cross_entropy(z, np.array([[0, 4, 1], [0, 0, 0]]), ignore_index=0)
    with pytest.raises(
        ValueError,
        match=r"cross_entropy: expected targets of class ids \(2, 3\) or one-hot "
        r"rows \(2, 3, 4\) for logits \(2, 3, 4\), got shape \(3, 2\)",
    ):
        cross_entropy(z, np.zeros((3, 2), int))
    with pytest.raises(
        TypeError, match=r"CrossEntropy: ignore_index must be an int or None, got True"
    ):
        losses.CrossEntropy(ignore_index=True)
    with pytest.raises(
        TypeError, match=r"ignore_index must be an int or None, got '0'"
    ):
        losses.CrossEntropy(ignore_index="0")


def test_cross_entropy_config_round_trip():
    plain = losses.get("cross_entropy")
    assert plain.ignore_index is None and plain.get_config() == {}
    assert losses.serialize(plain) == {"name": "cross_entropy", "config": {}}
    padded = losses.CrossEntropy(ignore_index=0)
    assert repr(padded) == "CrossEntropy(ignore_index=0)"
    entry = losses.serialize(padded)
    assert entry == {"name": "cross_entropy", "config": {"ignore_index": 0}}
    again = losses.get(entry)
    assert isinstance(again, losses.CrossEntropy) and again.ignore_index == 0


# -- targets check and accuracy on sequences -------------------------------------------


def test_check_targets_on_sequences():
    ids = np.array([[0, 1, 2], [2, 2, 0]])
    out = check_targets(ids, 2, (3, 3), "cross_entropy", "fit")
    assert out is ids
    check_targets(np.eye(3)[ids], 2, (3, 3), "cross_entropy", "fit")
    padded = np.array([[0, 1, -1], [2, -1, -1]])
    check_targets(padded, 2, (3, 3), "cross_entropy", "fit", ignore_index=-1)
    with pytest.raises(
        ValueError,
        match=r"fit: y class ids must lie in \[0, 2\] for a model with 3 outputs, "
        r"got values from -1 to 2",
    ):
        check_targets(padded, 2, (3, 3), "cross_entropy", "fit")
    with pytest.raises(
        ValueError,
        match=r"fit: y must be class ids \(N, 3\) or one-hot \(N, 3, 3\), "
        r"got shape \(2, 4\)",
    ):
        check_targets(np.zeros((2, 4), int), 2, (3, 3), "cross_entropy", "fit")
    with pytest.raises(
        ValueError,
        match=r"fit: y must be class ids \(N,\) or one-hot \(N, 3\), got shape \(2, 4",
    ):
        check_targets(np.zeros((2, 4), int), 2, (3,), "cross_entropy", "fit")


def test_accuracy_on_sequences():
    scores = np.zeros((2, 3, 4))
    scores[..., 1] = 1  # predicts class 1 everywhere
    y = np.array([[1, 1, 0], [1, 2, 0]])
    assert accuracy(y, scores) == pytest.approx(3 / 6)
    assert accuracy(y, scores, ignore_index=0) == pytest.approx(3 / 4)
    assert accuracy(np.eye(4)[y], scores) == pytest.approx(3 / 6)
    assert accuracy(np.zeros((2, 3), int), scores, ignore_index=0) == 0.0
    assert accuracy(np.array([1, 0]), scores[:, 0], ignore_index=0) == 1.0
    with pytest.raises(
        ValueError,
        match=r"accuracy: expected labels \(2, 3\) or one-hot \(2, 3, 4\) for "
        r"scores \(2, 3, 4\), got \(2, 2\)",
    ):
        accuracy(np.zeros((2, 2), int), scores)


# -- a sequence model: ids in, a class per step out, padding ignored -----------------


def test_sequence_model_trains_saves_and_loads(tmp_path, rng):
    cnnumpy.seed(0)
    x = rng.integers(1, 12, (64, 6))
    x[:, 4:] = 0  # padding, id 0
    y = x % 5  # a class per step; 0 at the padding
    model = cnnumpy.Sequential([Embedding(12, 6), Dense(5)])
    model.compile(
        optimizer=Adam(lr=0.05),
        loss=losses.CrossEntropy(ignore_index=0),
        metrics=["accuracy"],
    )
    history = model.fit(x, y, epochs=30, batch_size=16, verbose=0, seed=0)
    assert history.history["loss"][-1] < 0.1 * history.history["loss"][0]
    assert model.output_shape == (6, 5)
    probs = model.predict(x)
    assert probs.shape == (64, 6, 5)
    assert accuracy(y, probs, ignore_index=0) > 0.95
    path = tmp_path / "seq.safetensors"
    model.save(path)
    loaded = cnnumpy.load_model(path)
    assert repr(loaded.loss) == "CrossEntropy(ignore_index=0)"
    np.testing.assert_array_equal(loaded.predict(x), probs)
    assert loaded.evaluate(x, y) == model.evaluate(x, y)
    with pytest.raises(ValueError, match=r"y class ids must lie in \[0, 4\]"):
        model.evaluate(x, y + 1)  # 5 is no class, and 1 is not the padding id
