"""Named training recipes for ``accuracy.py`` (issue 18, point 4), and the ingredients
that ``ablation.py`` removes one at a time.

A :class:`Recipe` is every choice a run makes beyond the data: the zoo network, the
epochs and batch size, SGD's settings, the learning-rate schedule, the loss's label
smoothing, the augmentation, the moving average of the weights and the test-time flip.
The helpers below turn it into framework-neutral pieces that both runners share, so
that cnnumpy (``accuracy.py``) and PyTorch (``torch_training.py``) train the same
network from the same weights on the same batches:

- :func:`build_model`: the cnnumpy network, seeded (PyTorch copies its weights);
- :func:`augmenter`: ``augment(x_batch, rng)``, crops, then flips, then Cutout, all
  drawing from the run's one generator (``fit``'s);
- :func:`lr_schedule`: the rate as a function of the optimiser step (or the epoch).

Removing an ingredient (:data:`INGREDIENTS`) changes exactly the fields listed in
:data:`INGREDIENT_FIELDS`; a recipe without that ingredient is returned unchanged.
"One cycle" removed leaves a cosine decay per step from the same peak rate with no
warm-up (``schedule="cosine", warmup=0``): the schedule most recipes used before one
cycle, so the row measures the warm-up and the one-cycle shape, not having a schedule.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

import cnnumpy
from cnnumpy import optimizers, schedules, zoo
from cnnumpy.data import compose, cutout, random_crop, random_flip

SCHEDULES = ("onecycle", "cosine", "epoch_cosine", "none")
FIRST_LOSSES = 3  # the batch losses each runner keeps, to compare the two pipelines
OPTIMIZERS = tuple(optimizers.OPTIMIZERS)  # PyTorch's runner: "sgd" and "adam"


@dataclass(frozen=True)
class Recipe:
    """One training recipe.

    Attributes:
        dataset: ``"mnist"``, ``"fashion-mnist"`` or ``"cifar10"``.
        model: a name of ``cnnumpy.zoo.MODELS``; ``model_kwargs`` go to its builder.
        epochs, batch_size: the length of the run and of a mini-batch.
        optimizer: ``"sgd"`` (``lr`` its peak rate, ``momentum``, ``nesterov``), or
            another of ``cnnumpy.optimizers`` with its defaults (the first
            benchmarks used ``"adam"``); ``weight_decay`` is L2 added to the
            gradient.
        no_decay_on_norms: biases and BatchNorm's gamma and beta get no decay.
        schedule: ``"onecycle"`` (``OneCycle`` per step, rising over the first
            ``warmup`` fraction of the steps), ``"cosine"`` (``WarmupCosine`` per
            step, a linear warm-up over that fraction), ``"epoch_cosine"`` (the
            per-epoch ``Cosine``, no warm-up) or ``"none"`` (constant ``lr``).
        label_smoothing: eps of ``CrossEntropy(label_smoothing=eps)``.
        crop: ``random_crop`` padding in pixels (0: no crop); flip: ``random_flip``.
        cutout: the side of Cutout's square (0: none).
        ema: the decay of ``callbacks.EMA`` (with its warm-up), None for no average.
        tta: report the flip-averaged test accuracy as the headline.
        zero_gamma: the ResNets' last BatchNorm gamma of each branch starts at 0.
    """

    dataset: str
    model: str
    epochs: int
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    no_decay_on_norms: bool = True
    schedule: str = "onecycle"
    warmup: float = 0.25
    label_smoothing: float = 0.0
    crop: int = 0
    flip: bool = False
    cutout: int = 0
    ema: float | None = None
    tta: bool = False
    zero_gamma: bool = False

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"Recipe: schedule must be one of {SCHEDULES}, got {self.schedule!r}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"Recipe: optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}"
            )
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(
                f"Recipe: epochs and batch_size must be >= 1, got {self.epochs} and "
                f"{self.batch_size}"
            )
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"Recipe: warmup must be in [0, 1), got {self.warmup!r}")

    def settings(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return dataclasses.asdict(self)


RECIPES: dict[str, Recipe] = {
    "mnist": Recipe(
        dataset="mnist", model="mnist_cnn", epochs=12, lr=0.2, warmup=0.25,
        label_smoothing=0.1, crop=2,
    ),
    "fashion-mnist": Recipe(
        dataset="fashion-mnist", model="mnist_cnn", model_kwargs={"width": 48},
        epochs=32, lr=0.2, warmup=0.25, label_smoothing=0.1, crop=2, flip=True,
        ema=0.999, tta=True,
    ),
    "cifar10": Recipe(
        dataset="cifar10", model="resnet20", epochs=21, lr=0.2, warmup=0.25,
        label_smoothing=0.1, crop=4, flip=True, cutout=8, ema=0.999, tta=True,
        zero_gamma=True,
    ),
}  # fmt: skip

INGREDIENT_FIELDS: dict[str, tuple[str, ...]] = {
    "augment": ("crop", "flip"),
    "cutout": ("cutout",),
    "label_smoothing": ("label_smoothing",),
    "onecycle": ("schedule", "warmup"),
    "no_decay_on_norms": ("no_decay_on_norms",),
    "ema": ("ema",),
    "tta": ("tta",),
    "zero_gamma": ("zero_gamma",),
}

# Evaluation only: training is the same with or without them (the EMA only reads the
# weights), so an ablation reads their rows off the full run (ablation.py).
EVAL_ONLY = ("ema", "tta")


def _without_onecycle(r: Recipe) -> Recipe:
    if r.schedule != "onecycle":
        return r
    return dataclasses.replace(r, schedule="cosine", warmup=0.0)


INGREDIENTS: dict[str, Callable[[Recipe], Recipe]] = {
    "augment": lambda r: dataclasses.replace(r, crop=0, flip=False),
    "cutout": lambda r: dataclasses.replace(r, cutout=0),
    "label_smoothing": lambda r: dataclasses.replace(r, label_smoothing=0.0),
    "onecycle": _without_onecycle,
    "no_decay_on_norms": lambda r: dataclasses.replace(r, no_decay_on_norms=False),
    "ema": lambda r: dataclasses.replace(r, ema=None),
    "tta": lambda r: dataclasses.replace(r, tta=False),
    "zero_gamma": lambda r: dataclasses.replace(r, zero_gamma=False),
}


def without(recipe: Recipe, names: list[str] | tuple[str, ...]) -> Recipe:
    """``recipe`` with each ingredient of ``names`` removed."""
    for name in names:
        if name not in INGREDIENTS:
            raise ValueError(
                f"unknown ingredient {name!r}; expected one of {', '.join(INGREDIENTS)}"
            )
        recipe = INGREDIENTS[name](recipe)
    return recipe


def changed_fields(a: Recipe, b: Recipe) -> set[str]:
    """The names of the fields where ``a`` and ``b`` differ."""
    names = [f.name for f in dataclasses.fields(a)]
    return {name for name in names if getattr(a, name) != getattr(b, name)}


def uses(recipe: Recipe, name: str) -> bool:
    """Whether removing ingredient ``name`` changes ``recipe``."""
    return INGREDIENTS[name](recipe) != recipe


class Data(NamedTuple):
    """Standardised training and test arrays, and where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


def build_model(recipe: Recipe, input_shape: tuple[int, ...], seed: int):
    """The recipe's zoo network, its weights drawn after ``cnnumpy.seed(seed)``."""
    cnnumpy.seed(seed)
    kwargs = dict(recipe.model_kwargs)
    if recipe.zero_gamma:
        kwargs["zero_gamma"] = True  # only the ResNet builders take it
    return zoo.get(recipe.model, input_shape=input_shape, num_classes=10, **kwargs)


def augmenter(recipe: Recipe) -> Callable | None:
    """``augment(x_batch, rng)``: crop, flip, Cutout, in that order, or None.

    Crop then flip draw from the generator in the order of ``cifar_augment``.
    """
    steps = []
    if recipe.crop:
        steps.append(lambda x, rng: random_crop(x, padding=recipe.crop, rng=rng))
    if recipe.flip:
        steps.append(lambda x, rng: random_flip(x, rng=rng))
    if recipe.cutout:
        steps.append(lambda x, rng: cutout(x, recipe.cutout, rng))
    return compose(*steps) if steps else None


def steps_per_epoch(recipe: Recipe, n_train: int) -> int:
    return math.ceil(n_train / recipe.batch_size)


def lr_schedule(recipe: Recipe, n_train: int) -> tuple[Callable | None, str]:
    """``(schedule, unit)``: the rate is ``schedule(t)`` with ``t`` the optimiser
    step (unit ``"step"``, set before every batch) or the epoch (``"epoch"``, set
    before every epoch); ``(None, "none")`` keeps ``recipe.lr``.

    Per-step schedules are planned over ``recipe.epochs`` whole epochs, even when a
    time budget stops the run earlier.
    """
    total = recipe.epochs * steps_per_epoch(recipe, n_train)
    if recipe.schedule == "onecycle":
        return schedules.OneCycle(recipe.lr, total, pct_start=recipe.warmup), "step"
    if recipe.schedule == "cosine":
        warmup_steps = round(recipe.warmup * total)
        return schedules.WarmupCosine(recipe.lr, total, warmup_steps), "step"
    if recipe.schedule == "epoch_cosine":
        return schedules.Cosine(recipe.lr, recipe.epochs), "epoch"
    return None, "none"


def epoch_record(
    epoch: int, train: dict, test: dict, lr: float, seconds: float, clock: float
) -> dict[str, float]:
    """One row of the per-epoch history, the same for both frameworks.

    ``epoch_s`` is the epoch's training time; ``train_s`` the training clock when it
    ended (the sum of the ``epoch_s`` so far: test evaluations do not count).
    """
    return {
        "epoch": epoch + 1,
        "train_loss": round(float(train["loss"]), 5),
        "train_accuracy": round(float(train["accuracy"]), 5),
        "test_loss": round(float(test["loss"]), 5),
        "test_accuracy": round(float(test["accuracy"]), 5),
        "lr": float(lr),
        "epoch_s": round(seconds, 2),
        "train_s": round(clock, 2),
    }


def accuracies(recipe: Recipe, tests: dict) -> dict:
    """The headline (flip-averaged when the recipe says so), the plain and TTA
    figures, and the headline without the average of the weights."""
    plain = tests["test"]["accuracy"]
    flipped = tests["tta"]["accuracy"] if tests["tta"] else None
    out = {"test_accuracy": flipped if recipe.tta else plain,
           "test_accuracy_plain": plain, "test_accuracy_tta": flipped,
           "test_loss": tests["test"]["loss"]}  # fmt: skip
    raw = tests["raw"]
    if raw is not None:
        raw_tta = raw["tta"]["accuracy"] if raw["tta"] else None
        out["test_accuracy_without_ema"] = (
            raw_tta if recipe.tta else raw["test"]["accuracy"]
        )
    return {k: None if v is None else round(float(v), 5) for k, v in out.items()}
