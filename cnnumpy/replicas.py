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
layers can be replicated. They talk to the caller through two pipes and share memory
through an unlinked temporary file: nothing leaks when either side dies, and a replica
that dies makes the caller raise :class:`ReplicaError` instead of waiting forever.
"""

from __future__ import annotations

import contextlib
import json
import math
import mmap
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import traceback
import weakref

import numpy as np

from cnnumpy import sync
from cnnumpy.functional import threads
from cnnumpy.rng import generator_from_state, generator_state

__all__ = ["ReplicaError", "Replicas", "use_processes"]

START_TIMEOUT = 120.0  # seconds for a replica to import cnnumpy and build the model
MIN_SLICE = 8  # a batch is split only when every process gets at least this many
_GROUPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> Replicas


# "python -c" puts the working directory first on sys.path: drop it, so that a stray
# module there (a struct.py, an old cnnumpy/) is never imported by a replica
_ENTRY = (
    "import sys; del sys.path[0]; from cnnumpy.replicas import _serve; "
    "_serve(int(sys.argv[1]), int(sys.argv[2]))"
)


class ReplicaError(RuntimeError):
    """A replica process failed, died, or cannot replicate this model."""


# -- messages and shared memory --------------------------------------------------------
def _send(fd: int, message: dict) -> None:
    data = json.dumps(message).encode()
    view = memoryview(struct.pack("<Q", len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, n: int) -> bytes | None:
    parts, got = [], 0
    while got < n:
        chunk = os.read(fd, n - got)
        if not chunk:
            return None  # the other side closed its end (exited or died)
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _receive(fd: int) -> dict | None:
    head = _read_exact(fd, 8)
    if head is None:
        return None
    body = _read_exact(fd, struct.unpack("<Q", head)[0])
    return None if body is None else json.loads(body)


class _Block:
    """Memory shared between processes: a temporary file, mapped, then unlinked.

    The file is unlinked as soon as the replica has mapped it too, so nothing is left
    behind however either process ends.
    """

    def __init__(self, nbytes: int, path: str | None = None) -> None:
        self.nbytes = max(int(nbytes), 1)
        if path is None:
            where = "/dev/shm" if os.path.isdir("/dev/shm") else None
            fd, self.path = tempfile.mkstemp(prefix="cnnumpy-", dir=where)
        else:
            self.path, fd = path, os.open(path, os.O_RDWR)
        try:
            if path is None:  # reserve the pages now: a full /dev/shm is an OSError
                if hasattr(os, "posix_fallocate"):  # here, not a SIGBUS later
                    os.posix_fallocate(fd, 0, self.nbytes)
                else:
                    os.ftruncate(fd, self.nbytes)
            self.map = mmap.mmap(fd, self.nbytes)
        except BaseException:
            if path is None:
                self.unlink()
            raise
        finally:
            os.close(fd)

    def array(self, offset: int, shape, dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        count = math.prod(shape)
        return np.frombuffer(self.map, dtype, count, offset).reshape(shape)

    def unlink(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


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
    block) stops the replicas.
    """

    def __init__(self, model, processes: int) -> None:
        from cnnumpy.io import _model_payload
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
        _tensors, meta = _model_payload(model, include_optimizer=False)
        weights = _weight_arrays(model)
        self._w_shapes = [(a.shape, a.dtype) for a in weights]
        self._w_offsets, size = _layout(weights)
        self._w_block = _Block(size)
        self._grads = _grad_arrays(model)
        grads = [layer.params[key] for layer, key in self._grads]
        self._g_offsets, self._g_bytes = _layout(grads)
        self._children: list[dict] = []
        self.closed = False
        try:
            for _ in range(processes - 1):
                self._children.append(self._spawn())
            for child in self._children:
                _send(
                    child["cmd"],
                    {
                        "op": "setup",
                        "meta": meta["model"],
                        "weights": self._w_block.path,
                        "w_offsets": self._w_offsets,
                        "g_offsets": self._g_offsets,
                    },
                )
                child["block"] = None
            for child in self._children:
                self._reply(child, timeout=START_TIMEOUT)
        except BaseException:
            self.close()
            raise
        finally:
            self._w_block.unlink()

    @property
    def model(self):
        return self._model()

    def _spawn(self) -> dict:
        import cnnumpy

        to_child, from_child = os.pipe(), os.pipe()
        env = dict(os.environ)
        root = os.path.dirname(os.path.dirname(os.path.abspath(cnnumpy.__file__)))
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (root, env.get("PYTHONPATH")) if p
        )
        # one core per process: no kernel threads and no BLAS threads in the replica
        env.update(CNNUMPY_THREADS="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        env.update(MKL_NUM_THREADS="1")
        fds = (to_child[0], from_child[1])
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _ENTRY, *map(str, fds)],
                pass_fds=fds,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sys.stderr if _has_fileno(sys.stderr) else None,
            )
        finally:
            os.close(to_child[0])
            os.close(from_child[1])
        return {"proc": proc, "cmd": to_child[1], "reply": from_child[0]}

    def _reply(self, child: dict, timeout: float | None = None) -> dict:
        if timeout is not None:
            ready, _, _ = select.select([child["reply"]], [], [], timeout)
            if not ready:
                raise ReplicaError(f"a replica did not answer within {timeout:.0f} s")
        message = _receive(child["reply"])
        if message is None:
            code = child["proc"].wait()
            raise ReplicaError(f"a replica process died (exit code {code})")
        if not message.get("ok"):
            raise ReplicaError(f"a replica failed:\n{message.get('error')}")
        return message

    # -- per batch ---------------------------------------------------------------------
    def splits(self, n: int) -> bool:
        """Whether a batch of ``n`` is split: every process gets ``MIN_SLICE``."""
        return not self.closed and n >= MIN_SLICE * self.processes

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
        grow = child["block"] is None or child["block"].nbytes < need
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
            message["block"] = [block.path, block.nbytes]
        return message

    def _run(self, op: str, x: np.ndarray, y, own) -> tuple[list, list]:
        """Send every replica its slice, run ``own(x0, y0)`` here, gather replies."""
        sizes = split_sizes(len(x), self.processes)
        cuts = [sum(sizes[:k]) for k in range(len(sizes) + 1)]
        out_row = list(self.model.output_shape)
        self._publish_weights()
        sent, replies = [], []
        try:
            for k, child in enumerate(self._children, start=1):
                lo, hi = cuts[k], cuts[k + 1]
                part_x, part_y = x[lo:hi], None if y is None else y[lo:hi]
                try:
                    message = self._child_views(child, hi - lo, part_x, part_y, out_row)
                except BaseException:  # a new block the replica would never hear of
                    self.close()
                    raise
                if op == "train":
                    message.update(self._step_info, lo=lo, total=len(x))
                try:
                    _send(child["cmd"], {"op": op, **message})
                except OSError as exc:  # the replica's end of the pipe is gone
                    self.close()
                    code = child["proc"].poll()
                    raise ReplicaError(
                        f"a replica process died (exit code {code}): {exc}"
                    ) from None
                except BaseException:  # e.g. Ctrl-C half-way through a message
                    self.close()
                    raise
                sent.append((child, message))
                if "block" in message:  # mapped by the replica once it answers
                    child["fresh"] = True
            try:
                mine = own(x[: cuts[1]], None if y is None else y[: cuts[1]])
            except BaseException:
                if op == "train" and self._allreduces and not self.closed:
                    self.close()  # replicas may wait in an allreduce we never reach
                raise
        finally:
            try:
                for child, _message in [] if self.closed else sent:
                    replies.append(self._reply(child))
                    if child.pop("fresh", False):
                        child["block"].unlink()
            except BaseException:
                self.close()  # a reply left unread: the pipes are out of step
                raise
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
            for child in self._children:  # already weighted by the replica's share
                g += child["block"].array(offset, g.shape, g.dtype)
        model.optimizer.step(model.layers)
        return loss / n, np.concatenate(outs)

    def _allreduce(self, a: np.ndarray) -> np.ndarray:
        """The caller's side of :attr:`cnnumpy.sync.Slice.allreduce`: ``a`` plus every
        replica's part (read from its pipe, in a fixed order), sent back to all."""
        total = np.array(a, copy=True)
        try:
            for child in self._children:
                message = _receive(child["reply"])
                if message is None or "sum" not in message:
                    error = "died" if message is None else message.get("error")
                    raise ReplicaError(f"a replica failed mid-step: {error}")
                total += np.asarray(message["sum"], dtype=a.dtype).reshape(a.shape)
            for child in self._children:
                _send(child["cmd"], {"sum": total.tolist()})
        except OSError as exc:  # a replica's end of the pipe is gone
            self.close()
            raise ReplicaError(f"a replica died mid-step: {exc}") from None
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
            for fd in (child["cmd"], child["reply"]):
                with contextlib.suppress(OSError):
                    os.close(fd)  # the replica sees the end of its input and exits
        for child in self._children:
            try:
                child["proc"].wait(timeout=5)
            except subprocess.TimeoutExpired:
                child["proc"].kill()
                child["proc"].wait()
            if child.get("block") is not None:
                child["block"].unlink()
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


def use_processes(model, processes: int | None) -> Replicas | None:
    """Attach ``processes - 1`` replicas to ``model`` (``None``: one per core);
    1 detaches them. Returns the :class:`Replicas` (a context manager) or None."""
    if processes is None:
        processes = os.cpu_count() or 1
    if isinstance(processes, bool) or not isinstance(processes, (int, np.integer)):
        raise TypeError(f"use_processes: expected an int >= 1, got {processes!r}")
    if processes < 1:
        raise ValueError(f"use_processes: expected an int >= 1, got {processes}")
    old = _GROUPS.pop(model, None)
    if old is not None:
        old.close()
    if processes == 1:
        return None
    if model.input_shape is None:
        raise ValueError("use_processes: the model is not built; pass input_shape=")
    group = Replicas(model, int(processes))
    _GROUPS[model] = group
    return group


def group_of(model) -> Replicas | None:
    group = _GROUPS.get(model)
    return None if group is None or group.closed else group


# -- the replica's side ----------------------------------------------------------------
def _build(setup: dict):
    from cnnumpy.io import _layers_from_meta
    from cnnumpy.model import Sequential

    meta = setup["meta"]
    layers = _layers_from_meta({"model": meta}, "replica")
    model = Sequential(layers, input_shape=tuple(meta["input_shape"]))
    model.astype(meta["dtype"])
    return model


def _attach(model, path: str, offsets: list[int]) -> _Block:
    """Point the replica's weights at the shared block (read live every step)."""
    arrays = _weight_arrays(model)
    end = _align(offsets[-1] + arrays[-1].nbytes) if arrays else 1
    block = _Block(end, path)
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
    setup = _receive(cmd_fd)
    if setup is None:
        return
    try:
        model = _build(setup)
        _shared = _attach(model, setup["weights"], setup["w_offsets"])
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
                block = _Block(message["block"][1], message["block"][0])
                block.unlink()  # mapped here and by the caller: no file needed
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
