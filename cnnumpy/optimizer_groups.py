"""Per-layer optimiser options: a layer, or one parameter of it, with its own settings.

Seed 000's CIFAR-10 network gives every layer its own triple (α, η, ε), the learning
rate, momentum and weight decay of the notes' update
``Δw(n) = -α ∂E/∂w + η Δw(n-1) - α ε w``, and its code decays the weights but not the
biases. PyTorch does this with parameter groups (``torch.optim.SGD([{"params": ...,
"lr": ...}, ...])``); here a group is named by its layer (its name, its index in
``model.layers``, or the layer object itself when it has a name) and, if wanted, one
parameter key of that layer (``"W"``, ``"b"``, ...).

For each parameter the options it is updated with are, the later winning:

1. the optimiser's own values (its constructor's arguments);
2. its layer's options (``set_options(layer, ...)``);
3. the parameter's own options (``set_options(layer, param="b", ...)``);

then, with ``decay_biases=False``, a bias (:func:`is_bias`) gets ``weight_decay = 0``
unless its own options (3.) set one.

A learning rate given to a group is its rate while the optimiser's lr is still the one
it was built with, ``lr0`` (``initial_lr``). When the optimiser's lr later becomes
``lr(t)`` (a schedule, ``ReduceLROnPlateau``, or by hand) the group's rate follows it in
proportion: ``lr_group(t) = lr_group * lr(t) / lr0``, as PyTorch's schedulers multiply
each group's ``initial_lr`` by the same factor.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

__all__ = ["OPTION_RULES", "PerLayerOptions", "is_bias", "parse_groups"]

# Every option a layer may have its own value of: (test of the value, what it must be).
OPTION_RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    "lr": (lambda v: v >= 0, ">= 0"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "eps": (lambda v: v >= 0, ">= 0"),
    "momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "beta1": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "beta2": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "alpha": (lambda v: 0 <= v < 1, "in [0, 1)"),
}

LayerRef = str | int  # a layer's name, or its index in model.layers


def is_bias(key: str) -> bool:
    """Whether the parameter ``key`` is a bias that ``decay_biases=False`` exempts.

    The biases ``b`` (Dense, Conv) and ``b_*`` (``b_xh``, ``b_hh`` of the recurrent
    layers), and BatchNorm's ``gamma`` and ``beta``: shifts and scales, which an L2
    penalty would only pull towards 0 without limiting the model's capacity.
    """
    return key in ("b", "gamma", "beta") or key.startswith("b_")


def check_options(owner: str, options: dict, allowed: Sequence[str]) -> dict:
    """``options`` as floats, each a known name with a value in range; else an error."""
    if not options:
        raise ValueError(f"{owner}: no option given; expected some of {list(allowed)}")
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"{owner}: unknown option(s) {unknown}; a layer may have its own "
            f"{', '.join(allowed)}"
        )
    checked = {}
    for name, value in options.items():
        ok, expected = OPTION_RULES[name]
        number = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if not (number and math.isfinite(value) and ok(value)):
            raise ValueError(
                f"{owner}: {name} must be a number {expected}, got {value!r}"
            )
        checked[name] = float(value)
    return checked


def layer_ref(owner: str, layer: Any) -> LayerRef:
    """What a group stores of ``layer`` (an object, name or index): name or index."""
    if isinstance(layer, bool):
        pass  # True is an int to Python, never a layer index here
    elif isinstance(layer, numbers.Integral):
        if layer < 0:
            raise ValueError(f"{owner}: a layer index must be >= 0, got {layer}")
        return int(layer)
    elif isinstance(layer, str):
        if not layer:
            raise ValueError(f"{owner}: a layer name must not be empty")
        return layer
    elif hasattr(layer, "params"):
        name = getattr(layer, "name", None)
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"{owner}: {layer!r} has no name; give it one (e.g. name='conv1') or "
                "pass its index in model.layers"
            )
        return name
    raise TypeError(
        f"{owner}: expected a layer, its name or its index in model.layers, got "
        f"{type(layer).__name__} {layer!r}"
    )


def parse_groups(owner: str, groups: Any) -> list[tuple[Any, str | None, dict]]:
    """``(layer, param, options)`` triples from a constructor's ``groups``.

    ``groups`` is a dict ``{layer or (layer, param): {option: value}}`` or the list
    ``get_config`` writes, ``[{"layer": ..., "param": ..., option: value}]``.
    """
    if isinstance(groups, dict):
        triples = []
        for key, options in groups.items():
            if isinstance(key, tuple) and len(key) != 2:
                raise ValueError(
                    f"{owner}: a group key is a layer or (layer, param), got {key!r}"
                )
            layer, param = key if isinstance(key, tuple) else (key, None)
            triples.append((layer, param, options))
    elif isinstance(groups, (list, tuple)):
        if not all(isinstance(e, dict) and "layer" in e for e in groups):
            raise ValueError(
                f"{owner}: groups as a list must hold dicts with a 'layer' key, got "
                f"{groups!r}"
            )
        triples = [
            (e["layer"], e.get("param"), _without(e, ("layer", "param")))
            for e in groups
        ]
    else:
        raise TypeError(
            f"{owner}: groups must be a dict {{layer: options}} or a list, got "
            f"{type(groups).__name__}"
        )
    for _layer, _param, options in triples:
        if not isinstance(options, dict):
            raise TypeError(
                f"{owner}: the options of a group must be a dict, got {options!r}"
            )
    return triples


class PerLayerOptions:
    """The part of ``Optimizer`` that gives layers and parameters their own options.

    The optimiser provides ``lr``, ``initial_lr``, ``decay_biases``, ``group_options``
    (the options a layer may have its own value of) and ``_name()``.

    Attributes:
        layer_options: ``{(layer name or index, param key or None): {option: float}}``,
            in the order they were first set.
    """

    def set_options(self, layer: Any, *, param: str | None = None, **options) -> None:
        """Give one layer, or one parameter of it, its own options (e.g. ``lr=0.02``).

        Repeated calls add up, a later value replacing an earlier one. Unknown layer
        names and keys are reported at the next ``step``, when the layers are known.

        Args:
            layer: the layer object (it must have a name), its name, or its index in
                ``model.layers``.
            param: one parameter key (``"W"``, ``"b"``, ...); None: all of them.
            **options: any of ``group_options``.

        Raises:
            ValueError: unknown option or value out of range; an lr while the
                optimiser's own lr is 0 (a group's lr is relative to it).
            TypeError: ``layer`` or ``param`` of the wrong type.
        """
        owner = self._name()
        ref = layer_ref(owner, layer)
        if param is not None and (not isinstance(param, str) or not param):
            raise TypeError(
                f"{owner}: param must be a parameter key such as 'b', got {param!r}"
            )
        where = f"{owner}: options of {_describe(ref, param)}"
        checked = check_options(where, options, self.group_options)
        if "lr" in checked and self.initial_lr == 0:
            raise ValueError(
                f"{where}: a layer's own lr follows the optimizer's lr in proportion "
                "(lr_layer * lr / initial_lr), so the optimizer's lr must be > 0, "
                "got lr=0"
            )
        self.layer_options.setdefault((ref, param), {}).update(checked)

    def option_values(self, name: str) -> list[float]:
        """The optimiser's value of option ``name`` and every value a group gives it."""
        given = [o[name] for o in self.layer_options.values() if name in o]
        return [getattr(self, name), *given]

    def groups_config(self) -> list[dict[str, Any]]:
        """The options set, as JSON-serialisable dicts that ``parse_groups`` reads."""
        return [
            {"layer": ref, **({} if param is None else {"param": param}), **options}
            for (ref, param), options in self.layer_options.items()
        ]

    def param_options(self, layers: Sequence[Any]) -> dict[str, SimpleNamespace]:
        """The options of every parameter of the trainable ``layers`` at the next step,
        keyed like the slots (``"0.W"``): ``o.lr``, ``o.weight_decay``, ...

        A group's lr is scaled by ``lr / initial_lr``; with ``decay_biases=False`` a
        bias gets weight_decay 0 unless its own options set one.
        """
        defaults = {name: getattr(self, name) for name in self.group_options}
        lr_scale = self.lr / self.initial_lr if self.initial_lr else 1.0
        found = self._locate(layers)
        resolved = {}
        for i, layer in enumerate(layers):
            if not getattr(layer, "trainable", True):
                continue
            of_layer = found.get((i, None), {})
            for key in layer.params:
                own = found.get((i, key), {})
                options = {**defaults, **of_layer, **own}
                if "lr" in of_layer or "lr" in own:
                    options["lr"] *= lr_scale
                if is_bias(key) and not self.decay_biases and "weight_decay" not in own:
                    options["weight_decay"] = 0.0
                resolved[f"{i}.{key}"] = SimpleNamespace(**options)
        return resolved

    def _locate(self, layers: Sequence[Any]) -> dict[tuple[int, str | None], dict]:
        """The options set, keyed by layer index; an error for a layer or key not
        there."""
        names = [getattr(layer, "name", None) for layer in layers]
        found: dict[tuple[int, str | None], dict] = {}
        for (ref, param), options in self.layer_options.items():
            i = self._index(ref, names)
            params = list(layers[i].params)
            if param is None and not params:
                raise ValueError(
                    f"{self._name()}: options for {_describe(ref, None)} "
                    f"({layers[i]!r}), which has no parameters"
                )
            if param is not None and param not in params:
                raise ValueError(
                    f"{self._name()}: options for {_describe(ref, param)}, but "
                    f"{layers[i]!r} has no parameter {param!r}; its parameters are "
                    f"{params}"
                )
            found.setdefault((i, param), {}).update(options)
        return found

    def _index(self, ref: LayerRef, names: list) -> int:
        owner, count = self._name(), len(names)
        if isinstance(ref, int):
            if ref >= count:
                raise ValueError(
                    f"{owner}: options for layer {ref}, but the model has {count} "
                    f"layers (indices 0 to {count - 1})"
                )
            return ref
        matches = [i for i, name in enumerate(names) if name == ref]
        if not matches:
            named = [name for name in names if name is not None]
            raise ValueError(
                f"{owner}: options for a layer named {ref!r}, but no layer has that "
                f"name; the model's named layers are {named}"
            )
        if len(matches) > 1:
            raise ValueError(
                f"{owner}: options for the layer named {ref!r}, but layers {matches} "
                "all have that name; give them distinct names or use indices"
            )
        return matches[0]


def _without(entry: dict, keys: tuple[str, ...]) -> dict:
    return {k: v for k, v in entry.items() if k not in keys}


def _describe(ref: LayerRef, param: str | None) -> str:
    layer = f"layer {ref}" if isinstance(ref, int) else f"layer {ref!r}"
    return layer if param is None else f"parameter {param!r} of {layer}"
