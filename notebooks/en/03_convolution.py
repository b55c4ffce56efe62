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
# # 3. Convolution: stride, padding and the output size
#
# Follows seed 003, « Stride et calcul de la taille de la carte d'activation »,
# « Comment gérer les bords ? », « Convolution 2D » and the counting exercises that
# follow it (slides 39-114), with seed 000, I.3.a « Convolution », and seed 002,
# « Couche convolution ».
#
# A convolution layer slides a small filter over its input and writes one number per
# position: the scalar product of the filter with the window under it. This chapter
# follows the notes' slides from a 1-D signal to 2-D images with several channels,
# and lets cnnumpy compute every number the slides ask for.

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
from cnnumpy.layers import Conv2D
from cnnumpy.textbook import conv, loops, padding

cnnumpy.seed(0)
np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## A filter sliding over a signal
#
# The notes start in one dimension: a signal of $D = 9$ values and a filter of $F$
# weights. Each output value is the scalar product of the filter with the $F$ values
# under it; the filter then moves by the stride $S$. The book's 1-D convolution is
# the 2-D one on an image of height 1, so the signal is shaped $(N, C, L) = (1, 1, 9)$
# and the filter $(F_{\text{filters}}, C, K) = (1, 1, F)$.

# %%
signal = np.array([[[40.0, 50, 70, 80, 90, 10, 20, 30, 40]]])  # seed 003, D = 9
taps = np.array([0.2, -0.3, 0.4, -0.5, 0.6, -0.7, 0.8])


def slide(F, stride):
    """The first F taps over the signal, no padding, no bias."""
    out, _ = conv.conv1d_forward(signal, taps[None, None, :F], None, stride)
    return out[0, 0]


for F, stride in [(7, 1), (5, 1), (5, 2)]:
    print(f"F={F}, S={stride}: map {slide(F, stride)}, size {slide(F, stride).size}")

# %% [markdown]
# These are the slides' maps: $[44, -8, 44]$ for $F = 7$; $[35, -18, 33, 1, 32]$ for
# $F = 5$; $[35, 33, 32]$ with a stride of 2. With a stride of 3 the slides stop:
# « ERREUR ! Combinaison D-F-S invalide ». The filter would take the positions 0 and
# 3, and the third window, at 6, would hang over the end of the signal.
#
# ## The output size
#
# How many windows fit: with $P$ values of padding on each side,
#
# $$ D_{\text{out}} = \frac{D - F + 2P}{S} + 1 $$
#
# and the configuration is valid only when the division is exact. cnnumpy writes the
# formula once, for every convolution and pooling of the library (the frameworks
# round it down, so it floors):

# %%
show(padding.output_size)

# %% [markdown]
# and the notes' check, which refuses an uneven division (the `Conv1D` and `Conv2D`
# layers call it unless told `allow_uneven=True`):

# %%
show(padding.check_output_size)

# %%
for D, F, P, S in [
    (9, 7, 0, 1),
    (9, 5, 0, 2),
    (32, 5, 2, 1),
    (32, 5, 0, 3),
    (227, 11, 0, 4),
    (9, 5, 0, 3),
]:
    try:
        size = padding.check_output_size(D, F, S, 2 * P)
        print(
            f"D={D:>3} F={F:>2} P={P} S={S}: ({D} - {F} + {2 * P}) / {S} + 1 = {size}"
        )
    except ValueError as error:
        print(f"D={D:>3} F={F:>2} P={P} S={S}: {error}")

# %% [markdown]
# ($227$, $11$, stride $4$ is AlexNet's first layer: maps of $55 \times 55$.)
#
# ## Handling the edges: padding
#
# To keep as many outputs as inputs, the notes pad the signal with one value on each
# side and give three options (slides 61-62): zeros, reflection, and stretching (the
# edge value repeated, `"replicate"` in cnnumpy and PyTorch). The slides' signal is
# $[10, 20, -30, 40, -50]$ and the filter $[.1, .2, .3]$:

# %%
show(padding.pad2d)

# %%
edges = np.array([[[10.0, 20, -30, 40, -50]]])  # seed 003, slides 61-62
small = np.array([[[0.1, 0.2, 0.3]]])
for mode in ("zeros", "reflect", "replicate"):
    padded = padding.pad2d(edges[:, :, None, :], ((0, 0), (1, 1)), mode)
    out, _ = conv.conv1d_forward(edges, small, None, 1, 1, mode)
    print(f"{mode:>9}: padded {padded.ravel()} -> map {out.ravel()}")

# %% [markdown]
# The zero and stretching maps are the slides' (with the minus signs the
# transcription of the slides drops). The slides end the reflection map with 2; the
# reflected value is 40, and $40 \times .1 - 50 \times .2 + 40 \times .3 = 6$. This
# slip, with the others cnnumpy found in the notes, is listed on the
# [errata page](../notes_errata.md) ("Where cnnumpy departs from the course notes, and
# why").
#
# ## In two dimensions, with channels
#
# On an image the filter is a small square and slides along both axes. The notes'
# 2-D filtering, "sans flip de filtre", is a cross-correlation, as in every framework:
#
# $$ (x * W)(i, j) = \sum_u \sum_v x(i + u, j + v) \, W(u, v) $$
#
# A layer has several filters, each as deep as the input's $C$ channels, and one bias
# per filter. (The book's code calls their number `F`, as frameworks do; in the
# output-size rule above, as in the notes, $F$ is a filter's width. Below, $f$ numbers
# the filters.) With the stride $S$ and the padded input $x_p$:
#
# $$ \text{out}[n, f, i, j] = b_f + \sum_{c} \sum_{u} \sum_{v}
#    w[f, c, u, v] \; x_p[n, c, iS + u, jS + v] $$
#
# The book's loops say exactly that, one multiply-add per statement:

# %%
show(loops.conv2d_forward_loops)

# %% [markdown]
# ## A picture from real arrays
#
# A $5 \times 5$ input, zero padding $P = 1$, a $3 \times 3$ filter (it answers to
# vertical edges), stride $S = 2$: the output is $(5 - 3 + 2)/2 + 1 = 3$ a side.
# Everything drawn below is computed by the book's `conv2d_forward`.

# %%
rng = np.random.default_rng(0)
image = rng.integers(0, 10, (1, 1, 5, 5)).astype(float)
kernel = np.array([[[[1.0, 0, -1], [1, 0, -1], [1, 0, -1]]]])
P, S = 1, 2
out, _ = conv.conv2d_forward(image, kernel, None, stride=S, padding=P)
padded = padding.pad2d(image, P)
print("input", image.shape, "-> padded", padded.shape, "-> output", out.shape)

i, j = 1, 2  # one output position, written out in full
window = padded[0, 0, i * S : i * S + 3, j * S : j * S + 3]
print(
    f"\nout[{i}, {j}] = sum(window * kernel) with the window at rows "
    f"{i * S}-{i * S + 2}, columns {j * S}-{j * S + 2} of the padded input:"
)
print(window)
print(
    f"= {np.sum(window * kernel[0, 0]):g}, and conv2d_forward gives {out[0, 0, i, j]:g}"
)

# %%
fig, axes = plt.subplots(
    1, 4, figsize=(12, 3.4), gridspec_kw={"width_ratios": [5, 7, 3, 3]}
)
draw_array(axes[0], image[0, 0], "input 5x5")
draw_array(
    axes[1],
    padded[0, 0],
    f"padded, P={P}: two windows, S={S}",
    boxes=[(0, 0, 3, 3, "tab:red"), (i * S, j * S, 3, 3, "tab:orange")],
)
draw_array(axes[2], kernel[0, 0], "filter 3x3")
draw_array(
    axes[3],
    out[0, 0],
    "output 3x3",
    boxes=[(0, 0, 1, 1, "tab:red"), (i, j, 1, 1, "tab:orange")],
)
fig.tight_layout()
plt.show()

# %% [markdown]
# The same input with each padding mode, and the stride-1 maps they give (the
# border of each padded input is what changes, and only the edge values of the maps
# follow it):

# %%
fig, axes = plt.subplots(2, 3, figsize=(11, 6.5))
for column, mode in enumerate(("zeros", "reflect", "replicate")):
    padded_mode = padding.pad2d(image, 1, mode)
    out_mode, _ = conv.conv2d_forward(image, kernel, None, 1, 1, mode)
    draw_array(
        axes[0, column],
        padded_mode[0, 0],
        f'padding_mode="{mode}"',
        boxes=[(1, 1, 5, 5, "black")],
    )
    draw_array(axes[1, column], out_mode[0, 0], "map, S=1 (same size)")
fig.tight_layout()
plt.show()

# %% [markdown]
# With reflection, the column outside each edge mirrors the one just inside it, so
# this left-minus-right filter sees no edge there and writes 0 down both sides; zero
# padding invents a border of zeros (black, in an image) and answers to it.
#
# ## Counting parameters and neurons
#
# The slides end with exercises: how many parameters (weights, and biases when the
# layer has them) and how many neurons (values in the activation maps) does a layer
# have? A filter $F$ wide has $F \times F \times C$ weights whatever the padding, and
# a layer holds one filter per output map; the padding
# and the stride only change the size of the maps. cnnumpy's layers answer without
# computing anything (`output_shape`, `count_params`):


# %%
def count(input_shape, layer):
    """Parameters and neurons of one layer on an input (C, H, W)."""
    layer.build(input_shape)
    shape = layer.output_shape(input_shape)
    return layer.count_params(), int(np.prod(shape)), shape


exercises = [
    (
        "32x32x3, 10 filters 5x5, same",
        (3, 32, 32),
        Conv2D(10, 5, padding="same", use_bias=False),
    ),
    ("the same with a bias", (3, 32, 32), Conv2D(10, 5, padding="same")),
    ("32x32x3, 10 filters 5x5, valid", (3, 32, 32), Conv2D(10, 5)),
    ("100x100x1, 6 filters 5x5, valid", (1, 100, 100), Conv2D(6, 5, use_bias=False)),
    (
        "32x32x3, 6 filters 5x5, same",
        (3, 32, 32),
        Conv2D(6, 5, padding="same", use_bias=False),
    ),
    (
        "32x32x3, 6 filters 5x5, stride 3",
        (3, 32, 32),
        Conv2D(6, 5, stride=3, use_bias=False),
    ),
]
print(f"{'layer':<34}{'parameters':>11}{'neurons':>9}  maps")
for text, shape, layer in exercises:
    params, neurons, out_shape = count(shape, layer)
    print(f"{text:<34}{params:>11,}{neurons:>9,}  {out_shape}")

# %% [markdown]
# The slides' answers: 750 parameters, and 760 with the biases ($5 \times 5 \times 3
# + 1 = 76$ per filter); $28 \times 28 \times 10 = 7{,}840$ neurons in "valid";
# 150 parameters and $96 \times 96 \times 6 = 55{,}296$ neurons; $6{,}144$ neurons
# and 450 parameters; $(32 - 5)/3 + 1 = 10$, so $600$ neurons.
#
# The last exercise stacks three layers on a $32 \times 32 \times 3$ image: 3 filters
# $7 \times 7$, 5 filters $9 \times 9$, 4 filters $11 \times 11$, no bias. Each filter
# is as deep as the maps it reads (3, then 3, then 5). `summary()` counts the whole
# network, first with "same" convolutions, then "valid":

# %%
for mode in ("same", "valid"):
    model = cnnumpy.Sequential(
        [
            Conv2D(3, 7, padding=mode, use_bias=False),
            Conv2D(5, 9, padding=mode, use_bias=False),
            Conv2D(4, 11, padding=mode, use_bias=False),
        ],
        input_shape=(3, 32, 32),
    )
    model.summary()
    print()

# %% [markdown]
# 4,076 parameters either way ($441 + 1{,}215 + 2{,}420$), and 12,288 neurons in
# "same" against $2{,}028 + 1{,}620 + 256 = 3{,}904$ in "valid": the slides' totals.
# (The last column estimates the memory a training step keeps for the backward pass.)
#
# Chapter 4 turns the loops above into one matrix product.
