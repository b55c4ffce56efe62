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
# # 2. One example at a time, or the whole batch in matrices
#
# Follows seed 002, « Fully Connected Layer » (forward and backward propagation), and
# seed 000, III.1.a « Optimisation avec Numpy » (techniques 1 to 4) and III.1.b
# « Batch ».
#
# The notes derive the fully connected layer for one example, a row $X$, and their
# network feeds the examples one after the other. The same formulas hold for a batch
# of $N$ examples stacked as the rows of a matrix, and then one matrix product does
# the work of $N$ passes. This chapter checks that the two give the same numbers, and
# measures what the matrix form saves.

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
from companion import best_time, show

import cnnumpy
from cnnumpy.textbook import dense, loops

cnnumpy.seed(0)
np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## The formulas, for a batch
#
# For one example (seed 002), $y_j = b_j + \sum_i x_i w_{ij}$. With the $N$ examples
# as the rows of $X$ (shape $N \times I$), every row gets the same weights
# $W$ ($I \times J$) and the same bias $b$ ($J$), added to each row:
#
# $$ Y = XW + b \qquad y_{nj} = b_j + \sum_i x_{ni} w_{ij} $$
#
# The backward pass receives $dY = \partial E / \partial Y$ ($N \times J$). A weight
# $w_{ij}$ is used by every example, so its gradient is the sum of the examples'
# gradients, which is exactly what the matrix product over $n$ computes; the same for
# the bias:
#
# $$ dW = X^T dY \qquad db = \sum_n dY_n \qquad dX = dY \, W^T $$
#
# With $N = 1$ these are the notes' three formulas. The notes' "technique 1", every
# sum as an explicit loop, is the book's reference version:

# %%
show(loops.dense_forward_loops)

# %%
show(loops.dense_backward_loops)

# %% [markdown]
# And the matrix form, the one cnnumpy's `Dense` layer runs:

# %%
show(dense.dense_forward)

# %%
show(dense.dense_backward)

# %% [markdown]
# ## The shapes on a small batch
#
# Four examples of three features, a layer of two neurons:

# %%
rng = np.random.default_rng(0)
X = rng.integers(-3, 4, (4, 3)).astype(float)
W = rng.integers(-2, 3, (3, 2)).astype(float)
b = np.array([0.5, -1.0])
dY = rng.integers(-2, 3, (4, 2)).astype(float)

Y, cache = dense.dense_forward(X, W, b)
dX, dW, db = dense.dense_backward(dY, cache)
for name, array in [
    ("X", X),
    ("W", W),
    ("Y", Y),
    ("dY", dY),
    ("dW", dW),
    ("db", db),
    ("dX", dX),
]:
    print(f"{name:>2} {str(array.shape):>7}\n{array}\n")

# %% [markdown]
# ## One example at a time gives the same numbers
#
# The notes' network runs each example through the layer on its own, a row of shape
# $1 \times I$. Stacking those outputs gives $Y$; summing the examples' own $dW$ and
# $db$ gives the batch's:

# %%
Y_rows, dW_sum, db_sum, dX_rows = [], np.zeros_like(W), np.zeros_like(b), []
for n in range(len(X)):
    y_n, cache_n = dense.dense_forward(X[n : n + 1], W, b)
    dx_n, dw_n, db_n = dense.dense_backward(dY[n : n + 1], cache_n)
    Y_rows.append(y_n)
    dX_rows.append(dx_n)
    dW_sum += dw_n
    db_sum += db_n

print("Y  equal:", np.allclose(np.vstack(Y_rows), Y))
print("dX equal:", np.allclose(np.vstack(dX_rows), dX))
print("dW equal to the sum of the examples' dW:", np.allclose(dW_sum, dW))
print("db equal to the sum of the examples' db:", np.allclose(db_sum, db))

# %% [markdown]
# ## Loops against matrices: a timing
#
# Seed 000 timed four ways of writing the same layer and found the loops hundreds of
# times slower than NumPy's whole-array operations (its "FC_Front" table: 0.0699 s
# for technique 1, 0.00016 s for technique 4, `einsum`). The same measurement here,
# on a batch of 32 examples through a layer of 100 inputs and 50 neurons (the second
# layer of the notes' MNIST network), forward and backward:
#
# - **loops**: the book's `dense_*_loops`, one multiply-add per Python statement;
# - **one example at a time**: the matrix formulas on each row, as the notes'
#   network feeds its examples;
# - **batch**: one matrix product for the whole batch, the book's `dense_*`.

# %%
N, I, J = 32, 100, 50  # noqa: E741 (the notes name the inputs I)
x = rng.standard_normal((N, I))
w = rng.standard_normal((I, J)) * 0.1
bias = np.zeros(J)
dout = rng.standard_normal((N, J))


def loops_pass():
    _, c = loops.dense_forward_loops(x, w, bias)
    return loops.dense_backward_loops(dout, c)


def per_example_pass():
    results = []
    for n in range(N):
        _, c = dense.dense_forward(x[n : n + 1], w, bias)
        results.append(dense.dense_backward(dout[n : n + 1], c))
    return results


def batch_pass():
    _, c = dense.dense_forward(x, w, bias)
    return dense.dense_backward(dout, c)


dx_loops, dw_loops, db_loops = loops_pass()
dx_batch, dw_batch, db_batch = batch_pass()
print(
    "loops and batch agree:",
    np.allclose(dx_loops, dx_batch)
    and np.allclose(dw_loops, dw_batch)
    and np.allclose(db_loops, db_batch),
)

timings = {
    "loops": best_time(loops_pass, repeat=1),
    "one example at a time": best_time(per_example_pass, repeat=5),
    "batch": best_time(batch_pass, repeat=20),
}
print(f"\nforward + backward, N={N}, {I} -> {J}")
for name, seconds in timings.items():
    ratio = seconds / timings["batch"]
    print(f"{name:>22}: {seconds * 1e3:9.3f} ms   ({ratio:8.0f} x batch)")

# %%
fig, ax = plt.subplots(figsize=(6, 2.4))
ax.barh(list(timings), [t * 1e3 for t in timings.values()], color="tab:blue")
ax.set_xscale("log")
ax.set_xlabel("milliseconds (log scale), forward + backward")
ax.invert_yaxis()
ax.set_title("The same layer, three ways")
fig.tight_layout()
plt.show()

# %% [markdown]
# The exact times depend on the machine; the order does not. The loops pay the
# interpreter for every multiply-add; one example at a time pays it once per example;
# the batch pays it once and leaves the $N \times I \times J$ multiply-adds to the
# compiled matrix product. That is why every layer of cnnumpy, like the notes' final
# version (seed 000, III.1.b), takes the whole batch at once. Chapter 4 does the same
# for the convolution.
