"""Preprocessing, seeded augmentation (with naive loop twins), BatchIterator,
splitting."""

import numpy as np
import pytest

from cnnumpy.data import (
    BatchIterator,
    cifar_augment,
    normalize,
    one_hot,
    random_crop,
    random_flip,
    standardize,
    to_float,
    train_val_split,
)


def images(n=5, c=3, h=6, w=7, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, c, h, w), dtype=np.uint8)


def test_to_float():
    x = np.array([[[[0, 51, 255]]]], dtype=np.uint8)
    out = to_float(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.ravel(), [0.0, 0.2, 1.0], rtol=1e-7)
    assert to_float(out, np.float64).dtype == np.float64
    with pytest.raises(
        TypeError, match="to_float: expected uint8 or float images, got int16"
    ):
        to_float(x.astype(np.int16))


def test_standardize_uses_training_statistics_per_channel():
    x_train, x_test = images(8, seed=0), images(4, seed=1)
    train, test, (mean, std) = standardize(x_train, x_test)
    assert mean.shape == std.shape == (3,) and train.dtype == np.float32
    ref = x_train / 255.0
    np.testing.assert_allclose(mean, ref.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(std, ref.std(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(train.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=(0, 2, 3)), 1, rtol=1e-4)
    expected = (x_test / 255.0 - mean[None, :, None, None]) / std[None, :, None, None]
    np.testing.assert_allclose(test, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(normalize(x_test, mean, std), test)
    assert standardize(x_train)[1] is None
    with pytest.raises(ValueError, match=r"normalize: expected x \(N, C, ...\)"):
        normalize(x_test, mean[:2], std)


def test_one_hot():
    out = one_hot(np.array([2, 0, 1]), 3)
    np.testing.assert_array_equal(out, [[0, 0, 1], [1, 0, 0], [0, 1, 0]])
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match=r"one_hot: labels must lie in \[0, 2\]"):
        one_hot(np.array([3]), 3)


def naive_random_crop(x, padding, seed):
    """Loop twin of random_crop: the same offset draws, one window at a time."""
    N, _, H, W = x.shape
    offsets = np.random.default_rng(seed).integers(0, 2 * padding + 1, size=(2, N))
    padded = np.pad(x, ((0, 0), (0, 0), (padding,) * 2, (padding,) * 2))
    out = np.empty_like(x)
    for n in range(N):
        dy, dx = offsets[0, n], offsets[1, n]
        out[n] = padded[n, :, dy : dy + H, dx : dx + W]
    return out


@pytest.mark.parametrize("padding", [1, 4])
@pytest.mark.parametrize("shape", [(1, 1, 5, 5), (6, 3, 6, 7)])
def test_random_crop_matches_loop_twin(padding, shape):
    x = images(*shape)
    out = random_crop(x, padding=padding, rng=np.random.default_rng(3))
    assert out.shape == x.shape and out.dtype == x.dtype
    np.testing.assert_array_equal(out, naive_random_crop(x, padding, 3))
    np.testing.assert_array_equal(out, random_crop(x, padding=padding, rng=3))


def test_random_crop_edge_cases():
    x = images(4)
    np.testing.assert_array_equal(random_crop(x, padding=0, rng=0), x)
    with pytest.raises(ValueError, match="random_crop: expected padding >= 0"):
        random_crop(x, padding=-1)
    with pytest.raises(
        ValueError, match=r"random_crop: expected images \(N, C, H, W\)"
    ):
        random_crop(x[0])


def test_random_flip():
    x = images(50)
    before = x.copy()
    out = random_flip(x, rng=0)
    np.testing.assert_array_equal(x, before)  # the input is untouched
    flipped = np.array(
        [np.array_equal(o, i[:, :, ::-1]) for o, i in zip(out, x, strict=True)]
    )
    kept = np.array([np.array_equal(o, i) for o, i in zip(out, x, strict=True)])
    assert np.all(flipped | kept) and 0 < flipped.sum() < 50
    expected = np.random.default_rng(0).random(50) < 0.5
    np.testing.assert_array_equal(flipped, expected)
    np.testing.assert_array_equal(random_flip(x, rng=0), out)
    np.testing.assert_array_equal(random_flip(x, rng=0, p=0.0), x)
    np.testing.assert_array_equal(random_flip(x, rng=0, p=1.0), x[..., ::-1])


def test_cifar_augment_is_seeded():
    x = images(8, 3, 32, 32)
    a, b = cifar_augment(x, np.random.default_rng(1)), cifar_augment(x, 1)
    assert a.shape == x.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, cifar_augment(x, 2))


def batches_of(it):
    return [(xb.copy(), yb.copy()) for xb, yb in it]


@pytest.mark.parametrize("n, batch_size", [(10, 3), (9, 3), (1, 4)])
def test_batches_cover_every_sample_once(n, batch_size):
    x, y = np.arange(n * 2).reshape(n, 2), np.arange(n)
    it = BatchIterator(x, y, batch_size=batch_size, rng=0)
    for _ in range(2):
        got = batches_of(it)
        assert len(got) == len(it) == -(-n // batch_size)
        seen = np.concatenate([yb for _, yb in got])
        np.testing.assert_array_equal(np.sort(seen), np.arange(n))
        for xb, yb in got:
            np.testing.assert_array_equal(xb, x[yb])  # pairs stay together


def test_drop_last_and_order():
    x = np.arange(10)
    it = BatchIterator(x, x, batch_size=4, rng=0, drop_last=True)
    assert len(it) == 2 and [len(b) for b, _ in it] == [4, 4]
    first, second = batches_of(it), batches_of(it)
    assert not all(
        np.array_equal(a[0], b[0]) for a, b in zip(first, second, strict=True)
    )
    ordered = BatchIterator(x, x, batch_size=4, shuffle=False)
    got = [xb for xb, _ in ordered]
    assert [b.tolist() for b in got] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert np.shares_memory(got[0], x)  # views, no copy without shuffling


def test_reproducible_and_state_restores_an_epoch():
    x, y = images(10, 3, 8, 8), np.arange(10)
    a, b = (BatchIterator(x, y, 4, rng=7, augment=cifar_augment) for _ in range(2))
    for epoch_a, epoch_b in zip(
        [batches_of(a) for _ in range(2)],
        [batches_of(b) for _ in range(2)],
        strict=True,
    ):
        for (xa, ya), (xb, yb) in zip(epoch_a, epoch_b, strict=True):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    saved = a.state
    epoch = batches_of(a)
    a.state = saved
    replay = batches_of(a)
    for (xa, ya), (xb, yb) in zip(epoch, replay, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_batch_iterator_errors():
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match="BatchIterator: x and y must hold as many"):
        BatchIterator(x, np.zeros(2))
    with pytest.raises(ValueError, match="expected batch_size >= 1, got 0"):
        BatchIterator(x, np.zeros(3), batch_size=0)
    with pytest.raises(TypeError, match="augment must be callable"):
        BatchIterator(x, np.zeros(3), augment="flip")


def test_train_val_split():
    x, y = np.arange(20).reshape(10, 2), np.arange(10)
    xt, yt, xv, yv = train_val_split(x, y, 0.3, rng=0)
    assert len(xv) == 3 and len(xt) == 7
    np.testing.assert_array_equal(np.sort(np.concatenate([yt, yv])), y)
    np.testing.assert_array_equal(xt, x[yt])
    again = train_val_split(x, y, 0.3, rng=0)
    np.testing.assert_array_equal(again[3], yv)
    with pytest.raises(ValueError, match="expected 0 < fraction < 1, got 1.5"):
        train_val_split(x, y, 1.5)
    with pytest.raises(ValueError, match="leaves an empty part"):
        train_val_split(x[:2], y[:2], 0.1)


def test_random_crop_passed_as_fit_augment_says_how_to_use_it():
    """fit calls augment(x_batch, rng): random_crop's second argument is the padding,
    so the error names the generator and shows the lambda to pass instead."""
    import cnnumpy

    cnnumpy.seed(0)
    model = cnnumpy.Sequential(
        [cnnumpy.layers.Flatten(), cnnumpy.layers.Dense(2)], input_shape=(1, 4, 4)
    )
    model.compile("sgd", "cross_entropy")
    x, y = np.zeros((8, 1, 4, 4), np.float32), np.arange(8) % 2
    with pytest.raises(TypeError, match=r"lambda x, rng: random_crop\(x, 4, rng\)"):
        model.fit(x, y, epochs=1, augment=random_crop, verbose=0)
