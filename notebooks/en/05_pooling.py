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
# # 5. Pooling: max and average, forward and backward
#
# Follows seed 003, « Pooling », « Max pooling » and « Mean pooling » (slides
# 139-144); seed 000, I.3.b « Pooling »; and seed 001, 2.3 « Les couches de pooling »
# (2.3.1 forward, 2.3.2 backward) and 3.3.
#
# A pooling layer shrinks each activation map: it slides a window over every channel
# and replaces each window by one value, its maximum or its mean. It has no
# parameters; its backward pass only has to send each window's gradient back to the
# inputs that made the output.

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
from companion import draw_array, show

import cnnumpy
from cnnumpy.layers import MaxPool2D
from cnnumpy.textbook import padding, pool

cnnumpy.seed(0)
np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## Forward: one value per window
#
# Seed 000 writes a pooling output as a function of the window it covers, for max
# pooling the largest of its entries:
#
# $$ y_{c,h,w} = \max_{0 \le i < K_H,\; 0 \le j < K_W} x_{c,\; hS + i,\; wS + j}
#    \qquad\text{or}\qquad
#    y_{c,h,w} = \frac{1}{K_H K_W} \sum_{i, j} x_{c,\; hS + i,\; wS + j} $$
#
# and its size with the convolution's rule, without padding:
#
# $$ H_{\text{out}} = \frac{H - F}{S} + 1 $$
#
# The book computes it the way seed 001 does (3.3): im2col lays every window of every
# channel out as a column, and the pooling is a max (or a mean) down each column. The
# max also remembers *where* each maximum was, the mask the backward pass needs.

# %%
show(pool.maxpool2d_forward)

# %%
show(pool.avgpool2d_forward)

# %% [markdown]
# ## The slides' example
#
# Seed 003 pools an $8 \times 8$ map with "valid" $2 \times 2$ windows and a stride of
# 2, so $(8 - 2)/2 + 1 = 4$ values a side:

# %%
fmap = np.array(
    [
        [1, 2, 4, 4, 9, 3, 1, 2],
        [6, 7, 8, 4, -3, -3, 6, 3],
        [9, -9, 8, -4, 5, 5, 3, 0],
        [8, -8, 9, -9, 5, 5, 0, 1],
        [0, 0, 1, 2, 7, 9, 7, 8],
        [-1, -3, 3, 6, 8, 8, 7, 6],
        [9, 9, 8, 2, 1, 5, -1, -1],
        [1, 1, -2, 8, 3, 7, 4, -2],
    ],
    dtype=float,
)[None, None]  # (N, C, H, W) = (1, 1, 8, 8)

y_max, max_cache = pool.maxpool2d_forward(fmap, 2, 2)
y_avg, avg_cache = pool.avgpool2d_forward(fmap, 2, 2)
print("max pooling 2x2, stride 2:\n", y_max[0, 0])
print("\nmean pooling 2x2, stride 2:\n", y_avg[0, 0])

# %% [markdown]
# The max-pooled map is the slide's. Twelve of the slide's sixteen means are right;
# four windows, $(9, 3, -3, -3)$, $(1, 2, 6, 3)$, $(1, 2, 3, 6)$ and
# $(-1, -1, 4, -2)$, have the means 1.5, 3, 3 and 0 printed above, where the slide
# prints 3, 4, 8 and 1 (listed on the page "Where cnnumpy departs from the course
# notes, and why").
#
# The slides then ask for $2 \times 2$ windows with a stride of 1, and $3 \times 3$
# windows with a stride of 2 (overlapping windows, as AlexNet pools):

# %%
for F, S in [(2, 2), (2, 1), (3, 2)]:
    exact = (8 - F) / S + 1
    size = padding.output_size(8, F, S)
    print(f"F={F}, S={S}: (8 - {F}) / {S} + 1 = {exact:g} -> {size}x{size} maps")
print("\nmax pooling 3x3, stride 2:\n", pool.maxpool2d_forward(fmap, 3, 2)[0][0, 0])

# %% [markdown]
# With $3 \times 3$ windows and a stride of 2 the division is not exact: the last
# column and row of the map are left out, as in every framework. (AlexNet's
# $55 \times 55$ maps divide exactly: $(55 - 3)/2 + 1 = 27$.)
#
# ## Backward: the gradient goes to the maximum
#
# A window's maximum is the only input its output depends on (nudging any other
# input a little does not change the maximum), so the whole gradient
# $\partial E / \partial y$ of the window goes to that input, and the others get 0.
# Seed 001 (2.3.2): « on redistribue les erreurs [...] aux positions des maxima ».
# For the mean, every input of the window counts for $1 / (K_H K_W)$:
#
# $$ \frac{\partial E}{\partial x} = \text{mask} \odot \frac{\partial E}{\partial y}
#    \qquad\text{or}\qquad
#    \frac{\partial E}{\partial x_{c,\,hS+i,\,wS+j}} \mathrel{+}=
#    \frac{1}{K_H K_W} \frac{\partial E}{\partial y_{c,h,w}} $$
#
# col2im puts each column's gradient back on its window, adding up where windows
# overlap.

# %%
show(pool.maxpool2d_backward)

# %%
show(pool.avgpool2d_backward)

# %% [markdown]
# With a different upstream gradient for every output (1 to 16), each number lands on
# the maximum of its own window:

# %%
dout = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
dx_max = pool.maxpool2d_backward(dout, max_cache)
dx_avg = pool.avgpool2d_backward(dout, avg_cache)
print("dE/dy:\n", dout[0, 0])
print("\ndE/dx, max pooling:\n", dx_max[0, 0])
print("\ndE/dx, mean pooling:\n", dx_avg[0, 0])

# %% [markdown]
# One window of the slide's map, rows 2-3 and columns 4-5, is four 5s: it has four
# maxima. Seeds 000 and 001 build their mask as "equal to the maximum" and would send
# the gradient (here 7) to all four, 28 in all. But raising the whole window by a
# small $t$ raises its maximum by exactly $t$, so the window's gradients must add up
# to 7: cnnumpy sends it to the first maximum in reading order, as PyTorch does.

# %%
print("window:\n", fmap[0, 0, 2:4, 4:6])
print("its share of dE/dx:\n", dx_max[0, 0, 2:4, 4:6])

# %% [markdown]
# A finite-difference check confirms the rule on a random map (no ties there):

# %%
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 3, 6, 6))
g = rng.standard_normal((2, 3, 3, 3))
_, cache = pool.maxpool2d_forward(x, 2, 2)
analytic = pool.maxpool2d_backward(g, cache)
numeric = np.zeros_like(x)
h = 1e-6
for index in np.ndindex(x.shape):
    saved = x[index]
    x[index] = saved + h
    up = np.sum(pool.maxpool2d_forward(x, 2, 2)[0] * g)
    x[index] = saved - h
    down = np.sum(pool.maxpool2d_forward(x, 2, 2)[0] * g)
    x[index] = saved
    numeric[index] = (up - down) / (2 * h)
gap = np.max(np.abs(analytic - numeric))
print(f"largest |backward - finite difference|: {gap:.1e}")

# %% [markdown]
# ## A picture of both passes
#
# Drawn from the arrays above: the map with its $2 \times 2$ windows, the pooled
# values, and where the upstream gradient goes back (max pooling on the top row, mean
# pooling below).

# %%
winners = [
    (r, c, 1, 1, "tab:red") for r, c in zip(*np.nonzero(dx_max[0, 0]), strict=True)
]
windows = [(r, c, 2, 2, "black") for r in (0, 2, 4, 6) for c in (0, 2, 4, 6)]
fig, axes = plt.subplots(
    2, 4, figsize=(15, 7.5), gridspec_kw={"width_ratios": [8, 4, 4, 8]}
)
draw_array(axes[0, 0], fmap[0, 0], "input 8x8, maxima in red", boxes=windows + winners)
draw_array(axes[0, 1], y_max[0, 0], "max pooling 2x2, S=2")
draw_array(axes[0, 2], dout[0, 0], "dE/dy")
draw_array(axes[0, 3], dx_max[0, 0], "dE/dx: to the maxima", boxes=windows)
draw_array(axes[1, 0], fmap[0, 0], "input 8x8", boxes=windows)
draw_array(axes[1, 1], y_avg[0, 0], "mean pooling 2x2, S=2")
draw_array(axes[1, 2], dout[0, 0], "dE/dy")
draw_array(axes[1, 3], dx_avg[0, 0], "dE/dx: a quarter each", boxes=windows)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The layer
#
# `MaxPool2D` holds no parameters; it checks its input, calls the operation above
# (through the engine, which `cnnumpy.engine.off()` turns off) and keeps the cache:

# %%
layer = MaxPool2D(2)
with cnnumpy.engine.off():
    y = layer.forward(fmap.astype(np.float32))
    dx = layer.backward(dout.astype(np.float32))
print("same as the book:", np.array_equal(y, y_max), np.array_equal(dx, dx_max))
print(
    "parameters:",
    layer.count_params(),
    "| output shape for (16, 32, 32):",
    layer.output_shape((16, 32, 32)),
)

# %% [markdown]
# The last line is seed 000's network: 16 maps of $32 \times 32$ become 16 maps of
# $16 \times 16$, a quarter of the neurons, at no cost in parameters. Chapter 6 puts
# convolutions and poolings together into the notes' architectures.
