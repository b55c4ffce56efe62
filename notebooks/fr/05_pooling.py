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
# # 5. Le pooling : maximum et moyenne, passe avant et passe arrière
#
# Suit le document 003, « Pooling », « Max pooling » et « Mean pooling »
# (diapositives 139 à 144) ; le document 000, I.3.b « Pooling » ; et le document 001,
# 2.3 « Les couches de pooling » (2.3.1 propagation avant, 2.3.2 propagation arrière)
# et 3.3.
#
# Une couche de pooling réduit chaque carte d'activation : elle fait glisser une
# fenêtre sur chaque canal et remplace chaque fenêtre par une seule valeur, son
# maximum ou sa moyenne. Elle n'a pas de paramètres ; sa passe arrière doit seulement
# renvoyer le gradient de chaque fenêtre aux entrées qui ont fait la sortie.

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
from cnnumpy.layers import MaxPool2D
from cnnumpy.textbook import padding, pool

cnnumpy.seed(0)
np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## Passe avant : une valeur par fenêtre
#
# Le document 000 écrit une sortie de pooling comme une fonction de la fenêtre
# qu'elle couvre, pour le max pooling la plus grande de ses entrées :
#
# $$ y_{c,h,w} = \max_{0 \le i < K_H,\; 0 \le j < K_W} x_{c,\; hS + i,\; wS + j}
#    \qquad\text{ou}\qquad
#    y_{c,h,w} = \frac{1}{K_H K_W} \sum_{i, j} x_{c,\; hS + i,\; wS + j} $$
#
# et sa taille par la règle de la convolution, sans remplissage :
#
# $$ H_{\text{sortie}} = \frac{H - F}{S} + 1 $$
#
# Le livre la calcule comme le document 001 (3.3) : im2col dispose chaque fenêtre de
# chaque canal en colonne, et le pooling est un maximum (ou une moyenne) le long de
# chaque colonne. Le maximum retient aussi *où* il se trouvait : le masque dont la
# passe arrière a besoin.

# %%
show(pool.maxpool2d_forward)

# %%
show(pool.avgpool2d_forward)

# %% [markdown]
# ## L'exemple des diapositives
#
# Le document 003 applique un pooling à une carte $8 \times 8$ avec des fenêtres
# « valid » $2 \times 2$ et un pas de 2, donc $(8 - 2)/2 + 1 = 4$ valeurs de côté :

# %%
fmap = np.array(
    [
        [1, 2, 4, 4, 9, 3, 1, 2],
        [6, 7, 8, 4, -3, -3, 6, 3],
        [9, -9, 8, -4, 5, 5, 3, 0],
        [8, -8, 9, -9, 5, 5, 0, 1],
        [0, 0, 1, 2, 7, 9, 7, 8],
        [-1, -3, 3, 6, 8, 8, 7, 6],
        [9, 9, 8, 2, 1, 5, -1, -1],
        [1, 1, -2, 8, 3, 7, 4, -2],
    ],
    dtype=float,
)[None, None]  # (N, C, H, W) = (1, 1, 8, 8)

y_max, max_cache = pool.maxpool2d_forward(fmap, 2, 2)
y_avg, avg_cache = pool.avgpool2d_forward(fmap, 2, 2)
print("max pooling 2x2, pas de 2 :\n", y_max[0, 0])
print("\npooling par moyenne 2x2, pas de 2 :\n", y_avg[0, 0])

# %% [markdown]
# La carte du max pooling est celle de la diapositive. Douze des seize moyennes de la
# diapositive sont justes ; quatre fenêtres, $(9, 3, -3, -3)$, $(1, 2, 6, 3)$,
# $(1, 2, 3, 6)$ et $(-1, -1, 4, -2)$, ont pour moyennes 1,5, 3, 3 et 0, affichées
# ci-dessus, là où la diapositive écrit 3, 4, 8 et 1 (ces écarts figurent sur la page
# « Where cnnumpy departs from the course notes, and why »).
#
# Les diapositives demandent ensuite des fenêtres $2 \times 2$ avec un pas de 1, et
# des fenêtres $3 \times 3$ avec un pas de 2 (des fenêtres qui se chevauchent, comme
# le pooling d'AlexNet) :

# %%
for F, S in [(2, 2), (2, 1), (3, 2)]:
    exact = (8 - F) / S + 1
    size = padding.output_size(8, F, S)
    print(f"F={F}, S={S} : (8 - {F}) / {S} + 1 = {exact:g} -> cartes {size}x{size}")
print("\nmax pooling 3x3, pas de 2 :\n", pool.maxpool2d_forward(fmap, 3, 2)[0][0, 0])

# %% [markdown]
# Avec des fenêtres $3 \times 3$ et un pas de 2, la division ne tombe pas juste : la
# dernière colonne et la dernière ligne de la carte sont laissées de côté, comme dans
# tous les frameworks. (Les cartes $55 \times 55$ d'AlexNet se divisent exactement :
# $(55 - 3)/2 + 1 = 27$.)
#
# ## Passe arrière : le gradient va au maximum
#
# Le maximum d'une fenêtre est la seule entrée dont sa sortie dépend (décaler un peu
# une autre entrée ne change pas le maximum) : tout le gradient
# $\partial E / \partial y$ de la fenêtre va donc à cette entrée, et les autres
# reçoivent 0. Document 001 (2.3.2) : « on redistribue les erreurs [...] aux
# positions des maxima ». Pour la moyenne, chaque entrée de la fenêtre compte pour
# $1 / (K_H K_W)$ :
#
# $$ \frac{\partial E}{\partial x} = \text{masque} \odot
#    \frac{\partial E}{\partial y}
#    \qquad\text{ou}\qquad
#    \frac{\partial E}{\partial x_{c,\,hS+i,\,wS+j}} \mathrel{+}=
#    \frac{1}{K_H K_W} \frac{\partial E}{\partial y_{c,h,w}} $$
#
# col2im remet le gradient de chaque colonne sur sa fenêtre, en additionnant là où
# les fenêtres se chevauchent.

# %%
show(pool.maxpool2d_backward)

# %%
show(pool.avgpool2d_backward)

# %% [markdown]
# Avec un gradient amont différent pour chaque sortie (de 1 à 16), chaque nombre
# atterrit sur le maximum de sa propre fenêtre :

# %%
dout = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
dx_max = pool.maxpool2d_backward(dout, max_cache)
dx_avg = pool.avgpool2d_backward(dout, avg_cache)
print("dE/dy :\n", dout[0, 0])
print("\ndE/dx, max pooling :\n", dx_max[0, 0])
print("\ndE/dx, pooling par moyenne :\n", dx_avg[0, 0])

# %% [markdown]
# Une fenêtre de la carte des diapositives, lignes 2-3 et colonnes 4-5, contient
# quatre 5 : elle a quatre maxima. Les documents 000 et 001 construisent leur masque
# comme « égal au maximum » et enverraient le gradient (ici 7) aux quatre, 28 en
# tout. Or augmenter toute la fenêtre d'un petit $t$ augmente son maximum d'exactement
# $t$ : les gradients de la fenêtre doivent donc totaliser 7. cnnumpy l'envoie au
# premier maximum dans l'ordre de lecture, comme PyTorch.

# %%
print("fenêtre :\n", fmap[0, 0, 2:4, 4:6])
print("sa part de dE/dx :\n", dx_max[0, 0, 2:4, 4:6])

# %% [markdown]
# Une vérification par différences finies confirme la règle sur une carte aléatoire
# (sans ex æquo) :

# %%
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 3, 6, 6))
g = rng.standard_normal((2, 3, 3, 3))
_, cache = pool.maxpool2d_forward(x, 2, 2)
analytic = pool.maxpool2d_backward(g, cache)
numeric = np.zeros_like(x)
h = 1e-6
for index in np.ndindex(x.shape):
    saved = x[index]
    x[index] = saved + h
    up = np.sum(pool.maxpool2d_forward(x, 2, 2)[0] * g)
    x[index] = saved - h
    down = np.sum(pool.maxpool2d_forward(x, 2, 2)[0] * g)
    x[index] = saved
    numeric[index] = (up - down) / (2 * h)
gap = np.max(np.abs(analytic - numeric))
print(f"plus grand |passe arrière - différence finie| : {gap:.1e}")

# %% [markdown]
# ## Une image des deux passes
#
# Dessinée à partir des tableaux ci-dessus : la carte avec ses fenêtres $2 \times 2$,
# les valeurs après pooling, et où le gradient amont revient (max pooling en haut,
# pooling par moyenne en bas).

# %%
winners = [
    (r, c, 1, 1, "tab:red") for r, c in zip(*np.nonzero(dx_max[0, 0]), strict=True)
]
windows = [(r, c, 2, 2, "black") for r in (0, 2, 4, 6) for c in (0, 2, 4, 6)]
fig, axes = plt.subplots(
    2, 4, figsize=(15, 7.5), gridspec_kw={"width_ratios": [8, 4, 4, 8]}
)
draw_array(
    axes[0, 0], fmap[0, 0], "entrée 8x8, maxima en rouge", boxes=windows + winners
)
draw_array(axes[0, 1], y_max[0, 0], "max pooling 2x2, S=2")
draw_array(axes[0, 2], dout[0, 0], "dE/dy")
draw_array(axes[0, 3], dx_max[0, 0], "dE/dx : aux maxima", boxes=windows)
draw_array(axes[1, 0], fmap[0, 0], "entrée 8x8", boxes=windows)
draw_array(axes[1, 1], y_avg[0, 0], "moyenne 2x2, S=2")
draw_array(axes[1, 2], dout[0, 0], "dE/dy")
draw_array(axes[1, 3], dx_avg[0, 0], "dE/dx : un quart chacun", boxes=windows)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## La couche
#
# `MaxPool2D` n'a pas de paramètres ; elle vérifie son entrée, appelle l'opération
# ci-dessus (à travers le moteur, que `cnnumpy.engine.off()` éteint) et garde le
# cache :

# %%
layer = MaxPool2D(2)
with cnnumpy.engine.off():
    y = layer.forward(fmap.astype(np.float32))
    dx = layer.backward(dout.astype(np.float32))
print("identique au livre :", np.array_equal(y, y_max), np.array_equal(dx, dx_max))
print(
    "paramètres :",
    layer.count_params(),
    "| forme de sortie pour (16, 32, 32) :",
    layer.output_shape((16, 32, 32)),
)

# %% [markdown]
# La dernière ligne est le réseau du document 000 : 16 cartes de $32 \times 32$
# deviennent 16 cartes de $16 \times 16$, un quart des neurones, sans aucun
# paramètre. Le chapitre 6 assemble convolutions et poolings dans les architectures
# du cours.
