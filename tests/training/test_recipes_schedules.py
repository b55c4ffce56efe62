"""Per-step learning-rate schedules with a warm-up (docs/recipes.md): ``OneCycle``
against ``torch.optim.lr_scheduler.OneCycleLR``, ``WarmupCosine`` by its formula and
against ``CosineAnnealingLR``, and the ``StepScheduler`` callback, which counts the
optimiser's steps and so goes on where a resumed run stopped."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import cnnumpy
from cnnumpy import callbacks, optimizers, schedules
from cnnumpy.layers import Dense, ReLU

TOL = {"rtol": 1e-12, "atol": 1e-15}


def torch_rates(scheduler_class, total, lr=1.0, **options) -> list[float]:
    """The rate of each of ``total`` steps of a PyTorch scheduler."""
    param = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=lr)
    scheduler = scheduler_class(optimizer, **options)
    rates = [optimizer.param_groups[0]["lr"]]
    for _ in range(total - 1):  # (one more step can raise: OneCycleLR past T - 1)
        optimizer.step()
        scheduler.step()
        rates.append(optimizer.param_groups[0]["lr"])
    return rates


ONE_CYCLES = [
    dict(max_lr=0.1, total_steps=100),
    dict(max_lr=0.5, total_steps=37, pct_start=0.25, anneal_strategy="linear"),
    dict(max_lr=2.0, total_steps=50, pct_start=0.5, div_factor=10.0),
    dict(max_lr=0.3, total_steps=20, final_div_factor=100.0, anneal_strategy="linear"),
    dict(max_lr=1.0, total_steps=10, pct_start=0.05),  # peak before step 0
    dict(max_lr=0.2, total_steps=30, pct_start=1.0),  # rises all the way
]


@pytest.mark.parametrize("options", ONE_CYCLES)
def test_one_cycle_is_torchs_one_cycle_lr(options):
    schedule = schedules.OneCycle(**options)
    T = options["total_steps"]
    expected = torch_rates(
        torch.optim.lr_scheduler.OneCycleLR, T, cycle_momentum=False, **options
    )
    np.testing.assert_allclose([schedule(t) for t in range(T)], expected, **TOL)


def test_one_cycle_warmup_steps_is_pct_start_of_the_steps():
    schedule = schedules.OneCycle(0.4, 50, warmup_steps=7)
    expected = torch_rates(
        torch.optim.lr_scheduler.OneCycleLR,
        50,
        max_lr=0.4,
        total_steps=50,
        pct_start=7 / 50,
        cycle_momentum=False,
    )
    np.testing.assert_allclose([schedule(t) for t in range(50)], expected, **TOL)
    assert schedule(6) == 0.4  # the peak, at the last step of the warm-up


def test_one_cycle_differs_from_torch_only_where_torch_cannot_go():
    schedule = schedules.OneCycle(0.1, 10, div_factor=10.0, final_div_factor=5.0)
    assert schedule(9) == pytest.approx(0.1 / 10 / 5, rel=1e-12)
    assert schedule(10) == schedule(500) == schedule(9)  # torch raises past T
    peak_at_zero = schedules.OneCycle(0.1, 10, warmup_steps=1)  # torch: 0 / 0
    assert peak_at_zero(0) == 0.1


def test_warmup_cosine_rises_linearly_then_follows_the_cosine():
    lr, T, W, floor = 0.2, 110, 10, 0.01
    schedule = schedules.WarmupCosine(lr, T, warmup_steps=W, min_lr=floor)
    assert schedule(0) == 0.0
    np.testing.assert_allclose(
        [schedule(t) for t in range(W + 1)], lr * np.arange(W + 1) / W, **TOL
    )
    assert schedule(W + (T - W) // 2) == pytest.approx((lr + floor) / 2, rel=1e-12)
    assert schedule(T) == schedule(T + 100) == pytest.approx(floor, rel=1e-12)
    rates = [schedule(t) for t in range(W, T)]
    assert np.all(np.diff(rates) < 0)  # falls all the way
    expected = torch_rates(
        torch.optim.lr_scheduler.CosineAnnealingLR,
        T - W,
        lr=lr,
        T_max=T - W,
        eta_min=floor,
    )
    np.testing.assert_allclose(rates, expected, rtol=1e-10, atol=1e-15)


def test_step_schedules_have_configs_and_names():
    cycle = schedules.OneCycle(0.1, 40, warmup_steps=5, anneal_strategy="linear")
    again = schedules.OneCycle(**cycle.get_config())
    assert [again(t) for t in range(40)] == [cycle(t) for t in range(40)]
    got = schedules.get("onecycle", max_lr=0.1, total_steps=40)
    assert isinstance(got, schedules.OneCycle)
    warm = schedules.get("warmup_cosine", lr=1, total_steps=9, warmup_steps=2)
    assert repr(warm) == "WarmupCosine(lr=1, total_steps=9, warmup_steps=2, min_lr=0.0)"


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: schedules.OneCycle(0.1, 0), "OneCycle: total_steps must be an int"),
        (
            lambda: schedules.OneCycle(0.1, 10, warmup_steps=10),
            r"warmup_steps must be an int in \[0, total_steps=10\), got 10",
        ),
        (
            lambda: schedules.OneCycle(0.1, 10, anneal_strategy="cosine"),
            "anneal_strategy must be 'cos' or 'linear', got 'cosine'",
        ),
        (
            lambda: schedules.OneCycle(0.1, 10, pct_start=1.5),
            r"OneCycle: pct_start must be in \[0, 1\], got 1.5",
        ),
        (
            lambda: schedules.WarmupCosine(0.1, 10, warmup_steps=-1),
            "WarmupCosine: warmup_steps must be an int in",
        ),
        (lambda: schedules.WarmupCosine(-0.1, 10), "WarmupCosine: lr must be >= 0"),
    ],
)
def test_bad_step_schedules_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_step_schedule_refuses_a_negative_step():
    with pytest.raises(ValueError, match="step must be an int >= 0, got -1"):
        schedules.OneCycle(0.1, 10)(-1)


# -- StepScheduler ---------------------------------------------------------------------
N, BATCH = 10, 4  # three steps an epoch, the last of two examples
STEPS = math.ceil(N / BATCH)


def tiny_model():
    cnnumpy.seed(0)
    model = cnnumpy.Sequential([Dense(5), ReLU(), Dense(3)], input_shape=(4,))
    model.astype(np.float64)
    model.compile(optimizers.SGD(lr=0.1, momentum=0.9), loss="cross_entropy")
    return model


def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((N, 4)), rng.integers(0, 3, N)


def fit_recording(model, schedule, epochs, **fit_options) -> list[float]:
    """The rate of every step of ``fit``, read after the step."""
    rates = []
    record = callbacks.LambdaCallback(
        on_batch_end=lambda batch, logs: rates.append(model.optimizer.lr)
    )
    model.fit(
        *data(),
        epochs=epochs,
        batch_size=BATCH,
        callbacks=[callbacks.StepScheduler(schedule), record],
        verbose=0,
        seed=0,
        **fit_options,
    )
    return rates


def test_step_scheduler_sets_the_rate_of_every_step():
    schedule = schedules.OneCycle(0.5, 4 * STEPS, warmup_steps=3)
    model = tiny_model()
    rates = fit_recording(model, schedule, epochs=4)
    assert rates == [schedule(t) for t in range(4 * STEPS)]
    assert model.history.history["lr"][-1] == schedule(4 * STEPS - 1)


def test_step_scheduler_goes_on_at_the_step_a_resumed_run_reached(tmp_path):
    """Killed after epoch 1 of 3 and resumed: the steps go on from 3, and the
    weights are those of the uninterrupted run, bit for bit."""
    schedule = schedules.WarmupCosine(0.3, 3 * STEPS, warmup_steps=2)
    whole = tiny_model()
    fit_recording(whole, schedule, epochs=3)
    first = fit_recording(tiny_model(), schedule, epochs=1, resume_from=tmp_path)
    resumed = tiny_model()
    rest = fit_recording(resumed, schedule, epochs=3, resume_from=tmp_path)
    assert first + rest == [schedule(t) for t in range(3 * STEPS)]
    for a, b in zip(resumed.get_weights(), whole.get_weights(), strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_step_scheduler_refuses_a_schedule_that_is_not_callable():
    with pytest.raises(TypeError, match="StepScheduler: schedule must be callable"):
        callbacks.StepScheduler(0.1)
