"""This working tree against an earlier commit, alternated in one run: did it help?

Two worker processes run side by side, each importing cnnumpy from its own tree: this
one, and the files of ``--base`` (a commit, extracted with ``git archive`` into a
temporary folder). The parent asks them in turn to time the same thing (a training
step of SGD with momentum, or ``predict``, on the same zoo net, batch and random data,
float32, default settings), alternating which goes first from round to round, so a
noisy neighbour hurts both alike; only one of them computes at a time. It prints
the median time of each, the speed-up of this tree over the base (base time / this
time: above 1 means this tree is faster) with the range of the per-round ratios, and
one JSON line per measurement.

    .venv/bin/python benchmarks/vs_before.py --base 49a8543
    .venv/bin/python benchmarks/vs_before.py --base HEAD~3 --nets lenet5 --batches 64
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NETS = {  # input shape of each net, as in vs_torch.py
    "lenet5": (1, 28, 28),
    "melpy_mnist": (1, 28, 28),
    "seed_cifar": (3, 32, 32),
    "vgg_cifar": (3, 32, 32),
}
WARMUP = 3


# -- the worker: one tree's cnnumpy ----------------------------------------------
def serve() -> None:
    """Answer timing requests (one JSON line each on stdin) with the median seconds."""
    import numpy as np

    import cnnumpy
    from cnnumpy import zoo

    built = {}
    for line in sys.stdin:
        ask = json.loads(line)
        key = (ask["net"], ask["batch"])
        if key not in built:
            cnnumpy.seed(0)
            model = zoo.get(ask["net"], input_shape=NETS[ask["net"]], num_classes=10)
            model.compile(cnnumpy.optimizers.SGD(0.01, momentum=0.9), "cross_entropy")
            rng = np.random.default_rng(1)
            x = rng.standard_normal((ask["batch"], *NETS[ask["net"]]))
            built[key] = model, x.astype("float32"), rng.integers(0, 10, ask["batch"])
        seconds = _median_step(*built[key], ask["mode"], ask["steps"])
        print(json.dumps({"seconds": seconds}), flush=True)


def _median_step(model, x, y, mode: str, steps: int) -> float:
    """Median seconds of ``steps`` training steps or predictions, after a warm-up."""
    times = []
    for k in range(WARMUP + steps):
        start = time.perf_counter()
        if mode == "train":
            model.train_on_batch(x, y)
        else:
            model.predict(x, batch_size=len(x))
        if k >= WARMUP:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


class Worker:
    """A ``serve`` process importing cnnumpy from ``root``."""

    def __init__(self, root: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(root)}
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=root,
        )

    def time(self, **ask) -> float:
        self.proc.stdin.write(json.dumps(ask) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError(f"the worker ended without an answer to {ask}")
        return json.loads(answer)["seconds"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def extract(commit: str, into: Path) -> None:
    """The files of ``commit`` (``git archive``) in ``into``."""
    archive = into / "base.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", commit], cwd=ROOT, stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the commit to compare with")
    parser.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    parser.add_argument("--batches", nargs="+", type=int, default=[64, 256])
    parser.add_argument("--modes", nargs="+", default=["train", "predict"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        extract(args.base, Path(folder))
        workers = {"this": Worker(ROOT), "base": Worker(Path(folder))}
        try:
            compare(workers, args)
        finally:
            for worker in workers.values():
                worker.close()


def compare(workers: dict, args) -> None:
    print(f"this tree against {args.base}: base time / this time (> 1: faster now)")
    for name in args.nets:
        for batch in args.batches:
            for mode in args.modes:
                if mode == "predict" and batch != max(args.batches):
                    continue  # as vs_torch.py: inference at the largest batch
                seen = {"this": [], "base": []}
                for round_ in range(args.rounds):
                    order = ("this", "base") if round_ % 2 == 0 else ("base", "this")
                    for who in order:
                        ask = {"net": name, "batch": batch, "mode": mode}
                        seconds = workers[who].time(**ask, steps=args.steps)
                        seen[who].append(seconds)
                        print(json.dumps({**ask, "tree": who, "ms": seconds * 1e3}))
                pairs = zip(seen["base"], seen["this"], strict=True)
                ratios = [b / t for b, t in pairs]
                this, base = (statistics.median(seen[w]) for w in ("this", "base"))
                print(
                    f"{name} {mode} batch {batch}: this {this * 1e3:.2f} ms, base "
                    f"{base * 1e3:.2f} ms, speed-up {base / this:.2f} (rounds "
                    f"{min(ratios):.2f}-{max(ratios):.2f})",
                    flush=True,
                )


if __name__ == "__main__":
    main()
