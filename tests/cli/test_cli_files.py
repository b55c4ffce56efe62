"""The ``cnnumpy`` command against hostile files: a config.json nested too deeply or
too large, FIFOs where an image or a folder is expected, a full disk, an interrupted
``--overwrite`` and a test loss that is not finite.

Like ``test_cli.py``, the CLI runs in-process on a tiny MNIST-format data set. Tests
that could hang (a FIFO) run the command in a thread joined with a timeout.
"""

import errno
import os
import shutil
import threading
from pathlib import Path

import pytest
from test_cli import TRAIN, run
from test_faults_cli import (  # noqa: F401 (fixtures)
    data_dir,
    main_quiet,
    run_dir,
    tiny_sizes,
)

from cnnumpy import fileio, folderlock, model
from cnnumpy.cli import runs
from cnnumpy.fileio import DiskFullError, atomic_open, atomic_write_text

HANG = 20  # seconds: far more than any of these commands needs


def _one_line_error(code: int, err: str) -> None:
    assert code == 2, err
    assert err.startswith("cnnumpy: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


def _copy(run_dir, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return copy


def _argv(command: str, folder: Path, digit: Path, tmp_path: Path) -> list:
    return {
        "predict": ["predict", folder, digit],
        "evaluate": ["evaluate", folder, "--out", tmp_path],
        "visualize": ["visualize", folder, "--method", "saliency", "--out", tmp_path],
    }[command]


# -- 1, 2: config.json too deep, too long, too large, not a file -----------------------
BAD_JSON = [
    ("[" * 100_000, "nested too deeply"),
    ('{"a": ' + "1" * 5000 + "}", "a number has too many digits"),
]


@pytest.mark.parametrize("text, message", BAD_JSON)
@pytest.mark.parametrize("command", ["predict", "evaluate", "visualize"])
def test_a_pathological_config_is_a_one_line_error(
    run_dir, command, text, message, digit, tmp_path, capsys
):
    folder = _copy(run_dir, tmp_path)
    (folder / runs.CONFIG).write_text(text)
    code, stdout, err = run(_argv(command, folder, digit, tmp_path), capsys)
    _one_line_error(code, err)
    assert f"cannot read {folder / runs.CONFIG}" in err and message in err


@pytest.mark.parametrize("text, message", BAD_JSON)
def test_a_pathological_config_is_refused_on_resume(
    run_dir, data_dir, text, message, tmp_path, capsys
):
    folder = _copy(run_dir, tmp_path)
    (folder / runs.CONFIG).write_text(text)
    argv = [*TRAIN, "--data-dir", data_dir, "--out", folder, "--resume"]
    code, _, err = run(argv, capsys)
    _one_line_error(code, err)
    assert f"cannot read {folder / runs.CONFIG}" in err and message in err


def test_a_huge_sparse_config_is_refused_before_reading(run_dir, digit, tmp_path):
    folder = _copy(run_dir, tmp_path)
    with open(folder / runs.CONFIG, "wb") as f:
        f.truncate(8 * 2**30)  # 8 GB of holes: no disk used
    with pytest.raises(runs.UsageError) as info:
        runs.read_json(folder / runs.CONFIG)
    message = str(info.value)
    assert str(folder / runs.CONFIG) in message
    assert "8,589,934,592 bytes" in message and f"{runs.MAX_JSON_BYTES:,}" in message


def _in_thread(function, *args):
    """``function(*args)``'s result, or a failure if it has not returned in HANG s."""
    outcome = {}

    def target():
        try:
            outcome["value"] = function(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(HANG)
    return thread, outcome


def _unblock(fifo: Path) -> None:
    """Give a reader stuck opening ``fifo`` a writer (then end of file)."""
    fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    os.close(fd)


def _no_hang(function, *args, fifo: Path):
    thread, outcome = _in_thread(function, *args)
    if thread.is_alive():
        _unblock(fifo)
        thread.join(HANG)
        pytest.fail(f"hung on the FIFO {fifo}")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def test_a_fifo_config_is_refused_without_opening_it(run_dir, tmp_path):
    folder = _copy(run_dir, tmp_path)
    (folder / runs.CONFIG).unlink()
    os.mkfifo(folder / runs.CONFIG)
    with pytest.raises(runs.UsageError, match=r"is a FIFO, not a regular file"):
        _no_hang(runs.open_run, str(folder), fifo=folder / runs.CONFIG)


# -- 4: a FIFO as an image -------------------------------------------------------------
@pytest.mark.parametrize("command", ["predict", "visualize"])
def test_a_fifo_image_is_refused_without_hanging(run_dir, command, tmp_path, capsys):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    argv = {
        "predict": ["predict", run_dir, fifo],
        "visualize": [
            "visualize",
            run_dir,
            "--image",
            fifo,
            "--method",
            "saliency",
            "--out",
            tmp_path,
        ],
    }[command]
    code = _no_hang(main_quiet, argv, fifo=fifo)
    err = capsys.readouterr().err
    _one_line_error(code, err)
    assert f"{fifo} is not a regular file (a named pipe)" in err


def test_a_folder_as_an_image_is_refused(run_dir, tmp_path, capsys):
    code, _, err = run(["predict", run_dir, tmp_path], capsys)
    _one_line_error(code, err)
    assert f"{tmp_path} is not a regular file (a directory)" in err


# -- 3: a full disk names the file -----------------------------------------------------
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EFBIG])
def test_a_full_disk_names_the_file_and_keeps_the_old_one(code, tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    path.write_text("old")

    def full(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(fileio.os, "fsync", full)
    with pytest.raises(DiskFullError) as info:
        atomic_write_text(path, "new")
    assert info.value.errno == code and isinstance(info.value, OSError)
    assert str(path) in str(info.value) and "is unchanged" in str(info.value)
    assert "[Errno" not in str(info.value)
    assert path.read_text() == "old"
    assert list(tmp_path.iterdir()) == [path]  # the temporary file is gone


def test_a_failed_write_of_the_body_names_the_file(tmp_path):
    path = tmp_path / "curves.png"

    class Full:
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFullError, match="no space left on device while writing"):
        with atomic_open(path, "wb"):
            Full().write(b"x")
    assert list(tmp_path.iterdir()) == []


def test_other_errors_are_not_called_a_full_disk(tmp_path, monkeypatch):
    def broken(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(fileio.os, "fsync", broken)
    with pytest.raises(OSError) as info:
        atomic_write_text(tmp_path / "a.txt", "x")
    assert not isinstance(info.value, DiskFullError)
    assert info.value.errno == errno.EIO


def test_the_cli_reports_a_full_disk_in_one_line(
    run_dir, tmp_path, capsys, monkeypatch
):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", full)
    argv = ["visualize", run_dir, "--method", "saliency", "--out", tmp_path]
    code, _, err = run(argv, capsys)
    _one_line_error(code, err)
    assert "no space left on device while writing " + str(tmp_path) in err
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_does_not_stop_the_folder_lock(tmp_path, monkeypatch):
    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(folderlock.os, "pwrite", full)
    with folderlock.FolderLock(tmp_path / "run"):  # the pid is only informative
        assert (tmp_path / "run" / folderlock.LOCK).exists()


# -- 5: --overwrite removes the previous run -------------------------------------------
def test_an_interrupted_overwrite_leaves_no_old_result(
    run_dir, data_dir, tmp_path, capsys, monkeypatch
):
    folder = _copy(run_dir, tmp_path)
    (folder / runs.CHECKPOINT_DIR).mkdir(exist_ok=True)
    (folder / runs.CHECKPOINT_DIR / runs.CHECKPOINT).write_text("old")
    (folder / runs.REPORT).write_text("old")
    (folder / "notes.txt").write_text("mine")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(model.Model, "fit", interrupted)
    argv = [*TRAIN, "--data-dir", data_dir, "--out", folder, "--overwrite"]
    code, stdout, _ = run(argv, capsys)
    assert code == 130
    left = sorted(p.name for p in folder.iterdir())
    assert left == [runs.CHECKPOINT_DIR, "notes.txt"]  # the user's file stays
    assert list((folder / runs.CHECKPOINT_DIR).iterdir()) == []
    assert "--overwrite: removed the previous run's model.safetensors" in stdout
    code, _, err = run(["predict", folder, tmp_path / "x.png"], capsys)
    _one_line_error(code, err)
    assert "no model.safetensors" in err  # no old model to use with the new config


def test_a_fifo_as_the_checkpoint_folder_is_named(data_dir, tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    os.mkfifo(folder / runs.CHECKPOINT_DIR)
    argv = [*TRAIN, "--data-dir", data_dir, "--out", folder, "--resume"]
    code, _, err = run(argv, capsys)
    _one_line_error(code, err)
    assert f"{folder / runs.CHECKPOINT_DIR} is a FIFO, not a folder" in err


# -- 6: a test loss that is not finite -------------------------------------------------
def test_an_infinite_test_loss_is_a_divergence(data_dir, tmp_path, capsys, monkeypatch):
    def infinite(self, x, y, batch_size=None):
        return {"loss": float("inf"), "accuracy": 0.1}

    monkeypatch.setattr(model.Model, "evaluate", infinite)
    out = tmp_path / "run"
    argv = [*TRAIN, "--val-split", "0", "--data-dir", data_dir, "--out", out]
    code, _, err = run(argv, capsys)  # no validation: evaluate is only the test's
    assert code == 3, err
    assert "the test loss is inf" in err and err.count("\n") == 1
    assert not (out / runs.MODEL).exists() and not (out / runs.METRICS).exists()
