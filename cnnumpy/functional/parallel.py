"""Threads and scratch memory shared by the fast kernels.

NumPy runs a copy or a ufunc on one core, and OpenBLAS's threads suit big matrices
better than the 4 MB chunks the kernels work on. So the kernels split a batch into
chunks and give whole chunks to :data:`WORKERS` threads (:func:`parallel_chunks`),
each copying AND multiplying its chunk with the BLAS held to one thread
(:func:`blas_one_thread`). NumPy releases the GIL inside copies, ufuncs and GEMMs, so
the threads really run side by side. Chunks write into scratch arrays that are reused
from call to call (:class:`Workspace`), so that no step pays for fresh pages.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading

import numpy as np

# Bytes of one im2col chunk. The fast kernels never build the column matrix of a whole
# batch (C*KH*KW x N*Ho*Wo floats: 300 MB for a 32-channel 3x3 layer on 256 CIFAR
# images); they build it for a few images at a time, small enough to stay in the
# processor's cache between the copy that fills it and the GEMM that reads it.
CHUNK_BYTES = 4 * 2**20
# Below this much scratch in all, a kernel runs on the calling thread alone.
PARALLEL_BYTES = 2**20

Pads = tuple[tuple[int, int], tuple[int, int]]


class Workspace:
    """Scratch arrays reused from call to call, one per role and dtype.

    Why: a fresh ``np.empty`` of tens of MB is fresh pages from the kernel, and every
    first touch of a page is a page fault (the kernel zeroes it). Reusing the same
    buffer pass after pass touches pages that are already mapped, and often already in
    cache. A buffer grows when a bigger shape is asked for and is never shrunk.

    ``get`` returns uninitialised memory. ``padded`` returns a buffer whose border is
    zero provided the caller writes only the interior: it is zeroed when (re)allocated
    for a new shape and the border is never written afterwards.
    """

    def __init__(self) -> None:
        self._flat: dict[tuple[str, np.dtype, int], np.ndarray] = {}
        self._padded: dict[str, np.ndarray] = {}

    def get(self, role: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An uninitialised C-contiguous array of ``shape``, reused across calls."""
        # keyed by thread too: two user threads running kernels never share scratch
        key = (role, np.dtype(dtype), threading.get_ident())
        size = math.prod(shape)
        buf = self._flat.get(key)
        if buf is None or buf.size < size:
            buf = np.empty(size, dtype=dtype)
            self._flat[key] = buf
        return buf[:size].reshape(shape)

    def padded(self, role: str, x: np.ndarray, pads: Pads) -> np.ndarray:
        """``x`` zero-padded by ``pads`` on its last two axes, in a reused buffer."""
        (top, bottom), (left, right) = pads
        H, W = x.shape[-2:]
        shape = x.shape[:-2] + (H + top + bottom, W + left + right)
        buf = self._padded.get(role)
        if buf is None or buf.shape != shape or buf.dtype != x.dtype:
            buf = np.zeros(shape, dtype=x.dtype)
            self._padded[role] = buf
        buf[..., top : top + H, left : left + W] = x
        return buf

    def clear(self) -> None:
        """Forget every buffer (the memory returns to the system)."""
        self._flat.clear()
        self._padded.clear()


# Chunk buffers live only during one call, so every layer can share them.
SCRATCH = Workspace()

# Threads that process chunks side by side (see parallel_chunks).
WORKERS = max(1, min(os.cpu_count() or 1, 4))
_CREW: _Crew | None = None
_BLAS = None
_HOLD = None
_HOLD_DEPTH = 0
_HOLD_LOCK = threading.Lock()


class _Helper:
    """One helper thread, woken by a bare lock: ``start(fn)`` then ``wait()``.

    Why not ``concurrent.futures``: a hand-off there (future, queue, condition) cost
    about 170 microseconds on this project's virtual machine, a bare lock ping-pong
    about 110; a training step of LeNet-5 at batch 64 hands off some 30 times.
    """

    def __init__(self, k: int) -> None:
        self._go, self._done = threading.Lock(), threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._fn = None
        self._outcome: tuple[bool, object] = (True, None)
        name = f"cnnumpy-{k}"
        threading.Thread(target=self._loop, name=name, daemon=True).start()

    def _loop(self) -> None:
        while True:
            self._go.acquire()
            try:
                self._outcome = (True, self._fn())
            except BaseException as exc:  # handed to the caller by wait()
                self._outcome = (False, exc)
            self._fn = None
            self._done.release()

    def start(self, fn) -> None:
        self._fn = fn
        self._go.release()

    def wait(self):
        self._done.acquire()
        ok, value = self._outcome
        self._outcome = (True, None)
        if not ok:
            raise value
        return value


class _Crew:
    """``WORKERS - 1`` helpers for one process; one caller at a time (``busy``)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.busy = threading.Lock()
        self.helpers = [_Helper(k) for k in range(1, WORKERS)]


def _crew() -> _Crew:
    """The helpers, made on first use (and again in a child process after a fork,
    which inherits no threads)."""
    global _CREW
    if _CREW is None or _CREW.pid != os.getpid() or len(_CREW.helpers) < WORKERS - 1:
        _CREW = _Crew()
    return _CREW


def _controller():
    """threadpoolctl's controller, or False when threadpoolctl is not installed."""
    global _BLAS
    if _BLAS is None:
        try:
            from threadpoolctl import ThreadpoolController

            _BLAS = ThreadpoolController()
        except ImportError:  # no control: the BLAS keeps its own threads
            _BLAS = False
    return _BLAS


@contextlib.contextmanager
def blas_one_thread():
    """Hold the BLAS to one thread per call while the block runs (reentrant).

    Why: cnnumpy runs its own threads (:func:`parallel_chunks`), each calling the
    BLAS on its chunk; a multi-threaded BLAS call inside would fight them for the
    cores. Worse, after any multi-threaded call OpenBLAS leaves its helper threads
    spinning for a while, waiting for more work: those spinning threads took a core
    from the next layer's workers and made a whole training step up to 40% slower.
    So a model holds the BLAS to one thread for a whole step (or inference pass), and
    the kernels do the parallel work themselves. Nested holds cost a counter only.
    The setting is process-wide: other threads' BLAS calls meanwhile run on one
    thread too.
    """
    global _HOLD_DEPTH, _HOLD
    controller = _controller()
    if controller is False:
        yield
        return
    with _HOLD_LOCK:
        if _HOLD_DEPTH == 0:
            _HOLD = controller.limit(limits=1, user_api="blas")
        _HOLD_DEPTH += 1
    try:
        yield
    finally:
        with _HOLD_LOCK:
            _HOLD_DEPTH -= 1
            if _HOLD_DEPTH == 0:
                _HOLD.restore_original_limits()
                _HOLD = None


def chunk_bounds(
    n: int, bytes_per_item: int, chunk_bytes: int | None = None
) -> list[tuple[int, int]]:
    """Split ``range(n)`` into chunks of about ``chunk_bytes`` (default
    :data:`CHUNK_BYTES`) of scratch each, and, unless the whole job is below
    :data:`PARALLEL_BYTES`, at least as many chunks as there are workers (so that
    every core has work)."""
    chunk_bytes = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    step = max(1, min(n, chunk_bytes // max(bytes_per_item, 1)))
    if n * bytes_per_item >= PARALLEL_BYTES:  # tiny jobs: threads cost more than gain
        # a multiple of WORKERS chunks of near-equal size: no worker waits for another
        # (64 images in chunks of 22, 22 and 20 would keep one core idle a third)
        count = -(-n // step)
        count = min(n, -(-count // WORKERS) * WORKERS)
        cuts = [n * k // count for k in range(count + 1)]
        return list(zip(cuts[:-1], cuts[1:], strict=True))
    return [(lo, min(n, lo + step)) for lo in range(0, n, step)]


def parallel_chunks(work, bounds: list[tuple[int, int]]) -> list:
    """Run ``work(lo, hi, worker)`` over every chunk, on :data:`WORKERS` threads.

    Why: NumPy's copies and ufuncs run on one core, and a multi-threaded BLAS call on
    a small matrix spends much of its time synchronising its threads (badly so when
    another process shares the cores). Giving each core whole chunks to copy AND
    multiply, with the BLAS held to one thread meanwhile, keeps both cores busy with
    no barrier but the final join. NumPy releases the GIL inside copies and GEMMs.
    Worker ``k`` handles chunks ``k, k + WORKERS, ...`` and must use scratch roles of
    its own (e.g. ``f"cols{k}"``). Returns each worker's last return value.
    """
    workers = min(WORKERS, len(bounds))
    crew = _crew() if workers > 1 else None
    if crew is None or not crew.busy.acquire(blocking=False):
        # one worker, or the helpers are taken (another thread's kernel, or a kernel
        # called from inside a chunk): this thread does every chunk
        return [[work(lo, hi, 0) for lo, hi in bounds][-1]]

    def run(k: int):
        result = None
        for lo, hi in bounds[k::workers]:
            result = work(lo, hi, k)
        return result

    try:
        with blas_one_thread():
            helpers = crew.helpers[: workers - 1]
            for k, helper in enumerate(helpers, start=1):
                helper.start(lambda k=k: run(k))
            try:
                first = run(0)  # the calling thread is worker 0: one hand-off fewer
            finally:
                rest = _wait_all(helpers)  # even after an error: they use our arrays
            return [first, *rest]
    finally:
        crew.busy.release()


def _wait_all(helpers: list[_Helper]) -> list:
    """Every helper's result; all are waited for before an error is raised."""
    results, error = [], None
    for helper in helpers:
        try:
            results.append(helper.wait())
        except BaseException as exc:
            error = error or exc
    if error is not None:
        raise error
    return results


def halves(n: int, work: int, threshold: int = PARALLEL_BYTES) -> list[tuple[int, int]]:
    """``range(n)`` cut into :data:`WORKERS` near-equal parts when ``work`` (bytes
    touched, or multiply-adds) reaches ``threshold``, else left whole: below that,
    handing work to a thread costs more than it saves (tens of microseconds)."""
    parts = WORKERS if work >= threshold else 1
    parts = max(1, min(parts, n))
    cuts = [n * k // parts for k in range(parts + 1)]
    return list(zip(cuts[:-1], cuts[1:], strict=True))


def parallel_rows(work, n: int, nbytes: int) -> None:
    """Run ``work(lo, hi, worker)`` on slices of the first axis, in parallel when the
    job is big enough (element-wise layers: NumPy's ufuncs use one core only)."""
    parallel_chunks(work, chunk_bounds(n, max(1, nbytes // max(n, 1))))


def by_rows(fn, *arrays: np.ndarray) -> None:
    """Call ``fn(*parts)`` on matching parts of ``arrays`` (all of one shape), on the
    worker threads when they are big enough: the way element-wise layers use both
    cores. Contiguous arrays are cut anywhere (as flat views), others along their
    first axis. ``fn`` writes its results into the parts of its output arrays."""
    if all(a.flags.c_contiguous for a in arrays) and arrays[0].ndim != 1:
        arrays = tuple(a.reshape(-1) for a in arrays)
    if arrays[0].ndim == 0:
        fn(*arrays)
        return
    nbytes = sum(a.nbytes for a in arrays)
    parallel_rows(
        lambda lo, hi, k: fn(*(a[lo:hi] for a in arrays)), len(arrays[0]), nbytes
    )


_ZEROS: dict[np.dtype, np.ndarray] = {}


def zeros(shape: tuple[int, ...], dtype) -> np.ndarray:
    """A read-only array of zeros of ``shape``, from one shared buffer.

    Why: ``np.maximum(x, zeros)`` runs 4x faster than ``np.maximum(x, 0)`` (NumPy's
    fast SIMD loop is the one for two arrays, not for an array and a scalar), and
    the zeros are allocated once.
    """
    dtype = np.dtype(dtype)
    size = math.prod(shape)
    buf = _ZEROS.get(dtype)
    if buf is None or buf.size < size:
        buf = np.zeros(max(size, 1), dtype=dtype)
        buf.flags.writeable = False
        _ZEROS[dtype] = buf
    return buf[:size].reshape(shape)
