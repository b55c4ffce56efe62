"""Data-parallel training over MPI ranks: measured here, and modelled for a cluster.

**Measured.** For each net and global batch, ``mpiexec -n K`` for K = 1, 2, 3 ranks on
this machine (3 is oversubscribed on a 2-core machine: it shows what that costs),
each a fresh ``mpiexec`` running ``--steps`` training steps (SGD with momentum,
float32, random data) after a warm-up, the median step kept; the rank counts are
alternated within each round (1, 2, 3, then the next round) so that a noisy neighbour
hurts them alike. It prints images per second, the speed-up over 1 rank, and the
bytes each rank's one ``Allreduce`` sums per step: the gradients, the loss and the
batch's outputs (for the metrics), at 4 bytes a value.

**Modelled** (``--model``). A step on N machines, each like this one, with a global
batch of B images: every machine computes B / N of them, then the ranks sum the
gradient bytes G with a ring allreduce: 2 (N - 1) messages in a row, each of G / N
bytes, so 2 (N - 1) / N x G bytes through every link::

    T(N) = T1(B) / N + 2 (N - 1) / N x G / bandwidth + 2 (N - 1) x latency
    speed-up = T1(B) / T(N)

T1(B) is measured here (one process, a training step on a small batch, scaled to B
images); G is the net's parameters at 4 bytes. Each link is a bandwidth and a
latency per message, typical figures, not measured: 1 Gbit/s Ethernet at 50 us,
10 Gbit/s at 20 us, 100 Gbit/s InfiniBand at 2 us. The model leaves out the
outputs' few kilobytes and any overlap of communication with the backward pass
(cnnumpy has none: one Allreduce after it). It prints, for the zoo's nets, the
speed-up on 2 to 32 machines over the three links.

    .venv/bin/python benchmarks/mpi_scaling.py
    .venv/bin/python benchmarks/mpi_scaling.py --nets lenet5 --batches 64 256 --rounds 3
    .venv/bin/python benchmarks/mpi_scaling.py --model
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mpi_vs_replicas import build, step_times  # noqa: E402

MNIST, CIFAR, IMAGENET = ((1, 28, 28), 10), ((3, 32, 32), 10), ((3, 224, 224), 1000)
SHAPES = {  # input shape and classes of each net measured or modelled
    "lenet5": MNIST,
    "melpy_mnist": MNIST,
    "mnist_cnn": MNIST,
    "seed_cifar": CIFAR,
    "resnet20": CIFAR,
    "vgg_cifar": CIFAR,
    "alexnet": ((3, 227, 227), 1000),
    "vgg16": IMAGENET,
}
# the batch T1 is measured on, small for the big nets (one step of VGG16 on a
# batch of 2 takes seconds here)
MODEL_BATCH = {"alexnet": 8, "vgg16": 2}
MACHINES = (2, 4, 8, 16, 32)
LINKS = {  # bytes per second, seconds per message
    "1 Gbit/s, 50 us": (1e9 / 8, 50e-6),
    "10 Gbit/s, 20 us": (10e9 / 8, 20e-6),
    "100 Gbit/s, 2 us": (100e9 / 8, 2e-6),
}


def reduced_bytes(model, batch: int) -> int:
    """Bytes of the buffer each rank's Allreduce sums in one training step: the
    loss, every gradient, and the batch's outputs (DataParallel.train_step)."""
    values = 1 + model.count_params() + batch * math.prod(model.output_shape)
    return values * model.dtype.itemsize


def time_ranks(name: str, batch: int, steps: int, ranks: int) -> float:
    """Median seconds per training step of ``mpiexec -n ranks`` (:func:`rank_main`)."""
    mpiexec = Path(sys.executable).parent / "mpiexec"
    command = [str(mpiexec), "-n", str(ranks), sys.executable, __file__, "--rank"]
    command += [name, str(batch), str(steps)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def rank_main(name: str, batch: int, steps: int) -> None:
    """One rank of :func:`time_ranks`: rank 0 prints the median step."""
    from cnnumpy.distributed import mpi
    from cnnumpy.distributed.data_parallel import DataParallel

    comm = mpi.world()
    model, x, y = build(name, batch, *SHAPES[name])
    with DataParallel(model, comm):
        times = step_times(model, x, y, steps, comm.comm.Barrier)
    if comm.rank == 0:
        print(statistics.median(times))


def measure(args) -> None:
    """The measured part (module docstring)."""
    counts = (1, 2, 3)
    for name in args.nets:
        for batch in args.batches:
            seen = {k: [] for k in counts}
            for round_ in range(args.rounds):
                for ranks in counts:
                    seconds = time_ranks(name, batch, args.steps, ranks)
                    seen[ranks].append(seconds)
                    row = {"net": name, "batch": batch, "round": round_}
                    row |= {"ranks": ranks, "ms_per_step": seconds * 1e3}
                    print(json.dumps(row), flush=True)
            model, _x, _y = build(name, 8, *SHAPES[name])
            step = {k: statistics.median(t) for k, t in seen.items()}
            parts = [
                f"{k} rank{'s' if k > 1 else ''} {batch / step[k]:,.0f} img/s "
                f"(x{step[1] / step[k]:.2f})"
                for k in counts
            ]
            print(
                f"{name} batch {batch}: " + ", ".join(parts) + "; each rank's "
                f"Allreduce: {reduced_bytes(model, batch) / 1e3:,.1f} kB per step",
                flush=True,
            )


def per_image_seconds(name: str, steps: int) -> float:
    """Seconds of a training step per image, on this machine, one process."""
    batch = MODEL_BATCH.get(name, 64)
    # a small rate: the big nets diverge on random data at 0.01 (same work, no NaN)
    model, x, y = build(name, batch, *SHAPES[name], lr=1e-5)
    return statistics.median(step_times(model, x, y, steps)) / batch


def modelled_speedup(t1: float, grad_bytes: int, machines: int, link) -> float:
    """T1 / T(N) of the module docstring's model; ``link``: (bytes/s, s/message)."""
    bandwidth, latency = link
    ring = 2 * (machines - 1) * (grad_bytes / machines / bandwidth + latency)
    return t1 / (t1 / machines + ring)


def model(args) -> None:
    """The modelled part (module docstring)."""
    batch = args.global_batch
    head = " | ".join(f"N={n}" for n in MACHINES)
    print(f"\nspeed-up on N machines like this one, global batch {batch}")
    print(f"| net | parameters | gradient MB | T1({batch}) s | link | {head} |")
    print("|---|---:|---:|---:|---|" + "---:|" * len(MACHINES))
    for name in args.model_nets:
        net, _x, _y = build(name, 1, *SHAPES[name])
        params = net.count_params()
        grad_bytes = params * 4
        t1 = per_image_seconds(name, args.steps) * batch
        for link_name, link in LINKS.items():
            ups = [modelled_speedup(t1, grad_bytes, n, link) for n in MACHINES]
            cells = " | ".join(f"{u:.1f}" for u in ups)
            print(
                f"| {name} | {params:,} | {grad_bytes / 1e6:.2f} | {t1:.2f} | "
                f"{link_name} | {cells} |",
                flush=True,
            )


def main() -> None:
    if sys.argv[1:2] == ["--rank"]:
        rank_main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["lenet5", "melpy_mnist"])
    parser.add_argument("--batches", nargs="+", type=int, default=[64, 256])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--model", action="store_true", help="the modelled part only")
    parser.add_argument("--model-nets", nargs="+", default=list(SHAPES))
    parser.add_argument("--global-batch", type=int, default=256)
    args = parser.parse_args()
    for name in {*args.nets, *args.model_nets}:
        if name not in SHAPES:
            parser.error(f"unknown net {name!r}; expected one of {', '.join(SHAPES)}")
    if not args.model:
        measure(args)
    model(args)


if __name__ == "__main__":
    main()
