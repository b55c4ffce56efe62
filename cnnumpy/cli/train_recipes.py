"""The recipes of ``cnnumpy train`` (docs/recipes.md) as library objects: the loss
with label smoothing, the optimiser's options, the learning-rate schedule (per epoch,
or per step with a warm-up), the augmentation with Cutout, the moving average of the
weights, and the flip-averaged test.

Each function reads the parsed options (``args``) and returns what ``fit`` or the
model takes; :func:`check_recipes` refuses the combinations that mean nothing, with
the exit code 2 of a user's mistake.
"""

from __future__ import annotations

import math

from cnnumpy import callbacks, losses, schedules, tta
from cnnumpy.cli.runs import UsageError
from cnnumpy.data import cifar_augment, compose, cutout, random_crop

# what --warmup may follow: the per-step schedules
WARMUP_SCHEDULES = ("cosine", "onecycle")


def check_recipes(args) -> None:
    """Refuse recipe options that do not fit together (a ``UsageError``)."""
    if args.warmup is not None and args.schedule not in WARMUP_SCHEDULES:
        raise UsageError(
            f"--warmup needs --schedule cosine or onecycle (a per-step schedule), "
            f"got --schedule {args.schedule}"
        )
    if args.warmup is not None and args.warmup >= args.epochs:
        raise UsageError(
            f"--warmup {args.warmup:g} must be fewer epochs than --epochs {args.epochs}"
        )
    softmax_only = {
        "--label-smoothing": args.label_smoothing > 0,
        "--tta-flip": args.tta_flip,
    }
    for option, given in softmax_only.items():
        if given and args.loss != "cross_entropy":
            raise UsageError(
                f"{option} needs --loss cross_entropy (softmax outputs), got "
                f"--loss {args.loss}"
            )


def loss(args) -> str | losses.Loss:
    """``--loss``, with ``--label-smoothing`` for cross-entropy."""
    if args.label_smoothing:
        return losses.CrossEntropy(label_smoothing=args.label_smoothing)
    return args.loss  # cnnumpy's own loss by name: --processes replicas rebuild it


def optimizer_options(args) -> dict:
    """The optimiser's keyword arguments besides its name."""
    options = {"lr": args.lr}
    if args.weight_decay is not None:
        options["weight_decay"] = args.weight_decay
    if args.optimizer == "sgd":
        options["momentum"] = args.momentum
    if args.nesterov:
        if args.optimizer != "sgd" or not args.momentum:
            raise ValueError("--nesterov needs --optimizer sgd with a --momentum > 0")
        options["nesterov"] = True
    if args.no_decay_biases:
        options["decay_biases"] = False  # biases, BatchNorm's gamma and beta
    return options


def schedule_hooks(args, n_train: int) -> list[callbacks.Callback]:
    """The callback that sets the learning rate: per epoch (``cosine``, ``step``),
    or per optimiser step (``onecycle``; ``cosine`` with ``--warmup``), with
    ``ceil(n_train / batch_size)`` steps an epoch."""
    steps_per_epoch = math.ceil(n_train / args.batch_size)
    total_steps = args.epochs * steps_per_epoch
    warmup_steps = None
    if args.warmup is not None:
        warmup_steps = min(round(args.warmup * steps_per_epoch), total_steps - 1)
    if args.schedule == "onecycle":
        schedule = schedules.OneCycle(args.lr, total_steps, warmup_steps=warmup_steps)
        return [callbacks.StepScheduler(schedule)]
    if args.schedule == "cosine" and warmup_steps is not None:
        schedule = schedules.WarmupCosine(args.lr, total_steps, warmup_steps)
        return [callbacks.StepScheduler(schedule)]
    if args.schedule == "cosine":
        schedule = schedules.Cosine(args.lr, args.epochs)
        return [callbacks.LearningRateScheduler(schedule)]
    if args.schedule == "step":
        step_size = max(1, args.epochs // 3)
        schedule = schedules.StepDecay(args.lr, step_size=step_size, gamma=0.1)
        return [callbacks.LearningRateScheduler(schedule)]
    return []


def ema_hooks(args) -> list[callbacks.Callback]:
    """``--ema DECAY``: the averaged weights end up in the model, so the test and the
    saved model.safetensors use them."""
    if args.ema is None:
        return []
    return [callbacks.EMA(args.ema, keep_average=True)]


def augmenter(args, channels: int):
    """``fit``'s ``augment``: ``--augment``'s random crops (padding 4 with flips for
    colour images, 2 for digits), then ``--cutout``'s square; None without either."""
    steps = []
    if args.augment and channels == 3:
        steps.append(cifar_augment)
    elif args.augment:
        steps.append(lambda x, rng: random_crop(x, padding=2, rng=rng))
    if args.cutout:
        steps.append(lambda x, rng: cutout(x, args.cutout, rng))
    return compose(*steps) if steps else None


def flipped_test(model, x_test, y_test) -> dict[str, float]:
    """``--tta-flip``: the test loss and metrics on the mean of the probabilities of
    each image and its mirror image, keyed ``tta_flip_test_*``."""
    result = tta.evaluate_flipped(model, x_test, y_test)
    return {f"tta_flip_test_{key}": value for key, value in result.items()}


def describe(args) -> str:
    """The recipes in use, for the run's header line (empty if none)."""
    parts = []
    if args.nesterov:
        parts.append("Nesterov momentum")
    if args.warmup is not None:
        parts.append(f"warm-up {args.warmup:g} epochs")
    if args.cutout:
        parts.append(f"cutout {args.cutout}")
    if args.label_smoothing:
        parts.append(f"label smoothing {args.label_smoothing:g}")
    if args.no_decay_biases:
        parts.append("no decay on biases and BatchNorm")
    if args.ema is not None:
        parts.append(f"EMA {args.ema:g} (validation uses the average)")
    if args.tta_flip:
        parts.append("flip TTA at test")
    return "; ".join(parts)
