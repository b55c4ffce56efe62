"""The training job's own process: ``cnnumpy train`` with a callback that reports.

The server (``cnnumpy.serve.training``) starts :func:`work` in a process of its own
with the command's arguments, a queue and a stop event. :func:`work` parses the
arguments with the command's own parser and runs ``cnnumpy.cli.train.run`` with a
:class:`Reporter` among its callbacks, the command's output kept aside. The reporter
puts ``(kind, payload)`` pairs on the queue:

- ``progress`` ``{"epoch", "batch", "batches", "loss", "accuracy"}``, the epoch's
  running means, at most every :data:`PROGRESS_EVERY` seconds, and after the
  epoch's last batch;
- ``filters``: the first convolution's kernels, with each progress event (as
  ``POST /api/features`` shows them);
- ``epoch``: the epoch's row of ``history.csv``, ``{"epoch", "loss", ...}``;

and :func:`work` puts ``done`` ``{"state", "message"}`` last, ``state`` being
``finished``, ``stopped`` or ``failed``.

A stop takes effect between two batches: the reporter raises :class:`StopTraining`,
a ``KeyboardInterrupt``, which ``fit`` and ``cnnumpy train`` handle as Ctrl-C: the
checkpoint of the last complete epoch stays, every file is written whole or not at
all, and ``cnnumpy train --resume`` continues the run. The reporter stops the run
in the same way if the server is gone. The worker ignores Ctrl-C itself (a terminal
sends it to the server's whole process group): the server, shutting down, asks it
to stop.
"""

from __future__ import annotations

import contextlib
import io
import math
import multiprocessing
import shlex
import signal
import time
from pathlib import Path

import numpy as np

from cnnumpy import callbacks
from cnnumpy.cli import USER_ERRORS, runs, train
from cnnumpy.cli.parser import build_parser
from cnnumpy.serve.predict import filters_json

PROGRESS_EVERY = 0.25  # seconds: at most 4 progress events a second
INTERRUPTED = 130  # cnnumpy's exit code for Ctrl-C, and for a stop from the page


class StopTraining(KeyboardInterrupt):
    """The page asked to stop, or the server is gone. Raised between two batches,
    it ends ``cnnumpy train`` as Ctrl-C does: the last complete epoch checkpointed."""


class Reporter(callbacks.Callback):
    """The worker's callback: progress, filters and epochs onto the server's queue,
    and the stop the server asks for, checked between two batches.

    Args:
        events: the queue the server reads, of ``(kind, payload)`` pairs.
        stop: the event the server sets to stop.
        out: the run folder; its ``config.json`` (written before this callback's
            ``on_train_begin`` runs) gives the examples of an epoch.
        every: seconds between two progress events, at least.

    Attributes:
        examples: the training examples of an epoch, for the number of batches
            and the size of the last one.
        completed: the epochs completed (each one checkpointed).
    """

    def __init__(self, events, stop, out: Path, every: float = PROGRESS_EVERY):
        self.events, self.stop, self.out, self.every = events, stop, out, every
        self.examples, self.completed = 0, 0

    def on_train_begin(self, logs=None):
        self._check_stop()
        config = runs.read_json(self.out / runs.CONFIG)
        self.examples = config["data"]["n_train"]
        self._send_filters()

    def on_epoch_begin(self, epoch, logs=None):
        self._check_stop()  # the previous epoch is checkpointed by now
        self.epoch, self.loss_sum, self.seen, self.sent = epoch, 0.0, 0, -math.inf

    def on_batch_end(self, batch, logs=None):
        batch_size = self.params["batch_size"]
        size = min(batch_size, self.examples - batch * batch_size)
        self.loss_sum += logs["loss"] * size  # logs hold this batch's loss
        self.seen += size
        batches = -(-self.examples // batch_size)
        now = time.monotonic()
        if now - self.sent >= self.every or batch + 1 == batches:
            self.sent = now
            progress = {
                "epoch": self.epoch + 1,
                "batch": batch + 1,
                "batches": batches,
                "loss": self.loss_sum / self.seen,
                "accuracy": logs.get("accuracy"),  # the running mean already
            }
            self._send("progress", progress)
            self._send_filters()
        self._check_stop()

    def on_epoch_end(self, epoch, logs=None):
        self.completed = epoch + 1
        self._send("epoch", {"epoch": epoch + 1, **(logs or {})})

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise StopTraining("stopped from the page")
        server = multiprocessing.parent_process()
        if server is not None and not server.is_alive():
            raise StopTraining("the server is gone")  # no orphan trains on

    def _send_filters(self) -> None:
        filters = filters_json(self.model)  # as POST /api/features shows them
        if filters is not None:
            self._send("filters", filters)

    def _send(self, kind: str, payload: dict) -> None:
        self.events.put((kind, _finite(payload)))


def _finite(value):
    """``value`` as plain JSON: NumPy scalars as Python numbers, and a NaN or an
    infinity (a diverged loss) as null, since JSON has neither."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def work(argv: list[str], events, stop) -> None:
    """The worker process: ``cnnumpy`` ``argv`` (``["train", ...]``) with a
    :class:`Reporter`, its output kept for the last message, then ``("done",
    {"state", "message"})``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides (above)
    out = Path(argv[argv.index("--out") + 1])
    reporter = Reporter(events, stop, out)
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        code = run_train(argv, [reporter])
    events.put(("done", outcome(code, argv, reporter.completed, output.getvalue())))
    events.close()
    events.join_thread()  # the last event is in the pipe before the process ends


def run_train(argv: list[str], extra: list) -> int:
    """``cnnumpy train`` with the ``extra`` callbacks; the exit code
    ``cnnumpy.cli.main`` gives: 0, 2 for a mistake of the user, 3 when training
    diverged, :data:`INTERRUPTED` when stopped; 1 for any other error."""
    assert argv[0] == "train", argv
    try:
        args = build_parser().parse_args(argv)
        return train.run(args, callbacks=extra)
    except KeyboardInterrupt:  # a StopTraining
        return INTERRUPTED
    except USER_ERRORS as exc:
        print(f"cnnumpy: error: {_one_line(exc)}")
        return 2
    except Exception as exc:
        print(f"cnnumpy: error: {type(exc).__name__}: {_one_line(exc)}")
        return 1


def _one_line(exc: BaseException) -> str:
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def outcome(code: int, argv: list[str], completed: int, output: str) -> dict:
    """The ``done`` event of a job that ended with exit ``code`` after ``completed``
    epochs, ``output`` being what the command printed."""
    out = Path(argv[argv.index("--out") + 1])
    if code == 0:
        accuracy = runs.read_json(out / runs.METRICS).get("test_accuracy")
        shown = "" if accuracy is None else f": test accuracy {accuracy:.2%}"
        return {"state": "finished", "message": f"finished{shown}"}
    if code == INTERRUPTED:
        resume = shlex.join(["cnnumpy", *argv, "--resume"])
        return {
            "state": "stopped",
            "message": (
                f"stopped after {completed} complete epoch{'s' * (completed != 1)}; "
                f"continue it with: {resume}"
            ),
        }
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("cnnumpy: error")]
    reason = (errors or lines or [f"exit code {code}"])[-1]
    return {"state": "failed", "message": reason}
