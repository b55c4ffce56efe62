"""Preprocessing and augmentation of image batches ``(N, C, H, W)``.

All randomness comes from a ``numpy.random.Generator`` (``rng``: a Generator, an int
seed, or None for one spawned from ``cnnumpy``'s global generator), and every random
transform is vectorised over the batch: one draw per example, no Python loop. Inputs are
never modified.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cnnumpy.rng import as_rng


def _check_images(x: np.ndarray, caller: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{caller}: expected images (N, C, H, W), got shape {x.shape}")
    return x


def to_float(x: np.ndarray, dtype: str | np.dtype = np.float32) -> np.ndarray:
    """Images as floats in [0, 1]: uint8 divided by 255, floats only cast.

    Args:
        x: uint8 images (0..255) or float images already in [0, 1].
        dtype: the float dtype of the result.
    """
    x = np.asarray(x)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"to_float: expected a float dtype, got {dtype}")
    if x.dtype == np.uint8:
        return x.astype(dtype) / dtype.type(255)
    if x.dtype.kind == "f":
        return x.astype(dtype, copy=False)
    raise TypeError(f"to_float: expected uint8 or float images, got {x.dtype}")


def normalize(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` per channel (axis 1), after ``to_float`` for uint8 input.

    Shape:
        x: ``(N, C, ...)``; mean, std: ``(C,)``. The result has x's shape, float32
        (or x's float dtype).
    """
    x = to_float(x) if np.asarray(x).dtype == np.uint8 else np.asarray(x)
    if x.ndim < 2 or np.shape(mean) != (x.shape[1],) or np.shape(std) != (x.shape[1],):
        raise ValueError(
            f"normalize: expected x (N, C, ...) with mean and std of shape (C,), got "
            f"x {x.shape}, mean {np.shape(mean)}, std {np.shape(std)}"
        )
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean = np.asarray(mean, dtype=x.dtype).reshape(shape)
    std = np.asarray(std, dtype=x.dtype).reshape(shape)
    return (x - mean) / std


def standardize(
    x_train: np.ndarray, x_test: np.ndarray | None = None, eps: float = 1e-7
) -> tuple[np.ndarray, np.ndarray | None, tuple[np.ndarray, np.ndarray]]:
    """Zero mean, unit variance per channel, with statistics of the training split only.

    ``mean_c`` and ``std_c`` are computed over every example and pixel of channel ``c``
    of ``x_train`` (in float64, after scaling uint8 to [0, 1]) and applied to both
    splits, so that no information from the test split leaks into training.

    Args:
        x_train: ``(N, C, ...)`` uint8 or float images.
        x_test: optional ``(M, C, ...)`` images, transformed with the training
            statistics.
        eps: added to ``std`` so that a constant channel does not divide by zero.

    Returns:
        ``(x_train_std, x_test_std or None, (mean, std))``, ``mean`` and ``std`` of
        shape ``(C,)``, float32 arrays (or the input's float dtype).
    """
    x_train = to_float(x_train) if np.asarray(x_train).dtype == np.uint8 else x_train
    x_train = np.asarray(x_train)
    if x_train.ndim < 2 or x_train.dtype.kind != "f":
        raise ValueError(
            f"standardize: expected x_train (N, C, ...) uint8 or float, got "
            f"{x_train.shape} {x_train.dtype}"
        )
    axes = (0,) + tuple(range(2, x_train.ndim))
    mean = x_train.mean(axis=axes, dtype=np.float64)
    std = x_train.std(axis=axes, dtype=np.float64) + eps
    mean, std = mean.astype(x_train.dtype), std.astype(x_train.dtype)
    train_std = normalize(x_train, mean, std)
    test_std = None if x_test is None else normalize(x_test, mean, std)
    return train_std, test_std, (mean, std)


def one_hot(y: np.ndarray, num_classes: int, dtype: str | np.dtype = np.float32):
    """Class ids ``(N,)`` to one-hot rows ``(N, num_classes)``."""
    y = np.asarray(y)
    if y.ndim != 1 or (y.size and y.dtype.kind not in "iu"):
        raise ValueError(
            f"one_hot: expected integer labels (N,), got {y.shape} {y.dtype}"
        )
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"one_hot: labels must lie in [0, {num_classes - 1}], "
            f"got values from {y.min()} to {y.max()}"
        )
    out = np.zeros((y.shape[0], num_classes), dtype=dtype)
    out[np.arange(y.shape[0]), y] = 1
    return out


def random_crop(
    x: np.ndarray, padding: int = 4, rng: np.random.Generator | int | None = None
) -> np.ndarray:
    """Pad each image with ``padding`` zeros on every side, then cut a random window of
    the original size (the CIFAR-10 augmentation of He et al., 2016).

    Each example gets its own offsets ``(dy, dx)`` drawn uniformly in ``[0, 2P]``; the
    windows are gathered in one fancy-indexing step from a strided view of the
    padded batch.

    Shape:
        x: ``(N, C, H, W)``; the result has the same shape and dtype.
    """
    x = _check_images(x, "random_crop")
    if isinstance(padding, np.random.Generator):  # passed as fit(augment=random_crop)
        raise TypeError(
            "random_crop: the second argument is the padding, got a random generator; "
            "to crop in fit, pass augment=lambda x, rng: random_crop(x, 4, rng) "
            "(or cifar_augment, which also flips)"
        )
    if (
        isinstance(padding, bool)
        or not isinstance(padding, (int, np.integer))
        or padding < 0
    ):
        raise ValueError(f"random_crop: expected padding >= 0 (int), got {padding!r}")
    rng = as_rng(rng)
    N, _, H, W = x.shape
    if padding == 0 or N == 0:
        return x.copy()
    P = int(padding)
    padded = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))
    offsets = rng.integers(0, 2 * P + 1, size=(2, N))
    # windows[n, c, i, j] is the H x W window whose top-left corner is (i, j)
    windows = sliding_window_view(padded, (H, W), axis=(2, 3))
    return windows[np.arange(N), :, offsets[0], offsets[1]]


def random_flip(
    x: np.ndarray, rng: np.random.Generator | int | None = None, p: float = 0.5
) -> np.ndarray:
    """Mirror each image left-right with probability ``p`` (horizontal flip).

    Shape:
        x: ``(N, C, H, W)``; the result has the same shape and dtype.
    """
    x = _check_images(x, "random_flip")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"random_flip: expected 0 <= p <= 1, got {p}")
    rng = as_rng(rng)
    flip = rng.random(x.shape[0]) < p
    out = x.copy()
    out[flip] = x[flip, :, :, ::-1]
    return out


def cifar_augment(x: np.ndarray, rng: np.random.Generator | int | None = None):
    """The usual CIFAR-10 augmentation: ``random_crop(padding=4)``, ``random_flip``.

    Has the ``augment(x_batch, rng)`` signature that ``BatchIterator`` expects.
    """
    rng = as_rng(rng)
    return random_flip(random_crop(x, padding=4, rng=rng), rng=rng)


def cutout(
    x: np.ndarray, size: int, rng: np.random.Generator | int | None = None
) -> np.ndarray:
    """Zero one random ``size`` x ``size`` square of every image, all channels
    (Cutout, DeVries & Taylor 2017, "Improved regularization of convolutional neural
    networks with cutout").

    As in the paper, the square's centre ``(cy, cx)`` is uniform over the whole image,
    ``cy`` in ``[0, H)`` and ``cx`` in ``[0, W)``, and the square is clipped at the
    borders, so near an edge less than ``size * size`` pixels are cut:

        rows [cy - size // 2, cy - size // 2 + size) ∩ [0, H), likewise the columns.

    (The paper's code cuts ``[c - size // 2, c + size // 2)``: the same for an even
    ``size``, one row and column fewer for an odd one.) Applied to standardised
    images, as ``fit(augment=...)`` sees them, 0 is the channel's mean.

    Args:
        x: a batch of images.
        size: the side of the square, in pixels (>= 1); 16 for CIFAR-10 in the paper.
        rng: a Generator, an int seed, or None.

    Returns:
        A new array; ``x`` is not modified.

    Shape:
        x: ``(N, C, H, W)``; the result has the same shape and dtype.
    """
    x = _check_images(x, "cutout")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"cutout: expected size >= 1 (int), got {size!r}")
    rng = as_rng(rng)
    N, _, H, W = x.shape
    top = rng.integers(0, H, size=N) - size // 2  # centre minus half the side
    left = rng.integers(0, W, size=N) - size // 2
    rows = np.arange(H)[None, :]  # (1, H), compared with (N, 1) bounds
    cols = np.arange(W)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + size)  # (N, H)
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + size)  # (N, W)
    square = in_rows[:, :, None] & in_cols[:, None, :]  # (N, H, W)
    return np.where(square[:, None], x.dtype.type(0), x)


def compose(*transforms):
    """One ``augment(x_batch, rng)`` that applies ``transforms`` in order.

    Every transform has the signature ``f(x_batch, rng) -> x_batch`` that
    ``fit(augment=...)`` calls, and they all draw from the one generator, e.g.::

        augment = compose(cifar_augment, lambda x, rng: cutout(x, 16, rng))
        model.fit(x, y, augment=augment, seed=0)
    """
    if not transforms:
        raise ValueError("compose: expected at least one transform, got none")
    for step in transforms:
        if not callable(step):
            raise TypeError(
                f"compose: expected callables f(x_batch, rng), got "
                f"{type(step).__name__} {step!r}"
            )

    def augment(x: np.ndarray, rng: np.random.Generator | int | None = None):
        rng = as_rng(rng)
        for step in transforms:
            x = step(x, rng)
        return x

    return augment
