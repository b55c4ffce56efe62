"""Process replicas (cnnumpy/distributed) on a graph model: a residual network with
BatchNorm and Dropout trains split over two processes as in one, and models of
several inputs or outputs are refused clearly.

Tolerances, float64, as tests/distributed/test_replicas.py: losses and weights within
``1e-12`` (each process sums its slice, the slices' sums are then added: another
order of the same additions).
"""

import graph_blocks
import numpy as np
import pytest
import test_graph_io
from test_replicas import max_weight_diff

import cnnumpy
from cnnumpy import layers as L
from cnnumpy.distributed import limits
from cnnumpy.distributed.replicas import ReplicaError

# the engine's own machinery: run with its kernels, whatever CNNUMPY_ENGINE says
pytestmark = pytest.mark.usefixtures("engine_on")


def _model():
    model = graph_blocks.resnet_like(dropout=0.2)
    model.compile(cnnumpy.optimizers.SGD(0.05, momentum=0.9), "cross_entropy")
    return model


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 2, 12, 12)), rng.integers(0, 3, n)




def _dropout(model):
    return next(la for la in model.layers if isinstance(la, L.Dropout))


@pytest.fixture
def three_cores(monkeypatch):
    """Three processes on a machine with fewer cores: they take turns, same numbers."""
    monkeypatch.setattr(limits, "available_cores", lambda: 3)


@pytest.mark.parametrize("processes, n", [(2, 32), (2, 37), (3, 40)])
def test_a_residual_network_trains_split_like_one_process(processes, n, three_cores):
    one, split = _model(), _model()
    x, y = _data(n)
    with split.use_processes(processes) as group:
        assert group.splits(n)
        for _ in range(3):
            a, b = one.train_on_batch(x, y), split.train_on_batch(x, y)
            assert abs(a - b) < 1e-12
        assert max_weight_diff(one, split) < 1e-12  # running statistics included
        assert _dropout(one).rng.random() == _dropout(split).rng.random()
        np.testing.assert_allclose(one.predict(x), split.predict(x), atol=1e-12)
        assert one.evaluate(x, y) == pytest.approx(split.evaluate(x, y), rel=1e-12)
        assert not group.closed
    assert split.executor.replicas is None


def test_fit_split_like_one_process():
    one, split = _model(), _model()
    x, y = _data(48, seed=1)
    h1 = one.fit(x, y, epochs=2, batch_size=24, seed=5, verbose=0)
    with split.use_processes(2):
        h2 = split.fit(x, y, epochs=2, batch_size=24, seed=5, verbose=0)
    np.testing.assert_allclose(h1.history["loss"], h2.history["loss"], rtol=1e-12)
    assert max_weight_diff(one, split) < 1e-12


@pytest.mark.parametrize(
    "make, what",
    [
        (test_graph_io.two_inputs, r"2 input\(s\) and 1 output\(s\)"),
        (test_graph_io.two_outputs, r"1 input\(s\) and 2 output\(s\)"),
    ],
    ids=["two-inputs", "two-outputs"],
)
def test_models_of_several_inputs_or_outputs_are_refused(make, what):
    model = make()
    with pytest.raises(
        ReplicaError,
        match=r"use_processes: process replicas split "
        rf"models of one input and one output; this one has {what}",
    ):
        model.use_processes(2)
    assert model.executor.replicas is None
