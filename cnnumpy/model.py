"""Sequential: layers composed into a network, trained by mini-batch gradient descent.

One training step is the notes' loop (seed 002, ``Network.fit``; seed 000, ``train``):
forward through every layer, loss, backward through every layer in reverse order, then
one optimiser update of every parameter from its gradient.
"""

from __future__ import annotations

import numpy as np

from cnnumpy import inference, replicas, training
from cnnumpy import losses as losses_module
from cnnumpy import metrics as metrics_module
from cnnumpy import optimizers as optimizers_module
from cnnumpy.callbacks import History
from cnnumpy.functional.parallel import blas_one_thread
from cnnumpy.layers.activations import LeakyReLU, ReLU
from cnnumpy.layers.base import Layer
from cnnumpy.layers.pooling import MaxPool1D, MaxPool2D
from cnnumpy.validation import check_batch_size, check_inputs, check_targets


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
        self._order: list[int] | None = None  # set by forward (see execution_order)
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

    def save(self, path, include_optimizer: bool = True) -> None:
        """Save the model to one safetensors file.

        The file holds architecture, weights, optimiser state and history.
        """
        from cnnumpy.io import save_model

        save_model(self, path, include_optimizer=include_optimizer)

    def summary(self, print_fn=print) -> str:
        from cnnumpy.summary import summary_text

        text = summary_text(self)
        if print_fn is not None:
            print_fn(text)
        return text

    # -- passes ------------------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Raw pass through all layers (logits for a classifier)."""
        self._require_built(x)
        out = x if x.dtype == self.dtype else x.astype(self.dtype)
        self._order = execution_order(self.layers)
        with blas_one_thread():  # the kernels run their own threads (parallel.py)
            for i in self._order:
                out = self.layers[i].forward(out, training=training)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """Reverse pass: fills every layer's grads, returns dL/dx.

        dL/dx is None if not needed.
        """
        order = self._order or range(len(self.layers))
        with blas_one_thread():
            for i in reversed(order):
                dout = self.layers[i].backward(dout)
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

    def _require_compiled(self, where: str) -> None:
        if self.loss is None or self.optimizer is None:
            raise ValueError(
                f"{where}: call model.compile(optimizer=..., loss=...) first"
            )

    def _local_gradients(self, xb: np.ndarray, yb) -> tuple[float, np.ndarray]:
        """Forward, loss and backward on one batch, in this process, no update:
        ``(loss, raw outputs)``, every layer's ``grads`` filled."""
        with blas_one_thread():  # one hold for the whole step, not one per pass
            out = self.forward(xb, training=True)
            loss = float(self.loss(out, yb))
            first = self.layers[0]
            first.need_input_grad = False  # a training step needs no dL/dx of the input
            try:
                self.backward(self.loss.backward())
            finally:
                first.need_input_grad = True
        return loss, out

    def _step(self, xb: np.ndarray, yb: np.ndarray) -> tuple[float, np.ndarray]:
        group = replicas.group_of(self)
        with blas_one_thread():
            if group is not None and group.splits(len(xb)):
                return group.train_step(self, xb, yb)  # updates once, here
            loss, out = self._local_gradients(xb, yb)
            self.optimizer.step(self.layers)
        return loss, out

    def _infer(self, xb: np.ndarray) -> np.ndarray:
        """Raw inference outputs of one batch, split over the processes if any."""
        group = replicas.group_of(self)
        with blas_one_thread():
            if group is not None and group.splits(len(xb)):
                return group.forward(self, xb)
            return self._fused_forward(xb)

    def _fused_forward(self, xb: np.ndarray) -> np.ndarray:
        """``forward(xb)`` in inference with BatchNorm folded into the convolutions
        and activations run inside them (:mod:`cnnumpy.inference`): what ``predict``
        and ``evaluate`` use, equal to ``forward`` up to float rounding."""
        self._require_built(xb)
        xb = xb if xb.dtype == self.dtype else xb.astype(self.dtype)
        with blas_one_thread():
            return inference.forward(self.layers, execution_order(self.layers), xb)

    def use_processes(
        self, processes: int | None = None, timeout: float | None = None
    ):
        """Split every batch over ``processes`` processes (``None``: one per core).

        This process computes one slice and ``processes - 1`` replica processes the
        others (see :mod:`cnnumpy.replicas` for why processes and how). Returns the
        :class:`~cnnumpy.replicas.Replicas`, a context manager that stops them;
        ``use_processes(1)`` stops them too. BatchNorm's statistics are those of the
        whole batch and Dropout's masks those one process would draw
        (:mod:`cnnumpy.sync`). ``timeout``: seconds a replica may stay silent before
        it counts as dead (default ``CNNUMPY_REPLICA_TIMEOUT``, else 60; longer steps
        get 50 times the slowest one). More processes than cores is a ValueError.
        """
        self._require_built()
        return replicas.use_processes(self, processes, timeout)

    def train_on_batch(self, x: np.ndarray, y: np.ndarray) -> float:
        """One forward, backward and optimiser step on one batch; returns the loss."""
        self._require_compiled("train_on_batch")
        x, y = self._check_data(x, y, "train_on_batch")
        return self._step(x.astype(self.dtype, copy=False), y)[0]

    def _check_data(self, x, y, where: str):
        """Checked inputs and labels; bool labels become 0/1 integers (see fit)."""
        x = check_inputs(x, self.input_shape, where, dtype=self.dtype)
        self._require_built(x)
        if y is not None:
            y = check_targets(
                _bools_as_ints(y),  # first, so that errors show 0 and 1
                len(x),
                self.output_shape,
                self.loss.name,
                where,
                dtype=self.dtype,
            )
            y = _bools_as_ints(y)  # a list of bools is an array only now
        return x, y

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
                batch.
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
            resume_from: a folder for backup and restore. After every epoch the model,
                the optimiser state, the history and the state of every random generator
                are saved there atomically; a later ``fit`` with the same folder (after
                a crash, a kill, or to continue) starts after the last completed epoch
                and ends with the same weights, bit for bit, as an uninterrupted run
                with the same seed. Only one ``fit`` at a time may use the folder (a
                lock that dies with its process). A resume continues the *same* run,
                so it is refused with a ``ValueError`` (before anything is loaded)
                when the training or validation data differ (sizes, shapes, or a hash
                of the targets and of 16 sampled examples), when ``batch_size``
                differs, when the compiled optimiser differs in class or config (its
                ``lr`` may be the compiled one or the one the run had reached), or
                when ``epochs`` is below the epochs already completed (equal: nothing
                to train). The checkpoint's optimiser state is loaded into the
                compiled optimiser object. To go on differently, ``load_model`` the
                checkpoint, compile it and fit it with a new folder.

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
            epochs,
            batch_size,
            shuffle,
            validation_data,
            validation_split,
            callbacks,
            verbose,
            seed,
            augment,
            resume_from,
        )

    # -- inference ---------------------------------------------------------------------
    def predict(self, x, batch_size: int = 256) -> np.ndarray:
        """Outputs for ``x`` in batches (probabilities for a classifier).

        The batches keep memory bounded.
        """
        x = check_inputs(x, self.input_shape, "predict", dtype=self.dtype)
        self._require_built(x)
        check_batch_size(batch_size, "predict")
        out = None
        for lo in range(0, len(x), batch_size):
            raw = self._infer(x[lo : lo + batch_size].astype(self.dtype, copy=False))
            scores = self.loss.to_probabilities(raw) if self.loss is not None else raw
            if out is None:
                out = np.empty((len(x), *scores.shape[1:]), dtype=scores.dtype)
            out[lo : lo + len(scores)] = scores
        return out

    def evaluate(self, x, y, batch_size: int = 256) -> dict[str, float]:
        """Mean loss and metrics over (x, y), computed in batches."""
        self._require_compiled("evaluate")
        x, y = self._check_data(x, y, "evaluate")
        check_batch_size(batch_size, "evaluate")
        totals = {"loss": 0.0, **{name: 0.0 for name in self.metrics}}
        for lo in range(0, len(x), batch_size):
            xb, yb = (
                x[lo : lo + batch_size].astype(self.dtype, copy=False),
                y[lo : lo + batch_size],
            )
            raw = self._infer(xb)
            totals["loss"] += float(self.loss(raw, yb)) * len(xb)
            scores = self.loss.to_probabilities(raw)
            for name, fn in self.metrics.items():
                totals[name] += fn(yb, scores) * len(xb)
        return {k: v / len(x) for k, v in totals.items()}

    def __repr__(self) -> str:
        inner = ",\n".join(f"    {layer!r}" for layer in self.layers)
        return f"Sequential([\n{inner}\n], input_shape={self.input_shape})"


def _bools_as_ints(y):
    """Bool labels as int64 0/1, what every loss reads them as (``int(True) == 1``).

    Without this, cross-entropy would refuse bool class ids at the first batch; the
    other losses cast bools to 0.0/1.0 anyway. Anything else is returned unchanged.
    """
    if isinstance(y, np.ndarray) and y.dtype == np.bool_:
        return y.astype(np.int64)
    return y


def execution_order(layers: list[Layer]) -> list[int]:
    """The order in which ``forward`` runs the layers (``backward`` runs it reversed).

    A max-pool that directly follows a ReLU or a LeakyReLU (alpha >= 0) runs before it:
    for a non-decreasing f, max(f(x_1), ..., f(x_k)) = f(max(x_1, ..., x_k)), so the
    output is the same, and so are the gradients (the pool routes each window's
    gradient to its first maximum, which f does not move; where f flattens a tie, its
    derivative there is 0 on either side). The activation then touches KH*KW times
    fewer values: a quarter for 2x2 pooling. The first layer is never moved (it
    returns no input gradient).
    """
    order = list(range(len(layers)))
    for i in range(1, len(layers) - 1):
        act, pool = layers[i], layers[i + 1]
        monotone = isinstance(act, ReLU) or (
            isinstance(act, LeakyReLU) and act.alpha >= 0
        )
        if monotone and isinstance(pool, (MaxPool1D, MaxPool2D)) and order[i] == i:
            order[i], order[i + 1] = i + 1, i
    return order
