"""The technique lab (seed 000 part III, seed 001 Table 1): every way the notes compute
dense, convolution and pooling layers, checked equal and timed side by side, the
forward and the backward pass apart (best of --repeats), speed-ups over the loops.

The same as ``cnnumpy bench`` (this script runs it), for a checkout without the
package installed:

    .venv/bin/python benchmarks/techniques.py                 # default small sizes
    .venv/bin/python benchmarks/techniques.py --layers conv --repeats 5
    .venv/bin/python benchmarks/techniques.py --dtype float32 --json
    .venv/bin/python benchmarks/techniques.py --network --dtype float32  # real sizes
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cnnumpy.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
