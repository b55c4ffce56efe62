"""A recipe of ``recipes.py`` trained in PyTorch, on the same batches as cnnumpy's fit.

``accuracy.py --framework torch`` calls :func:`train`, so that the README's accuracy
table can show, row by row, cnnumpy's accuracy and time beside PyTorch's on the same
machine. Everything but the arithmetic is shared with the cnnumpy run:

- the network: the cnnumpy model is built with the same seed and copied by
  ``torch_twin`` (float32), so both start from the same weights;
- the batches: NumPy arrays, shuffled with ``rng.permutation(n)`` once per epoch and
  augmented with ``augment(x_batch, rng)`` per batch, ``rng = as_rng(seed)``: the draws
  of ``cnnumpy.training.train_epoch``, in the same order;
- the rate: set before every step from the same schedule object, at the same step
  count (``optimizer.iterations`` in cnnumpy);
- SGD: ``torch.optim.SGD`` with two parameter groups when the recipe exempts biases
  and BatchNorm's gamma and beta from weight decay (``decay_biases=False``);
- the loss: ``F.cross_entropy(label_smoothing=eps)``, which cnnumpy's ``CrossEntropy``
  equals;
- the average: :class:`WeightAverage` is ``cnnumpy.callbacks.EMA`` written out (the
  parameters and BatchNorm's running statistics, the same warm-up); the test after
  each epoch uses it, as fit's validation does;
- TTA: the mean of the softmax of ``x`` and of ``x.flip(-1)``, as ``cnnumpy.tta``.

The optimisers are the same update. cnnumpy's SGD (``cnnumpy/optimizers.py``) keeps
PyTorch's form, not the notes' (``v <- mu v - lr (g + eps w); w <- w + v``): with
g the gradient, mu the momentum and eps the weight decay, both compute

    v <- mu v + g + eps w;    w <- w - lr v
    (Nesterov: w <- w - lr (g + eps w + mu v))

so that a change of lr applies to the whole velocity in both. ``tests/training/
test_accuracy_recipes.py`` checks that the first batches' losses agree to float32
rounding. What differs is the order of float32 operations inside the kernels, so the
runs drift apart over thousands of steps like two runs with different thread counts.

PyTorch keeps its default thread count (``torch.get_num_threads()``, printed).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from recipes import (
    FIRST_LOSSES,
    Data,
    Recipe,
    augmenter,
    build_model,
    epoch_record,
    lr_schedule,
)
from torch import nn
from torch_twin import modules_of, torch_twin

from cnnumpy.rng import as_rng
from cnnumpy.training import epoch_line

TINY = 1e-300  # as cnnumpy.tta: log(0) guard


def param_groups(net: nn.Module, recipe: Recipe) -> list[dict]:
    """One group, or two when biases and BatchNorm's parameters get no decay."""
    if not recipe.no_decay_on_norms:
        return [{"params": list(net.parameters())}]
    decayed, exempt = [], []
    for module in modules_of(net):
        is_norm = isinstance(module, nn.modules.batchnorm._BatchNorm)
        for name, p in module.named_parameters(recurse=False):
            (exempt if is_norm or name == "bias" else decayed).append(p)
    return [{"params": decayed}, {"params": exempt, "weight_decay": 0.0}]


def make_optimizer(net: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """``torch.optim.SGD`` (or Adam) with the recipe's settings."""
    groups = param_groups(net, recipe)
    if recipe.optimizer not in ("sgd", "adam"):
        raise NotImplementedError(
            f"torch_training: optimizer {recipe.optimizer!r}; expected sgd or adam"
        )
    if recipe.optimizer == "adam":
        return torch.optim.Adam(groups, lr=recipe.lr, weight_decay=recipe.weight_decay)
    nesterov = recipe.nesterov and recipe.momentum > 0
    return torch.optim.SGD(
        groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=nesterov,
        weight_decay=recipe.weight_decay,
    )  # fmt: skip


class WeightAverage:
    """``cnnumpy.callbacks.EMA(decay, warmup=True)`` for a torch module.

    After every step, for every parameter and floating buffer (BatchNorm's running
    mean and variance) ``w``, with ``t`` the updates made before this one::

        shadow <- d shadow + (1 - d) w,     d = min(decay, (1 + t) / (10 + t))
    """

    def __init__(self, net: nn.Module, decay: float) -> None:
        state = net.state_dict(keep_vars=True).values()
        self.arrays = [w for w in state if w.is_floating_point()]
        self.shadow = [w.detach().clone() for w in self.arrays]
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self) -> None:
        t = self.updates
        d = min(self.decay, (1 + t) / (10 + t))
        for shadow, w in zip(self.shadow, self.arrays, strict=True):
            shadow.mul_(d)
            shadow.add_((1 - d) * w)  # cnnumpy's two steps, for the same rounding
        self.updates += 1

    @torch.no_grad()
    def swap(self) -> None:
        for shadow, w in zip(self.shadow, self.arrays, strict=True):
            kept = w.detach().clone()
            w.copy_(shadow)
            shadow.copy_(kept)

    @contextlib.contextmanager
    def applied(self):
        """The average in the module inside the block, its own weights after."""
        self.swap()
        try:
            yield
        finally:
            self.swap()


@torch.no_grad()
def evaluate(net, x, y, label_smoothing: float, batch_size: int = 256) -> dict:
    """Mean loss (with the training loss's smoothing, as ``model.evaluate``) and
    accuracy, in eval mode."""
    net.eval()
    loss_sum, correct = 0.0, 0
    for lo in range(0, len(x), batch_size):
        target = torch.from_numpy(y[lo : lo + batch_size])
        logits = net(torch.from_numpy(x[lo : lo + batch_size]))
        loss = F.cross_entropy(
            logits, target, label_smoothing=label_smoothing, reduction="sum"
        )
        loss_sum += float(loss)
        correct += int((logits.argmax(1) == target).sum())
    return {"loss": loss_sum / len(x), "accuracy": correct / len(x)}


@torch.no_grad()
def evaluate_flipped(net, x, y, batch_size: int = 256) -> dict:
    """Loss ``-mean log p_tta[y]`` and accuracy, ``p_tta = (p(x) + p(flip x)) / 2``."""
    net.eval()
    log_p, correct = 0.0, 0
    for lo in range(0, len(x), batch_size):
        xb = torch.from_numpy(x[lo : lo + batch_size])
        target = torch.from_numpy(y[lo : lo + batch_size])
        p = (F.softmax(net(xb), 1) + F.softmax(net(xb.flip(-1)), 1)) / 2
        p_true = p[torch.arange(len(target)), target].double().clamp_min(TINY)
        log_p += float(p_true.log().sum())
        correct += int((p.argmax(1) == target).sum())
    return {"loss": -log_p / len(x), "accuracy": correct / len(x)}


@dataclass
class Run:
    """What every epoch needs: the twin, its optimiser and average, the data."""

    recipe: Recipe
    data: Data
    net: nn.Module
    optimizer: torch.optim.Optimizer
    ema: WeightAverage | None
    rng: np.random.Generator  # shuffles and augments, as fit's
    step: int = 0
    first_losses: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.augment = augmenter(self.recipe)
        self.schedule, self.unit = lr_schedule(self.recipe, len(self.data.x_train))

    def lr(self, epoch: int) -> float:
        if self.unit == "step":
            return float(self.schedule(self.step))
        if self.unit == "epoch":
            return float(self.schedule(epoch))
        return self.recipe.lr


def train_epoch(run: Run, epoch: int) -> dict:
    """One pass over the shuffled batches: mean loss, accuracy, seconds."""
    x, y, batch_size = run.data.x_train, run.data.y_train, run.recipe.batch_size
    order = run.rng.permutation(len(x))
    start = time.perf_counter()  # after the shuffle, as cnnumpy's train_epoch
    run.net.train()
    loss_sum, correct = 0.0, 0
    for lo in range(0, len(x), batch_size):
        idx = order[lo : lo + batch_size]
        xb = x[idx]
        if run.augment is not None:
            xb = run.augment(xb, run.rng)
        for group in run.optimizer.param_groups:
            group["lr"] = run.lr(epoch)
        logits = run.net(torch.from_numpy(np.ascontiguousarray(xb)))
        target = torch.from_numpy(y[idx])
        loss = F.cross_entropy(
            logits, target, label_smoothing=run.recipe.label_smoothing
        )
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        run.step += 1
        value = float(loss.detach())
        if not math.isfinite(value):
            raise RuntimeError(f"torch: the loss is {value} at epoch {epoch + 1}")
        if run.ema is not None:
            run.ema.update()
        if len(run.first_losses) < FIRST_LOSSES:
            run.first_losses.append(value)
        loss_sum += value * len(idx)
        correct += int((logits.detach().argmax(1) == target).sum())
    seconds = time.perf_counter() - start
    return {"loss": loss_sum / len(x), "accuracy": correct / len(x), "time": seconds}


def test_with_average(run: Run, flipped: bool = False) -> dict:
    """The test split, with the average swapped in when there is one."""
    x, y = run.data.x_test, run.data.y_test
    with run.ema.applied() if run.ema is not None else contextlib.nullcontext():
        if flipped:
            return evaluate_flipped(run.net, x, y)
        size = max(run.recipe.batch_size, 256)
        return evaluate(run.net, x, y, run.recipe.label_smoothing, size)


def final_tests(run: Run, last: dict) -> dict:
    """Flip averaging, and the raw weights when there is an average."""
    tests = {"test": last, "tta": None, "raw": None}
    if run.recipe.tta:
        tests["tta"] = test_with_average(run, flipped=True)
    if run.ema is not None:
        x, y = run.data.x_test, run.data.y_test
        plain = evaluate(run.net, x, y, run.recipe.label_smoothing)
        tta = evaluate_flipped(run.net, x, y) if run.recipe.tta else None
        tests["raw"] = {"test": plain, "tta": tta}
    return tests


def train(
    recipe: Recipe, data: Data, seed: int = 0, time_budget: float | None = None,
    verbose: bool = True,
) -> dict:  # fmt: skip
    """Train ``recipe`` on ``data``; test after every epoch (not timed).

    Returns:
        ``{"params", "history", "first_losses", "tests"}`` as the cnnumpy runner of
        ``accuracy.py``: one :func:`recipes.epoch_record` per epoch, the first batch
        losses, and the final tests (``final_tests``).
    """
    model = build_model(recipe, data.x_train.shape[1:], seed)
    net = torch_twin(model)
    if verbose:
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True
        )
    ema = WeightAverage(net, recipe.ema) if recipe.ema is not None else None
    run = Run(recipe, data, net, make_optimizer(net, recipe), ema, as_rng(seed))
    history, clock = [], 0.0
    for epoch in range(recipe.epochs):
        logs = train_epoch(run, epoch)
        clock += logs["time"]
        test = test_with_average(run)
        lr = run.optimizer.param_groups[0]["lr"]
        history.append(epoch_record(epoch, logs, test, lr, logs["time"], clock))
        if verbose:
            val = {f"val_{k}": v for k, v in test.items()}
            print(
                epoch_line(epoch, recipe.epochs, {**logs, **val, "lr": lr}), flush=True
            )
        if time_budget is not None and clock >= time_budget:
            break
    return {
        "params": model.count_params(),
        "history": history,
        "first_losses": run.first_losses,
        "tests": final_tests(run, test),
    }
