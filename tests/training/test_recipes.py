"""Training recipes as library features (docs/recipes.md), part 1: Cutout, label
smoothing (against PyTorch), no weight decay on biases and BatchNorm, and BatchNorm's
zero-initialised gamma.

Schedules with warm-up: ``test_recipes_schedules.py``; the moving average of the
weights and the flip-averaged test: ``test_recipes_averaging.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import cnnumpy
from cnnumpy import losses, optimizers
from cnnumpy.data import compose, cutout, random_flip
from cnnumpy.layers import BatchNorm, Conv2D, Dense, Flatten, ReLU

TORCH_TOL = {"rtol": 1e-10, "atol": 1e-12}


# -- Cutout ----------------------------------------------------------------------------
def cut_squares(N, H, W, size, seed):
    """The squares ``cutout`` must zero, drawn from the same seed, written as loops:
    centre uniform over the image, rows [cy - size // 2, ... + size) clipped."""
    rng = np.random.default_rng(seed)
    cy, cx = rng.integers(0, H, size=N), rng.integers(0, W, size=N)
    mask = np.zeros((N, H, W), dtype=bool)
    for n in range(N):
        top, left = cy[n] - size // 2, cx[n] - size // 2
        for i in range(max(top, 0), min(top + size, H)):
            for j in range(max(left, 0), min(left + size, W)):
                mask[n, i, j] = True
    return mask


@pytest.mark.parametrize("size", [1, 3, 4, 16])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cutout_zeroes_the_square_around_a_uniform_centre_in_every_channel(
    size, dtype
):
    x = np.random.default_rng(1).uniform(1, 2, size=(64, 3, 9, 11)).astype(dtype)
    kept = x.copy()
    out = cutout(x, size, rng=5)
    assert out.shape == x.shape and out.dtype == x.dtype and out is not x
    np.testing.assert_array_equal(x, kept)  # the input is never modified
    mask = cut_squares(64, 9, 11, size, seed=5)
    expected = np.where(mask[:, None], 0, x)
    np.testing.assert_array_equal(out, expected)


def test_cutout_squares_are_clipped_at_the_borders():
    """Over many images every centre occurs: full squares inside, and a corner
    centre keeps only (size - size // 2)^2 pixels of the square."""
    x = np.ones((2000, 1, 8, 8))
    zeros = (cutout(x, 4, rng=0) == 0).sum(axis=(1, 2, 3))
    assert zeros.max() == 16 and zeros.min() == (4 - 2) ** 2
    assert set(np.unique(zeros)) == {4, 6, 8, 9, 12, 16}


@pytest.mark.parametrize(
    "x, size, error, message",
    [
        (np.ones((2, 3, 4)), 2, ValueError, r"cutout: expected images \(N, C, H, W\)"),
        (np.ones((2, 1, 4, 4)), 0, ValueError, "cutout: expected size >= 1 .*got 0"),
        (np.ones((2, 1, 4, 4)), 2.0, ValueError, r"size >= 1 \(int\), got 2.0"),
    ],
)
def test_cutout_refuses_bad_input(x, size, error, message):
    with pytest.raises(error, match=message):
        cutout(x, size, rng=0)


def test_compose_applies_the_transforms_in_order_with_one_generator():
    x = np.random.default_rng(0).standard_normal((16, 3, 8, 8))
    augment = compose(
        lambda b, rng: random_flip(b, rng), lambda b, rng: cutout(b, 4, rng)
    )
    rng = np.random.default_rng(3)
    expected = cutout(random_flip(x, rng), 4, rng)
    np.testing.assert_array_equal(augment(x, np.random.default_rng(3)), expected)
    with pytest.raises(ValueError, match="compose: expected at least one transform"):
        compose()
    with pytest.raises(TypeError, match="compose: expected callables .*got int 3"):
        compose(cutout, 3)


# -- label smoothing -------------------------------------------------------------------
def torch_loss_and_grad(z, target, **options):
    z_t = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    target_t = torch.tensor(target)
    logits = z_t if z.ndim == 2 else z_t.permute(0, 2, 1)  # torch wants (N, K, T)
    value = TF.cross_entropy(logits, target_t, **options)
    value.backward()
    return value.item(), z_t.grad.numpy()


def check_against_torch(z, target, loss, **options):
    value = loss(z, target)
    expected, expected_grad = torch_loss_and_grad(z, target, **options)
    np.testing.assert_allclose(value, expected, **TORCH_TOL)
    assert loss.backward().shape == z.shape
    np.testing.assert_allclose(loss.backward(), expected_grad, **TORCH_TOL)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.35, 1.0])
def test_label_smoothing_on_class_ids_is_torchs(eps):
    rng = np.random.default_rng(0)
    z, y = 3 * rng.standard_normal((7, 5)), rng.integers(0, 5, 7)
    loss = losses.CrossEntropy(label_smoothing=eps)
    check_against_torch(z, y, loss, label_smoothing=eps)


@pytest.mark.parametrize("eps", [0.1, 0.4])
def test_label_smoothing_on_one_hot_and_probability_rows_is_torchs(eps):
    rng = np.random.default_rng(1)
    z = 3 * rng.standard_normal((6, 4))
    one_hot = np.eye(4)[rng.integers(0, 4, 6)]
    soft = rng.dirichlet(np.ones(4), size=6)
    for target in (one_hot, soft):
        loss = losses.CrossEntropy(label_smoothing=eps)
        check_against_torch(z, target, loss, label_smoothing=eps)


def test_label_smoothing_with_ignore_index_on_sequences_is_torchs():
    """Padding positions stay out of the mean and get no smoothing mass."""
    rng = np.random.default_rng(2)
    z, y = 2 * rng.standard_normal((3, 6, 5)), rng.integers(0, 5, (3, 6))
    y[0, 4:] = 0
    y[2, 1:] = 0
    loss = losses.CrossEntropy(ignore_index=0, label_smoothing=0.2)
    check_against_torch(z, y, loss, ignore_index=0, label_smoothing=0.2)
    padded = np.zeros_like(loss.backward())
    padded[y == 0] = loss.backward()[y == 0]
    np.testing.assert_array_equal(padded, 0)


def test_label_smoothing_is_kept_in_the_config_and_the_model_file(tmp_path):
    loss = losses.CrossEntropy(label_smoothing=0.1)
    assert repr(loss) == "CrossEntropy(label_smoothing=0.1)"
    assert losses.serialize(loss) == {
        "name": "cross_entropy",
        "config": {"label_smoothing": 0.1},
    }
    assert losses.get(losses.serialize(loss)).label_smoothing == 0.1
    assert losses.serialize(losses.CrossEntropy()) == {  # as files before it
        "name": "cross_entropy",
        "config": {},
    }
    cnnumpy.seed(0)
    model = cnnumpy.Sequential([Flatten(), Dense(3)], input_shape=(1, 2, 2))
    model.compile("sgd", loss=losses.CrossEntropy(ignore_index=2, label_smoothing=0.2))
    model.save(tmp_path / "m.safetensors")
    loaded = cnnumpy.load_model(tmp_path / "m.safetensors")
    assert loaded.loss.label_smoothing == 0.2 and loaded.loss.ignore_index == 2


@pytest.mark.parametrize("eps", [-0.1, 1.5, "0.1", True, None])
def test_label_smoothing_out_of_range_is_refused(eps):
    with pytest.raises(ValueError, match=r"label_smoothing must be a number in \[0, 1"):
        losses.CrossEntropy(label_smoothing=eps)


# -- no weight decay on biases and BatchNorm -------------------------------------------
def bn_cnn(optimizer):
    cnnumpy.seed(0)
    model = cnnumpy.Sequential(
        [Conv2D(3, 3, padding=1), BatchNorm(), ReLU(), Flatten(), Dense(4)],
        input_shape=(2, 5, 5),
    )
    model.astype(np.float64)
    model.compile(optimizer, loss="cross_entropy")
    return model


def test_decay_biases_false_spares_biases_and_batchnorm_in_a_training_step():
    """One step from the same weights on the same batch: the gradients are the same,
    so with ``decay_biases=False`` the biases, gamma and beta end where an undecayed
    run puts them, while every W is decayed: W_decayed = W_plain - lr * wd * W0."""
    lr, wd = 0.1, 0.3
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 2, 5, 5)), rng.integers(0, 4, 8)
    spared = bn_cnn(optimizers.SGD(lr=lr, weight_decay=wd, decay_biases=False))
    plain = bn_cnn(optimizers.SGD(lr=lr, weight_decay=0.0))
    start = plain.get_weights()
    spared.train_on_batch(x, y)
    plain.train_on_batch(x, y)
    checked = set()
    for i, (a, b) in enumerate(zip(spared.layers, plain.layers, strict=True)):
        for key in a.params:
            if key in ("b", "gamma", "beta"):
                np.testing.assert_array_equal(a.params[key], b.params[key])
            else:
                decayed = b.params[key] - lr * wd * start[i][key]
                np.testing.assert_allclose(a.params[key], decayed, rtol=1e-12)
                assert not np.allclose(a.params[key], b.params[key])
            checked.add((type(a).__name__, key))
    assert checked == {
        ("Conv2D", "W"),
        ("Conv2D", "b"),
        ("BatchNorm", "gamma"),
        ("BatchNorm", "beta"),
        ("Dense", "W"),
        ("Dense", "b"),
    }


# -- BatchNorm's zero-initialised gamma ------------------------------------------------
def test_batchnorm_zero_gamma_starts_as_beta_and_the_model_file_keeps_it(tmp_path):
    cnnumpy.seed(0)
    model = cnnumpy.Sequential(
        [
            Conv2D(3, 3, padding=1),
            BatchNorm(gamma_initializer="zeros", name="last_bn"),
            BatchNorm(beta_initializer="ones"),
        ],
        input_shape=(2, 4, 4),
    )
    model.compile("sgd", loss="mse")
    zero_gamma, one_beta = model.layers[1], model.layers[2]
    np.testing.assert_array_equal(zero_gamma.params["gamma"], 0)
    np.testing.assert_array_equal(one_beta.params["beta"], 1)
    x = np.random.default_rng(0).standard_normal((4, 2, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(zero_gamma.forward(model.layers[0].forward(x)), 0)
    assert zero_gamma.get_config()["gamma_initializer"] == "zeros"
    assert "gamma_initializer" not in BatchNorm().get_config()  # as older files
    assert repr(zero_gamma) == "BatchNorm(name='last_bn', gamma_initializer='zeros')"
    model.save(tmp_path / "m.safetensors")
    loaded = cnnumpy.load_model(tmp_path / "m.safetensors")
    assert loaded.layers[1].gamma_initializer == "zeros"
    assert loaded.layers[2].beta_initializer == "ones"
    np.testing.assert_array_equal(loaded.layers[1].params["gamma"], 0)


@pytest.mark.parametrize("gamma", ["ones", "zeros"])
def test_batchnorm_constant_initializers_draw_no_random_numbers(gamma):
    """``"ones"`` and ``"zeros"`` spawn no generator: the next layers' weights are
    those the same seed gives without the BatchNorm."""
    cnnumpy.seed(0)
    with_bn = cnnumpy.Sequential(
        [BatchNorm(gamma_initializer=gamma), Dense(3)], input_shape=(4,)
    )
    cnnumpy.seed(0)
    without = cnnumpy.Sequential([Dense(3)], input_shape=(4,))
    assert with_bn.layers[0].existing_rng is None
    np.testing.assert_array_equal(
        with_bn.layers[1].params["W"], without.layers[0].params["W"]
    )


def test_batchnorm_unknown_initializer_is_refused_at_construction():
    with pytest.raises(ValueError, match="BatchNorm: unknown initializer 'zero' for"):
        BatchNorm(gamma_initializer="zero")
