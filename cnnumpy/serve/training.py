"""The Train page's API: one training job at a time, in a worker process, watched live.

    POST /api/train         {"name", "model", "dataset", "epochs", "batch_size", "lr",
                             "optimizer", "limit", "augment", "seed"} -> 202 {"run"}
    GET  /api/train/status  {"running", "run", "state", "message", "progress",
                             "epochs"}
    GET  /api/train/events  server-sent events (below)
    POST /api/train/stop    -> {"state": "stopping"}; 409 when nothing runs

A job is ``cnnumpy train`` itself: the form becomes the command's arguments
(``cnnumpy.serve.training_form``), and the worker process
(``cnnumpy.serve.training_worker``) runs them into ``RUNS_DIR/NAME``, an ordinary run
folder that ``cnnumpy train --resume``, ``evaluate`` and the report work on. The
process is started with "spawn" (a fork of a server running threads could inherit a
held lock), so the server answers other requests meanwhile. The worker's events come
through a multiprocessing queue, which a thread of the server reads into the
:class:`Trainer`; every open event stream looks at it every :data:`POLL` seconds.
The events:

- ``state``: the job's status, first on every new connection (with the progress and
  the epochs so far), again (without them) when a job starts or is asked to stop;
- ``progress``, ``filters``, ``epoch`` and ``done``: the worker's, as
  ``cnnumpy.serve.training_worker`` describes them.

A comment line keeps an idle stream open every :data:`KEEP_ALIVE` seconds. A stream
ends when its client goes, or when the server shuts down and sets
``app.state.closing`` (:func:`closing_event`).

A stop takes effect at the worker's next batch boundary, the checkpoint of the last
complete epoch kept; the ``done`` message gives the command that continues the run.
A worker that dies leaves the job "failed" with its exit code, and the next job may
start. When the server shuts down (:func:`shutdown`), a running job is stopped the
same way, or ended after :data:`SHUTDOWN_WAIT` seconds: no worker outlives the
server.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import queue
import threading
import time
from collections import deque
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from cnnumpy.serve.body import read_body
from cnnumpy.serve.errors import ApiError
from cnnumpy.serve.images import describe_bytes
from cnnumpy.serve.training_form import command_line
from cnnumpy.serve.training_worker import work

MAX_FORM_BYTES = 64 * 1024
KEEP_ALIVE = 15.0  # seconds between the comments that keep an idle stream open
POLL = 0.1  # seconds between two looks of an event stream at the job
KEPT_PROGRESS = 500  # progress events the status keeps
KEPT_EVENTS = 2000  # events kept for the streams that are behind
SHUTDOWN_WAIT = 10.0  # seconds a stopping worker has at shutdown before it is ended
RUNNING = ("running", "stopping")


# -- the job ---------------------------------------------------------------------------
class Trainer:
    """The server's one training job: its state, and the events of its worker.

    The request handlers and the thread that reads the worker's queue (the
    follower) share it under one lock. Events are numbered, so that every stream
    sends each one once. The worker's queue and stop event live as long as the job:
    the follower closes the queue and lets both go when the job ends, which frees
    their semaphores.
    """

    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = Path(runs_dir)
        self._lock = threading.Lock()
        self._stop = None  # the running worker's stop event
        self._process = None  # the running worker
        self._follower: threading.Thread | None = None
        self.run, self.state, self.message = None, "idle", ""
        self._progress: deque = deque(maxlen=KEPT_PROGRESS)
        self._epochs: list[dict] = []
        self._filters: dict | None = None
        self._events: deque = deque(maxlen=KEPT_EVENTS)
        self._count = 0  # events so far: the number of the last one

    def start(self, name: str, argv: list[str]) -> None:
        """Start ``cnnumpy argv`` in a worker; 409 when a job runs or ``name`` is
        taken."""
        context = multiprocessing.get_context("spawn")  # no fork of a threaded server
        with self._lock:
            if self.state in RUNNING:
                raise ApiError(
                    409,
                    f"a training is running ({self.run}); stop it "
                    "first or wait for its end",
                )
            folder = self.runs_dir / name
            if folder.exists() or folder.is_symlink():  # a dangling link: taken too
                raise ApiError(
                    409,
                    f"a run named {name!r} exists in {self.runs_dir}"
                    "; choose another name",
                )
            events, self._stop = context.Queue(), context.Event()
            self._process = context.Process(
                target=work,
                args=(argv, events, self._stop),
                daemon=True,  # ended at the server's exit, whatever else happens
                name=f"cnnumpy train {name}",
            )
            self._process.start()
            self.run, self.state, self.message = name, "running", "starting"
            self._progress.clear()
            self._epochs, self._filters = [], None
            self._add("state", self._summary())
            self._follower = threading.Thread(
                target=self._follow, args=(self._process, events), daemon=True
            )
            self._follower.start()

    def stop(self) -> None:
        """Ask the worker to stop at its next batch boundary; 409 when none runs."""
        with self._lock:
            if self.state not in RUNNING:
                raise ApiError(409, "no training is running")
            self._ask_to_stop("stopping at the next batch")

    def _ask_to_stop(self, message: str) -> None:
        self._stop.set()
        self.state, self.message = "stopping", message
        self._add("state", self._summary())

    def close(self, wait: float = SHUTDOWN_WAIT) -> str | None:
        """At the server's shutdown: stop the running job, if any, wait ``wait``
        seconds for its worker, then end it (SIGTERM); wait for the follower of a
        job that has just ended too. Returns the last message of the job it
        stopped, or None when none was running."""
        with self._lock:
            running = self.state in RUNNING
            if self.state == "running":
                self._ask_to_stop("stopping: the server shuts down")
            process, follower = self._process, self._follower
        if follower is None:
            return None
        follower.join(wait)
        if follower.is_alive() and process is not None:  # loading data, or writing
            process.terminate()
            follower.join()
        return f"training {self.run}: {self.message}" if running else None

    def _follow(self, process, events) -> None:
        """The follower: the worker's events into the job, until ``done``, or until
        the worker is gone without one; then the worker's queue closed, and the
        queue and the stop event let go."""
        kind = None
        while kind != "done":
            try:
                kind, payload = events.get(timeout=0.5)
            except queue.Empty:
                if process.is_alive():
                    continue
                kind, payload = _last_words(process, events)
            with self._lock:
                self._receive(kind, payload)
        process.join(timeout=5)
        events.close()
        events.join_thread()
        with self._lock:
            if self._process is process:  # and not the next job's
                self._stop = self._process = None

    def _receive(self, kind: str, payload: dict) -> None:
        if kind == "progress":
            self._progress.append(payload)
        elif kind == "epoch":
            self._epochs.append(payload)
        elif kind == "filters":
            self._filters = payload
        elif kind == "done":
            self.state, self.message = payload["state"], payload["message"]
        self._add(kind, payload)

    def _add(self, kind: str, payload: dict) -> None:
        self._count += 1
        self._events.append((self._count, kind, payload))

    def _summary(self) -> dict:
        return {
            "running": self.state in RUNNING,
            "run": self.run,
            "state": self.state,
            "message": self.message,
        }

    def status(self) -> dict:
        """What ``GET /api/train/status`` answers."""
        with self._lock:
            return self._status()

    def _status(self) -> dict:
        return {
            **self._summary(),
            "progress": list(self._progress),
            "epochs": list(self._epochs),
        }

    def opening(self) -> tuple[list[tuple[str, dict]], int]:
        """A new stream's first events (the status, the last filters) and the number
        of the last event they include."""
        with self._lock:
            first = [("state", self._status())]
            if self._filters is not None:
                first.append(("filters", self._filters))
            return first, self._count

    def events_after(self, seen: int) -> tuple[list[tuple[str, dict]], int]:
        """The events numbered after ``seen`` still kept, and the last number."""
        with self._lock:
            new = [(kind, data) for number, kind, data in self._events if number > seen]
            return new, self._count


def _last_words(process, events) -> tuple[str, dict]:
    """The event of a worker that ended: what is left in the pipe, else ``done``
    (failed) with its exit code."""
    try:
        return events.get(timeout=1.0)
    except queue.Empty:
        code = process.exitcode
        signal = ", killed by a signal" if code is not None and code < 0 else ""
        message = f"the training process ended without a word (exit code {code}"
        return "done", {"state": "failed", "message": f"{message}{signal})"}


def trainer_of(request: Request) -> Trainer:
    """The app's :class:`Trainer` (one per server), made on first use."""
    state = request.app.state
    trainer = getattr(state, "trainer", None)
    if trainer is None:  # no await since the look: no other request in between
        # absolute: the message of a stopped job names a command to run anywhere
        trainer = state.trainer = Trainer(Path(state.runs_dir).absolute())
    return trainer


def closing_event(app) -> threading.Event:
    """``app.state.closing``: set when the server shuts down (``cnnumpy serve``'s
    signal handler, then :func:`shutdown`), it ends the event streams; made, unset,
    on first use."""
    closing = getattr(app.state, "closing", None)
    if closing is None:
        closing = app.state.closing = threading.Event()
    return closing


def shutdown(app, wait: float = SHUTDOWN_WAIT) -> str | None:
    """The app's end (its lifespan's): the streams closed, a running job stopped
    (:meth:`Trainer.close`). Returns that job's last message, or None."""
    closing_event(app).set()
    trainer = getattr(app.state, "trainer", None)
    return None if trainer is None else trainer.close(wait)


# -- the routes ------------------------------------------------------------------------
async def start_training(request: Request) -> JSONResponse:
    body = await read_body(request, MAX_FORM_BYTES)  # 413 past it
    try:
        form = json.loads(body)
    except (ValueError, RecursionError) as exc:
        received = describe_bytes(body) if body else "an empty body"
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise ApiError(
            400, f"the body: expected a JSON object, got {received} (not JSON: {why})"
        ) from None
    trainer = trainer_of(request)
    name, argv = command_line(form, trainer.runs_dir)
    trainer.start(name, argv)
    return JSONResponse({"run": name}, status_code=202)


async def training_status(request: Request) -> JSONResponse:
    return JSONResponse(trainer_of(request).status())


async def stop_training(request: Request) -> JSONResponse:
    trainer_of(request).stop()
    return JSONResponse({"state": "stopping"})


def event_text(kind: str, payload: dict) -> str:
    """One server-sent event: ``event: KIND``, ``data: JSON`` and a blank line."""
    return f"event: {kind}\ndata: {json.dumps(payload, allow_nan=False)}\n\n"


async def _stream(trainer: Trainer, closing: threading.Event):
    first, seen = trainer.opening()
    for kind, payload in first:
        yield event_text(kind, payload)
    quiet_since = time.monotonic()
    # until the client goes (Starlette then cancels this generator) or the server
    # closes: an open stream would hold its shutdown until the browser tab goes
    while not closing.is_set():
        await asyncio.sleep(POLL)
        new, seen = trainer.events_after(seen)
        for kind, payload in new:
            yield event_text(kind, payload)
        now = time.monotonic()
        if new:
            quiet_since = now
        elif now - quiet_since >= KEEP_ALIVE:
            yield ": keep-alive\n\n"  # a comment: proxies and browsers keep the line
            quiet_since = now


async def training_events(request: Request) -> StreamingResponse:
    return StreamingResponse(
        _stream(trainer_of(request), closing_event(request.app)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


routes = [
    Route("/api/train", start_training, methods=["POST"]),
    Route("/api/train/status", training_status, methods=["GET"]),
    Route("/api/train/events", training_events, methods=["GET"]),
    Route("/api/train/stop", stop_training, methods=["POST"]),
]
