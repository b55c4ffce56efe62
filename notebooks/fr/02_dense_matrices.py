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
# # 2. Un exemple à la fois, ou tout le lot en matrices
#
# Suit le document 002, « Fully Connected Layer » (propagation avant et arrière), et
# le document 000, III.1.a « Optimisation avec Numpy » (techniques 1 à 4) et III.1.b
# « Batch ».
#
# Le cours établit la couche entièrement connectée pour un exemple, une ligne $X$, et
# son réseau fait passer les exemples l'un après l'autre. Les mêmes formules valent
# pour un lot (batch) de $N$ exemples empilés en lignes d'une matrice, et un seul
# produit matriciel fait alors le travail de $N$ passes. Ce chapitre vérifie que les
# deux donnent les mêmes nombres, et mesure ce que la forme matricielle fait gagner.

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
from companion import best_time, show

import cnnumpy
from cnnumpy.textbook import dense, loops

cnnumpy.seed(0)
np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## Les formules, pour un lot
#
# Pour un exemple (document 002), $y_j = b_j + \sum_i x_i w_{ij}$. Avec les $N$
# exemples en lignes de $X$ (de forme $N \times I$), chaque ligne reçoit les mêmes
# poids $W$ ($I \times J$) et le même biais $b$ ($J$), ajouté à chaque ligne :
#
# $$ Y = XW + b \qquad y_{nj} = b_j + \sum_i x_{ni} w_{ij} $$
#
# La passe arrière reçoit $dY = \partial E / \partial Y$ ($N \times J$). Un poids
# $w_{ij}$ sert à chaque exemple, son gradient est donc la somme des gradients des
# exemples, et c'est exactement ce que calcule le produit matriciel sur $n$ ; de même
# pour le biais :
#
# $$ dW = X^T dY \qquad db = \sum_n dY_n \qquad dX = dY \, W^T $$
#
# Avec $N = 1$, ce sont les trois formules du cours. La « technique 1 » du cours,
# chaque somme écrite en boucle explicite, est la version de référence du livre :

# %%
show(loops.dense_forward_loops)

# %%
show(loops.dense_backward_loops)

# %% [markdown]
# Et la forme matricielle, celle qu'exécute la couche `Dense` de cnnumpy :

# %%
show(dense.dense_forward)

# %%
show(dense.dense_backward)

# %% [markdown]
# ## Les formes sur un petit lot
#
# Quatre exemples de trois caractéristiques, une couche de deux neurones :

# %%
rng = np.random.default_rng(0)
X = rng.integers(-3, 4, (4, 3)).astype(float)
W = rng.integers(-2, 3, (3, 2)).astype(float)
b = np.array([0.5, -1.0])
dY = rng.integers(-2, 3, (4, 2)).astype(float)

Y, cache = dense.dense_forward(X, W, b)
dX, dW, db = dense.dense_backward(dY, cache)
for name, array in [
    ("X", X),
    ("W", W),
    ("Y", Y),
    ("dY", dY),
    ("dW", dW),
    ("db", db),
    ("dX", dX),
]:
    print(f"{name:>2} {str(array.shape):>7}\n{array}\n")

# %% [markdown]
# ## Un exemple à la fois donne les mêmes nombres
#
# Le réseau du cours fait passer chaque exemple seul dans la couche, une ligne de
# forme $1 \times I$. Empiler ces sorties redonne $Y$ ; additionner les $dW$ et $db$
# de chaque exemple redonne ceux du lot :

# %%
Y_rows, dW_sum, db_sum, dX_rows = [], np.zeros_like(W), np.zeros_like(b), []
for n in range(len(X)):
    y_n, cache_n = dense.dense_forward(X[n : n + 1], W, b)
    dx_n, dw_n, db_n = dense.dense_backward(dY[n : n + 1], cache_n)
    Y_rows.append(y_n)
    dX_rows.append(dx_n)
    dW_sum += dw_n
    db_sum += db_n

print("Y  égaux :", np.allclose(np.vstack(Y_rows), Y))
print("dX égaux :", np.allclose(np.vstack(dX_rows), dX))
print("dW égal à la somme des dW des exemples :", np.allclose(dW_sum, dW))
print("db égal à la somme des db des exemples :", np.allclose(db_sum, db))

# %% [markdown]
# ## Boucles contre matrices : un chronométrage
#
# Le document 000 a chronométré quatre façons d'écrire la même couche et trouvé les
# boucles des centaines de fois plus lentes que les opérations de NumPy sur des
# tableaux entiers (son tableau « FC_Front » : 0,0699 s pour la technique 1,
# 0,00016 s pour la technique 4, `einsum`). La même mesure ici, sur un lot de 32
# exemples passant par une couche de 100 entrées et 50 neurones (la deuxième couche
# du réseau MNIST du cours), passe avant et passe arrière :
#
# - **boucles** : les `dense_*_loops` du livre, une multiplication-addition par
#   instruction Python ;
# - **un exemple à la fois** : les formules matricielles sur chaque ligne, comme le
#   réseau du cours fait passer ses exemples ;
# - **lot** : un seul produit matriciel pour tout le lot, les `dense_*` du livre.

# %%
N, I, J = 32, 100, 50  # noqa: E741 (le cours appelle les entrées I)
x = rng.standard_normal((N, I))
w = rng.standard_normal((I, J)) * 0.1
bias = np.zeros(J)
dout = rng.standard_normal((N, J))


def loops_pass():
    _, c = loops.dense_forward_loops(x, w, bias)
    return loops.dense_backward_loops(dout, c)


def per_example_pass():
    results = []
    for n in range(N):
        _, c = dense.dense_forward(x[n : n + 1], w, bias)
        results.append(dense.dense_backward(dout[n : n + 1], c))
    return results


def batch_pass():
    _, c = dense.dense_forward(x, w, bias)
    return dense.dense_backward(dout, c)


dx_loops, dw_loops, db_loops = loops_pass()
dx_batch, dw_batch, db_batch = batch_pass()
print(
    "boucles et lot d'accord :",
    np.allclose(dx_loops, dx_batch)
    and np.allclose(dw_loops, dw_batch)
    and np.allclose(db_loops, db_batch),
)

timings = {
    "boucles": best_time(loops_pass, repeat=1),
    "un exemple à la fois": best_time(per_example_pass, repeat=5),
    "lot": best_time(batch_pass, repeat=20),
}
print(f"\npasse avant + passe arrière, N={N}, {I} -> {J}")
for name, seconds in timings.items():
    ratio = seconds / timings["lot"]
    print(f"{name:>22} : {seconds * 1e3:9.3f} ms   ({ratio:8.0f} x lot)")

# %%
fig, ax = plt.subplots(figsize=(6, 2.4))
ax.barh(list(timings), [t * 1e3 for t in timings.values()], color="tab:blue")
ax.set_xscale("log")
ax.set_xlabel("millisecondes (échelle log), passe avant + arrière")
ax.invert_yaxis()
ax.set_title("La même couche, de trois façons")
fig.tight_layout()
plt.show()

# %% [markdown]
# Les temps exacts dépendent de la machine ; l'ordre, non. Les boucles paient
# l'interpréteur pour chaque multiplication-addition ; un exemple à la fois le paie
# une fois par exemple ; le lot le paie une fois et laisse les $N \times I \times J$
# multiplications-additions au produit matriciel compilé. C'est pourquoi chaque
# couche de cnnumpy, comme la version finale du cours (document 000, III.1.b), prend
# tout le lot à la fois. Le chapitre 4 fait de même pour la convolution.
