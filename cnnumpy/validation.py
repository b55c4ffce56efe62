"""Checks of user data at the model boundary (fit, evaluate, predict, train_on_batch).

Each error names the method and the argument, what was expected and what was received.
"""

from __future__ import annotations

import numpy as np


def check_inputs(
    x, input_shape: tuple[int, ...] | None, where: str, arg: str = "x"
) -> np.ndarray:
    """Return ``x`` as an array after checking type, dtype, rank, shape and finiteness.

    Integer images (uint8...) are accepted as they are and cast batch by batch later.
    """
    if isinstance(x, (list, tuple)):
        x = np.asarray(x)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{where}: {arg} must be a numpy array, got {type(x).__name__}")
    if x.dtype == object or not (
        np.issubdtype(x.dtype, np.floating)
        or np.issubdtype(x.dtype, np.integer)
        or x.dtype == np.bool_
    ):
        raise TypeError(
            f"{where}: {arg} must hold numbers (float or integer), got dtype {x.dtype}"
        )
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(
            f"{where}: {arg} is empty (shape {x.shape}); expected at least one example"
        )
    if input_shape is not None:
        expected = (len(x), *input_shape)
        if x.shape != expected:
            raise ValueError(
                f"{where}: {arg} must have shape "
                f"(N, {', '.join(map(str, input_shape))}) "
                f"for this model, got {x.shape}"
            )
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ValueError(f"{where}: {arg} contains {bad} NaN or infinite value(s)")
    return x


def check_targets(
    y, n: int, output_shape: tuple[int, ...], loss_name: str, where: str, arg: str = "y"
) -> np.ndarray:
    """Check labels or regression targets.

    They must match the number of examples and the model output.
    """
    if isinstance(y, (list, tuple)):
        y = np.asarray(y)
    if not isinstance(y, np.ndarray):
        raise TypeError(f"{where}: {arg} must be a numpy array, got {type(y).__name__}")
    if y.dtype == object or not (
        np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_
    ):
        raise TypeError(f"{where}: {arg} must hold numbers, got dtype {y.dtype}")
    if y.ndim == 0 or len(y) != n:
        got = "a scalar" if y.ndim == 0 else f"{len(y)}"
        raise ValueError(
            f"{where}: {arg} must have one entry per example ({n}), got {got}"
        )
    if np.issubdtype(y.dtype, np.floating) and not np.all(np.isfinite(y)):
        raise ValueError(f"{where}: {arg} contains NaN or infinite values")
    if loss_name == "cross_entropy":
        num_classes = int(np.prod(output_shape))
        if y.ndim == 1:
            _check_class_ids(y, num_classes, where, arg)
        elif y.shape[1:] != (num_classes,):
            raise ValueError(
                f"{where}: {arg} must be class ids (N,) or one-hot (N, {num_classes}), "
                f"got shape {y.shape}"
            )
    elif loss_name == "mse" and y.shape[1:] != tuple(output_shape):
        if not (y.ndim == 1 and tuple(output_shape) == (1,)):
            raise ValueError(
                f"{where}: {arg} must have shape "
                f"(N, {', '.join(map(str, output_shape))}) "
                f"like the model output, got {y.shape}"
            )
    return y


def _check_class_ids(y: np.ndarray, num_classes: int, where: str, arg: str) -> None:
    if np.issubdtype(y.dtype, np.floating):
        if not np.all(y == np.round(y)):
            raise ValueError(
                f"{where}: {arg} class ids must be whole numbers, got {y[:5]}..."
            )
    lo, hi = y.min(), y.max()
    if lo < 0 or hi >= num_classes:
        raise ValueError(
            f"{where}: {arg} class ids must lie in [0, {num_classes - 1}] "
            f"for a model with "
            f"{num_classes} outputs, got values from {lo} to {hi}"
        )


def check_batch_size(batch_size, where: str) -> None:
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ValueError(
            f"{where}: batch_size must be a positive integer, got {batch_size!r}"
        )
