"""Losses: float64 finite differences, the notes' MSE, ids vs one-hot, errors."""

import warnings

import numpy as np
import pytest

from cnnumpy import losses
from cnnumpy.textbook.losses import binary_cross_entropy, cross_entropy, mse


def numerical_loss_gradient(loss_fn, y, t, h=1e-6):
    """dL/dy by centred differences, for a scalar loss."""
    grad = np.zeros_like(y)
    for i in np.ndindex(y.shape):
        old = y[i]
        y[i] = old + h
        plus = loss_fn(y, t)[0]
        y[i] = old - h
        minus = loss_fn(y, t)[0]
        y[i] = old
        grad[i] = (plus - minus) / (2 * h)
    return grad


def assert_gradient_matches(loss_fn, y, t):
    _, analytic = loss_fn(y, t)
    assert analytic.shape == y.shape and analytic.dtype == np.float64
    numeric = numerical_loss_gradient(loss_fn, y, t)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


# -- finite differences ----------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1), (4,), (3, 2), (2, 3, 2, 2)])
def test_mse_gradient(shape, rng):
    assert_gradient_matches(mse, rng.standard_normal(shape), rng.standard_normal(shape))


@pytest.mark.parametrize("N, K", [(1, 2), (4, 3), (5, 10)])
def test_cross_entropy_gradient_ids(N, K, rng):
    t = rng.integers(0, K, size=N)
    assert_gradient_matches(cross_entropy, 3 * rng.standard_normal((N, K)), t)


@pytest.mark.parametrize("N, K", [(1, 2), (4, 3)])
def test_cross_entropy_gradient_probabilities(N, K, rng):
    t = rng.random((N, K))
    t /= t.sum(axis=1, keepdims=True)
    assert_gradient_matches(cross_entropy, rng.standard_normal((N, K)), t)


@pytest.mark.parametrize("shape", [(1,), (5,), (4, 1), (3, 2)])
def test_binary_cross_entropy_gradient(shape, rng):
    t = rng.integers(0, 2, size=shape).astype(np.float64)
    assert_gradient_matches(binary_cross_entropy, 3 * rng.standard_normal(shape), t)
    soft = rng.random(shape)  # soft labels in [0, 1]
    assert_gradient_matches(binary_cross_entropy, rng.standard_normal(shape), soft)


# -- values ----------------------------------------------------------------------------


def test_mse_matches_the_notes():
    """Seed 002: E = mean((y* - y)^2) over all n elements, dE/dY = 2 (Y - Y*) / n."""
    y = np.array([[0.5, 1.0], [2.0, -1.0], [0.0, 3.0]])
    t = np.array([[1.0, 1.0], [0.0, 0.0], [0.0, 1.0]])
    loss, dy = mse(y, t)
    # squared errors: 0.25, 0, 4, 1, 0, 4 -> sum 9.25 over n = 6 elements
    assert loss == pytest.approx(9.25 / 6, rel=1e-15)
    expected = 2 * np.array([[-0.5, 0.0], [2.0, -1.0], [0.0, 2.0]]) / 6
    np.testing.assert_allclose(dy, expected, rtol=1e-15)
    # the notes' code: np.mean(np.power(y_true - y_pred, 2)), 2*(y_pred - y_true)/size
    assert loss == pytest.approx(np.mean(np.power(t - y, 2)), rel=1e-15)
    np.testing.assert_allclose(dy, 2 * (y - t) / t.size, rtol=1e-15)


def test_mse_accepts_column_targets(rng):
    y = rng.standard_normal((4, 1))
    t = rng.standard_normal(4)
    assert mse(y, t)[0] == mse(y, t[:, None])[0]


def test_class_ids_and_one_hot_agree(rng):
    z = rng.standard_normal((6, 4))
    ids = np.array([0, 3, 1, 1, 2, 0])
    one_hot = np.eye(4)[ids]
    loss_ids, dz_ids = cross_entropy(z, ids)
    loss_oh, dz_oh = cross_entropy(z, one_hot)
    loss_float_ids, _ = cross_entropy(z, ids.astype(np.float32))
    assert loss_ids == pytest.approx(loss_oh, rel=1e-14)
    assert loss_float_ids == pytest.approx(loss_ids, rel=1e-14)
    np.testing.assert_allclose(dz_ids, dz_oh, rtol=1e-14)
    # the loss is the mean negative log-likelihood (seed 004, L_i = -log y_i)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    assert loss_ids == pytest.approx(-np.mean(np.log(p[np.arange(6), ids])), rel=1e-12)
    np.testing.assert_allclose(dz_ids, (p - one_hot) / 6, rtol=1e-12, atol=1e-15)


def test_losses_are_stable_for_huge_logits():
    z = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", divide="raise", invalid="raise"):
            ce, dce = cross_entropy(z, np.array([1, 1]))
            bce, dbce = binary_cross_entropy(
                np.array([1000.0, -1000.0, 0.0]), np.array([0.0, 0.0, 1.0])
            )
    assert ce == pytest.approx(1000.0) and np.all(np.isfinite(dce))
    assert bce == pytest.approx((1000.0 + 0.0 + np.log(2)) / 3)
    np.testing.assert_allclose(dbce, [1 / 3, 0, -1 / 6], atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_dtype_follows_predictions(dtype, rng):
    z = rng.standard_normal((3, 4)).astype(dtype)
    assert cross_entropy(z, np.array([0, 1, 2]))[1].dtype == dtype
    assert mse(z, np.zeros((3, 4)))[1].dtype == dtype
    assert binary_cross_entropy(z, np.ones((3, 4)))[1].dtype == dtype
    assert isinstance(cross_entropy(z, np.array([0, 1, 2]))[0], float)


# -- loss objects ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, cls, activation",
    [
        ("mse", losses.MSE, "identity"),
        ("cross_entropy", losses.CrossEntropy, "softmax"),
        ("categorical_crossentropy", losses.CrossEntropy, "softmax"),
        ("binary_cross_entropy", losses.BinaryCrossEntropy, "sigmoid"),
        ("bce", losses.BinaryCrossEntropy, "sigmoid"),
    ],
)
def test_get_resolves_names(name, cls, activation):
    loss = losses.get(name)
    assert type(loss) is cls and loss.output_activation == activation
    assert losses.get(loss) is loss
    assert type(losses.get(cls)) is cls
    assert type(losses.get(losses.serialize(loss))) is cls
    assert loss.get_config() == {} and repr(loss) == f"{cls.__name__}()"


def test_loss_object_call_and_backward(rng):
    z = rng.standard_normal((4, 3))
    t = np.array([2, 0, 1, 1])
    loss = losses.CrossEntropy()
    value = loss(z, t)
    expected_value, expected_grad = cross_entropy(z, t)
    assert value == expected_value and isinstance(value, float)
    np.testing.assert_array_equal(loss.backward(), expected_grad)
    assert loss.forward(z, t) == value
    assert losses.MSE()(z, np.zeros_like(z)) == pytest.approx(np.mean(z**2))


def test_to_probabilities(rng):
    z = rng.standard_normal((3, 4))
    p = losses.to_probabilities(z, "cross_entropy")
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-12)
    np.testing.assert_allclose(
        losses.to_probabilities(z, losses.BinaryCrossEntropy()),
        1 / (1 + np.exp(-z)),
        rtol=1e-12,
    )
    np.testing.assert_array_equal(losses.to_probabilities(z, "mse"), z)


# -- errors ----------------------------------------------------------------------------


def test_cross_entropy_errors(rng):
    z = rng.standard_normal((4, 3))
    with pytest.raises(
        ValueError,
        match=r"cross_entropy: expected targets of length 4 "
        r"\(one per example\): class ids \(4,\) or one-hot rows \(4, 3\), "
        r"got shape \(5,\)",
    ):
        cross_entropy(z, np.zeros(5, int))
    with pytest.raises(
        ValueError,
        match=r"cross_entropy: expected class ids in \[0, 3\) "
        r"for 3 classes, got values in \[0, 3\]",
    ):
        cross_entropy(z, np.array([0, 1, 2, 3]))
    with pytest.raises(
        ValueError, match=r"cross_entropy: expected class ids in \[0, 3\)"
    ):
        cross_entropy(z, np.array([0, -1, 2, 1]))
    with pytest.raises(
        ValueError,
        match=r"cross_entropy: expected integer class ids \(4,\), "
        r"got dtype float64 with non-integer values",
    ):
        cross_entropy(z, np.array([0, 1.5, 2, 1]))
    with pytest.raises(
        ValueError,
        match=r"cross_entropy: expected one-hot or probability "
        r"targets \(4, 3\) for 3 classes \(pass class ids as shape \(4,\)\), "
        r"got \(4, 2\)",
    ):
        cross_entropy(z, np.zeros((4, 2)))
    with pytest.raises(
        ValueError,
        match=r"cross_entropy: expected logits \(N, K\) or a sequence \(N, T, K\), "
        r"got shape \(4, 3, 2, 1\)",
    ):
        cross_entropy(np.zeros((4, 3, 2, 1)), np.zeros(4, int))
    with pytest.raises(
        ValueError,
        match=r"cross_entropy: expected targets of class ids \(4, 3\) or one-hot "
        r"rows \(4, 3, 2\) for logits \(4, 3, 2\), got shape \(4,\)",
    ):
        cross_entropy(np.zeros((4, 3, 2)), np.zeros(4, int))
    with pytest.raises(TypeError, match=r"cross_entropy: expected numeric targets"):
        cross_entropy(z, np.array(["a", "b", "c", "d"]))


def test_mse_and_bce_errors(rng):
    with pytest.raises(
        ValueError,
        match=r"mse: expected targets of shape \(4, 3\) like the "
        r"predictions \(\(N,\) and \(N, 1\) are interchangeable\), got \(4, 2\)",
    ):
        mse(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(
        ValueError,
        match=r"binary_cross_entropy: expected targets of shape "
        r"\(4, 1\) like the predictions .*, got \(3,\)",
    ):
        binary_cross_entropy(np.zeros((4, 1)), np.zeros(3))
    with pytest.raises(
        ValueError,
        match=r"binary_cross_entropy: expected targets in \[0, 1\], "
        r"got values in \[0.0, 2.0\]",
    ):
        binary_cross_entropy(np.zeros(3), np.array([0.0, 1.0, 2.0]))
    with pytest.raises(
        ValueError,
        match=r"mse: expected predictions \(N, \.\.\.\) with N >= 1, "
        r"got shape \(0, 3\)",
    ):
        mse(np.zeros((0, 3)), np.zeros((0, 3)))


def test_loss_object_errors():
    with pytest.raises(ValueError, match=r"unknown loss 'hinge'; expected one of"):
        losses.get("hinge")
    with pytest.raises(
        TypeError,
        match=r"expected a loss name, a Loss class or instance, "
        r"got int",
    ):
        losses.get(3)
    with pytest.raises(
        RuntimeError, match=r"MSE\(\): backward\(\) called before the loss"
    ):
        losses.MSE().backward()
