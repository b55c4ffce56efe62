"""The accuracy benchmark's recipes (benchmarks/recipes.py), its two runners and the
ablation, on tiny synthetic data in place of the real splits (a real run takes an
hour; see benchmarks/accuracy.py).

The key check: the PyTorch runner (``torch_training.py``) and cnnumpy's ``fit`` give
the same first batch losses for a recipe with every ingredient, so they start from the
same weights and see the same augmented batches, the same schedule and the same
update.
"""

import dataclasses
import json
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnumpy import zoo

ROOT = Path(__file__).resolve().parents[2]
N_TRAIN, N_TEST = 48, 24
INGREDIENTS = (
    "augment cutout label_smoothing onecycle no_decay_on_norms ema tta zero_gamma"
).split()


@pytest.fixture(autouse=True)
def benchmark_path(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny batches: PyTorch's second thread only adds hand-offs (and, on a busy
    machine, waits). The benchmark itself keeps PyTorch's default."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def synthetic(channels: int, size: int, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images where class k brightens row band k, over noise."""
    y = np.arange(n) % 10
    x = rng.integers(0, 60, size=(n, channels, size, size))
    for i, k in enumerate(y):
        x[i, :, 2 * k : 2 * k + 3, :] = 220
    return x.astype(np.uint8), y.astype(np.int64)


def fake_loader(channels: int, size: int):
    def load(split, path=None, download=False):
        n = N_TRAIN if split == "train" else N_TEST
        x, y = synthetic(channels, size, n, np.random.default_rng(len(split)))
        return types.SimpleNamespace(x=x, y=y, source=f"synthetic {split}")

    return load


@pytest.fixture
def accuracy(monkeypatch):
    """benchmarks/accuracy.py on synthetic splits; the MNIST recipe on LeNet-5 while
    its own network is not in the zoo, the CIFAR-10 one on ResNet-8 (faster)."""
    import accuracy
    import recipes

    monkeypatch.setitem(accuracy.LOADERS, "mnist", fake_loader(1, 28))
    monkeypatch.setitem(accuracy.LOADERS, "fashion-mnist", fake_loader(1, 28))
    monkeypatch.setitem(accuracy.LOADERS, "cifar10", fake_loader(3, 32))
    if recipes.RECIPES["mnist"].model not in zoo.MODELS:
        mnist = dataclasses.replace(recipes.RECIPES["mnist"], model="lenet5")
        monkeypatch.setitem(recipes.RECIPES, "mnist", mnist)
    cifar = dataclasses.replace(recipes.RECIPES["cifar10"], model="resnet8")
    monkeypatch.setitem(recipes.RECIPES, "cifar10", cifar)
    return accuracy


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


# -- the recipes ---------------------------------------------------------------------
def test_recipes_name_zoo_models_and_datasets():
    import accuracy
    from recipes import RECIPES

    assert set(RECIPES) == {"mnist", "fashion-mnist", "cifar10"}
    for name, recipe in RECIPES.items():
        assert recipe.dataset == name and recipe.dataset in accuracy.LOADERS
        if recipe.model == "mnist_cnn" and "mnist_cnn" not in zoo.MODELS:
            continue  # being added to the zoo
        assert recipe.model in zoo.MODELS, name


@pytest.mark.parametrize("ingredient", INGREDIENTS)
def test_removing_an_ingredient_changes_exactly_its_fields(ingredient):
    from recipes import INGREDIENT_FIELDS, RECIPES, changed_fields, uses, without

    assert list(INGREDIENT_FIELDS) == INGREDIENTS
    fields = set(INGREDIENT_FIELDS[ingredient])
    cifar = RECIPES["cifar10"]
    assert uses(cifar, ingredient)  # the CIFAR-10 recipe has every ingredient
    assert changed_fields(cifar, without(cifar, [ingredient])) == fields
    for recipe in RECIPES.values():
        reduced = without(recipe, [ingredient])
        assert changed_fields(recipe, reduced) <= fields
        assert without(reduced, [ingredient]) == reduced  # removed is removed


def test_onecycle_removed_is_cosine_from_the_peak_without_warmup():
    from recipes import RECIPES, lr_schedule, without

    recipe = without(RECIPES["cifar10"], ["onecycle"])
    schedule, unit = lr_schedule(recipe, 1000)
    assert (recipe.schedule, recipe.warmup, unit) == ("cosine", 0.0, "step")
    assert schedule(0) == pytest.approx(recipe.lr)
    with pytest.raises(ValueError, match="unknown ingredient 'batchnorm'"):
        without(recipe, ["batchnorm"])


# -- the runners agree ---------------------------------------------------------------
def tiny_cifar():
    """Standardised-looking tiny CIFAR-shaped splits, as a `recipes.Data`."""
    from recipes import Data

    rng = np.random.default_rng(0)
    x, y = synthetic(3, 32, N_TRAIN, rng)
    x_test, y_test = synthetic(3, 32, N_TEST, rng)
    x, x_test = x / np.float32(255) - 0.5, x_test / np.float32(255) - 0.5
    return Data(x.astype(np.float32), y, x_test.astype(np.float32), y_test, "tiny")


STRONG_DECAY = {"schedule": "none", "lr": 0.05, "weight_decay": 0.05}


@pytest.mark.parametrize(
    "changes",
    [{}, STRONG_DECAY, {**STRONG_DECAY, "no_decay_on_norms": False}],
    ids=["recipe", "strong-decay-norms-exempt", "strong-decay-everywhere"],
)
def test_torch_runner_takes_the_same_first_steps_as_fit(changes):
    """Same weights, batches, augmentation (crop, flip, Cutout), smoothing, rate,
    Nesterov SGD with decay off for biases and BatchNorm (or on: a strong decay makes
    the groups show in the loss), zero gamma: the first three batch losses agree to
    float32 rounding (1e-7 measured), and so do the averaged weights' test loss and
    the flip-averaged and raw figures."""
    import accuracy
    import torch_training
    from recipes import FIRST_LOSSES, RECIPES

    recipe = dataclasses.replace(
        RECIPES["cifar10"], model="resnet8", epochs=1, batch_size=16, **changes
    )
    data = tiny_cifar()
    ours = accuracy.train_cnnumpy(recipe, data, seed=3, verbose=False)
    theirs = torch_training.train(recipe, data, seed=3, verbose=False)
    assert len(ours["first_losses"]) == FIRST_LOSSES == N_TRAIN // 16
    np.testing.assert_allclose(ours["first_losses"], theirs["first_losses"], rtol=1e-5)
    a, b = ours["history"][0], theirs["history"][0]
    assert a["test_loss"] == pytest.approx(b["test_loss"], rel=1e-5)
    assert a["lr"] == pytest.approx(b["lr"], rel=1e-12)
    for kind in ("tta", "raw"):
        a, b = ours["tests"][kind], theirs["tests"][kind]
        a, b = (a, b) if kind == "tta" else (a["test"], b["test"])
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)


def test_torch_groups_exempt_what_cnnumpy_exempts():
    """``decay_biases=False`` in cnnumpy and the torch runner's no-decay group cover
    the same numbers: the biases and BatchNorm's gamma and beta."""
    import torch_training
    from recipes import RECIPES, build_model
    from torch_twin import torch_twin

    from cnnumpy.optimizer_groups import is_bias

    recipe = RECIPES["cifar10"]
    model = build_model(recipe, (3, 32, 32), seed=0)
    exempt = sum(
        p.size for layer in model.layers for k, p in layer.params.items() if is_bias(k)
    )
    decayed, free = torch_training.param_groups(torch_twin(model), recipe)
    assert free["weight_decay"] == 0.0 and "weight_decay" not in decayed
    assert sum(p.numel() for p in free["params"]) == exempt > 0
    total = sum(p.numel() for p in decayed["params"] + free["params"])
    assert total == model.count_params()


# -- accuracy.py end to end ----------------------------------------------------------
@pytest.mark.parametrize("framework", ["cnnumpy", "torch"])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10"])
def test_recipe_run_prints_one_json_line(accuracy, name, framework, capsys, tmp_path):
    from recipes import RECIPES

    recipe = RECIPES[name]
    argv = f"--recipe {name} --epochs 1 --framework {framework}".split()
    files = ["--history", str(tmp_path / "h.json"), "--curves", str(tmp_path / "c.png")]
    assert accuracy.main(argv + files) == 0
    out = last_json(capsys)
    assert (out["model"], out["dataset"]) == (recipe.model, name)
    assert out["recipe"] == name and out["framework"] == framework
    run = {"epochs": 1, "seed": 0, "limit": None, "test_limit": None}
    assert out["settings"] == {**recipe.settings(), **run, "time_budget": None}
    flipped = out["test_accuracy_tta"] if recipe.tta else out["test_accuracy_plain"]
    assert out["test_accuracy"] == flipped
    assert (out["test_accuracy_tta"] is None) == (not recipe.tta)
    assert ("test_accuracy_without_ema" in out) == (recipe.ema is not None)
    assert 0 <= out["test_accuracy_plain"] <= 1 and 0 < out["train_s"] < 60
    (epoch,) = out["history"]
    assert epoch["epoch"] == 1 and epoch["train_s"] == out["train_s"]
    assert set(epoch) >= {"train_loss", "train_accuracy", "test_accuracy", "epoch_s"}
    assert out["machine"]["cpu"] and out["machine"]["numpy"] == np.__version__
    if framework == "torch":
        assert out["machine"]["torch_threads"] == torch.get_num_threads()
    assert json.loads((tmp_path / "h.json").read_text())["history"] == out["history"]
    assert (tmp_path / "c.png").stat().st_size > 0


def test_first_settings_and_time_budget(accuracy, capsys):
    argv = "--model lenet5 --dataset mnist --epochs 3 --time-budget 0 --augment"
    assert accuracy.main(argv.split()) == 0
    out = last_json(capsys)
    assert out["recipe"] is None and out["epochs"] == 3 and out["epochs_run"] == 1
    s = out["settings"]
    settings = (s["batch_size"], s["lr"], s["schedule"], s["crop"], s["flip"])
    assert settings == (64, 0.05, "epoch_cosine", 2, False)
    assert out["test_accuracy"] == out["test_accuracy_plain"]
    with pytest.raises(SystemExit, match="--recipe sets --lr itself"):
        accuracy.main(["--recipe", "mnist", "--lr", "0.1"])


def test_ablation_table(accuracy, capsys):
    import ablation

    argv = "--recipe cifar10 --epochs 1 --ingredients cutout ema tta"
    assert ablation.main(argv.split()) == 0
    out = capsys.readouterr().out
    summary = json.loads(out.strip().splitlines()[-1])
    removed = [r["removed"] for r in summary["rows"]]
    assert removed == ["nothing (full recipe)", "cutout", "ema", "tta"]
    assert "| cutout |" in out and summary["rows"][0]["delta_pp"] is None
    full = summary["rows"][0]
    for r in summary["rows"][2:]:  # evaluation only: the full run's training
        assert r["train_s"] == full["train_s"] and "evaluated without" in r["note"]
