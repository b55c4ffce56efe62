"""Seed 003's reproductions (benchmarks/reproductions/seed003_*.py): each runs, and
what it prints is computed from the notes' setup."""

import math
import os
from pathlib import Path

import numpy as np
import pytest

from cnnumpy import zoo
from cnnumpy.layers import AvgPool2D, Conv2D, Dense, Flatten, Tanh

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"  # real MNIST beside the repo


@pytest.fixture
def reproductions(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    if not os.environ.get("CNNUMPY_DATA") and (SHARED_DATA / "mnist").is_dir():
        monkeypatch.setenv("CNNUMPY_DATA", str(SHARED_DATA))
    import reproductions

    return reproductions


# -- slides 129-138: a filter as large as its input --------------------------------
def test_fc_equivalence_finds_67_where_the_notes_print_31(reproductions):
    from reproductions import seed003_fc

    result = seed003_fc.fc_equivalence(True)
    outputs = result["outputs_1d"]
    for size in (3, 5, 7):  # every earlier output of the slides checks
        np.testing.assert_allclose(
            outputs[str(size)], seed003_fc.NOTES_OUTPUTS[size], atol=1e-9
        )
    assert outputs["9"] == [pytest.approx(67.0, abs=1e-9)]
    assert result["dense_1d"] == pytest.approx(67.0, abs=1e-9)
    assert result["notes_1d"] == 31 and "31" in result["cnnumpy"]
    assert "67" in result["cnnumpy"]


def test_fc_equivalence_two_heads_and_the_64x64_question(reproductions):
    from reproductions import seed003_fc

    result = seed003_fc.fc_equivalence(True)
    # 3@7x7, 5@9x9, 4@11x11 with biases, then 256 -> 4 or 4@8x8: the same count
    assert result["params"] == [5_116, 5_116]
    assert result["gap"] < 1e-12 and result["window_gap"] < 1e-12
    assert "expected input (N, 256), got (N, 6400)" in result["refused"]
    assert result["big_output"] == [4, 33, 33]  # 64 -> 58 -> 50 -> 40 -> 33


def test_the_slide_138_networks_are_built_as_drawn(reproductions):
    from reproductions import seed003_fc

    conv = seed003_fc.stack("conv")
    shapes, shape = [], conv.input_shape
    for layer in conv.layers:
        shape = layer.output_shape(shape)
        if isinstance(layer, Conv2D):
            shapes.append(shape)
    assert shapes == [(3, 26, 26), (5, 18, 18), (4, 8, 8), (4, 1, 1)]


# -- LeNet-1 and LeNet-5 -----------------------------------------------------------
@pytest.mark.parametrize(
    "name, params, shapes",
    [
        ("lenet1", 3_246, [(4, 24, 24), (4, 12, 12), (12, 8, 8), (12, 4, 4)]),
        ("lenet5", 44_426, [(6, 24, 24), (6, 12, 12), (16, 8, 8), (16, 4, 4)]),
    ],
)
def test_the_lenets_are_the_notes_networks(name, params, shapes):
    model = zoo.get(name)
    assert model.count_params() == params
    found, shape = [], model.input_shape
    for layer in model.layers:
        shape = layer.output_shape(shape)
        if isinstance(layer, (Conv2D, AvgPool2D)):
            found.append(shape)
    assert found == shapes  # valid 5x5 convolutions, 2x2 average poolings
    kinds = [type(layer) for layer in model.layers]
    assert kinds[:6] == [Conv2D, Tanh, AvgPool2D, Conv2D, Tanh, AvgPool2D]
    assert kinds[6] is Flatten and kinds[-1] is Dense
    dense = [layer.units for layer in model.layers if isinstance(layer, Dense)]
    assert dense == ([10] if name == "lenet1" else [120, 84, 10])


def test_the_paper_schedule_steps_down(reproductions):
    from reproductions import seed003_lenet as lenet

    rates = [lenet.paper_schedule(epoch) for epoch in range(20)]
    expected = [1, 1, 0.4, 0.4, 0.4, 0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1] + [0.02] * 8
    np.testing.assert_allclose(rates, [lenet.LR * f for f in expected], rtol=1e-12)


def test_lenet1_quick_path_learns(reproductions):
    from reproductions import seed003_lenet as lenet

    result = lenet.train_lenet("lenet1", quick=True, train_images=2_000)
    assert result["settings"]["train_images"] == 2_000
    assert result["settings"]["epochs"] == 1 and result["params"] == 3_246
    assert result["paper_error_percent"] == 1.7
    # one pass on 2,000 digits: far from chance (90 % error), far from the paper
    assert 1.7 < result["test_error_percent"] < 40
    assert result["train_loss"][0] < math.log(10)
    assert f"{result['test_error_percent']:.2f} %" in result["cnnumpy"]


# -- VGG16's memory and VGG19's count ---------------------------------------------
@pytest.mark.slow
def test_vgg16_memory_counts_the_notes_figures(reproductions):
    from reproductions import seed003_counts

    r = seed003_counts.vgg16_memory(True)
    assert r["params"] == 138_357_544 and r["neurons"] == 15_087_080
    assert r["forward_mb"] == pytest.approx(613.8, abs=0.05)  # the notes' ~612 Mo
    assert r["gradients_mb"] == r["params_mb"]  # one float32 gradient per parameter
    # the book's caches for one image: the im2col columns dominate
    assert r["backward_kept_mb"] == pytest.approx(347.3, abs=0.05)
    assert r["total_mb"] == pytest.approx(
        r["forward_mb"] + r["gradients_mb"] + r["backward_kept_mb"], abs=0.15
    )
    assert r["total_mb"] > 1_100 and r["forward_doubled_mb"] > 1_100  # "> 1.1 Go"
    assert r["settings"] == {"batch_size": 1, "dtype": "float32", "bytes": 4}
    # one measured step holds at least the caches the backward pass reads
    assert r["step_peak_mb"] > r["backward_kept_mb"]


def test_vgg19_small_twin_counts_by_hand(reproductions):
    from reproductions import seed003_counts

    r = seed003_counts.vgg19_report(input_shape=(3, 32, 32), num_classes=10)
    assert r["weight_layers"] == 19 and r["vgg16_weight_layers"] == 16
    assert r["params"] == r["params_by_hand"] == 38_947_914
    # three more 3x3 convolutions: 256->256 once, 512->512 twice
    assert r["params"] - r["vgg16_params"] == 590_080 + 2 * 2_359_808


def test_vgg19_by_hand_is_torchvisions_count(reproductions):
    from reproductions import seed003_counts

    assert seed003_counts.vgg19_by_hand() == 143_667_240


@pytest.mark.slow
def test_zoo_vgg19_has_the_pinned_count():
    assert zoo.vgg19().count_params() == 143_667_240


def test_receptive_field_of_three_3x3(reproductions):
    from reproductions import seed003_counts

    r = seed003_counts.receptive_field(True)
    assert r["field"] == [7, 7]
    assert r["weights"] == [27 * 64 * 64, 49 * 64 * 64]
