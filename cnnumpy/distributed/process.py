"""One replica process as the caller sees it: start it, talk to it, stop it.

A replica is a plain ``python -c`` process (:data:`ENTRY`, never ``multiprocessing``,
which would re-run an unguarded user script) running
:func:`cnnumpy.distributed.worker.serve`. Commands go to it through a socket, with the
descriptors of the shared blocks; its answers come back through a pipe. Whatever goes
wrong with it becomes a :class:`ReplicaError` naming its pid.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from cnnumpy.distributed.limits import TIMEOUT_VARIABLE
from cnnumpy.distributed.transport import (
    SharedBlock,
    Silent,
    align,
    receive,
    send,
    send_fd,
)

__all__ = ["ENTRY", "ReplicaError", "ReplicaProcess", "lost"]

# "python -c" puts the working directory first on sys.path: drop it, so that a stray
# module there (a struct.py, an old cnnumpy/) is never imported by a replica
ENTRY = (
    "import sys; del sys.path[0]; from cnnumpy.distributed.worker import serve; "
    "serve(int(sys.argv[1]), int(sys.argv[2]))"
)
# the folder that holds this cnnumpy/: first on the replica's path, so that it imports
# the same cnnumpy as the caller, installed or not
ROOT = str(Path(os.path.abspath(__file__)).parents[2])


class ReplicaError(RuntimeError):
    """A replica process failed, died, stayed silent, or cannot replicate this model.

    ``reason``: what happened, in one line (the message may add a replica's traceback).
    """

    def __init__(self, reason: str, details: str = "") -> None:
        super().__init__(reason + (f"\n{details}" if details else ""))
        self.reason = reason


def lost(reason: str, details: str = "") -> ReplicaError:
    """The error of a replica gone wrong: the caller closes the group, then raises."""
    error = ReplicaError(f"{reason}; the model runs alone from now on", details)
    error.reason = reason
    return error


class ReplicaProcess:
    """A replica process (:meth:`spawn`), the ends of its socket and its pipe, and
    ``block``, the shared block of its slice (inputs, targets, gradients, outputs).

    ``silent`` marks a replica that stayed silent past its limit: :meth:`hang_up`
    kills it, since a stopped process would never see the end of its input.
    """

    def __init__(
        self, proc: subprocess.Popen, sock: socket.socket, reply_fd: int
    ) -> None:
        self.proc = proc
        self.sock = sock  # commands and descriptors go out here
        self.cmd_fd = sock.fileno()
        self.reply_fd = reply_fd  # answers come in here
        self.block: SharedBlock | None = None
        self.silent = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    def spawn(cls) -> ReplicaProcess:
        """Start a replica; it waits for its setup message."""
        # commands (and descriptors) go through a socket, answers through a pipe
        cmd, cmd_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        reply, reply_child = os.pipe()
        fds = (cmd_child.fileno(), reply_child)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", ENTRY, *map(str, fds)],
                pass_fds=fds,
                env=_replica_environment(),
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
        return cls(proc, cmd, reply)

    # -- talking to it -----------------------------------------------------------------
    def tell(
        self, message: dict, block: SharedBlock | None = None, when: str = ""
    ) -> None:
        """Send ``message``, then ``block``'s descriptor if given."""
        try:
            send(self.cmd_fd, message)
            if block is not None:
                send_fd(self.sock, block.fd)
        except OSError:  # the replica's end is gone
            raise lost(self.death(when)) from None

    def listen(self, limit: float, when: str) -> dict:
        """The replica's next message, waited for at most ``limit`` seconds."""
        start = time.monotonic()
        try:
            message = receive(self.reply_fd, start + limit)
        except Silent:
            self.silent = True
            waited = time.monotonic() - start
            hint = "" if when == "while starting" else f"; {TIMEOUT_VARIABLE} sets it"
            raise lost(
                f"replica process {self.pid} sent nothing {when} for "
                f"{waited:.1f} s (limit {limit:g} s{hint}), killed"
            ) from None
        if message is None:
            raise lost(self.death(when))
        return message

    def reply(self, limit: float, when: str = "in a step") -> dict:
        """The replica's answer to a command; a :class:`ReplicaError` if it failed."""
        message = self.listen(limit, when)
        if not message.get("ok"):
            error = str(message.get("error") or "no error text").strip()
            raise lost(
                f"replica process {self.pid} failed {when}: {error.splitlines()[-1]}",
                error,
            )
        return message

    def death(self, when: str) -> str:
        """How the replica ended, its pipe having ended (for the error message)."""
        try:
            code = self.proc.wait(timeout=5)  # its pipe ended: it is exiting
        except subprocess.TimeoutExpired:
            how = "closed its pipe but still runs"
        else:
            how = f"exit code {code}"
            if code < 0:
                with contextlib.suppress(ValueError):
                    how = f"killed by {signal.Signals(-code).name}"
        when = f" {when}" if when else ""
        return f"replica process {self.pid} died{when} ({how})"

    # -- its slice of a batch ----------------------------------------------------------
    def load(self, x: np.ndarray, y, out_row: list, dtype, start: int) -> dict:
        """Copy a slice into the replica's block (grown when too small), after the
        ``start`` bytes of its gradients: the step message's ``n``, ``x``, ``out`` and
        ``y`` (``[offset, shape, dtype]`` in the block) and, for a new block, ``block``
        (its size: its descriptor must follow the message)."""
        n = len(x)
        y_at = align(start + x.nbytes)
        out_at = align(y_at + (0 if y is None else y.nbytes))
        need = out_at + n * math.prod(out_row) * dtype.itemsize
        grow = self.block is None or self.block.nbytes < need
        if grow:
            self.block = SharedBlock(need * 5 // 4)
        self.block.array(start, x.shape, x.dtype)[...] = x
        message = {
            "n": n,
            "x": [start, list(x.shape), x.dtype.str],
            "out": [out_at, [n, *out_row], dtype.str],
        }
        if y is not None:
            self.block.array(y_at, y.shape, y.dtype)[...] = y
            message["y"] = [y_at, list(y.shape), y.dtype.str]
        if grow:
            message["block"] = self.block.nbytes
        return message

    # -- stopping it -------------------------------------------------------------------
    def hang_up(self) -> None:
        """Close its socket and pipe: the replica sees the end of its input and exits
        (a silent one is killed first)."""
        if self.silent:
            self.proc.kill()  # stopped or stuck: it would not see the end
        self.sock.close()
        with contextlib.suppress(OSError):
            os.close(self.reply_fd)

    def wait_end(self) -> None:
        """Wait for it to exit after :meth:`hang_up` (5 s, then SIGKILL)."""
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.block is not None:
            self.block.release()


def _replica_environment() -> dict:
    """The caller's environment, with this cnnumpy first on the path and one core."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    # one core per process: no kernel threads and no BLAS threads in the replica
    env.update(CNNUMPY_THREADS="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    env.update(MKL_NUM_THREADS="1")
    # a step is split only with the engine on (Replicas.splits): BatchNorm and Dropout
    # must then run its kernels in the replica too, whatever CNNUMPY_ENGINE says
    env["CNNUMPY_ENGINE"] = "1"
    return env


def _has_fileno(stream) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True
