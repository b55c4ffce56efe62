"""Model: layers composed into a network, trained by mini-batch gradient descent.

One training step is the notes' loop (seed 002, ``Network.fit``; seed 000, ``train``):
forward through every layer, loss, backward through every layer in reverse order, then
one optimiser update of every parameter from its gradient.

``Model`` is any graph of layers, written as calls (Keras' functional API,
:mod:`cnnumpy.graph`): a residual block adds a branch to its input, an Inception block
concatenates four branches, a model may have several inputs and outputs.
:class:`~cnnumpy.sequential.Sequential`, the notes' stack of layers, is the graph
where each layer reads the one before. Training (compile, fit, evaluate, predict)
comes from :class:`~cnnumpy.trainer.Trainer`.
"""

from __future__ import annotations

import numpy as np

from cnnumpy import graph, graph_config
from cnnumpy.callbacks import History
from cnnumpy.engine.executor import Executor
from cnnumpy.layers.base import Layer, layer_from_config, layer_to_config
from cnnumpy.saving.writing import save_model
from cnnumpy.summary import summary_text
from cnnumpy.trainer import Trainer
from cnnumpy.validation import (
    Arrays,
    cast_inputs,
)


class Model(Trainer):
    """A network of layers: ``Model(inputs, outputs)`` from :func:`cnnumpy.Input`
    and layer calls (see :mod:`cnnumpy.graph`).

    Args:
        inputs: the Input Tensor, or a list of them (the model then takes a list of
            arrays, in that order).
        outputs: the output Tensor, or a list of them (the model then returns a list
            of arrays and takes a list of targets, one per output).
        name: an optional name shown by ``summary``.
        layer_order: the order of ``layers``, each after the layers it reads (a
            saved model's order); default: a depth-first walk from the outputs.

    Attributes:
        layers: every layer, in the order the forward pass runs them (each after the
            layers it reads from); saved weights are numbered in this order.
        sources: ``sources[j]``, the values layer ``j`` reads: ``0 .. n_inputs - 1``
            the model's inputs, ``n_inputs + i`` the output of layer ``i``.
        output_ids: the values the model returns.
        preprocessing: how raw uint8 pixels become this model's input, kept in the
            model file so that it travels with the weights: None, or
            ``{"scale": s, "mean": [m_c], "std": [s_c]}`` (one mean and one std per
            input channel) for ``x' = (x * s - m_c) / s_c``. ``cnnumpy train`` sets it
            (``s = 1 / 255`` and the training split's statistics); ``cnnumpy
            evaluate | predict | visualize`` apply it. ``predict`` and ``fit`` never
            do: they take inputs already preprocessed.
    """

    def __init__(
        self, inputs, outputs, name: str | None = None, layer_order=None
    ) -> None:
        layers, sources, output_ids = graph.trace(inputs, outputs, layer_order)
        ins = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        self._setup(name)
        self.layers = layers
        self._sources, self._output_ids = sources, output_ids
        dtypes = {np.dtype(layer.dtype) for layer in layers}
        if len(dtypes) == 1:  # layers made in float64 make a float64 model
            self.dtype = dtypes.pop()
        self.input_shapes = [t.shape for t in ins]
        self.input_names = [t.name for t in ins]
        self._input_ids = [t.takes_ids for t in ins]
        self.astype(self.dtype)

    def _setup(self, name: str | None) -> None:
        """The state every model starts with (``Sequential`` too)."""
        self.name = name
        self.layers: list[Layer] = []
        self.input_shapes: list[tuple[int, ...]] | None = None
        self.input_names: list[str | None] = [None]
        self.optimizer = None
        self.loss = None
        self.metrics: dict = {}
        self.metric_names: list[str] = []
        self.stop_training = False
        self.stop_now = False
        self.history: History | None = None
        self.preprocessing: dict | None = None  # checked by save_model / load_model
        self.dtype = np.dtype(np.float32)
        self.executor = Executor(self)  # how batches run fast (cnnumpy.engine.executor)

    # -- structure ---------------------------------------------------------------------
    @property
    def sources(self) -> list[list[int]]:
        return self._sources

    @property
    def output_ids(self) -> list[int]:
        return self._output_ids

    @property
    def n_inputs(self) -> int:
        return 1 if self.input_shapes is None else len(self.input_shapes)

    @property
    def multiple_inputs(self) -> bool:
        return self.n_inputs > 1

    @property
    def multiple_outputs(self) -> bool:
        return len(self.output_ids) > 1

    @property
    def input_shape(self):
        """One example's input shape (batch axis excluded), a list of them for a
        model of several inputs, None while a Sequential is not built."""
        if self.input_shapes is None:
            return None
        return (
            self.input_shapes[0] if len(self.input_shapes) == 1 else self.input_shapes
        )

    @property
    def input_takes_ids(self) -> list[bool]:
        """For each input, whether it holds integer ids kept as they are (an
        ``Input(..., dtype="int")``, or one an Embedding reads) rather than values
        cast to the model's dtype."""
        reads = [
            any(k in srcs and layer.input_dtype == "int" for layer, srcs in self.nodes)
            for k in range(self.n_inputs)
        ]
        return [a or b for a, b in zip(self._input_ids, reads, strict=True)]

    @property
    def nodes(self) -> list[tuple[Layer, list[int]]]:
        """``(layer, sources)`` for every layer, in order."""
        return list(zip(self.layers, self.sources, strict=True))

    def value_shapes(self) -> list[tuple[int, ...]]:
        """One example's shape of every value: the inputs, then each layer's output."""
        self._require_built()
        return graph.value_shapes(self.layers, self.sources, self.input_shapes)

    def layer_input_shapes(self) -> list:
        """Each layer's input shape (a list of shapes for a merge layer)."""
        shapes = self.value_shapes()
        return [graph.arguments(layer, shapes, srcs) for layer, srcs in self.nodes]

    @property
    def output_shape(self):
        """One example's output shape, a list of them for several outputs."""
        shapes = self.value_shapes()
        outs = [shapes[k] for k in self.output_ids]
        return outs[0] if len(outs) == 1 else outs

    def _require_built(self, x=None) -> None:
        """Nothing to do: a graph model is built by its Inputs."""

    def astype(self, dtype) -> Model:
        """Convert every parameter, gradient and state array to float32 or float64."""
        self.dtype = np.dtype(dtype)
        for layer in self.layers:
            layer.astype(self.dtype)
        if self.optimizer is not None and hasattr(self.optimizer, "astype"):
            self.optimizer.astype(self.dtype)
        return self

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    def get_weights(self) -> list[dict[str, np.ndarray]]:
        """Copies of every layer's params and state, in layer order."""
        return [
            {k: v.copy() for k, v in {**layer.params, **layer.state}.items()}
            for layer in self.layers
        ]

    def set_weights(self, weights: list[dict[str, np.ndarray]]) -> None:
        """Copy weights from ``get_weights`` back in place (shapes must match)."""
        if len(weights) != len(self.layers):
            raise ValueError(
                f"set_weights: expected {len(self.layers)} layers, got {len(weights)}"
            )
        for layer, saved in zip(self.layers, weights, strict=True):
            for store in (layer.params, layer.state):
                for key, value in store.items():
                    if saved[key].shape != value.shape:
                        raise ValueError(
                            f"set_weights: {layer!r} {key} must have shape "
                            f"{value.shape}, got {saved[key].shape}"
                        )
                    value[...] = saved[key]

    def get_config(self) -> dict:
        """The architecture as JSON-ready data, enough to rebuild the model (Keras'
        pattern): its inputs, each layer's class, config and name, where each layer
        reads from, and the outputs. Weights are not in it (:meth:`get_weights`)."""
        kinds = ["int" if ids else "float" for ids in self._input_ids]
        return {
            "class": "Model",
            "name": self.name,
            "dtype": self.dtype.name,
            "inputs": [
                {"shape": list(shape), "name": name, "dtype": kind}
                for shape, name, kind in zip(
                    self.input_shapes, self.input_names, kinds, strict=True
                )
            ],
            "layers": [layer_to_config(layer) for layer in self.layers],
            "sources": [list(s) for s in self.sources],
            "outputs": list(self.output_ids),
        }

    @classmethod
    def from_config(cls, config: dict) -> Model:
        """A new model of the architecture :meth:`get_config` described, with new
        weights. Layers are made only from the registered classes
        (``cnnumpy.layers.LAYERS``); a bad config is a ValueError naming the layer."""
        inputs, sources, outputs = graph_config.check_config(config)
        layers = [layer_from_config(e, i) for i, e in enumerate(config["layers"])]
        graph_config.check_arities(layers, sources)
        dtype = np.dtype(config.get("dtype", "float32"))
        tensors = [
            graph.Input(e["shape"], name=e.get("name"), dtype=e.get("dtype", "float"))
            for e in inputs
        ]
        values = list(tensors)
        for layer, srcs in zip(layers, sources, strict=True):
            layer.astype(dtype)  # built in the model's dtype
            values.append(layer(graph.arguments(layer, values, srcs)))
        outs = [values[k] for k in outputs]
        model = cls(tensors, outs, name=config.get("name"), layer_order=layers)
        return model.astype(dtype)

    def save(self, path, include_optimizer: bool = True) -> None:
        """Save the model to one safetensors file.

        The file holds architecture, weights, optimiser state and history.
        """
        save_model(self, path, include_optimizer=include_optimizer)

    def summary(self, print_fn=print, batch_size: int | None = None) -> str:
        """The table of layers, output shapes, parameters and neurons (and, for a
        graph, where each layer reads from), with totals; printed by ``print_fn``
        (None: not printed) and returned."""
        text = summary_text(self, *([] if batch_size is None else [batch_size]))
        if print_fn is not None:
            print_fn(text)
        return text

    # -- passes ------------------------------------------------------------------------
    def _input_list(self, x) -> list[np.ndarray]:
        """The model's inputs as a list, one array per Input, cast like ``fit``."""
        if not self.multiple_inputs:
            return [cast_inputs(self, x)]
        if isinstance(x, (list, tuple)):
            x = Arrays(x)
        if not isinstance(x, Arrays) or len(x.arrays) != self.n_inputs:
            kind = type(x).__name__
            got = f"{len(x.arrays)} arrays" if isinstance(x, Arrays) else kind
            raise TypeError(
                f"Model: expected a list of {self.n_inputs} input arrays, got {got}"
            )
        return list(cast_inputs(self, x).arrays)

    def forward(self, x, training: bool = False):
        """Raw pass through the graph (logits for a classifier): every layer in order,
        each on the values it reads (:func:`cnnumpy.graph.run_forward`). A list of
        arrays in and out for several inputs and outputs."""
        xs = self._input_list(x)
        outs = graph.run_forward(
            self.layers, self.sources, self.output_ids, xs, training
        )
        return outs if self.multiple_outputs else outs[0]

    def backward(self, dout):
        """Reverse pass: fills every layer's grads, returns dL/dx (a list for several
        inputs; None where not needed). A value that fed several layers gets the sum
        of their gradients (:func:`cnnumpy.graph.run_backward`)."""
        douts = list(dout) if self.multiple_outputs else [dout]
        if len(douts) != len(self.output_ids):
            raise ValueError(
                f"Model.backward: expected {len(self.output_ids)} output gradients "
                f"(one per output), got {len(douts)}"
            )
        dxs = graph.run_backward(
            self.layers, self.sources, self.output_ids, douts, self.n_inputs
        )
        return dxs if self.multiple_inputs else dxs[0]

    def __repr__(self) -> str:
        lines = [
            f"    {j}: {layer!r} <- {srcs}"
            for j, (layer, srcs) in enumerate(self.nodes)
        ]
        inner = "\n".join(lines)
        return (
            f"Model(inputs={self.input_shapes}, outputs={self.output_ids}, layers=[\n"
            f"{inner}\n])"
        )
