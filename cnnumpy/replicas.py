"""Data parallelism over processes: each process runs one slice of every batch.

Why processes and not more threads: the kernels' threads (``functional/threads.py``)
need Python's GIL between two NumPy calls. Measured on this project's 2-core virtual
machine, two threads each copying 200 KB at a time ran 2x SLOWER together than one
alone (each hand-over of the GIL costs tens of microseconds); only calls of several MB
ran side by side at full speed. A small network (LeNet-5 at batch 64) is hundreds of
short NumPy calls, so its step was no faster on two threads than on one. Two
processes have a GIL each: LeNet-5 at batch 32 in each of two processes ran a step in
6.4-7.2 ms, against 10-12 ms for batch 64 in one process with threads.

How one training step runs with ``P`` processes (the caller and ``P - 1`` replicas):

1. the caller copies the weights into a shared block, and each replica's slice of the
   batch (inputs and targets) into that replica's own shared block;
2. every process runs forward, loss and backward on its slice (the caller included),
   each on one core: the caller's kernels run without helper threads meanwhile;
3. each replica writes its gradients and outputs into its block; the caller adds them
   up, weighted by slice size, so that the result is the gradient of the loss's mean
   over the whole batch (the same as one process computes, up to float rounding);
4. the caller's optimiser updates the weights, once.

Inference (``predict``, ``evaluate``) splits the batch the same way. Two layers depend
on the whole batch in training (:mod:`cnnumpy.sync`): BatchNorm adds its per-channel
sums up over the processes mid-step (each replica sends its part through its pipe and
waits for the total: two exchanges in the forward pass, one in the backward), and
Dropout draws the whole batch's mask in every process from a generator whose state the
caller sends with the step, each keeping its own rows. So a model with either trains
split too, with the numbers of one process up to float rounding. Replicas are plain
``python -c`` processes (:data:`_ENTRY`) (never ``multiprocessing``, which would re-run
an unguarded user script), rebuilt from the model's config, so only cnnumpy's own
layers can be replicated.

Each replica talks to the caller through a socket (commands, and the descriptors of the
shared memory) and a pipe (answers). The shared memory is a file with no name
(``memfd_create``; elsewhere a temporary file unlinked the moment it is made), mapped by
both sides and handed over by descriptor, never by path: whenever either side is killed,
no file is left behind. What goes wrong becomes a :class:`ReplicaError` naming the
replica's pid, after which the group is closed and the model runs alone:

- a replica that dies (its pipe ends);
- a replica that stays silent (stopped by SIGSTOP, stuck) longer than
  ``max(timeout, SLOW_FACTOR x the slowest step seen, SLOW_FACTOR x this step's time
  so far)`` (the caller runs a slice as big meanwhile); ``timeout`` is
  :data:`STEP_TIMEOUT` unless ``use_processes(timeout=)`` or the environment variable
  ``CNNUMPY_REPLICA_TIMEOUT`` sets it. The silent replica is killed (SIGKILL stops a
  stopped process too).

How many processes: at most one per core this process may run on (more would only
take turns on the same cores), refused with a ``ValueError`` above that. A batch of
``n`` is split over ``min(processes, n // MIN_SLICE)`` processes, so a small batch
(the last one of an epoch, say) still uses the replicas it can feed; the command line,
which knows its batch size, refuses ``--processes`` above ``batch_size // MIN_SLICE``,
since the replicas beyond would never train.
"""

from __future__ import annotations

import contextlib
import json
import math
import mmap
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import weakref

import numpy as np

from cnnumpy import engine, sync
from cnnumpy.functional import threads
from cnnumpy.rng import generator_from_state, generator_state

__all__ = ["ReplicaError", "Replicas", "use_processes"]

START_TIMEOUT = 120.0  # seconds for a replica to import cnnumpy and build the model
# A replica may stay silent in a step for STEP_TIMEOUT seconds, or SLOW_FACTOR times the
# slowest step seen if longer: a big model on a busy machine is slow, not stuck
STEP_TIMEOUT = 60.0
SLOW_FACTOR = 50
TIMEOUT_VARIABLE = "CNNUMPY_REPLICA_TIMEOUT"  # seconds, in place of STEP_TIMEOUT
MIN_SLICE = 8  # a batch is split only when every process gets at least this many
_GROUPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> Replicas


# "python -c" puts the working directory first on sys.path: drop it, so that a stray
# module there (a struct.py, an old cnnumpy/) is never imported by a replica
_ENTRY = (
    "import sys; del sys.path[0]; from cnnumpy.replicas import _serve; "
    "_serve(int(sys.argv[1]), int(sys.argv[2]))"
)


class ReplicaError(RuntimeError):
    """A replica process failed, died, stayed silent, or cannot replicate this model.

    ``reason``: what happened, in one line (the message may add a replica's traceback).
    """

    def __init__(self, reason: str, details: str = "") -> None:
        super().__init__(reason + (f"\n{details}" if details else ""))
        self.reason = reason


def _lost(reason: str, details: str = "") -> ReplicaError:
    """The error of a replica gone wrong: the caller closes the group, then raises."""
    error = ReplicaError(f"{reason}; the model runs alone from now on", details)
    error.reason = reason
    return error


class _Silent(Exception):
    """No whole message arrived before the deadline."""


# -- messages and shared memory --------------------------------------------------------
def _send(fd: int, message: dict) -> None:
    data = json.dumps(message).encode()
    view = memoryview(struct.pack("<Q", len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, n: int, deadline: float | None = None) -> bytes | None:
    parts, got = [], 0
    while got < n:
        if deadline is not None:  # time.monotonic() by which the bytes must come
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise _Silent
        chunk = os.read(fd, n - got)
        if not chunk:
            return None  # the other side closed its end (exited or died)
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _receive(fd: int, deadline: float | None = None) -> dict | None:
    """The next message, or None if the other side closed its end; raises
    :class:`_Silent` if it is not whole by ``deadline`` (``time.monotonic()``)."""
    head = _read_exact(fd, 8, deadline)
    if head is None:
        return None
    body = _read_exact(fd, struct.unpack("<Q", head)[0], deadline)
    return None if body is None else json.loads(body)


def _send_fd(sock: socket.socket, fd: int) -> None:
    """Hand ``fd`` to the other end of ``sock`` (SCM_RIGHTS), on one byte."""
    socket.send_fds(sock, [b"F"], [fd])


def _receive_fd(sock: socket.socket) -> int | None:
    """The descriptor :func:`_send_fd` sent, or None if the other side is gone."""
    data, fds, _flags, _address = socket.recv_fds(sock, 1, 1)
    return fds[0] if data and fds else None


def _nameless_file() -> tuple[int, str]:
    """A new file that no directory lists: ``(fd, the name it goes by)``.

    Linux: ``memfd_create``, a file that never has a name. Elsewhere (or where that call
    is refused): a temporary file unlinked at once; only a kill in the microseconds
    between the two calls could then leave it behind.
    """
    if hasattr(os, "memfd_create"):
        with contextlib.suppress(OSError):
            return os.memfd_create("cnnumpy", os.MFD_CLOEXEC), "memfd:cnnumpy"
    where = "/dev/shm" if os.path.isdir("/dev/shm") else None
    fd, path = tempfile.mkstemp(prefix="cnnumpy-", dir=where)
    os.unlink(path)
    return fd, path


class _Block:
    """Memory shared between processes: a nameless file (:func:`_nameless_file`),
    mapped by both. The caller makes it and keeps its descriptor until it has handed
    it to the replica (``release()`` then); the replica maps the descriptor it got.

    Nothing is ever left behind: the memory goes with the last process mapping it.
    """

    def __init__(self, nbytes: int, fd: int | None = None) -> None:
        self.nbytes = max(int(nbytes), 1)
        made = fd is None
        if made:
            fd, self.path = _nameless_file()
        else:
            self.path = f"fd {fd} from the caller"
        try:
            if made:  # reserve the pages now: a full memory is an OSError here,
                if hasattr(os, "posix_fallocate"):  # not a SIGBUS later
                    os.posix_fallocate(fd, 0, self.nbytes)
                else:
                    os.ftruncate(fd, self.nbytes)
            self.map = mmap.mmap(fd, self.nbytes)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd if made else None  # the mapping stays valid without it
        if not made:
            os.close(fd)

    def array(self, offset: int, shape, dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        count = math.prod(shape)
        return np.frombuffer(self.map, dtype, count, offset).reshape(shape)

    def release(self) -> None:
        """Close the descriptor (idempotent); the mapping stays."""
        fd, self.fd = getattr(self, "fd", None), None
        if fd is not None:
            os.close(fd)

    def __del__(self) -> None:
        self.release()


def _align(n: int) -> int:
    return -(-n // 64) * 64


def _weight_arrays(model) -> list[np.ndarray]:
    """Every parameter and state array, in a fixed order."""
    return [
        store[key]
        for layer in model.layers
        for store in (layer.params, layer.state)
        for key in sorted(store)
    ]


def _grad_arrays(model) -> list[tuple[object, str]]:
    return [(layer, key) for layer in model.layers for key in sorted(layer.params)]


def _layout(arrays, start: int = 0) -> tuple[list[int], int]:
    offsets, at = [], start
    for a in arrays:
        offsets.append(at)
        at = _align(at + a.nbytes)
    return offsets, at


def split_sizes(n: int, parts: int) -> list[int]:
    """``n`` cut into ``parts`` near-equal slice sizes, the largest first."""
    return [n // parts + (k < n % parts) for k in range(parts)]


# -- the caller's side -----------------------------------------------------------------
class Replicas:
    """``processes - 1`` replica processes of ``model``; see the module docstring.

    Use through :func:`use_processes` (or ``Sequential.use_processes``), which
    attaches the replicas to the model: ``train_on_batch``, ``fit``, ``predict`` and
    ``evaluate`` then split their batches. ``close()`` (or the end of a ``with``
    block) stops the replicas. ``timeout``: seconds a replica may stay silent in a step
    (None: ``$CNNUMPY_REPLICA_TIMEOUT``, else :data:`STEP_TIMEOUT`), or
    :data:`SLOW_FACTOR` times the slowest step seen (or this step's time so far) if
    that is longer.
    """

    def __init__(self, model, processes: int, timeout: float | None = None) -> None:
        from cnnumpy.io import model_payload
        from cnnumpy.layers import LAYERS, BatchNorm, Dropout

        if os.name != "posix":
            raise ReplicaError("process replicas need a POSIX system (Linux, macOS)")
        for i, layer in enumerate(model.layers):
            cls = type(layer)
            if LAYERS.get(cls.__name__) is not cls or not cls.__module__.startswith(
                "cnnumpy.layers."
            ):
                raise ReplicaError(
                    f"use_processes: layer {i} ({layer!r}) is not one of cnnumpy's "
                    "own layers; replicas rebuild the model from its config"
                )
        self.timeout = _silence_timeout(timeout)
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
        _tensors, meta = model_payload(model, include_optimizer=False)
        weights = _weight_arrays(model)
        self._w_shapes = [(a.shape, a.dtype) for a in weights]
        self._w_offsets, size = _layout(weights)
        self._grads = _grad_arrays(model)
        grads = [layer.params[key] for layer, key in self._grads]
        self._g_offsets, self._g_bytes = _layout(grads)
        self._children: list[dict] = []
        self._active: list[dict] = []  # the replicas given a slice of this batch
        self.closed = False
        self._w_block = _Block(size)
        try:
            self._start(meta["model"])
        except BaseException:
            self.close()
            raise
        finally:
            self._w_block.release()  # every replica has its descriptor (or is gone)

    @property
    def model(self):
        return self._model()

    def _start(self, meta: dict) -> None:
        """Start the replicas (all at once: their imports overlap), then set them up."""
        for _ in range(self.processes - 1):
            self._children.append(self._spawn())
        setup = {
            "op": "setup",
            "meta": meta,
            "weights": self._w_block.nbytes,  # its descriptor follows the message
            "w_offsets": self._w_offsets,
            "g_offsets": self._g_offsets,
        }
        for child in self._children:
            self._tell(child, setup, self._w_block)
        for child in self._children:
            self._reply(child, START_TIMEOUT, "while starting")

    def _spawn(self) -> dict:
        import cnnumpy

        env = dict(os.environ)
        root = os.path.dirname(os.path.dirname(os.path.abspath(cnnumpy.__file__)))
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (root, env.get("PYTHONPATH")) if p
        )
        # one core per process: no kernel threads and no BLAS threads in the replica
        env.update(CNNUMPY_THREADS="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        env.update(MKL_NUM_THREADS="1")
        # a step is split only with the engine on (splits()): BatchNorm and Dropout
        # must then run its kernels in the replica too, whatever CNNUMPY_ENGINE says
        env["CNNUMPY_ENGINE"] = "1"
        # commands (and descriptors) go through a socket, answers through a pipe
        cmd, cmd_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        reply, reply_child = os.pipe()
        fds = (cmd_child.fileno(), reply_child)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _ENTRY, *map(str, fds)],
                pass_fds=fds,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sys.stderr if _has_fileno(sys.stderr) else None,
            )
        except BaseException:
            cmd.close()
            os.close(reply)
            raise
        finally:
            cmd_child.close()
            os.close(reply_child)
        return {"proc": proc, "sock": cmd, "cmd": cmd.fileno(), "reply": reply}

    # -- talking to one replica ------------------------------------------------------
    def _tell(
        self, child: dict, message: dict, block: _Block | None = None, when: str = ""
    ) -> None:
        """Send ``message`` to a replica, then ``block``'s descriptor if given."""
        try:
            _send(child["cmd"], message)
            if block is not None:
                _send_fd(child["sock"], block.fd)
        except OSError:  # the replica's end is gone
            raise _lost(self._death(child, when)) from None

    def _listen(self, child: dict, limit: float, when: str) -> dict:
        """A replica's next message, waited for at most ``limit`` seconds."""
        start = time.monotonic()
        try:
            message = _receive(child["reply"], start + limit)
        except _Silent:
            child["silent"] = True  # close() kills it: a stopped process hears nothing
            waited = time.monotonic() - start
            hint = "" if when == "while starting" else f"; {TIMEOUT_VARIABLE} sets it"
            raise _lost(
                f"replica process {child['proc'].pid} sent nothing {when} for "
                f"{waited:.1f} s (limit {limit:g} s{hint}), killed"
            ) from None
        if message is None:
            raise _lost(self._death(child, when))
        return message

    def _reply(self, child: dict, limit: float, when: str = "in a step") -> dict:
        message = self._listen(child, limit, when)
        if not message.get("ok"):
            error = str(message.get("error") or "no error text").strip()
            raise _lost(
                f"replica process {child['proc'].pid} failed {when}: "
                f"{error.splitlines()[-1]}",
                error,
            )
        return message

    @staticmethod
    def _death(child: dict, when: str) -> str:
        proc = child["proc"]
        try:
            code = proc.wait(timeout=5)  # its pipe ended: it is exiting
        except subprocess.TimeoutExpired:
            how = "closed its pipe but still runs"
        else:
            how = f"exit code {code}"
            if code < 0:
                with contextlib.suppress(ValueError):
                    how = f"killed by {signal.Signals(-code).name}"
        when = f" {when}" if when else ""
        return f"replica process {proc.pid} died{when} ({how})"

    # -- per batch ---------------------------------------------------------------------
    def _parts(self, n: int) -> int:
        """How many processes a batch of ``n`` is split over: each gets MIN_SLICE."""
        return min(self.processes, n // MIN_SLICE)

    def splits(self, n: int) -> bool:
        """Whether a batch of ``n`` is split: at least two processes get MIN_SLICE,
        and the engine is on (``engine.off()`` runs the book's code alone, here)."""
        return not self.closed and engine.enabled() and self._parts(n) >= 2

    def silence_limit(self) -> float:
        """Seconds a replica may stay silent in a step (see the class docstring)."""
        return max(self.timeout, SLOW_FACTOR * self.slowest_step)

    def _wait_limit(self) -> float:
        """:meth:`silence_limit`, or SLOW_FACTOR times this step's time so far if
        longer: the caller ran a slice as big, so a big model's first step (no step
        seen yet) is not taken for a stuck replica."""
        elapsed = time.monotonic() - self._step_start
        return max(self.silence_limit(), SLOW_FACTOR * elapsed)

    def _publish_weights(self) -> None:
        weights = _weight_arrays(self.model)
        if [(a.shape, a.dtype) for a in weights] != self._w_shapes:
            raise ReplicaError(
                "the model's layers, shapes or dtype changed after use_processes; "
                "call model.use_processes again"
            )
        for a, offset in zip(weights, self._w_offsets, strict=True):
            self._w_block.array(offset, a.shape, a.dtype)[...] = a

    def _child_views(self, child: dict, n: int, x, y, out_row) -> dict:
        """Copy a slice into the replica's block (grown when too small)."""
        x_at = self._g_bytes
        y_at = _align(x_at + x.nbytes)
        out_at = _align(y_at + (0 if y is None else y.nbytes))
        need = out_at + n * math.prod(out_row) * self.dtype.itemsize
        grow = child.get("block") is None or child["block"].nbytes < need
        if grow:
            child["block"] = _Block(need * 5 // 4)
        block = child["block"]
        block.array(x_at, x.shape, x.dtype)[...] = x
        message = {
            "n": n,
            "x": [x_at, list(x.shape), x.dtype.str],
            "out": [out_at, [n, *out_row], self.dtype.str],
        }
        if y is not None:
            block.array(y_at, y.shape, y.dtype)[...] = y
            message["y"] = [y_at, list(y.shape), y.dtype.str]
        if grow:
            message["block"] = block.nbytes  # its descriptor follows the message
        return message

    def _run(self, op: str, x: np.ndarray, y, own) -> tuple[list, list]:
        """Send the replicas their slices, run ``own(x0, y0)`` here, gather replies."""
        self._step_start = start = time.monotonic()
        sizes = split_sizes(len(x), self._parts(len(x)))
        cuts = [sum(sizes[:k]) for k in range(len(sizes) + 1)]
        out_row = list(self.model.output_shape)
        self._publish_weights()
        self._active = self._children[: len(sizes) - 1]
        sent, replies = [], []
        try:
            for k, child in enumerate(self._active, start=1):
                lo, hi = cuts[k], cuts[k + 1]
                part_x, part_y = x[lo:hi], None if y is None else y[lo:hi]
                try:  # any failure here leaves a replica out of step: close
                    message = self._child_views(child, hi - lo, part_x, part_y, out_row)
                    if op == "train":
                        message.update(self._step_info, lo=lo, total=len(x))
                    fresh = child["block"] if "block" in message else None
                    self._tell(child, {"op": op, **message}, fresh)
                    child["block"].release()  # the replica has its descriptor
                except BaseException:  # e.g. Ctrl-C half-way through a message
                    self.close()
                    raise
                sent.append((child, message))
            try:
                mine = own(x[: cuts[1]], None if y is None else y[: cuts[1]])
            except BaseException:
                if op == "train" and self._allreduces and not self.closed:
                    self.close()  # replicas may wait in an allreduce we never reach
                raise
        finally:
            try:
                limit = self._wait_limit()
                for child, _message in [] if self.closed else sent:
                    replies.append(self._reply(child, limit))
            except BaseException:
                self.close()  # a reply left unread: the pipes are out of step
                raise
        self.slowest_step = max(self.slowest_step, time.monotonic() - start)
        outs = [mine[1]]
        for child, message in sent:
            at, shape, dtype = message["out"]
            outs.append(child["block"].array(at, shape, dtype))
        return [mine, *replies], [sizes, outs]

    def train_step(self, model, x: np.ndarray, y) -> tuple[float, np.ndarray]:
        """One training step split over the processes: ``(mean loss, outputs)``."""
        layers = model.layers
        self._step_info = {
            "loss": _loss_config(model),  # sent with the step: a recompile is seen
            # every process draws the whole batch's dropout masks from the same
            # generator state (read only when it draws: a rate-0 layer spawns none)
            "dropout": {
                str(i): [
                    layers[i].rate,
                    generator_state(layers[i].rng) if layers[i].rate > 0 else None,
                ]
                for i in self._dropouts
            },
            "eps": {str(i): layers[i].eps for i in self._batchnorms},
        }

        def own(x0, y0):
            part = sync.Slice(0, len(x0), len(x), self._allreduce)
            with threads.solo(), sync.training_slice(part):
                return model._local_gradients(x0, y0)

        results, (sizes, outs) = self._run("train", x, y, own)
        n = len(x)
        loss = sum(
            size * (r[0] if k == 0 else r["loss"])
            for k, (size, r) in enumerate(zip(sizes, results, strict=True))
        )
        for (layer, key), offset in zip(self._grads, self._g_offsets, strict=True):
            g = layer.grads[key]
            g *= sizes[0] / n
            for child in self._active:  # already weighted by the replica's share
                g += child["block"].array(offset, g.shape, g.dtype)
        model.optimizer.step(model.layers)
        return loss / n, np.concatenate(outs)

    def _allreduce(self, a: np.ndarray) -> np.ndarray:
        """The caller's side of :attr:`cnnumpy.sync.Slice.allreduce`: ``a`` plus every
        active replica's part (read from its pipe, in a fixed order), sent back."""
        total = np.array(a, copy=True)
        try:
            limit = self._wait_limit()
            for child in self._active:
                message = self._listen(child, limit, "mid-step")
                if "sum" not in message:
                    pid, error = child["proc"].pid, message.get("error")
                    raise _lost(f"replica process {pid} failed mid-step", str(error))
                total += np.asarray(message["sum"], dtype=a.dtype).reshape(a.shape)
            for child in self._active:
                # (it may die after sending its part: the same error)
                self._tell(child, {"sum": total.tolist()}, when="mid-step")
        except BaseException:
            self.close()  # the pipes are out of step
            raise
        return total

    def forward(self, model, x: np.ndarray) -> np.ndarray:
        """Inference outputs of ``x``, split over the processes."""

        def own(x0, _y0):
            with threads.solo():
                return None, model._fused_forward(x0)

        _results, (_sizes, outs) = self._run("forward", x, None, own)
        return np.concatenate(outs)

    # -- lifetime ----------------------------------------------------------------------
    def close(self) -> None:
        """Stop the replicas (idempotent)."""
        if self.closed:
            return
        self.closed = True
        for child in self._children:
            if child.get("silent"):
                child["proc"].kill()  # stopped or stuck: it would not see the end
            child["sock"].close()  # the replica sees the end of its input and exits
            with contextlib.suppress(OSError):
                os.close(child["reply"])
        for child in self._children:
            try:
                child["proc"].wait(timeout=5)
            except subprocess.TimeoutExpired:
                child["proc"].kill()
                child["proc"].wait()
            if child.get("block") is not None:
                child["block"].release()
        self._w_block.release()
        model = self.model
        if model is not None and _GROUPS.get(model) is self:
            del _GROUPS[model]

    def __enter__(self) -> Replicas:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def available_cores() -> int:
    """The cores this process may run on (its affinity mask), else the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def check_processes(processes) -> int:
    """``processes`` as an int from 1 to :func:`available_cores`; else TypeError or
    ValueError (more processes than cores would only take turns on them)."""
    if isinstance(processes, bool) or not isinstance(processes, (int, np.integer)):
        raise TypeError(f"expected an int >= 1, got {processes!r}")
    if processes < 1:
        raise ValueError(f"expected an int >= 1, got {processes}")
    cores = available_cores()
    if processes > cores:
        raise ValueError(
            f"{processes} processes asked, but only {cores} cores are available to "
            f"this process; use at most {cores}"
        )
    return int(processes)


def most_processes(batch_size: int) -> int:
    """The most processes a batch of ``batch_size`` can give a slice each."""
    return max(1, batch_size // MIN_SLICE)


def _silence_timeout(timeout) -> float:
    """``timeout``, else ``$CNNUMPY_REPLICA_TIMEOUT``, else STEP_TIMEOUT (seconds)."""
    source = "use_processes: timeout"
    if timeout is None:
        timeout = os.environ.get(TIMEOUT_VARIABLE, "").strip() or STEP_TIMEOUT
        source = TIMEOUT_VARIABLE
    try:
        value = float(timeout)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(timeout, bool) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{source}: expected seconds > 0, got {timeout!r}")
    return value


def _has_fileno(stream) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


def _loss_config(model) -> dict:
    """The loss as the replicas rebuild it; only cnnumpy's own losses qualify."""
    from cnnumpy.losses import LOSSES, serialize

    loss = model.loss
    if LOSSES.get(loss.name) is not type(loss):
        raise ReplicaError(
            f"{type(loss).__name__} is not one of cnnumpy's own losses; replicas "
            "rebuild the loss from its config (train without use_processes)"
        )
    return serialize(loss)


def use_processes(
    model, processes: int | None, timeout: float | None = None
) -> Replicas | None:
    """Attach ``processes - 1`` replicas to ``model`` (``None``: one per core this
    process may use; more is a ValueError); 1 detaches them. ``timeout``: see
    :class:`Replicas`. Returns the :class:`Replicas` (a context manager) or None."""
    if processes is None:
        processes = available_cores()
    try:
        processes = check_processes(processes)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"use_processes: {exc}") from None
    old = _GROUPS.pop(model, None)
    if old is not None:
        old.close()
    if processes == 1:
        return None
    if model.input_shape is None:
        raise ValueError("use_processes: the model is not built; pass input_shape=")
    group = Replicas(model, processes, timeout)
    _GROUPS[model] = group
    return group


def group_of(model) -> Replicas | None:
    group = _GROUPS.get(model)
    return None if group is None or group.closed else group


# -- the replica's side ----------------------------------------------------------------
def _build(setup: dict):
    from cnnumpy.io import layers_from_meta
    from cnnumpy.model import Sequential

    meta = setup["meta"]
    layers = layers_from_meta({"model": meta}, "replica")
    model = Sequential(layers, input_shape=tuple(meta["input_shape"]))
    model.astype(meta["dtype"])
    return model


def _attach(model, fd: int, nbytes: int, offsets: list[int]) -> _Block:
    """Point the replica's weights at the shared block (read live every step)."""
    block = _Block(nbytes, fd)
    k = 0
    for layer in model.layers:
        for store in (layer.params, layer.state):
            for key in sorted(store):
                a = store[key]
                store[key] = block.array(offsets[k], a.shape, a.dtype)
                k += 1
    return block


def _serve(cmd_fd: int, reply_fd: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller decides what stops us
    commands = socket.socket(fileno=cmd_fd)  # also brings the blocks' descriptors
    setup = _receive(cmd_fd)
    weights_fd = None if setup is None else _receive_fd(commands)
    if weights_fd is None:
        return  # the caller is gone
    try:
        model = _build(setup)
        _shared = _attach(model, weights_fd, setup["weights"], setup["w_offsets"])
        g_offsets = setup["g_offsets"]
        _send(reply_fd, {"ok": True})
    except Exception:
        _send(reply_fd, {"ok": False, "error": traceback.format_exc()})
        return
    from cnnumpy import losses

    def _replica_allreduce(a: np.ndarray) -> np.ndarray:
        try:
            _send(reply_fd, {"ok": True, "sum": a.tolist()})
        except OSError:  # the caller closed the group mid-step
            raise SystemExit(0) from None
        message = _receive(cmd_fd)
        if message is None:
            raise SystemExit(0)  # the caller is gone
        return np.asarray(message["sum"], dtype=a.dtype).reshape(a.shape)

    block, loss_config = None, None
    while True:
        message = _receive(cmd_fd)
        if message is None:
            return  # the caller closed the pipe: done
        try:
            if "block" in message:
                fd = _receive_fd(commands)
                if fd is None:
                    return  # the caller is gone
                block = _Block(message["block"], fd)
            if message.get("loss") not in (None, loss_config):
                loss_config = message["loss"]
                model.loss = losses.get(loss_config)
            at, shape, dtype = message["x"]
            x = block.array(at, shape, dtype)
            at, shape, dtype = message["out"]
            out = block.array(at, shape, dtype)
            reply = {"ok": True}
            if message["op"] == "train":
                at, shape, dtype = message["y"]
                y = block.array(at, shape, dtype)
                for i, (rate, state) in message["dropout"].items():
                    layer = model.layers[int(i)]
                    layer.rate = rate
                    if state is not None:
                        layer.rng = generator_from_state(state)
                for i, eps in message["eps"].items():
                    model.layers[int(i)].eps = eps
                lo = message["lo"]
                part = sync.Slice(lo, lo + len(x), message["total"], _replica_allreduce)
                with sync.training_slice(part):
                    reply["loss"], out[...] = model._local_gradients(x, y)
                # weighted by this slice's share of the batch on the way (the copy
                # costs the same): the caller then adds them with no temporary
                share = len(x) / message["total"]
                grads = _grad_arrays(model)
                for (layer, key), offset in zip(grads, g_offsets, strict=True):
                    g = layer.grads[key]
                    np.multiply(g, share, out=block.array(offset, g.shape, g.dtype))
            else:
                out[...] = model._fused_forward(x)
        except Exception:
            reply = {"ok": False, "error": traceback.format_exc()}
        try:
            _send(reply_fd, reply)
        except OSError:  # the caller closed the group: nobody to answer
            return
