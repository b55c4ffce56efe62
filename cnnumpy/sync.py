"""The slice of a batch this process trains on, when a step is split over processes.

:mod:`cnnumpy.distributed.replicas` (processes of one machine) and
:mod:`cnnumpy.distributed.data_parallel` (MPI ranks) run one training step over
several processes, each on a slice of the batch. Most layers never know: each
example's forward and backward pass is its own. Two layers depend on the whole batch,
and read :func:`current` in training:

- :class:`~cnnumpy.layers.BatchNorm` normalises with the statistics of the whole batch,
  so its per-channel sums (forward: the sum, then the squared deviations from the mean;
  backward: the two sums of its gradient) are added up over the processes by the
  slice's communicator (``comm.allreduce``, in place) before use. The numbers are
  those of one process up to float rounding.
- :class:`~cnnumpy.layers.Dropout` draws the mask of the whole batch, from a generator
  in the same state in every process, and keeps its own rows: the same mask as one
  process would draw.

Both talk to the communicator interface only
(:class:`~cnnumpy.distributed.communicator.Communicator`), whichever processes are
behind it. Every process reaches the same ``allreduce`` calls in the same order (they
run the same layers); ``allreduce`` returns once every process has given its part.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from cnnumpy.distributed.communicator import Communicator

_local = threading.local()


@dataclass(frozen=True)
class Slice:
    """Rows ``lo:hi`` of a batch of ``total`` examples, and the communicator of the
    processes that share the batch."""

    lo: int
    hi: int
    total: int
    comm: Communicator

    @property
    def share(self) -> float:
        """This slice's weight in the batch's mean loss, ``(hi - lo) / total``."""
        return (self.hi - self.lo) / self.total


def current() -> Slice | None:
    """The slice this thread is training on, or None (the whole batch is here)."""
    return getattr(_local, "slice", None)


@contextlib.contextmanager
def training_slice(part: Slice) -> Iterator[Slice]:
    """Run a training step on ``part`` of the batch (see the module docstring)."""
    before = current()
    _local.slice = part
    try:
        yield part
    finally:
        _local.slice = before
