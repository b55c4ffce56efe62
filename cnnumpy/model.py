"""Model: layers composed into a network, trained by mini-batch gradient descent.

One training step is the notes' loop (seed 002, ``Network.fit``; seed 000, ``train``):
forward through every layer, loss, backward through every layer in reverse order, then
one optimiser update of every parameter from its gradient.

``Model`` is any graph of layers, written as calls (Keras' functional API,
:mod:`cnnumpy.graph`): a residual block adds a branch to its input, an Inception block
concatenates four branches, a model may have several inputs and outputs.
:class:`~cnnumpy.sequential.Sequential`, the notes' stack of layers, is the graph
where each layer reads the one before.
"""

from __future__ import annotations

import numpy as np

from cnnumpy import engine, graph, training
from cnnumpy import losses as losses_module
from cnnumpy import metrics as metrics_module
from cnnumpy import optimizers as optimizers_module
from cnnumpy.callbacks import History
from cnnumpy.distributed import replicas
from cnnumpy.engine.executor import Executor
from cnnumpy.layers.base import Layer, layer_from_config, layer_to_config
from cnnumpy.saving.writing import save_model
from cnnumpy.summary import summary_text
from cnnumpy.validation import (
    Arrays,
    cast_inputs,
    check_batch_size,
    check_data,
    check_model_inputs,
)


class Model:
    """A network of layers: ``Model(inputs, outputs)`` from :func:`cnnumpy.Input`
    and layer calls (see :mod:`cnnumpy.graph`).

    Args:
        inputs: the Input Tensor, or a list of them (the model then takes a list of
            arrays, in that order).
        outputs: the output Tensor, or a list of them (the model then returns a list
            of arrays and takes a list of targets, one per output).
        name: an optional name shown by ``summary``.

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

    def __init__(self, inputs, outputs, name: str | None = None) -> None:
        layers, sources, output_ids = graph.trace(inputs, outputs)
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
        inputs, sources, outputs = graph.check_config(config)
        layers = [layer_from_config(e, i) for i, e in enumerate(config["layers"])]
        graph.check_arities(layers, sources)
        dtype = np.dtype(config.get("dtype", "float32"))
        tensors = [
            graph.Input(e["shape"], name=e.get("name"), dtype=e.get("dtype", "float"))
            for e in inputs
        ]
        values = list(tensors)
        for layer, srcs in zip(layers, sources, strict=True):
            layer.astype(dtype)  # built in the model's dtype
            values.append(layer(graph.arguments(layer, values, srcs)))
        model = cls(tensors, [values[k] for k in outputs], name=config.get("name"))
        if any(a is not b for a, b in zip(model.layers, layers, strict=False)) or len(
            model.layers
        ) != len(layers):
            raise ValueError(
                "Model.from_config: the layers are not listed in the order the "
                "model runs them (or some lead to no output)"
            )
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
            raise TypeError(
                f"Model: expected a list of {self.n_inputs} input arrays, got "
                f"{type(x).__name__}"
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
        dxs = graph.run_backward(
            self.layers, self.sources, self.output_ids, douts, self.n_inputs
        )
        return dxs if self.multiple_inputs else dxs[0]

    # -- training ----------------------------------------------------------------------
    def compile(
        self,
        optimizer="sgd",
        loss="cross_entropy",
        metrics=("accuracy",),
        loss_weights=None,
    ) -> None:
        """Choose the optimiser, the loss and the metrics.

        The optimiser and the loss are given by name or as objects. A model of
        several outputs takes one loss for all, or a list of one per output, and
        ``loss_weights`` (one number per output, default 1): the loss minimised is
        ``sum_k w_k L_k``; each metric is reported per output, as
        ``<output>_<metric>`` (``<output>`` the output layer's name, else
        ``output_<k>``).
        """
        self.optimizer = optimizers_module.get(optimizer)
        if not self.multiple_outputs:
            if loss_weights is not None:
                raise ValueError(
                    "compile: loss_weights is for models of several outputs"
                )
            self.loss = losses_module.get(loss)
            self.metrics = self.metric_functions(metrics)
            return
        n = len(self.output_ids)
        each = list(loss) if isinstance(loss, (list, tuple)) else [loss] * n
        self.loss = losses_module.PerOutput(each, loss_weights)
        if len(self.loss.losses) != n:
            raise ValueError(
                f"compile: expected {n} losses (one per output), got {len(each)}"
            )
        self.metrics = self.metric_functions(metrics)

    def metric_functions(self, names) -> dict:
        """``{log name: metric}`` for the metric ``names`` (``"accuracy"``...): one
        each, or for a model of several outputs one per output and name, logged as
        ``<output>_<metric>`` (:meth:`output_names`). ``compile`` and ``load_model``
        make ``model.metrics`` with it; ``model.metric_names`` keeps ``names``."""
        self.metric_names = list(names or ())
        if not self.multiple_outputs:
            return {name: metrics_module.get(name) for name in self.metric_names}
        return {
            f"{output}_{name}": metrics_module.per_output(name, k)
            for k, output in enumerate(self.output_names())
            for name in self.metric_names
        }

    def output_names(self) -> list[str]:
        """The names of the outputs in logs: each output layer's name, or
        ``output_<k>`` where it has none or shares it with another output."""
        n = self.n_inputs
        names = [
            self.layers[k - n].name if k >= n and self.layers[k - n].name else None
            for k in self.output_ids
        ]
        return [
            name if name is not None and names.count(name) == 1 else f"output_{k}"
            for k, name in enumerate(names)
        ]

    def require_compiled(self, where: str) -> None:
        """ValueError naming ``where`` unless ``compile`` was called."""
        if self.loss is None or self.optimizer is None:
            raise ValueError(
                f"{where}: call model.compile(optimizer=..., loss=...) first"
            )

    def train_step(self, x, y) -> tuple[float, np.ndarray]:
        """One training step on a batch of checked inputs of the model's dtype (what
        ``fit`` calls for every batch): forward, loss, backward, one optimiser update;
        returns ``(loss, raw outputs)``. With the engine on, the model's executor runs
        the same step faster (:mod:`cnnumpy.engine.executor`)."""
        self.require_compiled("train_step")
        if engine.enabled():
            return self.executor.train_step(x, y)
        out = self.forward(x, training=True)
        loss = float(self.loss(out, y))
        self.backward(self.loss.backward())
        self.optimizer.step(self.layers)
        return loss, out

    def _infer(self, x):
        """Raw inference outputs of one batch: ``forward``, fused by the executor when
        the engine is on."""
        if engine.enabled():
            return self.executor.infer(x)
        return self.forward(x, training=False)

    def use_processes(self, processes: int | None = None, timeout: float | None = None):
        """Split every batch over ``processes`` processes (``None``: one per core):
        this process computes one slice, ``processes - 1`` replicas the others, with
        the results of one process on the whole batch (:mod:`cnnumpy.distributed`
        says why processes and how). Returns the
        :class:`~cnnumpy.distributed.replicas.Replicas`, a context manager that stops
        them (``use_processes(1)`` too). ``timeout``: seconds a replica may stay
        silent before it counts as dead (default ``CNNUMPY_REPLICA_TIMEOUT``, else 60).
        """
        self._require_built()
        return replicas.use_processes(self, processes, timeout)

    def train_on_batch(self, x, y) -> float:
        """One forward, backward and optimiser step on one batch; returns the loss."""
        self.require_compiled("train_on_batch")
        x, y = check_data(self, x, y, "train_on_batch")
        return self.train_step(cast_inputs(self, x), y)[0]

    def fit(
        self,
        x,
        y,
        epochs: int = 1,
        batch_size: int = 32,
        shuffle: bool = True,
        validation_data=None,
        validation_split: float = 0.0,
        callbacks=None,
        verbose: int = 1,
        seed: int | np.random.Generator | None = None,
        augment=None,
        resume_from=None,
    ) -> History:
        """Train for ``epochs`` passes over (x, y) in mini-batches; returns the History.

        Args:
            x: inputs (N, ...) (a list of arrays for several inputs); integer images
                are cast to the model dtype batch by batch, and integer ids (N, T)
                stay integers when an Embedding reads them
                (``cnnumpy.validation.cast_inputs``).
            y: class ids (N,), one-hot (N, K) or regression targets (a list, one per
                output, for several outputs). Bool labels are read as 0/1 integers
                (False is 0, True is 1): class ids 0 and 1 for cross-entropy, targets
                0 and 1 for binary cross-entropy.
            validation_data: a pair (x_val, y_val) evaluated after each epoch.
            validation_split: fraction of the *last* examples held out instead (like
                Keras).
            callbacks: Callback objects (EarlyStopping, CSVLogger, ...).
            verbose: 0 silent, 1 a progress bar and a line per epoch, 2 the line only.
            seed: seeds the shuffling (and ``augment``) generator for a reproducible
                run.
            augment: optional ``augment(x_batch, rng) -> x_batch`` applied to training
                batches.
            resume_from: a folder for backup and restore. After every epoch the
                model, optimiser, history and random generators are saved there
                atomically; a later ``fit`` with the same folder starts after the last
                completed epoch and ends with the same weights, bit for bit, as an
                uninterrupted run. A resume of a *different* run (other data, batch
                size, optimiser, or fewer epochs) is refused with a ``ValueError``
                before anything is loaded: see :mod:`cnnumpy.saving.backup`.

        Returns:
            The History (``model.history``).

        Raises:
            TrainingDiverged: a batch loss, an epoch's logged value or a weight became
                NaN or infinite (on by default; with the ``TerminateOnNaN`` callback
                a NaN batch loss instead ends training quietly). Non-finite weights are
                never checkpointed: ``resume_from`` keeps the last good epoch.
            RunFolderLocked: another process is training into ``resume_from``.
            ValueError: bad arguments (e.g. ``validation_data`` not a pair, or
                ``resume_from`` a file) or a refused resume.
        """
        return training.fit(
            self,
            x,
            y,
            epochs=epochs,
            batch_size=batch_size,
            shuffle=shuffle,
            validation_data=validation_data,
            validation_split=validation_split,
            callbacks=callbacks,
            verbose=verbose,
            seed=seed,
            augment=augment,
            resume_from=resume_from,
        )

    # -- inference ---------------------------------------------------------------------
    def predict(self, x, batch_size: int = 256):
        """Outputs for ``x`` in batches (probabilities for a classifier); a list of
        arrays for several outputs. The batches keep memory bounded."""
        x = check_model_inputs(self, x, "predict")
        self._require_built(x)
        check_batch_size(batch_size, "predict")
        outs = None
        for lo in range(0, len(x), batch_size):
            xb = cast_inputs(self, x[lo : lo + batch_size])
            raw = self._infer(xb)
            scores = self.loss.to_probabilities(raw) if self.loss is not None else raw
            scores = scores if self.multiple_outputs else [scores]
            if outs is None:
                outs = [np.empty((len(x), *s.shape[1:]), dtype=s.dtype) for s in scores]
            for out, s in zip(outs, scores, strict=True):
                out[lo : lo + len(s)] = s
        return outs if self.multiple_outputs else outs[0]

    def evaluate(self, x, y, batch_size: int = 256) -> dict[str, float]:
        """Mean loss and metrics over (x, y), computed in batches."""
        self.require_compiled("evaluate")
        x, y = check_data(self, x, y, "evaluate")
        check_batch_size(batch_size, "evaluate")
        totals = {"loss": 0.0, **{name: 0.0 for name in self.metrics}}
        for lo in range(0, len(x), batch_size):
            xb, yb = cast_inputs(self, x[lo : lo + batch_size]), y[lo : lo + batch_size]
            raw = self._infer(xb)
            totals["loss"] += float(self.loss(raw, yb)) * len(xb)
            scores = self.loss.to_probabilities(raw)
            for name, fn in self.metrics.items():
                totals[name] += fn(yb, scores) * len(xb)
        return {k: v / len(x) for k, v in totals.items()}

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
