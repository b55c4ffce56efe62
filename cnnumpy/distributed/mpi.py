"""MPI: the ranks that ``mpiexec -n N`` (or a scheduler's ``srun``) started.

The communicator of :mod:`cnnumpy.distributed.communicator` over MPI, through mpi4py
(``pip install "cnnumpy[mpi]"`` installs it with MPICH's wheel, which brings
``mpiexec``). mpi4py is imported here only, and only when a run is distributed:
cnnumpy itself needs NumPy alone.

- :func:`launched`: whether this process is one of several MPI ranks, read from the
  environment the launchers set (``PMI_SIZE``: MPICH, Intel MPI and Slurm's PMI;
  ``OMPI_COMM_WORLD_SIZE``: Open MPI; ``MV2_COMM_WORLD_SIZE``: MVAPICH), or from
  mpi4py's ``COMM_WORLD`` when the program has already started MPI. Nothing is
  imported to find out.
- :func:`world`: the :class:`MPICommunicator` of every rank (``COMM_WORLD``).
- :func:`abort_on_error`: a rank that raises prints its error and stops every rank
  (``MPI_Abort``). Without it the others would wait for it forever in their next
  ``Allreduce``. A rank that dies without raising (SIGKILL, out of memory) is the
  launcher's to see: ``mpiexec`` then ends the other ranks.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import traceback
from collections.abc import Iterator
from typing import NoReturn

import numpy as np

from cnnumpy.distributed.communicator import Communicator, check_buffer

__all__ = [
    "SIZE_VARIABLES",
    "MPICommunicator",
    "abort_on_error",
    "launched",
    "wanted",
    "world",
]

# the number of ranks, and this process's rank, as each launcher tells its processes
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
INSTALL = 'pip install "cnnumpy[mpi]" (mpi4py and MPICH\'s mpiexec)'
# exit codes of a stopped run, as the command line's (cnnumpy.cli): a mistake of the
# user, any other error, an interrupt
USER_ERROR, ERROR, INTERRUPTED = 2, 1, 130

_world: MPICommunicator | None = None
_guarding = 0  # abort_on_error blocks open: an inner one leaves errors to the outer


def launched() -> bool:
    """Whether this process is one of several MPI ranks (module docstring)."""
    for name in SIZE_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 1:
            return True
    mpi = sys.modules.get("mpi4py.MPI")  # already started by the program itself
    if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
        return mpi.COMM_WORLD.Get_size() > 1
    return False


def launcher_rank() -> int:
    """This process's rank as the launcher's environment gives it (0 outside MPI),
    without starting MPI: for what every rank would say alike before training (a
    mistyped option), said by rank 0 alone."""
    for name in RANK_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return 0


def wanted(distributed: bool | None, where: str = "fit") -> bool:
    """``distributed`` (True or False), or for None whether MPI :func:`launched`
    this process."""
    if distributed is not None and not isinstance(distributed, bool):
        raise TypeError(
            f"{where}: distributed must be True, False or None (detect), "
            f"got {distributed!r}"
        )
    return launched() if distributed is None else distributed


def world() -> MPICommunicator:
    """Every rank's communicator (mpi4py's ``COMM_WORLD``); starts MPI if needed."""
    global _world
    if _world is None:
        try:
            from mpi4py import MPI
        except ImportError as exc:
            raise ImportError(
                f"distributed training needs mpi4py and an MPI library: {INSTALL} "
                f"({exc})"
            ) from exc
        _world = MPICommunicator(MPI.COMM_WORLD)
    return _world


class MPICommunicator(Communicator):
    """:class:`~cnnumpy.distributed.communicator.Communicator` over an MPI
    communicator: ``Allreduce`` with ``MPI.IN_PLACE`` and ``Bcast`` from rank 0.

    Attributes:
        comm: the mpi4py communicator.
        local_size: how many of its ranks run on this machine (they share its cores).
    """

    def __init__(self, comm) -> None:
        from mpi4py import MPI

        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.in_place, self.sum = MPI.IN_PLACE, MPI.SUM
        local = comm.Split_type(MPI.COMM_TYPE_SHARED)  # the ranks of this machine
        self.local_size = local.Get_size()
        local.Free()

    def allreduce(self, buffer: np.ndarray) -> None:
        self.comm.Allreduce(self.in_place, check_buffer(buffer, "allreduce"), self.sum)

    def broadcast(self, buffer: np.ndarray) -> None:
        self.comm.Bcast(check_buffer(buffer, "broadcast"), root=0)

    def abort(self, code: int) -> None:
        """Stop every rank (``MPI_Abort``), this one with exit code ``code``."""
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        _wait_until_read((sys.stdout, sys.stderr))
        self.comm.Abort(code)


def _wait_until_read(streams, seconds: float = 2.0) -> None:
    """Wait (``seconds`` at most) until the launcher has read what this rank wrote.

    ``mpiexec`` forwards a rank's output through pipes, and stops reading them once
    the job aborts: an error message still in the pipe would be lost (seen about once
    in 25 runs). A pipe's ``FIONREAD`` counts the bytes not read yet; a terminal or
    a file (no launcher between) is skipped.
    """
    import array
    import fcntl
    import termios
    import time

    deadline = time.monotonic() + seconds
    unread = array.array("i", [0])
    for stream in streams:
        try:
            fd = stream.fileno()
            if not stat.S_ISFIFO(os.fstat(fd).st_mode):
                continue
            fcntl.ioctl(fd, termios.FIONREAD, unread)
            while unread[0] > 0 and time.monotonic() < deadline:
                time.sleep(0.005)
                fcntl.ioctl(fd, termios.FIONREAD, unread)
        except (OSError, ValueError, AttributeError):  # closed, replaced, not a file
            continue


@contextlib.contextmanager
def abort_on_error(
    comm: MPICommunicator, passes: tuple = (), user_errors: tuple = ()
) -> Iterator[None]:
    """Run the block; if it raises, print the error and stop every rank.

    Every rank's next ``Allreduce`` would otherwise wait forever for the rank that
    raised. The error goes to stderr, named by rank: the traceback, then one line
    (only the line for ``user_errors``, the command line's mistakes of the user, and
    for an interrupt). Then ``MPI_Abort``: the launcher ends every rank, and
    ``mpiexec`` exits with an error. Inside another such block (``fit`` within
    ``cnnumpy train``) it does nothing: the outer block tells the error its way.

    Args:
        comm: the ranks to stop.
        passes: errors that every rank raises at the same point of the same step
            (a diverged loss, the same on every rank): they go on as usual.
        user_errors: errors told in one line (exit code 2 as the command line's).
    """
    global _guarding
    if _guarding:
        yield
        return
    _guarding += 1
    try:
        yield
    except passes:
        raise
    except SystemExit as exc:
        if exc.code in (None, 0):
            raise
        _stop(comm, f"exited with {exc.code}", ERROR)
    except KeyboardInterrupt:
        _stop(comm, "interrupted", INTERRUPTED)
    except user_errors as exc:
        text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        _stop(comm, f"error: {text}", USER_ERROR)
    except BaseException as exc:
        traceback.print_exc(file=sys.stderr)
        text = "".join(traceback.format_exception_only(exc)).strip()
        _stop(comm, f"error: {text}", ERROR)
    finally:
        _guarding -= 1


def _stop(comm: MPICommunicator, what: str, code: int) -> NoReturn:
    """Say why, stop every rank, and end this process.

    MPICH's ``MPI_Abort`` returns to its caller before the launcher's kill arrives:
    returning from here would let the user's script go on after ``fit`` (save a
    half-trained model, mark the run done), so this process ends itself at once.
    """
    print(
        f"cnnumpy: rank {comm.rank} of {comm.size}: {what}; stopping every rank",
        file=sys.stderr,
    )
    comm.abort(code)  # flushes stdout and stderr first
    os._exit(code)
