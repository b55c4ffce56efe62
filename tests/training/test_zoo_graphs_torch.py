"""The zoo's graph networks against their PyTorch twins (benchmarks/torch_twin.py):
the same outputs, loss and every gradient in float64, so that the accuracy table's
PyTorch column trains the same network from the same weights."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnumpy import zoo

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from torch_twin import GraphTwin, compare_one_step, torch_twin  # noqa: E402


@pytest.mark.parametrize(
    "name, shape", [("resnet8", (3, 16, 16)), ("mini_googlenet", (3, 32, 32))]
)
def test_graph_zoo_nets_equal_their_torch_twins(name, shape):
    model = zoo.get(name, input_shape=shape).astype(np.float64)
    model.compile("sgd", "cross_entropy")
    net = torch_twin(model)
    assert isinstance(net, GraphTwin)
    assert model.count_params() == sum(p.numel() for p in net.parameters())
    x = np.random.default_rng(0).normal(size=(3, *shape))
    y = np.array([0, 4, 9])
    result = compare_one_step(model, net, x, y)  # training mode: batch statistics
    assert result["loss"][0] == pytest.approx(result["loss"][1], rel=1e-12)
    assert result["max_rel_grad_err"] < 1e-10
    net.eval()
    with torch.no_grad():
        logits = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.forward(x), logits, rtol=1e-10, atol=1e-12)
