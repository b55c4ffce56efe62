"""The communicator: the few words that processes training one model together exchange.

A training step split over processes (:mod:`cnnumpy.sync`) gives each process rows
``lo:hi`` of the batch. Most layers never know. The processes must then agree on three
things, and this interface is all they use for it:

- :meth:`Communicator.allreduce`: a buffer summed over every process, in place.
  BatchNorm sums its per-channel statistics with it (synchronised BatchNorm), and the
  MPI ranks average their gradients with it;
- :meth:`Communicator.broadcast`: rank 0's buffer copied to every process, in place
  (the MPI ranks start from rank 0's weights and random generators);
- :attr:`Communicator.rank` and :attr:`Communicator.size`: who this process is, and
  how many there are. Dropout needs no word at all: each process draws the whole
  batch's mask from a generator in the same state, and keeps its own rows.

Every process makes the same calls in the same order (they run the same layers on
the same batch sizes); each call returns once every process has made it.

Two implementations:

- the process replicas of one machine (:mod:`cnnumpy.distributed.replicas`): the
  caller is rank 0 (``Replicas``), each replica another rank
  (:class:`~cnnumpy.distributed.worker.Worker`); the buffers travel through their pipes;
- MPI (:mod:`cnnumpy.distributed.mpi`): the ranks ``mpiexec -n N`` or a scheduler's
  ``srun`` started, through mpi4py's ``Allreduce`` and ``Bcast``.
"""

from __future__ import annotations

import abc
import json

import numpy as np

__all__ = ["Communicator", "broadcast_bytes", "broadcast_json", "check_buffer"]


class Communicator(abc.ABC):
    """What the processes of one training step say to each other (module docstring).

    Attributes:
        rank: this process, from 0 to ``size - 1``; rank 0 leads (it prints, writes
            files, and its buffers are the ones :meth:`broadcast` sends).
        size: how many processes take part.
    """

    rank: int
    size: int

    @abc.abstractmethod
    def allreduce(self, buffer: np.ndarray) -> None:
        """Replace ``buffer`` (one C-contiguous array) by its sum over every process,
        in place. Every process passes a buffer of the same shape and dtype."""

    @abc.abstractmethod
    def broadcast(self, buffer: np.ndarray) -> None:
        """Replace ``buffer`` (one C-contiguous array) by rank 0's, in place."""


def check_buffer(buffer, where: str) -> np.ndarray:
    """``buffer`` if it is a C-contiguous NumPy array (what both implementations
    send as one block of memory), else a TypeError or a ValueError naming ``where``."""
    if not isinstance(buffer, np.ndarray):
        raise TypeError(f"{where}: expected a NumPy array, got {type(buffer).__name__}")
    if not buffer.flags.c_contiguous:
        raise ValueError(f"{where}: expected a C-contiguous array (one block)")
    return buffer


def broadcast_bytes(comm: Communicator, data: bytes | None) -> bytes:
    """Rank 0's ``data`` on every rank (the others pass None): its length first,
    then the bytes (a checkpoint file, a JSON text)."""
    length = np.array([len(data) if comm.rank == 0 else 0], dtype=np.int64)
    comm.broadcast(length)
    if comm.rank == 0:
        buffer = np.frombuffer(data, dtype=np.uint8).copy()
    else:
        buffer = np.empty(int(length[0]), dtype=np.uint8)
    if len(buffer):
        comm.broadcast(buffer)
    return buffer.tobytes()


def broadcast_json(comm: Communicator, value=None):
    """Rank 0's ``value`` (anything ``json`` writes) on every rank."""
    text = json.dumps(value).encode() if comm.rank == 0 else None
    return json.loads(broadcast_bytes(comm, text))
