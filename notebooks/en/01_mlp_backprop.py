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
# # 1. From the perceptron to backpropagation
#
# Follows seed 000, I.1 « Réseaux de neurones classiques » and I.2 « Rétropropagation
# du gradient », and seed 002, « Descente de Gradient », « Fully Connected Layer »,
# « Couche d'activation », « Fonction de perte » and « Construire un réseau de
# neurone » (the XOR example).
#
# This chapter reads the notes' first formulas beside the code that computes them in
# cnnumpy: one neuron, a layer of neurons, the error, and the chain rule that carries
# the error back through the layers. It ends by training the notes' XOR network with
# the book's code alone.

# %% tags=["remove-cell"]
# Path set-up for plain-script runs: makes notebooks/companion.py importable.
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
for folder in (HERE.parent, HERE / "notebooks", HERE):
    if (folder / "companion.py").exists() and str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

# %%
import numpy as np
from companion import show

import cnnumpy
from cnnumpy.layers import Dense, Tanh
from cnnumpy.textbook import activations, dense, losses

cnnumpy.seed(0)
np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## One neuron: the perceptron
#
# Seed 000 writes a neuron $j$ as a weighted sum of its inputs $y_k$ plus a bias,
# passed through an activation function $f$:
#
# $$ x_j = \sum_k y_k \, w_{kj} + b_j \qquad y_j = f(x_j) $$
#
# With a step for $f$ (1 if $x_j > 0$, else 0) this is Rosenblatt's perceptron. Two
# weights and a bias draw a straight line through the plane of the inputs, and the
# neuron answers 1 on one side of it. That is enough for AND and OR:

# %%
inputs = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)


def perceptron(x, w, b):
    """Rosenblatt's neuron: 1 where the weighted sum is positive."""
    return (x @ w + b > 0).astype(int)


print("x1 x2 | AND OR")
for x, y_and, y_or in zip(
    inputs,
    perceptron(inputs, np.array([1.0, 1.0]), -1.5),
    perceptron(inputs, np.array([1.0, 1.0]), -0.5),
    strict=True,
):
    print(f" {x[0]:.0f}  {x[1]:.0f} |  {y_and}   {y_or}")

# %% [markdown]
# XOR (1 when exactly one input is 1) puts $(0, 1)$ and $(1, 0)$ on one side and
# $(0, 0)$, $(1, 1)$ on the other: no straight line does that. A search over a grid of
# weights and biases shows it: the best single neuron gets 3 of the 4 cases right.

# %%
xor_targets = np.array([0, 1, 1, 0])
grid = np.linspace(-2, 2, 17)
best = 0
for w1 in grid:
    for w2 in grid:
        for b in grid:
            answers = perceptron(inputs, np.array([w1, w2]), b)
            best = max(best, int(np.sum(answers == xor_targets)))
print(
    f"best single perceptron on XOR: {best} of 4 cases right "
    f"({grid.size**3} weight settings tried)"
)

# %% [markdown]
# ## A layer, then several: the multilayer perceptron
#
# A layer computes all its neurons at once. Seed 002 writes the inputs as a row
# $X = [x_1 \dots x_i]$, the weights as a matrix $W$ ($i$ inputs by $j$ outputs) and
# the biases as a row $B$:
#
# $$ y_j = b_j + \sum_i x_i w_{ij} \qquad\Longleftrightarrow\qquad Y = XW + B $$
#
# The activation is a layer of its own, $Y = f(X)$ element by element. The book's
# fully connected layer is exactly that line (chapter 2 explains why a whole batch of
# rows goes through at once):

# %%
show(dense.dense_forward)

# %% [markdown]
# And its activation, here $\tanh$, keeps its output for the backward pass:

# %%
show(activations.tanh_forward)

# %% [markdown]
# Stacking them gives the notes' XOR network, 2 inputs, 3 hidden neurons, 1 output:
# Dense(2→3), tanh, Dense(3→1), tanh. Its forward pass on the four XOR inputs, with
# small random weights (float64, so that the gradient check below is exact enough):

# %%
rng = np.random.default_rng(0)
params = {
    "W1": rng.uniform(-0.5, 0.5, (2, 3)),  # the notes draw rand() - 0.5
    "b1": rng.uniform(-0.5, 0.5, 3),
    "W2": rng.uniform(-0.5, 0.5, (3, 1)),
    "b2": rng.uniform(-0.5, 0.5, 1),
}
targets = xor_targets.reshape(4, 1).astype(float)


def forward(p, x):
    """Dense, tanh, Dense, tanh; returns the output and every layer's cache."""
    h, dense1 = dense.dense_forward(x, p["W1"], p["b1"])
    a, tanh1 = activations.tanh_forward(h)
    z, dense2 = dense.dense_forward(a, p["W2"], p["b2"])
    y, tanh2 = activations.tanh_forward(z)
    return y, (dense1, tanh1, dense2, tanh2)


y, caches = forward(params, inputs)
print("outputs before training:", y.ravel())

# %% [markdown]
# ## The error
#
# Seed 002 measures the error by the mean squared error, and the whole backward pass
# starts from its derivative:
#
# $$ E = \frac{1}{n} \sum_i^n (y_i^* - y_i)^2 \qquad
#    \frac{\partial E}{\partial Y} = \frac{2}{n} (Y - Y^*) $$

# %%
show(losses.mse)

# %%
E, dE_dY = losses.mse(y, targets)
print(f"E = {E:.4f}")
print("dE/dY =", dE_dY.ravel())

# %% [markdown]
# ## Backpropagation: the chain rule, layer by layer
#
# Each layer receives $\partial E / \partial Y$, the derivative of the error with
# respect to its output, and must return $\partial E / \partial X$, which is the
# previous layer's $\partial E / \partial Y$. Seed 002 gets everything from the rule
# of composed derivatives:
#
# $$ \frac{\partial E}{\partial w} = \sum_j \frac{\partial E}{\partial y_j}
#    \frac{\partial y_j}{\partial w} \qquad
#    \frac{\partial E}{\partial x_i} = \sum_j \frac{\partial E}{\partial y_j}
#    \frac{\partial y_j}{\partial x_i} $$
#
# For the fully connected layer this gives its three formulas:
#
# $$ \frac{\partial E}{\partial X} = \frac{\partial E}{\partial Y} W^T \qquad
#    \frac{\partial E}{\partial W} = X^T \frac{\partial E}{\partial Y} \qquad
#    \frac{\partial E}{\partial B} = \frac{\partial E}{\partial Y} $$
#
# (for one example, as in the notes; for a batch of rows, such as the four XOR
# inputs here, $\partial E / \partial B$ is the sum of the rows of
# $\partial E / \partial Y$: chapter 2 shows it)

# %%
show(dense.dense_backward)

# %% [markdown]
# For an activation, $y_i = f(x_i)$ depends on $x_i$ alone, so the sum has one term:
# $\frac{\partial E}{\partial X} = \frac{\partial E}{\partial Y} \odot f'(X)$, an
# element-by-element product. For $\tanh$, $f' = 1 - \tanh^2$, written with the
# output kept by the forward pass:

# %%
show(activations.tanh_backward)

# %% [markdown]
# The backward pass of the whole network runs the layers in reverse order, each
# handing its $\partial E / \partial X$ to the one before:


# %%
def backward(dE_dY, caches):
    """The gradient of E with respect to every parameter, last layer first."""
    dense1, tanh1, dense2, tanh2 = caches
    dz = activations.tanh_backward(dE_dY, tanh2)
    da, dW2, db2 = dense.dense_backward(dz, dense2)
    dh = activations.tanh_backward(da, tanh1)
    _, dW1, db1 = dense.dense_backward(dh, dense1, need_dx=False)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


grads = backward(dE_dY, caches)
for name, g in grads.items():
    print(f"dE/d{name} =", g.ravel())

# %% [markdown]
# ## Checking the gradients with finite differences
#
# A gradient derived by hand can be checked without any calculus: nudge one weight by
# $\pm h$, run the forward pass twice, and compare
#
# $$ \frac{\partial E}{\partial w} \approx \frac{E(w + h) - E(w - h)}{2h} $$
#
# with what backpropagation gave (centred differences, in float64, as the library's
# own tests do).


# %%
def loss_at(p):
    return losses.mse(forward(p, inputs)[0], targets)[0]


def numerical_gradient(p, name, h=1e-6):
    """Centred finite differences of E, one entry of p[name] at a time."""
    numeric = np.zeros_like(p[name])
    for index in np.ndindex(p[name].shape):
        saved = p[name][index]
        p[name][index] = saved + h
        E_plus = loss_at(p)
        p[name][index] = saved - h
        E_minus = loss_at(p)
        p[name][index] = saved
        numeric[index] = (E_plus - E_minus) / (2 * h)
    return numeric


print("parameter  largest |backprop - finite difference|")
for name in params:
    gap = np.max(np.abs(grads[name] - numerical_gradient(params, name)))
    print(f"{name:>9}  {gap:.2e}")

# %% [markdown]
# The gaps are around $10^{-10}$ or below: the hand-written backward pass is right.
#
# ## Training XOR with the book's code
#
# Gradient descent (seed 002) moves every parameter against its gradient, with a
# learning rate $\alpha$:
#
# $$ w \leftarrow w - \alpha \frac{\partial E}{\partial w} $$
#
# The notes train their XOR network one example at a time, 1000 epochs, $\alpha =
# 0.1$. Here the same network is made of cnnumpy's layers (`Dense`, `Tanh`), and
# `cnnumpy.engine.off()` makes them run the book's functions shown above, not the
# engine's faster kernels.

# %%
layers = [Dense(3), Tanh(), Dense(1), Tanh()]
x_train = inputs.astype(np.float32)
y_train = targets.astype(np.float32)
learning_rate = 0.1

with cnnumpy.engine.off():
    for epoch in range(1, 1001):
        error = 0.0
        for x, t in zip(x_train, y_train, strict=True):
            out = x[None]  # one example: a batch of 1
            for layer in layers:
                out = layer.forward(out, training=True)
            E, grad = losses.mse(out, t[None])
            error += E
            for layer in reversed(layers):
                grad = layer.backward(grad)
            for layer in layers:
                for name in layer.params:
                    layer.params[name] -= learning_rate * layer.grads[name]
        if epoch in (1, 2, 3, 10, 100, 500, 1000):
            print(f"epoch {epoch}/1000  error={error / len(x_train):.6f}")

# %%
with cnnumpy.engine.off():
    out = x_train
    for layer in layers:
        out = layer.forward(out)
for x, y_out in zip(x_train, out, strict=True):
    print(f"XOR({x[0]:.0f}, {x[1]:.0f}) -> {y_out[0]:.4f}")

# %% [markdown]
# The outputs are close to 0, 1, 1, 0: two layers learnt what one perceptron cannot.
# Chapter 2 writes the same layer for a whole batch of examples at once, and times the
# notes' loops against the matrix form.
