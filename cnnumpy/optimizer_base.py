"""The optimiser base class and gradient clipping (optimisers: ``optimizers``).

Optimisers update every trainable parameter in place from its gradient.

Seed 003 writes gradient descent as ``w[k+1] = w[k] - eta[k] * grad E`` over
mini-batches; seed 000 adds momentum and weight decay (see :class:`SGD`). Each optimiser
follows its PyTorch twin (``torch.optim``) operation for operation, and
``tests/training/test_optimizers_torch.py`` checks it step for step.

Interface used by ``Sequential``: ``optimizer.step(layers)`` reads ``layer.params`` and
``layer.grads`` (same keys and shapes) and updates the parameters IN PLACE
(``p -= ...``), so every other reference to an array stays valid. ``layer.grads`` is
never modified: weight decay and clipping work on temporaries. Layers with
``trainable == False`` or without parameters are skipped. Per-parameter state ("slots",
e.g. the momentum buffer) is keyed ``f"{i}.{key}"`` with ``i`` the index of the layer in
the list, and has the dtype of its parameter.

Each parameter is updated with its own options (``param_options``): the optimiser's
values, or those its layer, or the parameter itself, was given with ``set_options`` or
``groups=`` (:mod:`cnnumpy.optimizer_groups`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from cnnumpy.optimizer_groups import PerLayerOptions, parse_groups

__all__ = ["Optimizer", "clip_grad_norm"]


def _global_norm(grads: Sequence[np.ndarray]) -> float:
    """sqrt(sum of every squared gradient entry), accumulated in float64."""
    return math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads))


def _clip_scale(total_norm: float, max_norm: float) -> float:
    """min(1, max_norm / (total_norm + 1e-6)), as in torch's ``clip_grad_norm_``."""
    return min(1.0, max_norm / (total_norm + 1e-6))


def clip_grad_norm(layers: Sequence[Any], max_norm: float) -> float:
    """Rescale the gradients of ``layers`` IN PLACE so their global L2 norm <= max_norm.

    All gradients are multiplied by ``min(1, max_norm / (total_norm + 1e-6))`` (like
    ``torch.nn.utils.clip_grad_norm_``), which keeps the direction of the whole
    gradient. This function does modify ``layer.grads``; the ``clipnorm=`` option of an
    optimiser does not (it scales a temporary).

    Args:
        layers: objects with ``params`` / ``grads`` dicts; non-trainable ones skipped.
        max_norm: the largest allowed global norm, > 0.

    Returns:
        The global norm before clipping.
    """
    if not max_norm > 0:
        raise ValueError(f"clip_grad_norm: max_norm must be > 0, got {max_norm!r}")
    grads = [g for *_, g in _trainable(layers, "clip_grad_norm")]
    total_norm = _global_norm(grads)
    scale = _clip_scale(total_norm, max_norm)
    if scale < 1.0:
        for g in grads:
            g *= scale
    return total_norm


def _trainable(layers: Sequence[Any], owner: str) -> Iterator[tuple]:
    """Yield ``(slot_key, param, grad)`` for each parameter of each trainable layer."""
    for i, layer in enumerate(layers):
        if not getattr(layer, "trainable", True) or not layer.params:
            continue
        for key, p in layer.params.items():
            g = layer.grads.get(key)
            if g is None:
                raise ValueError(
                    f"{owner}: layer {i} ({layer!r}) has no gradient for {key!r}"
                )
            if g.shape != p.shape:
                raise ValueError(
                    f"{owner}: layer {i} ({layer!r}) gradient {key!r} has shape "
                    f"{g.shape}, expected the parameter's shape {p.shape}"
                )
            yield f"{i}.{key}", p, g


def _scalar(value: Any) -> Any:
    """A NumPy scalar or 0-d array (e.g. read back from a file) as a Python number."""
    if isinstance(value, (np.generic, np.ndarray)) and np.ndim(value) == 0:
        return value.item()
    return value


def check_argument(owner: str, name: str, value: Any, ok: bool, expected: str) -> None:
    """Raise ``ValueError("owner: name must be expected, got value")`` unless ``ok``."""
    if not ok:
        raise ValueError(f"{owner}: {name} must be {expected}, got {value!r}")


class Optimizer(PerLayerOptions):
    """Base class: learning rate, weight decay, clipping, step counter and slots.

    Subclasses define ``slot_names()`` (the slots each parameter needs),
    ``group_options`` (the options a layer may have its own value of) and
    ``_update(p, g, slots, o)``, which receives ``g`` already clipped (a temporary,
    never ``layer.grads`` itself, when clipping applied) and the parameter's options
    ``o`` (``o.lr``, ``o.weight_decay``, ...), and updates ``p`` in place.
    """

    group_options: tuple[str, ...] = ("lr", "weight_decay")

    def __init__(
        self,
        lr: float,
        weight_decay: float,
        clipnorm: float | None,
        groups: Any = None,
        decay_biases: bool = True,
    ) -> None:
        owner = self._name()
        self.lr = lr
        self.initial_lr = self.lr  # lr0, to which the groups' own lrs are relative
        check_argument(owner, "weight_decay", weight_decay, weight_decay >= 0, ">= 0")
        if clipnorm is not None:
            check_argument(owner, "clipnorm", clipnorm, clipnorm > 0, "> 0 or None")
        ok = isinstance(decay_biases, (bool, np.bool_))
        check_argument(owner, "decay_biases", decay_biases, ok, "True or False")
        self.weight_decay = float(weight_decay)
        self.clipnorm = None if clipnorm is None else float(clipnorm)
        self.decay_biases = bool(decay_biases)
        self.iterations = 0
        self.slots: dict[str, dict[str, np.ndarray]] = {}
        self.layer_options: dict[tuple, dict[str, float]] = {}
        for layer, param, options in parse_groups(owner, groups or {}):
            self.set_options(layer, param=param, **options)

    def _name(self) -> str:
        return type(self).__name__

    @property
    def lr(self) -> float:
        """The learning rate used by the next step (schedules set it)."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        value = _scalar(value)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        check_argument(self._name(), "lr", value, ok and value >= 0, "a float >= 0")
        self._lr = float(value)

    # -- stepping
    def step(self, layers: Sequence[Any]) -> None:
        """Apply one update to every parameter of the trainable ``layers``, in place."""
        triples = list(_trainable(layers, self._name()))
        options = self.param_options(layers)
        scale = 1.0
        if self.clipnorm is not None:
            scale = _clip_scale(_global_norm([g for *_, g in triples]), self.clipnorm)
        self.iterations += 1
        for slot_key, p, g in triples:
            if scale < 1.0:
                # a temporary: layer.grads is left untouched
                g = g * p.dtype.type(scale)
            slots = self._slots_for(slot_key, p)
            self._update(p, g, slots, options[slot_key])

    def _update(
        self, p: np.ndarray, g: np.ndarray, slots: dict[str, np.ndarray], o: Any
    ) -> None:
        raise NotImplementedError

    def slot_names(self) -> tuple[str, ...]:
        return ()

    def slot_shape(
        self, slot_name: str, param_shape: tuple[int, ...]
    ) -> tuple[int, ...]:
        return () if slot_name == "step" else param_shape

    def _slots_for(self, slot_key: str, p: np.ndarray) -> dict[str, np.ndarray]:
        """One parameter's slots: created at zero, checked, cast to the param dtype."""
        slots = self.slots.setdefault(slot_key, {})
        for n in self.slot_names():  # (a group given momentum later adds a slot)
            if n not in slots:
                slots[n] = np.zeros(self.slot_shape(n, p.shape), p.dtype)
        self._check_slot_shapes(slot_key, slots, p.shape)
        for name, value in slots.items():
            if value.dtype != p.dtype:  # e.g. the model was converted with astype
                slots[name] = value.astype(p.dtype)
        return slots

    def astype(self, dtype: Any) -> Optimizer:
        """Convert every slot to ``dtype``.

        As ``Sequential.astype`` does to the model.
        """
        dtype = np.dtype(dtype)
        for slots in self.slots.values():
            for name, value in slots.items():
                slots[name] = value.astype(dtype)
        return self

    # -- config and state
    def get_config(self) -> dict[str, Any]:
        """The constructor arguments (JSON-serialisable), read back by ``from_config``.

        ``decay_biases`` appears only when False and ``groups`` (with ``initial_lr``,
        the lr the groups' lrs are relative to) only when some were set, so that a
        config without them is the one older versions wrote.
        """
        config = {
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
        }
        if not self.decay_biases:
            config["decay_biases"] = False
        if self.layer_options:
            config["groups"] = self.groups_config()
            config["initial_lr"] = self.initial_lr
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Optimizer:
        """The optimiser ``get_config`` describes: built at ``initial_lr`` (so that the
        groups keep their lrs), then set to the current ``lr``."""
        config = dict(config)
        lr = config.pop("lr", None)
        initial_lr = config.pop("initial_lr", lr)
        if initial_lr is None:
            return cls(**config)
        optimizer = cls(lr=initial_lr, **config)
        optimizer.lr = lr if lr is not None else initial_lr
        return optimizer

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{self._name()}({args})"

    def state_dict(self) -> dict[str, Any]:
        """``{"iterations", "lr", "slots": {"0.W": {"m": array, ...}}}``, as copies."""
        slots = {k: {n: v.copy() for n, v in s.items()} for k, s in self.slots.items()}
        return {"iterations": self.iterations, "lr": self.lr, "slots": slots}

    def load_state_dict(
        self, state: dict[str, Any], layers: Sequence[Any] | None = None
    ) -> None:
        """Restore a ``state_dict`` (arrays are copied).

        Slot shapes are checked against the parameters of ``layers`` when given,
        otherwise against the current slots, and in any case again at every ``step``.

        Raises:
            ValueError: missing keys, unknown or missing slot names, mismatched shapes.
        """
        owner = self._name()
        missing = {"iterations", "lr", "slots"} - set(state)
        if missing:
            raise ValueError(f"{owner}: state_dict is missing {sorted(missing)}")
        iterations = _scalar(state["iterations"])
        ok = isinstance(iterations, int) and iterations >= 0
        check_argument(owner, "iterations", iterations, ok, "an int >= 0")
        shapes = self._param_shapes(layers)
        slots = {}
        for key, saved in state["slots"].items():
            if set(saved) != set(self.slot_names()):
                raise ValueError(
                    f"{owner}: slot {key} holds {sorted(saved)}, "
                    f"expected {sorted(self.slot_names())}"
                )
            slots[key] = {name: np.array(v, copy=True) for name, v in saved.items()}
            if key in shapes:
                self._check_slot_shapes(key, slots[key], shapes[key])
        self.lr = state["lr"]
        self.iterations = int(iterations)
        self.slots = slots

    def _param_shapes(self, layers: Sequence[Any] | None) -> dict[str, tuple[int, ...]]:
        """Parameter shape per slot key: from ``layers``, else from existing slots."""
        if layers is not None:
            return {key: p.shape for key, p, _ in _trainable(layers, self._name())}
        return {
            key: v.shape
            for key, slots in self.slots.items()
            for name, v in slots.items()
            if name != "step"
        }

    def _check_slot_shapes(self, key: str, slots: dict, shape: tuple[int, ...]) -> None:
        for name, value in slots.items():
            expected = self.slot_shape(name, shape)
            if value.shape != expected:
                raise ValueError(
                    f"{self._name()}: slot {key}.{name} has shape {value.shape}, "
                    f"expected {expected} for a parameter of shape {shape}"
                )

    @staticmethod
    def _with_l2(p: np.ndarray, g: np.ndarray, o: Any) -> np.ndarray:
        """g + o.weight_decay * w: L2 decay added to the gradient (a new array)."""
        return g + o.weight_decay * p if o.weight_decay else g
