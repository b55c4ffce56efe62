"""The recurrent benchmarks still run and still check what they claim: a few
milliseconds of each (the real runs take minutes; see benchmarks/)."""

import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def benchmark_path(monkeypatch):
    for folder in ("benchmarks", "examples"):
        monkeypatch.syspath_prepend(str(ROOT / folder))


def test_vs_torch_rnn_rows_agree_and_time_both():
    import vs_torch_rnn

    for cell in ("lstm", "gru"):
        rows = vs_torch_rnn.speed_rows(cell, 4, 5, repeats=1, min_time=0.01)
        assert [r["mode"] for r in rows] == ["train", "predict"]
        for row in rows:
            assert row["unit"] == "tokens" and row["batch"] == 4
            assert row["cnnumpy_rate"] > 0 and row["torch_rate"] > 0
            assert row["ratio"] == pytest.approx(
                row["cnnumpy_rate"] / row["torch_rate"]
            )


def test_char_rnn_vs_torch_scores_both_alike(capsys):
    import char_rnn_vs_torch

    char_rnn_vs_torch.main(["--minutes", "0.01", "--turn", "0.3", "--batch", "8"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| cnnumpy")]
    rows += [line for line in out.splitlines() if line.startswith("| torch")]
    assert len(rows) == 2
    for line in rows:
        bpc = float(line.rstrip(" |").split("|")[-1])
        # both learnt something in 0.6 s, and are scored on the same scale:
        # below a uniform guess over the ~100 symbols of the stdlib corpus
        assert 0 < bpc < math.log2(100)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_char_rnn_vs_torch_trains_both_the_same_way(kind):
    """In float64 the two trainers of the bpc benchmark take the same steps (carried
    states, resets at each pass, clipping, Adam): equal weights after 100 steps, so
    a difference in bits per character after the same time is speed and float32
    rounding, nothing else."""
    import argparse

    import char_rnn
    import char_rnn_vs_torch as bench
    import numpy as np
    import torch

    import cnnumpy
    from cnnumpy.data import one_hot

    cnnumpy.seed(0)
    vocabulary, ids = char_rnn.read_text(argparse.Namespace(text=None, quick=True))
    K = len(vocabulary)
    model = char_rnn.build_model(kind, K, 8, 0, char_rnn.DEFAULT_LR)
    model.astype(np.float64)
    net, _ = bench.torch_twin(model, kind)
    net.double()
    optimiser = torch.optim.Adam(net.parameters(), lr=char_rnn.DEFAULT_LR)
    steps = [bench.cnnumpy_step(model), bench.torch_step(net, optimiser, kind)]
    windows = [char_rnn.consecutive_windows(ids[:3000], 4) for _ in steps]
    for _ in range(100):  # 3000 characters in 4 streams: a reset every 29 steps
        losses = []
        for step, stream in zip(steps, windows, strict=True):
            x, y, restart = next(stream)
            x = one_hot(x.reshape(-1), K, np.float64).reshape(*x.shape, K)
            losses.append(step(x, y, restart))
        assert losses[0] == pytest.approx(losses[1], rel=1e-12)
    ours = model.layers[0].params["W_hh"]
    theirs = net.rnn.weight_hh_l0.detach().numpy().T
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


def test_layers_vs_torch_times_every_layer_of_a_net(capsys):
    """The layer-by-layer benchmark checks each layer against its torch twin before
    timing it, and prints one row per layer with both times and their ratio."""
    import layers_vs_torch

    layers_vs_torch.main(
        ["--nets", "lenet5", "--batch", "4", "--repeats", "1", "--min-time", "0.002"]
    )
    out = capsys.readouterr().out
    assert "hand-off to the engine's helper thread" in out
    rows = [line for line in out.splitlines() if line.startswith("| lenet5 | 4 |")]
    names = [row.split("|")[3].strip() for row in rows]
    assert names[0] == "Conv2D 1->6 5x5" and names[-1] == "Dense 84->10"
    assert len(rows) == 12  # LeNet-5's layers, Flatten included
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        ours, theirs = (float(v) for v in cells[5].split(" / "))
        assert ours > 0 and theirs > 0
        # both times are printed to 3 decimals, the ratio to 2: the printed ratio
        # lies within the sum of their roundings (to first order, with a margin)
        ratio = theirs / ours
        slack = 0.005 + 1.5 * ratio * (0.0005 / ours + 0.0005 / theirs)
        assert abs(float(cells[6]) - ratio) <= slack
    assert "lenet5, batch 4: layers' training sum" in out


def test_layers_vs_torch_refuses_a_layer_that_disagrees():
    """Timing two different computations compares nothing: a twin with other
    weights stops the run."""
    import layers_vs_torch
    import torch

    model, net, _ = layers_vs_torch.build_pair("lenet5")
    conv = next(iter(net))
    with torch.no_grad():
        conv.weight.add_(1.0)
    x, _ = layers_vs_torch.batch_data("lenet5", 2)
    with pytest.raises(SystemExit, match="differs from torch"):
        layers_vs_torch.layer_functions(model.layers[0], conv, x, first=True)


def test_layers_vs_torch_checks_the_backward_too():
    """A layer whose forward agrees but whose input gradient does not is refused."""
    import layers_vs_torch
    from torch_twin import modules_of

    model, net, _ = layers_vs_torch.build_pair("lenet5")
    x, _ = layers_vs_torch.batch_data("lenet5", 2)
    first = model.layers[0]
    x = first.forward(x, training=True)
    tanh, module = model.layers[1], modules_of(net)[1]
    backward = tanh.backward
    tanh.backward = lambda dout: 2 * backward(dout)
    with pytest.raises(SystemExit, match="differs from torch"):
        layers_vs_torch.layer_functions(tanh, module, x, first=False)
