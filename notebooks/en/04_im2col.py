# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. From loops to one matrix product: einsum and im2col
#
# Follows seed 001, 3.1 « La méthode Im2Col » and 3.2 « Les couches de convolution »;
# seed 000, III.1.a « Optimisation avec Numpy » (techniques 1 to 4) and III.1.b
# « Batch »; and seed 003's slides on the convolution as a matrix product
# (slides 148-164).
#
# Chapter 3 wrote the convolution as six nested loops. Seed 000 measured what that
# costs: 1662 s for its batch where `einsum` took 3.8 s. Seed 001 goes one step
# further and turns the whole convolution into a single matrix product, by laying
# every window of the input out as a column: im2col. This chapter builds that matrix
# from a real tiny input, checks that every way of computing the convolution gives
# the same numbers, and times them.

# %% tags=["remove-cell"]
# Path set-up for plain-script runs: makes notebooks/companion.py importable.
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
for folder in (HERE.parent, HERE / "notebooks", HERE):
    if (folder / "companion.py").exists() and str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

# %%
import matplotlib.pyplot as plt
import numpy as np
from companion import best_time, draw_array, show

import cnnumpy
from cnnumpy.engine import ops
from cnnumpy.textbook import conv, im2col, im2col_indices, loops, padding

cnnumpy.seed(0)
np.set_printoptions(precision=4, suppress=True, linewidth=100)

# %% [markdown]
# ## Windows as columns
#
# Each output value of a convolution is the scalar product of a filter with one
# window of the (padded) input. If every window, all its channels included, is
# unrolled into a column of a matrix $X_{\text{cols}}$, and every filter into a row of
# $W_{\text{mat}}$, then all the scalar products of all the filters with all the
# windows of all the images are one matrix product:
#
# $$ \underbrace{\text{out}}_{F \times (N H_o W_o)} =
#    \underbrace{W_{\text{mat}}}_{F \times (C K_H K_W)} \;
#    \underbrace{X_{\text{cols}}}_{(C K_H K_W) \times (N H_o W_o)} + b $$
#
# Seed 001's example: one RGB image of $4 \times 4$ pixels, windows of $2 \times 2$,
# stride 1. As in its Figure 8, each pixel holds its own position number, so the
# matrix shows where each entry is read from.

# %%
positions = np.arange(3 * 4 * 4, dtype=float).reshape(1, 3, 4, 4)
cols = im2col.im2col(positions, (2, 2), (1, 1))
print(
    "image",
    positions.shape,
    "-> columns",
    cols.shape,
    "(C*KH*KW rows, N*Ho*Wo columns)",
)
print(cols.astype(int))

# %% [markdown]
# The rows go channel by channel (red, green, blue), and within a channel follow the
# window's pixels row by row; the columns are the $3 \times 3 = 9$ window positions.
# The first column reads pixels 0, 1, 4, 5 of each channel (red: 0, 1, 4, 5; green:
# 16, 17, 20, 21; ...):

# %%
fig, axes = plt.subplot_mosaic(
    [["red", "green", "blue"], ["cols", "cols", "cols"]],
    figsize=(9, 9),
    height_ratios=[1, 2.4],
)
for c, colour in enumerate(("red", "green", "blue")):
    draw_array(
        axes[colour],
        positions[0, c],
        f"channel {c} ({colour})",
        boxes=[(0, 0, 2, 2, "tab:red"), (1, 2, 2, 2, "tab:orange")],
        fmt="{:.0f}",
    )
draw_array(
    axes["cols"],
    cols,
    "im2col: 12 rows x 9 columns",
    boxes=[(0, 0, 12, 1, "tab:red"), (0, 5, 12, 1, "tab:orange")],
    fmt="{:.0f}",
)
fig.tight_layout()
plt.show()

# %% [markdown]
# The book's `im2col` does not copy the windows one by one: it first takes a view of
# the input in which every window is already there (only the strides of the array
# change, no data moves), then copies that view once into the column matrix.

# %%
show(im2col.window_view)

# %%
show(im2col.im2col)

# %% [markdown]
# Seed 001 builds the same matrix differently: it computes the index arrays $k$ (the
# channel), $i$ (the row) and $j$ (the column) of every entry with `np.repeat` and
# `np.tile` (its `get_indices`), then gathers `images[:, k, i, j]`. The book keeps
# that version beside the notes, and the two give the same matrix:

# %%
show(im2col_indices.window_indices)

# %%
same = np.array_equal(cols, im2col_indices.im2col_indices(positions, (2, 2), (1, 1)))
print("seed 001's index arrays give the same matrix:", same)

# %% [markdown]
# ## Seed 003's matrix, and the product
#
# Seed 003 writes the $3 \times 3$ "valid" convolution of a $4 \times 4$ input
# $X_0 \dots X_{15}$ as a product $[W_0 \dots W_8] \times X$: four outputs, one column
# of nine inputs each. The columns of im2col, printed as rows:

# %%
x16 = np.arange(16.0).reshape(1, 1, 4, 4)
for n, column in enumerate(im2col.im2col(x16, (3, 3), (1, 1)).T):
    print(f"Y{n}: X" + ", X".join(str(int(v)) for v in column))

# %% [markdown]
# (The slides' matrix ends the column of $Y_2$ with $X_{11}, X_{12}, X_{13}$; their
# own formula for $Y_2$, slide 152, ends with $X_{12}, X_{13}, X_{14}$, as above.)
#
# The book's convolution is then: pad, im2col, and one product, with the bias riding
# along as a last column of the weights times a row of ones:

# %%
show(conv.conv2d_forward)

# %% [markdown]
# ## col2im: the way back
#
# The backward pass needs the opposite move: a gradient per column entry must be added
# back onto the pixel it was read from. Windows overlap, so a pixel read by several
# windows receives the sum of their gradients (seed 001, Figure 9), which is exactly
# what the chain rule asks for.

# %%
show(im2col.col2im)

# %% [markdown]
# Sending a column matrix full of ones back with col2im counts how many windows read
# each pixel; and col2im is the transpose of im2col, so for any $x$ and any $c$,
# $\langle \mathrm{im2col}(x), c \rangle = \langle x, \mathrm{col2im}(c) \rangle$:

# %%
ones = np.ones_like(cols)
print("windows reading each pixel (channel 0):")
print(im2col.col2im(ones, positions.shape, (2, 2), (1, 1))[0, 0])

rng = np.random.default_rng(0)
x_any = rng.standard_normal((2, 3, 5, 5))
c_any = rng.standard_normal((3 * 3 * 3, 2 * 3 * 3))
left = np.sum(im2col.im2col(x_any, (3, 3), (1, 1)) * c_any)
right = np.sum(x_any * im2col.col2im(c_any, x_any.shape, (3, 3), (1, 1)))
print(f"\n<im2col(x), c> = {left:.10f}\n<x, col2im(c)> = {right:.10f}")

# %% [markdown]
# ## Five ways, the same numbers
#
# A small batch: 4 images of 3 channels, $16 \times 16$, 8 filters $3 \times 3$,
# padding 1, stride 1. The same convolution computed
#
# 1. by the book's loops (seed 000's "technique 1");
# 2. by `einsum` at each output position (seed 000's "technique 4": one call per
#    position, the windows' sums done by NumPy);
# 3. by one `einsum` over the view of all the windows (no Python loop left);
# 4. by im2col and one matrix product (the book, seed 001);
# 5. by cnnumpy's engine, whose kernels the library uses when it is not switched off.

# %%
N, C, H, W, F, K = 4, 3, 16, 16, 8, 3
x = rng.standard_normal((N, C, H, W))
w = rng.standard_normal((F, C, K, K)) * 0.1
b = rng.standard_normal(F) * 0.1
xp = padding.pad2d(x, 1)
H_out, W_out = padding.output_size_2d((H, W), (K, K), (1, 1), 1)


def by_loops():
    return loops.conv2d_forward_loops(x, w, b, 1, 1)[0]


def by_einsum_per_position():
    out = np.empty((N, F, H_out, W_out))
    for n in range(N):
        for i in range(H_out):
            for j in range(W_out):
                window = xp[n, :, i : i + K, j : j + K]
                out[n, :, i, j] = np.einsum("...ijk,ijk", w, window) + b
    return out


def by_einsum_on_windows():
    windows = im2col.window_view(xp, (K, K), (1, 1))  # (C, KH, KW, N, Ho, Wo)
    return np.einsum("fcuv,cuvnhw->nfhw", w, windows) + b[:, None, None]


def by_im2col():
    return conv.conv2d_forward(x, w, b, 1, 1)[0]


def by_engine():
    return ops.conv2d.forward(x, w, b, 1, 1)[0]


ways = {
    "loops (technique 1)": by_loops,
    "einsum per position (technique 4)": by_einsum_per_position,
    "einsum on the window view": by_einsum_on_windows,
    "im2col + one product (the book)": by_im2col,
    "engine": by_engine,
}
reference = by_loops()
for name, way in ways.items():
    gap = np.max(np.abs(way() - reference))
    print(f"{name:<35} largest gap to the loops: {gap:.1e}")

# %% [markdown]
# The gaps are rounding errors (sums taken in a different order). Now the timing of
# the forward pass, the fastest of a few runs each:

# %%
timings = {}
for name, way in ways.items():
    timings[name] = best_time(way, repeat=1 if name.startswith("loops") else 5)
print(f"forward pass, N={N}, {C}x{H}x{W}, {F} filters {K}x{K}")
print(f"{'way':<35}{'ms':>10}{'x im2col':>10}")
for name, seconds in timings.items():
    ratio = seconds / timings["im2col + one product (the book)"]
    print(f"{name:<35}{seconds * 1e3:>10.3f}{ratio:>10.1f}")

# %%
fig, ax = plt.subplots(figsize=(7, 2.8))
ax.barh(list(timings), [t * 1e3 for t in timings.values()], color="tab:blue")
ax.set_xscale("log")
ax.set_xlabel("milliseconds (log scale), forward pass")
ax.invert_yaxis()
ax.set_title("One convolution, five ways")
fig.tight_layout()
plt.show()

# %% [markdown]
# The numbers change with the machine, the order does not: every Python loop that
# remains costs a factor, and im2col removes the last one by handing all the
# multiply-adds to one matrix product. What it pays for that is memory: the column
# matrix holds each pixel once per window that reads it, here $K^2 = 9$ times.
#
# Chapter 5 uses the same columns for pooling.
