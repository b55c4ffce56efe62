"""Embedding: the book (one-hot row times W), PyTorch's nn.Embedding, finite
differences on W, errors, and a model trained on integer ids that saves and loads.

Tolerances against PyTorch in float64: rtol 1e-12 / atol 1e-14 for the lookup (the
same numbers copied), rtol 1e-10 / atol 1e-12 for dW (only the order of the sums of
repeated ids differs).
"""

import engine_modes
import numpy as np
import pytest
import torch

import cnnumpy
from cnnumpy.engine import ops
from cnnumpy.layers import Dense, Flatten
from cnnumpy.layers.embedding import Embedding
from cnnumpy.optimizers import Adam
from cnnumpy.textbook.embedding import embedding_backward, embedding_forward, one_hot
from tests.gradcheck import numerical_gradient

pytestmark = pytest.mark.torch


@pytest.fixture(autouse=True, params=engine_modes.modes("embedding"))
def engine_mode(request):
    """Every test once per mode: the engine, the book, each kernel forced."""
    with engine_modes.running(request.param):
        yield request.param


def test_book_lookup_is_one_hot_times_W(rng):
    """out = one_hot(ids) @ W (seed 003, slide 218); dW = one_hot^T dout."""
    ids = np.array([[2, 0, 2], [3, 3, 1]])  # the notes' alphabet [a, e, m, s]
    W = rng.standard_normal((4, 5))
    out, cache = embedding_forward(ids, W)
    X = one_hot(ids, 4)
    assert X[0, 0].tolist() == [0, 0, 1, 0]  # 'm' = [0, 0, 1, 0]
    np.testing.assert_allclose(out, X @ W, rtol=1e-14)
    dout = rng.standard_normal((2, 3, 5))
    dW = embedding_backward(dout, cache)
    np.testing.assert_allclose(
        dW, X.reshape(-1, 4).T @ dout.reshape(-1, 5), rtol=1e-12, atol=1e-14
    )
    assert ops.embedding.book.forward is embedding_forward  # the table's first kernel


@pytest.mark.parametrize("N, T", [(1, 1), (1, 7), (4, 3), (3, 30)])
@pytest.mark.parametrize("vocab_size, dim", [(5, 3), (1, 4), (40, 1)])
def test_embedding_vs_torch(N, T, vocab_size, dim, rng):
    layer = Embedding(vocab_size, dim).astype(np.float64)
    ids = rng.integers(0, vocab_size, (N, T))
    ids[0, 0] = ids[-1, -1]  # an id repeated within the batch, always
    out = layer.forward(ids, training=True)
    twin = torch.nn.Embedding(vocab_size, dim, dtype=torch.float64)
    with torch.no_grad():
        twin.weight.copy_(torch.from_numpy(layer.params["W"]))
    theirs = twin(torch.from_numpy(ids))
    assert out.shape == tuple(theirs.shape) == (N, T, dim)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, theirs.detach().numpy(), rtol=1e-12, atol=1e-14)
    dout = rng.standard_normal(out.shape)
    assert layer.backward(dout) is None  # no gradient to integer ids
    theirs.backward(torch.from_numpy(dout))
    dW = twin.weight.grad.numpy()
    assert layer.grads["W"].shape == dW.shape == (vocab_size, dim)
    np.testing.assert_allclose(layer.grads["W"], dW, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("N, T", [(1, 1), (2, 4), (3, 2)])
def test_embedding_gradient_by_finite_differences(N, T, rng):
    layer = Embedding(6, 3).astype(np.float64)
    ids = rng.integers(0, 6, (N, T))
    ids[0, 0] = ids[-1, -1]
    dout = rng.standard_normal((N, T, 3))
    layer.forward(ids, training=True)
    layer.backward(dout)
    num = numerical_gradient(lambda: layer.forward(ids), layer.params["W"], dout)
    np.testing.assert_allclose(layer.grads["W"], num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.int64])
def test_embedding_any_integer_dtype_shapes_and_config(dtype, rng):
    layer = Embedding(10, 4)
    y = layer.forward(rng.integers(0, 10, (2, 5)).astype(dtype))
    assert y.shape == (2, 5, 4) and y.dtype == np.float32
    assert layer.params["W"].shape == (10, 4) and layer.count_params() == 40
    assert layer.output_shape((7,)) == (7, 4)
    assert layer.forward(np.zeros((3, 9), dtype)).shape == (3, 9, 4)  # any T
    assert layer.get_config() == {
        "vocab_size": 10,
        "dim": 4,
        "embeddings_initializer": "glorot_uniform",
        "name": None,
    }
    assert repr(layer) == "Embedding(10, 4)"
    assert Embedding.from_config(layer.get_config()).get_config() == layer.get_config()
    assert Embedding.input_dtype == "int"


def test_embedding_errors(rng):
    with pytest.raises(
        ValueError, match=r"Embedding: vocab_size must be a positive int"
    ):
        Embedding(0, 3)
    with pytest.raises(
        ValueError, match=r"Embedding: dim must be a positive int, got True"
    ):
        Embedding(3, True)
    with pytest.raises(ValueError, match=r"unknown initializer 'glorot_unifrom'"):
        Embedding(3, 2, embeddings_initializer="glorot_unifrom")
    layer = Embedding(5, 2)
    with pytest.raises(
        TypeError,
        match=r"Embedding\(5, 2\): expected integer ids \(N, T\), got dtype float64",
    ):
        layer.forward(np.array([[0.0, 1.0]]))  # whole numbers, still refused
    with pytest.raises(TypeError, match=r"Embedding\(5, 2\): expected integer ids"):
        layer.forward(np.array([[True, False]]))
    with pytest.raises(TypeError, match=r"expected a numpy array of ids, got list"):
        layer.forward([[0, 1]])
    with pytest.raises(
        ValueError, match=r"Embedding\(5, 2\): expected ids \(N, T\), got shape \(3,\)"
    ):
        layer.forward(np.array([0, 1, 2]))
    with pytest.raises(
        ValueError, match=r"expected ids \(N, T\), got shape \(1, 2, 3\)"
    ):
        layer.forward(np.zeros((1, 2, 3), int))
    with pytest.raises(
        ValueError,
        match=r"Embedding\(5, 2\): id 5 is outside the vocabulary: expected ids in "
        r"\[0, 5\) for vocab_size=5",
    ):
        layer.forward(np.array([[0, 5, 1]]))
    with pytest.raises(ValueError, match=r"id -1 is outside the vocabulary"):
        layer.forward(np.array([[0, -1, 7]]))
    with pytest.raises(
        ValueError, match=r"Embedding\(5, 2\): expected ids \(N, T\), got \(N, 3, 4\)"
    ):
        Embedding(5, 2).build((3, 4))
    with pytest.raises(RuntimeError, match=r"backward\(\) called before forward"):
        Embedding(5, 2).backward(np.zeros((1, 1, 2)))
    layer.forward(np.array([[0, 1, 2]]))
    with pytest.raises(ValueError, match=r"expected dout \(1, 3, 2\), got \(1, 3, 3\)"):
        layer.backward(np.zeros((1, 3, 3)))


# -- in a model: integer inputs end to end ------------------------------------------


def _model(seed=0):
    cnnumpy.seed(seed)
    model = cnnumpy.Sequential([Embedding(10, 8), Flatten(), Dense(3)])
    model.compile(optimizer=Adam(lr=0.02), loss="cross_entropy", metrics=["accuracy"])
    return model


def _ids_data(rng, n=48, T=5):
    x = rng.integers(0, 10, (n, T))
    return x, x[:, 0] % 3  # the class is read off the first id


def test_model_trains_on_ids_and_saves(tmp_path, rng):
    x, y = _ids_data(rng)
    model = _model()
    history = model.fit(x, y, epochs=40, batch_size=16, verbose=0, seed=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert model.evaluate(x, y)["accuracy"] > 0.9
    assert model.input_shape == (5,) and model.output_shape == (3,)
    loss = model.train_on_batch(x[:8], y[:8])
    assert np.isfinite(loss)
    path = tmp_path / "ids.safetensors"
    model.save(path)
    loaded = cnnumpy.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.evaluate(x, y) == model.evaluate(x, y)


def test_model_keeps_ids_integer_everywhere(rng):
    """fit, train_on_batch, predict, evaluate and forward hand the ids uncast."""
    x, y = _ids_data(rng, n=8)
    model = _model()
    seen = []
    layer = model.layers[0]
    forward = layer.forward

    def spy(ids, training=False):
        seen.append(ids.dtype)
        return forward(ids, training=training)

    layer.forward = spy
    model.fit(x.astype(np.int32), y, epochs=1, batch_size=4, verbose=0)
    model.train_on_batch(x, y)
    model.predict(x.astype(np.uint8))
    model.evaluate(x, y)
    model.forward(x)
    assert seen and all(np.issubdtype(d, np.integer) for d in seen), seen
    model.forward(x, training=True)
    assert model.backward(np.ones((8, 3), np.float32)) is None


def test_model_refuses_float_inputs_for_ids(rng):
    x, y = _ids_data(rng, n=8)
    model = _model()
    expected = (
        r"x must be integer ids for the first layer Embedding\(10, 8\), got dtype"
    )
    xf = x.astype(np.float32)
    with pytest.raises(TypeError, match=rf"fit: {expected} float32"):
        model.fit(xf, y, verbose=0)
    with pytest.raises(TypeError, match=rf"train_on_batch: {expected} float32"):
        model.train_on_batch(xf, y)
    with pytest.raises(TypeError, match=rf"predict: {expected} float32"):
        model.predict(xf)
    with pytest.raises(TypeError, match=rf"evaluate: {expected} float32"):
        model.evaluate(xf, y)
    with pytest.raises(TypeError, match=r"Embedding\(10, 8\): expected integer ids"):
        model.forward(xf)  # the raw pass: the layer's own error
    with pytest.raises(ValueError, match=r"id 10 is outside the vocabulary"):
        model.predict(x + 1)
