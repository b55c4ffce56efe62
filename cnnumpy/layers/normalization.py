"""Batch normalisation (Ioffe & Szegedy 2015), with PyTorch's conventions."""

from __future__ import annotations

from collections.abc import Callable
from numbers import Real
from typing import Any

import numpy as np

from cnnumpy import initializers
from cnnumpy.engine import ops
from cnnumpy.layers.base import Layer


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
        name: optional name of the layer.
        gamma_initializer: the initial gamma: ``"ones"`` (the identity scale), or
            ``"zeros"`` for the last BatchNorm of a residual branch, which then
            starts as the identity map (Goyal et al. 2017, section 5.1; He et al.
            2019, "Bag of tricks", "zero gamma"); any name of
            :mod:`cnnumpy.initializers` or a callable ``f(shape, rng, dtype)``.
        beta_initializer: the initial beta, ``"zeros"`` by default; likewise.

    Shape:
        ``(N, C)``, ``(N, C, L)`` or ``(N, C, H, W)`` -> same shape. ``gamma``,
        ``beta``, ``running_mean``, ``running_var``: ``(C,)``.
    """

    adds_neurons = False  # same neurons as the layer before (model summary)

    def __init__(
        self,
        momentum: float = 0.1,
        eps: float = 1e-5,
        name: str | None = None,
        gamma_initializer: str | Callable[..., np.ndarray] = "ones",
        beta_initializer: str | Callable[..., np.ndarray] = "zeros",
    ) -> None:
        super().__init__(name=name)
        for what, value in (("momentum", momentum), ("eps", eps)):
            if isinstance(value, bool) or not isinstance(value, Real):
                raise TypeError(f"BatchNorm: {what} must be a number, got {value!r}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm: momentum must be in [0, 1], got {momentum!r}")
        if not eps > 0.0:
            raise ValueError(f"BatchNorm: eps must be > 0, got {eps!r}")
        for argument, spec in (
            ("gamma_initializer", gamma_initializer),
            ("beta_initializer", beta_initializer),
        ):  # now, so that a typo fails at construction, not at the first batch
            initializers.check(spec, "BatchNorm", argument)
        self.momentum = float(momentum)
        self.eps = float(eps)
        self.gamma_initializer = gamma_initializer
        self.beta_initializer = beta_initializer
        self._cache = None
        self._out_shape: tuple[int, ...] | None = None

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
            name: self._initial_param(name, shape) for name, shape in params.items()
        }
        self.state = {
            "running_mean": np.zeros(state["running_mean"], dtype=self.dtype),
            "running_var": np.ones(state["running_var"], dtype=self.dtype),
        }
        super().build(input_shape)

    def _initial_param(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """gamma or beta from its initializer; a callable sees ``input_shape=(C,)``."""
        spec = getattr(self, f"{name}_initializer")
        if isinstance(spec, str) and spec in ("ones", "zeros"):
            # constants draw nothing: no generator is spawned for this layer, so the
            # other layers' weights stay those of the same seed as before
            return initializers.get(spec)(shape, None, self.dtype)
        return self._initial_value(spec, f"{name}_initializer", shape, shape)

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
        """The batch's statistics in training (and the running ones updated), the
        running ones in inference: the ``batchnorm`` operation."""
        x = self._prepare_input(x)
        C = x.shape[1]
        if training and x.size // C < 2:
            raise self._error(
                f"expected more than 1 value per channel in training, got input "
                f"{x.shape}"
            )
        gamma, beta = self.params["gamma"], self.params["beta"]
        running = (None, None)
        if not training:
            running = (self.state["running_mean"], self.state["running_var"])
        out, self._cache = ops.batchnorm.forward(x, gamma, beta, self.eps, *running)
        if training:
            stats = self._cache.data
            m = stats["m"]  # values per channel (over every process of a split step)
            unbiased = stats["var"] * x.dtype.type(m / (m - 1))
            self._update_running(stats["mean"], unbiased)
        self._out_shape = out.shape
        return out

    def _update_running(self, mean: np.ndarray, unbiased_var: np.ndarray) -> None:
        """``running = (1 - momentum) * running + momentum * batch``."""
        mom = self.momentum
        for key, batch in (("running_mean", mean), ("running_var", unbiased_var)):
            running = self.state[key]
            running *= 1.0 - mom
            running += mom * batch

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """Fill ``grads`` gamma and beta; return dL/dx unless not needed."""
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward called before forward")
        if dout.shape != self._out_shape:
            raise self._error(
                f"expected dout of shape {self._out_shape}, got {dout.shape}"
            )
        dout = dout.astype(self.dtype, copy=False)
        dx, dgamma, dbeta = ops.batchnorm.backward(
            dout, self._cache, need_dx=self.need_input_grad
        )
        self.grads["gamma"], self.grads["beta"] = dgamma, dbeta
        return dx

    def get_config(self) -> dict[str, Any]:
        config = {"momentum": self.momentum, "eps": self.eps, "name": self.name}
        # the initializers only when not the defaults: older files read the same
        for name, default in (("gamma", "ones"), ("beta", "zeros")):
            spec = initializers.config_name(getattr(self, f"{name}_initializer"))
            if spec != default:
                config[f"{name}_initializer"] = spec
        return config
