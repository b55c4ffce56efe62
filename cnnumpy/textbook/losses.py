"""Loss functions: each returns ``(loss, dL/dinput)`` (seed 002, "Fonction de perte").

The loss is the last "layer" of the network: it squashes all the outputs into one
number E and gives the first dE/dY of the backward pass.

- ``mse`` (seed 002): E = (1/n) sum_i (y_i - t_i)^2 over ALL n elements,
  dE/dY = 2 (Y - T) / n.
- ``cross_entropy``: softmax fused with the negative log-likelihood (seeds 000 and 004),
  L = -(1/N) sum_n sum_k t_nk log softmax(z_n)_k, dL/dZ = (softmax(Z) - T) / N.
- ``binary_cross_entropy``: sigmoid fused with the binary log-likelihood, on logits,
  L = mean(max(z, 0) - z t + log(1 + exp(-|z|))), dL/dZ = (sigmoid(Z) - T) / n.

Fusing the output activation into the loss gives the short gradients above (seed 000:
delta_j = t_j - y_j) and avoids log(0) when a probability underflows.
"""

from __future__ import annotations

import numpy as np

from cnnumpy.textbook.activations import log_softmax, sigmoid


def _predictions(y, loss: str, what: str) -> np.ndarray:
    """The network output as a float array of at least one element."""
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.floating):
        y = y.astype(np.float64)
    if y.ndim == 0 or y.shape[0] == 0:
        raise ValueError(
            f"{loss}: expected {what} (N, ...) with N >= 1, got shape {y.shape}"
        )
    return y


def _numeric(t, loss: str) -> np.ndarray:
    t = np.asarray(t)
    if not (np.issubdtype(t.dtype, np.number) or t.dtype == np.bool_):
        raise TypeError(f"{loss}: expected numeric targets, got dtype {t.dtype}")
    return t


def _matching_targets(t, y: np.ndarray, loss: str) -> np.ndarray:
    """Targets of the shape of ``y``; (N,) and (N, 1) are accepted for one another."""
    t = _numeric(t, loss)
    column_pair = {t.shape, y.shape} == {(y.shape[0],), (y.shape[0], 1)}
    if t.shape != y.shape and not column_pair:
        raise ValueError(
            f"{loss}: expected targets of shape {y.shape} like the predictions"
            f" ((N,) and (N, 1) are interchangeable), got {t.shape}"
        )
    return t.reshape(y.shape).astype(y.dtype)


def mse(y: np.ndarray, t: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean squared error, exactly as the notes (seed 002).

    E = (1/n) sum_i (y_i - t_i)^2 and dE/dY = 2 (Y - T) / n, where n is the total
    number of elements (batch times outputs). This is exactly PyTorch's
    ``MSELoss(reduction="mean")``.

    Args:
        y: the predictions.
        t: the targets, same shape (or (N,) for predictions (N, 1)).

    Returns:
        ``(E, dE/dY)``.

    Shape:
        y: ``(N, ...)``, dE/dY: like ``y``.
    """
    y = _predictions(y, "mse", "predictions")
    t = _matching_targets(t, y, "mse")
    n = y.size
    diff = y - t
    loss = np.sum(diff * diff) / n
    dy = 2 * diff / n
    return float(loss), dy


def _class_targets(targets, N: int, K: int, dtype) -> np.ndarray:
    """Integer class ids (N,) or one-hot / probability rows (N, K) as (N, K) rows."""
    t = _numeric(targets, "cross_entropy")
    if t.ndim not in (1, 2) or t.shape[0] != N:
        raise ValueError(
            f"cross_entropy: expected targets of length {N} (one per example): "
            f"class ids ({N},) or one-hot rows ({N}, {K}), got shape {t.shape}"
        )
    if t.ndim == 2:
        if t.shape[1] != K:
            raise ValueError(
                f"cross_entropy: expected one-hot or probability targets ({N}, {K}) "
                f"for {K} classes (pass class ids as shape ({N},)), got {t.shape}"
            )
        return t.astype(dtype)
    integral = np.issubdtype(t.dtype, np.integer) or (
        np.issubdtype(t.dtype, np.floating) and np.all(np.mod(t, 1) == 0)
    )
    if not integral:
        raise ValueError(
            f"cross_entropy: expected integer class ids ({N},), got dtype {t.dtype} "
            f"with non-integer values"
        )
    ids = t.astype(np.int64)
    if ids.min() < 0 or ids.max() >= K:
        raise ValueError(
            f"cross_entropy: expected class ids in [0, {K}) for {K} classes, "
            f"got values in [{ids.min()}, {ids.max()}]"
        )
    one_hot = np.zeros((N, K), dtype=dtype)
    one_hot[np.arange(N), ids] = 1
    return one_hot


def cross_entropy(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Softmax cross-entropy on logits, averaged over the batch.

    L = -(1/N) sum_n sum_k t_nk log softmax(z_n)_k, with the stable log-sum-exp
    log softmax(z)_k = (z_k - m) - log sum_j exp(z_j - m), m = max_j z_j.
    dL/dZ = (softmax(Z) * sum_k t_k - T) / N, which is (softmax(Z) - T) / N since
    every target row sums to 1. Equal to PyTorch's ``CrossEntropyLoss()`` for ids and
    for probabilities.

    Args:
        logits: raw scores Z, one row per example (no softmax before the loss).
        targets: integer class ids, or one-hot / probability rows.

    Returns:
        ``(L, dL/dZ)``.

    Shape:
        logits: ``(N, K)``, targets: ``(N,)`` or ``(N, K)``, dL/dZ: ``(N, K)``.
    """
    z = _predictions(logits, "cross_entropy", "logits")
    if z.ndim != 2:
        raise ValueError(f"cross_entropy: expected logits (N, K), got shape {z.shape}")
    N, K = z.shape
    t = _class_targets(targets, N, K, z.dtype)
    log_p = log_softmax(z, axis=1)
    loss = -np.sum(t * log_p) / N
    p = np.exp(log_p)
    row_mass = t.sum(axis=1, keepdims=True)  # 1 for one-hot and probability rows
    dz = (p * row_mass - t) / N
    return float(loss), dz


def binary_cross_entropy(
    logits: np.ndarray, targets: np.ndarray
) -> tuple[float, np.ndarray]:
    """Sigmoid binary cross-entropy on logits, averaged over all n elements.

    With s = sigmoid(z), the element-wise loss -[t log s + (1 - t) log(1 - s)] equals
    max(z, 0) - z t + log(1 + exp(-|z|)), a form that never takes the log of 0 nor
    overflows ``exp``. dL/dZ = (sigmoid(Z) - T) / n.
    Equal to PyTorch's ``BCEWithLogitsLoss()``.

    Args:
        logits: raw scores Z (no sigmoid before the loss).
        targets: probabilities in [0, 1] (usually 0 or 1), shape of ``logits``.

    Returns:
        ``(L, dL/dZ)``.

    Shape:
        logits: ``(N,)``, ``(N, 1)`` or ``(N, K)`` (multi-label), targets: the same
        ((N,) and (N, 1) are interchangeable), dL/dZ: like ``logits``.
    """
    z = _predictions(logits, "binary_cross_entropy", "logits")
    t = _matching_targets(targets, z, "binary_cross_entropy")
    if t.min() < 0 or t.max() > 1:
        raise ValueError(
            f"binary_cross_entropy: expected targets in [0, 1], got values in "
            f"[{t.min()}, {t.max()}]"
        )
    n = z.size
    elementwise = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
    loss = np.sum(elementwise) / n
    dz = (sigmoid(z) - t) / n
    return float(loss), dz
