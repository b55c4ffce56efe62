"""What every model can do with its layers: compile, fit, evaluate, predict.

:class:`~cnnumpy.model.Model` (a graph, and so :class:`~cnnumpy.sequential.Sequential`)
gets these methods from :class:`Trainer`, as Keras 3's ``Model`` gets them from its
``Trainer``: the structure of a network (its layers, how they connect, its passes)
stays in ``model.py``, and what training adds on top of it here. One training step is
the notes' loop: ``forward``, the loss, ``backward``, one optimiser update.
"""

from __future__ import annotations

import numpy as np

from cnnumpy import engine, training
from cnnumpy import losses as losses_module
from cnnumpy import metrics as metrics_module
from cnnumpy import optimizers as optimizers_module
from cnnumpy.callbacks import History
from cnnumpy.distributed import replicas
from cnnumpy.validation import (
    cast_inputs,
    check_batch_size,
    check_data,
    check_model_inputs,
)


class Trainer:
    """compile / fit / evaluate / predict / train_on_batch for a model that has
    ``layers``, ``forward``, ``backward``, an ``executor`` and its outputs'
    structure (``multiple_outputs``, ``output_ids``, ``n_inputs``)."""

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
        optimizer = optimizers_module.get(optimizer)
        if not self.multiple_outputs:
            if loss_weights is not None:
                raise ValueError(
                    "compile: loss_weights is for models of several outputs"
                )
            loss = losses_module.get(loss)
        elif not isinstance(loss, losses_module.PerOutput):
            n = len(self.output_ids)
            each = list(loss) if isinstance(loss, (list, tuple)) else [loss] * n
            if len(each) != n:
                raise ValueError(
                    f"compile: expected {n} losses (one per output), got {len(each)}"
                )
            loss = losses_module.PerOutput(each, loss_weights)
        elif loss_weights is not None:
            raise ValueError("compile: give a PerOutput its weights, not loss_weights")
        self.check_loss(loss, "compile")
        self.optimizer, self.loss = optimizer, loss
        self.metrics = self.metric_functions(metrics)

    def check_loss(self, loss, where: str) -> None:
        """A ValueError unless ``loss`` fits the outputs: a PerOutput of one loss per
        output for a model of several, any other loss for a model of one."""
        several = isinstance(loss, losses_module.PerOutput)
        n = len(self.output_ids)
        if several != self.multiple_outputs or (several and len(loss.losses) != n):
            got = f"{len(loss.losses)} losses" if several else repr(loss)
            raise ValueError(
                f"{where}: the model has {n} output(s); expected "
                + ("one loss per output" if n > 1 else "one loss")
                + f", got {got}"
            )

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
        distributed: bool | None = None,
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
            distributed: train data-parallel over the MPI ranks of a program started
                by ``mpiexec -n N`` (or ``srun``): every rank runs this ``fit``, takes
                its share of every batch, and the ranks average their gradients, with
                the weights of one process training on the whole batch. None (the
                default) detects MPI from the launcher's environment; True forces
                it, False never. Rank 0 alone prints and writes ``resume_from``; a
                rank that raises stops every rank. See
                :mod:`cnnumpy.distributed.data_parallel` and ``docs/distributed.md``.

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
            distributed=distributed,
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
