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
# # 6. Architectures : LeNet-5, AlexNet, VGG16 et ce qu'elles coûtent
#
# Suit le document 003, « Exemples d'architectures connues » (diapositives 165-193 :
# LeNet-1, LeNet-5, AlexNet, VGGNet et « Pourquoi utiliser des filtres 3x3? »), avec
# les exercices de dénombrement de « Convolution et couche convolutionnelle 2D »
# (diapositives 68 à 114) et les comptes fixés dans le zoo (`cnnumpy/zoo.py`).
#
# Le cours présente chaque réseau comme une liste de couches, puis pose deux
# questions sur chaque couche : combien de **paramètres** apprend-elle, et combien de
# **neurones** (valeurs de sa sortie pour une image) produit-elle ? Les deux réponses
# donnent la mémoire dont le réseau a besoin. Ce chapitre construit les réseaux du
# cours avec `cnnumpy.zoo`, laisse `summary()` répondre aux deux questions couche par
# couche, et compare les totaux aux chiffres du cours, y compris les deux endroits où
# le cours arrondit ou se trompe.

# %% tags=["remove-cell"]
# Chemins, pour l'exécution en simple script : rend notebooks/companion.py importable.
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
MB = 1e6  # les « Mo » du cours : 10^6 octets
BYTES = 4  # « 4 octets par neurone », float32

# %% [markdown]
# ## Compter une couche
#
# Une couche de convolution de $F$ filtres de taille $K_H \times K_W$ sur $C$ canaux
# d'entrée apprend un poids par case du filtre et un biais par filtre, et écrit $F$
# cartes de $H_{out} \times W_{out}$ valeurs :
#
# $$ \text{paramètres} = F\,(C\,K_H\,K_W + 1) \qquad
#    \text{neurones} = F\,H_{out}\,W_{out} \qquad
#    H_{out} = \frac{H + 2P - K_H}{S} + 1 $$
#
# Une couche entièrement connectée de $n_{in}$ vers $n_{out}$ valeurs a
# $(n_{in} + 1)\,n_{out}$ paramètres et $n_{out}$ neurones. Le pooling n'apprend rien
# (« Combien y a-t-il de paramètres? Réponse: 0! ») mais sa sortie compte comme des
# neurones ; les fonctions d'activation agissent sur les neurones de la couche
# précédente et n'en ajoutent pas.
#
# `summary()` applique ces règles à chaque couche. D'abord les exercices du cours,
# chacun un réseau d'une couche :

# %%
def counts(layers, input_shape):
    """Paramètres et neurones d'une petite pile, comptés comme ``summary()``."""
    model = cnnumpy.Sequential(layers, input_shape=input_shape)
    t = totals(model, batch_size=1)
    return t["params"], t["neurons"]


params, _ = counts([Conv2D(10, 5, padding=2)], (3, 32, 32))
print(f"10 filtres 5x5 (+ biais) sur 32x32x3 :            {params:,} paramètres")
params, neurons = counts([Conv2D(6, 5, use_bias=False)], (1, 100, 100))
print(f"6 filtres 5x5 « valid » (sans biais) sur 100x100 : {params:,} paramètres, "
      f"{neurons:,} neurones (96 x 96 x 6)")
three = [Conv2D(3, 7, use_bias=False), Conv2D(5, 9, use_bias=False),
         Conv2D(4, 11, use_bias=False)]
params, valid = counts(three, (3, 32, 32))
print(f"3@7x7, 5@9x9, 4@11x11 sur 32x32x3 :               {params:,} paramètres, "
      f"{valid:,} neurones en « valid »")
three_same = [Conv2D(3, 7, padding="same", use_bias=False),
              Conv2D(5, 9, padding="same", use_bias=False),
              Conv2D(4, 11, padding="same", use_bias=False)]
print(f"                                     en « same » : "
      f"{counts(three_same, (3, 32, 32))[1]:,} neurones")

# %% [markdown]
# ## LeNet-1 et LeNet-5
#
# Diapositives 166-169 : une image $28 \times 28 \times 1$, des convolutions 5x5
# « valid » avec tanh, deux average poolings, puis une couche entièrement connectée
# (LeNet-1, 4 et 12 filtres) ou trois (LeNet-5, 6 et 16 filtres, puis 120, 84 et 10
# neurones). Le zoo écrit LeNet-5 exactement comme la diapositive l'énumère :

# %%
show(zoo.lenet5)

# %%
lenet1 = zoo.lenet1()
lenet5 = zoo.lenet5()
lenet5.summary()

# %% [markdown]
# Le même total à la main, avec les formules ci-dessus : la première convolution voit
# un canal, la seconde les 6 cartes de la première, et la première couche dense les
# $16 \times 4 \times 4 = 256$ valeurs qui restent après le second pooling.

# %%
by_hand = {
    "conv 6@5x5": 6 * (1 * 5 * 5 + 1),
    "conv 16@5x5": 16 * (6 * 5 * 5 + 1),
    "dense 256->120": (256 + 1) * 120,
    "dense 120->84": (120 + 1) * 84,
    "dense 84->10": (84 + 1) * 10,
}
for name, n in by_hand.items():
    print(f"{name:>15} : {n:6,}")
print(f"{'total LeNet-5':>15} : {sum(by_hand.values()):6,}  "
      f"(count_params : {lenet5.count_params():,})")
print(f"{'total LeNet-1':>15} : {lenet1.count_params():6,}")

# %% [markdown]
# ## AlexNet
#
# Diapositives 171-181. Les diapositives demandent la taille de chaque carte, couche
# après couche ; la règle de la taille de sortie répond à chaque question
# (« Réponse: (227-11)/4+1 = 55 ») :

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
# Deux chiffres des diapositives diffèrent de ce qu'affiche `summary()` :
#
# - la diapositive 175 donne pour CONV1 « 11 x 11 x 96 x 3 = 34,848 » paramètres :
#   c'est le nombre de poids seulement ; avec ses 96 biais la couche en a 34 944 ;
# - la diapositive 180 annonce « ~68 millions de paramètres », mais la liste de
#   couches à une seule colonne que dessinent les diapositives en a 62 378 344. La
#   [page d'errata](../notes_errata.md) (*Where cnnumpy departs from the course
#   notes*) relève les deux, avec les tests qui les fixent. La plupart des paramètres
#   sont dans la première couche entièrement connectée :

# %%
rows = layer_rows(alexnet)
conv1_weights = 11 * 11 * 96 * 3
print(f"CONV1 : {conv1_weights:,} poids + 96 biais = {rows[0][2]:,} paramètres")
total = alexnet.count_params()
print(f"AlexNet : {total:,} paramètres (la diapositive : ~68 M)")
dense = sum(p for name, _, p, _ in rows if name.startswith("Dense"))
fc6 = next(p for name, _, p, _ in rows if name.startswith("Dense"))
print(f"les trois couches denses : {dense:,} ({dense / total:.0%}) ; "
      f"FC6 seule (9216 -> 4096) : {fc6:,} ({fc6 / total:.0%})")

# %% [markdown]
# ## VGG16
#
# Diapositives 182-193 : uniquement des filtres 3x3, stride 1 et pad 1, des max-pools
# 2x2, et de la profondeur (16 couches à poids, 19 pour VGG19). Le construire alloue
# ses 138 millions de paramètres (environ un demi-gigaoctet) ; on se contente de
# compter, on ne le fait jamais tourner sur une image.

# %%
vgg = zoo.vgg16()
vgg.summary()

# %% [markdown]
# Les diapositives 192-193 le résument : « Nb neurones totaux : ~15 M, Mémoire totale
# neurones (4 octets par neurones) : ~60 Mo, Nb paramètres totaux : 138 M, Mémoire
# total paramètres : 552 Mo, ~612 Mo pour la propagation avant d'une image, >1.1 Go
# si on inclut la rétro-propagation ». Les mêmes chiffres, tirés du modèle :

# %%
rows = layer_rows(vgg)
params = vgg.count_params()
neurons = sum(r[3] for r in rows)
neurons_before_fc8 = neurons - rows[-1][3]
forward = (params + neurons) * BYTES / MB
print(f"paramètres : {params:,} -> {params * BYTES / MB:.1f} Mo")
print(f"neurones :   {neurons:,} (toutes les couches) -> {neurons * BYTES / MB:.1f} Mo")
print(f"             {neurons_before_fc8:,} sans les 1 000 sorties de FC8")
print(f"propagation avant d'une image : {forward:.1f} Mo "
      f"(la diapositive : 138 M x 4 = 552 Mo, 15 M x 4 = 60 Mo, 552 + 60 = 612 Mo)")
print(f"plus un gradient par valeur pour la rétropropagation : {2 * forward:.0f} Mo "
      "(la diapositive : > 1.1 Go)")

# %% [markdown]
# Les 552 et 60 Mo des diapositives viennent des nombres arrondis 138 M et 15 M ; les
# comptes exacts donnent 553,4 et 60,3 Mo, 613,8 Mo en tout. Où va la mémoire, c'est
# la leçon de ces diapositives : les neurones sont dans les premières couches,
# larges, les paramètres dans les couches denses de la fin.

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
top.set_ylabel("neurones (millions)")
bottom.bar(range(len(kept)), [r[2] / 1e6 for r in kept], color="tab:orange")
bottom.set_ylabel("paramètres (millions)")
bottom.set_xticks(range(len(kept)), labels, rotation=90, fontsize=8)
top.set_title("VGG16, couche par couche")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Pourquoi des filtres 3x3 ?
#
# Diapositives 184-186 : trois convolutions 3x3 à la suite voient un carré 7x7 de
# l'entrée (« le champ récepteur de 3 filtres 3x3 consécutifs est 7x7 »), comme une
# convolution 7x7, mais avec $3 \times 9\,C^2 = 27\,C^2$ poids au lieu de $49\,C^2$
# (pour $C$ canaux en entrée et en sortie) et trois non-linéarités au lieu d'une.
# `cnnumpy.receptive_field` suit le champ récepteur à travers les couches :

# %%
C = 64
stack = cnnumpy.Sequential(
    [Conv2D(C, 3, padding=1, use_bias=False) for _ in range(3)], input_shape=(C, 32, 32)
)
single = cnnumpy.Sequential(
    [Conv2D(C, 7, padding=3, use_bias=False)], input_shape=(C, 32, 32)
)
for name, model in [("trois 3x3", stack), ("une 7x7", single)]:
    field = cnnumpy.receptive_field(model)[-1]
    print(f"{name} : champ récepteur {field.size}, {model.count_params():,} poids")
print(f"27 C^2 = {27 * C * C:,}, 49 C^2 = {49 * C * C:,}")

# %% [markdown]
# ## Le reste du zoo
#
# `cnnumpy.zoo` contient tous les réseaux que construisent le cours et les rapports,
# avec les comptes que fixe sa docstring : le MLP du document 002, les réseaux CIFAR-10
# et MNIST des rapports (documents 000 et 001), des ResNets et un mini-GoogLeNet (le
# MiniGoogLeNet du document 000), VGG19, et les modèles de caractères du chapitre 9.
# Une ligne par réseau d'images :

# %%
already = {"lenet1": lenet1, "lenet5": lenet5, "alexnet": alexnet, "vgg16": vgg}
header = ("réseau", "entrée", "paramètres", "neurones", "avant Mo")
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
# De LeNet à VGG les briques restent les mêmes (convolution, activation, pooling,
# couches denses) ; ce qui grandit, c'est la profondeur, la largeur et la taille de
# l'entrée, et avec elles la mémoire. Le chapitre suivant entraîne des réseaux de ce
# genre.
