"""The technique lab (seed 000 part III, seed 001 Table 1): every way the notes compute
dense, convolution and pooling layers, checked equal and timed side by side, the
forward and the backward pass apart (best of --repeats), speed-ups over the loops.

    .venv/bin/python benchmarks/techniques.py                 # default small sizes
    .venv/bin/python benchmarks/techniques.py --layers conv --repeats 5
    .venv/bin/python benchmarks/techniques.py --dtype float32 --json
    .venv/bin/python benchmarks/techniques.py --network --dtype float32  # real sizes
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from cnnumpy.functional.techniques import format_table, run_lab  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--layers",
        nargs="+",
        default=["dense", "conv", "pool"],
        choices=["dense", "conv", "pool"],
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    parser.add_argument("--json", action="store_true", help="one JSON line per row")
    parser.add_argument(
        "--network",
        action="store_true",
        help="layers of the notes' networks, 64 images, without the Python loops",
    )
    args = parser.parse_args(argv)
    dtype = np.dtype(args.dtype)
    rtol = 1e-6 if dtype == np.float64 else 1e-3  # float32 sums round differently
    rows = run_lab(
        args.layers,
        repeats=args.repeats,
        dtype=dtype,
        rtol=rtol,
        network=args.network,
    )
    print(format_table(rows))
    if args.json:
        for row in rows:
            print(json.dumps(row))


if __name__ == "__main__":
    main()
