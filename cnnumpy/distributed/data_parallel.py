"""Data-parallel training over MPI ranks: each rank a replica of the model.

``fit(..., distributed=True)``, or any ``fit`` of a program that ``mpiexec -n N``
started (:func:`cnnumpy.distributed.mpi.launched`), runs the same training loop on
every rank: the same global shuffle from the seed, the same batches, augmented the
same way. :class:`DataParallel`, attached to the model's executor for the run, then
splits every batch:

1. rank ``r`` takes rows ``lo:hi`` of the batch (:func:`rows`: the sizes of
   :func:`~cnnumpy.distributed.limits.split_sizes`, the largest first, as the process
   replicas cut a batch) and runs forward, loss and backward on them, BatchNorm
   summing its statistics over the ranks and Dropout keeping its rows of the whole
   batch's mask (:mod:`cnnumpy.sync`);
2. it writes into ONE contiguous buffer its gradients and its mean loss, each times
   its share ``(hi - lo) / n`` of the batch, and its outputs into their rows (zeros
   elsewhere); one in-place ``Allreduce`` sums the buffer over the ranks: the
   gradient of the whole batch's mean loss, its loss, and every row's outputs (for
   the metrics), the same on every rank;
3. every rank makes the same optimiser step with that gradient.

So the weights stay equal on every rank, and equal to one process training on the
whole batch, up to float rounding. A batch too small to give every rank
:data:`~cnnumpy.distributed.limits.MIN_SLICE` examples (the last one of an epoch, say)
is not split: every rank runs it whole, which gives the same numbers. (The process
replicas would split it over fewer processes; idle ranks would need a communicator
of their own for BatchNorm's sums.) Inference (the validation after each epoch) is
split the same way, its outputs summed into their rows.

At the start (:meth:`DataParallel.synchronise`), rank 0's weights and random
generators (Dropout's, and ``fit``'s, which shuffles and augments) are broadcast, so
a program that did not seed its model trains in step too; and for ``resume_from``,
rank 0 alone holds and writes the checkpoint folder, the other ranks resume from the
bytes of its checkpoint file (:func:`resume_backup`): no shared file system needed.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from cnnumpy import engine, sync
from cnnumpy.distributed import limits
from cnnumpy.distributed.communicator import (
    Communicator,
    broadcast_bytes,
    broadcast_json,
)
from cnnumpy.distributed.mirror import grad_arrays, weight_arrays
from cnnumpy.engine.kernels import threads
from cnnumpy.layers import Dropout
from cnnumpy.rng import generator_from_state, generator_state
from cnnumpy.saving.backup import Backup

__all__ = ["DataParallel", "RankBackup", "resume_backup", "rows"]


def rows(n: int, comm: Communicator) -> tuple[int, int]:
    """The rows ``lo:hi`` of a batch of ``n`` that rank ``comm.rank`` trains on."""
    sizes = limits.split_sizes(n, comm.size)
    lo = sum(sizes[: comm.rank])
    return lo, lo + sizes[comm.rank]


class DataParallel:
    """The executor's group for a run over MPI ranks (module docstring): it splits
    every batch of at least ``MIN_SLICE`` examples per rank, while attached (a
    ``with`` block)."""

    def __init__(self, model, comm: Communicator) -> None:
        if model.n_inputs != 1 or model.multiple_outputs:
            raise ValueError(
                "fit: distributed training splits models of one input and one "
                f"output; this one has {model.n_inputs} input(s) and "
                f"{len(model.output_ids)} output(s)"
            )
        if model.executor.replicas is not None:
            raise ValueError(
                "fit: distributed training and use_processes do not mix; call "
                "model.use_processes(1) first (each MPI rank is one process)"
            )
        self.comm = comm
        self._model = weakref.ref(model)
        self.dtype = np.dtype(model.dtype)
        self._data = np.empty(0, dtype=self.dtype)  # the buffer summed each step
        # the ranks of one machine share its cores: no helper threads if they would
        # outnumber them (cf. threads.solo)
        local = getattr(comm, "local_size", comm.size)
        self.solo = local * threads.WORKERS > limits.available_cores()

    def __enter__(self) -> DataParallel:
        self._model().executor.replicas = self
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Detach from the model: its batches run whole again (idempotent)."""
        model = self._model()
        if model is not None and model.executor.replicas is self:
            model.executor.replicas = None

    # -- per batch ---------------------------------------------------------------------
    def splits(self, n: int) -> bool:
        """Whether a batch of ``n`` is split: every rank gets ``MIN_SLICE`` examples,
        and the engine is on (``engine.off()`` runs the book's code, whole, on every
        rank)."""
        size = self.comm.size
        return engine.enabled() and size > 1 and n >= size * limits.MIN_SLICE

    def _cores(self):
        return threads.solo() if self.solo else contextlib.nullcontext()

    def _buffer(self, size: int) -> np.ndarray:
        """The first ``size`` values of the step's buffer (grown when too small)."""
        if self._data.size < size:
            self._data = np.empty(size, dtype=self.dtype)
        return self._data[:size]

    def _with_outputs(self, start: int, n: int, lo: int, out: np.ndarray):
        """The buffer of ``start`` values, then ``n`` rows of outputs holding ``out``
        in rows ``lo:`` and zeros elsewhere: ``(buffer, the outputs' view)``."""
        row = out.shape[1:]
        buffer = self._buffer(start + n * math.prod(row))
        outs = buffer[start:].reshape(n, *row)
        outs[:lo] = 0
        outs[lo : lo + len(out)] = out
        outs[lo + len(out) :] = 0
        return buffer, outs

    def train_step(self, model, x: np.ndarray, y) -> tuple[float, np.ndarray]:
        """One training step of the batch ``(x, y)`` over the ranks (module
        docstring): ``(mean loss, outputs)`` of the whole batch, on every rank."""
        n = len(x)
        lo, hi = rows(n, self.comm)
        part = sync.Slice(lo, hi, n, self.comm)
        with self._cores(), sync.training_slice(part):
            loss, out = model.executor.gradients(x[lo:hi], y[lo:hi])
        share = part.share
        # in the same order on every rank
        grads = [layer.grads[key] for layer, key in grad_arrays(model)]
        start = 1 + sum(g.size for g in grads)
        buffer, outs = self._with_outputs(start, n, lo, out)
        buffer[0] = loss * share
        at = 1
        for g in grads:
            np.multiply(g, share, out=buffer[at : at + g.size].reshape(g.shape))
            at += g.size
        self.comm.allreduce(buffer)  # gradients, loss and outputs of the batch
        at = 1
        for g in grads:
            g[...] = buffer[at : at + g.size].reshape(g.shape)
            at += g.size
        model.optimizer.step(model.layers)
        return float(buffer[0]), outs.copy()

    def forward(self, model, x: np.ndarray) -> np.ndarray:
        """Inference outputs of ``x``: each rank its rows, summed into place."""
        lo, hi = rows(len(x), self.comm)
        with self._cores():
            out = model.executor.fused_forward(x[lo:hi])
        buffer, outs = self._with_outputs(0, len(x), lo, out)
        self.comm.allreduce(buffer)
        return outs.copy()

    # -- the start of a run ------------------------------------------------------------
    def synchronise(self, rng: np.random.Generator) -> np.random.Generator:
        """Rank 0's weights and states, its layers' random generators, and its
        ``fit`` generator ``rng`` on every rank; returns the ``fit`` generator to use.
        """
        model = self._model()
        for a in weight_arrays(model):
            block = np.ascontiguousarray(a)
            self.comm.broadcast(block)
            if block is not a:
                a[...] = block
        # Dropout alone draws in training (a generator is spawned now if need be,
        # on every rank, as its first mask would have spawned it)
        layers = {
            str(i): generator_state(layer.rng)
            for i, layer in enumerate(model.layers)
            if isinstance(layer, Dropout) and layer.rate > 0
        }
        states = broadcast_json(self.comm, {"fit": generator_state(rng), **layers})
        if self.comm.rank == 0:
            return rng
        for i, layer in enumerate(model.layers):
            if str(i) in states:
                layer.rng = generator_from_state(states[str(i)])
        return generator_from_state(states["fit"])


class RankBackup(Backup):
    """The :class:`~cnnumpy.saving.backup.Backup` of ``fit(resume_from=folder)`` on a
    rank other than 0: it restores from ``data``, the bytes of rank 0's checkpoint
    (empty: nothing to resume), through a private copy that exists only while it is
    read (a rank killed later leaves nothing behind), and writes nothing. Rank 0
    holds ``folder``: this one neither locks nor writes it."""

    def __init__(self, data: bytes, folder, model, callbacks, rng, run: dict) -> None:
        super().__init__(folder, model, callbacks, rng, run, write=False)
        self.data = data

    def __enter__(self) -> RankBackup:
        return self  # no lock: the folder is rank 0's

    def __exit__(self, *exc) -> None:
        return None

    def restore(self, epochs: int) -> int:
        if not self.data:
            return 0
        real = self.path
        with tempfile.TemporaryDirectory(prefix="cnnumpy-rank-") as private:
            self.path = Path(private) / self.FILENAME
            self.path.write_bytes(self.data)
            try:
                return super().restore(epochs)
            finally:
                self.path = real


@contextlib.contextmanager
def resume_backup(
    folder, model, callbacks, rng, run: dict, comm: Communicator
) -> Iterator[Backup]:
    """The Backup of ``fit(resume_from=folder)`` on this rank. Rank 0 holds ``folder``
    (its lock) and writes the checkpoints, and sends the bytes of the checkpoint it
    resumes from to the other ranks (:class:`RankBackup`)."""
    if comm.rank == 0:
        with Backup(folder, model, callbacks, rng, run) as backup:
            path = backup.path
            broadcast_bytes(comm, path.read_bytes() if path.exists() else b"")
            yield backup
    else:
        data = broadcast_bytes(comm, None)
        yield RankBackup(data, folder, model, callbacks, rng, run)
