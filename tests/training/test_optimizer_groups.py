"""Per-layer optimiser options (``set_options``, ``groups=``, ``decay_biases``).

Seed 000 gives each layer its own (α, η, ε) and decays weights, not biases. Checked
here: the update by hand, PyTorch's parameter groups, the errors, save/load and
``fit(resume_from=...)``, schedules, and process replicas.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import cnnumpy
from cnnumpy import callbacks, optimizers, schedules
from cnnumpy.layers import LSTM, BatchNorm, Conv2D, Dense, Flatten, MaxPool2D, ReLU
from cnnumpy.saving import to_torch_state_dict

TORCH_TOL = {"rtol": 1e-12, "atol": 1e-12}


class NamedLayer:
    """The part of a layer an optimiser sees, with a name."""

    def __init__(self, name, params, trainable=True):
        self.name, self.params, self.trainable = name, params, trainable
        self.grads = {k: np.zeros_like(v) for k, v in params.items()}

    def __repr__(self) -> str:
        return f"NamedLayer({self.name!r})"


def fake_layers(rng):
    conv = NamedLayer(
        "conv", {"W": rng.standard_normal((4, 3, 3, 3)), "b": rng.standard_normal(4)}
    )
    relu = NamedLayer("relu", {})
    fc = NamedLayer(
        "fc", {"W": rng.standard_normal((6, 5)), "b": rng.standard_normal(5)}
    )
    return [conv, relu, fc]


def fill_grads(layers, rng):
    for layer in layers:
        for key, p in layer.params.items():
            layer.grads[key] = 3 * rng.standard_normal(p.shape)


def small_cnn(optimizer, dtype=np.float64):
    cnnumpy.seed(0)
    model = cnnumpy.Sequential(
        [
            Conv2D(4, 3, padding=1, name="conv1"),
            BatchNorm(name="bn"),
            ReLU(),
            MaxPool2D(2),
            Conv2D(6, 3, stride=2, name="conv2"),
            ReLU(),
            Flatten(),
            Dense(5, name="fc"),
        ],
        input_shape=(2, 10, 10),
    )
    model.astype(dtype)
    model.compile(optimizer=optimizer, loss="cross_entropy")
    return model


def batches(count, n=8, seed=0):
    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal((n, 2, 10, 10)), rng.integers(0, 5, n))
        for _ in range(count)
    ]


def weights(model):
    return [p.copy() for layer in model.layers for p in layer.params.values()]


# -- the update by hand ---------------------------------------------------------------
def test_per_layer_lr_momentum_and_decay_are_the_hand_update_for_two_steps():
    """v = mu v + g + eps w; w -= lr v, each parameter with its own (lr, mu, eps).

    The optimiser has no momentum; only the conv layer has, so only its parameters
    get a buffer that does anything (the others' stays zero)."""
    rng = np.random.default_rng(0)
    layers = fake_layers(rng)
    opt = optimizers.SGD(
        lr=0.01,
        weight_decay=1e-4,
        groups={"conv": {"lr": 0.02, "momentum": 0.9}, ("fc", "b"): {"lr": 0.05}},
    )
    opt.set_options(2, param="W", weight_decay=5e-3, momentum=0.5)
    own = {  # (lr, mu, eps) per parameter, written out
        (0, "W"): (0.02, 0.9, 1e-4),
        (0, "b"): (0.02, 0.9, 1e-4),
        (2, "W"): (0.01, 0.5, 5e-3),
        (2, "b"): (0.05, 0.0, 1e-4),
    }
    w = {k: layers[k[0]].params[k[1]].copy() for k in own}
    v = {k: np.zeros_like(value) for k, value in w.items()}
    for _ in range(2):
        fill_grads(layers, rng)
        for (i, key), (lr, mu, eps) in own.items():
            g = layers[i].grads[key]
            v[i, key] = mu * v[i, key] + (g + eps * w[i, key])
            w[i, key] = w[i, key] - lr * v[i, key]
        opt.step(layers)
        for (i, key), expected in w.items():
            np.testing.assert_array_equal(layers[i].params[key], expected)
    assert set(opt.slots) == {"0.W", "0.b", "2.W", "2.b"}
    np.testing.assert_array_equal(opt.slots["2.b"]["momentum_buffer"], 0)


def test_param_options_show_what_each_parameter_gets():
    opt = optimizers.Adam(lr=0.001, beta1=0.8, weight_decay=0.1, decay_biases=False)
    opt.set_options("conv", beta2=0.99, lr=0.002)
    opt.set_options("conv", param="b", weight_decay=0.3)  # its own: not exempt
    options = opt.param_options(fake_layers(np.random.default_rng(0)))
    assert sorted(options) == ["0.W", "0.b", "2.W", "2.b"]
    assert vars(options["0.W"]) == {
        "lr": 0.002,
        "beta1": 0.8,
        "beta2": 0.99,
        "eps": 1e-8,
        "weight_decay": 0.1,
    }
    assert options["0.b"].weight_decay == 0.3 and options["0.b"].beta2 == 0.99
    assert options["2.W"].weight_decay == 0.1 and options["2.W"].lr == 0.001
    assert options["2.b"].weight_decay == 0.0


def test_decay_biases_false_exempts_biases_and_batchnorm_gamma_beta():
    """With zero gradients, plain SGD only decays: w - lr (0 + eps w) for the
    weights; biases, gamma and beta do not move."""
    model = small_cnn(optimizers.SGD(lr=0.1, weight_decay=0.5, decay_biases=False))
    before = [dict(layer.params) for layer in model.layers]
    before = [{k: v.copy() for k, v in params.items()} for params in before]
    for layer in model.layers:
        layer.grads = {k: np.zeros_like(v) for k, v in layer.params.items()}
    model.optimizer.step(model.layers)
    moved = set()
    for i, layer in enumerate(model.layers):
        for key, p in layer.params.items():
            if key in ("b", "gamma", "beta"):
                np.testing.assert_array_equal(p, before[i][key])
            else:
                w = before[i][key]
                np.testing.assert_array_equal(p, w - 0.1 * (0 + 0.5 * w))
                moved.add((layer.name, key))
    assert moved == {("conv1", "W"), ("conv2", "W"), ("fc", "W")}
    cnnumpy.seed(0)
    rnn = cnnumpy.Sequential([LSTM(3), Dense(2)], input_shape=(4, 5))
    options = optimizers.SGD(weight_decay=0.1, decay_biases=False).param_options(
        rnn.layers
    )
    assert {k: o.weight_decay for k, o in options.items()} == {
        "0.W_xh": 0.1,
        "0.W_hh": 0.1,
        "0.b_xh": 0.0,
        "0.b_hh": 0.0,
        "1.W": 0.1,
        "1.b": 0.0,
    }


# -- PyTorch's parameter groups --------------------------------------------------------
def torch_twin(ours):
    nn = torch.nn
    theirs = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(24, 5),
    ).double()
    theirs.load_state_dict(
        {k: torch.from_numpy(v) for k, v in to_torch_state_dict(ours).items()}
    )
    return theirs


def train_both(ours, theirs, torch_opt, steps=3):
    for x, y in batches(steps):
        loss = ours.train_on_batch(x, y)
        torch_opt.zero_grad()
        out = theirs(torch.from_numpy(x))
        torch_loss = torch.nn.functional.cross_entropy(out, torch.from_numpy(y))
        torch_loss.backward()
        torch_opt.step()
        assert loss == pytest.approx(torch_loss.item(), rel=1e-10)
    final = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    for name, value in to_torch_state_dict(ours).items():
        if not name.endswith("num_batches_tracked"):
            assert value.shape == final[name].shape
            np.testing.assert_allclose(value, final[name], **TORCH_TOL, err_msg=name)


def test_two_groups_without_decay_on_biases_match_torch():
    ours = small_cnn(
        optimizers.SGD(lr=0.05, momentum=0.9, weight_decay=0.05, decay_biases=False)
    )
    theirs = torch_twin(ours)
    weights_ = [p for n, p in theirs.named_parameters() if n.endswith(".weight")]
    biases = [p for n, p in theirs.named_parameters() if n.endswith(".bias")]
    weights_ = [w for w in weights_ if w.ndim > 1]  # BatchNorm's weight is gamma
    gammas = [p for n, p in theirs.named_parameters() if n == "1.weight"]
    torch_opt = torch.optim.SGD(
        [{"params": weights_}, {"params": biases + gammas, "weight_decay": 0.0}],
        lr=0.05,
        momentum=0.9,
        weight_decay=0.05,
    )
    train_both(ours, theirs, torch_opt)


def test_per_layer_lr_momentum_decay_match_torch_groups():
    ours = small_cnn(
        optimizers.SGD(
            lr=0.05,
            momentum=0.9,
            nesterov=True,
            weight_decay=1e-3,
            decay_biases=False,
            groups={
                "conv1": {"lr": 0.2, "momentum": 0.5},
                ("fc", "b"): {"weight_decay": 0.02},
                "conv2": {"weight_decay": 0.1},
            },
        )
    )
    theirs = torch_twin(ours)
    conv1, bn, conv2, fc = theirs[0], theirs[1], theirs[4], theirs[7]
    torch_opt = torch.optim.SGD(
        [
            {"params": [conv1.weight], "lr": 0.2, "momentum": 0.5},
            {"params": [conv1.bias], "lr": 0.2, "momentum": 0.5, "weight_decay": 0},
            {"params": [bn.weight, bn.bias, conv2.bias], "weight_decay": 0.0},
            {"params": [conv2.weight], "weight_decay": 0.1},
            {"params": [fc.weight]},
            {"params": [fc.bias], "weight_decay": 0.02},
        ],
        lr=0.05,
        momentum=0.9,
        nesterov=True,
        weight_decay=1e-3,
    )
    train_both(ours, theirs, torch_opt)


TORCH_CASES = {
    "adam": (
        lambda: optimizers.Adam(
            lr=0.01, weight_decay=0.1, groups={"conv": {"beta1": 0.8, "beta2": 0.99}}
        ),
        lambda c, f: torch.optim.Adam(
            [{"params": c, "betas": (0.8, 0.99)}, {"params": f}],
            lr=0.01,
            weight_decay=0.1,
        ),
    ),
    "adamw": (
        lambda: optimizers.AdamW(
            lr=0.01, weight_decay=0.5, decay_biases=False, groups={"fc": {"lr": 0.03}}
        ),
        lambda c, f: torch.optim.AdamW(
            [
                {"params": c[:1]},
                {"params": c[1:], "weight_decay": 0.0},
                {"params": f[:1], "lr": 0.03},
                {"params": f[1:], "lr": 0.03, "weight_decay": 0.0},
            ],
            lr=0.01,
            weight_decay=0.5,
        ),
    ),
    "rmsprop": (
        lambda: optimizers.RMSProp(
            lr=0.01, groups={"conv": {"alpha": 0.9, "momentum": 0.5, "eps": 1e-6}}
        ),
        lambda c, f: torch.optim.RMSprop(
            [{"params": c, "alpha": 0.9, "momentum": 0.5, "eps": 1e-6}, {"params": f}],
            lr=0.01,
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_adam_adamw_rmsprop_groups_match_torch(case):
    make_ours, make_torch = TORCH_CASES[case]
    rng = np.random.default_rng(0)
    layers = fake_layers(rng)
    ours_params = [layers[0].params["W"], layers[0].params["b"]]
    ours_params += [layers[2].params["W"], layers[2].params["b"]]
    theirs = [torch.tensor(p.copy(), requires_grad=True) for p in ours_params]
    ours, torch_opt = make_ours(), make_torch(theirs[:2], theirs[2:])
    for _ in range(3):
        fill_grads(layers, rng)
        grads = [layers[i].grads[k] for i in (0, 2) for k in ("W", "b")]
        for t, g in zip(theirs, grads, strict=True):
            t.grad = torch.tensor(g.copy())
        ours.step(layers)
        torch_opt.step()
    for p, t in zip(ours_params, theirs, strict=True):
        np.testing.assert_allclose(p, t.detach().numpy(), **TORCH_TOL)


# -- schedules -------------------------------------------------------------------------
def test_a_schedule_scales_every_group_lr_like_torch_steplr():
    """StepDecay sets optimizer.lr each step; torch's StepLR multiplies each group's
    lr by gamma: lr_group(t) = lr_group * lr(t) / initial_lr on both sides."""
    schedule = schedules.StepDecay(lr=0.1, step_size=1, gamma=0.5)
    rng = np.random.default_rng(0)
    layers = fake_layers(rng)
    ours = optimizers.SGD(lr=0.1, momentum=0.9, groups={"conv": {"lr": 0.03}})
    ours_params = [layers[i].params[k] for i in (0, 2) for k in ("W", "b")]
    theirs = [torch.tensor(p.copy(), requires_grad=True) for p in ours_params]
    torch_opt = torch.optim.SGD(
        [{"params": theirs[:2], "lr": 0.03}, {"params": theirs[2:]}],
        lr=0.1,
        momentum=0.9,
    )
    steplr = torch.optim.lr_scheduler.StepLR(torch_opt, step_size=1, gamma=0.5)
    for step in range(4):
        ours.lr = schedule(step)
        options = ours.param_options(layers)
        assert options["0.W"].lr == 0.03 * (schedule(step) / 0.1)
        assert options["2.W"].lr == schedule(step)
        assert [g["lr"] for g in torch_opt.param_groups] == pytest.approx(
            [options["0.W"].lr, options["2.W"].lr], rel=1e-15
        )
        fill_grads(layers, rng)
        grads = [layers[i].grads[k] for i in (0, 2) for k in ("W", "b")]
        for t, g in zip(theirs, grads, strict=True):
            t.grad = torch.tensor(g.copy())
        ours.step(layers)
        torch_opt.step()
        steplr.step()
    for p, t in zip(ours_params, theirs, strict=True):
        np.testing.assert_allclose(p, t.detach().numpy(), **TORCH_TOL)


def test_learning_rate_scheduler_in_fit_scales_group_lrs():
    opt = optimizers.SGD(lr=0.1, groups={"conv1": {"lr": 0.4}})
    model = small_cnn(opt)
    seen = []

    def record(epoch, logs):
        options = opt.param_options(model.layers)
        seen.append((opt.lr, options["0.W"].lr, options["7.W"].lr))

    x, y = batches(1, n=16)[0]
    model.fit(
        x,
        y,
        epochs=3,
        batch_size=8,
        verbose=0,
        callbacks=[
            callbacks.LearningRateScheduler(schedules.Exponential(0.1, gamma=0.1)),
            callbacks.LambdaCallback(on_epoch_begin=record),
        ],
    )
    assert [s[0] for s in seen] == pytest.approx([0.1, 0.01, 0.001], rel=1e-15)
    assert [s[1] for s in seen] == pytest.approx([0.4, 0.04, 0.004], rel=1e-15)
    assert [s[2] for s in seen] == [s[0] for s in seen]


# -- errors ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "layer, options, error, match",
    [
        ("conv", {"lr": -0.1}, ValueError, r"options of layer 'conv': lr must be a"),
        ("conv", {"momentum": 1.0}, ValueError, r"momentum must be a number in \[0, 1"),
        ("conv", {"lr": "0.1"}, ValueError, r"lr must be a number >= 0, got '0.1'"),
        ("conv", {"weight_decay": True}, ValueError, "weight_decay must be a number"),
        ("conv", {"lr": float("nan")}, ValueError, "lr must be a number >= 0"),
        ("conv", {"beta1": 0.9}, ValueError, r"unknown option\(s\) \['beta1'\]"),
        ("conv", {}, ValueError, "no option given; expected some of"),
        (-1, {"lr": 0.1}, ValueError, "a layer index must be >= 0, got -1"),
        ("", {"lr": 0.1}, ValueError, "a layer name must not be empty"),
        (1.5, {"lr": 0.1}, TypeError, "expected a layer, its name or its index"),
        (Conv2D(4, 3), {"lr": 0.1}, ValueError, r"Conv2D\(4, 3\) has no name; give"),
    ],
)
def test_bad_options_are_refused_when_set(layer, options, error, match):
    opt = optimizers.SGD(lr=0.1)
    with pytest.raises(error, match=match):
        opt.set_options(layer, **options)
    assert opt.layer_options == {}


@pytest.mark.parametrize(
    "layer, param, match",
    [
        ("conv9", None, r"no layer has that name; the model's named layers are \['c"),
        (5, None, r"options for layer 5, but the model has 3 layers \(indices 0 to 2"),
        ("relu", None, r"layer 'relu' \(NamedLayer\('relu'\)\), which has no param"),
        ("fc", "gamma", r"NamedLayer\('fc'\) has no parameter 'gamma'; its param"),
    ],
)
def test_layers_and_keys_the_model_lacks_are_reported_at_the_step(layer, param, match):
    layers = fake_layers(np.random.default_rng(0))
    opt = optimizers.SGD(lr=0.1)
    opt.set_options(layer, param=param, lr=0.2)
    with pytest.raises(ValueError, match=match):
        opt.step(layers)


def test_other_errors():
    layers = fake_layers(np.random.default_rng(0))
    layers[2].name = "conv"
    opt = optimizers.SGD(lr=0.1, groups={"conv": {"lr": 0.2}})
    with pytest.raises(ValueError, match=r"layers \[0, 2\] all have that name"):
        opt.step(layers)
    with pytest.raises(ValueError, match="so the optimizer's lr must be > 0, got lr=0"):
        optimizers.SGD(lr=0.0, groups={"conv": {"lr": 0.2}})
    with pytest.raises(ValueError, match="decay_biases must be True or False, got 0"):
        optimizers.Adam(decay_biases=0)
    with pytest.raises(TypeError, match="groups must be a dict .* got str"):
        optimizers.SGD(groups="conv")
    with pytest.raises(ValueError, match=r"a group key is a layer or \(layer, param\)"):
        optimizers.SGD(groups={("conv", "W", "b"): {"lr": 0.1}})
    with pytest.raises(TypeError, match="the options of a group must be a dict"):
        optimizers.SGD(groups={"conv": 0.1})
    with pytest.raises(ValueError, match="must hold dicts with a 'layer' key"):
        optimizers.SGD(groups=[{"lr": 0.1}])
    with pytest.raises(TypeError, match="param must be a parameter key such as 'b'"):
        optimizers.SGD().set_options("conv", param=0, lr=0.1)


# -- config, files, resume, replicas -------------------------------------------------
def test_config_without_groups_is_unchanged_and_old_configs_load():
    old = {
        "lr": 0.1,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 0.0,
        "clipnorm": None,
    }
    assert optimizers.SGD(lr=0.1, momentum=0.9).get_config() == old
    rebuilt = optimizers.SGD.from_config(old)
    assert rebuilt.get_config() == old and rebuilt.initial_lr == 0.1


def test_config_round_trip_keeps_groups_and_initial_lr():
    opt = optimizers.RMSProp(lr=0.01, decay_biases=False, groups={0: {"lr": 0.02}})
    opt.set_options("fc", param="b", momentum=0.5)
    opt.lr = 0.0  # a schedule that ended at 0 (Cosine): the groups still rebuild
    config = json.loads(json.dumps(opt.get_config()))
    assert config["groups"] == [
        {"layer": 0, "lr": 0.02},
        {"layer": "fc", "param": "b", "momentum": 0.5},
    ]
    assert config["initial_lr"] == 0.01 and config["decay_biases"] is False
    twin = optimizers.RMSProp.from_config(config)
    assert twin.get_config() == config and twin.lr == 0.0 and twin.initial_lr == 0.01
    assert twin.slot_names() == ("square_avg", "momentum_buffer")


def test_save_and_load_model_keep_the_options_bit_for_bit(tmp_path):
    make = lambda: optimizers.SGD(  # noqa: E731
        lr=0.05,
        momentum=0.9,
        weight_decay=1e-3,
        decay_biases=False,
        groups={"conv1": {"lr": 0.1, "momentum": 0.5}, ("fc", "W"): {"lr": 0.02}},
    )
    straight, saved = small_cnn(make()), small_cnn(make())
    data = batches(5)
    for model in (straight, saved):
        for x, y in data[:3]:
            model.train_on_batch(x, y)
        model.optimizer.lr = 0.025  # as a schedule would: groups halve too
    saved.save(tmp_path / "m.safetensors")
    loaded = cnnumpy.load_model(tmp_path / "m.safetensors")
    assert loaded.optimizer.get_config() == saved.optimizer.get_config()
    assert loaded.optimizer.initial_lr == 0.05 and loaded.optimizer.lr == 0.025
    loaded.compile(optimizer=loaded.optimizer, loss="cross_entropy")
    for x, y in data[3:]:
        straight.train_on_batch(x, y)
        loaded.train_on_batch(x, y)
    for a, b in zip(weights(straight), weights(loaded), strict=True):
        np.testing.assert_array_equal(a, b)
    saved.save(tmp_path / "w.safetensors", include_optimizer=False)
    assert cnnumpy.load_model(tmp_path / "w.safetensors").optimizer is None


def _fit(folder, epochs, groups=None):
    if groups is None:
        groups = {"conv1": {"lr": 0.1}, ("fc", "b"): {"momentum": 0.0}}
    opt = optimizers.SGD(
        lr=0.05, momentum=0.9, weight_decay=1e-3, decay_biases=False, groups=groups
    )
    model = small_cnn(opt, np.float32)
    x, y = batches(1, n=24)[0]
    hooks = [callbacks.LearningRateScheduler(schedules.StepDecay(0.05, 1, 0.5))]
    model.fit(
        x.astype(np.float32),
        y,
        epochs=epochs,
        batch_size=8,
        seed=1,
        verbose=0,
        resume_from=folder,
        callbacks=hooks,
    )
    return model


def test_resume_from_a_checkpoint_is_bit_identical(tmp_path):
    straight = _fit(tmp_path / "straight", 4)
    _fit(tmp_path / "resumed", 2)
    resumed = _fit(tmp_path / "resumed", 4)
    assert len(resumed.history.epoch) == 4
    for a, b in zip(weights(straight), weights(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="compile the same optimiser to continue it"):
        _fit(tmp_path / "resumed", 5, groups={"conv1": {"lr": 0.2}})


@pytest.mark.usefixtures("engine_on")
def test_process_replicas_match_one_process():
    def make():
        return optimizers.SGD(
            lr=0.05,
            momentum=0.9,
            weight_decay=0.01,
            decay_biases=False,
            groups={"conv1": {"lr": 0.2, "momentum": 0.5}, "fc": {"weight_decay": 0.1}},
        )

    one, split = small_cnn(make()), small_cnn(make())
    with split.use_processes(2) as group:
        for x, y in batches(3, n=32):
            assert group.splits(len(x))
            assert split.train_on_batch(x, y) == pytest.approx(
                one.train_on_batch(x, y), rel=1e-12
            )
    for a, b in zip(weights(one), weights(split), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
