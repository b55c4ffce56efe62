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
# # 6. Architectures: LeNet-5, AlexNet, VGG16 and what they cost
#
# Follows seed 003, « Exemples d'architectures connues » (slides 165-193: LeNet-1,
# LeNet-5, AlexNet, VGGNet and « Pourquoi utiliser des filtres 3x3? »), with the
# notes' counting exercises of « Convolution et couche convolutionnelle 2D »
# (slides 68-114) and the counts the zoo pins (`cnnumpy/zoo.py`).
#
# The notes present each network as a list of layers, then ask two questions about
# every layer: how many **parameters** does it learn, and how many **neurons** (values
# of its output for one image) does it produce? The two answers give the memory a
# network needs. This chapter builds the notes' networks from `cnnumpy.zoo`, lets
# `summary()` answer both questions layer by layer, and checks the totals against the
# notes' figures, including the two places where the notes round or slip.

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

import cnnumpy
from cnnumpy import zoo
from cnnumpy.layers import Conv2D
from cnnumpy.summary import layer_rows, totals
from cnnumpy.textbook.padding import output_size
from companion import show

cnnumpy.seed(0)
MB = 1e6  # the notes' « Mo »: 10^6 bytes
BYTES = 4  # « 4 octets par neurone », float32

# %% [markdown]
# ## Counting a layer
#
# A convolution layer with $F$ filters of size $K_H \times K_W$ over $C$ input
# channels learns one weight per tap and one bias per filter, and writes $F$ maps of
# $H_{out} \times W_{out}$ values:
#
# $$ \text{params} = F\,(C\,K_H\,K_W + 1) \qquad
#    \text{neurons} = F\,H_{out}\,W_{out} \qquad
#    H_{out} = \frac{H + 2P - K_H}{S} + 1 $$
#
# A fully connected layer from $n_{in}$ to $n_{out}$ values has
# $(n_{in} + 1)\,n_{out}$ parameters and $n_{out}$ neurons. Pooling learns nothing
# (« Combien y a-t-il de paramètres? Réponse: 0! ») but its output still counts as
# neurons; activations act on the neurons of the layer before them and add none.
#
# `summary()` applies these rules to every layer. First the notes' own exercises, each
# a one-layer network:

# %%
def counts(layers, input_shape):
    """Parameters and neurons of a small stack, as ``summary()`` counts them."""
    model = cnnumpy.Sequential(layers, input_shape=input_shape)
    t = totals(model, batch_size=1)
    return t["params"], t["neurons"]


params, _ = counts([Conv2D(10, 5, padding=2)], (3, 32, 32))
print(f"10 filters 5x5 (+ bias) on 32x32x3:        {params:,} parameters")
params, neurons = counts([Conv2D(6, 5, use_bias=False)], (1, 100, 100))
print(f"6 valid filters 5x5 (no bias) on 100x100: {params:,} parameters, "
      f"{neurons:,} neurons (96 x 96 x 6)")
three = [Conv2D(3, 7, use_bias=False), Conv2D(5, 9, use_bias=False),
         Conv2D(4, 11, use_bias=False)]
params, valid = counts(three, (3, 32, 32))
print(f"3@7x7, 5@9x9, 4@11x11 on 32x32x3:          {params:,} parameters, "
      f"{valid:,} neurons 'valid'")
three_same = [Conv2D(3, 7, padding="same", use_bias=False),
              Conv2D(5, 9, padding="same", use_bias=False),
              Conv2D(4, 11, padding="same", use_bias=False)]
print(f"                                 with 'same': "
      f"{counts(three_same, (3, 32, 32))[1]:,} neurons")

# %% [markdown]
# ## LeNet-1 and LeNet-5
#
# Slides 166-169: a $28 \times 28 \times 1$ image, 5x5 « valid » convolutions with
# tanh, two average poolings, then one fully connected layer (LeNet-1, 4 and 12
# filters) or three (LeNet-5, 6 and 16 filters, then 120, 84 and 10 neurons). The zoo
# writes LeNet-5 exactly as the slide lists it:

# %%
show(zoo.lenet5)

# %%
lenet1 = zoo.lenet1()
lenet5 = zoo.lenet5()
lenet5.summary()

# %% [markdown]
# The same total by hand, with the formulas above: the first convolution sees one
# channel, the second the 6 maps of the first, and the first dense layer the
# $16 \times 4 \times 4 = 256$ values left after the second pooling.

# %%
by_hand = {
    "conv 6@5x5": 6 * (1 * 5 * 5 + 1),
    "conv 16@5x5": 16 * (6 * 5 * 5 + 1),
    "dense 256->120": (256 + 1) * 120,
    "dense 120->84": (120 + 1) * 84,
    "dense 84->10": (84 + 1) * 10,
}
for name, n in by_hand.items():
    print(f"{name:>15}: {n:6,}")
print(f"{'LeNet-5 total':>15}: {sum(by_hand.values()):6,}  "
      f"(count_params: {lenet5.count_params():,})")
print(f"{'LeNet-1 total':>15}: {lenet1.count_params():6,}")

# %% [markdown]
# ## AlexNet
#
# Slides 171-181. The slides ask for the size of every map, one layer at a time; the
# output-size rule answers each question (« Réponse: (227-11)/4+1 = 55 »):

# %%
size = 227
for name, kernel, stride, pad in [
    ("CONV1 11x11 s4", 11, 4, 0),
    ("MAX POOL1 3x3 s2", 3, 2, 0),
    ("CONV2 5x5 p2", 5, 1, 2),
    ("MAX POOL2 3x3 s2", 3, 2, 0),
    ("CONV3 3x3 p1", 3, 1, 1),
    ("CONV4 3x3 p1", 3, 1, 1),
    ("CONV5 3x3 p1", 3, 1, 1),
    ("MAX POOL3 3x3 s2", 3, 2, 0),
]:
    new = output_size(size, kernel, stride, pad, pad)
    print(f"{name:<17} ({size} + 2*{pad} - {kernel}) / {stride} + 1 = {new}")
    size = new

# %%
alexnet = zoo.alexnet()
alexnet.summary()

# %% [markdown]
# Two of the slides' numbers differ from what `summary()` prints:
#
# - slide 175 gives CONV1 « 11 x 11 x 96 x 3 = 34,848 » parameters: that counts the
#   weights only; with its 96 biases the layer has 34,944;
# - slide 180 says « ~68 millions de paramètres », but the one-tower layer list the
#   slides draw has 62,378,344. The [errata page](../notes_errata.md) (*Where
#   cnnumpy departs from the course notes*) records both, with the tests that pin
#   them. Most of the parameters sit in the first fully connected layer:

# %%
rows = layer_rows(alexnet)
conv1_weights = 11 * 11 * 96 * 3
print(f"CONV1: {conv1_weights:,} weights + 96 biases = {rows[0][2]:,} parameters")
total = alexnet.count_params()
print(f"AlexNet: {total:,} parameters (the slide: ~68 M)")
dense = sum(p for name, _, p, _ in rows if name.startswith("Dense"))
fc6 = next(p for name, _, p, _ in rows if name.startswith("Dense"))
print(f"the three dense layers: {dense:,} ({dense / total:.0%}); "
      f"FC6 alone (9216 -> 4096): {fc6:,} ({fc6 / total:.0%})")

# %% [markdown]
# ## VGG16
#
# Slides 182-193: only 3x3 filters with stride 1 and padding 1, 2x2 max-pools, and
# depth (16 layers with weights, 19 for VGG19). Building it allocates its 138 million
# parameters (about half a gigabyte); we only count, we never run it on an image.

# %%
vgg = zoo.vgg16()
vgg.summary()

# %% [markdown]
# Slides 192-193 sum it up: « Nb neurones totaux : ~15 M, Mémoire totale neurones
# (4 octets par neurones) : ~60 Mo, Nb paramètres totaux : 138 M, Mémoire total
# paramètres : 552 Mo, ~612 Mo pour la propagation avant d'une image, >1.1 Go si on
# inclut la rétro-propagation ». The same figures from the model:

# %%
rows = layer_rows(vgg)
params = vgg.count_params()
neurons = sum(r[3] for r in rows)
neurons_before_fc8 = neurons - rows[-1][3]
forward = (params + neurons) * BYTES / MB
print(f"parameters: {params:,} -> {params * BYTES / MB:.1f} MB")
print(f"neurons:    {neurons:,} (every layer) -> {neurons * BYTES / MB:.1f} MB")
print(f"            {neurons_before_fc8:,} without FC8's 1,000 outputs")
print(f"forward pass of one image: {forward:.1f} MB "
      f"(the slide: 138 M x 4 = 552 MB, 15 M x 4 = 60 MB, 552 + 60 = 612 MB)")
print(f"plus one gradient per value in the backward pass: {2 * forward:.0f} MB "
      "(the slide: > 1.1 GB)")

# %% [markdown]
# The slides' 552 and 60 MB come from the rounded 138 M and 15 M; the exact counts
# give 553.4 and 60.3 MB, 613.8 MB together. Where the memory goes is the lesson of
# these slides: the neurons live in the first, wide layers, the parameters in the
# dense layers at the end.

# %%
def short(name: str) -> str:
    """``Conv2D(64, 3, padding=1)`` -> ``C64``, ``Dense(4096)`` -> ``FC4096``."""
    kind, _, rest = name.partition("(")
    first = rest.split(",")[0].rstrip(")")
    return {"Conv2D": f"C{first}", "Dense": f"FC{first}", "MaxPool2D": "pool"}[kind]


kept = [r for r in rows if r[0].split("(")[0] in ("Conv2D", "Dense", "MaxPool2D")]
labels = [short(r[0]) for r in kept]
fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
top.bar(range(len(kept)), [r[3] / 1e6 for r in kept], color="tab:blue")
top.set_ylabel("neurons (millions)")
bottom.bar(range(len(kept)), [r[2] / 1e6 for r in kept], color="tab:orange")
bottom.set_ylabel("parameters (millions)")
bottom.set_xticks(range(len(kept)), labels, rotation=90, fontsize=8)
top.set_title("VGG16, layer by layer")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Why 3x3 filters?
#
# Slides 184-186: three 3x3 convolutions in a row see a 7x7 patch of the input
# (« le champ récepteur de 3 filtres 3x3 consécutifs est 7x7 »), like one 7x7
# convolution, but with $3 \times 9\,C^2 = 27\,C^2$ weights instead of $49\,C^2$ (for
# $C$ channels in and out) and three non-linearities instead of one.
# `cnnumpy.receptive_field` follows the field through the layers:

# %%
C = 64
stack = cnnumpy.Sequential(
    [Conv2D(C, 3, padding=1, use_bias=False) for _ in range(3)], input_shape=(C, 32, 32)
)
single = cnnumpy.Sequential(
    [Conv2D(C, 7, padding=3, use_bias=False)], input_shape=(C, 32, 32)
)
for name, model in [("three 3x3", stack), ("one 7x7", single)]:
    field = cnnumpy.receptive_field(model)[-1]
    print(f"{name}: receptive field {field.size}, {model.count_params():,} weights")
print(f"27 C^2 = {27 * C * C:,}, 49 C^2 = {49 * C * C:,}")

# %% [markdown]
# ## The rest of the zoo
#
# `cnnumpy.zoo` holds every network the notes and the reports build, with the counts
# its docstring pins: the MLP of seed 002, the reports' CIFAR-10 and MNIST networks
# (seeds 000 and 001), ResNets and a mini-GoogLeNet (seed 000's MiniGoogLeNet), VGG19,
# and the char models of chapter 9. One line per image network:

# %%
already = {"lenet1": lenet1, "lenet5": lenet5, "alexnet": alexnet, "vgg16": vgg}
header = ("network", "input", "parameters", "neurons", "forward MB")
print(f"{header[0]:<15}{header[1]:>15}{header[2]:>14}{header[3]:>13}{header[4]:>12}")
for name, build in zoo.MODELS.items():
    if name in zoo.TEXT_MODELS:
        continue
    model = already.get(name) or build()
    t = totals(model, batch_size=1)
    shape = "x".join(map(str, model.input_shape))
    print(f"{name:<15}{shape:>15}{t['params']:>14,}{t['neurons']:>13,}"
          f"{t['forward_mb']:>12.1f}")
    del model

# %% [markdown]
# From LeNet to VGG the building blocks stay the same (convolution, activation,
# pooling, dense layers); what grows is depth, width and the input size, and with
# them the memory. The next chapter trains networks of this kind.
