"""Classification metrics on predicted scores.

``y_pred`` holds one row of scores (logits or probabilities) per example, shape (N, K)
(``accuracy`` also takes sequences: one row per step, (N, T, K));
for a single-output binary classifier it may be (N,) or (N, 1), thresholded at 0.5 on
probabilities. ``y_true`` holds class ids (N,) or one-hot rows (N, K).
"""

from __future__ import annotations

import numpy as np

from cnnumpy.validation import part


def _class_ids(y_true: np.ndarray) -> np.ndarray:
    y_true = np.asarray(y_true)
    if y_true.ndim == 2 and y_true.shape[1] > 1:
        return y_true.argmax(axis=1)
    return y_true.reshape(len(y_true)).astype(np.int64)


def predicted_classes(y_pred: np.ndarray) -> np.ndarray:
    """Class ids from scores.

    The argmax of (N, K), or probability >= 0.5 for (N,) / (N, 1).
    """
    y_pred = np.asarray(y_pred)
    if y_pred.ndim == 2 and y_pred.shape[1] > 1:
        return y_pred.argmax(axis=1)
    return (y_pred.reshape(len(y_pred)) >= 0.5).astype(np.int64)


def accuracy(
    y_true: np.ndarray, y_pred: np.ndarray, ignore_index: int | None = None
) -> float:
    """Fraction of examples whose predicted class is the true class.

    On sequences (scores ``(N, T, K)``, labels ``(N, T)`` or one-hot ``(N, T, K)``)
    every step is one prediction, and positions labelled ``ignore_index`` (padding)
    are not counted. ``compile(metrics=["accuracy"])`` does not pass the loss's
    ``ignore_index``: it counts padded steps too; call
    ``accuracy(y, model.predict(x), ignore_index=0)`` for the padding-free figure.
    """
    if np.ndim(y_pred) == 3:
        return _sequence_accuracy(np.asarray(y_true), np.asarray(y_pred), ignore_index)
    ids = _class_ids(y_true)
    if len(ids) != len(y_pred):
        raise ValueError(f"accuracy: {len(ids)} labels for {len(y_pred)} predictions")
    hits = predicted_classes(y_pred) == ids
    if ignore_index is not None:
        hits = hits[ids != ignore_index]
    return float(np.mean(hits)) if hits.size else 0.0


def _sequence_accuracy(y_true, y_pred, ignore_index) -> float:
    """Accuracy over the steps of sequences; 0.0 if every step is padding."""
    N, T, K = y_pred.shape
    ids = y_true.argmax(axis=-1) if y_true.ndim == 3 else y_true
    if ids.shape != (N, T):
        raise ValueError(
            f"accuracy: expected labels ({N}, {T}) or one-hot ({N}, {T}, {K}) for "
            f"scores {y_pred.shape}, got {y_true.shape}"
        )
    hits = y_pred.argmax(axis=-1) == ids
    if ignore_index is not None:
        hits = hits[ids != ignore_index]
    return float(np.mean(hits)) if hits.size else 0.0


def top_k_accuracy(y_true: np.ndarray, y_pred: np.ndarray, k: int = 5) -> float:
    """Fraction of examples whose true class is among the k highest scores."""
    y_pred = np.asarray(y_pred)
    if y_pred.ndim != 2 or not 1 <= k <= y_pred.shape[1]:
        raise ValueError(
            f"top_k_accuracy: expected scores (N, K) with 1 <= k <= K, got shape "
            f"{y_pred.shape} and k={k}"
        )
    ids = _class_ids(y_true)
    top = np.argpartition(-y_pred, k - 1, axis=1)[:, :k]
    return float(np.mean(np.any(top == ids[:, None], axis=1)))


def confusion_matrix(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int | None = None
) -> np.ndarray:
    """Counts C[i, j] of examples of true class i predicted as class j.

    ``y_pred`` may be class ids (N,) or scores (N, K).
    """
    ids = _class_ids(y_true)
    y_pred = np.asarray(y_pred)
    pred = predicted_classes(y_pred) if y_pred.ndim == 2 else y_pred.astype(np.int64)
    if num_classes is None:
        num_classes = int(max(ids.max(initial=0), pred.max(initial=0))) + 1
        if y_pred.ndim == 2 and y_pred.shape[1] > 1:
            num_classes = max(num_classes, y_pred.shape[1])
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (ids, pred), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Recall of each class from a confusion matrix.

    A class with no example gets NaN.
    """
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(matrix) / totals


METRICS = {"accuracy": accuracy, "acc": accuracy, "top5": top_k_accuracy}


def get(name: str):
    """The metric function called ``name`` ("accuracy", "top5", or "top{k}")."""
    if name in METRICS:
        return METRICS[name]
    if isinstance(name, str) and name.startswith("top") and name[3:].isdigit():
        k = int(name[3:])
        return lambda y_true, y_pred: top_k_accuracy(y_true, y_pred, k)
    raise ValueError(
        f"unknown metric {name!r}; expected 'accuracy' or 'top<k>' (e.g. 'top5')"
    )


def per_output(name: str, k: int):
    """The metric ``name`` of output ``k``: ``fn(y[k], scores[k])``."""
    fn = get(name)

    def metric(y_true, y_pred) -> float:
        return fn(part(y_true, k), y_pred[k])

    metric.__name__ = f"{name}_{k}"
    return metric
