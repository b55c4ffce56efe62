"""The worker threads of the fast kernels, and the hold on the BLAS's own threads.

NumPy runs a copy or a ufunc on one core, so the kernels split a batch into chunks and
give whole chunks to :data:`WORKERS` threads (:func:`parallel_chunks`): the calling
thread is worker 0, and ``WORKERS - 1`` helper threads, made once, do the rest. NumPy
releases the GIL inside copies, ufuncs and matrix products, so the threads really run
side by side. Meanwhile the BLAS is held to one thread per call
(:func:`blas_one_thread`): each worker's product then runs on the worker's own core.
"""

from __future__ import annotations

import contextlib
import os
import threading


def _workers() -> int:
    """Threads that process chunks side by side (the calling thread and its helpers):
    one per core, at most 4, or ``CNNUMPY_THREADS`` when set (1 = no helper)."""
    given = os.environ.get("CNNUMPY_THREADS")
    if given is None:
        return max(1, min(os.cpu_count() or 1, 4))
    try:
        count = int(given)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(
            f"CNNUMPY_THREADS: expected a whole number >= 1, got {given!r}"
        )
    return count


WORKERS = _workers()


class _Helper:
    """One helper thread, woken by a bare lock: ``start(fn)``, then ``wait()``.

    Why not ``concurrent.futures``: a hand-off there (future, queue, condition) cost
    about 170 microseconds on this project's virtual machine, a bare lock ping-pong
    about 110; a training step of LeNet-5 at batch 64 hands off 9 times.
    """

    def __init__(self, k: int) -> None:
        self._go, self._done = threading.Lock(), threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._fn = None
        self._outcome: tuple[bool, object] = (True, None)
        self.pending = False  # started and not yet waited for
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
        self.pending = True
        self._go.release()

    def wait(self) -> tuple[bool, object]:
        """``(True, result)`` or ``(False, exception)`` of the last ``fn``.

        An interrupt (Ctrl-C) while waiting leaves ``pending`` set: the crew is then
        dropped (see :func:`parallel_chunks`), never reused half-way through a job.
        """
        self._done.acquire()
        self.pending = False
        outcome, self._outcome = self._outcome, (True, None)
        return outcome


class _Crew:
    """``WORKERS - 1`` helpers for one process; one caller at a time (``busy``)."""

    def __init__(self, workers: int) -> None:
        self.pid = os.getpid()
        self.busy = threading.Lock()
        self.helpers = [_Helper(k) for k in range(1, workers)]


_CREW: _Crew | None = None
_CREW_LOCK = threading.Lock()
_LOCAL = threading.local()  # .solo: this thread's kernels run without helpers


@contextlib.contextmanager
def solo():
    """Run this thread's kernels on this thread alone while the block runs.

    Why: with process replicas (:mod:`cnnumpy.distributed.replicas`) every core
    already runs one process; helper threads would only fight them for the cores.
    """
    before = getattr(_LOCAL, "solo", False)
    _LOCAL.solo = True
    try:
        yield
    finally:
        _LOCAL.solo = before


def _crew() -> _Crew:
    """The helpers, made on first use (and again in a forked child, which inherits
    no threads, or after an interrupted job)."""
    global _CREW
    with _CREW_LOCK:
        crew = _CREW
        if crew is None or crew.pid != os.getpid() or len(crew.helpers) < WORKERS - 1:
            crew = _CREW = _Crew(WORKERS)
        return crew


def _drop_crew(crew: _Crew) -> None:
    """Forget ``crew`` (a helper may still be busy with an abandoned job: it ends it,
    then sleeps for good); the next job makes fresh helpers."""
    global _CREW
    with _CREW_LOCK:
        if _CREW is crew:
            _CREW = None


def parallel_chunks(work, bounds: list[tuple[int, int]]) -> list:
    """Run ``work(lo, hi, worker)`` over every chunk, on up to :data:`WORKERS` threads.

    Why: NumPy's copies and ufuncs run on one core, and a multi-threaded BLAS call on
    a small matrix spends much of its time synchronising its threads. Giving each core
    whole chunks to copy AND multiply, with the BLAS held to one thread meanwhile,
    keeps both cores busy with no barrier but the final join.

    With ``w = min(WORKERS, len(bounds))`` workers, worker ``k`` handles chunks
    ``k, k + w, ...`` (its first chunk is ``bounds[k]``) and must use scratch of its
    own (e.g. ``f"cols{k}"``). When the helpers are taken (another thread's kernel, or
    a kernel called from inside a chunk) the calling thread does every chunk as
    worker 0. Every chunk has ended before an error is raised; the caller's own error
    comes first. Returns each worker's last return value.
    """
    workers = min(WORKERS, len(bounds))
    crew = _crew() if workers > 1 and not getattr(_LOCAL, "solo", False) else None
    if crew is None or not crew.busy.acquire(blocking=False):
        result = None
        for lo, hi in bounds:
            result = work(lo, hi, 0)
        return [result]

    def run(k: int):
        result = None
        for lo, hi in bounds[k::workers]:
            result = work(lo, hi, k)
        return result

    helpers = crew.helpers[: workers - 1]
    try:
        with blas_one_thread():
            try:
                for k, helper in enumerate(helpers, start=1):
                    helper.start(lambda k=k: run(k))
                first = run(0)  # the calling thread is worker 0: one hand-off fewer
            finally:
                outcomes = [h.wait() for h in helpers if h.pending]
        for ok, value in outcomes:
            if not ok:
                raise value
        return [first, *(value for _, value in outcomes)]
    finally:
        if any(h.pending for h in helpers):  # interrupted while a helper still ran
            _drop_crew(crew)
        else:
            crew.busy.release()


# -- the hold on the BLAS threads ------------------------------------------------------

_BLAS = None  # threadpoolctl's controller, False without threadpoolctl
_HOLDERS: dict[int, int] = {}  # thread id -> depth of its nested holds
_LIMIT = None  # threadpoolctl's limiter while any thread holds
_HOLD_LOCK = threading.Lock()


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


def _release_if_free() -> None:
    global _LIMIT
    if not _HOLDERS and _LIMIT is not None:
        limit, _LIMIT = _LIMIT, None
        limit.restore_original_limits()


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
    thread too; the original setting returns when the last holder leaves.
    """
    global _LIMIT
    controller = _controller()
    if controller is False:
        yield
        return
    me = threading.get_ident()
    with _HOLD_LOCK:
        if _LIMIT is None:
            _LIMIT = controller.limit(limits=1, user_api="blas")
        _HOLDERS[me] = _HOLDERS.get(me, 0) + 1
    try:
        yield
    finally:
        with _HOLD_LOCK:
            _HOLDERS[me] -= 1
            if not _HOLDERS[me]:
                del _HOLDERS[me]
            _release_if_free()


def _after_fork_in_child() -> None:
    """A forked child has only the thread that forked: forget the other threads'
    holds (restoring the BLAS if none is left) and make new locks and helpers."""
    global _HOLD_LOCK, _CREW, _CREW_LOCK
    _HOLD_LOCK, _CREW_LOCK, _CREW = threading.Lock(), threading.Lock(), None
    me = threading.get_ident()
    for thread in [t for t in _HOLDERS if t != me]:
        del _HOLDERS[thread]
    _release_if_free()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
