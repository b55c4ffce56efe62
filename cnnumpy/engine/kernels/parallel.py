"""Chunks and scratch memory shared by the fast kernels.

The kernels split a batch into chunks (:func:`chunk_bounds`) and give whole chunks to
the worker threads of :mod:`cnnumpy.engine.kernels.threads` (re-exported here:
``parallel_chunks``, ``blas_one_thread``, ``WORKERS``), each copying AND multiplying
its chunk with the BLAS held to one thread. Chunks write into scratch arrays that are
reused from call to call (:class:`Workspace`), so that no step pays for fresh pages.
Element-wise work is split the same way (:func:`by_rows`).
"""

from __future__ import annotations

import math
import sys
import threading

import numpy as np

from cnnumpy.engine.kernels import threads
from cnnumpy.engine.kernels.threads import (  # noqa: F401 (re-exported)
    WORKERS,
    blas_one_thread,
    parallel_chunks,
)

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


class CacheBuffers:
    """Buffers for what a forward keeps for its backward, reused once no cache holds
    them.

    A forward's cache lives until its backward (and until the layer's next forward
    replaces it), so its arrays cannot be shared like :data:`SCRATCH`: the next layer
    of the same shape would overwrite them first. Each buffer here is handed out
    again only when this pool is its last holder (its reference count is back to
    what it was when the pool alone held it; a view of it counts as a holder): the
    cache that kept it has been replaced by a newer forward's, or dropped. A network
    then cycles through one buffer per layer of that shape plus one, and no step
    pays for fresh pages. Buffers of a shape no longer asked for are freed as soon
    as no cache holds them.

    Measured: the backward of an LSTM block (32 sequences, 50 steps, 256 units)
    writing its gate gradients into a fresh ``np.empty`` spent 25 microseconds a step
    in page faults, an eighth of the step.
    """

    LIMIT = 64  # buffers per shape; beyond (caches kept by the caller), fresh ones

    def __init__(self) -> None:
        self._pools: dict[tuple, list[np.ndarray]] = {}
        self._lock = threading.Lock()
        # held by one list and nothing else: its reference count, taken the same way
        # as a pooled buffer's, is what a buffer no cache holds counts
        self._alone = [np.empty(0)]

    def empty(self, role: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An uninitialised array of ``shape`` that no cache holds (``role`` keeps
        apart the buffers of one shape that a kernel needs at once)."""
        with self._lock:
            return self._free((tuple(shape), np.dtype(dtype).str, role))

    def _unheld(self, buffers: list[np.ndarray], i: int) -> bool:
        return sys.getrefcount(buffers[i]) <= sys.getrefcount(self._alone[0])

    def _free(self, key: tuple) -> np.ndarray:
        """A buffer of ``key`` (shape, dtype, ...) no cache holds; a new one is
        zeroed."""
        pool = self._pools.setdefault(key, [])
        for i in range(len(pool)):
            if self._unheld(pool, i):
                return pool[i]
        for other in list(self._pools):  # forget the buffers of shapes gone by
            buffers = self._pools[other]
            keep = [i for i in range(len(buffers)) if not self._unheld(buffers, i)]
            if other != key and len(keep) < len(buffers):
                self._pools[other] = [buffers[i] for i in keep]
                if not keep:
                    del self._pools[other]
        buf = np.zeros(key[0], dtype=np.dtype(key[1]))
        if len(pool) < self.LIMIT:
            pool.append(buf)
        return buf

    def clear(self) -> None:
        with self._lock:
            self._pools.clear()


class PaddedBuffers(CacheBuffers):
    """Zero-bordered buffers for the padded inputs a convolution keeps in its cache.

    Reused as :class:`CacheBuffers` are; a buffer's border is zeroed once, when it is
    made, and never written again (the forward writes the interior only).
    """

    def padded(self, x: np.ndarray, pads: Pads) -> np.ndarray:
        """``x`` zero-padded by ``pads`` on its last two axes, in a free buffer."""
        (top, bottom), (left, right) = pads
        H, W = x.shape[-2:]
        shape = x.shape[:-2] + (H + top + bottom, W + left + right)
        with self._lock:
            buf = self._free((shape, x.dtype.str, top, left))
        buf[..., top : top + H, left : left + W] = x
        return buf


PADDED = PaddedBuffers()
KEPT = CacheBuffers()  # the recurrent kernels' caches


def chunk_bounds(
    n: int, bytes_per_item: int, chunk_bytes: int | None = None
) -> list[tuple[int, int]]:
    """Split ``range(n)`` into chunks of about ``chunk_bytes`` (default
    :data:`CHUNK_BYTES`) of scratch each, and, unless the whole job is below
    :data:`PARALLEL_BYTES`, at least as many chunks as there are workers (so that
    every core has work)."""
    if n <= 0:
        return [(0, 0)]  # one empty chunk: kernels still run (and return) once
    chunk_bytes = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    step = max(1, min(n, chunk_bytes // max(bytes_per_item, 1)))
    if n * bytes_per_item >= PARALLEL_BYTES:  # tiny jobs: threads cost more than gain
        # a multiple of WORKERS chunks of near-equal size: no worker waits for another
        # (64 images in chunks of 22, 22 and 20 would keep one core idle a third)
        count = -(-n // step)
        count = min(n, -(-count // threads.WORKERS) * threads.WORKERS)
        cuts = [n * k // count for k in range(count + 1)]
        return list(zip(cuts[:-1], cuts[1:], strict=True))
    return [(lo, min(n, lo + step)) for lo in range(0, n, step)]


def halves(n: int, work: int, threshold: int) -> list[tuple[int, int]]:
    """``range(n)`` cut into :data:`WORKERS` near-equal parts when ``work`` (bytes
    touched, or multiply-adds) reaches ``threshold``, else left whole: below that,
    handing work to a thread costs more than it saves (tens of microseconds)."""
    parts = threads.WORKERS if work >= threshold else 1
    parts = max(1, min(parts, n))
    cuts = [n * k // parts for k in range(parts + 1)]
    return list(zip(cuts[:-1], cuts[1:], strict=True))


def by_rows(fn, *arrays: np.ndarray) -> None:
    """Call ``fn(*parts)`` on matching parts of ``arrays`` (all of one shape), on the
    worker threads when they are big enough: the way element-wise layers use every
    core (a NumPy ufunc alone uses one). Contiguous arrays are cut anywhere (as flat
    views), others along their first axis. ``fn`` writes its results into the parts
    of its output arrays."""
    if any(a.shape != arrays[0].shape for a in arrays):
        shapes = [a.shape for a in arrays]
        raise ValueError(f"by_rows: expected arrays of one shape, got {shapes}")
    if all(a.flags.c_contiguous for a in arrays):
        arrays = tuple(a.reshape(-1) for a in arrays)  # views: writes go through
    elif arrays[0].ndim == 0:
        fn(*arrays)
        return
    n = len(arrays[0])
    per_item = sum(a.nbytes for a in arrays) // max(n, 1)
    parts = chunk_bounds(n, max(1, per_item))
    parallel_chunks(lambda lo, hi, k: fn(*(a[lo:hi] for a in arrays)), parts)


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
