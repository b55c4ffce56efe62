"""The technique lab: the notes' ways of computing a layer, timed side by side.

Seed 000 (III. 1, "Optimisation avec numpy") times each layer's ``front`` and ``back``
separately with four techniques: 1 "maximum de boucles", 2 "méthode de base + boucle
sur B" (a loop over the outputs, ``np.sum`` of a window), 3 "einsum + boucle sur B"
(a loop, one ``einsum`` each), 4 "einsum" (one call for the whole batch); seed 001
(Table 1) compares loops with NumPy's matrix product and then vectorises convolution
and pooling with im2col (3.1-3.3). Here every technique is a forward function
``(*args) -> (y, cache)`` and a backward function ``(dout, cache) -> grads``, for
dense, convolution (stride 1, zero padding ``P``) and 2x2 max pooling:

| technique     | layers      | how                                                   |
|---------------|-------------|-------------------------------------------------------|
| loops         | all         | every multiply-add (comparison) is a Python statement |
|               |             | (seed 000, technique 1; :mod:`cnnumpy.textbook.loops`)|
| loops+np.sum  | dense, conv | a Python loop over the outputs, ``np.sum`` of one     |
|               |             | window (technique 2)                                  |
| loops+np.max  | pool        | a loop over output positions, ``np.max`` of one       |
|               |             | window of the whole batch (seed 000, II.2.c)          |
| einsum/pos    | dense, conv | a loop over output positions, one ``einsum`` each:    |
|               |             | dense, the rows (technique 3, "einsum + boucle sur    |
|               |             | B"); conv, the pixels ``(i, j)`` (seed 000, II.2.b)   |
| einsum        | dense, conv | ONE ``einsum`` (conv: over a strided view of every    |
|               |             | window; dx as a full convolution) (technique 4)       |
| max/view      | pool        | ONE max over a strided view (2x2 tiles, no copy)      |
| book          | all         | :mod:`cnnumpy.textbook`, the reading path: dense, the |
|               |             | matrix product of seed 001 Table 1; conv, im2col and  |
|               |             | ONE product (seed 001, 3.1; dx as the full            |
|               |             | convolution); pool, im2col and ONE max with the mask  |
|               |             | (seed 001, 3.3)                                       |
| fast          | all         | cnnumpy's engine: threads, chunks, the wide grid ...  |

``run_lab()`` times the forward and the backward pass of every technique apart, checks
both against the loops and returns the rows; ``format_table(rows)`` prints them like
the notes: seconds and speed-up over the loops, forward, backward and total.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from cnnumpy.engine.kernels.dense import dense_backward, dense_forward
from cnnumpy.lab import techniques_conv as tc
from cnnumpy.lab import techniques_pool as tp
from cnnumpy.textbook import dense as book_dense
from cnnumpy.textbook import loops
from cnnumpy.textbook.padding import output_size

DEFAULT_SIZES = {
    "dense": {"N": 8, "I": 256, "J": 64},
    "conv": {"N": 4, "C": 3, "H": 16, "F": 8, "K": 3, "P": 1},
    "pool": {"N": 4, "C": 4, "H": 16},
}
# Layers of the notes' networks, 64 images: seed 000's CIFAR-10 convolution (16 -> 20
# maps, 5x5, 16x16), Melpy's 6272 -> 128 dense layer, a 2x2 max-pool of 16 32x32 maps.
NETWORK_SIZES = {
    "dense": {"N": 64, "I": 6272, "J": 128},
    "conv": {"N": 64, "C": 16, "H": 16, "F": 20, "K": 5, "P": 2},
    "pool": {"N": 64, "C": 16, "H": 32},
}
# Python loops over output positions: minutes per call at network sizes.
LOOPS = ("loops", "loops+np.sum", "einsum/pos")
# What every technique returns, forward output first, then the backward's gradients.
OUTPUTS = {"dense": ("y", "dx", "dW", "db"), "conv": ("y", "dx", "dw", "db")}
OUTPUTS["pool"] = ("y", "dx")


class Technique(NamedTuple):
    """One way of computing a layer: ``forward(*args) -> (y, cache)`` and
    ``backward(dout, cache) -> grads`` (what the forward kept is all it gets)."""

    forward: Callable
    backward: Callable


# -- dense: y = x W + b (technique 1, the loops, is the book's) ---------------------
def dense_loops_sum_forward(x, W, b):
    N, J = x.shape[0], W.shape[1]
    y = np.zeros((N, J), dtype=x.dtype)
    for n in range(N):
        for j in range(J):
            y[n, j] = np.sum(x[n] * W[:, j]) + b[j]
    return y, (x, W)


def dense_loops_sum_backward(dout, cache):
    x, W = cache
    (N, I), J = x.shape, W.shape[1]  # noqa: E741
    dx, dW = np.zeros_like(x), np.zeros_like(W)
    for n in range(N):  # one loop per output of each gradient, np.sum inside
        for i in range(I):
            dx[n, i] = np.sum(dout[n] * W[i])
    for i in range(I):
        for j in range(J):
            dW[i, j] = np.sum(x[:, i] * dout[:, j])
    return dx, dW, np.sum(dout, axis=0)


def dense_einsum_pos_forward(x, W, b):
    y = np.empty((x.shape[0], W.shape[1]), dtype=x.dtype)
    for n in range(x.shape[0]):  # "einsum + boucle sur B"
        y[n] = np.einsum("i,ij->j", x[n], W) + b
    return y, (x, W)


def dense_einsum_pos_backward(dout, cache):
    x, W = cache
    dx, dW = np.empty_like(x), np.zeros_like(W)
    for n in range(x.shape[0]):
        dx[n] = np.einsum("j,ij->i", dout[n], W)
        dW += np.einsum("i,j->ij", x[n], dout[n])
    return dx, dW, np.sum(dout, axis=0)


def dense_einsum_forward(x, W, b):
    return np.einsum("ni,ij->nj", x, W) + b, (x, W)


def dense_einsum_backward(dout, cache):
    x, W = cache
    dx = np.einsum("nj,ij->ni", dout, W)
    return dx, np.einsum("ni,nj->ij", x, dout), np.einsum("nj->j", dout)


TECHNIQUES: dict[str, dict[str, Technique]] = {
    "dense": {
        "loops": Technique(loops.dense_forward_loops, loops.dense_backward_loops),
        "loops+np.sum": Technique(dense_loops_sum_forward, dense_loops_sum_backward),
        "einsum/pos": Technique(dense_einsum_pos_forward, dense_einsum_pos_backward),
        "einsum": Technique(dense_einsum_forward, dense_einsum_backward),
        "book": Technique(book_dense.dense_forward, book_dense.dense_backward),
        "fast": Technique(dense_forward, dense_backward),
    },
    "conv": {
        "loops": Technique(tc.conv_loops_forward, tc.conv_loops_backward),
        "loops+np.sum": Technique(
            tc.conv_loops_sum_forward, tc.conv_loops_sum_backward
        ),
        "einsum/pos": Technique(
            tc.conv_einsum_pos_forward, tc.conv_einsum_pos_backward
        ),
        "einsum": Technique(tc.conv_einsum_forward, tc.conv_einsum_backward),
        "book": Technique(tc.conv_book_forward, tc.conv_book_backward),
        "fast": Technique(tc.conv_fast_forward, tc.conv_fast_backward),
    },
    "pool": {
        "loops": Technique(tp.pool_loops_forward, tp.pool_loops_backward),
        "loops+np.max": Technique(
            tp.pool_loops_max_forward, tp.pool_loops_max_backward
        ),
        "max/view": Technique(tp.pool_view_forward, tp.pool_view_backward),
        "book": Technique(tp.pool_book_forward, tp.pool_book_backward),
        "fast": Technique(tp.pool_fast_forward, tp.pool_fast_backward),
    },
}


def make_inputs(
    layer: str, sizes: dict | None = None, dtype=np.float64, seed: int = 0
) -> tuple[tuple, np.ndarray]:
    """``(args, dout)``: what every forward of ``layer`` takes, and the gradient of the
    error with respect to its output, seeded."""
    s = {**DEFAULT_SIZES[layer], **(sizes or {})}
    rng = np.random.default_rng(seed)

    def r(*shape):
        return rng.standard_normal(shape).astype(dtype)

    if layer == "dense":
        return (r(s["N"], s["I"]), r(s["I"], s["J"]), r(s["J"])), r(s["N"], s["J"])
    if layer == "conv":
        Ho = output_size(s["H"], s["K"], 1, s["P"], s["P"])
        x, w = r(s["N"], s["C"], s["H"], s["H"]), r(s["F"], s["C"], s["K"], s["K"])
        return (x, w, r(s["F"]), s["P"]), r(s["N"], s["F"], Ho, Ho)
    Ho = s["H"] // 2
    return (r(s["N"], s["C"], s["H"], s["H"]),), r(s["N"], s["C"], Ho, Ho)


def time_technique(
    technique: Technique, args: tuple, dout: np.ndarray, repeats: int
) -> tuple[float, float, tuple]:
    """Best-of-``repeats`` seconds of the forward and of the backward pass (each
    backward gets the cache of the forward just before it), and the last outputs
    ``(y, *grads)``."""
    best_f = best_b = float("inf")
    outputs: tuple = ()
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        y, cache = technique.forward(*args)
        t1 = time.perf_counter()
        grads = technique.backward(dout, cache)
        t2 = time.perf_counter()
        best_f, best_b = min(best_f, t1 - t0), min(best_b, t2 - t1)
        outputs = (y, *grads)
    return best_f, best_b, outputs


def _max_diff(layer: str, name: str, got: tuple, want: tuple, rtol: float) -> float:
    """The largest difference to the loops, relative to the largest value (at least
    1); AssertionError naming the layer, technique and output beyond ``10 * rtol``."""
    worst = 0.0
    for label, g, w in zip(OUTPUTS[layer], got, want, strict=True):
        if g.shape != w.shape:
            raise AssertionError(f"{layer}/{name}: {label} {g.shape} != {w.shape}")
        scale = max(float(np.abs(w).max(initial=0.0)), 1.0)
        diff = float(np.abs(g - w).max(initial=0.0)) / scale
        if not diff <= rtol * 10:
            raise AssertionError(f"{layer}/{name}: {label} differs by {diff:.3g}")
        worst = max(worst, diff)
    return worst


def run_lab(
    layers=("dense", "conv", "pool"),
    sizes: dict | None = None,
    repeats: int = 3,
    dtype=np.float64,
    rtol: float = 1e-6,
    network: bool = False,
) -> list[dict]:
    """Time the forward and the backward pass of every technique of every layer, check
    both against the loops, and return one row per technique.

    Args:
        layers: among ``"dense"``, ``"conv"``, ``"pool"``.
        sizes: per layer, overrides of :data:`DEFAULT_SIZES`, e.g.
            ``{"conv": {"N": 4, "H": 16}}``.
        repeats: the best of ``repeats`` runs is kept, forward and backward apart.
        dtype: float64 (default) or float32.
        rtol: relative tolerance of the agreement check (loosen it for float32).
        network: :data:`NETWORK_SIZES` instead of :data:`DEFAULT_SIZES` (``sizes``
            still overrides), without the Python loops (:data:`LOOPS`): speed-ups and
            the check are then relative to the first technique left (einsum for dense
            and conv, the loop over positions with ``np.max`` for pooling).

    Returns:
        rows ``{"layer", "technique", "forward_s", "forward_speedup", "backward_s",
        "backward_speedup", "seconds", "speedup", "max_diff", "agrees"}``: speed-ups
        are relative to the pure loops, ``seconds``/``speedup`` are the totals
        (forward + backward), ``max_diff`` the largest difference to the loops over
        the output and every gradient (relative to the largest value, at least 1).
        Raises AssertionError if a technique disagrees.
    """
    rows = []
    for layer in layers:
        layer_sizes = {**(NETWORK_SIZES[layer] if network else {})}
        layer_sizes |= (sizes or {}).get(layer, {})
        args, dout = make_inputs(layer, layer_sizes, dtype)
        base = reference = None
        for name, technique in TECHNIQUES[layer].items():
            if network and name in LOOPS:
                continue
            fwd, bwd, outputs = time_technique(technique, args, dout, repeats)
            if reference is None:
                base, reference = (fwd, bwd), outputs
            row = {"layer": layer, "technique": name}
            row |= {"forward_s": fwd, "forward_speedup": base[0] / fwd}
            row |= {"backward_s": bwd, "backward_speedup": base[1] / bwd}
            row |= {"seconds": fwd + bwd, "speedup": sum(base) / (fwd + bwd)}
            row["max_diff"] = _max_diff(layer, name, outputs, reference, rtol)
            rows.append({**row, "agrees": True})
    return rows


def format_table(rows: list[dict]) -> str:
    """The rows as the notes' tables: for the forward pass, the backward pass and both,
    the best time and the speed-up over the pure loops; then the largest difference
    to the loops. Columns are padded so that the table reads in a terminal too."""
    head = ["layer", "technique", "forward (s)", "speed-up", "backward (s)"]
    head += ["speed-up", "total (s)", "speed-up", "max diff"]
    body = []
    for r in rows:
        line = [r["layer"], r["technique"]]
        for key in ("forward", "backward", None):
            seconds = r[f"{key}_s"] if key else r["seconds"]
            speedup = r[f"{key}_speedup"] if key else r["speedup"]
            line += [f"{seconds:.6f}", f"{speedup:,.1f}x"]
        body.append([*line, f"{r.get('max_diff', 0.0):.1e}"])
    widths = [max(len(c) for c in col) for col in zip(head, *body, strict=True)]

    def fmt(cells: list[str]) -> str:
        left = [c.ljust(w) for c, w in zip(cells[:2], widths, strict=False)]
        right = [c.rjust(w) for c, w in zip(cells[2:], widths[2:], strict=True)]
        return "| " + " | ".join(left + right) + " |"

    rule = ["-" * (w + 2) for w in widths[:2]]
    rule += ["-" * (w + 1) + ":" for w in widths[2:]]
    lines = [fmt(head), "|" + "|".join(rule) + "|"]
    return "\n".join(lines + [fmt(b) for b in body])
