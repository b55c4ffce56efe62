"""How many replica processes, how big a slice, how long a silence.

The numbers and checks of :mod:`cnnumpy.distributed.replicas` (see its docstring for
why): at most one process per core this process may run on, a slice of at least
:data:`MIN_SLICE` examples each, and a replica that stays silent longer than its limit
counts as dead.
"""

from __future__ import annotations

import math
import os

import numpy as np

__all__ = [
    "MIN_SLICE",
    "SLOW_FACTOR",
    "START_TIMEOUT",
    "STEP_TIMEOUT",
    "TIMEOUT_VARIABLE",
    "available_cores",
    "check_processes",
    "most_processes",
    "silence_timeout",
    "split_sizes",
]

START_TIMEOUT = 120.0  # seconds for a replica to import cnnumpy and build the model
# A replica may stay silent in a step for STEP_TIMEOUT seconds, or SLOW_FACTOR times the
# slowest step seen if longer: a big model on a busy machine is slow, not stuck
STEP_TIMEOUT = 60.0
SLOW_FACTOR = 50
TIMEOUT_VARIABLE = "CNNUMPY_REPLICA_TIMEOUT"  # seconds, in place of STEP_TIMEOUT
MIN_SLICE = 8  # a batch is split only when every process gets at least this many


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


def split_sizes(n: int, parts: int) -> list[int]:
    """``n`` cut into ``parts`` near-equal slice sizes, the largest first."""
    return [n // parts + (k < n % parts) for k in range(parts)]


def silence_timeout(timeout) -> float:
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
