"""Optimisers: update every trainable parameter in place from its gradient.

Seed 003 writes gradient descent as ``w[k+1] = w[k] - eta[k] * grad E`` over
mini-batches; seed 000 adds momentum and weight decay (see :class:`SGD`). Each optimiser
follows its PyTorch twin (``torch.optim``) operation for operation, and
``tests/training/test_optimizers_torch.py`` checks it step for step. The shared
machinery (``Optimizer``: slots, state dicts, clipping, weight decay) is in
``optimizer_base``.

Per-layer options. Seed 000 gives each layer its own (α, η, ε) and decays weights, not
biases. Any optimiser takes, as PyTorch's parameter groups do, options for one layer
(its name, its index in ``model.layers``, or the layer object if it has a name) or for
one parameter of it::

    opt = SGD(lr=0.01, momentum=0.9, weight_decay=1e-4, decay_biases=False,
              groups={"conv1": {"lr": 0.02}, ("fc", "W"): {"weight_decay": 5e-4}})
    opt.set_options("conv2", lr=0.005, momentum=0.5)   # the same, after the fact
    opt.set_options(model.layers[0], param="b", lr=0.04)

- What a layer may have its own value of is ``group_options``: SGD ``lr``,
  ``momentum``, ``weight_decay``; Adam and AdamW ``lr``, ``beta1``, ``beta2``, ``eps``,
  ``weight_decay``; RMSProp ``lr``, ``alpha``, ``eps``, ``momentum``,
  ``weight_decay``. ``nesterov`` and ``clipnorm`` stay global (the clipping norm is
  that of all the gradients together).
- Each parameter takes the optimiser's values, overridden by its layer's, overridden
  by its own (``param=``). ``decay_biases=False`` gives the biases (``b``, ``b_*``)
  and BatchNorm's ``gamma`` and ``beta`` no weight decay, unless their own options
  (``param="b"``) set one.
- A group's lr is the rate at the optimiser's ``initial_lr`` (its constructor's lr).
  Schedules set the optimiser's ``lr``; every group follows in proportion,
  ``lr_group(t) = lr_group * lr(t) / initial_lr``, as PyTorch's schedulers multiply
  each group's ``initial_lr`` by the same factor.
- ``param_options(model.layers)`` shows what each parameter gets at the next step. A
  layer name the model does not have is reported at the first step.
- ``get_config`` lists the groups (and ``initial_lr``); ``Optimizer.from_config``
  rebuilds the optimiser, so model files and ``fit(resume_from=...)`` keep them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnnumpy.optimizer_base import Optimizer, check_argument, clip_grad_norm

# ``groups=``: {layer or (layer, param): {option: value}}, or get_config's list
Groups = dict[Any, dict[str, float]] | list[dict[str, Any]] | None

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "RMSProp", "clip_grad_norm", "get"]


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, Nesterov momentum and weight decay.

    Exactly ``torch.optim.SGD`` with ``dampening=0``. With g = ∂E/∂w the mini-batch
    gradient (already averaged over the batch by the loss), μ = momentum and
    ε = weight_decay:

        v(n) = μ v(n-1) + g + ε w       (momentum buffer, v(0) = 0)
        w <- w - lr v(n)                (Nesterov: w <- w - lr (g + ε w + μ v(n)))

    This is the rule of the notes (seed 000) with α = lr and η = μ:
    Δw(n) = -α ∂E/∂w + η Δw(n-1) - α ε w. For a constant lr the step is
    Δw(n) = -α v(n), so Δw(n-1) = -α v(n-1); multiplying the first line by -α:

        Δw(n) = -α (μ v(n-1) + g + ε w) = -α ∂E/∂w + η Δw(n-1) - α ε w.

    (The notes write α δ_j y_k for -α ∂E/∂w_kj.) When a schedule changes lr, this form
    (PyTorch's) applies the new lr to the whole velocity: η is then μ lr(n) / lr(n-1).

    In ``_update``, ``o`` holds the parameter's own lr, μ and ε: the optimiser's, or
    those its layer was given (module docstring, "Per-layer options").

    Args:
        lr: learning rate α, >= 0.
        momentum: μ in [0, 1), the notes' η (they use 0.9).
        nesterov: Nesterov's look-ahead variant; requires momentum > 0.
        weight_decay: ε >= 0: the L2 penalty (ε/2)||w||² adds ε w to the gradient.
        clipnorm: if set, gradients are first rescaled to a global norm <= clipnorm.
        groups: options per layer or parameter, ``{layer or (layer, param):
            {option: value}}`` (module docstring).
        decay_biases: False exempts biases and BatchNorm's gamma and beta from
            weight decay (seed 000's code decays weights only).
    """

    def __init__(
        self,
        lr: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        clipnorm: float | None = None,
        groups: Groups = None,
        decay_biases: bool = True,
    ) -> None:
        super().__init__(lr, weight_decay, clipnorm, groups, decay_biases)
        check_argument("SGD", "momentum", momentum, 0 <= momentum < 1, "in [0, 1)")
        if nesterov and momentum == 0:
            raise ValueError("SGD: nesterov=True requires momentum > 0, got momentum=0")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    group_options = ("lr", "momentum", "weight_decay")

    def slot_names(self) -> tuple[str, ...]:
        return ("momentum_buffer",) if any(self.option_values("momentum")) else ()

    def _update(self, p, g, slots, o):
        g = self._with_l2(p, g, o)
        if o.momentum:
            v = slots["momentum_buffer"]
            v *= o.momentum
            v += g
            g = g + o.momentum * v if self.nesterov else v
        p -= o.lr * g

    def get_config(self) -> dict[str, Any]:
        extra = {"momentum": self.momentum, "nesterov": self.nesterov}
        return {"lr": self.lr, **extra, **_tail(super().get_config())}


def _tail(config: dict[str, Any]) -> dict[str, Any]:
    """The base config without lr (so that subclasses can list lr first)."""
    return {k: v for k, v in config.items() if k != "lr"}


def _check_betas(owner: str, beta1: float, beta2: float, eps: float) -> None:
    check_argument(owner, "beta1", beta1, 0 <= beta1 < 1, "in [0, 1)")
    check_argument(owner, "beta2", beta2, 0 <= beta2 < 1, "in [0, 1)")
    check_argument(owner, "eps", eps, eps >= 0, ">= 0")


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), as ``torch.optim.Adam``: moving averages of g and g^2.

        g' = g + weight_decay * w                    (L2 added to the gradient)
        m <- beta1 * m + (1 - beta1) * g'            (first moment)
        v <- beta2 * v + (1 - beta2) * g'^2          (second moment)
        w <- w - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    The ``1 - beta^t`` factors correct the bias of averages started at zero; ``t``
    counts the steps of each parameter (slot ``step``, in the parameter's dtype, like
    PyTorch's float ``step`` tensor), so a layer frozen for a while keeps its own count.
    """

    def __init__(
        self,
        lr: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        clipnorm: float | None = None,
        groups: Groups = None,
        decay_biases: bool = True,
    ) -> None:
        super().__init__(lr, weight_decay, clipnorm, groups, decay_biases)
        _check_betas(self._name(), beta1, beta2, eps)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    group_options = ("lr", "beta1", "beta2", "eps", "weight_decay")

    def slot_names(self) -> tuple[str, ...]:
        return ("m", "v", "step")

    def _decay(self, p: np.ndarray, g: np.ndarray, o) -> np.ndarray:
        return self._with_l2(p, g, o)

    def _update(self, p, g, slots, o):
        g = self._decay(p, g, o)
        m, v, step = slots["m"], slots["v"], slots["step"]
        step += 1
        t = float(step)
        m *= o.beta1
        m += (1 - o.beta1) * g
        v *= o.beta2
        v += (1 - o.beta2) * np.square(g)
        step_size = o.lr / (1 - o.beta1**t)
        bias_correction2_sqrt = math.sqrt(1 - o.beta2**t)
        denom = np.sqrt(v) / bias_correction2_sqrt + o.eps
        p -= step_size * (m / denom)

    def get_config(self) -> dict[str, Any]:
        extra = {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}
        return {"lr": self.lr, **extra, **_tail(super().get_config())}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), as torch's AdamW.

    The decay shrinks the weights directly, ``w <- w * (1 - lr * weight_decay)``, before
    the Adam step on the raw gradient: unlike L2 in the gradient (``Adam``), it is not
    divided by sqrt(v), so every weight decays at the same rate.
    """

    def __init__(
        self,
        lr: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        clipnorm: float | None = None,
        groups: Groups = None,
        decay_biases: bool = True,
    ) -> None:
        super().__init__(
            lr, beta1, beta2, eps, weight_decay, clipnorm, groups, decay_biases
        )

    def _decay(self, p: np.ndarray, g: np.ndarray, o) -> np.ndarray:
        if o.weight_decay:
            p *= 1 - o.lr * o.weight_decay
        return g


class RMSProp(Optimizer):
    """RMSProp (Hinton, Coursera lecture 6e), as ``torch.optim.RMSprop`` (not centred).

    g' = g + weight_decay * w
    s <- alpha * s + (1 - alpha) * g'^2          (slot ``square_avg``)
    u = g' / (sqrt(s) + eps)
    w <- w - lr * u,  or with momentum:  b <- momentum * b + u;  w <- w - lr * b
    """

    def __init__(
        self,
        lr: float = 0.01,
        alpha: float = 0.99,
        eps: float = 1e-8,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        clipnorm: float | None = None,
        groups: Groups = None,
        decay_biases: bool = True,
    ) -> None:
        super().__init__(lr, weight_decay, clipnorm, groups, decay_biases)
        check_argument("RMSProp", "alpha", alpha, 0 <= alpha < 1, "in [0, 1)")
        check_argument("RMSProp", "eps", eps, eps >= 0, ">= 0")
        check_argument("RMSProp", "momentum", momentum, 0 <= momentum < 1, "in [0, 1)")
        self.alpha, self.eps, self.momentum = float(alpha), float(eps), float(momentum)

    group_options = ("lr", "alpha", "eps", "momentum", "weight_decay")

    def slot_names(self) -> tuple[str, ...]:
        momentum = any(self.option_values("momentum"))
        return ("square_avg", "momentum_buffer") if momentum else ("square_avg",)

    def _update(self, p, g, slots, o):
        g = self._with_l2(p, g, o)
        s = slots["square_avg"]
        s *= o.alpha
        s += (1 - o.alpha) * np.square(g)
        u = g / (np.sqrt(s) + o.eps)
        if o.momentum:
            b = slots["momentum_buffer"]
            b *= o.momentum
            b += u
            u = b
        p -= o.lr * u

    def get_config(self) -> dict[str, Any]:
        extra = {"alpha": self.alpha, "eps": self.eps, "momentum": self.momentum}
        return {"lr": self.lr, **extra, **_tail(super().get_config())}


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "rmsprop": RMSProp,
}


def get(optimizer: str | Optimizer, **kwargs: Any) -> Optimizer:
    """An optimiser from its name ("sgd", "adam", "adamw", "rmsprop") and kwargs.

    An optimiser object is returned as is.

    Example: ``get("sgd", lr=0.01, momentum=0.9)``.
    """
    if isinstance(optimizer, Optimizer):
        if kwargs:
            raise TypeError(
                f"optimizers.get: keyword arguments {sorted(kwargs)} given with the "
                f"optimizer object {optimizer!r}; pass them to its constructor instead"
            )
        return optimizer
    if isinstance(optimizer, str):
        cls = OPTIMIZERS.get(optimizer.lower())
        if cls is None:
            raise ValueError(
                f"optimizers.get: unknown optimizer {optimizer!r}, expected one of "
                f"{sorted(OPTIMIZERS)}"
            )
        return cls(**kwargs)
    raise TypeError(
        "optimizers.get: expected an optimizer name or object, "
        f"got {type(optimizer).__name__}"
    )
