"""Learning-rate schedules: values by hand, and against torch.optim.lr_scheduler.

Tolerance against torch: rtol 1e-12 (torch's schedulers update the rate recursively,
ours use the closed form; they differ by a few ulps).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cnnumpy import schedules
from cnnumpy.schedules import (
    Constant,
    Cosine,
    Exponential,
    InverseTime,
    InverseTimeDecay,
    ReduceOnPlateau,
    StepDecay,
)


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (Constant(0.01), {0: 0.01, 7: 0.01, 100: 0.01}),
        (StepDecay(0.1, step_size=3, gamma=0.5), {0: 0.1, 2: 0.1, 3: 0.05, 6: 0.025}),
        (StepDecay(0.01, step_size=2), {0: 0.01, 1: 0.01, 2: 0.001, 5: 1e-4}),
        (
            InverseTime(0.5),
            {0: 0.5, 1: 0.25, 3: 0.125, 9: 0.05},
        ),  # c / k, k = epoch + 1
        (InverseTimeDecay(0.1, decay=0.5), {0: 0.1, 2: 0.05, 6: 0.025}),
        (Exponential(0.1, gamma=0.9), {0: 0.1, 1: 0.09, 2: 0.081}),
        (Cosine(0.1, total_epochs=10), {0: 0.1, 5: 0.05, 10: 0.0, 15: 0.0}),
        (
            Cosine(0.1, total_epochs=4, min_lr=0.01),
            {0: 0.1, 2: 0.055, 4: 0.01, 9: 0.01},
        ),
    ],
    ids=repr,
)
def test_values_at_chosen_epochs(schedule, expected):
    for epoch, lr in expected.items():
        assert isinstance(schedule(epoch), float)
        np.testing.assert_allclose(schedule(epoch), lr, rtol=1e-12, atol=1e-15)


def test_cosine_quarter_period():
    schedule = Cosine(1.0, total_epochs=8)
    np.testing.assert_allclose(schedule(2), (1 + np.cos(np.pi / 4)) / 2, rtol=1e-15)


def _torch_lrs(make_scheduler, lr: float, epochs: int) -> list[float]:
    """The rate torch uses at epochs 0..epochs-1 (read before each scheduler step)."""
    param = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=lr)
    scheduler = make_scheduler(optimizer)
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.torch
@pytest.mark.parametrize(("total", "min_lr"), [(10, 0.0), (7, 0.001), (1, 0.0)])
def test_cosine_matches_torch_cosine_annealing(total, min_lr):
    lrs = _torch_lrs(
        lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, total, min_lr),
        lr=0.1,
        epochs=total + 1,
    )
    ours = Cosine(0.1, total_epochs=total, min_lr=min_lr)
    np.testing.assert_allclose([ours(e) for e in range(total + 1)], lrs, rtol=1e-12)


@pytest.mark.torch
@pytest.mark.parametrize(("step_size", "gamma"), [(1, 0.5), (3, 0.1), (4, 0.7)])
def test_step_decay_matches_torch_step_lr(step_size, gamma):
    lrs = _torch_lrs(
        lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size, gamma),
        lr=0.05,
        epochs=15,
    )
    ours = StepDecay(0.05, step_size=step_size, gamma=gamma)
    np.testing.assert_allclose([ours(e) for e in range(15)], lrs, rtol=1e-12)


@pytest.mark.torch
def test_exponential_matches_torch_exponential_lr():
    lrs = _torch_lrs(
        lambda opt: torch.optim.lr_scheduler.ExponentialLR(opt, 0.8), lr=0.1, epochs=12
    )
    np.testing.assert_allclose([Exponential(0.1, 0.8)(e) for e in range(12)], lrs)


# -- ReduceOnPlateau -----------------------------------------------------------------

LOSSES = [1.0, 0.9, 0.8, 0.8, 0.80001, 0.79995, 0.7, 0.7, 0.71, 0.72, 0.69, 0.69, 0.69]
LOSSES += [0.69, 0.5, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]


@pytest.mark.torch
@pytest.mark.parametrize("threshold_mode", ["rel", "abs"])
@pytest.mark.parametrize(
    ("mode", "patience", "cooldown", "min_lr", "min_delta"),
    [
        ("min", 2, 0, 0.0, 1e-4),
        ("min", 1, 2, 0.0, 1e-3),
        ("min", 0, 0, 1e-4, 0.0),
        ("max", 2, 1, 0.0, 1e-4),
        ("max", 3, 0, 0.0, 0.05),
    ],
)
def test_reduce_on_plateau_matches_torch(
    mode, patience, cooldown, min_lr, min_delta, threshold_mode
):
    metrics = LOSSES if mode == "min" else [1 - m for m in LOSSES]
    kwargs = {"factor": 0.1, "patience": patience, "mode": mode, "cooldown": cooldown}
    ours = ReduceOnPlateau(
        **kwargs, min_lr=min_lr, min_delta=min_delta, threshold_mode=threshold_mode
    )
    param = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=0.1)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        **kwargs,
        min_lr=min_lr,
        threshold=min_delta,
        threshold_mode=threshold_mode,
    )
    lr = 0.1
    reductions = 0
    for metric in metrics:
        new_lr = ours.step(metric, lr)
        reductions += new_lr < lr
        lr = new_lr
        optimizer.step()
        theirs.step(metric)
        assert lr == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-12)
        assert ours.best == theirs.best
        assert ours.num_bad_epochs == theirs.num_bad_epochs
        assert ours.cooldown_counter == theirs.cooldown_counter
    assert reductions >= 1  # the sequence does contain plateaus


def test_reduce_on_plateau_acts_when_it_should():
    """patience=2: the third epoch without improvement divides the rate by 10."""
    plateau = ReduceOnPlateau(patience=2, cooldown=1)
    lr, lrs = 0.1, []
    for loss in [1.0, 0.5, 0.6, 0.5, 0.7, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.4]:
        lr = plateau.step(loss, lr)
        lrs.append(lr)
    # epochs 2, 3, 4 are bad -> reduce after epoch 4; epoch 5 is the cooldown (not
    # counted); epochs 6, 7, 8 are bad -> reduce after epoch 8; cooldown at 9.
    expected = [0.1] * 4 + [0.01] * 4 + [0.001] * 4
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)
    assert plateau.best == 0.4 and plateau.num_bad_epochs == 0


def test_reduce_on_plateau_respects_min_lr():
    plateau = ReduceOnPlateau(factor=0.5, patience=0, min_lr=0.03)
    lrs = [plateau.step(1.0, lr) for lr in (0.1, 0.1, 0.05, 0.03)]
    assert lrs == [0.1, 0.05, 0.03, 0.03]  # epoch 0 improves on inf; then floor


def test_reduce_on_plateau_state_dict_round_trip():
    metrics = LOSSES
    first = ReduceOnPlateau(patience=1, cooldown=1)
    lr = 0.1
    for metric in metrics[:9]:
        lr = first.step(metric, lr)
    state = json.loads(json.dumps(first.state_dict()))
    assert set(state) == {"best", "num_bad_epochs", "cooldown_counter", "last_epoch"}
    second = ReduceOnPlateau(**first.get_config())
    second.load_state_dict(state)
    lr_first = lr_second = lr
    for metric in metrics[9:]:
        lr_first = first.step(metric, lr_first)
        lr_second = second.step(metric, lr_second)
        assert lr_first == lr_second
        assert first.state_dict() == second.state_dict()


def test_reduce_on_plateau_load_state_dict_missing_key():
    with pytest.raises(
        ValueError, match=r"state_dict is missing \['cooldown_counter'\]"
    ):
        ReduceOnPlateau().load_state_dict(
            {"best": 1.0, "num_bad_epochs": 0, "last_epoch": 3}
        )


# -- configs, errors, get ------------------------------------------------------------


@pytest.mark.parametrize(
    "schedule",
    [
        Constant(0.01),
        StepDecay(0.1, 3, 0.5),
        InverseTime(0.5),
        InverseTimeDecay(0.1, 0.5),
        Exponential(0.1, 0.9),
        Cosine(0.1, np.int64(10), min_lr=0.001),
    ],
    ids=repr,
)
def test_get_config_rebuilds_the_schedule(schedule):
    config = json.loads(json.dumps(schedule.get_config()))
    twin = type(schedule)(**config)
    assert [twin(e) for e in range(12)] == [schedule(e) for e in range(12)]


def test_repr_and_config():
    assert repr(StepDecay(0.1, 3)) == "StepDecay(lr=0.1, step_size=3, gamma=0.1)"
    assert ReduceOnPlateau().get_config()["factor"] == 0.1  # AlexNet: divide by 10


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Constant(-0.1), r"Constant: lr must be >= 0, got -0.1"),
        (lambda: Constant("0.1"), r"Constant: lr must be a number, got '0.1'"),
        (lambda: StepDecay(0.1, 0), r"StepDecay: step_size must be an int >= 1, got 0"),
        (lambda: StepDecay(0.1, 2, 0.0), r"StepDecay: gamma must be > 0, got 0.0"),
        (lambda: Cosine(0.1, 0), r"Cosine: total_epochs must be an int >= 1, got 0"),
        (lambda: ReduceOnPlateau(factor=1.0), r"factor must be in \(0, 1\), got 1.0"),
        (lambda: ReduceOnPlateau(patience=-1), r"patience must be an int >= 0, got -1"),
        (lambda: ReduceOnPlateau(mode="up"), r"mode must be 'min' or 'max', got 'up'"),
        (
            lambda: ReduceOnPlateau(threshold_mode="x"),
            r"threshold_mode must be 'rel' or 'abs', got 'x'",
        ),
    ],
)
def test_bad_arguments_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("epoch", [-1, 1.5, True])
def test_bad_epoch_raises(epoch):
    match = r"Constant\(lr=0.1\): epoch must be an int >= 0, got"
    with pytest.raises(ValueError, match=match):
        Constant(0.1)(epoch)


def test_get():
    assert isinstance(schedules.get("cosine", lr=0.1, total_epochs=5), Cosine)
    assert isinstance(schedules.get("STEP", lr=0.1, step_size=5), StepDecay)
    assert isinstance(schedules.get("reduce_on_plateau"), ReduceOnPlateau)
    schedule = InverseTime(1.0)
    assert schedules.get(schedule) is schedule

    def halve(epoch):
        return 0.1 * 0.5**epoch

    assert schedules.get(halve) is halve
    with pytest.raises(ValueError, match=r"unknown schedule 'linear', expected one"):
        schedules.get("linear")
    with pytest.raises(TypeError, match=r"keyword arguments \['lr'\] given with"):
        schedules.get(schedule, lr=0.1)
    with pytest.raises(
        TypeError, match=r"expected a schedule name, object or callable"
    ):
        schedules.get(3)
