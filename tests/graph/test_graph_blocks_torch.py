"""A residual block and an Inception block as cnnumpy graph models against
hand-written PyTorch twins holding the same weights: outputs (training and
inference), the cross-entropy loss, the input gradient, every parameter gradient,
BatchNorm's running statistics, and one SGD step.

Every test runs over the engine's modes (the engine, the book, each conv2d, batchnorm
and maxpool2d kernel forced), through three paths: ``model.forward`` /
``model.backward``; the executor's ``forward`` / ``backward`` / ``gradients`` (its
execution order, no input gradient for the layers reading the input); and
``model.train_step`` (the executor with the engine on, the passes with the book).

Weights: Conv2D ``W`` is ``(F, C, KH, KW)`` like ``nn.Conv2d.weight``; Dense ``W`` is
``(in, out)``, ``nn.Linear.weight.T``; BatchNorm gamma, beta, running mean and
variance are ``weight``, ``bias``, ``running_mean``, ``running_var``.
Tolerances, float64: ``rtol=1e-10, atol=1e-12`` (the same sums in another order).
"""

import engine_modes
import graph_blocks
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnumpy
from cnnumpy import layers as L
from cnnumpy.losses import CrossEntropy

pytestmark = pytest.mark.torch

TOL = {"rtol": 1e-10, "atol": 1e-12}


MODES = engine_modes.modes("conv2d", "batchnorm", "maxpool2d")


@pytest.fixture(autouse=True, params=MODES)
def engine_mode(request):
    with engine_modes.running(request.param):
        yield request.param


class ResidualTwin(nn.Module):
    def __init__(self, shortcut, C=3, F=4, K=5):
        super().__init__()
        self.conv1 = nn.Conv2d(C, F, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(F)
        self.conv2 = nn.Conv2d(F, F, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(F)
        self.short = nn.Conv2d(C, F, 1) if shortcut == "conv" else None
        self.fc = nn.Linear(F, K)

    def forward(self, x):
        h = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        s = x if self.short is None else self.short(x)
        y = F.relu(torch.add(h, s))
        return self.fc(y.mean(dim=(2, 3)))


class InceptionTwin(nn.Module):
    def __init__(self, C=3, K=5):
        super().__init__()
        self.b1 = nn.Conv2d(C, 2, 1)
        self.b2_reduce = nn.Conv2d(C, 3, 1)
        self.b2_bn = nn.BatchNorm2d(3)
        self.b2 = nn.Conv2d(3, 4, 3, padding=1)
        self.b3_reduce = nn.Conv2d(C, 2, 1)
        self.b3 = nn.Conv2d(2, 3, 5, padding=2)
        self.b4 = nn.Conv2d(C, 2, 1)
        self.fc = nn.Linear(11, K)

    def forward(self, x):
        b1 = F.relu(self.b1(x))
        b2 = F.relu(self.b2(F.relu(self.b2_bn(self.b2_reduce(x)))))
        b3 = F.relu(self.b3(F.relu(self.b3_reduce(x))))
        b4 = F.relu(self.b4(F.max_pool2d(x, 3, stride=1, padding=1)))
        y = torch.cat([b1, b2, b3, b4], dim=1)
        return self.fc(y.mean(dim=(2, 3)))


# our key -> (torch attribute, transposed)
KEYS = {
    L.Conv2D: {"W": ("weight", False), "b": ("bias", False)},
    L.Dense: {"W": ("weight", True), "b": ("bias", False)},
    L.BatchNorm: {
        "gamma": ("weight", False),
        "beta": ("bias", False),
        "running_mean": ("running_mean", False),
        "running_var": ("running_var", False),
    },
}


def named(model):
    """``(layer, key, torch attribute, transposed)`` of every named layer's arrays."""
    for layer in model.layers:
        for key, (attr, transposed) in KEYS.get(type(layer), {}).items():
            yield layer, key, attr, transposed


def twin_of(model, kind):
    if kind == "inception":
        twin = InceptionTwin()
    else:
        twin = ResidualTwin(kind, C=model.input_shape[0])
    twin = twin.double()
    copied = set()
    with torch.no_grad():
        for layer, key, attr, transposed in named(model):
            ours = {**layer.params, **layer.state}[key]
            target = getattr(getattr(twin, layer.name), attr)
            source = torch.from_numpy(ours.T.copy() if transposed else ours.copy())
            assert tuple(target.shape) == tuple(source.shape), (layer.name, key)
            target.copy_(source)
            copied.add(layer.name)
    assert copied == {name for name, m in twin.named_children() if m is not None}
    return twin


def make(kind):
    if kind == "inception":
        model = graph_blocks.inception()
    else:
        model = graph_blocks.residual(kind, C=4 if kind == "identity" else 3)
    graph_blocks.randomise(model)
    model.compile(cnnumpy.optimizers.SGD(0.1), "cross_entropy", metrics=())
    twin = twin_of(model, kind)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, *model.input_shape))
    y = rng.integers(0, 5, 4)
    return model, twin, x, y


def torch_pass(twin, x, y, training):
    twin.train(training)
    twin.zero_grad()
    xt = torch.tensor(x, requires_grad=True)
    out = twin(xt)
    loss = F.cross_entropy(out, torch.from_numpy(y))
    loss.backward()
    return out.detach().numpy(), float(loss.detach()), xt.grad.numpy()


def assert_close(ours, theirs, what):
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    assert ours is not None, f"{what}: None"
    assert ours.shape == theirs.shape, f"{what}: {ours.shape} != {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, err_msg=what, **TOL)


def assert_grads_equal(model, twin):
    for layer, key, attr, transposed in named(model):
        if key not in layer.grads:
            continue  # running statistics
        grad = getattr(getattr(twin, layer.name), attr).grad
        grad = grad.T if transposed else grad
        assert_close(layer.grads[key], grad, f"{layer.name}.{key} gradient")


def assert_state_equal(model, twin):
    for layer, key, attr, transposed in named(model):
        ours = {**layer.params, **layer.state}[key]
        theirs = getattr(getattr(twin, layer.name), attr)
        assert_close(ours, theirs.T if transposed else theirs, f"{layer.name}.{key}")


KINDS = ["identity", "conv", "inception"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_model_passes_match_torch(kind, training):
    model, twin, x, y = make(kind)
    out = model.forward(x, training=training)
    loss_fn = CrossEntropy()
    loss = loss_fn(out, y)
    dx = model.backward(loss_fn.backward())
    want_out, want_loss, want_dx = torch_pass(twin, x, y, training)
    assert_close(out, want_out, "output")
    assert loss == pytest.approx(want_loss, rel=1e-12)
    assert_close(dx, want_dx, "dx")
    assert_grads_equal(model, twin)
    assert_state_equal(model, twin)  # running statistics after the step


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_executor_passes_match_torch(kind, training):
    model, twin, x, y = make(kind)
    out = model.executor.forward(x, training=training)
    loss_fn = CrossEntropy()
    loss_fn(out, y)
    dx = model.executor.backward(loss_fn.backward())
    want_out, _, want_dx = torch_pass(twin, x, y, training)
    assert_close(out, want_out, "output")
    assert_close(dx, want_dx, "dx")
    assert_grads_equal(model, twin)
    assert_state_equal(model, twin)


@pytest.mark.parametrize("kind", KINDS)
def test_executor_gradients_match_torch(kind):
    model, twin, x, y = make(kind)
    loss, out = model.executor.gradients(x, y)
    want_out, want_loss, _ = torch_pass(twin, x, y, training=True)
    assert_close(out, want_out, "output")
    assert loss == pytest.approx(want_loss, rel=1e-12)
    assert_grads_equal(model, twin)
    assert all(layer.need_input_grad for layer in model.layers)  # restored


@pytest.mark.parametrize("kind", KINDS)
def test_train_step_matches_a_torch_sgd_step(kind):
    model, twin, x, y = make(kind)
    twin.train()
    optimizer = torch.optim.SGD(twin.parameters(), lr=0.1)
    for _ in range(2):
        loss, out = model.train_step(x, y)
        optimizer.zero_grad()
        want = twin(torch.from_numpy(x))
        want_loss = F.cross_entropy(want, torch.from_numpy(y))
        want_loss.backward()
        optimizer.step()
        assert_close(out, want, "output")
        assert loss == pytest.approx(float(want_loss.detach()), rel=1e-12)
    assert_state_equal(model, twin)  # weights and running statistics
    probs = model.predict(x)  # fused inference with the engine on
    want = torch.softmax(twin.eval()(torch.from_numpy(x)), dim=1)
    assert_close(probs, want, "predict")
