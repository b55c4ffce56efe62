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
# # 4. Des boucles à un seul produit matriciel : einsum et im2col
#
# Suit le document 001, 3.1 « La méthode Im2Col » et 3.2 « Les couches de
# convolution » ; le document 000, III.1.a « Optimisation avec Numpy » (techniques 1
# à 4) et III.1.b « Batch » ; et les diapositives du document 003 sur la convolution
# comme produit matriciel (diapositives 148 à 164).
#
# Le chapitre 3 a écrit la convolution en six boucles imbriquées. Le document 000 a
# mesuré ce que cela coûte : 1662 s pour son lot, là où `einsum` prenait 3,8 s. Le
# document 001 va plus loin et ramène toute la convolution à un seul produit
# matriciel, en disposant chaque fenêtre de l'entrée en colonne : im2col. Ce chapitre
# construit cette matrice à partir d'une vraie petite entrée, vérifie que toutes les
# façons de calculer la convolution donnent les mêmes nombres, et les chronomètre.

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
from companion import best_time, draw_array, show

import cnnumpy
from cnnumpy.engine import ops
from cnnumpy.textbook import conv, im2col, im2col_indices, loops, padding

cnnumpy.seed(0)
np.set_printoptions(precision=4, suppress=True, linewidth=100)

# %% [markdown]
# ## Les fenêtres en colonnes
#
# Chaque valeur de sortie d'une convolution est le produit scalaire d'un filtre avec
# une fenêtre de l'entrée (complétée). Si chaque fenêtre, tous ses canaux compris, est
# déroulée en une colonne d'une matrice $X_{\text{cols}}$, et chaque filtre en une
# ligne de $W_{\text{mat}}$, alors tous les produits scalaires de tous les filtres
# avec toutes les fenêtres de toutes les images forment un seul produit matriciel :
#
# $$ \underbrace{\text{out}}_{F \times (N H_o W_o)} =
#    \underbrace{W_{\text{mat}}}_{F \times (C K_H K_W)} \;
#    \underbrace{X_{\text{cols}}}_{(C K_H K_W) \times (N H_o W_o)} + b $$
#
# L'exemple du document 001 : une image RGB de $4 \times 4$ pixels, des fenêtres de
# $2 \times 2$, un pas de 1. Comme dans sa figure 8, chaque pixel contient son propre
# numéro de position : la matrice montre d'où chaque case est lue.

# %%
positions = np.arange(3 * 4 * 4, dtype=float).reshape(1, 3, 4, 4)
cols = im2col.im2col(positions, (2, 2), (1, 1))
print(
    "image",
    positions.shape,
    "-> colonnes",
    cols.shape,
    "(C*KH*KW lignes, N*Ho*Wo colonnes)",
)
print(cols.astype(int))

# %% [markdown]
# Les lignes vont canal par canal (rouge, vert, bleu) et, dans un canal, suivent les
# pixels de la fenêtre ligne par ligne ; les colonnes sont les $3 \times 3 = 9$
# positions de la fenêtre. La première colonne lit les pixels 0, 1, 4, 5 de chaque
# canal (rouge : 0, 1, 4, 5 ; vert : 16, 17, 20, 21 ; ...) :

# %%
fig, axes = plt.subplot_mosaic(
    [["rouge", "vert", "bleu"], ["cols", "cols", "cols"]],
    figsize=(9, 9),
    height_ratios=[1, 2.4],
)
for c, colour in enumerate(("rouge", "vert", "bleu")):
    draw_array(
        axes[colour],
        positions[0, c],
        f"canal {c} ({colour})",
        boxes=[(0, 0, 2, 2, "tab:red"), (1, 2, 2, 2, "tab:orange")],
        fmt="{:.0f}",
    )
draw_array(
    axes["cols"],
    cols,
    "im2col : 12 lignes x 9 colonnes",
    boxes=[(0, 0, 12, 1, "tab:red"), (0, 5, 12, 1, "tab:orange")],
    fmt="{:.0f}",
)
fig.tight_layout()
plt.show()

# %% [markdown]
# L'`im2col` du livre ne copie pas les fenêtres une à une : il prend d'abord une vue
# de l'entrée où chaque fenêtre est déjà présente (seuls les pas en mémoire du tableau
# changent, aucune donnée ne bouge), puis copie cette vue une seule fois dans la
# matrice des colonnes.

# %%
show(im2col.window_view)

# %%
show(im2col.im2col)

# %% [markdown]
# Le document 001 construit la même matrice autrement : il calcule les tableaux
# d'indices $k$ (le canal), $i$ (la ligne) et $j$ (la colonne) de chaque case avec
# `np.repeat` et `np.tile` (son `get_indices`), puis rassemble `images[:, k, i, j]`.
# Le livre garde cette version à côté du cours, et les deux donnent la même matrice :

# %%
show(im2col_indices.window_indices)

# %%
same = np.array_equal(cols, im2col_indices.im2col_indices(positions, (2, 2), (1, 1)))
print("les indices du document 001 donnent la même matrice :", same)

# %% [markdown]
# ## La matrice du document 003, et le produit
#
# Le document 003 écrit la convolution « valid » $3 \times 3$ d'une entrée
# $4 \times 4$, $X_0 \dots X_{15}$, comme un produit $[W_0 \dots W_8] \times X$ :
# quatre sorties, une colonne de neuf entrées chacune. Les colonnes d'im2col,
# affichées en lignes :

# %%
x16 = np.arange(16.0).reshape(1, 1, 4, 4)
for n, column in enumerate(im2col.im2col(x16, (3, 3), (1, 1)).T):
    print(f"Y{n} : X" + ", X".join(str(int(v)) for v in column))

# %% [markdown]
# (La matrice des diapositives termine la colonne de $Y_2$ par
# $X_{11}, X_{12}, X_{13}$ ; leur propre formule de $Y_2$, diapositive 152, finit par
# $X_{12}, X_{13}, X_{14}$, comme ci-dessus.)
#
# La convolution du livre est alors : compléter, im2col, et un seul produit, le biais
# voyageant comme une dernière colonne des poids multipliée par une ligne de uns :

# %%
show(conv.conv2d_forward)

# %% [markdown]
# ## col2im : le chemin du retour
#
# La passe arrière demande le mouvement inverse : le gradient de chaque case des
# colonnes doit être ajouté au pixel d'où elle a été lue. Les fenêtres se
# chevauchent : un pixel lu par plusieurs fenêtres reçoit la somme de leurs gradients
# (document 001, figure 9), ce qui est exactement ce que demande la dérivation des
# fonctions composées.

# %%
show(im2col.col2im)

# %% [markdown]
# Renvoyer par col2im une matrice de colonnes pleine de uns compte combien de
# fenêtres lisent chaque pixel ; et col2im est la transposée d'im2col, donc pour tout
# $x$ et tout $c$,
# $\langle \mathrm{im2col}(x), c \rangle = \langle x, \mathrm{col2im}(c) \rangle$ :

# %%
ones = np.ones_like(cols)
print("fenêtres lisant chaque pixel (canal 0) :")
print(im2col.col2im(ones, positions.shape, (2, 2), (1, 1))[0, 0])

rng = np.random.default_rng(0)
x_any = rng.standard_normal((2, 3, 5, 5))
c_any = rng.standard_normal((3 * 3 * 3, 2 * 3 * 3))
left = np.sum(im2col.im2col(x_any, (3, 3), (1, 1)) * c_any)
right = np.sum(x_any * im2col.col2im(c_any, x_any.shape, (3, 3), (1, 1)))
print(f"\n<im2col(x), c> = {left:.10f}\n<x, col2im(c)> = {right:.10f}")

# %% [markdown]
# ## Cinq façons, les mêmes nombres
#
# Un petit lot : 4 images de 3 canaux, $16 \times 16$, 8 filtres $3 \times 3$,
# remplissage 1, pas 1. La même convolution calculée
#
# 1. par les boucles du livre (la « technique 1 » du document 000) ;
# 2. par `einsum` à chaque position de sortie (la « technique 4 » du document 000 :
#    un appel par position, les sommes des fenêtres faites par NumPy) ;
# 3. par un seul `einsum` sur la vue de toutes les fenêtres (plus aucune boucle
#    Python) ;
# 4. par im2col et un seul produit matriciel (le livre, document 001) ;
# 5. par le moteur de cnnumpy, dont la bibliothèque utilise les noyaux quand il n'est
#    pas éteint.

# %%
N, C, H, W, F, K = 4, 3, 16, 16, 8, 3
x = rng.standard_normal((N, C, H, W))
w = rng.standard_normal((F, C, K, K)) * 0.1
b = rng.standard_normal(F) * 0.1
xp = padding.pad2d(x, 1)
H_out, W_out = padding.output_size_2d((H, W), (K, K), (1, 1), 1)


def by_loops():
    return loops.conv2d_forward_loops(x, w, b, 1, 1)[0]


def by_einsum_per_position():
    out = np.empty((N, F, H_out, W_out))
    for n in range(N):
        for i in range(H_out):
            for j in range(W_out):
                window = xp[n, :, i : i + K, j : j + K]
                out[n, :, i, j] = np.einsum("...ijk,ijk", w, window) + b
    return out


def by_einsum_on_windows():
    windows = im2col.window_view(xp, (K, K), (1, 1))  # (C, KH, KW, N, Ho, Wo)
    return np.einsum("fcuv,cuvnhw->nfhw", w, windows) + b[:, None, None]


def by_im2col():
    return conv.conv2d_forward(x, w, b, 1, 1)[0]


def by_engine():
    return ops.conv2d.forward(x, w, b, 1, 1)[0]


ways = {
    "boucles (technique 1)": by_loops,
    "einsum par position (technique 4)": by_einsum_per_position,
    "einsum sur la vue des fenêtres": by_einsum_on_windows,
    "im2col + un produit (le livre)": by_im2col,
    "moteur": by_engine,
}
reference = by_loops()
for name, way in ways.items():
    gap = np.max(np.abs(way() - reference))
    print(f"{name:<35} plus grand écart aux boucles : {gap:.1e}")

# %% [markdown]
# Les écarts sont des erreurs d'arrondi (sommes faites dans un autre ordre). Puis le
# chronométrage de la passe avant, le plus rapide de quelques essais pour chacune :

# %%
timings = {}
for name, way in ways.items():
    timings[name] = best_time(way, repeat=1 if name.startswith("boucles") else 5)
print(f"passe avant, N={N}, {C}x{H}x{W}, {F} filtres {K}x{K}")
print(f"{'façon':<35}{'ms':>10}{'x im2col':>10}")
for name, seconds in timings.items():
    ratio = seconds / timings["im2col + un produit (le livre)"]
    print(f"{name:<35}{seconds * 1e3:>10.3f}{ratio:>10.1f}")

# %%
fig, ax = plt.subplots(figsize=(7, 2.8))
ax.barh(list(timings), [t * 1e3 for t in timings.values()], color="tab:blue")
ax.set_xscale("log")
ax.set_xlabel("millisecondes (échelle log), passe avant")
ax.invert_yaxis()
ax.set_title("Une convolution, cinq façons")
fig.tight_layout()
plt.show()

# %% [markdown]
# Les nombres changent avec la machine, l'ordre non : chaque boucle Python qui reste
# coûte un facteur, et im2col supprime la dernière en confiant toutes les
# multiplications-additions à un seul produit matriciel. Ce qu'il paie en échange,
# c'est la mémoire : la matrice des colonnes contient chaque pixel autant de fois que
# de fenêtres le lisent, ici $K^2 = 9$ fois.
#
# Le chapitre 5 se sert des mêmes colonnes pour le pooling.
