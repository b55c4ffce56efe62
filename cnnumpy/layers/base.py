"""The abstract layer every cnnumpy layer derives from.

A layer is an object with a forward pass and a backward pass (seed 002, "Classe
abstraite : Layer"): ``forward`` maps X to Y and keeps what the backward pass needs;
``backward`` receives dL/dY and returns dL/dX, after storing the gradient of every
parameter in ``self.grads`` under the same key as in ``self.params``. Optimisers only
ever read ``params`` and ``grads``.

In a graph model one array may feed several layers (a residual block's input feeds
its branch and its shortcut), and Add hands the same ``dout`` to each of its inputs:
``forward`` never writes into ``x``, nor ``backward`` into ``dout``.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from cnnumpy import graph, initializers
from cnnumpy.rng import spawn_rng

# Every concrete layer class, by name, so that a saved config can be rebuilt without
# running code.
LAYERS: dict[str, type[Layer]] = {}


class Layer:
    """Base class: parameters, gradients, state, build lifecycle, config and repr.

    Attributes:
        params: trainable arrays, e.g. ``{"W": ..., "b": ...}``.
        grads: arrays of the same keys and shapes, filled by ``backward``.
        state: non-trainable arrays saved with the model (BatchNorm's running
            statistics).
        input_shape: the input shape without the batch axis, set by ``build``.
        need_input_grad: when False (the first layer of a model) ``backward`` may skip
            dL/dX and return None; the parameter gradients are still computed.
    """

    # Whether this layer's outputs count as new "neurons" in ``summary`` (seed 003
    # counts the outputs of convolution, pooling and dense layers; an activation,
    # Flatten, Dropout or BatchNorm works on the same neurons and sets this to False).
    adds_neurons = True
    # What the layer takes as the model's first layer: "float" inputs, cast to the
    # model's dtype, or "int" ids kept as they are (Embedding).
    input_dtype = "float"
    # Whether ``forward`` takes a list of arrays and ``backward`` returns a list of
    # gradients (the merge layers: Add, Concatenate, Multiply).
    multiple_inputs = False

    def __init__(self, *, name: str | None = None) -> None:
        self.name = name
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.state: dict[str, np.ndarray] = {}
        self.input_shape: tuple[int, ...] | None = None
        self.built = False
        self.trainable = True
        self.need_input_grad = True
        self.dtype = np.dtype(np.float32)
        self._rng: np.random.Generator | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        name = cls.__name__
        if name.startswith("_"):  # private helper bases are not layers
            return
        # A user's subclass never shadows a built-in layer of the same name when a
        # model file is loaded: the name keeps meaning cnnumpy's own class.
        builtin = LAYERS.get(name)
        if builtin is None or not builtin.__module__.startswith("cnnumpy."):
            LAYERS[name] = cls

    # -- lifecycle ---------------------------------------------------------------------
    def build(self, input_shape: tuple[int, ...]) -> None:
        """Create the shape-dependent parameters.

        Subclasses create them, then call this.
        """
        self.input_shape = tuple(int(d) for d in input_shape)
        self.output_shape(
            self.input_shape
        )  # validates the shape, raising a clear error
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.built = True

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one output example for one input example of ``input_shape``."""
        return tuple(input_shape)

    def param_shapes(
        self, input_shape: tuple[int, ...]
    ) -> dict[str, tuple[int, ...]] | None:
        """Shapes of the parameters ``build(input_shape)`` creates, without allocating.

        A layer with parameters overrides this and builds from it, so that a model file
        can be checked against its architecture before anything is allocated. A layer
        that keeps ``Layer.build`` creates none: ``{}``. A layer that overrides
        ``build`` but not this (a user's own layer) returns None: unknown, its tensors
        are then checked once it is built.
        """
        return {} if type(self).build is Layer.build else None

    def state_shapes(
        self, input_shape: tuple[int, ...]
    ) -> dict[str, tuple[int, ...]] | None:
        """Shapes of the state arrays ``build(input_shape)`` creates (as above; a
        layer that declares its ``param_shapes`` and not this has no state)."""
        declared = type(self).param_shapes is not Layer.param_shapes
        return {} if declared or type(self).build is Layer.build else None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError

    def __call__(self, x, training: bool = False):
        """``forward(x)`` on arrays; on symbolic Tensors (``cnnumpy.Input`` and the
        outputs of layer calls), the Tensor of this layer's output in a graph model
        (:mod:`cnnumpy.graph`)."""
        if graph.is_symbolic(x):
            return graph.connect(self, x)
        return self.forward(x, training=training)

    # -- helpers for subclasses --------------------------------------------------------
    @property
    def rng(self) -> np.random.Generator:
        """This layer's own generator (dropout masks).

        It is spawned from the global one on first use.
        """
        if self._rng is None:
            self._rng = spawn_rng()
        return self._rng

    @rng.setter
    def rng(self, value: np.random.Generator) -> None:
        self._rng = value

    @property
    def existing_rng(self) -> np.random.Generator | None:
        """The layer's generator if it has one yet, else None (``rng`` would spawn
        one, drawing from the global generator): what a model file saves."""
        return self._rng

    def _prepare_input(self, x: np.ndarray, rank: int | None = None) -> np.ndarray:
        """Check ``x``, build the layer on first use, and cast to the parameters' dtype.

        Args:
            x: the batch; its first axis is the batch axis.
            rank: expected ``x.ndim`` (batch axis included), or None for any rank >= 2.
        """
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{self!r}: expected a numpy array, got {type(x).__name__}")
        if rank is not None and x.ndim != rank:
            raise ValueError(
                f"{self!r}: expected input of rank {rank} {self._expected_input()}, "
                f"got shape {x.shape}"
            )
        if rank is None and x.ndim < 2:
            raise ValueError(
                f"{self!r}: expected a batch (N, ...) of rank >= 2, got shape {x.shape}"
            )
        if not self.built:
            self.build(x.shape[1:])
        elif self.params and tuple(x.shape[1:]) != self.input_shape:
            self.output_shape(tuple(x.shape[1:]))  # raises if incompatible
        if self.params:
            if x.dtype != self.dtype:
                x = x.astype(self.dtype)
        elif not np.issubdtype(x.dtype, np.floating):
            x = x.astype(self.dtype)
        return x

    def _initial_value(
        self,
        spec: initializers.Spec,
        argument: str,
        shape: tuple[int, ...],
        input_shape: tuple[int, ...],
    ) -> np.ndarray:
        """A new parameter of ``shape`` from ``spec``, the ``argument`` of this layer
        (e.g. ``"kernel_initializer"``): a name or a callable ``f(shape, rng, dtype)``
        (:mod:`cnnumpy.initializers`), drawn from this layer's generator in its dtype,
        its result checked; errors name the layer."""
        return initializers.initialize(
            spec,
            shape,
            self.rng,
            self.dtype,
            input_shape=input_shape,
            where=f"{self!r}: {argument}",
        )

    def _expected_input(self) -> str:
        """A short text for error messages, such as ``(N, 3, H, W)``."""
        return "(N, ...)"

    def _error(self, message: str) -> ValueError:
        return ValueError(f"{self!r}: {message}")

    # -- dtype, counting, config -------------------------------------------------------
    def astype(self, dtype) -> Layer:
        """Convert parameters, gradients and state to ``dtype``, in place.

        ``dtype`` is float32 or float64.
        """
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"{self!r}: dtype must be float32 or float64, got {dtype}")
        self.dtype = dtype
        for store in (self.params, self.grads, self.state):
            for k, v in store.items():
                if np.issubdtype(v.dtype, np.floating):
                    store[k] = v.astype(dtype)
        return self

    def count_params(self) -> int:
        """Number of trainable scalars."""
        return int(sum(p.size for p in self.params.values()))

    def zero_grads(self) -> None:
        for g in self.grads.values():
            g[...] = 0

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, enough to rebuild the layer.

        The result is JSON-serialisable.
        """
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return cls(**config)

    def __repr__(self) -> str:
        """``Conv2D(16, 3, stride=2)``: required arguments, then non-default ones."""
        config = self.get_config()
        parts = []
        signature = inspect.signature(type(self).__init__)
        for pname, p in list(signature.parameters.items())[1:]:
            if pname not in config:
                continue
            value = config[pname]
            # a pair is a JSON list in the config, a tuple in the call that makes it
            shown = repr(tuple(value) if isinstance(value, list) else value)
            if p.default is inspect.Parameter.empty:
                parts.append(shown)
            elif not _same(p.default, value):
                parts.append(f"{pname}={shown}")
        return f"{type(self).__name__}({', '.join(parts)})"


def _same(default, value) -> bool:
    """Whether a config value equals its default (a JSON list equals the same tuple)."""
    if isinstance(default, (tuple, list)) and isinstance(value, (tuple, list)):
        return list(default) == list(value)
    return default == value


def compact(value: Any) -> Any:
    """How a config stores a window size, step or padding given per axis:
    ``(3, 3)`` -> ``3``, ``(3, 5)`` -> ``[3, 5]`` (the JSON form, so that a loaded
    config equals the saved one); anything else (an int, ``"same"``, None) as it is.

    Constructors take both forms, so files saved with either still load.
    """
    if not isinstance(value, tuple):
        return value
    return value[0] if len(set(value)) == 1 else list(value)


def layer_to_config(layer: Layer) -> dict[str, Any]:
    """``{"class", "config", "name"}``: what :func:`layer_from_config` rebuilds
    ``layer`` from (a model's ``get_config`` lists one per layer)."""
    return {
        "class": type(layer).__name__,
        "config": layer.get_config(),
        "name": layer.name,
    }


def layer_from_config(entry: dict[str, Any], index: int = 0) -> Layer:
    """A new, unbuilt layer from ``layer_to_config``'s output, made by its class's
    ``from_config`` among the registered classes (:data:`LAYERS`) only: a config
    names a class, it never runs code. ValueError naming layer ``index`` if bad."""
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        raise ValueError(f"layer {index} has a corrupted config")
    name = entry.get("class")
    cls = LAYERS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(
            f"unknown layer type {name!r} (layer {index}); "
            f"known: {', '.join(sorted(LAYERS))}"
        )
    try:
        layer = cls.from_config(entry["config"])
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"layer {index} ({name}) has an invalid config: {exc}"
        ) from None
    layer.name = entry.get("name")
    return layer

