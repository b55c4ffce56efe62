"""Loss functions: each returns ``(loss, dL/dinput)`` (seed 002, "Fonction de perte").

The loss is the last "layer" of the network: it squashes all the outputs into one
number E and gives the first dE/dY of the backward pass.

- ``mse`` (seed 002): E = (1/n) sum_i (y_i - t_i)^2 over ALL n elements,
  dE/dY = 2 (Y - T) / n.
- ``cross_entropy``: softmax fused with the negative log-likelihood (seeds 000 and 004),
  L = -(1/N) sum_n sum_k t_nk log softmax(z_n)_k, dL/dZ = (softmax(Z) - T) / N; on
  sequences (N, T, K) every step is one more row, and padding steps (``ignore_index``)
  count for nothing; ``label_smoothing`` eps mixes every target row with the uniform
  distribution, T <- (1 - eps) T + eps / K (Szegedy et al. 2016).
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


def _class_targets(
    targets, N: int, K: int, dtype, ignore_index: int | None = None
) -> np.ndarray:
    """Integer class ids (N,) or one-hot / probability rows (N, K) as (N, K) rows.

    A row whose id is ``ignore_index`` is all zeros: it adds nothing to the loss."""
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
        if ignore_index is not None:
            raise ValueError(
                f"cross_entropy: ignore_index={ignore_index} needs class ids, "
                f"got one-hot or probability targets {t.shape}"
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
    kept = np.ones(N, dtype=bool) if ignore_index is None else ids != ignore_index
    if kept.any() and (ids[kept].min() < 0 or ids[kept].max() >= K):
        raise ValueError(
            f"cross_entropy: expected class ids in [0, {K}) for {K} classes, "
            f"got values in [{ids[kept].min()}, {ids[kept].max()}]"
        )
    one_hot = np.zeros((N, K), dtype=dtype)
    one_hot[np.flatnonzero(kept), ids[kept]] = 1
    return one_hot


def _as_rows(z: np.ndarray, targets) -> tuple[np.ndarray, np.ndarray]:
    """Logits (N, T, K) and targets (N, T) or (N, T, K) as the N*T rows of a batch
    of (N*T, K); logits (N, K) as they are."""
    if z.ndim not in (2, 3):
        raise ValueError(
            f"cross_entropy: expected logits (N, K) or a sequence (N, T, K), "
            f"got shape {z.shape}"
        )
    if z.ndim == 2:
        return z, targets
    N, T, K = z.shape
    t = _numeric(targets, "cross_entropy")
    if t.shape not in ((N, T), (N, T, K)):
        raise ValueError(
            f"cross_entropy: expected targets of class ids ({N}, {T}) or one-hot "
            f"rows ({N}, {T}, {K}) for logits {z.shape}, got shape {t.shape}"
        )
    return z.reshape(N * T, K), t.reshape(N * T, *t.shape[2:])


def smooth_targets(t: np.ndarray, eps: float, kept: np.ndarray | None) -> np.ndarray:
    """Label smoothing (Szegedy et al. 2016, "Rethinking the Inception
    architecture", section 7): each target row mixed with the uniform distribution,

        t_smooth = (1 - eps) * t + eps / K,

    the rows of ``kept`` only (None: every row), so that padding rows stay zero.
    This is PyTorch's ``cross_entropy(label_smoothing=eps)`` target.

    Shape:
        t: ``(M, K)``; kept: ``(M,)`` bool or None; the result: ``(M, K)``.
    """
    K = t.shape[1]
    uniform = np.full_like(t, eps / K)
    if kept is not None:
        uniform[~kept] = 0
    return (1 - eps) * t + uniform


def cross_entropy(
    logits: np.ndarray,
    targets: np.ndarray,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
) -> tuple[float, np.ndarray]:
    """Softmax cross-entropy on logits, averaged over the batch.

    L = -(1/M) sum_n sum_k t_nk log softmax(z_n)_k, with the stable log-sum-exp
    log softmax(z)_k = (z_k - m) - log sum_j exp(z_j - m), m = max_j z_j.
    dL/dZ = (softmax(Z) * sum_k t_k - T) / M, which is (softmax(Z) - T) / M since
    every target row sums to 1. M is the number of rows N, less the rows whose id is
    ``ignore_index`` (padding): their target row is all zeros, so they add nothing
    to L and their gradient is 0. A sequence (N, T, K) is the N*T rows of one batch
    (each step is one more prediction). With ``label_smoothing`` eps the targets are
    first :func:`smooth_targets`, T <- (1 - eps) T + eps / K (padding rows excepted).
    Equal to PyTorch's ``CrossEntropyLoss(ignore_index=..., label_smoothing=...)``
    for ids and for probabilities, except that a batch of padding only gives L = 0
    and a zero gradient (PyTorch: NaN).

    Args:
        logits: raw scores Z, one row per example (no softmax before the loss).
        targets: integer class ids, or one-hot / probability rows.
        ignore_index: a class id that marks padding (with class ids only), or None.
        label_smoothing: eps in [0, 1]; 0 (the default) leaves the targets as given.

    Returns:
        ``(L, dL/dZ)``.

    Shape:
        logits: ``(N, K)``, targets: ``(N,)`` or ``(N, K)``; or logits
        ``(N, T, K)``, targets ``(N, T)`` or ``(N, T, K)``. dL/dZ: like logits.
    """
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(
            f"cross_entropy: expected label_smoothing in [0, 1], got {label_smoothing}"
        )
    z = _predictions(logits, "cross_entropy", "logits")
    rows, targets = _as_rows(z, targets)
    N, K = rows.shape
    t = _class_targets(targets, N, K, z.dtype, ignore_index)
    kept = None if ignore_index is None else t.sum(axis=1) > 0
    M = N if kept is None else int(np.count_nonzero(kept))
    if label_smoothing:
        t = smooth_targets(t, label_smoothing, kept)
    row_mass = t.sum(axis=1, keepdims=True)  # 1 for one-hot and probability rows
    log_p = log_softmax(rows, axis=1)
    loss = -np.sum(t * log_p) / max(M, 1)
    p = np.exp(log_p)
    dz = (p * row_mass - t) / max(M, 1)  # 0 on the padding rows (row_mass 0)
    return float(loss), dz.reshape(z.shape)


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
