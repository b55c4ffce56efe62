"""Batch normalisation (Ioffe & Szegedy 2015), with PyTorch's conventions."""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np

from cnnumpy.layers.base import Layer


def _channel_sums(a: np.ndarray) -> np.ndarray:
    """``sum over n, l of a[n, c, l]`` for ``a (N, C, L)``: ``(C,)``.

    A product with a vector of ones runs in BLAS (vectorised, one pass); NumPy's
    ``sum(axis=(0, 2))`` over a non-innermost axis is several times slower.
    """
    return (a @ np.ones(a.shape[2], dtype=a.dtype)).sum(axis=0)


def _channel_dots(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``sum over n, l of a[n, c, l] * b[n, c, l]``: ``(C,)``, with no product array
    (``vecdot`` runs a dot product per ``(n, c)`` row)."""
    return np.vecdot(a, b).sum(axis=0)


class BatchNorm(Layer):
    """Normalise each channel over the batch, then scale and shift it.

    The channel axis is axis 1; the statistics run over every other axis: ``(N,)`` for
    ``(N, F)`` features, ``(N, L)`` for ``(N, C, L)`` sequences, ``(N, H, W)`` for
    ``(N, C, H, W)`` images. With ``m`` the number of values per channel:

        mu = 1/m sum x              var = 1/m sum (x - mu)^2       (biased)
        x_hat = (x - mu) / sqrt(var + eps)
        y = gamma * x_hat + beta

    Training uses the batch's ``mu`` and ``var`` and updates the running statistics,
    ``running = (1 - momentum) * running + momentum * batch``, with the unbiased
    variance ``var * m / (m - 1)`` for ``running_var`` (PyTorch's convention). Inference
    uses the running statistics, which makes the layer a fixed affine map per channel.

    Backward, training mode (``mu`` and ``var`` depend on every x of the channel):

        dbeta = sum dout      dgamma = sum dout * x_hat
        dx = gamma / (m * sqrt(var + eps)) * (m * dout - dbeta - x_hat * dgamma)

    Inference mode: ``dx = gamma * dout / sqrt(running_var + eps)``.

    Args:
        momentum: weight of the new batch in the running statistics, in ``[0, 1]``.
        eps: added to the variance, > 0.

    Shape:
        ``(N, C)``, ``(N, C, L)`` or ``(N, C, H, W)`` -> same shape. ``gamma``,
        ``beta``, ``running_mean``, ``running_var``: ``(C,)``.
    """

    adds_neurons = False  # same neurons as the layer before (model summary)

    def __init__(
        self, momentum: float = 0.1, eps: float = 1e-5, name: str | None = None
    ) -> None:
        super().__init__(name=name)
        for what, value in (("momentum", momentum), ("eps", eps)):
            if isinstance(value, bool) or not isinstance(value, Real):
                raise TypeError(f"BatchNorm: {what} must be a number, got {value!r}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm: momentum must be in [0, 1], got {momentum!r}")
        if not eps > 0.0:
            raise ValueError(f"BatchNorm: eps must be > 0, got {eps!r}")
        self.momentum = float(momentum)
        self.eps = float(eps)
        self._cache = None

    def build(self, input_shape: tuple[int, ...]) -> None:
        self.output_shape(input_shape)
        C = int(input_shape[0])
        self.params = {
            "gamma": np.ones(C, dtype=self.dtype),
            "beta": np.zeros(C, dtype=self.dtype),
        }
        self.state = {
            "running_mean": np.zeros(C, dtype=self.dtype),
            "running_var": np.ones(C, dtype=self.dtype),
        }
        super().build(input_shape)

    def _expected_input(self) -> str:
        return "(N, C), (N, C, L) or (N, C, H, W)"

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        input_shape = tuple(int(d) for d in input_shape)
        if not 1 <= len(input_shape) <= 3:
            raise self._error(
                f"expected input {self._expected_input()}, got an example of shape "
                f"{input_shape}"
            )
        if self.built and (
            len(input_shape) != len(self.input_shape)
            or input_shape[0] != self.input_shape[0]
        ):
            raise self._error(
                f"expected {self.input_shape[0]} channels in an example of rank "
                f"{len(self.input_shape)}, got an example of shape {input_shape}"
            )
        return input_shape

    def _axes(self, x: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Reduction axes (all but the channel), broadcast shape ``(1, C, 1, ...)``."""
        axes = (0, *range(2, x.ndim))
        return axes, (1, x.shape[1]) + (1,) * (x.ndim - 2)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Fused: one pass per step, in the input's dtype, temporaries reused in place.

        The centred input ``xc = x - mu`` is the one kept array (``x_hat`` is
        ``xc / std``, never stored); the mean and the variance are BLAS reductions
        (:func:`_channel_sums`, :func:`_channel_dots`, no squared copy); the output
        ``xc * (gamma / std) + beta`` is the only other allocation.
        """
        x = self._prepare_input(x)
        _axes, bshape = self._axes(x)
        N, C = x.shape[:2]
        m = x.size // C
        dt = x.dtype.type
        if training:
            if m < 2:
                raise self._error(
                    "expected more than 1 value per channel in training, "
                    f"got input {x.shape}"
                )
            mean = _channel_sums(x.reshape(N, C, -1)) / dt(m)
            xc = x - mean.reshape(bshape)
            flat = xc.reshape(N, C, -1)
            var = _channel_dots(flat, flat) / dt(m)
            self._update_running(mean, var * dt(m / (m - 1)))
        else:
            mean, var = self.state["running_mean"], self.state["running_var"]
            xc = x - mean.reshape(bshape)
        inv_std = (1.0 / np.sqrt(var + dt(self.eps))).astype(self.dtype, copy=False)
        gamma, beta = self.params["gamma"], self.params["beta"]
        self._cache = (xc, inv_std, training, m)  # keep: x - mu and 1/std only
        out = xc * (gamma * inv_std).reshape(bshape)
        out += beta.reshape(bshape)
        return out

    def _update_running(self, mean: np.ndarray, unbiased_var: np.ndarray) -> None:
        mom = self.momentum
        for key, batch in (("running_mean", mean), ("running_var", unbiased_var)):
            running = self.state[key]
            running *= 1.0 - mom
            running += mom * batch

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """Fused: the reductions, then ``dx`` built in ONE array by in-place steps.

        With ``x_hat = xc * inv_std``: ``dgamma = inv_std * sum(dout * xc)``.
        """
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward called before forward")
        xc, inv_std, training, m = self._cache
        if dout.shape != xc.shape:
            raise self._error(f"expected dout of shape {xc.shape}, got {dout.shape}")
        dout = dout.astype(self.dtype, copy=False)
        _axes, bshape = self._axes(dout)
        N, C = dout.shape[:2]
        dout3 = dout.reshape(N, C, -1)
        dbeta = _channel_sums(dout3)
        dgamma = inv_std * _channel_dots(dout3, xc.reshape(N, C, -1))
        self.grads["gamma"], self.grads["beta"] = dgamma, dbeta
        if not self.need_input_grad:
            return None
        scale = (self.params["gamma"] * inv_std).reshape(bshape)
        if not training:
            return dout * scale
        # d/dx of (x - mu) / std through mu and var too (the batch statistics):
        # dx = scale * (dout - dbeta/m - x_hat * dgamma/m)
        dt = dout.dtype.type
        dx = xc * (inv_std * dgamma / dt(m)).reshape(bshape)
        dx += (dbeta / dt(m)).reshape(bshape)
        np.subtract(dout, dx, out=dx)
        dx *= scale
        return dx

    def get_config(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "eps": self.eps, "name": self.name}
