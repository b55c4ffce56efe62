"""Seed 001 (Melpy's report): Table 1's loops against NumPy's matrix product, and
the index-array im2col of section 3.1 against the loops and the book's im2col.

The report ran on an Intel i5-12600K with 32 GB; the times printed here are this
machine's.
"""

from __future__ import annotations

import time

import numpy as np
from reproduce import Reproduction

from cnnumpy.textbook.im2col import col2im, im2col
from cnnumpy.textbook.im2col_indices import col2im_indices, im2col_indices
from cnnumpy.textbook.padding import output_size, pad2d


def best_time(fn, budget: float = 0.2, max_calls: int = 50) -> float:
    """The fastest of repeated calls of ``fn``; calls again until ``budget`` seconds
    are spent (a call longer than the budget runs once)."""
    best, spent, calls = float("inf"), 0.0, 0
    while calls == 0 or (spent < budget and calls < max_calls):
        started = time.perf_counter()
        fn()
        took = time.perf_counter() - started
        best, spent, calls = min(best, took), spent + took, calls + 1
    return best


# -- Table 1: a matrix product with three Python loops, against NumPy's ------------
# (rows of A, inner size, columns of B), the notes' loops and NumPy seconds, ratio
TABLE1 = (
    ((100, 10, 100), 0.029, 0.00046, 63.04),
    ((1000, 100, 1000), 10.65, 0.07, 152.14),
    ((1000, 1000, 1000), 124.64, 0.6, 207.73),
)


def matmul_loops(A: list, B: list) -> list:
    """``C = A B`` on lists of lists, one multiply-add per statement: the notes'
    "méthode naïve", every element visited by the interpreter."""
    n, m, p = len(A), len(B), len(B[0])
    C = [[0.0] * p for _ in range(n)]
    for i in range(n):
        for j in range(p):
            total = 0.0
            for k in range(m):
                total += A[i][k] * B[k][j]
            C[i][j] = total
    return C


def time_matmul(shape: tuple[int, int, int], rows: int | None, rng) -> dict:
    """Loops and NumPy on ``A (n, m) @ B (m, p)``, float64.

    With ``rows``, the loops compute only the first ``rows`` rows of the product and
    their time is scaled by ``n / rows``: every row of C costs the same ``m * p``
    multiply-adds. The rows computed are checked against NumPy's.
    """
    n, m, p = shape
    A, B = rng.standard_normal((n, m)), rng.standard_normal((m, p))
    rows = n if rows is None else min(rows, n)
    A_part, B_list = A[:rows].tolist(), B.tolist()
    products: list = []
    loop_s = best_time(lambda: products.append(matmul_loops(A_part, B_list)))
    np.testing.assert_allclose(products[-1], A[:rows] @ B, rtol=1e-9, atol=1e-9)
    loops_s = loop_s * n / rows
    numpy_s = best_time(lambda: A @ B)
    return {
        "shape": list(shape),
        "rows_timed": rows,
        "loops_s": loops_s,
        "numpy_s": numpy_s,
        "speedup": loops_s / numpy_s,
    }


def table1(quick: bool, plan: tuple = ()) -> dict:
    """Table 1 row by row; ``plan`` gives the rows the loops time at each size
    (``None``: all), by default all but 50 of the largest's 1,000 (--quick: the two
    small sizes, 20 rows of the middle one)."""
    plan = plan or ((None, 20) if quick else (None, None, 50))
    rng = np.random.default_rng(0)
    rows = []
    for (shape, t1, t2, ratio), timed in zip(TABLE1, plan, strict=False):
        r = time_matmul(shape, timed, rng)
        n, m, p = shape
        scaled = ""
        if r["rows_timed"] != n:
            scaled = f" (loops: {r['rows_timed']} of {n} rows, times {n / timed:g})"
        print(
            f"   ({n}, {m}) . ({m}, {p}): loops {r['loops_s']:.4g} s, NumPy "
            f"{r['numpy_s']:.3g} s, {r['speedup']:,.0f}x{scaled}; the notes "
            f"{t1:g} / {t2:g} = {ratio:g}x",
            flush=True,
        )
        rows.append(r)
    scaled_sizes = [
        f"{r['rows_timed']} of {r['shape'][0]}"
        for r in rows
        if r["rows_timed"] != r["shape"][0]
    ]
    differences = (
        "NumPy's product in float64 on this machine's BLAS, threads and all (the "
        "notes give neither); loops on Python lists, timed on the first rows of A "
        f"and scaled by the row count where said ({', '.join(scaled_sizes)} rows)"
    )
    if quick:
        differences += "; --quick leaves out 1000x1000x1000"
    return {
        "cnnumpy": "NumPy "
        + ", ".join(f"{r['speedup']:,.0f}x" for r in rows)
        + " faster (loops "
        + ", ".join(f"{r['loops_s']:.3g}" for r in rows)
        + " s; NumPy "
        + ", ".join(f"{r['numpy_s']:.2g}" for r in rows)
        + " s)",
        "differences": differences,
        "rows": rows,
    }


# -- The notes' index-array im2col, timed against the book's and the loops --------
def im2col_loops(xp: np.ndarray, kernel, stride) -> np.ndarray:
    """The column matrix filled one element per statement (the reference)."""
    N, C, Hp, Wp = xp.shape
    (KH, KW), (SH, SW) = kernel, stride
    H_out, W_out = output_size(Hp, KH, SH), output_size(Wp, KW, SW)
    cols = np.empty((C * KH * KW, N * H_out * W_out), dtype=xp.dtype)
    for n in range(N):
        for ho in range(H_out):
            for wo in range(W_out):
                column = (n * H_out + ho) * W_out + wo
                for c in range(C):
                    for kh in range(KH):
                        for kw in range(KW):
                            row = (c * KH + kh) * KW + kw
                            cols[row, column] = xp[n, c, ho * SH + kh, wo * SW + kw]
    return cols


def col2im_loops(cols: np.ndarray, xp_shape, kernel, stride) -> np.ndarray:
    """Every entry of the column matrix added back to its pixel, one at a time."""
    N, C, Hp, Wp = xp_shape
    (KH, KW), (SH, SW) = kernel, stride
    H_out, W_out = output_size(Hp, KH, SH), output_size(Wp, KW, SW)
    xp = np.zeros(xp_shape, dtype=cols.dtype)
    for n in range(N):
        for ho in range(H_out):
            for wo in range(W_out):
                column = (n * H_out + ho) * W_out + wo
                for c in range(C):
                    for kh in range(KH):
                        for kw in range(KW):
                            row = (c * KH + kh) * KW + kw
                            xp[n, c, ho * SH + kh, wo * SW + kw] += cols[row, column]
    return xp


# The inputs of melpy_mnist's two convolutions (2x2, "same": padded by 0 above and
# left, 1 below and right), at the report's batch of 256.
IM2COL_CASES = (
    ("melpy_mnist conv 1", (256, 1, 28, 28)),
    ("melpy_mnist conv 2", (256, 16, 14, 14)),
)
WAYS = (  # name, im2col, col2im
    ("loops", im2col_loops, col2im_loops),
    ("index arrays (the notes)", im2col_indices, col2im_indices),
    ("strided view (the book)", im2col, col2im),
)


def time_im2col(shape: tuple[int, ...], kernel=(2, 2), stride=(1, 1)) -> dict:
    """im2col and col2im of ``shape`` (float32, "same" padding for 2x2) three ways;
    the three results are checked equal before they are timed."""
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    xp = pad2d(x, ((0, 1), (0, 1)))
    cols = {name: fwd(xp, kernel, stride) for name, fwd, _ in WAYS}
    back = {name: bwd(cols[name], xp.shape, kernel, stride) for name, _, bwd in WAYS}
    for name, _, _ in WAYS[1:]:
        np.testing.assert_array_equal(cols[name], cols["loops"])
        np.testing.assert_allclose(back[name], back["loops"], rtol=1e-6, atol=1e-6)
    seconds = {}
    for name, fwd, bwd in WAYS:
        c = cols[name]
        seconds[name] = (
            best_time(lambda f=fwd: f(xp, kernel, stride)),
            best_time(lambda b=bwd, c=c: b(c, xp.shape, kernel, stride)),
        )
    return seconds


def im2col_speed(quick: bool, batch: int | None = None) -> dict:
    """The three im2cols on melpy_mnist's conv inputs (--quick: a batch of 16)."""
    batch = batch or (16 if quick else 256)
    results, summary = {}, []
    for case, shape in IM2COL_CASES:
        shape = (batch, *shape[1:])
        seconds = time_im2col(shape)
        results[case] = {"shape": list(shape), **seconds}
        loops, index, book = (seconds[name] for name, _, _ in WAYS)
        for part, which in (("im2col", 0), ("col2im", 1)):
            print(
                f"   {case} {shape} {part}: loops {loops[which] * 1e3:.1f} ms, "
                f"index arrays {index[which] * 1e3:.2f} ms "
                f"({loops[which] / index[which]:,.0f}x the loops), strided view "
                f"{book[which] * 1e3:.2f} ms ({index[which] / book[which]:.1f}x the "
                "index arrays)",
                flush=True,
            )
        summary.append(
            f"{case} {'x'.join(map(str, shape))}: index arrays "
            f"{loops[0] / index[0]:,.0f}x / {loops[1] / index[1]:,.0f}x faster than "
            f"the loops (im2col / col2im), the strided view {index[0] / book[0]:.1f}x"
            f" / {index[1] / book[1]:.1f}x faster than the index arrays"
        )
    return {
        "cnnumpy": "; ".join(summary),
        "differences": "the notes time no im2col; the three give equal matrices "
        "(checked before timing), float32, best of repeated calls",
        "seconds": results,
    }


# -- Tables 2 to 4: Melpy's selected models, with its settings ---------------------


REPRODUCTIONS = [
    Reproduction(
        "seed001_table1_matmul",
        "seed 001, 3 (Implémentation), Table 1",
        "three loops against NumPy's product: 0.029/0.00046 s = 63x at "
        "100x10·10x100, 10.65/0.07 s = 152x at 1000x100·100x1000, 124.64/0.6 s = "
        "208x at 1000x1000·1000x1000",
        table1,
        minutes=0.3,  # measured: 17 s (loops: 4.4 s at 10^8, 11 s on 50 rows of 10^9)
    ),
    Reproduction(
        "seed001_im2col_indices",
        "seed 001, 3.1 (La méthode Im2Col)",
        "im2col by index arrays (np.repeat / np.tile), col2im by np.add.at, to "
        "replace the loops; no time given",
        im2col_speed,
        minutes=0.2,  # measured: 9 s (mostly the loops on 256 x 16 x 14 x 14)
    ),
]
