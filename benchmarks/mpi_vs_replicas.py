"""Two ways to split a batch over 2 processes, timed against each other on this machine.

- **replicas**: ``model.use_processes(2)``, cnnumpy's own transport (shared memory
  and pipes, :mod:`cnnumpy.distributed.replicas`);
- **mpi**: ``mpiexec -n 2``, each rank a :class:`~cnnumpy.distributed.data_parallel.
  DataParallel` step (one in-place ``Allreduce`` of the gradients, MPICH over shared
  memory);
- **alone**: one process on the whole batch, for scale.

Each measurement is a fresh ``mpiexec`` (for mpi) or this process (replicas, alone):
a few warm-up steps, then ``--steps`` training steps (``train_on_batch``, SGD with
momentum) timed, the median step kept. The ways are alternated within each round
(alone, replicas, mpi, then the next round) so that a noisy neighbour hurts them
alike. It prints the median of the rounds per way, the ratio mpi / replicas (time per
step: below 1 means MPI is faster) with the range of the per-round ratios, and one
JSON line per measurement.

    .venv/bin/python benchmarks/mpi_vs_replicas.py
    .venv/bin/python benchmarks/mpi_vs_replicas.py --nets lenet5 --batches 64 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cnnumpy  # noqa: E402
from cnnumpy import zoo  # noqa: E402

NETS = ("lenet5", "melpy_mnist")
WARMUP = 3


def build(name: str, batch: int, input_shape=(1, 28, 28), classes=10, lr=0.01):
    """The compiled model and one batch of random data for it."""
    cnnumpy.seed(0)
    model = zoo.get(name, input_shape=input_shape, num_classes=classes)
    model.compile(cnnumpy.optimizers.SGD(lr, momentum=0.9), "cross_entropy")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, *input_shape)).astype(model.dtype)
    return model, x, rng.integers(0, classes, batch)


def step_times(model, x, y, steps: int, barrier=lambda: None) -> list[float]:
    """Seconds of each of ``steps`` training steps, after the warm-up."""
    for _ in range(WARMUP):
        model.train_on_batch(x, y)
    times = []
    for _ in range(steps):
        barrier()
        start = time.perf_counter()
        model.train_on_batch(x, y)
        barrier()
        times.append(time.perf_counter() - start)
    return times


def time_in_process(name: str, batch: int, steps: int, processes: int) -> float:
    """Median seconds per step here, alone or with replicas."""
    model, x, y = build(name, batch)
    if processes == 1:
        return statistics.median(step_times(model, x, y, steps))
    with model.use_processes(processes):
        return statistics.median(step_times(model, x, y, steps))


def time_over_mpi(name: str, batch: int, steps: int) -> float:
    """Median seconds per step of ``mpiexec -n 2`` running :func:`rank_main`."""
    mpiexec = Path(sys.executable).parent / "mpiexec"
    command = [str(mpiexec), "-n", "2", sys.executable, __file__, "--rank"]
    command += [name, str(batch), str(steps)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def rank_main(name: str, batch: int, steps: int) -> None:
    """One rank of :func:`time_over_mpi`: rank 0 prints the median step."""
    from cnnumpy.distributed import mpi
    from cnnumpy.distributed.data_parallel import DataParallel

    comm = mpi.world()
    model, x, y = build(name, batch)
    with DataParallel(model, comm):
        times = step_times(model, x, y, steps, comm.comm.Barrier)
    if comm.rank == 0:
        print(statistics.median(times))


def main() -> None:
    if sys.argv[1:2] == ["--rank"]:
        name, batch, steps = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        rank_main(name, batch, steps)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=list(NETS), choices=NETS)
    parser.add_argument("--batches", nargs="+", type=int, default=[64, 256])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    ways = {
        "alone": lambda n, b: time_in_process(n, b, args.steps, 1),
        "replicas": lambda n, b: time_in_process(n, b, args.steps, 2),
        "mpi": lambda n, b: time_over_mpi(n, b, args.steps),
    }
    for name in args.nets:
        for batch in args.batches:
            seen = {way: [] for way in ways}
            for round_ in range(args.rounds):
                for way, measure in ways.items():
                    seconds = measure(name, batch)
                    seen[way].append(seconds)
                    row = {"net": name, "batch": batch, "round": round_, "way": way}
                    print(json.dumps({**row, "ms_per_step": seconds * 1e3}))
            report(name, batch, seen)


def report(name: str, batch: int, seen: dict) -> None:
    medians = {way: statistics.median(times) for way, times in seen.items()}
    ratios = [m / r for m, r in zip(seen["mpi"], seen["replicas"], strict=True)]
    parts = [f"{way} {ms * 1e3:.2f} ms" for way, ms in medians.items()]
    print(
        f"{name} batch {batch}: " + ", ".join(parts) + f"; mpi / replicas "
        f"{medians['mpi'] / medians['replicas']:.3f} (rounds "
        f"{min(ratios):.3f}-{max(ratios):.3f})",
        flush=True,
    )


if __name__ == "__main__":
    main()
