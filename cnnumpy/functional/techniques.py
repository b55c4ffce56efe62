"""The technique lab: the notes' ways of computing a layer, timed side by side.

Seed 000 (III. 1, "Optimisation avec numpy") times four techniques per layer: 1 the
maximum of Python loops, 2 loops over the outputs with ``np.sum`` of a window,
3 ``np.sum`` / 4 ``einsum`` over whole arrays; seed 001 (Table 1) compares loops with
NumPy's matrix product and introduces im2col. This module writes each technique for
dense, convolution (stride 1, zero padding ``P``) and 2x2 max pooling, forward and
backward, checks that all give the same numbers, and times them:

| technique     | how                                                             |
|---------------|-----------------------------------------------------------------|
| loops         | every multiply-add is a Python statement (seed 000, technique 1)|
| loops+np.sum  | a Python loop over outputs, ``np.sum`` of a window (technique 2) |
| einsum/pos    | a loop over output positions, one ``einsum`` each (technique 4) |
| einsum        | ONE ``einsum`` over a strided view of every window              |
| im2col+matmul | windows copied as columns, ONE matrix product (seed 001)        |
| fast          | cnnumpy's kernel (chunked im2col, GEMM, threads: see conv.py)    |

``run_lab()`` returns the rows; ``format_table(rows)`` prints them like the notes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from cnnumpy.functional.conv import conv2d_backward, conv2d_forward
from cnnumpy.functional.dense import dense_backward, dense_forward
from cnnumpy.functional.im2col import col2im, im2col, window_view
from cnnumpy.functional.pool import maxpool2d_backward, maxpool2d_forward

DEFAULT_SIZES = {
    "dense": {"N": 8, "I": 256, "J": 64},
    "conv": {"N": 4, "C": 3, "H": 16, "F": 8, "K": 3, "P": 1},
    "pool": {"N": 4, "C": 4, "H": 16},
}


# -- dense: y = x W + b ---------------------------------------------------------------
def dense_loops(x, W, b, dout):
    N, I = x.shape  # noqa: E741 (the notes name the inputs I)
    J = W.shape[1]
    y, dx, dW = np.zeros((N, J)), np.zeros((N, I)), np.zeros((I, J))
    for n in range(N):
        for j in range(J):
            y[n, j] = b[j]
            for i in range(I):
                y[n, j] += x[n, i] * W[i, j]
                dx[n, i] += dout[n, j] * W[i, j]
                dW[i, j] += x[n, i] * dout[n, j]
    return y, (dx, dW)


def dense_loops_sum(x, W, b, dout):
    N, J = x.shape[0], W.shape[1]
    y, dx, dW = np.zeros((N, J)), np.zeros_like(x), np.zeros_like(W)
    for n in range(N):
        for j in range(J):
            y[n, j] = np.sum(x[n] * W[:, j]) + b[j]
            dx[n] += dout[n, j] * W[:, j]
            dW[:, j] += x[n] * dout[n, j]
    return y, (dx, dW)


def dense_einsum(x, W, b, dout):
    y = np.einsum("ni,ij->nj", x, W) + b
    return y, (np.einsum("nj,ij->ni", dout, W), np.einsum("ni,nj->ij", x, dout))


def dense_fast(x, W, b, dout):
    y, cache = dense_forward(x, W, b)
    dx, dW, _ = dense_backward(dout, cache)
    return y, (dx, dW)


# -- convolution, stride 1, zero padding P ---------------------------------------------
def _pad(x, P):
    return np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))


def conv_loops(x, w, b, dout, P):
    N, C, _, _ = x.shape
    F, _, K, _ = w.shape
    xp = _pad(x, P)
    Ho, Wo = dout.shape[2:]
    y, dxp, dw = np.zeros(dout.shape), np.zeros(xp.shape), np.zeros(w.shape)
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    y[n, f, i, j] = b[f]
                    for c in range(C):
                        for u in range(K):
                            for v in range(K):
                                y[n, f, i, j] += w[f, c, u, v] * xp[n, c, i + u, j + v]
                                dw[f, c, u, v] += (
                                    xp[n, c, i + u, j + v] * dout[n, f, i, j]
                                )
                                dxp[n, c, i + u, j + v] += (
                                    w[f, c, u, v] * dout[n, f, i, j]
                                )
    return y, (dxp[:, :, P : P + x.shape[2], P : P + x.shape[3]], dw)


def conv_loops_sum(x, w, b, dout, P):
    N, F, Ho, Wo = dout.shape
    K = w.shape[2]
    xp = _pad(x, P)
    y, dxp, dw = np.zeros(dout.shape), np.zeros(xp.shape), np.zeros(w.shape)
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    window = xp[n, :, i : i + K, j : j + K]
                    y[n, f, i, j] = np.sum(w[f] * window) + b[f]
                    dw[f] += window * dout[n, f, i, j]
                    dxp[n, :, i : i + K, j : j + K] += w[f] * dout[n, f, i, j]
    return y, (dxp[:, :, P : P + x.shape[2], P : P + x.shape[3]], dw)


def conv_einsum_per_position(x, w, b, dout, P):
    N, F, Ho, Wo = dout.shape
    K = w.shape[2]
    xp = _pad(x, P)
    y, dxp, dw = np.zeros(dout.shape), np.zeros(xp.shape), np.zeros(w.shape)
    for i in range(Ho):
        for j in range(Wo):
            window = xp[:, :, i : i + K, j : j + K]  # (N, C, K, K), the whole batch
            y[:, :, i, j] = np.einsum("fcuv,ncuv->nf", w, window) + b
            dw += np.einsum("ncuv,nf->fcuv", window, dout[:, :, i, j])
            dxp[:, :, i : i + K, j : j + K] += np.einsum(
                "fcuv,nf->ncuv", w, dout[:, :, i, j]
            )
    return y, (dxp[:, :, P : P + x.shape[2], P : P + x.shape[3]], dw)


def conv_einsum(x, w, b, dout, P):
    K = w.shape[2]
    xp = _pad(x, P)
    windows = window_view(xp, (K, K), (1, 1))  # (C, K, K, N, Ho, Wo), no copy
    y = np.einsum("fcuv,cuvnij->nfij", w, windows, optimize=True) + b.reshape(-1, 1, 1)
    dw = np.einsum("cuvnij,nfij->fcuv", windows, dout, optimize=True)
    # dx: the full convolution of dout with the kernels rotated by 180 degrees
    gp = _pad(dout, K - 1 - P)
    gwin = window_view(gp, (K, K), (1, 1))
    dx = np.einsum("fcuv,fuvnij->ncij", w[:, :, ::-1, ::-1], gwin, optimize=True)
    return y, (dx, dw)


def conv_im2col(x, w, b, dout, P):
    F, C, K, _ = w.shape
    xp = _pad(x, P)
    cols = im2col(xp, (K, K), (1, 1))  # (C*K*K, N*Ho*Wo)
    N, _, Ho, Wo = dout.shape
    y = (
        (w.reshape(F, -1) @ cols + b[:, None])
        .reshape(F, N, Ho, Wo)
        .transpose(1, 0, 2, 3)
    )
    g = dout.transpose(1, 0, 2, 3).reshape(F, -1)
    dw = (g @ cols.T).reshape(w.shape)
    dxp = col2im(w.reshape(F, -1).T @ g, xp.shape, (K, K), (1, 1))
    return y, (dxp[:, :, P : P + x.shape[2], P : P + x.shape[3]], dw)


def conv_fast(x, w, b, dout, P):
    y, cache = conv2d_forward(x, w, b, 1, P)
    dx, dw, _ = conv2d_backward(dout, cache)
    return y, (dx, dw)


# -- max pooling 2x2, stride 2 ---------------------------------------------------
def pool_loops(x, dout):
    N, C, H, W = x.shape
    y, dx = np.zeros((N, C, H // 2, W // 2)), np.zeros(x.shape)
    for n in range(N):
        for c in range(C):
            for i in range(H // 2):
                for j in range(W // 2):
                    best, bi, bj = -np.inf, 0, 0
                    for u in range(2):
                        for v in range(2):
                            if x[n, c, 2 * i + u, 2 * j + v] > best:
                                best, bi, bj = x[n, c, 2 * i + u, 2 * j + v], u, v
                    y[n, c, i, j] = best
                    dx[n, c, 2 * i + bi, 2 * j + bj] = dout[n, c, i, j]
    return y, (dx,)


def pool_loops_max(x, dout):
    N, C, H, W = x.shape
    y, dx = np.zeros((N, C, H // 2, W // 2)), np.zeros(x.shape)
    for i in range(H // 2):
        for j in range(W // 2):
            window = x[:, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].reshape(N, C, 4)
            y[:, :, i, j] = window.max(axis=2)
            first = window.argmax(axis=2)  # first maximum, like PyTorch
            block = np.zeros((N, C, 4))
            np.put_along_axis(block, first[..., None], dout[:, :, i, j, None], axis=2)
            dx[:, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2] = block.reshape(N, C, 2, 2)
    return y, (dx,)


def pool_fast(x, dout):
    y, cache = maxpool2d_forward(x, 2, 2)
    return y, (maxpool2d_backward(dout, cache),)


TECHNIQUES: dict[str, dict[str, Callable]] = {
    "dense": {
        "loops": dense_loops,
        "loops+np.sum": dense_loops_sum,
        "einsum": dense_einsum,
        "fast": dense_fast,
    },
    "conv": {
        "loops": conv_loops,
        "loops+np.sum": conv_loops_sum,
        "einsum/pos": conv_einsum_per_position,
        "einsum": conv_einsum,
        "im2col+matmul": conv_im2col,
        "fast": conv_fast,
    },
    "pool": {"loops": pool_loops, "loops+np.max": pool_loops_max, "fast": pool_fast},
}


def make_inputs(layer: str, sizes: dict | None = None, dtype=np.float64, seed: int = 0):
    """The arguments every technique of ``layer`` takes, seeded."""
    s = {**DEFAULT_SIZES[layer], **(sizes or {})}
    rng = np.random.default_rng(seed)

    def r(*shape):
        return rng.standard_normal(shape).astype(dtype)

    if layer == "dense":
        return r(s["N"], s["I"]), r(s["I"], s["J"]), r(s["J"]), r(s["N"], s["J"])
    if layer == "conv":
        Ho = s["H"] + 2 * s["P"] - s["K"] + 1
        return (
            r(s["N"], s["C"], s["H"], s["H"]),
            r(s["F"], s["C"], s["K"], s["K"]),
            r(s["F"]),
            r(s["N"], s["F"], Ho, Ho),
            s["P"],
        )
    return r(s["N"], s["C"], s["H"], s["H"]), r(
        s["N"], s["C"], s["H"] // 2, s["H"] // 2
    )


def _best_time(fn: Callable, args: tuple, repeats: int) -> tuple[float, tuple]:
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best, result


def run_lab(
    layers=("dense", "conv", "pool"),
    sizes: dict | None = None,
    repeats: int = 3,
    dtype=np.float64,
    rtol: float = 1e-6,
) -> list[dict]:
    """Time every technique of every layer (forward and backward together), check
    they agree, and return one row per technique.

    Args:
        layers: among ``"dense"``, ``"conv"``, ``"pool"``.
        sizes: per layer, overrides of :data:`DEFAULT_SIZES`, e.g.
            ``{"conv": {"N": 4, "H": 16}}``.
        repeats: the best of ``repeats`` runs is kept.
        dtype: float64 (default) or float32.
        rtol: relative tolerance of the agreement check (loosen it for float32).

    Returns:
        rows ``{"layer", "technique", "seconds", "speedup", "agrees"}``; ``speedup``
        is relative to the pure loops. Raises AssertionError if a technique disagrees.
    """
    rows = []
    for layer in layers:
        args = make_inputs(layer, (sizes or {}).get(layer), dtype)
        reference = None
        for name, fn in TECHNIQUES[layer].items():
            seconds, (y, grads) = _best_time(fn, args, repeats)
            if reference is None:
                reference, base = (y, grads), seconds
            for got, want in zip(
                (y, *grads), (reference[0], *reference[1]), strict=True
            ):
                scale = max(float(np.abs(want).max()), 1.0)
                assert np.abs(got - want).max() <= rtol * scale * 10, (layer, name)
            rows.append(
                {
                    "layer": layer,
                    "technique": name,
                    "seconds": seconds,
                    "speedup": base / seconds,
                    "agrees": True,
                }
            )
    return rows


def format_table(rows: list[dict]) -> str:
    """The rows as the notes' table: time and speed-up over the pure loops."""
    lines = [
        "| layer | technique | forward+backward (s) | speed-up |",
        "|---|---|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['layer']} | {r['technique']} | {r['seconds']:.6f} | "
            f"{r['speedup']:.1f}x |"
        )
    return "\n".join(lines)
