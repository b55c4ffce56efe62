"""Batch normalisation (Ioffe & Szegedy 2015), with PyTorch's conventions."""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import numpy as np

from cnnumpy import sync
from cnnumpy.functional.parallel import chunk_bounds, parallel_chunks
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


def _over_images(work, a: np.ndarray, n_sums: int = 0) -> np.ndarray:
    """Run ``work(lo, hi) -> (n_sums, C) partial sums or None`` over chunks of the
    batch on the worker threads; returns the partial sums added up.

    Why: every pass of batch normalisation is element-wise or a per-channel sum, so
    chunks of images go to both cores; sums are made per chunk, then added (two
    passes of the data in all, like the single-threaded code).
    """
    N, C = a.shape[:2]
    bounds = chunk_bounds(N, a[:1].nbytes * 2)
    totals = np.zeros((len(bounds), n_sums, C), dtype=a.dtype)  # worker k < chunks

    def chunk(lo: int, hi: int, k: int) -> None:
        partial = work(lo, hi)
        if n_sums:
            totals[k] += partial

    parallel_chunks(chunk, bounds)
    return totals.sum(axis=0)


def _planes(a: np.ndarray) -> np.ndarray:
    """``a`` seen as ``(N, C, L)`` (a copy only when its layout needs one)."""
    return a.reshape(*a.shape[:2], math.prod(a.shape[2:]))


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

    def param_shapes(self, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """gamma and beta, one per channel ``(C,)``; validates ``input_shape``."""
        self.output_shape(input_shape)
        C = int(input_shape[0])
        return {"gamma": (C,), "beta": (C,)}

    def state_shapes(self, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """The running mean and variance, one per channel ``(C,)``."""
        self.output_shape(input_shape)
        C = int(input_shape[0])
        return {"running_mean": (C,), "running_var": (C,)}

    def build(self, input_shape: tuple[int, ...]) -> None:
        params = self.param_shapes(input_shape)  # validates before allocating
        state = self.state_shapes(input_shape)
        self.params = {
            "gamma": np.ones(params["gamma"], dtype=self.dtype),
            "beta": np.zeros(params["beta"], dtype=self.dtype),
        }
        self.state = {
            "running_mean": np.zeros(state["running_mean"], dtype=self.dtype),
            "running_var": np.ones(state["running_var"], dtype=self.dtype),
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

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Fused: one pass per step, in the input's dtype, temporaries reused in place.

        The centred input ``xc = x - mu`` is the one kept array (``x_hat`` is
        ``xc / std``, never stored); the mean and the variance are BLAS reductions
        (:func:`_channel_sums`, :func:`_channel_dots`, no squared copy); the output
        ``xc * (gamma / std) + beta`` is the only other allocation.
        """
        x = self._prepare_input(x)
        N, C = x.shape[:2]
        m = x.size // C
        dt = x.dtype.type
        if training:
            if m < 2:
                raise self._error(
                    "expected more than 1 value per channel in training, "
                    f"got input {x.shape}"
                )
        x3 = _planes(x)
        xc = np.empty(x.shape, dtype=x.dtype)  # C order: its (N, C, L) view is no copy
        xc3 = _planes(xc)
        if training:
            # split over processes (cnnumpy.sync): the statistics of the whole batch
            part = sync.current()
            reduce = (lambda a: a) if part is None else part.allreduce
            if part is not None:
                m = m // (part.hi - part.lo) * part.total  # values per channel in all
            mean = reduce(
                _over_images(lambda lo, hi: _channel_sums(x3[lo:hi]), x, 1)[0]
            )
            mean /= dt(m)

            def centre(lo: int, hi: int) -> np.ndarray:  # x - mu, and its square sums
                np.subtract(x3[lo:hi], mean[:, None], out=xc3[lo:hi])
                return _channel_dots(xc3[lo:hi], xc3[lo:hi])

            var = reduce(_over_images(centre, x, 1)[0]) / dt(m)
            if part is None or part.lo == 0:  # a replica's copy is overwritten anyway
                self._update_running(mean, var * dt(m / (m - 1)))
        else:
            mean, var = self.state["running_mean"], self.state["running_var"]
            _over_images(
                lambda lo, hi: np.subtract(x3[lo:hi], mean[:, None], out=xc3[lo:hi]), x
            )
        inv_std = (1.0 / np.sqrt(var + dt(self.eps))).astype(self.dtype, copy=False)
        gamma, beta = self.params["gamma"], self.params["beta"]
        self._cache = (xc, inv_std, training, m)  # keep: x - mu and 1/std only
        scale, shift = (gamma * inv_std)[:, None], beta[:, None]
        out = np.empty(x.shape, dtype=x.dtype)
        out3 = _planes(out)

        def affine(lo: int, hi: int) -> None:
            np.multiply(xc3[lo:hi], scale, out=out3[lo:hi])
            out3[lo:hi] += shift

        _over_images(affine, x)
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
        N, C = dout.shape[:2]
        dout3, xc3 = _planes(dout), _planes(xc)

        def sums(lo: int, hi: int) -> np.ndarray:
            d = dout3[lo:hi]
            return np.stack([_channel_sums(d), _channel_dots(d, xc3[lo:hi])])

        dbeta, dot = _over_images(sums, dout, 2)
        part = sync.current() if training else None
        if part is not None:
            # the sums over the whole batch of the gradient of ITS mean loss: this
            # slice's dout is of the slice's mean loss, weighted by its share in all
            dbeta, dot = part.allreduce(
                np.stack([dbeta, dot]) * dout.dtype.type(part.share)
            )
        dgamma = inv_std * dot
        self.grads["gamma"], self.grads["beta"] = dgamma, dbeta
        if not self.need_input_grad:
            return None
        scale = (self.params["gamma"] * inv_std)[:, None]
        dx = np.empty(dout.shape, dtype=dout.dtype)
        dx3 = _planes(dx)
        if not training:
            _over_images(
                lambda lo, hi: np.multiply(dout3[lo:hi], scale, out=dx3[lo:hi]), dout
            )
            return dx
        # d/dx of (x - mu) / std through mu and var too (the batch statistics):
        # dx = scale * (dout - dbeta/m - x_hat * dgamma/m)
        dt = dout.dtype.type
        # (split: dx of this slice's own mean loss, as every other layer computes)
        per = dt(m) if part is None else dt(m) * dt(part.share)
        k_xc = (inv_std * dgamma / per)[:, None]
        k_mean = (dbeta / per)[:, None]

        def input_grad(lo: int, hi: int) -> None:
            part = dx3[lo:hi]
            np.multiply(xc3[lo:hi], k_xc, out=part)
            part += k_mean
            np.subtract(dout3[lo:hi], part, out=part)
            part *= scale

        _over_images(input_grad, dout)
        return dx

    def get_config(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "eps": self.eps, "name": self.name}
