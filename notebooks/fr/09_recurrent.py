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
# # 9. Réseaux récurrents : la récurrence, la rétropropagation dans le temps, « masse »
#
# Suit le document 003, « Réseaux récurrents (si le temps le permet) » (diapositives
# 194-259) : la récurrence (diapositives 203-209), le modèle de caractères sur
# « masse » (diapositives 219-235), le min-char-rnn de Karpathy (diapositives
# 236-240), la traduction (diapositives 243-249) et la description d'images
# (captioning, diapositives 250-259).
#
# Les réseaux des chapitres précédents font correspondre une sortie à une entrée
# (« 1 pour 1 »). Un réseau récurrent lit une séquence un élément à la fois et
# réinjecte la sortie de ses neurones dans leur entrée (« la sortie des neurones est
# réinjectée dans leur entrée ») : un état caché garde la trace de ce qu'il a déjà
# vu. Ce chapitre lit la récurrence et sa rétropropagation dans le livre, entraîne
# l'exemple à quatre lettres des diapositives, puis un petit min-char-rnn pendant
# quelques secondes, et présente les deux grands exemples, la traduction et la
# description d'images.

# %% tags=["remove-cell"]
# Chemins, pour l'exécution en simple script : rend notebooks/companion.py importable.
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
# ## La récurrence
#
# Les diapositives 208-209 écrivent le réseau pour une entrée $\vec{x}$ et un état
# caché $\vec{h}$, avec $f_a$ la fonction d'activation (tanh) :
#
# $$ \vec{h}_t = f_a(W^{xh} \vec{x}_t + W^{hh} \vec{h}_{t-1}) \qquad
#    \hat{y}_t = W^{hy} \vec{h}_t \qquad
#    \vec{y}_t = \mathrm{softmax}(\hat{y}_t) $$
#
# Les trois mêmes matrices servent à chaque pas $t$ : c'est ce qui permet au réseau
# de lire des séquences de n'importe quelle longueur. Le livre l'écrit pour un lot de
# vecteurs lignes, comme `Dense` écrit $Y = XW + B$, avec les deux biais de PyTorch :
#
# $$ h_t = \tanh(x_t W_{xh} + b_{xh} + h_{t-1} W_{hh} + b_{hh}) $$
#
# La partie d'entrée $x_t W_{xh}$ ne dépend pas de la récurrence : c'est un seul
# produit matriciel pour tous les pas à la fois ; seul $h_{t-1} W_{hh}$ tourne dans
# la boucle sur $t$.

# %%
show(recurrent.simple_rnn_forward)

# %% [markdown]
# ## La rétropropagation dans le temps
#
# Déroulé sur $T$ pas, le réseau est un réseau profond de $T$ couches qui partagent
# leurs poids, et sa rétropropagation est la rétropropagation habituelle, de $t = T$
# jusqu'à 1. Le gradient qui arrive à $h_t$ réunit ce qu'a reçu sa propre sortie et
# ce que le pas $t+1$ renvoie à travers $W_{hh}$ ; chaque pas ajoute sa part au
# gradient des poids partagés :
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
# Un exemple chiffré : les lettres « one hot » de « mass » sur l'alphabet
# $[a, e, m, s]$, trois unités cachées, des poids aléatoires, en float64. L'erreur est
# $E = \sum_t R_t \cdot h_t$ pour un $R$ aléatoire fixé, si bien que
# $\partial E / \partial h_t = R_t$ est le `dout` que reçoit la rétropropagation. Des
# différences finies centrées vérifient son $\partial E / \partial W_{hh}$, le gradient
# qui traverse le temps :

# %%
alphabet = Vocabulary.of("masse")  # [a, e, m, s], l'ordre des diapositives
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
print("dE/dW_hh, rétropropagation dans le temps :\n", dW_hh)
gap = abs(dW_hh - numeric).max()
print(f"plus grand écart avec les différences finies : {gap:.1e}")

# %% [markdown]
# ## « masse » : un modèle de caractères en quatre lettres
#
# Diapositives 219-235 : l'alphabet $[a, e, m, s]$, des lettres « one hot », et un
# réseau de 3 unités cachées entraîné à prédire chaque lettre suivante de « masse » :
# il lit m, a, s, s et doit répondre a, s, s, e.
# ([`examples/masse.py`](../../examples/masse.py) est le même programme, en script.)

# %%
ids = alphabet.encode("masse")
x = one_hot(ids[:-1], len(alphabet))[None].astype(np.float32)  # m a s s : (1, 4, 4)
y = ids[None, 1:]  # a s s e : la lettre qui suit chaque lettre lue
cnnumpy.seed(0)
model = cnnumpy.Sequential(
    [SimpleRNN(3, return_sequences=True), Dense(len(alphabet))], input_shape=(4, 4)
)
model.compile(optimizer=Adam(lr=0.05), loss="cross_entropy")
model.summary()
start = time.perf_counter()
history = [model.train_on_batch(x, y) for _ in range(300)]
print(f"300 pas en {time.perf_counter() - start:.2f} s : "
      f"coût {history[0]:.3f} -> {history[-1]:.4f}")

# %%
probs = model.predict(x)[0]  # (4 pas, 4 lettres)
print("entrée  softmax sur", alphabet.symbols, " -> prédite (attendue)")
for t, letter in enumerate("mass"):
    guess = alphabet.symbols[int(probs[t].argmax())]
    print(f"  {letter}     {probs[t]}  -> {guess} ({'masse'[t + 1]})")

fig, ax = plt.subplots(figsize=(6, 3))
ax.semilogy(history)
ax.set_xlabel("pas d'entraînement")
ax.set_ylabel("entropie croisée")
ax.set_title("« masse » : coût à chaque pas")
plt.show()

# %% [markdown]
# En test (diapositives 229-235, « prédire les lettres les unes après les autres »)
# le réseau ne reçoit que la première lettre : (1) calcul de la couche cachée, (2)
# calcul de la sortie (softmax), (3) sélectionner le caractère le plus probable, (4)
# l'injecter au début du réseau, et on recommence. `cnnumpy.generation.sample` fait
# exactement cela, en gardant l'état caché d'un pas à l'autre ; `temperature=0` prend
# toujours la lettre la plus probable, `temperature=1` la tire selon le softmax.

# %%
print("depuis « m », les plus probables :", "m" + sample(model, alphabet, "m", 4, 0))
print("huit lettres :                   ", "m" + sample(model, alphabet, "m", 8, 0))
for seed in range(3):
    drawn = sample(model, alphabet, "m", 4, temperature=1.0, rng=seed)
    print(f"tirées du softmax (graine {seed}) : m{drawn}")

# %% [markdown]
# Le modèle écrit « masse » ; si on lui en demande plus, il ne peut continuer qu'avec
# les lettres qu'il a appris à faire suivre d'autres (voir l'affichage) : il n'a
# jamais rien vu après le e final.
#
# ## min-char-rnn : le même modèle sur un vrai texte
#
# Les diapositives 236-240 montrent le min-char-rnn de Karpathy : 112 lignes de
# NumPy, une couche récurrente de 100 unités sur des caractères « one hot », des
# fenêtres de 25 caractères ; entraîné sur Shakespeare il écrit d'abord du bruit,
# puis des mots, puis des vers (« train more »), et entraîné sur le code source de
# Linux il écrit du C. `zoo.char_rnn` est ce modèle ; on l'entraîne environ cinq
# secondes sur 300 000 caractères des sources de la bibliothèque standard de Python
# (livrées avec chaque Python, donc sans téléchargement), avec Adam et des gradients
# ramenés à une norme de 5 au plus, et on tire du texte au fil de l'apprentissage.

# %%
text = stdlib_corpus(max_chars=300_000)
chars = Vocabulary.of(text)
K = len(chars)
ids = chars.encode(text)
train_ids, held_out = ids[:-20_000], ids[-20_000:]
print(f"{len(text):,} caractères, dont {K} différents")

cnnumpy.seed(0)
char_model = zoo.char_rnn(vocab_size=K, hidden=100)
char_model.compile(optimizer=Adam(lr=2e-3, clipnorm=5.0), loss="cross_entropy")
print(f"{char_model.count_params():,} paramètres")

# %%
def bits(model):
    """Bits par caractère sur le texte mis de côté : log2(K) = 6.6 ne sait rien."""
    return bits_per_character(model, held_out, length=25)


checkpoints = (0, 100, 400, 1000, 2000)
print(f"pas    0 : {bits(char_model):.2f} bits/car.  "
      f"{'def ' + sample(char_model, chars, 'def ', 70, 0.8, rng=0)!r}")
step, start = 0, time.perf_counter()
for epoch in range(8):
    for xb, yb in char_windows(train_ids, 25, 32, rng=epoch):
        x_onehot = one_hot(xb.reshape(-1), K).reshape(*xb.shape, K)
        char_model.train_on_batch(x_onehot, yb)
        step += 1
        if step in checkpoints:
            print(f"pas {step:4d} : {bits(char_model):.2f} bits/car.  "
                  f"{'def ' + sample(char_model, chars, 'def ', 70, 0.8, rng=0)!r}")
    if step >= checkpoints[-1]:
        break
print(f"{step} pas en {time.perf_counter() - start:.1f} s")

# %% [markdown]
# Comme sur la diapositive 238, chaque étape (tous les tirages partent du même
# début, "def ") écrit quelque chose de plus proche du texte : d'abord n'importe
# lequel des $K$ caractères, puis surtout des lettres, des espaces et des retours à
# la ligne, puis l'indentation de Python, des commentaires et des morceaux de mots
# (un entraînement plus long, [`examples/char_rnn.py`](../../examples/char_rnn.py),
# va bien plus loin). Les bits par caractère mesurent le même progrès sur un texte
# que le modèle n'a jamais vu.
#
# ## Des séquences de longueurs différentes : traduction et description d'images
#
# Les diapositives 243-249 traduisent « assez » en "enough" lettre par lettre
# (Sutskever et al. 2014) : les séquences d'entrée et de sortie n'ont pas la même
# longueur (« pas le même nombre d'entrées que de sorties »), donc un **encodeur**
# lit tout le mot français et son état final devient l'état initial d'un
# **décodeur**, qui écrit le mot anglais depuis `<BoS>` jusqu'à ce qu'il écrive
# `<EoS>`. [`examples/translate.py`](../../examples/translate.py) le construit avec
# des couches `Embedding`, `GRU` et `Dense` et fait la rétropropagation à la main à
# travers les deux : il apprend la paire des diapositives, puis traduit les nombres
# écrits en lettres du français vers l'anglais (« deux mille quatre-vingt-onze » ->
# "two thousand ninety-one") ; sa docstring annonce 99,2 % de traductions exactes
# sur 1 000 nombres qu'il n'a jamais vus, en moins d'une minute sur deux cœurs.
#
# Les diapositives 250-259 décrivent des images : les caractéristiques d'un VGG16
# pré-entraîné deviennent le premier état d'un réseau récurrent qui écrit la
# description un mot à la fois, chaque mot tiré étant recopié à son entrée (« copie
# la sortie vers l'entrée »). [`examples/caption.py`](../../examples/caption.py) fait
# de même hors ligne : un petit CNN lit une bande de chiffres MNIST et un GRU écrit ce
# qu'il voit ("seven two one"), le CNN et le GRU entraînés ensemble, de bout en bout.
# Il lui faut les fichiers MNIST complets (ses bandes de test utilisent les chiffres
# de test de MNIST) : `CNNUMPY_DATA` désigne le dossier qui les contient, ou
# `--quick` lance une version minuscule sur l'échantillon de 5 000 chiffres fourni.
#
#     .venv/bin/python examples/translate.py
#     CNNUMPY_DATA=/chemin/vers/data .venv/bin/python examples/caption.py
