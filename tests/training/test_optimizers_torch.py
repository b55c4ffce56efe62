"""Each optimiser against its ``torch.optim`` twin, step for step.

Both start from the same parameters (a 4-D convolution weight and its bias, a dense
weight and bias), then for every step receive the same random gradients; after each step
the parameters must agree. A parameterless layer and a frozen layer sit in the list to
check that they are skipped and that slot keys follow the list index.

Tolerances: float64 rtol 1e-10 / atol 1e-12 (the two sides differ only by the order of a
few floating-point operations); float32 rtol 1e-5 / atol 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnumpy import optimizers

pytestmark = pytest.mark.torch

STEPS = 6
TOLERANCES = {np.float64: (1e-10, 1e-12), np.float32: (1e-5, 1e-6)}
TORCH_DTYPES = {np.float64: torch.float64, np.float32: torch.float32}


class FakeLayer:
    """The part of a layer an optimiser sees: ``params``, ``grads``, ``trainable``."""

    def __init__(self, params: dict[str, np.ndarray], trainable: bool = True):
        self.params = params
        self.grads = {k: np.zeros_like(v) for k, v in params.items()}
        self.trainable = trainable

    def __repr__(self) -> str:
        return "FakeLayer()"


def make_layers(rng, dtype):
    def rand(*shape):
        return rng.standard_normal(shape).astype(dtype)

    conv = FakeLayer({"W": rand(4, 3, 3, 3), "b": rand(4)})
    relu = FakeLayer({})
    frozen = FakeLayer({"W": rand(3, 3)}, trainable=False)
    dense = FakeLayer({"W": rand(36, 5), "b": rand(5)})
    return [conv, relu, frozen, dense]


def trainable_arrays(layers):
    return [p for layer in layers if layer.trainable for p in layer.params.values()]


def run_both(ours, make_torch, dtype, clip=None, lr_change=None):
    """Step ``ours`` and the torch optimiser on the same gradients; compare each."""
    rng = np.random.default_rng(0)
    layers = make_layers(rng, dtype)
    frozen_before = layers[2].params["W"].copy()
    ours_params = trainable_arrays(layers)
    theirs = [torch.tensor(p.copy(), requires_grad=True) for p in ours_params]
    torch_opt = make_torch(theirs)
    rtol, atol = TOLERANCES[dtype]
    for step in range(STEPS):
        if lr_change is not None and step == lr_change[0]:
            ours.lr = lr_change[1]
            for group in torch_opt.param_groups:
                group["lr"] = lr_change[1]
        for layer in layers:
            for key, p in layer.params.items():
                layer.grads[key] = (3 * rng.standard_normal(p.shape)).astype(dtype)
        for t, layer_grad in zip(theirs, trainable_grads(layers), strict=True):
            t.grad = torch.tensor(layer_grad.copy(), dtype=TORCH_DTYPES[dtype])
        ours.step(layers)
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(theirs, clip)
        torch_opt.step()
        for p, t in zip(ours_params, theirs, strict=True):
            assert p.shape == tuple(t.shape) and p.dtype == dtype
            expected = t.detach().numpy()
            np.testing.assert_allclose(p, expected, rtol=rtol, atol=atol)
    np.testing.assert_array_equal(layers[2].params["W"], frozen_before)
    assert ours.iterations == STEPS
    assert all(k.split(".")[0] in {"0", "3"} for k in ours.slots)


def trainable_grads(layers):
    return [g for layer in layers if layer.trainable for g in layer.grads.values()]


CASES = {
    "sgd": (
        lambda: optimizers.SGD(lr=0.1),
        lambda ps: torch.optim.SGD(ps, lr=0.1),
    ),
    "sgd_momentum": (
        lambda: optimizers.SGD(lr=0.05, momentum=0.9),
        lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9),
    ),
    "sgd_nesterov": (
        lambda: optimizers.SGD(lr=0.05, momentum=0.9, nesterov=True),
        lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    ),
    "sgd_weight_decay": (
        lambda: optimizers.SGD(lr=0.1, weight_decay=0.005),
        lambda ps: torch.optim.SGD(ps, lr=0.1, weight_decay=0.005),
    ),
    "sgd_momentum_weight_decay": (  # the notes' alpha=0.01, eta=0.9, eps=0.005
        lambda: optimizers.SGD(lr=0.01, momentum=0.9, weight_decay=0.005),
        lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9, weight_decay=0.005),
    ),
    "sgd_nesterov_weight_decay": (
        lambda: optimizers.SGD(lr=0.01, momentum=0.8, nesterov=True, weight_decay=0.01),
        lambda ps: torch.optim.SGD(
            ps, lr=0.01, momentum=0.8, nesterov=True, weight_decay=0.01
        ),
    ),
    "adam": (
        lambda: optimizers.Adam(lr=0.01),
        lambda ps: torch.optim.Adam(ps, lr=0.01),
    ),
    "adam_betas_eps": (
        lambda: optimizers.Adam(lr=0.02, beta1=0.8, beta2=0.99, eps=1e-6),
        lambda ps: torch.optim.Adam(ps, lr=0.02, betas=(0.8, 0.99), eps=1e-6),
    ),
    "adam_weight_decay": (
        lambda: optimizers.Adam(lr=0.01, weight_decay=0.1),
        lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1),
    ),
    "adamw": (
        lambda: optimizers.AdamW(lr=0.01),
        lambda ps: torch.optim.AdamW(ps, lr=0.01),
    ),
    "adamw_strong_decay": (
        lambda: optimizers.AdamW(lr=0.01, beta1=0.85, weight_decay=0.5),
        lambda ps: torch.optim.AdamW(
            ps, lr=0.01, betas=(0.85, 0.999), weight_decay=0.5
        ),
    ),
    "rmsprop": (
        lambda: optimizers.RMSProp(lr=0.01),
        lambda ps: torch.optim.RMSprop(ps, lr=0.01),
    ),
    "rmsprop_momentum": (
        lambda: optimizers.RMSProp(lr=0.01, alpha=0.9, momentum=0.9),
        lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.9, momentum=0.9),
    ),
    "rmsprop_momentum_weight_decay": (
        lambda: optimizers.RMSProp(lr=0.005, momentum=0.5, weight_decay=0.01, eps=1e-6),
        lambda ps: torch.optim.RMSprop(
            ps, lr=0.005, momentum=0.5, weight_decay=0.01, eps=1e-6
        ),
    ),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_torch(case, dtype):
    ours, theirs = CASES[case]
    run_both(ours(), theirs, dtype)


@pytest.mark.parametrize("case", ["sgd_momentum_weight_decay", "adam", "rmsprop"])
def test_lr_changed_between_steps_matches_torch(case):
    """A schedule sets ``optimizer.lr``; torch gets the same change in its group."""
    ours, theirs = CASES[case]
    run_both(ours(), theirs, np.float64, lr_change=(3, 0.001))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("clipnorm", [1.0, 1e3])  # clipping at every step / never
def test_clipnorm_matches_torch_clip_grad_norm(clipnorm, dtype):
    ours = optimizers.SGD(lr=0.1, momentum=0.9, weight_decay=0.01, clipnorm=clipnorm)

    def make_torch(ps):
        return torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01)

    run_both(ours, make_torch, dtype, clip=clipnorm)


def test_adam_clipnorm_matches_torch():
    ours = optimizers.Adam(lr=0.01, clipnorm=0.5)
    run_both(ours, lambda ps: torch.optim.Adam(ps, lr=0.01), np.float64, clip=0.5)


@pytest.mark.parametrize("max_norm", [0.5, 1e4])
def test_clip_grad_norm_function_matches_torch(max_norm):
    rng = np.random.default_rng(0)
    layers = make_layers(rng, np.float64)
    for layer in layers:
        for key, p in layer.params.items():
            layer.grads[key] = rng.standard_normal(p.shape)
    theirs = []
    for g in trainable_grads(layers):
        t = torch.zeros(g.shape, dtype=torch.float64, requires_grad=True)
        t.grad = torch.tensor(g.copy())
        theirs.append(t)
    frozen_grad = layers[2].grads["W"].copy()

    total = optimizers.clip_grad_norm(layers, max_norm)
    expected_total = torch.nn.utils.clip_grad_norm_(theirs, max_norm)

    assert isinstance(total, float)
    np.testing.assert_allclose(total, expected_total.item(), rtol=1e-12)
    for g, t in zip(trainable_grads(layers), theirs, strict=True):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(layers[2].grads["W"], frozen_grad)  # not trainable
