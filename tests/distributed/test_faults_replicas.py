"""Process replicas under faults and bad input: real processes, real signals.

Each test reproduces a defect found by trying to break ``use_processes`` and
``cnnumpy train --processes``: too many processes, a replica that stops answering
(SIGSTOP), the caller killed (SIGKILL) while its replicas start, a replica killed
during command-line training. No test may hang: every wait has a deadline, and every
process a test starts is killed and reaped at its end.
"""

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import cnnumpy
from cnnumpy import layers as L
from cnnumpy.cli import main
from cnnumpy.distributed import limits, replicas
from cnnumpy.distributed.process import ReplicaProcess
from cnnumpy.distributed.replicas import ReplicaError

# the engine's own machinery: run with its kernels, whatever CNNUMPY_ENGINE says
pytestmark = pytest.mark.usefixtures("engine_on")

ROOT = Path(__file__).resolve().parents[2]
CORES = len(os.sched_getaffinity(0))


def _small_cnn(extra=tuple):
    cnnumpy.seed(3)
    model = cnnumpy.Sequential(
        [
            L.Conv2D(4, 3, padding=1),
            L.ReLU(),
            L.MaxPool2D(2),
            *extra(),
            L.Conv2D(6, 3),
            L.Tanh(),
            L.Flatten(),
            L.Dense(5),
        ],
        input_shape=(2, 8, 8),
    )
    model.astype("float64")  # the split's numbers equal one process's to 1e-12
    model.compile(cnnumpy.optimizers.SGD(0.05, momentum=0.9), "cross_entropy")
    return model


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 2, 8, 8)), rng.integers(0, 5, n)


@contextlib.contextmanager
def _deadline(seconds):
    """Fail (never hang) if the block runs longer than ``seconds``: SIGALRM raises
    in the main thread, even inside a blocking read."""

    def expire(signum, frame):
        raise TimeoutError(f"still blocked after {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _kill(proc):
    """SIGKILL (works on a stopped process too) and reap."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


def _children_of(pid):
    """Pids whose parent is ``pid`` (a scan of /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _pids_with_env(marker):
    """Pids of live processes whose environment holds ``marker`` (replicas inherit
    their caller's environment)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in environ and state != "Z":
            found.append(int(entry.name))
    return found


def _wait_for_no_process(marker, timeout):
    """Wait until no process holds ``marker`` for a whole second (a process caught
    between fork and exec may be missed by one scan); returns those left."""
    deadline, quiet_since = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        if _pids_with_env(marker):
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 1.0:
            return []
        time.sleep(0.05)
    return _pids_with_env(marker)


def _shm_names():
    return {n for n in os.listdir("/dev/shm") if n.startswith("cnnumpy")}


# -- 8: more processes than cores, or than a batch can feed ---------------------------
def test_more_processes_than_cores_are_refused():
    model = _small_cnn()
    with pytest.raises(ValueError, match=rf"{CORES + 1} processes.*{CORES} cores"):
        model.use_processes(CORES + 1)
    assert model.executor.replicas is None


def test_the_command_line_refuses_more_processes_than_cores(tmp_path, capsys):
    argv = ["train", "--model", "lenet1", "--dataset", "mnist", "--processes", "64"]
    argv += ["--data-dir", str(tmp_path / "none"), "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "64 processes" in err and f"{CORES} cores" in err
    assert _children_of(os.getpid()) == []


@pytest.mark.skipif(CORES < 2, reason="needs 2 cores")
def test_the_command_line_refuses_processes_a_batch_cannot_feed(tmp_path, capsys):
    argv = ["train", "--model", "lenet1", "--dataset", "mnist", "--processes", "2"]
    argv += ["--batch-size", "15", "--data-dir", str(tmp_path / "none")]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "--batch-size 15" in err and "at most 1 process" in err


def _bn_dropout():
    return (L.BatchNorm(), L.Dropout(0.2, seed=7))


@pytest.mark.parametrize("extra", [tuple, _bn_dropout], ids=["plain", "bn-dropout"])
def test_a_batch_too_small_for_every_process_splits_over_those_it_can_feed(
    monkeypatch, extra
):
    """Three processes, a batch of 16: two slices of 8 (before, the whole batch ran
    here and both replicas sat idle). The numbers stay those of one process, with
    BatchNorm's sums added up over the two processes in use only."""
    monkeypatch.setattr(limits, "available_cores", lambda: 3, raising=False)
    one, split = _small_cnn(extra), _small_cnn(extra)
    x, y = _data(16)
    with split.use_processes(3) as group:
        assert group.splits(16) and not group.splits(15)
        for _ in range(2):
            assert split.train_on_batch(x, y) == pytest.approx(
                one.train_on_batch(x, y), rel=1e-12
            )
        np.testing.assert_allclose(split.predict(x), one.predict(x), atol=1e-12)
        assert split.train_on_batch(*_data(24)) == pytest.approx(
            one.train_on_batch(*_data(24)), rel=1e-12
        )  # all three now


# -- 10: a replica that stops answering -----------------------------------------------
def _bn():
    return (L.BatchNorm(),)


@pytest.mark.parametrize("extra", [tuple, _bn], ids=["plain", "batchnorm"])
@pytest.mark.slow
def test_a_stopped_replica_raises_within_the_timeout(extra, monkeypatch):
    """SIGSTOP: alive but silent. The caller waits at most the timeout (here 1 s),
    then raises naming the pid and the wait, and kills the stopped replica."""
    monkeypatch.setenv("CNNUMPY_REPLICA_TIMEOUT", "1")
    model = _small_cnn(extra)
    x, y = _data(32)
    group = model.use_processes(2)
    procs = [c.proc for c in group._children]
    try:
        model.train_on_batch(x, y)
        os.kill(procs[0].pid, signal.SIGSTOP)
        start = time.monotonic()
        with (
            _deadline(30),
            pytest.raises(
                ReplicaError,
                match=r"replica process \d+ sent nothing .*\(limit [\d.]+ s",
            ) as info,
        ):
            model.train_on_batch(x, y)
        waited = time.monotonic() - start
        assert str(procs[0].pid) in str(info.value) and " s" in str(info.value)
        # 1 s, or more when the first step was slow (the limit grows with the slowest
        # step: a loaded machine)
        limit = re.search(r"\(limit ([\d.]+) s", str(info.value)).group(1)
        assert float(limit) >= 1
        assert waited < 10
        assert group.closed and model.executor.replicas is None
        assert all(p.poll() is not None for p in procs)  # killed and reaped
        model.train_on_batch(x, y)  # alone now
    finally:
        for proc in procs:
            _kill(proc)
        group.close()


def test_the_timeout_grows_with_the_slowest_step_and_comes_from_the_environment(
    monkeypatch,
):
    monkeypatch.setenv("CNNUMPY_REPLICA_TIMEOUT", "2.5")
    model = _small_cnn()
    with model.use_processes(2) as group:
        assert group.timeout == 2.5
    with replicas.use_processes(model, 2, timeout=0.5) as group:
        assert group.timeout == 0.5
        model.train_on_batch(*_data(32))
        assert 0 < group.slowest_step < 1
        group.slowest_step = 0.2  # as if a step had taken 0.2 s
        assert group.silence_limit() == pytest.approx(replicas.SLOW_FACTOR * 0.2)
    monkeypatch.setenv("CNNUMPY_REPLICA_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="CNNUMPY_REPLICA_TIMEOUT.*'soon'"):
        model.use_processes(2)
    assert _children_of(os.getpid()) == []


@pytest.mark.slow
def test_a_replica_stopped_while_starting_raises_and_is_killed(monkeypatch):
    monkeypatch.setattr(limits, "START_TIMEOUT", 1.0)
    spawn = ReplicaProcess.spawn
    procs = []

    def spawn_stopped():
        child = spawn()
        os.kill(child.pid, signal.SIGSTOP)
        procs.append(child.proc)
        return child

    monkeypatch.setattr(ReplicaProcess, "spawn", spawn_stopped)
    model = _small_cnn()
    try:
        start = time.monotonic()
        with (
            _deadline(30),
            pytest.raises(
                ReplicaError, match=r"replica process \d+ sent nothing while starting"
            ) as info,
        ):
            model.use_processes(2)
        assert time.monotonic() - start < 10
        assert f"replica process {procs[0].pid} " in str(info.value)
        assert all(p.poll() is not None for p in procs)  # killed and reaped
    finally:
        for proc in procs:
            _kill(proc)


# -- 14: the caller killed while its replicas start -----------------------------------
_STARTER = """
import sys, time
import numpy as np
import cnnumpy
from cnnumpy import layers as L
model = cnnumpy.Sequential(
    [L.Conv2D(4, 3), L.ReLU(), L.Flatten(), L.Dense(5)], input_shape=(2, 8, 8)
)
model.compile("sgd", "cross_entropy")
x, y = np.zeros((32, 2, 8, 8)), np.zeros(32, dtype=int)
print("starting", flush=True)
model.use_processes(2)
while True:
    model.train_on_batch(x, y)
"""


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs /dev/shm")
@pytest.mark.slow
def test_killing_the_caller_while_replicas_start_leaves_no_shared_file(tmp_path):
    """SIGKILL at several moments of start-up (and of the first steps): no file is
    left in /dev/shm, and the orphaned replicas exit by themselves."""
    before = _shm_names()
    for k, delay in enumerate([0.0, 0.05, 0.2, 0.5, 1.0, 1.5]):
        marker = f"CNNUMPY_TEST_MARK={os.getpid()}-{k}-{time.time_ns()}"
        env = dict(os.environ, CNNUMPY_TEST_MARK=marker.split("=", 1)[1])
        proc = subprocess.Popen(
            [sys.executable, "-c", _STARTER],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            assert ready and proc.stdout.readline() == b"starting\n"
            time.sleep(delay)
            proc.kill()
            proc.wait(timeout=30)
            left = _wait_for_no_process(marker, timeout=20)
        finally:
            _kill(proc)
            proc.stdout.close()
            for pid in _pids_with_env(marker):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        assert left == [], f"replicas left after a kill at {delay} s"
        assert _shm_names() - before == set(), f"kill at {delay} s leaked a file"


# -- 11: a replica killed under `cnnumpy train --processes 2` -------------------------
def _read_until(proc, text, deadline):
    """Lines of ``proc.stdout`` until one holds ``text`` (bytes); False at the
    deadline or the end of the output."""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline()
            if not line:
                return False
            if text in line:
                return True
    return False


@pytest.mark.skipif(CORES < 2, reason="needs 2 cores")
@pytest.mark.parametrize("when", ["starting", "training"])
@pytest.mark.slow
def test_a_replica_killed_during_cli_training_leaves_the_model_training_alone(
    tmp_path, when
):
    """The README: a replica that dies makes the step raise ReplicaError, and the
    model then runs alone. The command says so in one line and trains on from the
    last completed epoch (as --resume would): no traceback, exit code 0."""
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "cnnumpy", "train", "--model", "lenet1"]
    argv += ["--dataset", "mnist-sample", "--limit", "3000", "--epochs", "4"]
    argv += ["--batch-size", "32", "--processes", "2", "--quiet", "--no-report"]
    env = {k: v for k, v in os.environ.items() if k != "CNNUMPY_DEBUG"}
    env["CNNUMPY_ENGINE"] = "1"  # replicas run with the engine only
    proc = subprocess.Popen(
        [*argv, "--out", str(out)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        if when == "training":
            assert _read_until(proc, b"epoch 1/4", deadline)
        replica = []
        while not replica and time.monotonic() < deadline:
            replica = _children_of(proc.pid)
            time.sleep(0.01)
        assert replica, "no replica process started"
        os.kill(replica[0], signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        _kill(proc)
    stderr = stderr.decode()
    assert "Traceback" not in stderr, stderr
    assert proc.returncode == 0, stderr
    warning = [line for line in stderr.splitlines() if "replica" in line]
    assert len(warning) == 1 and "one process" in warning[0], stderr
    assert str(replica[0]) in warning[0]
    assert (out / "model.safetensors").exists()
    assert b"epoch 4/4" in stdout
