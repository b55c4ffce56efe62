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
# # 9. Recurrent networks: the recurrence, backpropagation through time, « masse »
#
# Follows seed 003, « Réseaux récurrents (si le temps le permet) » (slides 194-259):
# the recurrence (slides 203-209), the character model on « masse » (slides 219-235),
# Karpathy's min-char-rnn (slides 236-240), translation (slides 243-249) and
# captioning (slides 250-259).
#
# The networks of the previous chapters map one input to one output (« 1 pour 1 »).
# A recurrent network reads a sequence one element at a time and feeds its neurons'
# output back into their input (« la sortie des neurones est réinjectée dans leur
# entrée »): a hidden state carries what it has seen so far. This chapter reads the
# recurrence and its backward pass in the book, trains the slides' four-letter
# example, then a small min-char-rnn for a few seconds, and points to the two larger
# examples, translation and captioning.

# %% tags=["remove-cell"]
# Path set-up for plain-script runs: makes notebooks/companion.py importable.
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
for folder in (HERE.parent, HERE / "notebooks", HERE):
    if (folder / "companion.py").exists() and str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

import cnnumpy
from cnnumpy import zoo
from cnnumpy.data import Vocabulary, char_windows, one_hot, stdlib_corpus
from cnnumpy.generation import bits_per_character, sample
from cnnumpy.layers import Dense, SimpleRNN
from cnnumpy.optimizers import Adam
from cnnumpy.textbook import recurrent
from companion import show

cnnumpy.seed(0)
np.set_printoptions(precision=3, suppress=True)

# %% [markdown]
# ## The recurrence
#
# Slides 208-209 write the network for an input $\vec{x}$ and a hidden state
# $\vec{h}$, with $f_a$ the activation function (tanh):
#
# $$ \vec{h}_t = f_a(W^{xh} \vec{x}_t + W^{hh} \vec{h}_{t-1}) \qquad
#    \hat{y}_t = W^{hy} \vec{h}_t \qquad
#    \vec{y}_t = \mathrm{softmax}(\hat{y}_t) $$
#
# The same three matrices serve at every step $t$: that is what lets the network read
# sequences of any length. The book writes it for a batch of row vectors, as `Dense`
# writes $Y = XW + B$, with PyTorch's two biases:
#
# $$ h_t = \tanh(x_t W_{xh} + b_{xh} + h_{t-1} W_{hh} + b_{hh}) $$
#
# The input part $x_t W_{xh}$ does not depend on the recurrence, so it is one matrix
# product over every step at once; only $h_{t-1} W_{hh}$ runs in the loop over $t$.

# %%
show(recurrent.simple_rnn_forward)

# %% [markdown]
# ## Backpropagation through time
#
# Unrolled over $T$ steps, the network is a deep network of $T$ layers that share
# their weights, and its backward pass is the usual one run from $t = T$ down to 1.
# The gradient reaching $h_t$ gathers what its own output received and what step
# $t+1$ sends back through $W_{hh}$; every step adds its share to the gradient of the
# shared weights:
#
# $$ \frac{\partial E}{\partial a_t} = \frac{\partial E}{\partial h_t} \odot
#    (1 - h_t^2) \qquad
#    \frac{\partial E}{\partial h_{t-1}} \mathrel{+}= \frac{\partial E}{\partial a_t}
#    W_{hh}^T \qquad
#    \frac{\partial E}{\partial W_{hh}} = \sum_t h_{t-1}^T
#    \frac{\partial E}{\partial a_t} $$

# %%
show(recurrent.simple_rnn_backward)

# %% [markdown]
# A worked example: the one-hot letters of « mass » over the alphabet
# $[a, e, m, s]$, three hidden units, random weights, in float64. The error is
# $E = \sum_t R_t \cdot h_t$ for a fixed random $R$, so that $\partial E / \partial
# h_t = R_t$ is the `dout` the backward pass receives. Centred finite differences
# check its $\partial E / \partial W_{hh}$, the gradient that flows through time:

# %%
alphabet = Vocabulary.of("masse")  # [a, e, m, s], the slides' order
x = one_hot(alphabet.encode("mass"), len(alphabet), dtype=np.float64)[None]  # (1, 4, 4)
rng = np.random.default_rng(0)
W_xh, W_hh = rng.normal(0, 0.5, (4, 3)), rng.normal(0, 0.5, (3, 3))
b_xh, b_hh, h0 = np.zeros(3), np.zeros(3), np.zeros((1, 3))
(h, h_T), cache = recurrent.simple_rnn_forward(x, h0, W_xh, W_hh, b_xh, b_hh)
for t, letter in enumerate("mass"):
    print(f"x_{t + 1} = {letter}   h_{t + 1} = {h[0, t]}")

R = rng.normal(size=h.shape)
dx, dh0, dW_xh, dW_hh, db_xh, db_hh = recurrent.simple_rnn_backward(R, cache)


def error(W):
    (outputs, _), _ = recurrent.simple_rnn_forward(x, h0, W_xh, W, b_xh, b_hh)
    return np.sum(R * outputs)


numeric = np.zeros_like(W_hh)
for index in np.ndindex(W_hh.shape):
    step = np.zeros_like(W_hh)
    step[index] = 1e-6
    numeric[index] = (error(W_hh + step) - error(W_hh - step)) / 2e-6
print("dE/dW_hh, backpropagation through time:\n", dW_hh)
gap = abs(dW_hh - numeric).max()
print(f"largest difference from finite differences: {gap:.1e}")

# %% [markdown]
# ## « masse »: a character model in four letters
#
# Slides 219-235: the alphabet $[a, e, m, s]$, one-hot letters, and a network of 3
# hidden units trained to predict each next letter of « masse »: it reads m, a, s, s
# and must answer a, s, s, e. ([`examples/masse.py`](../../examples/masse.py) is the
# same program as a script.)

# %%
ids = alphabet.encode("masse")
x = one_hot(ids[:-1], len(alphabet))[None].astype(np.float32)  # m a s s: (1, 4, 4)
y = ids[None, 1:]  # a s s e: the letter after each input letter
cnnumpy.seed(0)
model = cnnumpy.Sequential(
    [SimpleRNN(3, return_sequences=True), Dense(len(alphabet))], input_shape=(4, 4)
)
model.compile(optimizer=Adam(lr=0.05), loss="cross_entropy")
model.summary()
start = time.perf_counter()
history = [model.train_on_batch(x, y) for _ in range(300)]
print(f"300 steps in {time.perf_counter() - start:.2f} s: "
      f"loss {history[0]:.3f} -> {history[-1]:.4f}")

# %%
probs = model.predict(x)[0]  # (4 steps, 4 letters)
print("input  softmax over", alphabet.symbols, " -> predicted (expected)")
for t, letter in enumerate("mass"):
    guess = alphabet.symbols[int(probs[t].argmax())]
    print(f"  {letter}    {probs[t]}  -> {guess} ({'masse'[t + 1]})")

fig, ax = plt.subplots(figsize=(6, 3))
ax.semilogy(history)
ax.set_xlabel("training step")
ax.set_ylabel("cross-entropy")
ax.set_title("« masse »: loss per step")
plt.show()

# %% [markdown]
# At test time (slides 229-235, « prédire les lettres les unes après les autres »)
# the network gets the first letter only: (1) compute the hidden layer, (2) the
# softmax, (3) select the most probable letter, (4) feed it back in as the next
# input, and start again. `cnnumpy.generation.sample` does exactly this, carrying the
# hidden state from step to step; `temperature=0` always takes the most probable
# letter, `temperature=1` draws it from the softmax.

# %%
print("from « m », most probable letters:", "m" + sample(model, alphabet, "m", 4, 0))
print("eight letters:                    ", "m" + sample(model, alphabet, "m", 8, 0))
for seed in range(3):
    drawn = sample(model, alphabet, "m", 4, temperature=1.0, rng=seed)
    print(f"drawn from the softmax (seed {seed}):    m{drawn}")

# %% [markdown]
# The model writes « masse »; asked for more, it can only go on with the letters it
# has learned to follow others (see the printout): it has never seen anything after
# the final e.
#
# ## min-char-rnn: the same model on real text
#
# Slides 236-240 show Karpathy's min-char-rnn: 112 lines of NumPy, a recurrent layer
# of 100 units over one-hot characters, windows of 25 characters; trained on
# Shakespeare it first writes noise, then words, then lines (« train more »), and
# trained on the Linux sources it writes C. `zoo.char_rnn` is that model; we train it
# for about five seconds on 300,000 characters of the Python standard library's own
# sources (shipped with every Python, so no download), with Adam and gradients
# clipped to a norm of 5, and sample from it as it learns.

# %%
text = stdlib_corpus(max_chars=300_000)
chars = Vocabulary.of(text)
K = len(chars)
ids = chars.encode(text)
train_ids, held_out = ids[:-20_000], ids[-20_000:]
print(f"{len(text):,} characters, {K} different ones")

cnnumpy.seed(0)
char_model = zoo.char_rnn(vocab_size=K, hidden=100)
char_model.compile(optimizer=Adam(lr=2e-3, clipnorm=5.0), loss="cross_entropy")
print(f"{char_model.count_params():,} parameters")

# %%
def bits(model):
    """Bits per character on the held-out text: log2(K) = 6.6 knows nothing."""
    return bits_per_character(model, held_out, length=25)


checkpoints = (0, 100, 400, 1000, 2000)
print(f"step    0: {bits(char_model):.2f} bits/char  "
      f"{'def ' + sample(char_model, chars, 'def ', 70, 0.8, rng=0)!r}")
step, start = 0, time.perf_counter()
for epoch in range(8):
    for xb, yb in char_windows(train_ids, 25, 32, rng=epoch):
        x_onehot = one_hot(xb.reshape(-1), K).reshape(*xb.shape, K)
        char_model.train_on_batch(x_onehot, yb)
        step += 1
        if step in checkpoints:
            print(f"step {step:4d}: {bits(char_model):.2f} bits/char  "
                  f"{'def ' + sample(char_model, chars, 'def ', 70, 0.8, rng=0)!r}")
    if step >= checkpoints[-1]:
        break
print(f"{step} steps in {time.perf_counter() - start:.1f} s")

# %% [markdown]
# As on slide 238, each checkpoint (every sample starts from the same prime, "def ")
# writes something closer to the text: first any of the $K$ characters, then mostly
# letters, spaces and line breaks, then Python's indentation, comments and pieces of
# words (a longer run, [`examples/char_rnn.py`](../../examples/char_rnn.py), gets
# much further). The bits per character measure the same progress on text the model
# never trained on.
#
# ## Sequences of different lengths: translation and captioning
#
# Slides 243-249 translate « assez » into "enough" letter by letter (Sutskever et
# al. 2014): the input and output sequences have different lengths (« pas le même
# nombre d'entrées que de sorties »), so an **encoder** reads the whole French word
# and its final state becomes the initial state of a **decoder**, which writes the
# English word from `<BoS>` until it writes `<EoS>`.
# [`examples/translate.py`](../../examples/translate.py) builds it from `Embedding`,
# `GRU` and `Dense` layers and runs the backward pass by hand through both: it learns
# the slides' pair, then translates French number words into English ones (« deux
# mille quatre-vingt-onze » -> "two thousand ninety-one"); its docstring reports
# 99.2% exact on 1,000 numbers it never saw, in under a minute on two cores.
#
# Slides 250-259 caption images: the features of a pre-trained VGG16 become the first
# state of a recurrent network that writes the caption one word at a time, each
# sampled word copied back to its input (« copie la sortie vers l'entrée »).
# [`examples/caption.py`](../../examples/caption.py) does the same offline: a small
# CNN reads a strip of MNIST digits and a GRU writes what it sees ("seven two one"),
# the CNN and the GRU trained together, end to end. It needs the full MNIST files
# (its test strips use MNIST's test digits): `CNNUMPY_DATA` names the folder that
# holds them, or `--quick` runs a tiny version on the bundled 5,000-digit sample.
#
#     .venv/bin/python examples/translate.py
#     CNNUMPY_DATA=/path/to/data .venv/bin/python examples/caption.py
