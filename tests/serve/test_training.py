"""The Train page's API: a job in a worker process, its events, stop, and refusals;
the callbacks ``cnnumpy train`` takes from its caller (the worker's reporter); the
server's end, with a stream open and a job running.

Every job trains LeNet-5 on a few hundred digits of the offline MNIST sample. The
event stream never ends by itself (the page keeps it open), and Starlette's
TestClient reads a whole answer before returning: those tests run the app in a real
uvicorn server on a thread instead (``tests.serve.live``), and the server's end is
tested on ``cnnumpy serve`` itself, in a process of its own.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import multiprocessing
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette")
httpx2 = pytest.importorskip("httpx2")

from starlette.testclient import TestClient  # noqa: E402

from cnnumpy import callbacks  # noqa: E402
from cnnumpy.cli import main as cli_main  # noqa: E402
from cnnumpy.cli import train  # noqa: E402
from cnnumpy.cli.parser import build_parser  # noqa: E402
from cnnumpy.serve import make_app, training, training_form  # noqa: E402
from tests.serve.live import live_server  # noqa: E402

SHORT = {
    "model": "lenet5",
    "dataset": "mnist-sample",
    "epochs": 2,
    "batch_size": 32,
    "limit": 256,
}
TIMEOUT = 60.0  # seconds a job may take on a loaded machine


@pytest.fixture
def runs_dir(tmp_path):
    return tmp_path / "runs"


@pytest.fixture
def client(runs_dir):
    with TestClient(make_app(runs_dir)) as test_client:
        yield test_client
        status = test_client.get("/api/train/status").json()
        if status["running"]:  # a failed test leaves no worker behind
            test_client.post("/api/train/stop")
            wait_for_end(test_client)


def wait_for_end(client, timeout: float = TIMEOUT) -> dict:
    return wait_until(client, lambda status: not status["running"], timeout)


def wait_until(client, done, timeout: float = TIMEOUT) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get("/api/train/status").json()
        if done(status):
            return status
        time.sleep(0.1)
    raise AssertionError(f"the job did not get there in {timeout} s: {status}")


def history_rows(folder) -> list[dict]:
    with open(folder / "history.csv", newline="") as file:
        return list(csv.DictReader(file))


# -- a job -----------------------------------------------------------------------------
def test_a_job_writes_an_ordinary_run_folder(client, runs_dir):
    answer = client.post("/api/train", json={"name": "first", **SHORT})
    assert answer.status_code == 202 and answer.json() == {"run": "first"}
    busy = client.post("/api/train", json={"name": "second", **SHORT})
    assert busy.status_code == 409 and "first" in busy.json()["error"]
    status = wait_for_end(client)
    assert status["state"] == "finished", status
    assert status["run"] == "first" and "test accuracy" in status["message"]
    folder = runs_dir / "first"
    written = ("config.json", "model.safetensors", "history.csv", "metrics.json")
    for name in (*written, "report.html"):  # the report, as cnnumpy train writes it
        assert (folder / name).is_file(), name
    assert [row["epoch"] for row in history_rows(folder)] == ["1", "2"]
    assert [row["epoch"] for row in status["epochs"]] == [1, 2]
    progress = status["progress"]
    assert progress and set(progress[-1]) == {
        "epoch", "batch", "batches", "loss", "accuracy"
    }  # fmt: skip
    assert progress[-1]["batch"] == progress[-1]["batches"] == 8  # 230 images / 32
    assert progress[-1]["loss"] == pytest.approx(status["epochs"][-1]["loss"])
    assert [run["name"] for run in client.get("/api/runs").json()["runs"]] == ["first"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli_main(["evaluate", str(folder), "--limit", "64"]) == 0
    taken = client.post("/api/train", json={"name": "first", **SHORT})
    assert taken.status_code == 409 and "first" in taken.json()["error"]


@pytest.mark.slow
def test_stop_leaves_a_folder_that_resume_finishes(client, runs_dir):
    form = {**SHORT, "name": "stopped", "epochs": 3, "limit": 2000, "batch_size": 16}
    assert client.post("/api/train", json=form).status_code == 202
    wait_until(client, lambda status: len(status["epochs"]) >= 1)
    answer = client.post("/api/train/stop")
    assert answer.status_code == 200 and answer.json() == {"state": "stopping"}
    status = wait_for_end(client)
    assert status["state"] == "stopped", status
    folder = runs_dir / "stopped"
    assert (folder / "checkpoint" / "checkpoint.safetensors").is_file()
    assert not (folder / "model.safetensors").exists()
    completed = len(history_rows(folder))
    assert 1 <= completed < 3 and len(status["epochs"]) == completed
    assert not list(folder.glob("**/*.tmp*"))  # nothing half-written
    command = shlex.split(status["message"].split("continue it with: ")[1])
    assert command[0] == "cnnumpy" and command[-1] == "--resume"
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli_main(command[1:]) == 0
    assert [row["epoch"] for row in history_rows(folder)] == ["1", "2", "3"]
    assert (folder / "model.safetensors").is_file()


def test_stop_without_a_job_is_409(client):
    answer = client.post("/api/train/stop")
    assert answer.status_code == 409
    assert client.get("/api/train/status").json()["state"] == "idle"


@pytest.mark.slow
def test_a_killed_worker_fails_the_job_and_frees_the_server(client, runs_dir):
    form = {**SHORT, "name": "killed", "epochs": 50, "limit": 2000}
    assert client.post("/api/train", json=form).status_code == 202
    wait_until(client, lambda status: status["progress"])
    (worker,) = [p for p in multiprocessing.active_children() if "killed" in p.name]
    os.kill(worker.pid, signal.SIGKILL)
    status = wait_for_end(client)
    assert status["state"] == "failed" and "exit code -9" in status["message"]
    again = client.post("/api/train", json={"name": "after", **SHORT})
    assert again.status_code == 202
    assert wait_for_end(client)["state"] == "finished"


def test_a_failing_job_says_why(client, runs_dir):
    form = {**SHORT, "name": "one", "limit": 1}  # no image left to validate on
    assert client.post("/api/train", json=form).status_code == 202
    status = wait_for_end(client)
    assert status["state"] == "failed"
    assert status["message"].startswith("cnnumpy: error: --val-split 0.1")


# -- the event stream ------------------------------------------------------------------
def events(lines):
    """``(kind, payload)`` of each server-sent event; comments are skipped."""
    kind, data = None, []
    for line in lines:
        if line.startswith(":"):
            continue
        if line.startswith("event: "):
            kind = line[len("event: ") :]
        elif line.startswith("data: "):
            data.append(line[len("data: ") :])
        elif not line and kind is not None:
            yield kind, json.loads("\n".join(data))
            kind, data = None, []


def test_events_stream_the_state_progress_filters_and_epochs(runs_dir):
    app = make_app(runs_dir)
    seen = []
    with live_server(app) as url, httpx2.Client(base_url=url, timeout=TIMEOUT) as http:
        with http.stream("GET", "/api/train/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            received = events(stream.iter_lines())
            seen.append(next(received))
            answer = http.post("/api/train", json={"name": "live", **SHORT})
            assert answer.status_code == 202
            for kind, payload in received:
                seen.append((kind, payload))
                if kind == "done":
                    break
    kinds = [kind for kind, _ in seen]
    assert seen[0] == ("state", {
        "running": False, "run": None, "state": "idle", "message": "",
        "progress": [], "epochs": [],
    })  # fmt: skip
    assert seen[1][0] == "state" and seen[1][1]["state"] == "running"
    assert {"progress", "filters", "epoch"} <= set(kinds)
    assert seen[-1][1]["state"] == "finished"
    filters = [payload for kind, payload in seen if kind == "filters"][-1]
    assert filters["layer"] == 0 and filters["shape"] == [6, 1, 5, 5]
    assert len(filters["maps"]) == 6 and filters["maps"][0]["shape"] == [5, 5]
    epochs = [payload["epoch"] for kind, payload in seen if kind == "epoch"]
    assert epochs == [1, 2]


def test_an_idle_stream_is_kept_alive(runs_dir, monkeypatch):
    monkeypatch.setattr(training, "KEEP_ALIVE", 0.3)
    with live_server(make_app(runs_dir)) as url:
        with httpx2.stream("GET", f"{url}/api/train/events", timeout=10) as stream:
            lines = stream.iter_lines()
            assert next(lines) == "event: state"
            assert next(line for line in lines if line.startswith(":")) == (
                ": keep-alive"
            )


def test_streams_end_when_the_server_closes(runs_dir):
    app = make_app(runs_dir)
    with live_server(app) as url:
        with httpx2.stream("GET", f"{url}/api/train/events", timeout=10) as stream:
            lines = stream.iter_lines()
            assert next(lines) == "event: state"
            training.closing_event(app).set()
            assert [line for line in lines if line.startswith("event")] == []


def test_a_new_stream_starts_with_what_happened(client):
    """``state`` first, with the progress and epochs so far, then the last filters."""
    answer = client.post("/api/train", json={"name": "earlier", **SHORT})
    assert answer.status_code == 202
    finished = wait_for_end(client)
    trainer = client.app.state.trainer
    opening, _ = trainer.opening()
    assert opening[0] == ("state", finished)
    assert opening[1][0] == "filters" and opening[1][1]["shape"] == [6, 1, 5, 5]


# -- the form --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "named", "shown"),
    [
        ({"name": "../up"}, "name", '"../up"'),
        ({"name": ""}, "name", '""'),
        ({"name": ".hidden"}, "name", '".hidden"'),
        ({"name": 7}, "name", "7"),
        ({"model": "vgg16"}, "model", '"vgg16"'),
        ({"model": "char_rnn"}, "model", '"char_rnn"'),
        ({"model": None}, "model", "null"),
        ({"dataset": "imagenet"}, "dataset", '"imagenet"'),
        ({"epochs": 0}, "epochs", "0"),
        ({"epochs": 2.5}, "epochs", "2.5"),
        ({"epochs": True}, "epochs", "true"),
        ({"epochs": 10**6}, "epochs", "1000000"),
        ({"batch_size": -1}, "batch_size", "-1"),
        ({"batch_size": "64"}, "batch_size", '"64"'),
        ({"lr": 0}, "lr", "0"),
        ({"lr": "fast"}, "lr", '"fast"'),
        ({"lr": 100}, "lr", "100"),
        ({"optimizer": "lbfgs"}, "optimizer", '"lbfgs"'),
        ({"limit": 0}, "limit", "0"),
        ({"augment": "yes"}, "augment", '"yes"'),
        ({"seed": -1}, "seed", "-1"),
    ],
)
def test_a_bad_field_is_400_naming_it(client, runs_dir, change, named, shown):
    answer = client.post("/api/train", json={"name": "bad", **SHORT, **change})
    assert answer.status_code == 400
    message = answer.json()["error"]
    assert message.startswith(f"{named}: expected ") and message.endswith(shown)
    assert client.get("/api/train/status").json()["state"] == "idle"
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_a_dangling_link_in_runs_dir_takes_its_name(client, runs_dir, tmp_path):
    """``cnnumpy train --out RUNS_DIR/link`` would write through the link."""
    runs_dir.mkdir()
    (runs_dir / "link").symlink_to(tmp_path / "elsewhere")
    answer = client.post("/api/train", json={"name": "link", **SHORT})
    assert answer.status_code == 409 and "link" in answer.json()["error"]
    assert not (tmp_path / "elsewhere").exists()


def test_an_unknown_field_is_400_naming_it(client):
    answer = client.post("/api/train", json={"name": "x", **SHORT, "colour": "blue"})
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("unknown field 'colour'; the fields are")


def test_fields_left_out_take_the_command_s_defaults(runs_dir):
    form = {"name": "plain", "model": "lenet5", "dataset": "mnist", "lr": None}
    name, argv = training_form.command_line(form, runs_dir)
    assert name == "plain"
    assert argv == [
        "train", "--model", "lenet5", "--dataset", "mnist", "--sample-if-missing",
        "--out", str(runs_dir / "plain"), "--quiet",
    ]  # fmt: skip
    args = build_parser().parse_args(argv)
    assert (args.epochs, args.batch_size, args.lr, args.seed) == (5, 64, None, 0)


def test_every_field_reaches_the_command(runs_dir):
    form = {"name": "full", "model": "mnist_cnn", "dataset": "fashion-mnist",
            "epochs": 3, "batch_size": 16, "lr": 0.01, "optimizer": "adam",
            "limit": 100, "augment": True, "seed": 4}  # fmt: skip
    args = build_parser().parse_args(training_form.command_line(form, runs_dir)[1])
    assert (args.model, args.dataset, args.epochs, args.batch_size) == (
        "mnist_cnn", "fashion-mnist", 3, 16
    )  # fmt: skip
    assert (args.lr, args.optimizer, args.limit, args.augment, args.seed) == (
        0.01, "adam", 100, True, 4
    )  # fmt: skip
    assert args.out == str(runs_dir / "full")


@pytest.mark.parametrize(
    ("body", "received"),
    [
        (b"", "got an empty body"),
        (b"{not json", "got 9 bytes of text starting '{not json' (not JSON: "),
        (b"[1, 2]", "got [1, 2]"),
        (b'"lenet5"', 'got "lenet5"'),
        (b"9" * 5000, "got 5,000 bytes of text starting '999"),
        (b"[" * 5000, "(not JSON: RecursionError)"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_400(client, body, received):
    answer = client.post("/api/train", content=body)
    assert answer.status_code == 400
    message = answer.json()["error"]
    assert (
        message.startswith("the body: expected a JSON object, ") and received in message
    )


def test_a_huge_form_is_413(client):
    answer = client.post("/api/train", content=b" " * (100 * 1024))
    assert answer.status_code == 413


def test_the_zoo_offers_what_the_form_accepts(client, runs_dir):
    """One list of models: what ``GET /api/zoo`` offers, each on a data set of its
    input shape, ``POST /api/train`` takes."""
    zoo = client.get("/api/zoo").json()
    assert zoo["models"] == list(training_form.TRAINABLE_MODELS)
    for model in zoo["models"]:
        shape = zoo["model_inputs"][model]
        dataset = next(d for d, s in zoo["dataset_inputs"].items() if s == shape)
        form = {"name": "any", "model": model, "dataset": dataset}
        assert training_form.command_line(form, runs_dir)[1][:3] == [
            "train", "--model", model
        ]  # fmt: skip


# -- the callbacks of cnnumpy train ----------------------------------------------------
class Recorder(callbacks.Callback):
    """What a caller's callback sees of ``cnnumpy train``; a ``KeyboardInterrupt``
    after ``stop_at`` batches, as the worker's reporter raises one."""

    def __init__(self, out, stop_at=None):
        self.out, self.stop_at = out, stop_at
        self.seen, self.batches = [], 0

    def on_train_begin(self, logs=None):
        self.seen.append(("begin", (self.out / "config.json").is_file()))

    def on_batch_end(self, batch, logs=None):
        self.batches += 1
        if self.batches == self.stop_at:
            raise KeyboardInterrupt

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(("epoch", len(history_rows(self.out))))


def train_args(out, *more):
    return build_parser().parse_args([
        "train", "--model", "lenet5", "--dataset", "mnist-sample", "--epochs", "2",
        "--batch-size", "32", "--limit", "256", "--out", str(out), "--quiet", *more,
    ])  # fmt: skip


def test_train_run_calls_the_callers_callbacks_after_its_own(tmp_path):
    out = tmp_path / "run"
    recorder = Recorder(out)
    with contextlib.redirect_stdout(io.StringIO()):
        assert train.run(train_args(out), callbacks=[recorder]) == 0
    # config.json written before, history.csv holding the epoch: the command's
    # callbacks ran first
    assert recorder.seen == [("begin", True), ("epoch", 1), ("epoch", 2)]
    assert recorder.batches == 2 * 8  # 230 training images in batches of 32


def test_a_callback_s_interrupt_ends_the_run_as_ctrl_c(tmp_path):
    out = tmp_path / "run"
    recorder = Recorder(out, stop_at=8 + 3)  # in the second epoch
    with contextlib.redirect_stdout(io.StringIO()), pytest.raises(KeyboardInterrupt):
        train.run(train_args(out), callbacks=[recorder])
    assert (out / "checkpoint" / "checkpoint.safetensors").is_file()
    assert len(history_rows(out)) == 1 and not (out / "model.safetensors").exists()
    with contextlib.redirect_stdout(io.StringIO()):
        assert train.run(train_args(out, "--resume")) == 0
    assert [row["epoch"] for row in history_rows(out)] == ["1", "2"]


def test_char_models_take_no_callbacks(tmp_path):
    args = build_parser().parse_args(
        ["train", "--model", "char_rnn", "--text", "stdlib", "--out", str(tmp_path)]
    )
    with pytest.raises(ValueError, match="callbacks are for image models"):
        train.run(args, callbacks=[Recorder(tmp_path)])


# -- the server's end ------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answer_ctrl_c() -> None:
    """In the child before it runs Python: Ctrl+C's default action, as in a terminal.

    A command started in the background by a shell without job control (``cmd &``
    in a script, as a CI runner may run the tests) inherits SIGINT ignored, and
    Python then never turns it into KeyboardInterrupt: the server would stop on
    Ctrl+C (uvicorn's own handler) but exit 0, not 130.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def serve_command(runs_dir):
    """``cnnumpy serve RUNS_DIR`` in a process of its own, in a session of its own
    (a terminal's Ctrl+C reaches a whole process group) -> ``(process, url)``."""
    port = free_port()
    argv = [sys.executable, "-m", "cnnumpy", "serve", str(runs_dir)]
    argv += ["--port", str(port)]
    server = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=answer_ctrl_c,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                httpx2.get(f"{url}/api/train/status", timeout=5).raise_for_status()
                break
            except httpx2.TransportError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.2)
        yield server, url
    finally:
        if server.poll() is None:  # a failed test leaves no server behind
            os.killpg(server.pid, signal.SIGKILL)
            server.communicate()


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux's /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def is_running(pid: int) -> bool:
    """True while ``pid`` runs: not gone, nor a zombie waiting for its parent."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_ctrl_c_ends_the_server_its_streams_and_its_training(runs_dir):
    """Ctrl+C with the Train page open: the event stream ends, the training stops
    with its last complete epoch kept, and the server exits in a few seconds."""
    form = {**SHORT, "name": "interrupted", "epochs": 200, "limit": 1000}
    with serve_command(runs_dir) as (server, url):
        with httpx2.Client(base_url=url, timeout=TIMEOUT) as http:
            assert http.post("/api/train", json=form).status_code == 202
            with http.stream("GET", "/api/train/events") as stream:
                received = events(stream.iter_lines())
                next(kind for kind, _ in received if kind == "epoch")
                worker = [pid for pid in children(server.pid) if is_running(pid)]
                os.killpg(server.pid, signal.SIGINT)  # what Ctrl+C does
                pressed = time.monotonic()
                list(received)  # the stream ends
        _, err = server.communicate(timeout=TIMEOUT)
        took = time.monotonic() - pressed
    assert server.returncode == 130 and took < 10, (took, err)
    assert "training interrupted: stopped after" in err and "--resume" in err
    assert "cnnumpy playground: stopped" in err and "leaked" not in err
    folder = runs_dir / "interrupted"
    assert (folder / "checkpoint" / "checkpoint.safetensors").is_file()
    assert not list(folder.glob("**/*.tmp*"))
    deadline = time.monotonic() + 10  # the resource tracker may take a moment
    while any(map(is_running, worker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert worker and not any(map(is_running, worker))  # no orphan


def test_a_server_ended_after_a_job_leaks_no_semaphore(runs_dir):
    """The job's queue and stop event are let go when it ends, so that a server
    ended by SIGTERM (which runs no exit handler) leaks no semaphore."""
    with serve_command(runs_dir) as (server, url):
        with httpx2.Client(base_url=url, timeout=TIMEOUT) as http:
            form = {**SHORT, "name": "done", "epochs": 1}
            assert http.post("/api/train", json=form).status_code == 202
            deadline = time.monotonic() + TIMEOUT
            while http.get("/api/train/status").json()["running"]:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        server.terminate()
        _, err = server.communicate(timeout=TIMEOUT)
    assert server.returncode == -signal.SIGTERM, err
    assert "leaked" not in err, err
