"""Seed 001's reproductions (benchmarks/reproductions/seed001_speed.py and
seed001_melpy.py): Table 1's loops against NumPy, the index-array im2col, and
Melpy's MNIST and CIFAR-10 set-ups (Tables 2 to 4), each on a size small enough for
the test suite."""

from pathlib import Path

import numpy as np
import pytest

from cnnumpy.layers import Conv2D, LeakyReLU, MaxPool2D
from cnnumpy.optimizers import Adam
from cnnumpy.textbook.im2col import col2im, im2col
from cnnumpy.textbook.padding import resolve_padding

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def s1(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from reproductions import seed001_melpy

    return seed001_melpy


@pytest.fixture
def speed(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from reproductions import seed001_speed

    return seed001_speed


def test_durations_read_as_the_notes_write_them(s1):
    assert s1.hms(28 * 60 + 22) == "28 min 22 s"
    assert s1.hms(4 * 3600 + 54 * 60 + 52) == "4 h 54 min 52 s"
    assert s1.hms(75) == "1 min 15 s" and s1.hms(12.34) == "12.3 s"


def test_the_registered_reproductions(s1, speed):
    both = [*speed.REPRODUCTIONS, *s1.REPRODUCTIONS]
    names = [r.name for r in both]
    assert names == [
        "seed001_table1_matmul",
        "seed001_im2col_indices",
        "seed001_table2_mnist",
        "seed001_table3_cifar",
    ]
    assert all(r.minutes > 0 and "seed 001" in r.source for r in both)
    # the notes' figures, as Table 1 prints them
    assert [row[3] for row in speed.TABLE1] == [63.04, 152.14, 207.73]
    for _, t1, t2, ratio in speed.TABLE1:
        assert t1 / t2 == pytest.approx(ratio, rel=1e-3)


# -- Table 1 ----------------------------------------------------------------------
def test_matmul_loops_is_the_product(speed):
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((7, 5)), rng.standard_normal((5, 3))
    C = speed.matmul_loops(A.tolist(), B.tolist())
    np.testing.assert_allclose(C, A @ B, rtol=1e-12)


def test_loops_time_of_some_rows_is_scaled_to_all(speed, monkeypatch):
    monkeypatch.setattr(speed, "best_time", lambda fn, **kw: (fn(), 0.5)[1])
    row = speed.time_matmul((40, 3, 6), 8, np.random.default_rng(0))
    assert row["rows_timed"] == 8 and row["shape"] == [40, 3, 6]
    assert row["loops_s"] == pytest.approx(0.5 * 40 / 8)
    assert row["speedup"] == pytest.approx(row["loops_s"] / row["numpy_s"]) == 5


def test_table1_times_the_notes_sizes(speed, monkeypatch):
    asked = []

    def fake(shape, rows, rng):
        asked.append((shape, rows))
        return {
            "shape": list(shape),
            "rows_timed": rows or shape[0],
            "loops_s": 2.0,
            "numpy_s": 0.01,
            "speedup": 200.0,
        }

    monkeypatch.setattr(speed, "time_matmul", fake)
    full = speed.table1(False)
    notes_sizes = [shape for shape, *_ in speed.TABLE1]
    assert asked == list(zip(notes_sizes, (None, None, 50), strict=True))
    assert "50 of 1000 rows" in full["differences"]
    assert full["cnnumpy"].startswith("NumPy 200x, 200x, 200x faster")
    asked.clear()
    quick = speed.table1(True)
    assert asked == [((100, 10, 100), None), ((1000, 100, 1000), 20)]
    assert "--quick leaves out 1000x1000x1000" in quick["differences"]


def test_table1_small_run_measures_a_speed_up(speed, capsys):
    """The quick path's first size in full, the second on 2 of its 1,000 rows."""
    result = speed.table1(True, plan=(None, 2))
    first, second = result["rows"]
    assert first["rows_timed"] == 100 and second["rows_timed"] == 2
    for row in result["rows"]:
        assert row["loops_s"] > row["numpy_s"] > 0  # NumPy wins at every size
        assert row["speedup"] == pytest.approx(row["loops_s"] / row["numpy_s"])
    out = capsys.readouterr().out
    assert "the notes 0.029 / 0.00046 = 63.04x" in out and "2 of 1000 rows" in out


# -- the index-array im2col ---------------------------------------------------------
@pytest.mark.parametrize(
    "shape,kernel,stride",
    [((2, 3, 6, 7), (2, 2), (1, 1)), ((1, 2, 9, 8), (3, 2), (2, 3))],
)
def test_the_loops_fill_the_same_matrices(speed, shape, kernel, stride):
    x = np.random.default_rng(0).standard_normal(shape)
    cols = speed.im2col_loops(x, kernel, stride)
    np.testing.assert_array_equal(cols, im2col(x, kernel, stride))
    back = speed.col2im_loops(cols, shape, kernel, stride)
    np.testing.assert_array_equal(back, col2im(cols, shape, kernel, stride))


def test_im2col_speed_times_three_equal_ways(speed, capsys):
    result = speed.im2col_speed(True, batch=2)
    assert set(result["seconds"]) == {"melpy_mnist conv 1", "melpy_mnist conv 2"}
    conv2 = result["seconds"]["melpy_mnist conv 2"]
    assert conv2["shape"] == [2, 16, 14, 14]
    ways = [name for name, _, _ in speed.WAYS]
    assert ways[1] == "index arrays (the notes)"
    for forward, backward in (conv2[w] for w in ways):
        assert forward > 0 and backward > 0
    # the interpreter's loops lose to both vectorised ways by far
    assert conv2["loops"][0] > 5 * conv2[ways[1]][0]
    assert "index arrays" in result["cnnumpy"] and "x faster" in result["cnnumpy"]
    assert capsys.readouterr().out.count("im2col: loops") == 2


# -- Tables 2 to 4: Melpy's set-ups ------------------------------------------------
def test_melpy_standardize_is_per_pixel_with_training_statistics(s1):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (50, 1, 3, 3), dtype=np.uint8)
    x[:, 0, 0, 0] = 7  # a constant pixel, like MNIST's borders
    test = rng.integers(0, 256, (4, 1, 3, 3), dtype=np.uint8)
    a, b = s1.melpy_standardize(x, test)
    assert a.dtype == b.dtype == np.float32 and a.shape == x.shape
    np.testing.assert_allclose(a[:, 0, 0, 0], 0, atol=1e-3)
    np.testing.assert_allclose(a[:, 0, 1:].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(a[:, 0, 1:].std(axis=0), 1, atol=1e-3)
    pixel = x[:, 0, 2, 1] / 255.0
    expected = (test[:, 0, 2, 1] / 255.0 - pixel.mean()) / (pixel.std() + 1e-5)
    np.testing.assert_allclose(b[:, 0, 2, 1], expected, rtol=1e-5)


def test_data_root_prefers_the_environment(s1, monkeypatch, tmp_path):
    monkeypatch.setenv("CNNUMPY_DATA", str(tmp_path))
    assert s1.data_root() == str(tmp_path)


def _fake_data(shape, n, n_test):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    x_test = rng.standard_normal((n_test, *shape)).astype(np.float32)
    return x, rng.integers(0, 10, n), x_test, rng.integers(0, 10, n_test)


def _shapes(model):
    return [
        (type(layer).__name__, tuple(layer.params["W"].shape))
        for layer in model.layers
        if "W" in layer.params
    ]


MNIST_WEIGHTS = [
    ("Conv2D", (16, 1, 2, 2)),
    ("Conv2D", (32, 16, 2, 2)),
    ("Dense", (32 * 14 * 14, 128)),
    ("Dense", (128, 10)),
]
CIFAR_WEIGHTS = [
    ("Conv2D", (32, 3, 2, 2)),
    ("Conv2D", (64, 32, 2, 2)),
    ("Dense", (64 * 8 * 8, 128)),
    ("Dense", (128, 64)),
    ("Dense", (64, 32)),
    ("Dense", (32, 16)),
    ("Dense", (16, 10)),
]
MNIST_FRONT = [Conv2D, LeakyReLU, MaxPool2D, Conv2D, LeakyReLU]
CIFAR_FRONT = [Conv2D, LeakyReLU, MaxPool2D, Conv2D, LeakyReLU, MaxPool2D]


@pytest.mark.parametrize(
    "spec_name,shape,count,weights,front",
    [
        ("TABLE2", (1, 28, 28), 806_394, MNIST_WEIGHTS, MNIST_FRONT),
        ("TABLE3", (3, 32, 32), 544_122, CIFAR_WEIGHTS, CIFAR_FRONT),
    ],
)
def test_melpy_models_train_with_melpy_settings(
    s1, spec_name, shape, count, weights, front
):
    spec = getattr(s1, spec_name)
    data = _fake_data(shape, 2 * spec["batch"], 32)
    run = s1.train_melpy(spec["model"], data, 2, spec["batch"], spec["lr"])
    model = run["model"]
    assert model.count_params() == count and _shapes(model) == weights
    assert [type(layer) for layer in model.layers[: len(front)]] == front
    leaky = [layer for layer in model.layers if isinstance(layer, LeakyReLU)]
    assert leaky and all(layer.alpha == 0.01 for layer in leaky)  # Melpy's slope
    for layer in model.layers:
        if isinstance(layer, Conv2D):
            # Melpy's "same" for 2x2: nothing above and left, one row below and right
            assert layer.padding == "same"
            pads = resolve_padding("same", (2, 2), (1, 1), shape[1:])
            assert pads == ((0, 1), (0, 1))
    assert isinstance(model.optimizer, Adam) and model.optimizer.lr == spec["lr"]
    clock = run["clock"]
    assert len(clock.train) == len(clock.test) == 2
    assert min(clock.train) > 0 and min(clock.test) > 0
    losses = run["history"]["loss"]
    assert len(losses) == 2 and losses[1] < losses[0]  # it learns


def test_the_notes_settings(s1):
    assert (s1.TABLE2["epochs"], s1.TABLE2["batch"], s1.TABLE2["lr"]) == (15, 256, 1e-4)
    assert (s1.TABLE3["epochs"], s1.TABLE3["batch"], s1.TABLE3["lr"]) == (50, 64, 5e-5)
    assert s1.hms(s1.TABLE2["melpy_seconds"]) == "28 min 22 s"
    assert s1.hms(s1.TABLE3["keras_seconds"]) == "10 min 43 s"


def test_a_short_run_scales_its_times_to_the_full_sets(s1, capsys):
    data = _fake_data((1, 28, 28), 300, 40)
    result = s1.melpy_table(True, s1.TABLE2, data=data)
    train, test = result["epoch_seconds"]["train"], result["epoch_seconds"]["test"]
    assert len(train) == 1 and result["total_is"] == "estimated"
    epoch = train[0] * 60_000 / 300 + test[0] * 10_000 / 40
    assert result["seconds_per_epoch"] == pytest.approx(epoch)
    assert result["seconds_total"] == pytest.approx(15 * epoch)
    assert result["parameters"] == 806_394 and result["settings"]["batch"] == 256
    assert 0 <= result["accuracy"] <= 1
    assert "estimated, 15 x one epoch" in result["cnnumpy"]
    assert "Melpy's 28 min 22 s" in result["cnnumpy"]
    assert "a shortened run" in result["differences"]
    assert "epoch 1: loss" in capsys.readouterr().out


def test_a_full_run_reports_its_measured_time(s1):
    data = _fake_data((3, 32, 32), 128, 16)
    spec = {**s1.TABLE3, "epochs": 2, "sizes": (128, 16)}  # the whole (tiny) set
    result = s1.melpy_table(False, spec, data=data)
    seconds = result["epoch_seconds"]
    assert result["total_is"] == "measured" and len(seconds["train"]) == 2
    assert result["seconds_total"] == pytest.approx(
        sum(seconds["train"]) + sum(seconds["test"])
    )
    assert "(measured)" in result["cnnumpy"]
    assert "shortened" not in result["differences"]
