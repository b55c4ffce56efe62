"""The ``cnnumpy`` command: train, evaluate, predict, generate, visualize, summary,
datasets, bench, serve.

    cnnumpy train --model lenet5 --dataset mnist --epochs 5 --out runs/lenet5
    cnnumpy evaluate runs/lenet5
    cnnumpy predict runs/lenet5 digit.png --invert
    cnnumpy visualize runs/lenet5 --index 7 --method occlusion gradcam
    cnnumpy summary --model vgg_cifar
    cnnumpy train --model char_lstm --text stdlib --out runs/lstm
    cnnumpy generate runs/lstm --prime "def " --length 200 --temperature 0.8
    cnnumpy datasets
    cnnumpy serve runs

``main(argv)`` returns the exit code: 0 on success, 2 for a mistake of the user (bad
argument, unknown model or data set, missing file, unreadable image, a run folder
another training holds), reported in one line on stderr without a traceback (set
``CNNUMPY_DEBUG=1`` to see it), as is running out of memory; 3 when training diverged
(the loss became NaN or infinite: the run keeps its last good checkpoint); 130 when
interrupted.

Here: ``main``. The modules: ``parser`` (the arguments of every subcommand, with
``option_types``); one per subcommand, ``train`` (with ``train_folder`` and
``train_results``; ``train_text`` for char models; ``train_options``, the options of
``train``), ``evaluate``, ``generate``,
``predict``, ``visualize``, ``bench``, ``info`` (``summary`` and ``datasets``),
``serve`` (the playground, ``cnnumpy.serve``); and
what they share: ``runs`` (data sets by name, preprocessing, run folders),
``tools`` (what evaluate, predict and visualize share), ``run_config`` (a run's
``config.json`` checked), ``image_files`` and ``locate`` (where a data set is found).
"""

from __future__ import annotations

import os
import sys
import warnings

from cnnumpy.cli.parser import CommandLineError, build_parser
from cnnumpy.cli.runs import UsageError
from cnnumpy.data import DatasetError
from cnnumpy.distributed import mpi
from cnnumpy.saving import ModelFileError

__all__ = ["main"]

# Mistakes of the user: one line on stderr, exit code 2.
USER_ERRORS = (UsageError, DatasetError, ModelFileError, ValueError, OSError)


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
    except USER_ERRORS as exc:
        if os.environ.get("CNNUMPY_DEBUG"):
            raise
        # argparse's refusal depends on the command line alone: under mpiexec every
        # rank finds it, and rank 0 alone says it
        if not (isinstance(exc, CommandLineError) and mpi.launcher_rank() > 0):
            prefix = "" if isinstance(exc, CommandLineError) else "cnnumpy: error: "
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


def _one_line(exc: BaseException) -> str:
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip())


# who says a warning: an MPI rank other than 0 names itself (cli/train.py)
WARNING_PREFIX = "cnnumpy: warning:"


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """A warning as one line, ``cnnumpy: warning: <message>``: the user needs the
    message, not the library's file, line number and source line. One write, so
    that the lines of MPI ranks sharing a terminal do not interleave."""
    stream = sys.stderr if file is None else file
    stream.write(f"{WARNING_PREFIX} {_one_line(message)}\n")
    stream.flush()
