"""The process replicas' two sides of the communicator, talking through real pipes.

``Replicas`` (the caller, rank 0) and ``Worker`` (a replica) implement
:class:`~cnnumpy.distributed.communicator.Communicator` over a socket (commands) and a
pipe (answers), as :meth:`ReplicaProcess.spawn` connects them. Training exercises
``allreduce`` (BatchNorm's sums); nothing in a replica's step broadcasts yet, so these
tests drive both methods directly: each worker side runs in a thread of this process,
on the same descriptors and framing a replica process uses.
"""

import os
import socket
import threading
import time

import numpy as np
import pytest

from cnnumpy.distributed import limits
from cnnumpy.distributed.communicator import broadcast_bytes, broadcast_json
from cnnumpy.distributed.process import ReplicaProcess
from cnnumpy.distributed.replicas import Replicas
from cnnumpy.distributed.worker import Worker


class _Pid:  # the one attribute of a Popen the caller's side reads (error messages)
    pid = 0


def _group(workers: int):
    """A caller side and ``workers`` replica sides joined by their real channels."""
    caller = object.__new__(Replicas)
    caller.timeout = limits.silence_timeout(None)
    caller.slowest_step, caller._step_start = 0.0, time.monotonic()
    caller.closed = True  # nothing to stop: __del__ and close() do nothing
    caller._active, sides, ends = [], [], []
    for rank in range(1, workers + 1):
        cmd, cmd_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        reply, reply_child = os.pipe()
        caller._active.append(ReplicaProcess(_Pid(), cmd, reply))
        side = object.__new__(Worker)
        side.commands, side.cmd_fd, side.reply_fd = (
            cmd_child,
            cmd_child.fileno(),
            reply_child,
        )
        side.rank, side.size = rank, workers + 1
        sides.append(side)
        ends += [cmd, cmd_child, reply, reply_child]
    return caller, sides, ends


def _close(ends):
    for end in ends:
        if isinstance(end, socket.socket):
            end.close()
        else:
            os.close(end)


def _together(caller_call, side_calls):
    """Run each replica side's call in a thread and the caller's here: their results."""
    results = [None] * len(side_calls)
    errors = []

    def run(k, call):
        try:
            results[k] = call()
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(k, call), daemon=True)
        for k, call in enumerate(side_calls)
    ]
    for thread in threads:
        thread.start()
    mine = caller_call()
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive(), "a replica side did not return within 10 s"
    assert not errors, errors
    return mine, results


@pytest.fixture
def group():
    made = []

    def make(workers):
        caller, sides, ends = _group(workers)
        made.append(ends)
        return caller, sides

    yield make
    for ends in made:
        _close(ends)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "uint8"])
def test_broadcast_gives_every_replica_the_callers_buffer(group, dtype):
    caller, sides = group(2)
    sent = (np.arange(12).reshape(3, 4) * 7 % 251).astype(dtype)
    if dtype.startswith("float"):
        sent = sent / np.asarray(3, dtype=dtype)  # values that are not integers
    got = [np.zeros((3, 4), dtype=dtype) for _ in sides]
    _together(
        lambda: caller.broadcast(sent),
        [lambda s=s, g=g: s.broadcast(g) for s, g in zip(sides, got, strict=True)],
    )
    for buffer in got:
        np.testing.assert_array_equal(buffer, sent)  # through JSON: exact for both


def test_broadcast_of_bytes_and_json_through_the_replicas(group):
    caller, sides = group(2)
    data = bytes(range(256)) * 3 + b"end"
    mine, theirs = _together(
        lambda: broadcast_bytes(caller, data),
        [lambda s=s: broadcast_bytes(s, None) for s in sides],
    )
    assert mine == data and theirs == [data, data]
    value = {"epoch": 3, "seed": [1, 2], "name": "lenet5"}
    mine, theirs = _together(
        lambda: broadcast_json(caller, value),
        [lambda s=s: broadcast_json(s) for s in sides],
    )
    assert mine == value and theirs == [value, value]


def test_allreduce_sums_over_the_caller_and_every_replica(group):
    caller, sides = group(2)
    parts = [
        np.full((2, 5), 1.0 + rank) * np.arange(10).reshape(2, 5) for rank in range(3)
    ]
    buffers = [part.copy() for part in parts]
    _together(
        lambda: caller.allreduce(buffers[0]),
        [
            lambda s=s, b=b: s.allreduce(b)
            for s, b in zip(sides, buffers[1:], strict=True)
        ],
    )
    total = parts[0] + parts[1] + parts[2]
    for buffer in buffers:
        np.testing.assert_allclose(buffer, total, rtol=1e-15)


@pytest.mark.parametrize("method", ["broadcast", "allreduce"])
def test_a_buffer_that_is_not_one_block_is_refused_by_both_sides(group, method):
    caller, sides = group(1)
    strided = np.zeros((4, 4))[:, ::2]
    for side in (caller, sides[0]):
        with pytest.raises(ValueError, match=f"{method}: expected a C-contiguous"):
            getattr(side, method)(strided)
        with pytest.raises(TypeError, match=f"{method}: expected a NumPy array"):
            getattr(side, method)([1.0, 2.0])
