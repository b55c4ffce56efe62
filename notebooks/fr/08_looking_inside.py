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
# # 8. Regarder à l'intérieur : filtres, cartes, occlusion, saillance, Grad-CAM
#
# Suit le document 003, diapositives 37-38 (« Carte d'activation (feature map) »,
# « Apprentissage = apprendre les poids $w_i$ des filtres convolutifs ») ; le document
# 000, III.3 « Visualisation de l'action du réseau » (l'occlusion de Zeiler et Fergus,
# sa fonction `visual`, et sa propre « carte des responsabilités ») et IV.1
# « Visualisation » ; le document 001, 2.2 et Figure 2 (« Cartes de caractéristiques
# générées avec Melpy sur le dataset MNIST »).
#
# Un réseau entraîné est une pile de nombres ; ces images lui demandent ce qu'il
# regarde. On entraîne LeNet-5 quelques secondes sur l'échantillon MNIST, puis on
# regarde ce qu'il a appris (ses filtres), ce qu'il calcule (ses cartes de
# caractéristiques), et de quels pixels dépend sa réponse, de trois façons : en les
# cachant (occlusion), en dérivant la réponse par rapport à eux (saillance), et en
# pondérant les dernières cartes par leurs gradients (Grad-CAM). Chaque image vient
# d'une fonction de `cnnumpy.visualize` qui renvoie le tableau dessiné.

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

import cnnumpy
from cnnumpy import visualize, zoo
from cnnumpy.data import load_mnist_sample, train_val_split
from cnnumpy.optimizers import SGD
from cnnumpy.visualize import maps
from companion import show

cnnumpy.seed(0)
np.set_printoptions(precision=3, suppress=True)

# %% [markdown]
# ## Un LeNet-5 entraîné quelques secondes
#
# Huit époques de SGD avec inertie sur 4 000 chiffres, vérifiées sur les 1 000
# autres :

# %%
digits = load_mnist_sample(dtype="float32")
x_train, y_train, x_val, y_val = train_val_split(digits.x, digits.y, 0.2, rng=0)
model = zoo.lenet5()
model.compile(
    optimizer=SGD(lr=0.05, momentum=0.9, weight_decay=5e-4),
    loss="cross_entropy",
    metrics=["accuracy"],
)
history = model.fit(x_train, y_train, epochs=8, batch_size=64, seed=0, verbose=0)
result = model.evaluate(x_val, y_val)
print(f"validation : coût {result['loss']:.3f}, précision {result['accuracy']:.3f}")
for i, layer in enumerate(model.layers[:6]):
    print(i, layer)

# %% [markdown]
# ## Les filtres
#
# Les six noyaux 5x5 de la première couche sont ce que le réseau a appris à chercher
# dans les pixels bruts (document 003, diapositive 38 : apprendre, *c'est* apprendre
# ces poids). Chacun est ramené à [0, 1] pour lui seul, pour que son motif se voie
# quelle que soit sa norme : les cases claires ajoutent le pixel sous elles, les
# sombres le retranchent, si bien que la plupart des filtres détectent de petits
# bords et traits.

# %%
show(maps.filters_array)

# %%
kernels = visualize.filters(model)  # (6, 1, 5, 5), chacun dans [0, 1]
print("forme", kernels.shape)
print("filtre 0, poids bruts :\n", model.layers[0].params["W"][0, 0])
fig, axes = plt.subplots(1, 6, figsize=(9, 1.8))
for k, ax in enumerate(axes):
    ax.imshow(kernels[k, 0], cmap="gray")
    ax.set_title(f"filtre {k}", fontsize=9)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Cartes de caractéristiques
#
# Une carte de caractéristiques (« carte d'activation ») est un canal de la sortie
# d'une couche pour une image : là où le filtre a trouvé son motif. La Figure 2 du
# document 001 les montre pour son réseau MNIST. Ici, pour un chiffre de validation,
# les six cartes de la première couche (après sa tanh, 24x24) et les seize de la
# seconde (8x8) :

# %%
n = int(np.flatnonzero(y_val == 7)[0])  # le premier 7 de la validation
image, label = x_val[n], int(y_val[n])
probs = model.predict(image[None])[0]
print(f"étiquette {label}, prédit {probs.argmax()} avec p = {probs.max():.3f}")
first = visualize.feature_maps(model, image, layer=1)  # Tanh après conv 1
second = visualize.feature_maps(model, image, layer=4)  # Tanh après conv 2
print("cartes de la 1re couche", first.shape, "de la 2e", second.shape)
print("plus forte réponse de chaque carte de la 1re couche :", first.max(axis=(1, 2)))

fig, axes = plt.subplots(3, 8, figsize=(10, 4))
axes[0, 0].imshow(image[0], cmap="gray")
axes[0, 0].set_title("entrée", fontsize=9)
for k in range(6):
    axes[0, k + 1].imshow(first[k], cmap="RdBu_r", vmin=-1, vmax=1)
    axes[0, k + 1].set_title(f"conv1 carte {k}", fontsize=8)
for k in range(16):
    ax = axes[1 + k // 8, k % 8]
    ax.imshow(second[k], cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_title(f"conv2 carte {k}", fontsize=8)
for ax in axes.flat:
    ax.axis("off")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Occlusion : cacher un carré, voir ce que le réseau perd
#
# Zeiler et Fergus, comme le fait la fonction `visual` du document 000 : couvrir
# l'image d'un carré gris (ici noir, 0) à chaque position et noter de combien baisse
# la probabilité de la bonne classe,
#
# $$ \text{baisse}(i, j) = p(c \mid x) - p(c \mid x \text{ avec le carré en } (i, j)
#    \text{ effacé}) $$
#
# Chaque pixel reçoit la baisse moyenne des carrés qui le couvrent. Une forte baisse
# marque les pixels dont dépend la réponse ; une baisse négative, des pixels qui
# plaident pour une autre classe.

# %%
show(maps.occlusion_map)

# %% [markdown]
# Sur un chiffre dont le réseau est sûr, $p(c \mid x) \approx 1$ et le softmax est
# saturé : cacher un petit carré ne change presque rien. L'effet se voit sur un
# chiffre qui le fait hésiter, ici le premier chiffre de validation qu'il classe bien
# avec une probabilité entre 0,6 et 0,9 :

# %%
p_val = model.predict(x_val)
right = p_val.argmax(axis=1) == y_val
unsure = (p_val.max(axis=1) > 0.6) & (p_val.max(axis=1) < 0.9)
n = int(np.flatnonzero(right & unsure)[0])
image, label = x_val[n], int(y_val[n])
probs = p_val[n]
print(f"chiffre de validation {n} : étiquette {label}, p = {probs[label]:.3f}")
heat = visualize.occlusion(model, image, label, patch=6, stride=2)
i, j = np.unravel_index(heat.argmax(), heat.shape)
print(f"plus forte baisse moyenne {heat.max():.3f} au pixel ({i}, {j}) ; "
      f"plus faible {heat.min():.3f}")
hidden = image.copy()
top, left = max(i - 3, 0), max(j - 3, 0)
hidden[:, top : top + 6, left : left + 6] = 0
p_hidden = model.predict(hidden[None])[0]
print(f"p(classe {label}) : {probs[label]:.3f} intact, {p_hidden[label]:.3f} avec le "
      f"carré 6x6 autour de ({i}, {j}) caché ; le réseau dit alors {p_hidden.argmax()}")

fig, axes = plt.subplots(1, 3, figsize=(8, 2.8))
axes[0].imshow(image[0], cmap="gray")
axes[0].set_title(f"étiquette {label}, p = {probs[label]:.2f}", fontsize=9)
shown = axes[1].imshow(heat, cmap="RdBu_r", vmin=-abs(heat).max(), vmax=abs(heat).max())
axes[1].set_title("baisse de p (occlusion)", fontsize=9)
fig.colorbar(shown, ax=axes[1], fraction=0.046)
axes[2].imshow(hidden[0], cmap="gray")
axes[2].set_title(f"carré caché : p = {p_hidden[label]:.2f}", fontsize=9)
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Saillance : le gradient de la réponse par rapport aux pixels
#
# L'« algorithme personnel » du document 000 fait la rétropropagation sans modifier
# les poids, en partant de la justesse au lieu de l'erreur, jusqu'aux pixels :
# « responsabilité chaque pixel de l'image dans le résultat ». C'est la carte de
# saillance de Simonyan et al. : avec $s_c$ le score (logit) de la classe $c$,
#
# $$ S(i, j) = \sum_{\text{canaux}} \left| \frac{\partial s_c}{\partial x_{ij}}
#    \right|, \quad \text{divisé par son maximum} $$
#
# Le même `backward` qui entraîne le réseau la calcule, une passe pour une image.

# %%
show(maps.saliency_map)

# %% [markdown]
# ## Grad-CAM : quels endroits des dernières cartes parlent pour la classe
#
# Selvaraju et al. (2017) pondèrent chaque carte $A_k$ de la dernière couche de
# convolution par le gradient moyen du score de la classe sur elle, les additionnent,
# et gardent la partie positive ; le résultat $8 \times 8$ est agrandi à la taille de
# l'image :
#
# $$ \alpha_k = \frac{1}{hw} \sum_{i,j} \frac{\partial s_c}{\partial A_k(i, j)}
#    \qquad L = \mathrm{ReLU}\Big(\sum_k \alpha_k A_k\Big) $$

# %%
show(maps.grad_cam_map)

# %% [markdown]
# ## Les trois cartes côte à côte
#
# Pour quatre chiffres de validation : l'image, puis chaque carte (chaud = important).
# Les nombres ci-dessous mesurent quelle part de chaque carte tombe sur l'encre du
# chiffre (pixels plus clairs que 0,3), à comparer à la part de l'encre dans l'image.

# %%
examples = [int(np.flatnonzero(y_val == d)[0]) for d in (2, 4, 7, 9)]
fig, axes = plt.subplots(len(examples), 4, figsize=(8, 2.1 * len(examples)))
for row, n in enumerate(examples):
    image, label = x_val[n], int(y_val[n])
    found = {
        "occlusion": visualize.occlusion(model, image, label, patch=6, stride=2),
        "saillance": visualize.saliency(model, image, label),
        "Grad-CAM": visualize.grad_cam(model, image, label),
    }
    ink = image[0] > 0.3
    shares = ", ".join(
        f"{name} {np.clip(m, 0, None)[ink].sum() / np.clip(m, 0, None).sum():.2f}"
        for name, m in found.items()
    )
    print(f"chiffre {label} : l'encre couvre {ink.mean():.2f} de l'image ; "
          f"part de chaque carte sur l'encre : {shares}")
    axes[row, 0].imshow(image[0], cmap="gray")
    axes[row, 0].set_title(f"étiquette {label}", fontsize=9)
    for col, (name, m) in enumerate(found.items(), start=1):
        axes[row, col].imshow(image[0], cmap="gray")
        axes[row, col].imshow(m, cmap="jet", alpha=0.5)
        axes[row, col].set_title(name, fontsize=9)
for ax in axes.flat:
    ax.axis("off")
fig.tight_layout()
plt.show()

# %% [markdown]
# Les trois cartes répondent à des questions un peu différentes. L'occlusion mesure
# un effet (ce qui se perd quand une région disparaît), à la résolution de son carré,
# et coûte une propagation avant par position du carré (144 ici). La saillance est
# une seule rétropropagation, nette mais bruitée : elle dit à quels pixels le score
# est le plus sensible, pas s'ils sont de l'encre. Grad-CAM est grossière (les
# dernières cartes de LeNet-5 font 8x8) et montre les endroits qu'utilise la dernière
# couche de convolution. `cnnumpy visualize` dessine les mêmes cartes pour un modèle
# enregistré, et le bac à sable du site les montre pour les chiffres qu'on dessine.
