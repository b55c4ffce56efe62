"""``cnnumpy bench``: the technique lab, the notes' loops against vectorised kernels."""

from __future__ import annotations

import json
import sys

import numpy as np

from cnnumpy.cli.runs import UsageError


def bench(args) -> int:
    """The technique lab (``cnnumpy.lab.techniques``): time and compare."""
    try:
        from cnnumpy.lab.techniques import format_table, run_lab
    except ImportError:
        raise UsageError(
            "bench: the technique lab (cnnumpy.lab.techniques) is not "
            "available in this version"
        ) from None
    dtype = np.dtype(args.dtype)
    rtol = 1e-6 if dtype == np.float64 else 1e-3  # float32 sums round differently
    try:
        rows = run_lab(
            args.layers,
            repeats=args.repeats,
            dtype=dtype,
            rtol=rtol,
            network=args.network,
        )
    except AssertionError as exc:
        print(f"cnnumpy bench: techniques disagree: {exc}", file=sys.stderr)
        return 1
    print(format_table(rows))
    if args.json:
        for row in rows:
            print(json.dumps(row))
    return 0
