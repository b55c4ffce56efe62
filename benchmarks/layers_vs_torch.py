"""Layer by layer, cnnumpy's engine against PyTorch: where a network's time goes.

``vs_torch.py`` times whole training steps; this script times each layer of the same
networks alone, on the activations that layer sees in the network, against the twin
PyTorch module (same weights), alternated in one run:

- ``train``: the layer's forward (training mode) then its backward (the input
  gradient too, except for the first layer, whose input gradient nobody reads);
- ``predict``: its forward in inference mode.

Each row prints both times, the ratio PyTorch time / cnnumpy time (above 1: cnnumpy
faster, as in ``vs_torch.py``), the kernel the engine chose for the training forward
and, for convolutions, the GFLOP/s of each side's inference forward (a multiply-add
counts 2) beside the range of a "product bound" measured between the rounds: an ideal
im2col product for the layer, alone, on a chunk in cache, one core's rate times the
cores (:func:`product_bound`). Where PyTorch's whole forward runs faster than that
bound, no way of copying, chunking or threading the columns of an im2col product on
this BLAS reaches it in the forward; other algorithms (Winograd's, FFTs) are outside
the bound. Before timing a layer the script checks that it computes what its twin
computes, forward and backward. The header prints the machine and the cost of one
hand-off to the engine's helper thread, which bounds what splitting a small layer
over the cores can gain.

The layers are timed apart from one another, so the executor's changes to a whole
step (a max-pool run before its activation, the fused inference) are not here, and
the columns add up to about, not exactly, a step of ``vs_torch.py``.

    .venv/bin/python benchmarks/layers_vs_torch.py --nets lenet5 seed_cifar --batch 64
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vs_torch import NETS, alternate, batch_data, build_pair, machine, print_machine  # noqa: E402


def handoff_us(repeats: int = 400) -> float:
    """Median microseconds of one empty job handed to the engine's helper thread and
    waited for (:func:`~cnnumpy.engine.kernels.threads.parallel_chunks`)."""
    from cnnumpy.engine.kernels import threads

    def job() -> None:
        threads.parallel_chunks(lambda lo, hi, k: None, [(0, 1), (1, 2)])

    for _ in range(20):
        job()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        job()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def short_name(layer) -> str:
    """``Conv2D 6->16 5x5``, ``Dense 256->120``, or the layer's class name."""
    kind = type(layer).__name__
    W = layer.params.get("W")
    if kind == "Conv2D":
        F, C, KH, KW = W.shape
        return f"{kind} {C}->{F} {KH}x{KW}"
    if kind == "Dense":
        return f"{kind} {W.shape[0]}->{W.shape[1]}"
    return kind


def conv_flops(layer, out_shape) -> float:
    """Floating-point operations of a convolution's forward (2 per multiply-add)."""
    F, C, KH, KW = layer.params["W"].shape
    return 2.0 * out_shape[0] * F * out_shape[2] * out_shape[3] * C * KH * KW


def product_bound(layer, out_shape, chunk_bytes: int = 4 * 2**20) -> float:
    """GFLOP/s of an ideal im2col product for a convolution's forward, the heart of
    every layout of the engine: ``W (F, C*KH*KW + 1) @ cols`` with one column per
    output (no junk positions, which the wide grid computes) over a chunk of about
    4 MB of columns in cache, as the engine's kernels make them, on one core, times
    the cores. Only the multiply-adds of the convolution count (not the bias row),
    as in :func:`conv_flops`. It is what the engine's forward could reach if copying
    the columns cost nothing and the cores shared the work perfectly."""
    from threadpoolctl import threadpool_limits

    from cnnumpy.distributed.limits import available_cores

    F, C, KH, KW = layer.params["W"].shape
    rows, positions = C * KH * KW + 1, out_shape[2] * out_shape[3]
    images = max(1, chunk_bytes // (rows * positions * 4))
    rng = np.random.default_rng(3)
    w = rng.standard_normal((F, rows), dtype=np.float32)
    cols = rng.standard_normal((rows, images * positions), dtype=np.float32)
    out = np.empty((F, images * positions), dtype=np.float32)
    times = []
    with threadpool_limits(1, user_api="blas"):
        for _ in range(11):
            t0 = time.perf_counter()
            np.matmul(w, cols, out=out)
            times.append(time.perf_counter() - t0)
    flops = 2.0 * F * (rows - 1) * images * positions
    return flops / statistics.median(times[1:]) / 1e9 * available_cores()


def layer_functions(layer, module, x: np.ndarray, first: bool):
    """``(ours_train, torch_train), (ours_predict, torch_predict)`` for one layer on
    its input ``x`` (the caller sets the twin's train/eval mode, and holds the BLAS
    to one thread around cnnumpy's calls as a model's step does), its training
    output, and the engine's kernel for the training forward."""
    import torch

    from cnnumpy.engine import dispatch

    layer.need_input_grad = not first
    out = layer.forward(x, training=True)
    dout = np.random.default_rng(2).standard_normal(out.shape).astype(out.dtype)
    xt = torch.from_numpy(x).requires_grad_(not first)
    dt = torch.from_numpy(dout)
    params = [p for p in module.parameters() if p.requires_grad]
    wanted = ([xt] if not first else []) + params
    agree(layer, module, x, out, dout, wanted, xt)
    kernel = _kernel_of(layer, dispatch)

    def ours_train() -> None:
        layer.forward(x, training=True)
        layer.backward(dout)

    def torch_train() -> None:
        y = module(xt)
        if wanted:
            torch.autograd.grad(y, wanted, dt)

    def ours_predict() -> None:
        layer.forward(x, training=False)

    def torch_predict() -> None:
        with torch.no_grad():
            module(xt)

    return ((ours_train, torch_train), (ours_predict, torch_predict)), out, kernel


def _relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    scale = max(1.0, float(np.abs(theirs).max(initial=0.0)))
    return float(np.abs(ours - theirs).max(initial=0.0)) / scale


def agree(layer, module, x, out, dout, wanted, xt) -> None:
    """Stop unless the layer computes what its twin computes, both ways: the
    training forward, the input gradient and the parameter gradients (compared by
    their sizes and norms, which a transposed weight layout keeps). A Dropout's
    masks are random: its shape alone. Timing two different computations would
    compare nothing."""
    import torch

    module.train()
    y = module(xt if xt.requires_grad else torch.from_numpy(x))
    theirs = y.detach().numpy()
    if theirs.shape != out.shape:
        raise SystemExit(f"{layer!r}: output {out.shape}, torch's {theirs.shape}")
    if type(layer).__name__ == "Dropout":
        return
    errors = [_relative_error(out, theirs)]
    grads = torch.autograd.grad(y, wanted, torch.from_numpy(dout)) if wanted else []
    dx = layer.backward(dout)
    if xt.requires_grad:
        errors.append(_relative_error(dx, grads[0].numpy()))
        grads = grads[1:]
    ours_norms = sorted(
        (g.size, float(np.linalg.norm(g))) for g in layer.grads.values()
    )
    their_norms = sorted((g.numel(), float(g.norm())) for g in grads)
    if [n for n, _ in ours_norms] != [n for n, _ in their_norms]:
        raise SystemExit(f"{layer!r}: parameter gradients of other sizes than torch's")
    for (_, a), (_, b) in zip(ours_norms, their_norms, strict=True):
        errors.append(abs(a - b) / max(1.0, b))
    if max(errors) > 1e-4:
        raise SystemExit(
            f"{layer!r}: differs from torch by {max(errors):.1e} (relative)"
        )


def _kernel_of(layer, dispatch) -> str:
    """The kernel named in the cache the layer's last forward left, or ``-``."""
    cache = getattr(layer, "_cache", None)
    if isinstance(cache, dispatch.Cache):
        return cache.kernel
    if isinstance(cache, dict):
        for value in cache.values():
            if isinstance(value, dispatch.Cache):
                return value.kernel
    return "-"


def run(name: str, batch: int, repeats: int, min_time: float) -> list[dict]:
    from torch_twin import _is_chain, modules_of

    from cnnumpy.engine.kernels.parallel import blas_one_thread

    model, net, _ = build_pair(name)
    if not _is_chain(model):
        raise SystemExit(f"{name}: layers_vs_torch times chains of layers only")
    modules = modules_of(net)
    x, _ = batch_data(name, batch)
    rows = []
    for i, (layer, module) in enumerate(zip(model.layers, modules, strict=True)):
        fns, out, kernel = layer_functions(layer, module, x, first=i == 0)
        row = {"net": name, "batch": batch, "layer": short_name(layer)}
        row["in"], row["kernel"] = x.shape[1:], kernel
        conv = type(layer).__name__ == "Conv2D"
        bounds = []
        for mode, pair in zip(("train", "predict"), fns, strict=True):
            module.train(mode == "train")
            # a model's step holds the BLAS to one thread (cnnumpy/engine/executor.py);
            # threadpoolctl holds NumPy's OpenBLAS alone, not PyTorch's own threads
            with blas_one_thread():
                ours, theirs = [], []
                for _ in range(repeats):  # the bound measured between the rounds
                    a, b = alternate(pair, batch, 1, min_time)
                    ours += a
                    theirs += b
                    if conv:
                        bounds.append(product_bound(layer, out.shape))
            row[mode] = (
                1e3 * batch / statistics.median(ours),
                1e3 * batch / statistics.median(theirs),
            )
        if conv:
            row["gflop"] = conv_flops(layer, out.shape) / 1e9
            row["bound"] = (min(bounds), statistics.median(bounds), max(bounds))
        rows.append(row)
        x = out
    return rows


def print_rows(rows: list[dict]) -> None:
    print(
        "\n| net | batch | layer | input | kernel (training) "
        "| train ms, cnnumpy / PyTorch | ratio | predict ms, cnnumpy / PyTorch | ratio "
        "| forward GFLOP/s, cnnumpy / PyTorch / product bound |"
    )
    print("|---|---:|---|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        train, predict = r["train"], r["predict"]
        speed = ""
        if "gflop" in r:
            rates = [r["gflop"] / ms * 1e3 for ms in predict]
            low, _, high = r["bound"]
            speed = f"{rates[0]:.0f} / {rates[1]:.0f} / {low:.0f}-{high:.0f}"
        shape = "x".join(str(s) for s in r["in"])
        print(
            f"| {r['net']} | {r['batch']} | {r['layer']} | {shape} | {r['kernel']} "
            f"| {train[0]:.3f} / {train[1]:.3f} | {train[1] / train[0]:.2f} "
            f"| {predict[0]:.3f} / {predict[1]:.3f} | {predict[1] / predict[0]:.2f} "
            f"| {speed} |"
        )
    by_net: dict[tuple, list[dict]] = {}
    for r in rows:
        by_net.setdefault((r["net"], r["batch"]), []).append(r)
    for (net, batch), group in by_net.items():
        ours = sum(r["train"][0] for r in group)
        theirs = sum(r["train"][1] for r in group)
        gap = [(r["train"][0] - r["train"][1], r["layer"]) for r in group]
        gap.sort(reverse=True)
        top = ", ".join(f"{layer} {ms:+.2f} ms" for ms, layer in gap[:3])
        print(
            f"\n{net}, batch {batch}: layers' training sum {ours:.2f} ms, PyTorch "
            f"{theirs:.2f} ms (ratio {theirs / ours:.2f}); largest gaps: {top}"
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=list(NETS), choices=NETS)
    parser.add_argument("--batch", type=int, nargs="+", default=[64])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--min-time", type=float, default=0.05, help="seconds per measurement"
    )
    args = parser.parse_args(argv)
    if min(args.batch) < 1 or args.repeats < 1 or args.min_time <= 0:
        parser.error("--batch and --repeats must be >= 1, --min-time > 0")
    print_machine(machine())
    print(f"one hand-off to the engine's helper thread: {handoff_us():.0f} us")
    rows = []
    for name in args.nets:
        for batch in args.batch:
            done = run(name, batch, args.repeats, args.min_time)
            rows += done
            print(f"{name} batch {batch}: {len(done)} layers timed", flush=True)
    print_rows(rows)


if __name__ == "__main__":
    main()
