"""The replica's side: a process that rebuilds the caller's model and runs its slices.

The caller (:mod:`cnnumpy.distributed.replicas`) starts it with ``python -c``
(:data:`cnnumpy.distributed.process.ENTRY`), which calls :func:`serve`. The replica
then reads, in order:

1. ``setup``: the model's config (``Model.get_config``), the size of the shared
   block of weights (its descriptor follows) and where each weight and gradient sits.
   The replica builds the model, points its weights at the block (the caller writes
   them there before every step) and answers ``{"ok": true}``;
2. one message per step, ``train`` or ``forward``: where its slice of the batch lies
   in its own block (a new block's descriptor follows when it grew), and for training
   the loss, the Dropout generators' states and the BatchNorm epsilons. It writes its
   outputs (and, for training, its gradients, weighted by its share of the batch) into
   its block and answers ``{"ok": true}`` (with the loss), or ``{"ok": false,
   "error": traceback}``. Mid-step, BatchNorm's sums go through
   :meth:`Worker.allreduce`: the worker is a replica's side of the communicator
   (:class:`~cnnumpy.distributed.communicator.Communicator`; the step message gives
   its ``rank`` and the ``size`` of the processes sharing the batch).

The end of its input (the caller closed the group, or died) ends it.
"""

from __future__ import annotations

import signal
import socket
import traceback

import numpy as np

from cnnumpy import initializers, losses, sync
from cnnumpy.distributed.communicator import Communicator, check_buffer
from cnnumpy.distributed.mirror import attach, grad_arrays, set_step_state
from cnnumpy.distributed.transport import SharedBlock, receive, receive_fd, send
from cnnumpy.sequential import model_from_config

__all__ = ["Worker", "serve"]


def serve(cmd_fd: int, reply_fd: int) -> None:
    """Run a replica on the descriptors the caller passed: commands, answers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller decides what stops us
    commands = socket.socket(fileno=cmd_fd)  # also brings the blocks' descriptors
    setup = receive(cmd_fd)
    weights_fd = None if setup is None else receive_fd(commands)
    if weights_fd is None:
        return  # the caller is gone
    try:
        worker = Worker(commands, reply_fd, setup, weights_fd)
        send(reply_fd, {"ok": True})
    except Exception:
        send(reply_fd, {"ok": False, "error": traceback.format_exc()})
        return
    while True:
        message = receive(cmd_fd)
        if message is None:
            return  # the caller closed the pipe: done
        try:
            reply = worker.step(message)
        except Exception:
            reply = {"ok": False, "error": traceback.format_exc()}
        try:
            send(reply_fd, reply)
        except OSError:  # the caller closed the group: nobody to answer
            return


class Worker(Communicator):
    """The replica's model, its shared blocks, and the steps it runs on its slices;
    mid-step, its side of the communicator (rank and size from the step message)."""

    def __init__(
        self, commands: socket.socket, reply_fd: int, setup: dict, fd: int
    ) -> None:
        self.commands = commands
        self.cmd_fd = commands.fileno()
        self.reply_fd = reply_fd
        # the weights come next (attach): a "custom" initialiser needs no callable here
        with initializers.weights_follow():
            self.model = model_from_config(setup["config"])
        self.weights = attach(self.model, fd, setup["weights"], setup["w_offsets"])
        self.g_offsets = setup["g_offsets"]
        self.block: SharedBlock | None = None  # this replica's slice, grads, outputs
        self.loss_config = None
        self.rank, self.size = 1, 2  # set by every training step

    def step(self, message: dict) -> dict:
        """Run one ``train`` or ``forward`` command: the answer to send."""
        if "block" in message:
            fd = receive_fd(self.commands)
            if fd is None:
                raise SystemExit(0)  # the caller is gone
            self.block = SharedBlock(message["block"], fd)
        if message.get("loss") not in (None, self.loss_config):
            self.loss_config = message["loss"]
            self.model.loss = losses.get(self.loss_config)
        x = self.block.array(*message["x"])
        out = self.block.array(*message["out"])
        reply = {"ok": True}
        if message["op"] == "train":
            reply["loss"] = self.train(message, x, out)
        else:
            out[...] = self.model.executor.fused_forward(x)
        return reply

    def train(self, message: dict, x: np.ndarray, out: np.ndarray) -> float:
        """Forward, loss and backward on the slice ``x``: outputs into ``out``, the
        gradients into the block; returns the slice's mean loss."""
        model = self.model
        y = self.block.array(*message["y"])
        set_step_state(model, message)
        lo, total = message["lo"], message["total"]
        self.rank, self.size = message["rank"], message["size"]
        part = sync.Slice(lo, lo + len(x), total, self)
        with sync.training_slice(part):
            loss, out[...] = model.executor.gradients(x, y)
        # weighted by this slice's share of the batch on the way (the copy costs the
        # same): the caller then adds them with no temporary
        share = len(x) / total
        grads = grad_arrays(model)
        for (layer, key), offset in zip(grads, self.g_offsets, strict=True):
            g = layer.grads[key]
            np.multiply(g, share, out=self.block.array(offset, g.shape, g.dtype))
        return loss

    def allreduce(self, buffer: np.ndarray) -> None:
        """:meth:`Communicator.allreduce`: send ``buffer``, wait for the total over
        the processes (the caller adds the parts up), write it into ``buffer``."""
        check_buffer(buffer, "allreduce")
        try:
            send(self.reply_fd, {"ok": True, "sum": buffer.tolist()})
        except OSError:  # the caller closed the group mid-step
            raise SystemExit(0) from None
        buffer[...] = np.reshape(self._from_caller("sum"), buffer.shape)

    def broadcast(self, buffer: np.ndarray) -> None:
        """:meth:`Communicator.broadcast`: the caller's buffer, into ``buffer``."""
        check_buffer(buffer, "broadcast")
        buffer[...] = np.reshape(self._from_caller("data"), buffer.shape)

    def _from_caller(self, key: str) -> list:
        """``key`` of the caller's next message, mid-step."""
        message = receive(self.cmd_fd)
        if message is None:
            raise SystemExit(0)  # the caller is gone
        return message[key]
