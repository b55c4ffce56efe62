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
# # 8. Looking inside: filters, feature maps, occlusion, saliency and Grad-CAM
#
# Follows seed 003, slides 37-38 (« Carte d'activation (feature map) »,
# « Apprentissage = apprendre les poids $w_i$ des filtres convolutifs »); seed 000,
# III.3 « Visualisation de l'action du réseau » (Zeiler & Fergus's occlusion, its
# `visual`, and its own « carte des responsabilités ») and IV.1 « Visualisation »;
# seed 001, 2.2 and Figure 2 (« Cartes de caractéristiques générées avec Melpy sur le
# dataset MNIST »).
#
# A trained network is a stack of numbers; these pictures ask it what it looks at.
# We train LeNet-5 on the MNIST sample for a few seconds, then look at what it has
# learned (its filters), what it computes (its feature maps), and which pixels its
# answer depends on, three ways: by hiding them (occlusion), by differentiating the
# answer with respect to them (saliency), and by weighting the last feature maps with
# their gradients (Grad-CAM). Every picture comes from a function of
# `cnnumpy.visualize` that returns the array drawn.

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

import cnnumpy
from cnnumpy import visualize, zoo
from cnnumpy.data import load_mnist_sample, train_val_split
from cnnumpy.optimizers import SGD
from cnnumpy.visualize import maps
from companion import show

cnnumpy.seed(0)
np.set_printoptions(precision=3, suppress=True)

# %% [markdown]
# ## A LeNet-5 trained for a few seconds
#
# Eight epochs of SGD with momentum on 4,000 digits, checked on the 1,000 others:

# %%
digits = load_mnist_sample(dtype="float32")
x_train, y_train, x_val, y_val = train_val_split(digits.x, digits.y, 0.2, rng=0)
model = zoo.lenet5()
model.compile(
    optimizer=SGD(lr=0.05, momentum=0.9, weight_decay=5e-4),
    loss="cross_entropy",
    metrics=["accuracy"],
)
history = model.fit(x_train, y_train, epochs=8, batch_size=64, seed=0, verbose=0)
result = model.evaluate(x_val, y_val)
print(f"validation: loss {result['loss']:.3f}, accuracy {result['accuracy']:.3f}")
for i, layer in enumerate(model.layers[:6]):
    print(i, layer)

# %% [markdown]
# ## The filters
#
# The first layer's six 5x5 kernels are what the network learned to look for in the
# raw pixels (seed 003, slide 38: learning *is* learning these weights). Each is
# scaled to [0, 1] on its own so that its pattern shows whatever its norm: light
# taps add the pixel under them, dark taps subtract it, so most filters are small
# edge and stroke detectors.

# %%
show(maps.filters_array)

# %%
kernels = visualize.filters(model)  # (6, 1, 5, 5), each in [0, 1]
print("shape", kernels.shape)
print("filter 0, raw weights:\n", model.layers[0].params["W"][0, 0])
fig, axes = plt.subplots(1, 6, figsize=(9, 1.8))
for k, ax in enumerate(axes):
    ax.imshow(kernels[k, 0], cmap="gray")
    ax.set_title(f"filter {k}", fontsize=9)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Feature maps
#
# A feature map (« carte d'activation ») is one channel of a layer's output for one
# image: where the filter found its pattern. Seed 001's Figure 2 shows them for its
# MNIST network. Here, for a validation digit, the six maps of the first layer
# (after its tanh, 24x24) and the sixteen of the second (8x8):

# %%
n = int(np.flatnonzero(y_val == 7)[0])  # the first 7 of the validation set
image, label = x_val[n], int(y_val[n])
probs = model.predict(image[None])[0]
print(f"label {label}, predicted {probs.argmax()} with p = {probs.max():.3f}")
first = visualize.feature_maps(model, image, layer=1)  # Tanh after conv 1
second = visualize.feature_maps(model, image, layer=4)  # Tanh after conv 2
print("first layer maps", first.shape, "second layer maps", second.shape)
print("strongest response of each first-layer map:", first.max(axis=(1, 2)))

fig, axes = plt.subplots(3, 8, figsize=(10, 4))
axes[0, 0].imshow(image[0], cmap="gray")
axes[0, 0].set_title("input", fontsize=9)
for k in range(6):
    axes[0, k + 1].imshow(first[k], cmap="RdBu_r", vmin=-1, vmax=1)
    axes[0, k + 1].set_title(f"conv1 map {k}", fontsize=8)
for k in range(16):
    ax = axes[1 + k // 8, k % 8]
    ax.imshow(second[k], cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_title(f"conv2 map {k}", fontsize=8)
for ax in axes.flat:
    ax.axis("off")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Occlusion: hide a patch, see what the network loses
#
# Zeiler & Fergus, as seed 000's `visual` does it: cover the image with a grey (here
# black, 0) square at every position and record how much the probability of the
# right class drops,
#
# $$ \text{drop}(i, j) = p(c \mid x) - p(c \mid x \text{ with the patch at } (i, j)
#    \text{ blanked}) $$
#
# Each pixel gets the mean drop of the patches that cover it. A large drop marks
# pixels the answer depends on; a negative one, pixels that argue for another class.

# %%
show(maps.occlusion_map)

# %% [markdown]
# On a digit the network is sure of, $p(c \mid x) \approx 1$ and the softmax is
# saturated: hiding a small patch changes almost nothing. The effect shows on a digit
# it hesitates over, here the first validation digit it classifies right with a
# probability between 0.6 and 0.9:

# %%
p_val = model.predict(x_val)
right = p_val.argmax(axis=1) == y_val
unsure = (p_val.max(axis=1) > 0.6) & (p_val.max(axis=1) < 0.9)
n = int(np.flatnonzero(right & unsure)[0])
image, label = x_val[n], int(y_val[n])
probs = p_val[n]
print(f"validation digit {n}: label {label}, p = {probs[label]:.3f}")
heat = visualize.occlusion(model, image, label, patch=6, stride=2)
i, j = np.unravel_index(heat.argmax(), heat.shape)
print(f"largest mean drop {heat.max():.3f} at pixel ({i}, {j}); "
      f"smallest {heat.min():.3f}")
hidden = image.copy()
top, left = max(i - 3, 0), max(j - 3, 0)
hidden[:, top : top + 6, left : left + 6] = 0
p_hidden = model.predict(hidden[None])[0]
print(f"p(class {label}): {probs[label]:.3f} intact, {p_hidden[label]:.3f} with the "
      f"6x6 patch around ({i}, {j}) hidden; the network then says {p_hidden.argmax()}")

fig, axes = plt.subplots(1, 3, figsize=(8, 2.8))
axes[0].imshow(image[0], cmap="gray")
axes[0].set_title(f"label {label}, p = {probs[label]:.2f}", fontsize=9)
shown = axes[1].imshow(heat, cmap="RdBu_r", vmin=-abs(heat).max(), vmax=abs(heat).max())
axes[1].set_title("drop of p (occlusion)", fontsize=9)
fig.colorbar(shown, ax=axes[1], fraction=0.046)
axes[2].imshow(hidden[0], cmap="gray")
axes[2].set_title(f"patch hidden: p = {p_hidden[label]:.2f}", fontsize=9)
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Saliency: the gradient of the answer with respect to the pixels
#
# Seed 000's « algorithme personnel » runs the backward pass without changing the
# weights, starting from the right answer instead of the error, down to the pixels:
# « responsabilité chaque pixel de l'image dans le résultat ». This is the
# saliency map of Simonyan et al.: with $s_c$ the score (logit) of class $c$,
#
# $$ S(i, j) = \sum_{\text{channels}} \left| \frac{\partial s_c}{\partial x_{ij}}
#    \right|, \quad \text{divided by its maximum} $$
#
# The same `backward` that trains the network computes it, one pass for one image.

# %%
show(maps.saliency_map)

# %% [markdown]
# ## Grad-CAM: which places of the last feature maps speak for the class
#
# Selvaraju et al. (2017) weight each feature map $A_k$ of the last convolution
# layer by the mean gradient of the class score over it, add them, and keep the
# positive part; the $8 \times 8$ result is resized to the image:
#
# $$ \alpha_k = \frac{1}{hw} \sum_{i,j} \frac{\partial s_c}{\partial A_k(i, j)}
#    \qquad L = \mathrm{ReLU}\Big(\sum_k \alpha_k A_k\Big) $$

# %%
show(maps.grad_cam_map)

# %% [markdown]
# ## The three maps side by side
#
# For four validation digits: the image, then each map (hot = important). The
# numbers below measure how much of each map lies on the ink of the digit (pixels
# brighter than 0.3), against the ink's share of the image.

# %%
examples = [int(np.flatnonzero(y_val == d)[0]) for d in (2, 4, 7, 9)]
fig, axes = plt.subplots(len(examples), 4, figsize=(8, 2.1 * len(examples)))
for row, n in enumerate(examples):
    image, label = x_val[n], int(y_val[n])
    found = {
        "occlusion": visualize.occlusion(model, image, label, patch=6, stride=2),
        "saliency": visualize.saliency(model, image, label),
        "Grad-CAM": visualize.grad_cam(model, image, label),
    }
    ink = image[0] > 0.3
    shares = ", ".join(
        f"{name} {np.clip(m, 0, None)[ink].sum() / np.clip(m, 0, None).sum():.2f}"
        for name, m in found.items()
    )
    print(f"digit {label}: ink covers {ink.mean():.2f} of the image; "
          f"share of each map on the ink: {shares}")
    axes[row, 0].imshow(image[0], cmap="gray")
    axes[row, 0].set_title(f"label {label}", fontsize=9)
    for col, (name, m) in enumerate(found.items(), start=1):
        axes[row, col].imshow(image[0], cmap="gray")
        axes[row, col].imshow(m, cmap="jet", alpha=0.5)
        axes[row, col].set_title(name, fontsize=9)
for ax in axes.flat:
    ax.axis("off")
fig.tight_layout()
plt.show()

# %% [markdown]
# The three maps answer slightly different questions. Occlusion measures an effect
# (what is lost when a region disappears), at the resolution of its patch, and costs
# one forward pass per patch position (144 here). Saliency is one backward pass and
# is sharp but noisy: it says which pixels the score is most sensitive to, not
# whether they are ink. Grad-CAM is coarse (LeNet-5's last maps are 8x8) and shows
# the places the last convolution layer uses. `cnnumpy visualize` draws the same
# maps for a saved model, and the site's playground shows them for digits you draw.
