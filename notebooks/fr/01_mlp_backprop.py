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
# # 1. Du perceptron à la rétropropagation
#
# Suit le document 000, I.1 « Réseaux de neurones classiques » et I.2 « Rétropropagation
# du gradient », et le document 002, « Descente de Gradient », « Fully Connected
# Layer », « Couche d'activation », « Fonction de perte » et « Construire un réseau de
# neurone » (l'exemple XOR).
#
# Ce chapitre lit les premières formules du cours à côté du code qui les calcule dans
# cnnumpy : un neurone, une couche de neurones, l'erreur, et la règle de dérivation
# des fonctions composées qui ramène l'erreur à travers les couches. Il se termine en
# entraînant le réseau XOR du cours avec le seul code du livre.

# %% tags=["remove-cell"]
# Chemins, pour l'exécution en simple script : rend notebooks/companion.py importable.
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
for folder in (HERE.parent, HERE / "notebooks", HERE):
    if (folder / "companion.py").exists() and str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

# %%
import numpy as np
from companion import show

import cnnumpy
from cnnumpy.layers import Dense, Tanh
from cnnumpy.textbook import activations, dense, losses

cnnumpy.seed(0)
np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## Un neurone : le perceptron
#
# Le document 000 écrit un neurone $j$ comme la somme pondérée de ses entrées $y_k$ plus
# un biais, passée dans une fonction d'activation $f$ :
#
# $$ x_j = \sum_k y_k \, w_{kj} + b_j \qquad y_j = f(x_j) $$
#
# Avec une fonction échelon pour $f$ (1 si $x_j > 0$, 0 sinon), c'est le perceptron de
# Rosenblatt. Deux poids et un biais tracent une droite dans le plan des entrées, et
# le neurone répond 1 d'un côté de cette droite. Cela suffit pour ET et OU :

# %%
inputs = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)


def perceptron(x, w, b):
    """Le neurone de Rosenblatt : 1 là où la somme pondérée est positive."""
    return (x @ w + b > 0).astype(int)


print("x1 x2 | ET OU")
for x, y_and, y_or in zip(
    inputs,
    perceptron(inputs, np.array([1.0, 1.0]), -1.5),
    perceptron(inputs, np.array([1.0, 1.0]), -0.5),
    strict=True,
):
    print(f" {x[0]:.0f}  {x[1]:.0f} |  {y_and}  {y_or}")

# %% [markdown]
# XOR (1 quand exactement une entrée vaut 1) met $(0, 1)$ et $(1, 0)$ d'un côté et
# $(0, 0)$, $(1, 1)$ de l'autre : aucune droite ne fait cela. Une recherche sur une
# grille de poids et de biais le montre : le meilleur neurone seul réussit 3 des 4
# cas.

# %%
xor_targets = np.array([0, 1, 1, 0])
grid = np.linspace(-2, 2, 17)
best = 0
for w1 in grid:
    for w2 in grid:
        for b in grid:
            answers = perceptron(inputs, np.array([w1, w2]), b)
            best = max(best, int(np.sum(answers == xor_targets)))
print(
    f"meilleur perceptron seul sur XOR : {best} cas justes sur 4 "
    f"({grid.size**3} réglages des poids essayés)"
)

# %% [markdown]
# ## Une couche, puis plusieurs : le perceptron multicouche
#
# Une couche calcule tous ses neurones d'un coup. Le document 002 écrit les entrées en
# ligne $X = [x_1 \dots x_i]$, les poids en matrice $W$ ($i$ entrées sur $j$ sorties)
# et les biais en ligne $B$ :
#
# $$ y_j = b_j + \sum_i x_i w_{ij} \qquad\Longleftrightarrow\qquad Y = XW + B $$
#
# L'activation est une couche à part, $Y = f(X)$ élément par élément. La couche
# entièrement connectée du livre est exactement cette ligne (le chapitre 2 explique
# pourquoi tout un lot de lignes y passe à la fois) :

# %%
show(dense.dense_forward)

# %% [markdown]
# Et son activation, ici $\tanh$, garde sa sortie pour la passe arrière :

# %%
show(activations.tanh_forward)

# %% [markdown]
# En les empilant, on obtient le réseau XOR du cours, 2 entrées, 3 neurones cachés,
# 1 sortie : Dense(2→3), tanh, Dense(3→1), tanh. Sa passe avant sur les quatre
# entrées de XOR, avec de petits poids aléatoires (en float64, pour que la
# vérification des gradients plus bas soit assez précise) :

# %%
rng = np.random.default_rng(0)
params = {
    "W1": rng.uniform(-0.5, 0.5, (2, 3)),  # le cours tire rand() - 0.5
    "b1": rng.uniform(-0.5, 0.5, 3),
    "W2": rng.uniform(-0.5, 0.5, (3, 1)),
    "b2": rng.uniform(-0.5, 0.5, 1),
}
targets = xor_targets.reshape(4, 1).astype(float)


def forward(p, x):
    """Dense, tanh, Dense, tanh ; renvoie la sortie et le cache de chaque couche."""
    h, dense1 = dense.dense_forward(x, p["W1"], p["b1"])
    a, tanh1 = activations.tanh_forward(h)
    z, dense2 = dense.dense_forward(a, p["W2"], p["b2"])
    y, tanh2 = activations.tanh_forward(z)
    return y, (dense1, tanh1, dense2, tanh2)


y, caches = forward(params, inputs)
print("sorties avant l'apprentissage :", y.ravel())

# %% [markdown]
# ## L'erreur
#
# Le document 002 mesure l'erreur par l'erreur quadratique moyenne (MSE), et toute la
# passe arrière part de sa dérivée :
#
# $$ E = \frac{1}{n} \sum_i^n (y_i^* - y_i)^2 \qquad
#    \frac{\partial E}{\partial Y} = \frac{2}{n} (Y - Y^*) $$

# %%
show(losses.mse)

# %%
E, dE_dY = losses.mse(y, targets)
print(f"E = {E:.4f}")
print("dE/dY =", dE_dY.ravel())

# %% [markdown]
# ## La rétropropagation : la dérivation des fonctions composées, couche par couche
#
# Chaque couche reçoit $\partial E / \partial Y$, la dérivée de l'erreur par rapport à
# sa sortie, et doit rendre $\partial E / \partial X$, qui est le
# $\partial E / \partial Y$ de la couche précédente. Le document 002 tire tout de la
# règle de dérivation des fonctions composées :
#
# $$ \frac{\partial E}{\partial w} = \sum_j \frac{\partial E}{\partial y_j}
#    \frac{\partial y_j}{\partial w} \qquad
#    \frac{\partial E}{\partial x_i} = \sum_j \frac{\partial E}{\partial y_j}
#    \frac{\partial y_j}{\partial x_i} $$
#
# Pour la couche entièrement connectée, on obtient ses trois formules :
#
# $$ \frac{\partial E}{\partial X} = \frac{\partial E}{\partial Y} W^T \qquad
#    \frac{\partial E}{\partial W} = X^T \frac{\partial E}{\partial Y} \qquad
#    \frac{\partial E}{\partial B} = \frac{\partial E}{\partial Y} $$
#
# (pour un exemple, comme dans le cours ; sur un lot de lignes, comme les quatre
# entrées de XOR ici, $\partial E / \partial B$ est la somme des lignes de
# $\partial E / \partial Y$ : le chapitre 2 le montre)

# %%
show(dense.dense_backward)

# %% [markdown]
# Pour une activation, $y_i = f(x_i)$ ne dépend que de $x_i$, la somme n'a donc qu'un
# terme : $\frac{\partial E}{\partial X} = \frac{\partial E}{\partial Y} \odot
# f'(X)$, un produit élément par élément. Pour $\tanh$, $f' = 1 - \tanh^2$, écrite
# avec la sortie gardée par la passe avant :

# %%
show(activations.tanh_backward)

# %% [markdown]
# La passe arrière du réseau entier parcourt les couches à l'envers, chacune passant
# son $\partial E / \partial X$ à celle d'avant :


# %%
def backward(dE_dY, caches):
    """Le gradient de E par rapport à chaque paramètre, en partant de la fin."""
    dense1, tanh1, dense2, tanh2 = caches
    dz = activations.tanh_backward(dE_dY, tanh2)
    da, dW2, db2 = dense.dense_backward(dz, dense2)
    dh = activations.tanh_backward(da, tanh1)
    _, dW1, db1 = dense.dense_backward(dh, dense1, need_dx=False)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


grads = backward(dE_dY, caches)
for name, g in grads.items():
    print(f"dE/d{name} =", g.ravel())

# %% [markdown]
# ## Vérifier les gradients par différences finies
#
# Un gradient calculé à la main se vérifie sans aucun calcul de dérivée : on décale un
# poids de $\pm h$, on refait deux fois la passe avant, et on compare
#
# $$ \frac{\partial E}{\partial w} \approx \frac{E(w + h) - E(w - h)}{2h} $$
#
# à ce que la rétropropagation a donné (différences centrées, en float64, comme les
# tests de la bibliothèque).


# %%
def loss_at(p):
    return losses.mse(forward(p, inputs)[0], targets)[0]


def numerical_gradient(p, name, h=1e-6):
    """Différences finies centrées de E, une entrée de p[name] à la fois."""
    numeric = np.zeros_like(p[name])
    for index in np.ndindex(p[name].shape):
        saved = p[name][index]
        p[name][index] = saved + h
        E_plus = loss_at(p)
        p[name][index] = saved - h
        E_minus = loss_at(p)
        p[name][index] = saved
        numeric[index] = (E_plus - E_minus) / (2 * h)
    return numeric


print("paramètre  plus grand |rétropropagation - différence finie|")
for name in params:
    gap = np.max(np.abs(grads[name] - numerical_gradient(params, name)))
    print(f"{name:>9}  {gap:.2e}")

# %% [markdown]
# Les écarts sont de l'ordre de $10^{-10}$ ou moins : la passe arrière écrite à la
# main est juste.
#
# ## Entraîner XOR avec le code du livre
#
# La descente de gradient (document 002) déplace chaque paramètre à l'opposé de son
# gradient, avec un taux d'apprentissage $\alpha$ :
#
# $$ w \leftarrow w - \alpha \frac{\partial E}{\partial w} $$
#
# Le cours entraîne son réseau XOR un exemple à la fois, 1000 époques, $\alpha =
# 0{,}1$. Ici le même réseau est fait des couches de cnnumpy (`Dense`, `Tanh`), et
# `cnnumpy.engine.off()` leur fait exécuter les fonctions du livre montrées plus haut,
# et non les noyaux plus rapides du moteur.

# %%
layers = [Dense(3), Tanh(), Dense(1), Tanh()]
x_train = inputs.astype(np.float32)
y_train = targets.astype(np.float32)
learning_rate = 0.1

with cnnumpy.engine.off():
    for epoch in range(1, 1001):
        error = 0.0
        for x, t in zip(x_train, y_train, strict=True):
            out = x[None]  # un exemple : un lot de taille 1
            for layer in layers:
                out = layer.forward(out, training=True)
            E, grad = losses.mse(out, t[None])
            error += E
            for layer in reversed(layers):
                grad = layer.backward(grad)
            for layer in layers:
                for name in layer.params:
                    layer.params[name] -= learning_rate * layer.grads[name]
        if epoch in (1, 2, 3, 10, 100, 500, 1000):
            print(f"époque {epoch}/1000  erreur={error / len(x_train):.6f}")

# %%
with cnnumpy.engine.off():
    out = x_train
    for layer in layers:
        out = layer.forward(out)
for x, y_out in zip(x_train, out, strict=True):
    print(f"XOR({x[0]:.0f}, {x[1]:.0f}) -> {y_out[0]:.4f}")

# %% [markdown]
# Les sorties sont proches de 0, 1, 1, 0 : deux couches ont appris ce qu'un perceptron
# seul ne peut pas. Le chapitre 2 écrit la même couche pour tout un lot d'exemples à
# la fois, et chronomètre les boucles du cours face à la forme matricielle.
