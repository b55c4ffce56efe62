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
# # 3. La convolution : pas, remplissage et taille de la sortie
#
# Suit le document 003, « Stride et calcul de la taille de la carte d'activation »,
# « Comment gérer les bords ? », « Convolution 2D » et les exercices de dénombrement
# qui suivent (diapositives 39 à 114), avec le document 000, I.3.a « Convolution », et
# le document 002, « Couche convolution ».
#
# Une couche de convolution fait glisser un petit filtre sur son entrée et écrit un
# nombre par position : le produit scalaire du filtre avec la fenêtre qu'il recouvre.
# Ce chapitre suit les diapositives du cours, d'un signal 1-D jusqu'aux images 2-D à
# plusieurs canaux, et laisse cnnumpy calculer chaque nombre qu'elles demandent.

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
import numpy as np
from companion import draw_array, show

import cnnumpy
from cnnumpy.layers import Conv2D
from cnnumpy.textbook import conv, loops, padding

cnnumpy.seed(0)
np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## Un filtre qui glisse sur un signal
#
# Le cours commence en une dimension : un signal de $D = 9$ valeurs et un filtre de
# $F$ poids. Chaque valeur de sortie est le produit scalaire du filtre avec les $F$
# valeurs qu'il recouvre ; puis le filtre avance du pas (stride) $S$. La convolution
# 1-D du livre est la convolution 2-D sur une image de hauteur 1 : le signal a la
# forme $(N, C, L) = (1, 1, 9)$ et le filtre $(F_{\text{filtres}}, C, K) = (1, 1, F)$.

# %%
signal = np.array([[[40.0, 50, 70, 80, 90, 10, 20, 30, 40]]])  # document 003, D = 9
taps = np.array([0.2, -0.3, 0.4, -0.5, 0.6, -0.7, 0.8])


def slide(F, stride):
    """Les F premiers poids sur le signal, sans remplissage, sans biais."""
    out, _ = conv.conv1d_forward(signal, taps[None, None, :F], None, stride)
    return out[0, 0]


for F, stride in [(7, 1), (5, 1), (5, 2)]:
    print(
        f"F={F}, S={stride} : carte {slide(F, stride)}, taille {slide(F, stride).size}"
    )

# %% [markdown]
# Ce sont les cartes des diapositives : $[44, -8, 44]$ pour $F = 7$ ;
# $[35, -18, 33, 1, 32]$ pour $F = 5$ ; $[35, 33, 32]$ avec un pas de 2. Avec un pas
# de 3, les diapositives s'arrêtent : « ERREUR ! Combinaison D-F-S invalide ». Le
# filtre prendrait les positions 0 et 3, et la troisième fenêtre, en 6, dépasserait
# la fin du signal.
#
# ## La taille de la sortie
#
# Combien de fenêtres tiennent : avec $P$ valeurs de remplissage (padding) de chaque
# côté,
#
# $$ D_{\text{sortie}} = \frac{D - F + 2P}{S} + 1 $$
#
# et la configuration n'est valide que si la division tombe juste. cnnumpy écrit la
# formule une seule fois, pour toutes les convolutions et tous les poolings de la
# bibliothèque (les frameworks arrondissent vers le bas, elle aussi) :

# %%
show(padding.output_size)

# %% [markdown]
# et la vérification du cours, qui refuse une division inexacte (les couches `Conv1D`
# et `Conv2D` l'appellent, sauf si on leur passe `allow_uneven=True`) :

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
            f"D={D:>3} F={F:>2} P={P} S={S} : ({D} - {F} + {2 * P}) / {S} + 1 = {size}"
        )
    except ValueError as error:
        print(f"D={D:>3} F={F:>2} P={P} S={S} : {error}")

# %% [markdown]
# ($227$, $11$, pas de $4$ : c'est la première couche d'AlexNet, des cartes de
# $55 \times 55$.) Le message d'erreur de la dernière ligne est celui de cnnumpy, en
# anglais comme tous ses messages.
#
# ## Gérer les bords : le remplissage
#
# Pour garder autant de sorties que d'entrées, le cours complète le signal d'une
# valeur de chaque côté et propose trois options (diapositives 61-62) : des zéros, la
# réflexion, et l'étirement (la valeur du bord répétée, `"replicate"` dans cnnumpy et
# PyTorch). Le signal des diapositives est $[10, 20, -30, 40, -50]$ et le filtre
# $[.1, .2, .3]$ :

# %%
show(padding.pad2d)

# %%
edges = np.array([[[10.0, 20, -30, 40, -50]]])  # document 003, diapositives 61-62
small = np.array([[[0.1, 0.2, 0.3]]])
for mode in ("zeros", "reflect", "replicate"):
    padded = padding.pad2d(edges[:, :, None, :], ((0, 0), (1, 1)), mode)
    out, _ = conv.conv1d_forward(edges, small, None, 1, 1, mode)
    print(f"{mode:>9} : complété {padded.ravel()} -> carte {out.ravel()}")

# %% [markdown]
# Les cartes avec zéros et avec étirement sont celles des diapositives (avec les
# signes moins que la transcription des diapositives perd). Les diapositives
# terminent la carte par réflexion par 2 ; la valeur réfléchie est 40, et
# $40 \times .1 - 50 \times .2 + 40 \times .3 = 6$. Cette coquille, avec les autres
# que cnnumpy a trouvées dans le cours, figure sur la
# [page d'errata](../notes_errata.md) (en anglais).
#
# ## En deux dimensions, avec des canaux
#
# Sur une image, le filtre est un petit carré qui glisse selon les deux axes. Le
# filtrage 2-D du cours, « sans flip de filtre », est une corrélation croisée, comme
# dans tous les frameworks :
#
# $$ (x * W)(i, j) = \sum_u \sum_v x(i + u, j + v) \, W(u, v) $$
#
# Une couche a plusieurs filtres, chacun aussi profond que les $C$ canaux de l'entrée,
# et un biais par filtre. (Le code du livre appelle leur nombre `F`, comme les
# frameworks ; dans la règle de la taille de sortie plus haut, comme dans le cours,
# $F$ est la largeur d'un filtre. Ci-dessous, $f$ numérote les filtres.) Avec le pas
# $S$ et l'entrée complétée $x_p$ :
#
# $$ \text{out}[n, f, i, j] = b_f + \sum_{c} \sum_{u} \sum_{v}
#    w[f, c, u, v] \; x_p[n, c, iS + u, jS + v] $$
#
# Les boucles du livre disent exactement cela, une multiplication-addition par
# instruction :

# %%
show(loops.conv2d_forward_loops)

# %% [markdown]
# ## Une image tirée de vrais tableaux
#
# Une entrée $5 \times 5$, un remplissage par zéros $P = 1$, un filtre $3 \times 3$
# (il réagit aux bords verticaux), un pas $S = 2$ : la sortie fait
# $(5 - 3 + 2)/2 + 1 = 3$ de côté. Tout ce qui est dessiné plus bas est calculé par
# le `conv2d_forward` du livre.

# %%
rng = np.random.default_rng(0)
image = rng.integers(0, 10, (1, 1, 5, 5)).astype(float)
kernel = np.array([[[[1.0, 0, -1], [1, 0, -1], [1, 0, -1]]]])
P, S = 1, 2
out, _ = conv.conv2d_forward(image, kernel, None, stride=S, padding=P)
padded = padding.pad2d(image, P)
print("entrée", image.shape, "-> complétée", padded.shape, "-> sortie", out.shape)

i, j = 1, 2  # une position de sortie, écrite en entier
window = padded[0, 0, i * S : i * S + 3, j * S : j * S + 3]
print(
    f"\nout[{i}, {j}] = somme(fenêtre * filtre), la fenêtre aux lignes "
    f"{i * S}-{i * S + 2}, colonnes {j * S}-{j * S + 2} de l'entrée complétée :"
)
print(window)
print(
    f"= {np.sum(window * kernel[0, 0]):g}, et conv2d_forward donne {out[0, 0, i, j]:g}"
)

# %%
fig, axes = plt.subplots(
    1, 4, figsize=(12, 3.4), gridspec_kw={"width_ratios": [5, 7, 3, 3]}
)
draw_array(axes[0], image[0, 0], "entrée 5x5")
draw_array(
    axes[1],
    padded[0, 0],
    f"complétée, P={P} : deux fenêtres, S={S}",
    boxes=[(0, 0, 3, 3, "tab:red"), (i * S, j * S, 3, 3, "tab:orange")],
)
draw_array(axes[2], kernel[0, 0], "filtre 3x3")
draw_array(
    axes[3],
    out[0, 0],
    "sortie 3x3",
    boxes=[(0, 0, 1, 1, "tab:red"), (i, j, 1, 1, "tab:orange")],
)
fig.tight_layout()
plt.show()

# %% [markdown]
# La même entrée avec chaque mode de remplissage, et les cartes qu'ils donnent avec
# un pas de 1 (seule la bordure de chaque entrée complétée change, et seules les
# valeurs du bord des cartes la suivent) :

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
    draw_array(axes[1, column], out_mode[0, 0], "carte, S=1 (même taille)")
fig.tight_layout()
plt.show()

# %% [markdown]
# Avec la réflexion, la colonne hors de chaque bord est le miroir de celle juste à
# l'intérieur : ce filtre « gauche moins droite » n'y voit aucun bord et écrit 0 sur
# les deux côtés ; le remplissage par zéros invente une bordure de zéros (noire, dans
# une image) et y réagit.
#
# ## Compter les paramètres et les neurones
#
# Les diapositives se terminent par des exercices : combien de paramètres (les poids,
# et les biais quand la couche en a) et combien de neurones (les valeurs des cartes
# d'activation) a une couche ? Un filtre de largeur $F$ a $F \times F \times C$
# poids quel que soit le remplissage, et une couche a un filtre par carte de sortie ; le remplissage et le pas ne changent que la taille des cartes. Les
# couches de cnnumpy répondent sans rien calculer (`output_shape`, `count_params`) :


# %%
def count(input_shape, layer):
    """Paramètres et neurones d'une couche sur une entrée (C, H, W)."""
    layer.build(input_shape)
    shape = layer.output_shape(input_shape)
    return layer.count_params(), int(np.prod(shape)), shape


exercises = [
    (
        "32x32x3, 10 filtres 5x5, same",
        (3, 32, 32),
        Conv2D(10, 5, padding="same", use_bias=False),
    ),
    ("la même avec un biais", (3, 32, 32), Conv2D(10, 5, padding="same")),
    ("32x32x3, 10 filtres 5x5, valid", (3, 32, 32), Conv2D(10, 5)),
    ("100x100x1, 6 filtres 5x5, valid", (1, 100, 100), Conv2D(6, 5, use_bias=False)),
    (
        "32x32x3, 6 filtres 5x5, same",
        (3, 32, 32),
        Conv2D(6, 5, padding="same", use_bias=False),
    ),
    (
        "32x32x3, 6 filtres 5x5, pas de 3",
        (3, 32, 32),
        Conv2D(6, 5, stride=3, use_bias=False),
    ),
]
def fr(n: int) -> str:
    """Un entier écrit à la française : 7 840, pas 7,840."""
    return f"{n:,}".replace(",", "\u202f")


print(f"{'couche':<34}{'paramètres':>11}{'neurones':>9}  cartes")
for text, shape, layer in exercises:
    params, neurons, out_shape = count(shape, layer)
    print(f"{text:<34}{fr(params):>11}{fr(neurons):>9}  {out_shape}")

# %% [markdown]
# Les réponses des diapositives : 750 paramètres, et 760 avec les biais
# ($5 \times 5 \times 3 + 1 = 76$ par filtre) ; $28 \times 28 \times 10 = 7\,840$
# neurones en « valid » ; 150 paramètres et $96 \times 96 \times 6 = 55\,296$
# neurones ; $6\,144$ neurones et 450 paramètres ; $(32 - 5)/3 + 1 = 10$, donc
# $600$ neurones.
#
# Le dernier exercice empile trois couches sur une image $32 \times 32 \times 3$ :
# 3 filtres $7 \times 7$, 5 filtres $9 \times 9$, 4 filtres $11 \times 11$, sans
# biais. Chaque filtre est aussi profond que les cartes qu'il lit (3, puis 3, puis
# 5). `summary()` compte tout le réseau, d'abord avec des convolutions « same », puis
# « valid » (le tableau de cnnumpy est en anglais : Params, Neurons) :

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
# 4 076 paramètres dans les deux cas ($441 + 1\,215 + 2\,420$), et 12 288 neurones en
# « same » contre $2\,028 + 1\,620 + 256 = 3\,904$ en « valid » : les totaux des
# diapositives. (La dernière colonne estime la mémoire qu'une étape d'apprentissage
# garde pour la passe arrière.)
#
# Le chapitre 4 transforme les boucles ci-dessus en un seul produit matriciel.
