"""cnnumpy against PyTorch (CPU, default settings) on the notes' reference networks.

For each network (``zoo.lenet5``, ``zoo.melpy_mnist``, ``zoo.seed_cifar``,
``zoo.vgg_cifar``) the script builds the cnnumpy model and its ``nn.Sequential`` twin
from the same initial weights, checks that one training step gives the same loss and
gradients, then times, alternating the two frameworks (cnnumpy, PyTorch, cnnumpy, ...)
so that a noisy neighbour hurts both alike:

- training steps: forward + backward + SGD momentum 0.9 step
  (``model.train_on_batch`` / ``zero_grad, loss.backward, opt.step``);
- inference: ``model.predict`` / ``softmax(net(x))`` under ``torch.no_grad``.

The recurrent rows (``lstm``, ``gru``: the char model of ``vs_torch_rnn.py``,
``Embedding(65, 64) -> LSTM/GRU(256) -> Dense(65)``, batch 64 of T = 50 characters,
cross-entropy on every step) are timed the same way, in tokens/s.

It first prints the machine: the CPU model and cores, the SIMD extensions NumPy was
built for and dispatches to on this CPU, OpenBLAS's kernel, PyTorch's CPU capability.
Each cnnumpy case runs with each executor (``--executors``): ``default`` (what
``fit``, ``train_on_batch`` and ``predict`` do with no speed option), ``threads``
(forced: one process, ``model.use_processes(1)``) and ``processes`` (forced:
``model.use_processes(--processes)``). It prints the median images/s (tokens/s) of
both frameworks, their ratio (cnnumpy / PyTorch: above 1 means cnnumpy is faster),
the range of the ratios of each cnnumpy measurement to the PyTorch one right after it
(how much the machine moved during the run), and one JSON line per measurement.

``--memory`` prints the peak memory of a training step of each net at each batch,
cnnumpy against PyTorch (each in a fresh subprocess, peak RSS ``VmHWM`` after a reset,
minus the RSS before the step).

``--scaling`` reports the time per image for batches 1 to 512 and the peak memory of a
training step (each framework in a fresh subprocess, peak RSS ``VmHWM`` after a reset,
minus the RSS before the step), and draws the curves to a PNG.

Examples::

    .venv/bin/python benchmarks/vs_torch.py --quick
    .venv/bin/python benchmarks/vs_torch.py --nets lenet5 vgg_cifar --batches 64 256
    .venv/bin/python benchmarks/vs_torch.py --executors default --quick
    .venv/bin/python benchmarks/vs_torch.py --memory --nets vgg_cifar --batches 256
    .venv/bin/python benchmarks/vs_torch.py --nets lstm gru
    .venv/bin/python benchmarks/vs_torch.py --scaling --nets vgg_cifar --png scaling.png
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

NETS = ("lenet5", "melpy_mnist", "seed_cifar", "vgg_cifar")
# the char model of vs_torch_rnn.py: Embedding(65, 64) -> LSTM/GRU(256) -> Dense(65),
# batch 64 of T = 50 characters, rates in tokens/s
RECURRENT = ("lstm", "gru")
INPUTS = {
    "lenet5": (1, 28, 28),
    "melpy_mnist": (1, 28, 28),
    "seed_cifar": (3, 32, 32),
    "vgg_cifar": (3, 32, 32),
}
LR, MOMENTUM = 0.01, 0.9


def environment() -> dict:
    """BLAS, threads and versions this run used (threadpoolctl, torch, numpy)."""
    import threadpoolctl
    import torch

    blas = [
        {
            k: info.get(k)
            for k in (
                "internal_api",
                "num_threads",
                "architecture",
                "version",
                "threading_layer",
            )
        }
        for info in threadpoolctl.threadpool_info()
    ]
    env = {
        k: os.environ.get(k)
        for k in (
            "OPENBLAS_CORETYPE",
            "OPENBLAS_L2_SIZE",
            "OMP_NUM_THREADS",
            "OPENBLAS_NUM_THREADS",
        )
    }
    return {
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "threadpools": blas,
        "env": env,
    }


def machine() -> dict:
    """The CPU and the instruction sets each library runs on it: the CPU model and
    the cores this process may use; NumPy's SIMD baseline and the dispatched
    extensions this CPU has; OpenBLAS's kernel (threadpoolctl's ``architecture``);
    PyTorch's CPU capability."""
    import threadpoolctl
    import torch

    try:  # NumPy 2 (private, as NumPy's own show_runtime reads them)
        from numpy._core import _multiarray_umath as simd
    except ImportError:  # NumPy 1, which pyproject.toml still allows
        from numpy.core import _multiarray_umath as simd

    from cnnumpy.distributed.limits import available_cores

    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        model = names[0] if names else model
    blas = [
        f"{info.get('internal_api')} {info.get('version')} "
        f"{info.get('architecture')} kernel, {info.get('num_threads')} threads"
        for info in threadpoolctl.threadpool_info()
        if info.get("user_api") == "blas"
    ]
    return {
        "cpu": model,
        "cores": available_cores(),
        "numpy_simd_baseline": list(simd.__cpu_baseline__),
        "numpy_simd_dispatched": [
            f for f in simd.__cpu_dispatch__ if simd.__cpu_features__.get(f)
        ],
        "blas": blas,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


def print_machine(info: dict) -> None:
    print(f"CPU: {info['cpu']}, {info['cores']} cores for this process")
    print(
        f"NumPy {np.__version__}: SIMD baseline {' '.join(info['numpy_simd_baseline'])}"
        f"; dispatched here {' '.join(info['numpy_simd_dispatched']) or 'none'}"
    )
    print(f"BLAS: {'; '.join(info['blas'])}")
    print(f"PyTorch CPU capability: {info['torch_cpu_capability']}", flush=True)


# cnnumpy's executor modes: "default" is what a user gets with no speed option;
# "threads" forces one process (the engine's threads), "processes" forces the batch
# split over PROCESSES processes (model.use_processes)
EXECUTORS = ("default", "threads", "processes")
PROCESSES = 2  # --processes


def build_pair(name: str, seed: int = 0, executor: str = "default"):
    """The compiled cnnumpy model, its torch twin and the twin's SGD optimiser.

    ``executor`` (:data:`EXECUTORS`): ``"threads"`` forces one process
    (``model.use_processes(1)``), ``"processes"`` splits its batches over
    :data:`PROCESSES` processes; the twin is built first, from the same weights.
    """
    import torch
    from torch_twin import torch_twin

    import cnnumpy
    from cnnumpy import zoo

    cnnumpy.seed(seed)
    torch.manual_seed(seed)
    model = zoo.get(name)
    model.compile(
        optimizer=cnnumpy.optimizers.SGD(lr=LR, momentum=MOMENTUM),
        loss="cross_entropy",
        metrics=[],
    )
    net = torch_twin(model)
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    if executor == "threads":
        model.use_processes(1)
    elif executor == "processes":
        model.use_processes(PROCESSES)
    return model, net, opt


def batch_data(name: str, batch: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *INPUTS[name]), dtype=np.float32)
    y = rng.integers(0, 10, batch).astype(np.int64)
    return x, y


def step_functions(model, net, opt, x, y):
    """Zero-argument callables: one training step and one inference, each framework."""
    import torch

    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    loss_fn = torch.nn.CrossEntropyLoss()

    def ours_train():
        model.train_on_batch(x, y)

    def torch_train():
        net.train()
        opt.zero_grad()
        loss = loss_fn(net(xt), yt)
        loss.backward()
        opt.step()

    def ours_predict():
        model.predict(x, batch_size=256)

    def torch_predict():
        net.eval()
        with torch.no_grad():
            torch.softmax(net(xt), dim=1).numpy()

    return (ours_train, torch_train), (ours_predict, torch_predict)


def alternate(fns, batch: int, repeats: int, min_time: float) -> list[list[float]]:
    """Images/s of each callable, ``repeats`` times, interleaved; one warm-up each.

    Each measurement starts with one untimed call: after PyTorch's calls its OpenMP
    threads keep spinning for a few milliseconds and take a core from whatever runs
    next (a 64-channel 3x3 convolution of cnnumpy on 64 16x16 maps took 18.5 ms right
    after a PyTorch call, 11.8 ms otherwise, on the AMD EPYC of docs/speed.md), so
    the first call after a switch measures the other library too; it is dropped for
    both sides alike."""
    calls = []
    for fn in fns:  # warm-up, and find how many calls make one ~min_time measurement
        fn()
        t0 = time.perf_counter()
        fn()
        calls.append(max(1, int(min_time / max(time.perf_counter() - t0, 1e-6))))
    rates = [[] for _ in fns]
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            fn()  # untimed: the switch from the other library (docstring)
            t0 = time.perf_counter()
            for _ in range(calls[k]):
                fn()
            rates[k].append(calls[k] * batch / (time.perf_counter() - t0))
    return rates


def check_agreement(name: str) -> dict:
    from torch_twin import compare_one_step

    model, net, _ = build_pair(name)
    x, y = batch_data(name, 16)
    result = compare_one_step(model, net, x, y)
    ours, theirs = result["loss"]
    if (
        abs(ours - theirs) > 1e-4 * max(1.0, abs(theirs))
        or result["max_rel_grad_err"] > 1e-3
    ):
        raise SystemExit(f"{name}: cnnumpy and torch disagree: {result}")
    return result


def run_speed(nets, batches, repeats, min_time, executors) -> list[dict]:
    rows = []
    for name in nets:
        if name in RECURRENT:
            from vs_torch_rnn import speed_rows

            rows += speed_rows(name, 64, 50, repeats, min_time)
            continue
        agreement = check_agreement(name)
        print(
            f"{name}: one step agrees with torch (loss {agreement['loss'][0]:.6f} vs "
            f"{agreement['loss'][1]:.6f}, max rel. grad error "
            f"{agreement['max_rel_grad_err']:.1e})",
            flush=True,
        )
        cases = [
            (mode, batch, executor)
            for mode, sizes in (("train", batches), ("predict", [256]))
            for batch in sizes
            for executor in executors
        ]
        for mode, batch, executor in cases:
            model, net, opt = build_pair(name, executor=executor)
            x, y = batch_data(name, batch)
            fns = step_functions(model, net, opt, x, y)[mode == "predict"]
            ours, theirs = alternate(fns, batch, repeats, min_time)
            model.use_processes(1)  # stop the replicas, if any
            row = {
                "net": name,
                "mode": mode,
                "batch": batch,
                "executor": executor,
                "unit": "img",
                "cnnumpy_rate": statistics.median(ours),
                "torch_rate": statistics.median(theirs),
            }
            row["ratio"] = row["cnnumpy_rate"] / row["torch_rate"]
            # each cnnumpy measurement against the PyTorch one right after it:
            # their spread shows how much the machine moved during the run
            pairs = [a / b for a, b in zip(ours, theirs, strict=True)]
            row["pair_ratios"] = [round(r, 3) for r in pairs]
            rows.append(row)
            print(
                f"  {mode:7s} batch {batch:4d} {executor:9s}: "
                f"cnnumpy {row['cnnumpy_rate']:9.0f} "
                f"img/s  torch {row['torch_rate']:9.0f} img/s  ratio "
                f"{row['ratio']:.2f} (pairs {min(pairs):.2f}-{max(pairs):.2f})",
                flush=True,
            )
            print("JSON " + json.dumps(row), flush=True)
    return rows


def print_table(rows: list[dict]) -> None:
    """The Markdown table of the rows (rates in images/s, or tokens/s for the
    recurrent rows)."""
    print(
        "\n| net | mode | batch | cnnumpy executor | cnnumpy /s | PyTorch /s | ratio "
        "| pair ratios, min-max |"
    )
    print("|---|---|---:|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['net']} | {r['mode']} | {r['batch']} | {r.get('executor', '')} | "
            f"{r['cnnumpy_rate']:.0f} {r['unit']} | {r['torch_rate']:.0f} {r['unit']} "
            f"| {r['ratio']:.2f} | "
            f"{min(r['pair_ratios']):.2f}-{max(r['pair_ratios']):.2f} |"
        )


# -- memory, in a fresh process per framework -----------------------------------
def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(framework: str, name: str, batch: int, steps: int = 3) -> dict:
    """Peak RSS of ``steps`` training steps in this (fresh) process, in MiB."""
    import cnnumpy
    from cnnumpy import zoo

    cnnumpy.seed(0)
    x, y = batch_data(name, batch)
    if framework == "cnnumpy":
        model = zoo.get(name)
        model.compile(
            optimizer=cnnumpy.optimizers.SGD(lr=LR, momentum=MOMENTUM),
            loss="cross_entropy",
            metrics=[],
        )

        def step():
            model.train_on_batch(x, y)
    else:
        _model, net, opt = build_pair(name)
        step = step_functions(_model, net, opt, x, y)[0][1]
    before = _rss_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    for _ in range(steps):
        step()
    peak = _rss_kib("VmHWM")
    return {
        "framework": framework,
        "net": name,
        "batch": batch,
        "rss_before_mib": before / 1024,
        "peak_mib": peak / 1024,
        "step_peak_mib": (peak - before) / 1024,
    }


def measure_memory(framework: str, name: str, batch: int) -> dict:
    cmd = [sys.executable, __file__, "--memory-child", framework, name, str(batch)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def print_memory(nets, batches) -> None:
    """Peak memory of a training step, cnnumpy against PyTorch, as a table."""
    print("\n| net | batch | cnnumpy step peak MiB | PyTorch step peak MiB | ratio |")
    print("|---|---:|---:|---:|---:|")
    for name in nets:
        for batch in batches:
            mem = {fw: measure_memory(fw, name, batch) for fw in ("cnnumpy", "torch")}
            ours, theirs = (mem[fw]["step_peak_mib"] for fw in ("cnnumpy", "torch"))
            print("JSON " + json.dumps(mem), flush=True)
            cells = f"{ours:.0f} | {theirs:.0f} | {ours / theirs:.2f}"
            print(f"| {name} | {batch} | {cells} |", flush=True)


def run_scaling(nets, repeats, min_time, png: str | None) -> list[dict]:
    rows = []
    sizes = [2**k for k in range(10)]
    for name in nets:
        for batch in sizes:
            model, net, opt = build_pair(name)
            x, y = batch_data(name, batch)
            ours, theirs = alternate(
                step_functions(model, net, opt, x, y)[0], batch, repeats, min_time
            )
            model.use_processes(1)
            mem = {fw: measure_memory(fw, name, batch) for fw in ("cnnumpy", "torch")}
            row = {
                "net": name,
                "batch": batch,
                "cnnumpy_ms_per_image": 1e3 / statistics.median(ours),
                "torch_ms_per_image": 1e3 / statistics.median(theirs),
                "cnnumpy_step_peak_mib": mem["cnnumpy"]["step_peak_mib"],
                "torch_step_peak_mib": mem["torch"]["step_peak_mib"],
                "cnnumpy_peak_rss_mib": mem["cnnumpy"]["peak_mib"],
                "torch_peak_rss_mib": mem["torch"]["peak_mib"],
            }
            rows.append(row)
            print(
                f"{name} batch {batch:4d}: ms/image cnnumpy "
                f"{row['cnnumpy_ms_per_image']:.3f} "
                f"torch {row['torch_ms_per_image']:.3f}"
                f"  step peak MiB cnnumpy {row['cnnumpy_step_peak_mib']:.1f} torch "
                f"{row['torch_step_peak_mib']:.1f}",
                flush=True,
            )
            print("JSON " + json.dumps(row), flush=True)
    if png:
        plot_scaling(rows, png)
    return rows


def plot_scaling(rows: list[dict], png: str) -> None:
    """Time per image and step peak memory against the batch size (atomic PNG)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cnnumpy.fileio import atomic_write_bytes

    nets = sorted({r["net"] for r in rows})
    fig, axes = plt.subplots(len(nets), 2, figsize=(10, 3.6 * len(nets)), squeeze=False)
    for (ax_t, ax_m), name in zip(axes, nets, strict=False):
        mine = [r for r in rows if r["net"] == name]
        b = [r["batch"] for r in mine]
        for fw, style in (("cnnumpy", "o-"), ("torch", "s--")):
            ax_t.plot(b, [r[f"{fw}_ms_per_image"] for r in mine], style, label=fw)
            ax_m.plot(b, [r[f"{fw}_step_peak_mib"] for r in mine], style, label=fw)
        ax_t.set(
            xscale="log",
            yscale="log",
            xlabel="batch",
            ylabel="ms / image",
            title=f"{name}: training time per image",
        )
        ax_m.set(
            xscale="log",
            xlabel="batch",
            ylabel="MiB",
            title=f"{name}: peak memory of a training step",
        )
        for ax in (ax_t, ax_m):
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(png, buf.getvalue())
    print(f"wrote {png}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    every = [*NETS, *RECURRENT]
    parser.add_argument("--nets", nargs="+", default=every, choices=every)
    parser.add_argument("--batches", nargs="+", type=int, default=[64, 256])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--min-time",
        type=float,
        default=0.5,
        help="seconds per measurement (several calls)",
    )
    parser.add_argument("--quick", action="store_true", help="3 repeats of ~0.2 s")
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="time per image for batch 1..512 and peak memory",
    )
    parser.add_argument(
        "--executors",
        nargs="+",
        default=list(EXECUTORS),
        choices=EXECUTORS,
        help="cnnumpy's ways of running each batch: what a user gets by default, "
        "forced threads (one process), forced processes (--processes of them)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=2,
        help="processes of the 'processes' executor (default: %(default)s)",
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="peak memory of a training step of each net at each batch, each "
        "framework in a fresh process",
    )
    parser.add_argument("--png", default="benchmarks/scaling.png")
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        fw, name, batch = args.memory_child
        print(json.dumps(memory_child(fw, name, int(batch))))
        return
    if args.quick:
        args.repeats, args.min_time = 3, 0.2
    global PROCESSES
    PROCESSES = args.processes
    described = machine()
    print_machine(described)
    env = {**environment(), **described, "cnnumpy_processes": PROCESSES}
    print("JSON " + json.dumps({"environment": env}), flush=True)
    if args.memory:
        print_memory([n for n in args.nets if n in NETS], args.batches)
    elif args.scaling:
        nets = [n for n in args.nets if n in NETS]  # the CNNs: images of a batch
        run_scaling(nets, args.repeats, args.min_time, args.png)
    else:
        rows = run_speed(
            args.nets, args.batches, args.repeats, args.min_time, args.executors
        )
        print_table(rows)


if __name__ == "__main__":
    main()
