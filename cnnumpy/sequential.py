"""Sequential: the notes' network, a stack of layers each feeding the next.

A ``Sequential`` is a :class:`~cnnumpy.model.Model` whose graph is a chain: layer
``j`` reads the output of layer ``j - 1``. Its passes are the notes' two loops
(seed 002, ``Network.fit``): forward through the layers in order, backward through
them in reverse.
"""

from __future__ import annotations

import numpy as np

from cnnumpy import graph
from cnnumpy.layers.base import Layer, layer_from_config, layer_to_config
from cnnumpy.model import Model
from cnnumpy.validation import cast_inputs


class Sequential(Model):
    """A stack of layers, each feeding the next.

    Args:
        layers: the layers, in order.
        input_shape: shape of one example without the batch axis, e.g. ``(1, 28, 28)``;
            when given the model is built at once, otherwise on the first batch.
        name: an optional name shown by ``summary``.

    Attributes:
        preprocessing: see :class:`~cnnumpy.model.Model`.
    """

    def __init__(
        self,
        layers: list[Layer] | None = None,
        input_shape: tuple[int, ...] | None = None,
        name: str | None = None,
    ) -> None:
        self._setup(name)
        for layer in layers or []:
            self.add(layer)
        if input_shape is not None:
            self.build(input_shape)

    # -- structure: a chain ------------------------------------------------------------
    @property
    def sources(self) -> list[list[int]]:
        return [[j] for j in range(len(self.layers))]

    @property
    def output_ids(self) -> list[int]:
        return [len(self.layers)]

    @property
    def input_takes_ids(self) -> list[bool]:
        return [bool(self.layers) and self.layers[0].input_dtype == "int"]

    def add(self, layer: Layer) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(
                f"Sequential.add: expected a cnnumpy Layer, got {type(layer).__name__}"
            )
        if graph.is_called(layer):
            raise ValueError(
                f"Sequential.add: {layer!r} is already used in a graph (it keeps one "
                "call's cache for its backward pass); add a new layer"
            )
        if layer.multiple_inputs:
            raise TypeError(
                f"Sequential.add: {layer!r} reads several tensors; build a graph "
                "with cnnumpy.Input and cnnumpy.Model instead"
            )
        self.layers.append(layer)
        if self.input_shapes is not None:
            shape = self.output_shape_at(len(self.layers) - 2)
            layer.astype(self.dtype)
            layer.build(shape)
            layer.astype(self.dtype)

    def build(self, input_shape: tuple[int, ...]) -> None:
        """Build every layer from the shape of one example (batch axis excluded)."""
        shape = tuple(int(d) for d in input_shape)
        if not shape or min(shape) < 1:
            raise ValueError(
                "Sequential: input_shape must be positive sizes (no batch axis), "
                f"got {tuple(input_shape)}"
            )
        self.input_shapes = [shape]
        for layer in self.layers:
            if not layer.built:
                layer.build(shape)
            layer.astype(self.dtype)
            shape = layer.output_shape(shape)

    def output_shape_at(self, index: int) -> tuple[int, ...]:
        """Output shape of layer ``index`` (-1: the model input)."""
        shape = self.input_shape
        for layer in self.layers[: index + 1]:
            shape = layer.output_shape(shape)
        return shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.output_shape_at(len(self.layers) - 1)

    def _require_built(self, x: np.ndarray | None = None) -> None:
        if self.input_shapes is None:
            if x is None:
                raise ValueError(
                    "Sequential: the model is not built; pass input_shape="
                )
            self.build(x.shape[1:])

    def get_config(self) -> dict:
        """The architecture as JSON-ready data, enough to rebuild the model (Keras'
        pattern): name, input shape, dtype and each layer's class, config and name.
        Weights are not in it (:meth:`get_weights`); model files store both."""
        return {
            "name": self.name,
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "dtype": self.dtype.name,
            "layers": [layer_to_config(layer) for layer in self.layers],
        }

    @classmethod
    def from_config(cls, config: dict) -> Sequential:
        """A new model of the architecture :meth:`get_config` described, with new
        weights, built when the input shape is given. Layers are made only from the
        registered classes (``cnnumpy.layers.LAYERS``); a bad config is a ValueError
        naming the layer."""
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError("Sequential.from_config: expected a dict with 'layers'")
        layers = [layer_from_config(e, i) for i, e in enumerate(config["layers"])]
        model = cls(layers, name=config.get("name"))
        model.astype(config.get("dtype", "float32"))
        if config.get("input_shape") is not None:
            model.build(tuple(int(d) for d in config["input_shape"]))
        return model

    # -- passes: the notes' two loops --------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Raw pass through all layers, in order (logits for a classifier)."""
        self._require_built(x)
        out = cast_inputs(self, x)  # the model's dtype, or ids kept for an Embedding
        for layer in self.layers:
            out = layer.forward(out, training=training)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """Reverse pass: fills every layer's grads, returns dL/dx.

        dL/dx is None if not needed.
        """
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def __repr__(self) -> str:
        inner = ",\n".join(f"    {layer!r}" for layer in self.layers)
        return f"Sequential([\n{inner}\n], input_shape={self.input_shape})"


def model_from_config(config: dict) -> Model:
    """A new model from :meth:`Model.get_config` or :meth:`Sequential.get_config`:
    a graph's config names its class ``"Model"``; a Sequential's has none."""
    if isinstance(config, dict) and config.get("class") == "Model":
        return Model.from_config(config)
    return Sequential.from_config(config)
