"""Tests of cnnumpy.visualize: maps that point at the evidence, exact cases, PNG sizes.

Two synthetic tasks on 1x16x16 images with N(0, 0.1) noise, each decided by a bright
4x4 square at a place the test knows:

- task "where" (the class is the square's place): class 0 = square at the top left,
  class 1 = square at the bottom right. Occlusion and saliency must point at it.
- task "what" (the class is the square's sign): a bright (class 0) or dark (class 1)
  square at a random place. Grad-CAM must point at it. Grad-CAM cannot work on the
  "where" task, by construction: its channel weights are spatial means of the gradient,
  and a square detector is weighted + at one place and - at the other.
"""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from cnnumpy import optimizers
from cnnumpy.callbacks import History
from cnnumpy.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Softmax, Tanh
from cnnumpy.rng import seed
from cnnumpy.sequential import Sequential
from cnnumpy.visualize import (
    confusion_matrix,
    feature_maps,
    filters,
    grad_cam,
    grad_cam_target,
    misclassified,
    occlusion,
    resize_bilinear,
    saliency,
    training_curves,
)
from cnnumpy.visualize.maps import class_probabilities, misclassified_indices

CORNERS = {0: (2, 2), 1: (10, 10)}


def box(r: int, c: int, margin: int = 0, size: int = 4) -> np.ndarray:
    mask = np.zeros((16, 16), dtype=bool)
    mask[
        max(r - margin, 0) : r + size + margin, max(c - margin, 0) : c + size + margin
    ] = True
    return mask


def where_data(n: int, rng: np.random.Generator):
    x = rng.normal(0.0, 0.1, (n, 1, 16, 16))
    y = rng.integers(0, 2, n)
    for i in range(n):
        r, c = CORNERS[int(y[i])]
        x[i, 0, r : r + 4, c : c + 4] += 1.0
    return x, y


def what_data(n: int, rng: np.random.Generator):
    x = rng.normal(0.0, 0.1, (n, 1, 16, 16))
    y = rng.integers(0, 2, n)
    places = rng.integers(0, 13, (n, 2))
    for i in range(n):
        r, c = places[i]
        x[i, 0, r : r + 4, c : c + 4] += 1.0 if y[i] == 0 else -1.0
    return x, y, places


def tiny_cnn() -> Sequential:
    seed(0)
    model = Sequential(
        [
            Conv2D(4, 3, padding=1),
            ReLU(),
            MaxPool2D(2),
            Conv2D(8, 3, padding=1),
            ReLU(),
            MaxPool2D(2),
            Flatten(),
            Dense(2),
        ],
        input_shape=(1, 16, 16),
    )
    model.astype(np.float64)
    # weight decay removes the weights the data does not support (noise paths)
    model.compile(
        optimizer=optimizers.SGD(lr=0.05, momentum=0.9, weight_decay=5e-3),
        loss="cross_entropy",
    )
    return model


@pytest.fixture(scope="module")
def where_model():
    x, y = where_data(256, np.random.default_rng(0))
    model = tiny_cnn()
    model.fit(x, y, epochs=5, batch_size=32, verbose=0, seed=0)
    return model


@pytest.fixture(scope="module")
def what_model():
    x, y, _ = what_data(256, np.random.default_rng(0))
    model = tiny_cnn()
    model.fit(x, y, epochs=5, batch_size=32, verbose=0, seed=0)
    return model


def linear_model(C=2, H=4, W=5, K=3) -> Sequential:
    seed(1)
    model = Sequential([Flatten(), Dense(K)], input_shape=(C, H, W))
    return model.astype(np.float64)


def png_size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


# -- the maps point at the evidence ----
def test_occlusion_peaks_on_the_square(where_model):
    x, y = where_data(12, np.random.default_rng(100))
    fractions = []
    for xi, yi in zip(x, y, strict=True):
        r, c = CORNERS[int(yi)]
        heat = occlusion(where_model, xi, int(yi), patch=4, stride=1)
        assert heat.shape == (16, 16)
        assert box(r, c).flat[heat.argmax()], "the largest drop is off the square"
        positive = np.maximum(heat, 0)
        fractions.append(positive[box(r, c, 1)].sum() / positive.sum())
    # the square (dilated by 1) is 14% of the image; it holds nearly all the drop
    assert np.mean(fractions) > 0.8


def test_saliency_mass_on_the_square(where_model):
    x, y = where_data(20, np.random.default_rng(101))
    own, other = [], []
    for xi, yi in zip(x, y, strict=True):
        heat = saliency(where_model, xi, int(yi))
        assert heat.min() >= 0 and heat.max() == pytest.approx(1.0)
        own.append(heat[box(*CORNERS[int(yi)])].sum() / heat.sum())
        other.append(heat[box(*CORNERS[1 - int(yi)])].sum() / heat.sum())
    area = 16 / 256
    assert np.mean(own) > 3 * area  # observed ~0.24 (about 4x)
    assert np.mean(own) > np.mean(other)


def test_grad_cam_mass_on_the_square(what_model):
    x, y, places = what_data(20, np.random.default_rng(102))
    fractions, areas = [], []
    for xi, yi, (r, c) in zip(x, y, places, strict=True):
        heat = grad_cam(what_model, xi, int(yi))
        assert heat.shape == (16, 16) and heat.min() >= 0 and heat.max() <= 1
        mask = box(r, c, 1)
        fractions.append(heat[mask].sum() / max(heat.sum(), 1e-12))
        areas.append(mask.mean())
    assert np.mean(fractions) > 3 * np.mean(areas)  # observed ~0.5 against ~0.13


# -- exact cases ----
@pytest.mark.parametrize("label", [0, 2])
def test_saliency_of_a_linear_model_is_its_weights(label):
    model = linear_model()
    x = np.random.default_rng(0).standard_normal((2, 4, 5))
    expected = (
        np.abs(model.layers[1].params["W"][:, label]).reshape(2, 4, 5).sum(axis=0)
    )
    expected /= expected.max()
    np.testing.assert_allclose(saliency(model, x, label), expected, rtol=1e-12, atol=0)


def test_saliency_uses_the_logit_before_a_final_softmax():
    model = linear_model()
    with_softmax = Sequential([*model.layers, Softmax()], input_shape=(2, 4, 5))
    with_softmax.astype(np.float64)
    x = np.random.default_rng(0).standard_normal((2, 4, 5))
    np.testing.assert_allclose(
        saliency(with_softmax, x, 1), saliency(model, x, 1), rtol=1e-12, atol=0
    )


def test_saliency_restores_first_layer_flag_and_grads(where_model):
    first = where_model.layers[0]
    first.need_input_grad = False  # as during a training step
    before = {k: v.copy() for k, v in first.grads.items()}
    saliency(where_model, np.zeros((1, 16, 16)), 1)
    grad_cam(where_model, np.zeros((1, 16, 16)), 1)
    assert first.need_input_grad is False
    for key, value in before.items():
        np.testing.assert_array_equal(first.grads[key], value)


def small_conv_model() -> Sequential:
    seed(3)
    model = Sequential(
        [Conv2D(3, 3), Tanh(), Conv2D(4, 3, stride=2), ReLU(), Flatten(), Dense(3)],
        input_shape=(2, 9, 9),
    )
    return model.astype(np.float64)


def test_grad_cam_target_is_the_activation_after_the_conv():
    model = small_conv_model()
    assert grad_cam_target(model) == 3  # the ReLU after the last conv
    assert grad_cam_target(model, 0) == 1  # the Tanh after the first
    bare = Sequential([Conv2D(2, 3), Flatten(), Dense(2)], input_shape=(1, 5, 5))
    assert grad_cam_target(bare) == 0


def test_grad_cam_matches_the_formula_with_numerical_gradients():
    """Weights from centred finite differences of the score w.r.t. A, map by hand."""
    model = small_conv_model()
    x = np.random.default_rng(4).standard_normal((2, 9, 9))
    label, target = 2, 3
    A = x[None]
    for layer in model.layers[: target + 1]:
        A = layer.forward(A)

    def score(a):
        out = a
        for layer in model.layers[target + 1 :]:
            out = layer.forward(out)
        return out[0, label]

    dA = np.zeros_like(A)
    for idx in np.ndindex(*A.shape):
        step = np.zeros_like(A)
        step[idx] = 1e-6
        dA[idx] = (score(A + step) - score(A - step)) / 2e-6
    weights = dA[0].mean(axis=(1, 2))
    cam = np.maximum(np.tensordot(weights, A[0], axes=1), 0)
    expected = np.maximum(resize_bilinear(cam, (9, 9)), 0)
    if expected.max() > 0:
        expected /= expected.max()
    heat = grad_cam(model, x, label)
    assert heat.shape == (9, 9) and heat.min() >= 0
    np.testing.assert_allclose(heat, expected, rtol=1e-6, atol=1e-8)


def test_resize_bilinear_keeps_constants_and_centres():
    np.testing.assert_allclose(resize_bilinear(np.full((3, 4), 2.5), (7, 9)), 2.5)
    up = resize_bilinear(np.array([[0.0, 1.0]]), (1, 4))
    np.testing.assert_allclose(up, [[0.0, 0.25, 0.75, 1.0]])


def test_occlusion_of_a_constant_model_is_zero():
    model = linear_model()
    model.layers[1].params["W"][...] = 0.0
    x = np.random.default_rng(0).standard_normal((2, 4, 5))
    np.testing.assert_array_equal(
        occlusion(model, x, 1, patch=2, stride=1), np.zeros((4, 5))
    )


def test_occlusion_equals_a_naive_loop():
    """Batched map == one patch at a time, the mean drop of the covering patches."""
    model = small_conv_model()
    model.compile(loss="cross_entropy")
    x = np.random.default_rng(5).standard_normal((2, 9, 9))
    patch, stride, label = 4, 3, 1  # corners 0, 3 and the one on the border, 5
    base = model.predict(x[None])[0, label]
    total, count = np.zeros((9, 9)), np.zeros((9, 9))
    for i in (0, 3, 5):
        for j in (0, 3, 5):
            copy = x.copy()
            copy[:, i : i + patch, j : j + patch] = x.mean(axis=(1, 2))[:, None, None]
            total[i : i + patch, j : j + patch] += (
                base - model.predict(copy[None])[0, label]
            )
            count[i : i + patch, j : j + patch] += 1
    heat = occlusion(
        model, x, label, patch=patch, stride=stride, fill="mean", batch_size=4
    )
    np.testing.assert_allclose(heat, total / count, rtol=1e-10, atol=1e-14)


def test_occlusion_pixels_no_patch_covers_are_zero():
    model = small_conv_model()
    x = np.random.default_rng(5).standard_normal((2, 9, 9))
    heat = occlusion(model, x, 0, patch=2, stride=4)  # corners 0, 4, 7
    covered = np.zeros(9, dtype=bool)
    covered[[0, 1, 4, 5, 7, 8]] = True
    assert np.all(heat[~covered, :] == 0) and np.all(heat[:, ~covered] == 0)
    # each covered pixel lies under exactly one patch: its heat is that patch's drop,
    # computed here one occluded image at a time (a drop may truly be 0: a patch that
    # only reaches dead ReLUs changes nothing, so compare values, not "!= 0")
    base = class_probabilities(model, x[None])[0, 0]
    for i in (0, 4, 7):
        for j in (0, 4, 7):
            hidden = x.copy()
            hidden[:, i : i + 2, j : j + 2] = 0.0
            drop = base - class_probabilities(model, hidden[None])[0, 0]
            np.testing.assert_allclose(
                heat[i : i + 2, j : j + 2], np.full((2, 2), drop), rtol=0, atol=1e-12
            )


def test_occlusion_is_fast_on_the_seed_cifar_net():
    from cnnumpy.zoo import seed_cifar

    model = seed_cifar()
    model.compile(loss="cross_entropy")
    x = np.random.default_rng(0).standard_normal((3, 32, 32)).astype(np.float32)
    occlusion(model, x, 3)  # warm-up
    start = time.perf_counter()
    heat = occlusion(model, x, 3)  # 169 occluded copies, one batch
    elapsed = time.perf_counter() - start
    assert heat.shape == (32, 32)
    assert elapsed < 2.0, f"occlusion took {elapsed:.2f} s (~0.3 s expected)"


# -- feature maps and filters ----
def test_feature_maps_is_the_layer_output(tmp_path):
    model = small_conv_model()
    x = np.random.default_rng(0).standard_normal((2, 9, 9))
    expected = model.layers[1].forward(model.layers[0].forward(x[None]))[0]
    for layer in (1, -5, model.layers[1]):
        np.testing.assert_array_equal(feature_maps(model, x, layer), expected)
    maps = feature_maps(model, x, 1, save=tmp_path / "fm.png")
    assert maps.shape == (3, 7, 7)
    assert png_size(tmp_path / "fm.png") == (2 * 150, 2 * 150 + 40)  # 3 tiles: 2x2
    assert feature_maps(model, x, -1).shape == (3, 1, 1)  # the logits


def test_filters_rgb_and_grey(tmp_path):
    from cnnumpy.zoo import seed_cifar

    rgb = filters(seed_cifar(), save=tmp_path / "rgb.png")
    assert rgb.shape == (16, 5, 5, 3) and rgb.min() >= 0 and rgb.max() <= 1
    assert png_size(tmp_path / "rgb.png") == (4 * 150, 4 * 150 + 40)
    model = Sequential([Conv2D(2, 3), ReLU(), Conv2D(3, 3)], input_shape=(4, 6, 6))
    kernels = filters(model, -1, save=tmp_path / "grey.png")
    assert kernels.shape == (3, 2, 3, 3)  # (F, C, KH, KW): one row per filter
    assert png_size(tmp_path / "grey.png") == (2 * 150, 3 * 150 + 40)
    assert filters(model).shape == (2, 4, 3, 3)  # the first conv by default
    np.testing.assert_allclose(kernels.min(axis=(1, 2, 3)), 0)
    np.testing.assert_allclose(kernels.max(axis=(1, 2, 3)), 1)


# -- errors ----
def test_clear_errors():
    model = small_conv_model()
    x = np.zeros((2, 9, 9))
    with pytest.raises(
        ValueError,
        match=r"saliency: expected one image \(C, H, W\) = "
        r"\(2, 9, 9\), got \(1, 2, 9, 9\)",
    ):
        saliency(model, x[None], 0)
    with pytest.raises(
        ValueError, match=r"occlusion: label must be in \[0, 3\), got 3"
    ):
        occlusion(model, x, 3)
    with pytest.raises(TypeError, match="grad_cam: label must be an int"):
        grad_cam(model, x, 1.0)
    with pytest.raises(TypeError, match="grad_cam: layer 1 must be a Conv2D layer"):
        grad_cam(model, x, 0, layer=1)
    with pytest.raises(ValueError, match=r"layer index must be in \[-6, 6\), got 6"):
        feature_maps(model, x, 6)
    with pytest.raises(ValueError, match="occlusion: patch .* larger than the image"):
        occlusion(model, x, 0, patch=10)
    with pytest.raises(ValueError, match="fill must be a number or 'mean'"):
        occlusion(model, x, 0, fill="median")
    with pytest.raises(ValueError, match="filters: the model has no Conv2D layer"):
        filters(linear_model())
    with pytest.raises(ValueError, match="the model is not built"):
        saliency(Sequential([Flatten(), Dense(2)]), x, 0)


# -- curves, confusion matrix, mistakes ----
def test_training_curves(tmp_path):
    history = History()
    for epoch, (loss, acc) in enumerate([(1.0, 0.5), (0.6, 0.7), (0.4, 0.8)]):
        history.on_epoch_end(
            epoch,
            {
                "loss": loss,
                "accuracy": acc,
                "val_loss": loss + 0.1,
                "val_accuracy": acc - 0.1,
                "lr": 0.1,
                "time": 1.0,
            },
        )
    curves = training_curves(history, save=tmp_path / "curves.png")
    assert set(curves) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    np.testing.assert_allclose(curves["val_loss"], [1.1, 0.7, 0.5])
    assert png_size(tmp_path / "curves.png") == (1000, 400)
    assert set(training_curves({"loss": [1.0, 0.5]})) == {"loss"}


def test_confusion_matrix(tmp_path):
    matrix = confusion_matrix(
        [0, 1, 2, 2], [0, 2, 2, 1], ["a", "b", "c"], save=tmp_path / "cm.png"
    )
    np.testing.assert_array_equal(matrix, [[1, 0, 0], [0, 0, 1], [0, 1, 1]])
    assert png_size(tmp_path / "cm.png") == (500, 500)


def test_misclassified_indices_by_confidence():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3], [0.05, 0.95]])
    y = np.array([1, 1, 0, 0, 0])
    np.testing.assert_array_equal(misclassified_indices(probs, y, 9), [4, 0, 2])
    np.testing.assert_array_equal(misclassified_indices(probs, y, 2), [4, 0])


def test_misclassified_on_a_model(tmp_path):
    model = small_conv_model()
    model.compile(loss="cross_entropy")
    x = np.random.default_rng(0).standard_normal((30, 2, 9, 9))
    y = np.random.default_rng(1).integers(0, 3, 30)
    index = misclassified(
        model, x, y, k=4, class_names=["a", "b", "c"], save=tmp_path / "wrong.png"
    )
    probs = model.predict(x)
    wrong = np.flatnonzero(probs.argmax(axis=1) != y)
    expected = wrong[np.argsort(-probs[wrong].max(axis=1), kind="stable")][:4]
    np.testing.assert_array_equal(index, expected)
    assert png_size(tmp_path / "wrong.png") == (2 * 150, 2 * 150 + 40)


def test_map_pngs_have_the_documented_size(where_model, tmp_path):
    x, _ = where_data(1, np.random.default_rng(3))
    for name, fn in (("occ", occlusion), ("sal", saliency), ("cam", grad_cam)):
        fn(where_model, x[0], 0, save=tmp_path / f"{name}.png")
        assert png_size(tmp_path / f"{name}.png") == (600, 300)
        data = (tmp_path / f"{name}.png").read_bytes()
        assert Image.open(io.BytesIO(data)).mode in ("RGBA", "RGB")


def test_float32_model():
    model = small_conv_model().astype(np.float32)
    x = np.random.default_rng(0).standard_normal((2, 9, 9)).astype(np.float32)
    assert saliency(model, x, 0).shape == (9, 9)
    assert grad_cam(model, x, 0).shape == (9, 9)
    assert occlusion(model, x, 0, patch=3, stride=2).shape == (9, 9)


def test_maps_refuse_values_beyond_the_model_dtype():
    model = small_conv_model().astype(np.float32)
    x = np.zeros((2, 9, 9))
    x[0, 0, 0] = 1e300  # finite in float64, inf in the float32 model
    too_large = r"occlusion: x contains 1 value\(s\) too large"
    with pytest.raises(ValueError, match=too_large):
        occlusion(model, x, 0)
    with pytest.raises(ValueError, match=r"class_probabilities: x contains 1 value"):
        class_probabilities(model, x[None])
