"""Batch normalisation (Ioffe & Szegedy 2015), forward and backward, whole batch.

Each channel (axis 1) is normalised over every other axis, ``m`` values::

    mu = 1/m sum x              var = 1/m sum (x - mu)^2       (biased)
    x_hat = (x - mu) / sqrt(var + eps)
    y = gamma * x_hat + beta

In training the statistics are the batch's, and they depend on every x of the channel,
so the backward pass goes through them too::

    dbeta = sum dout            dgamma = sum dout * x_hat
    dx = gamma / (m * sqrt(var + eps)) * (m * dout - dbeta - x_hat * dgamma)

In inference the running statistics are constants and ``dx = gamma * dout / sqrt(
running_var + eps)``. The running statistics are updated by the layer, from the batch
mean and the UNBIASED variance ``var * m / (m - 1)`` (PyTorch's convention).
"""

from __future__ import annotations

import numpy as np


def _per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    """A ``(C,)`` vector shaped to broadcast along axis 1 of an ``ndim`` array."""
    return v.reshape(1, -1, *([1] * (ndim - 2)))


def batchnorm_forward(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    eps: float,
    mean: np.ndarray | None = None,
    var: np.ndarray | None = None,
) -> tuple[np.ndarray, dict]:
    """``y = gamma * (x - mu) / sqrt(var + eps) + beta`` per channel.

    Args:
        x: ``(N, C)`` or ``(N, C, ...)``.
        gamma, beta: ``(C,)``.
        eps: added to the variance.
        mean, var: the running statistics (inference), or None to use the batch's
            (training).

    Returns:
        ``(y, cache)``; the cache also holds ``mean`` and the biased ``var`` used
        (in training the batch's, which the layer folds into its running statistics)
        and ``m``, the number of values per channel.
    """
    axes = (0, *range(2, x.ndim))
    training = mean is None
    if training:
        mean = x.mean(axis=axes)
        var = x.var(axis=axes)
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = (x - _per_channel(mean, x.ndim)) * _per_channel(inv_std, x.ndim)
    y = _per_channel(gamma, x.ndim) * x_hat + _per_channel(beta, x.ndim)
    cache = {
        "x_hat": x_hat,
        "gamma": gamma,
        "inv_std": inv_std,
        "training": training,
        "mean": mean,
        "var": var,
        "m": x.size // x.shape[1],
    }
    return y.astype(x.dtype, copy=False), cache


def batchnorm_backward(
    dout: np.ndarray, cache: dict, need_dx: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """``(dx, dgamma, dbeta)`` of :func:`batchnorm_forward` (``dx`` None when not
    ``need_dx``: the first layer of a model)."""
    x_hat, gamma, inv_std = cache["x_hat"], cache["gamma"], cache["inv_std"]
    axes = (0, *range(2, dout.ndim))
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * x_hat).sum(axis=axes)
    if not need_dx:
        return None, dgamma, dbeta
    scale = _per_channel(gamma * inv_std, dout.ndim)
    if not cache["training"]:
        return scale * dout, dgamma, dbeta
    m = dout.size // dout.shape[1]
    centred = m * dout - _per_channel(dbeta, dout.ndim)
    centred = centred - x_hat * _per_channel(dgamma, dout.ndim)
    return (scale / m * centred).astype(dout.dtype, copy=False), dgamma, dbeta
