"""Sequential: layers composed into a network, trained by mini-batch gradient descent.

One training step is the notes' loop (seed 002, ``Network.fit``; seed 000, ``train``):
forward through every layer, loss, backward through every layer in reverse order, then
one optimiser update of every parameter from its gradient.
"""

from __future__ import annotations

import numpy as np

from cnnumpy import engine, training
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
    cast_inputs,
    check_batch_size,
    check_data,
    check_model_inputs,
)


class Sequential:
    """A stack of layers, each feeding the next.

    Args:
        layers: the layers, in order.
        input_shape: shape of one example without the batch axis, e.g. ``(1, 28, 28)``;
            when given the model is built at once, otherwise on the first batch.
        name: an optional name shown by ``summary``.

    Attributes:
        preprocessing: how raw uint8 pixels become this model's input, kept in the
            model file so that it travels with the weights: None, or
            ``{"scale": s, "mean": [m_c], "std": [s_c]}`` (one mean and one std per
            input channel) for ``x' = (x * s - m_c) / s_c``. ``cnnumpy train`` sets it
            (``s = 1 / 255`` and the training split's statistics); ``cnnumpy
            evaluate | predict | visualize`` apply it. ``predict`` and ``fit`` never
            do: they take inputs already preprocessed.
    """

    def __init__(
        self,
        layers: list[Layer] | None = None,
        input_shape: tuple[int, ...] | None = None,
        name: str | None = None,
    ) -> None:
        self.layers: list[Layer] = []
        self.name = name
        self.input_shape: tuple[int, ...] | None = None
        self.optimizer = None
        self.loss = None
        self.metrics: dict = {}
        self.stop_training = False
        self.stop_now = False
        self.history: History | None = None
        self.preprocessing: dict | None = None  # checked by save_model / load_model
        self.dtype = np.dtype(np.float32)
        self.executor = Executor(self)  # how batches run fast (cnnumpy.engine.executor)
        for layer in layers or []:
            self.add(layer)
        if input_shape is not None:
            self.build(input_shape)

    # -- structure ---------------------------------------------------------------------
    def add(self, layer: Layer) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(
                f"Sequential.add: expected a cnnumpy Layer, got {type(layer).__name__}"
            )
        self.layers.append(layer)
        if self.input_shape is not None:
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
        self.input_shape = shape
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
        if self.input_shape is None:
            if x is None:
                raise ValueError(
                    "Sequential: the model is not built; pass input_shape="
                )
            self.build(x.shape[1:])

    def astype(self, dtype) -> Sequential:
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

    def save(self, path, include_optimizer: bool = True) -> None:
        """Save the model to one safetensors file.

        The file holds architecture, weights, optimiser state and history.
        """
        save_model(self, path, include_optimizer=include_optimizer)

    def summary(self, print_fn=print) -> str:
        """The table of layers, output shapes, parameters and neurons, with totals;
        printed by ``print_fn`` (None: not printed) and returned."""
        text = summary_text(self)
        if print_fn is not None:
            print_fn(text)
        return text

    # -- passes ------------------------------------------------------------------------
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

    # -- training ----------------------------------------------------------------------
    def compile(
        self, optimizer="sgd", loss="cross_entropy", metrics=("accuracy",)
    ) -> None:
        """Choose the optimiser, the loss and the metrics.

        The optimiser and the loss are given by name or as objects.
        """
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = losses_module.get(loss)
        self.metrics = {name: metrics_module.get(name) for name in (metrics or ())}

    def require_compiled(self, where: str) -> None:
        """ValueError naming ``where`` unless ``compile`` was called."""
        if self.loss is None or self.optimizer is None:
            raise ValueError(
                f"{where}: call model.compile(optimizer=..., loss=...) first"
            )

    def train_step(self, x: np.ndarray, y) -> tuple[float, np.ndarray]:
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

    def _infer(self, x: np.ndarray) -> np.ndarray:
        """Raw inference outputs of one batch: ``forward``, fused by the executor when
        the engine is on."""
        if engine.enabled():
            return self.executor.infer(x)
        return self.forward(x, training=False)

    def use_processes(
        self, processes: int | None = None, timeout: float | None = None
    ):
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

    def train_on_batch(self, x: np.ndarray, y: np.ndarray) -> float:
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
            x: inputs (N, ...); integer images are cast to the model dtype batch by
                batch, and integer ids (N, T) stay integers when the first layer
                takes ids (Embedding: ``cnnumpy.validation.cast_inputs``).
            y: class ids (N,), one-hot (N, K) or regression targets. Bool labels
                are read as 0/1 integers (False is 0, True is 1): class ids 0 and 1
                for cross-entropy, targets 0 and 1 for binary cross-entropy.
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
    def predict(self, x, batch_size: int = 256) -> np.ndarray:
        """Outputs for ``x`` in batches (probabilities for a classifier).

        The batches keep memory bounded.
        """
        x = check_model_inputs(self, x, "predict")
        self._require_built(x)
        check_batch_size(batch_size, "predict")
        out = None
        for lo in range(0, len(x), batch_size):
            xb = cast_inputs(self, x[lo : lo + batch_size])
            raw = self._infer(xb)
            scores = self.loss.to_probabilities(raw) if self.loss is not None else raw
            if out is None:
                out = np.empty((len(x), *scores.shape[1:]), dtype=scores.dtype)
            out[lo : lo + len(scores)] = scores
        return out

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
        inner = ",\n".join(f"    {layer!r}" for layer in self.layers)
        return f"Sequential([\n{inner}\n], input_shape={self.input_shape})"

