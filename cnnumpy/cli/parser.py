"""The arguments of the ``cnnumpy`` command: one parser per subcommand.

Every value is checked as it is parsed (``cnnumpy.cli.option_types``), so that a
mistake gives one line naming the option, never a traceback halfway through a run.
A subcommand's module is imported only when it runs (``_lazy``), which keeps
``cnnumpy --help`` fast. How a training run is fitted, fed, computed and written
(the options ``train`` shares with no other command) is in ``train_options``.
"""

from __future__ import annotations

import argparse
import importlib

from cnnumpy import zoo
from cnnumpy.cli import runs
from cnnumpy.cli.option_types import natural_float, natural_int, positive_int
from cnnumpy.cli.runs import UsageError
from cnnumpy.cli.train_options import add_train_options
from cnnumpy.cli.visualize import METHODS
from cnnumpy.summary import TRAINING_BATCH
from cnnumpy.version import __version__

LAB_LAYERS = ("dense", "conv", "pool")


class CommandLineError(UsageError):
    """A command line argparse refused; the message already names the command."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become one-line ``UsageError``s (exit code 2)."""

    def error(self, message: str):
        raise CommandLineError(f"{self.prog}: {message} (see {self.prog} --help)")


# -- the parser ------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cnnumpy",
        description="Convolutional networks from scratch "
        "in NumPy: train, evaluate, explain.",
    )
    parser.add_argument("--version", action="version", version=f"cnnumpy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _train_parser(sub)
    _evaluate_parser(sub)
    _predict_parser(sub)
    _generate_parser(sub)
    _visualize_parser(sub)
    _summary_parser(sub)
    _datasets_parser(sub)
    _bench_parser(sub)
    _serve_parser(sub)
    return parser


def _lazy(module: str, name: str):
    """Import a subcommand's module only when it runs (keeps --help fast).

    The function is looked up when the command runs (a test may replace it).
    """

    def run(args):
        return getattr(importlib.import_module(module), name)(args)

    return run


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


# -- train -----------------------------------------------------------------------------
def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a zoo model and write a run folder")
    _add_model_option(p)
    _add_data_options(p)
    p.add_argument(
        "--text",
        metavar="FILE",
        help=f"char models ({', '.join(zoo.TEXT_MODELS)}): a UTF-8 text file, "
        "'stdlib' for the Python standard library's sources (offline), or "
        "'tiny-shakespeare' for char-rnn's corpus (downloaded and verified when "
        "the network is there); instead of --dataset",
    )
    p.add_argument(
        "--hidden",
        type=positive_int,
        default=100,
        help="char models: units of the recurrent layer (default: %(default)s)",
    )
    add_train_options(p)
    p.set_defaults(func=_lazy("cnnumpy.cli.train", "run"))


# -- the tools -------------------------------------------------------------------------
def _evaluate_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="loss, accuracy, per-class accuracy, confusion")
    p.add_argument("target", metavar="RUN_OR_MODEL")
    _add_data_options(p)
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--limit", type=positive_int, metavar="N")
    p.add_argument("--out", metavar="DIR", help="where the PNG goes (default: the run)")
    p.set_defaults(func=_lazy("cnnumpy.cli.evaluate", "evaluate"))


def _predict_parser(sub) -> None:
    p = sub.add_parser("predict", help="top classes of image files")
    p.add_argument("target", metavar="RUN_OR_MODEL")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument(
        "--invert",
        action="store_true",
        help="use 255 - pixel (dark digits on white paper -> MNIST style)",
    )
    p.add_argument("--top", type=positive_int, default=3)
    p.set_defaults(func=_lazy("cnnumpy.cli.predict", "predict"))


def _generate_parser(sub) -> None:
    p = sub.add_parser("generate", help="text written by a char model's run")
    p.add_argument("target", metavar="RUN_OR_MODEL")
    p.add_argument(
        "--prime", required=True, help="the text to start from (not repeated)"
    )
    p.add_argument(
        "--length",
        type=natural_int,
        default=200,
        help="characters to write (default: %(default)s)",
    )
    p.add_argument(
        "--temperature",
        type=natural_float,
        default=1.0,
        help="below 1 safer, above 1 wilder; 0 always the likeliest character "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--seed", type=natural_int, help="the same seed writes the same text"
    )
    p.set_defaults(func=_lazy("cnnumpy.cli.generate", "generate"))


def _visualize_parser(sub) -> None:
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
    p.set_defaults(func=_lazy("cnnumpy.cli.visualize", "visualize"))


# -- what is available, and the technique lab ------------------------------------------
def _summary_parser(sub) -> None:
    p = sub.add_parser("summary", help="layers, output shapes, parameters of a model")
    _add_model_option(p)
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=TRAINING_BATCH,
        help="examples of the training step whose backward memory is estimated "
        f"(default {TRAINING_BATCH})",
    )
    p.set_defaults(func=_lazy("cnnumpy.cli.info", "summary"))


def _datasets_parser(sub) -> None:
    p = sub.add_parser("datasets", help="which data sets are available locally, where")
    p.set_defaults(func=_lazy("cnnumpy.cli.info", "datasets"))


def port_number(text: str) -> int:
    """``--port``: a TCP port, 1 to 65535."""
    port = int(text) if text.isdigit() else 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"expected a port from 1 to 65535, got {text!r}"
        )
    return port


def _serve_parser(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="the playground: draw a digit, see the maps, train live, in the browser",
    )
    p.add_argument(
        "runs_dir",
        nargs="?",
        default="runs",
        metavar="RUNS_DIR",
        help="the folder of run folders (default: %(default)s; made if missing)",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s, this machine only; "
        "0.0.0.0 opens it to the network, with a warning)",
    )
    p.add_argument(
        "--port", type=port_number, default=8000, help="default: %(default)s"
    )
    p.set_defaults(func=_lazy("cnnumpy.cli.serve", "serve"))


def _bench_parser(sub) -> None:
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
    p.set_defaults(func=_lazy("cnnumpy.cli.bench", "bench"))
