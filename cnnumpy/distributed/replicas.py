"""Process replicas: the caller's group, which splits each batch over processes.

:func:`use_processes` (``Sequential.use_processes``) attaches a :class:`Replicas` group
to a model; the model's executor then hands it every batch that can be split.
Why processes, how one step runs, and what goes wrong: :mod:`cnnumpy.distributed`.
The group is also the caller's side of the communicator BatchNorm uses mid-step
(:class:`~cnnumpy.distributed.communicator.Communicator`, rank 0; each replica's side
is :class:`~cnnumpy.distributed.worker.Worker`).
"""

from __future__ import annotations

import contextlib
import time
import weakref

import numpy as np

from cnnumpy import engine, sync
from cnnumpy.distributed import limits
from cnnumpy.distributed.communicator import Communicator, check_buffer

# re-exported: the command line and the tests use them from here
from cnnumpy.distributed.limits import (
    MIN_SLICE,
    SLOW_FACTOR,
    check_processes,
    most_processes,
    split_sizes,
)
from cnnumpy.distributed.mirror import SharedWeights, check_replicable, step_state
from cnnumpy.distributed.process import ReplicaError, ReplicaProcess, lost
from cnnumpy.engine.kernels import threads
from cnnumpy.layers import BatchNorm, Dropout

__all__ = [
    "MIN_SLICE",
    "SLOW_FACTOR",
    "ReplicaError",
    "Replicas",
    "check_processes",
    "most_processes",
    "split_sizes",
    "use_processes",
]


class Replicas(Communicator):
    """``processes - 1`` replica processes of ``model``; see :mod:`cnnumpy.distributed`.

    Use through :func:`use_processes` (or ``Sequential.use_processes``), which
    attaches the replicas to the model: ``train_on_batch``, ``fit``, ``predict`` and
    ``evaluate`` then split their batches. ``close()`` (or the end of a ``with``
    block) stops the replicas. ``timeout``: seconds a replica may stay silent in a step
    (None: ``$CNNUMPY_REPLICA_TIMEOUT``, else :data:`STEP_TIMEOUT`), or
    :data:`SLOW_FACTOR` times the slowest step seen (or this step's time so far) if
    that is longer.

    As a :class:`~cnnumpy.distributed.communicator.Communicator` it is rank 0 of the
    processes that share the current batch (``size``: this one and the replicas
    given a slice of it).
    """

    rank = 0

    def __init__(self, model, processes: int, timeout: float | None = None) -> None:
        check_replicable(model)  # built, on POSIX, cnnumpy's own layers
        self.timeout = limits.silence_timeout(timeout)
        self.slowest_step = 0.0  # seconds, of the steps that went well
        self._step_start = 0.0  # time.monotonic() at the start of the last step
        self._model = weakref.ref(model)  # the replicas never keep a model alive
        self.processes = processes
        self.dtype = np.dtype(model.dtype)
        # BatchNorm adds its sums up over the processes mid-step (cnnumpy.sync); Dropout
        # draws the whole batch's mask from a generator the replicas get the state of
        self._batchnorms = [
            i for i, layer in enumerate(model.layers) if isinstance(layer, BatchNorm)
        ]
        self._allreduces = bool(self._batchnorms)
        self._dropouts = [
            i for i, layer in enumerate(model.layers) if isinstance(layer, Dropout)
        ]
        self._children: list[ReplicaProcess] = []
        self._active: list[ReplicaProcess] = []  # those given a slice of this batch
        self.closed = False
        self._weights = SharedWeights(model)
        try:
            self._start(model.get_config())
        except BaseException:
            self.close()
            raise
        finally:
            self._weights.block.release()  # each replica has its descriptor, or is gone

    @property
    def model(self):
        return self._model()

    @property
    def size(self) -> int:
        """The processes that share the current batch: this one and its replicas."""
        return len(self._active) + 1

    def _start(self, config: dict) -> None:
        """Start the replicas (all at once: their imports overlap), then set them up."""
        for _ in range(self.processes - 1):
            self._children.append(ReplicaProcess.spawn())
        weights = self._weights
        setup = {
            "op": "setup",
            "config": config,  # the replica builds the model from it
            "weights": weights.block.nbytes,  # its descriptor follows the message
            "w_offsets": weights.w_offsets,
            "g_offsets": weights.g_offsets,
        }
        for child in self._children:
            child.tell(setup, weights.block)
        for child in self._children:
            child.reply(limits.START_TIMEOUT, "while starting")

    # -- per batch ---------------------------------------------------------------------
    def _parts(self, n: int) -> int:
        """How many processes a batch of ``n`` is split over: each gets MIN_SLICE."""
        return min(self.processes, n // limits.MIN_SLICE)

    def splits(self, n: int) -> bool:
        """Whether a batch of ``n`` is split: at least two processes get MIN_SLICE,
        and the engine is on (``engine.off()`` runs the book's code alone, here)."""
        return not self.closed and engine.enabled() and self._parts(n) >= 2

    def silence_limit(self) -> float:
        """Seconds a replica may stay silent in a step (see the class docstring)."""
        return max(self.timeout, limits.SLOW_FACTOR * self.slowest_step)

    def _wait_limit(self) -> float:
        """:meth:`silence_limit`, or SLOW_FACTOR times this step's time so far if
        longer: the caller ran a slice as big, so a big model's first step (no step
        seen yet) is not taken for a stuck replica."""
        elapsed = time.monotonic() - self._step_start
        return max(self.silence_limit(), limits.SLOW_FACTOR * elapsed)

    def _run(self, op: str, x: np.ndarray, y, own, info=None) -> tuple[list, list]:
        """Send the replicas their slices (with ``info``, for training), run
        ``own(x0, y0)`` here, gather the replies: ``(results, [sizes, outputs])``."""
        self._step_start = start = time.monotonic()
        sizes = limits.split_sizes(len(x), self._parts(len(x)))
        cuts = [sum(sizes[:k]) for k in range(len(sizes) + 1)]
        out_row = list(self.model.output_shape)
        self._weights.publish(self.model)
        self._active = self._children[: len(sizes) - 1]
        sent = []
        try:
            for k, child in enumerate(self._active, start=1):
                lo, hi = cuts[k], cuts[k + 1]
                message = self._send_slice(child, op, x, y, (lo, hi, k), out_row, info)
                sent.append((child, message))
            try:
                mine = own(x[: cuts[1]], None if y is None else y[: cuts[1]])
            except BaseException:
                if op == "train" and self._allreduces and not self.closed:
                    self.close()  # replicas may wait in an allreduce we never reach
                raise
        finally:
            replies = self._gather([child for child, _message in sent])
        self.slowest_step = max(self.slowest_step, time.monotonic() - start)
        outs = [mine[1]]
        for child, message in sent:
            at, shape, dtype = message["out"]
            outs.append(child.block.array(at, shape, dtype))
        return [mine, *replies], [sizes, outs]

    def _send_slice(self, child, op, x, y, rows, out_row, info) -> dict:
        """Copy rows ``lo:hi`` into ``child``'s block and send it the step (``rows``:
        ``(lo, hi, rank)``, the replica's rank among the processes of this batch)."""
        lo, hi, rank = rows
        part_x, part_y = x[lo:hi], None if y is None else y[lo:hi]
        try:  # any failure here leaves a replica out of step: close
            start = self._weights.g_bytes  # the replica's gradients come first
            message = child.load(part_x, part_y, out_row, self.dtype, start)
            if op == "train":
                message.update(info, lo=lo, total=len(x), rank=rank, size=self.size)
            fresh = child.block if "block" in message else None
            child.tell({"op": op, **message}, fresh)
            child.block.release()  # the replica has its descriptor
        except BaseException:  # e.g. Ctrl-C half-way through a message
            self.close()
            raise
        return message

    def _gather(self, children: list[ReplicaProcess]) -> list[dict]:
        """The replies of ``children`` to this step (none once the group is closed)."""
        try:
            limit = self._wait_limit()
            return [child.reply(limit) for child in ([] if self.closed else children)]
        except BaseException:
            self.close()  # a reply left unread: the pipes are out of step
            raise

    def train_step(self, model, x: np.ndarray, y) -> tuple[float, np.ndarray]:
        """One training step split over the processes: ``(mean loss, outputs)``."""
        info = step_state(model, self._dropouts, self._batchnorms)

        def own(x0, y0):
            part = sync.Slice(0, len(x0), len(x), self)
            with threads.solo(), sync.training_slice(part):
                return model.executor.gradients(x0, y0)

        results, (sizes, outs) = self._run("train", x, y, own, info)
        n = len(x)
        loss = sum(
            size * (r[0] if k == 0 else r["loss"])
            for k, (size, r) in enumerate(zip(sizes, results, strict=True))
        )
        self._weights.add_gradients(sizes[0] / n, [c.block for c in self._active])
        model.optimizer.step(model.layers)
        return loss / n, np.concatenate(outs)

    # -- the communicator, mid-step (rank 0; a replica: worker.Worker) ---------------
    def allreduce(self, buffer: np.ndarray) -> None:
        """:meth:`Communicator.allreduce`: every active replica's part (read from its
        pipe, in a fixed order) added to ``buffer``, and the total sent back."""
        check_buffer(buffer, "allreduce")
        try:
            limit = self._wait_limit()
            parts = []
            for child in self._active:
                message = child.listen(limit, "mid-step")
                if "sum" not in message:
                    pid, error = child.pid, message.get("error")
                    raise lost(f"replica process {pid} failed mid-step", str(error))
                parts.append(message["sum"])
            for part in parts:
                buffer += np.asarray(part, dtype=buffer.dtype).reshape(buffer.shape)
            for child in self._active:
                # (it may die after sending its part: the same error)
                child.tell({"sum": buffer.tolist()}, when="mid-step")
        except BaseException:
            self.close()  # the pipes are out of step
            raise

    def broadcast(self, buffer: np.ndarray) -> None:
        """:meth:`Communicator.broadcast`: ``buffer`` sent to every active replica."""
        check_buffer(buffer, "broadcast")
        try:
            for child in self._active:
                child.tell({"data": buffer.tolist()}, when="mid-step")
        except BaseException:
            self.close()  # the pipes are out of step
            raise

    def forward(self, model, x: np.ndarray) -> np.ndarray:
        """Inference outputs of ``x``, split over the processes."""

        def own(x0, _y0):
            with threads.solo():
                return None, model.executor.fused_forward(x0)

        _results, (_sizes, outs) = self._run("forward", x, None, own)
        return np.concatenate(outs)

    # -- lifetime ----------------------------------------------------------------------
    def close(self) -> None:
        """Stop the replicas (idempotent)."""
        if self.closed:
            return
        self.closed = True
        for child in self._children:  # all see the end of their input at once
            child.hang_up()
        for child in self._children:
            child.wait_end()
        self._weights.block.release()
        model = self.model
        if model is not None and model.executor.replicas is self:
            model.executor.replicas = None

    def __enter__(self) -> Replicas:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def use_processes(
    model, processes: int | None, timeout: float | None = None
) -> Replicas | None:
    """Attach ``processes - 1`` replicas to ``model`` (``None``: one per core this
    process may use; more is a ValueError); 1 detaches them. ``timeout``: see
    :class:`Replicas`. Returns the :class:`Replicas` (a context manager) or None."""
    if processes is None:
        processes = limits.available_cores()
    try:
        processes = limits.check_processes(processes)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"use_processes: {exc}") from None
    old, model.executor.replicas = model.executor.replicas, None
    if old is not None:
        old.close()
    if processes == 1:
        return None
    group = Replicas(model, processes, timeout)
    model.executor.replicas = group  # the executor splits every batch from now on
    return group
