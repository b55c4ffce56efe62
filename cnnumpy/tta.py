"""Test-time augmentation: average a classifier's probabilities over an image and its
mirror image.

A network trained with random left-right flips (``random_flip``) has learnt both
orientations, and the mean of its two answers is a little more accurate than either
(Krizhevsky et al. 2012 averaged ten crops and their flips; He et al. 2016 and most
CIFAR-10 recipes since average the flip):

    p_tta(x) = (p(x) + p(flip(x))) / 2,      flip(x)[..., j] = x[..., W - 1 - j]

It takes twice the inference time. The functions use only ``model.predict`` and
``model.metrics``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["evaluate_flipped", "predict_flipped"]

TINY = 1e-300  # log(0) guard (in float64): an underflowed probability counts as 1e-300


def predict_flipped(model: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The mean of ``model.predict`` on ``x`` and on ``x`` flipped left-right.

    Args:
        model: a compiled or built classifier whose ``predict`` gives probabilities.
        x: images (the last axis is the width, mirrored).
        batch_size: passed to ``model.predict``.

    Returns:
        ``(p(x) + p(x[..., ::-1])) / 2``.

    Shape:
        x: ``(N, C, H, W)`` (or ``(N, C, L)`` sequences); the result ``(N, K)``.
    """
    x = np.asarray(x)
    if x.ndim < 3:
        raise ValueError(
            f"predict_flipped: expected images (N, C, H, W) to flip along the last "
            f"axis, got shape {x.shape}"
        )
    p = model.predict(x, batch_size=batch_size)
    p_flipped = model.predict(x[..., ::-1], batch_size=batch_size)
    return (p + p_flipped) / 2


def _true_class_probability(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """p_y per example, from class ids (N,) or one-hot rows (N, K)."""
    y = np.asarray(y)
    N, K = probs.shape
    if y.shape == (N, K):
        return np.sum(probs * y, axis=1)
    if y.shape != (N,):
        raise ValueError(
            f"evaluate_flipped: expected labels ({N},) or one-hot ({N}, {K}) for "
            f"{N} examples, got shape {y.shape}"
        )
    return probs[np.arange(N), y.astype(np.int64)]


def evaluate_flipped(
    model: Any, x: np.ndarray, y: np.ndarray, batch_size: int = 256
) -> dict[str, float]:
    """Loss and metrics on the flip-averaged probabilities (:func:`predict_flipped`).

    The loss is the cross-entropy of those probabilities, ``-mean_n log p_tta(x_n)
    [y_n]`` (with no label smoothing, whatever the compiled loss's: the figure to
    compare is the plain negative log-likelihood); the metrics are ``model.metrics``,
    each called as ``metric(y, p_tta)``.

    Args:
        model: a classifier compiled with the cross-entropy loss (softmax outputs).
        x: images ``(N, C, H, W)``.
        y: class ids ``(N,)`` or one-hot rows ``(N, K)``.
        batch_size: passed to ``model.predict``.

    Returns:
        ``{"loss": ..., **{name: value for each metric}}``, like ``model.evaluate``.
    """
    activation = getattr(model.loss, "output_activation", None)
    if activation != "softmax":
        raise ValueError(
            f"evaluate_flipped: expected a model compiled with the cross_entropy loss "
            f"(softmax outputs), got loss {model.loss!r}"
        )
    probs = predict_flipped(model, x, batch_size)
    p_true = _true_class_probability(probs, y).astype(np.float64)
    result = {"loss": float(-np.mean(np.log(np.maximum(p_true, TINY))))}
    for name, metric in model.metrics.items():
        result[name] = float(metric(y, probs))
    return result
