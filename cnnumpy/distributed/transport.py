"""The bytes between the caller and its replicas: messages, descriptors, shared memory.

Both sides of :mod:`cnnumpy.distributed.replicas` use these, and nothing here knows
what a step is:

- a **message** is a JSON object framed by its length (8 bytes, little-endian), written
  to a pipe or a socket (:func:`send`, :func:`receive`);
- a **descriptor** travels over a Unix socket (SCM_RIGHTS: :func:`send_fd`,
  :func:`receive_fd`), which is how a replica gets the shared memory: by descriptor,
  never by path;
- a **shared block** (:class:`SharedBlock`) is a file no directory lists, mapped by both
  sides, holding arrays at 64-byte aligned offsets (:func:`align`);
  :mod:`~cnnumpy.distributed.mirror` lays the model's arrays out in them.
"""

from __future__ import annotations

import contextlib
import json
import math
import mmap
import os
import select
import socket
import struct
import tempfile
import time

import numpy as np

__all__ = [
    "SharedBlock",
    "Silent",
    "align",
    "receive",
    "receive_fd",
    "send",
    "send_fd",
]


class Silent(Exception):
    """No whole message arrived before the deadline."""


# -- messages --------------------------------------------------------------------------
def send(fd: int, message: dict) -> None:
    """Write ``message`` as JSON after its length (8 bytes, little-endian)."""
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
                raise Silent
        chunk = os.read(fd, n - got)
        if not chunk:
            return None  # the other side closed its end (exited or died)
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def receive(fd: int, deadline: float | None = None) -> dict | None:
    """The next message, or None if the other side closed its end; raises
    :class:`Silent` if it is not whole by ``deadline`` (``time.monotonic()``)."""
    head = _read_exact(fd, 8, deadline)
    if head is None:
        return None
    body = _read_exact(fd, struct.unpack("<Q", head)[0], deadline)
    return None if body is None else json.loads(body)


# -- descriptors -----------------------------------------------------------------------
def send_fd(sock: socket.socket, fd: int) -> None:
    """Hand ``fd`` to the other end of ``sock`` (SCM_RIGHTS), on one byte."""
    socket.send_fds(sock, [b"F"], [fd])


def receive_fd(sock: socket.socket) -> int | None:
    """The descriptor :func:`send_fd` sent, or None if the other side is gone."""
    data, fds, _flags, _address = socket.recv_fds(sock, 1, 1)
    return fds[0] if data and fds else None


# -- shared memory ---------------------------------------------------------------------
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


class SharedBlock:
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
        """The array of ``shape`` and ``dtype`` at byte ``offset``: a view, no copy."""
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


# -- where arrays sit in a block -------------------------------------------------------
def align(n: int) -> int:
    """``n`` rounded up to a multiple of 64 bytes (a cache line)."""
    return -(-n // 64) * 64
