"""Saving and loading: round trips, atomic writes, corrupted and hostile files."""

import json
import os
import pickle
import time

import numpy as np
import pytest

import cnnumpy
from cnnumpy import saving
from cnnumpy.layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
from cnnumpy.optimizers import SGD, Adam
from cnnumpy.saving import ModelFileError, load_weights, save_weights
from cnnumpy.saving.loading import load_model
from cnnumpy.saving.safefile import dump_bytes


def model_with_everything(seed=0):
    cnnumpy.seed(seed)
    model = cnnumpy.Sequential(
        [
            Conv2D(4, 3, padding=1, use_bias=False),
            BatchNorm(),
            ReLU(),
            MaxPool2D(2),
            Flatten(),
            Dropout(0.25),
            Dense(3),
        ],
        input_shape=(2, 6, 6),
        name="tiny",
    )
    model.compile(optimizer=Adam(lr=0.01), loss="cross_entropy", metrics=["accuracy"])
    return model


def data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 2, 6, 6)).astype(np.float32), rng.integers(0, 3, n)


def trained(tmp_path, epochs=2):
    x, y = data()
    model = model_with_everything()
    model.fit(x, y, epochs=epochs, batch_size=8, verbose=0, seed=0)
    path = tmp_path / "model.safetensors"
    model.save(path)
    return model, path, x, y


def test_round_trip_keeps_predictions_optimizer_and_history(tmp_path):
    model, path, x, y = trained(tmp_path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert [repr(a) for a in loaded.layers] == [repr(b) for b in model.layers]
    np.testing.assert_array_equal(
        loaded.layers[1].state["running_var"], model.layers[1].state["running_var"]
    )
    a, b = model.optimizer.state_dict(), loaded.optimizer.state_dict()
    assert (a["iterations"], a["lr"]) == (b["iterations"], b["lr"]) and a[
        "iterations"
    ] == 6
    for slot in a["slots"]:
        for name in a["slots"][slot]:
            np.testing.assert_array_equal(
                a["slots"][slot][name], b["slots"][slot][name]
            )
    assert loaded.history.history == model.history.history
    assert loaded.loss.name == "cross_entropy" and list(loaded.metrics) == ["accuracy"]


def test_continued_training_equals_uninterrupted(tmp_path):
    x, y = data()
    straight = model_with_everything()
    straight.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=0, shuffle=False)
    straight.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=1, shuffle=False)
    first = model_with_everything()
    first.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=0, shuffle=False)
    first.save(tmp_path / "m.safetensors")
    resumed = load_model(tmp_path / "m.safetensors")
    resumed.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=1, shuffle=False)
    for a, b in zip(straight.get_weights(), resumed.get_weights(), strict=True):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_loading_does_not_disturb_the_global_generator(tmp_path):
    _, path, _, _ = trained(tmp_path)
    cnnumpy.seed(3)
    expected = cnnumpy.rng.get_rng().random()
    cnnumpy.seed(3)
    load_model(path)
    assert cnnumpy.rng.get_rng().random() == expected


def test_weights_only_round_trip_and_all_or_nothing(tmp_path):
    model, _, x, _ = trained(tmp_path)
    save_weights(model, tmp_path / "w.safetensors")
    fresh = model_with_everything(seed=1)
    load_weights(fresh, tmp_path / "w.safetensors")
    np.testing.assert_array_equal(fresh.predict(x), model.predict(x))
    other = cnnumpy.Sequential(
        [
            Conv2D(4, 3, padding=1, use_bias=False),
            BatchNorm(),
            ReLU(),
            MaxPool2D(2),
            Flatten(),
            Dropout(0.25),
            Dense(5),
        ],
        input_shape=(2, 6, 6),
    )
    before = other.get_weights()
    with pytest.raises(ModelFileError, match=r"weight layers.6.W has shape \(36, 3\)"):
        load_weights(other, tmp_path / "w.safetensors")
    for a, b in zip(before, other.get_weights(), strict=True):  # nothing half-loaded
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_file_is_plain_safetensors_with_json_metadata(tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import load_file

    _, path, _, _ = trained(tmp_path)
    tensors = load_file(path)
    assert tensors["layers.0.W"].shape == (4, 2, 3, 3)
    assert "optimizer.0.W.m" in tensors or any(
        k.startswith("optimizer.") for k in tensors
    )
    with safe_open(path, "np") as f:
        meta = f.metadata()
    spec = json.loads(meta["model"])
    assert [entry["class"] for entry in spec["layers"]][:2] == ["Conv2D", "BatchNorm"]
    assert json.loads(meta["cnnumpy_version"]) == cnnumpy.__version__


def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    model, path, _, _ = trained(tmp_path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def rewrite(path, meta_changes=None, tensor_changes=None):
    """Re-save a model file with edited metadata or tensors.

    The checksum is valid, the content bad.
    """
    tensors, meta = saving.load_bytes(path.read_bytes())
    for key in ("format", "format_version", "sha256"):
        meta.pop(key)
    meta.update(meta_changes or {})
    tensors.update(tensor_changes or {})
    for k, v in list(tensors.items()):
        if v is None:
            del tensors[k]
    path.write_bytes(dump_bytes(tensors, meta))


def test_inconsistent_files_are_refused(tmp_path):
    _, path, _, _ = trained(tmp_path)
    original = path.read_bytes()
    cases = [
        ({}, {"layers.0.W": None}, r"missing: \['layers.0.W'\]"),
        ({}, {"layers.9.W": np.zeros(2, np.float32)}, r"unexpected: \['layers.9.W'\]"),
        (
            {},
            {"layers.6.W": np.zeros((3, 3), np.float32)},
            r"layers.6.W has shape \(3, 3\)",
        ),
    ]
    for meta, tensors, message in cases:
        path.write_bytes(original)
        rewrite(path, meta, tensors)
        with pytest.raises(ModelFileError, match=message):
            load_model(path)
    path.write_bytes(original)
    _, meta = saving.load_bytes(original)
    spec = meta["model"]
    spec["layers"][0]["class"] = "EvalLayer"
    rewrite(path, {"model": spec})
    with pytest.raises(ModelFileError, match="unknown layer type 'EvalLayer'"):
        load_model(path)


def test_newer_format_and_foreign_files(tmp_path):
    from safetensors.numpy import save

    path = tmp_path / "x.safetensors"
    path.write_bytes(
        save(
            {"a": np.zeros(2, np.float32)},
            metadata={"format": "cnnumpy", "format_version": "7"},
        )
    )
    with pytest.raises(ModelFileError, match="format version 7 is newer"):
        load_model(path)
    path.write_bytes(save({"a": np.zeros(2, np.float32)}))
    with pytest.raises(ModelFileError, match="not a cnnumpy model file"):
        load_model(path)
    path.write_bytes(b"PK\x03\x04 this is a zip file, not a model")
    with pytest.raises(ModelFileError, match=r"truncated or not a safetensors file"):
        load_model(path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_model(tmp_path / "missing.safetensors")


class Boom:
    def __reduce__(self):
        return (os.system, ("touch /tmp/cnnumpy_pwned_by_metadata",))


def test_pickle_smuggled_in_metadata_is_refused(tmp_path):
    marker = "/tmp/cnnumpy_pwned_by_metadata"
    if os.path.exists(marker):
        os.remove(marker)
    _, path, _, _ = trained(tmp_path)
    payload = pickle.dumps(Boom()).decode("latin1")
    _, meta = saving.load_bytes(path.read_bytes())
    spec = meta["model"]
    spec["layers"][0]["config"] = payload
    rewrite(path, {"model": spec, "optimizer": payload})
    with pytest.raises(ModelFileError, match=r"layer 0 has a corrupted config"):
        load_model(path)
    assert not os.path.exists(marker)


def test_fuzz_truncated_and_corrupted_files_always_raise_cleanly(tmp_path):
    _, path, _, _ = trained(tmp_path)
    original = path.read_bytes()
    rng = np.random.default_rng(0)
    offsets = rng.integers(0, len(original), 150)
    for i, offset in enumerate(offsets):
        if i % 2:
            corrupted = original[:offset]
        else:
            flipped = bytearray(original)
            flipped[offset] ^= 1 << int(rng.integers(0, 8))
            corrupted = bytes(flipped)
        path.write_bytes(corrupted)
        start = time.perf_counter()
        with pytest.raises(
            ModelFileError, match=r"^load_model\('.*model\.safetensors'\): "
        ):
            load_model(path)
        assert time.perf_counter() - start < 1.0, f"offset {offset} took too long"


def test_terminate_on_nan_keeps_the_last_good_checkpoints(tmp_path):
    from cnnumpy.callbacks import LambdaCallback, ModelCheckpoint, TerminateOnNaN

    x, y = data()
    model = model_with_everything()
    model.compile(optimizer=SGD(lr=0.01), loss="cross_entropy")

    def explode(
        epoch, logs
    ):  # from epoch 2 on, the learning rate makes the run diverge
        if epoch == 2:
            model.optimizer.lr = 1e38

    checkpoint = ModelCheckpoint(tmp_path / "last.safetensors", monitor="loss")
    with np.errstate(all="ignore"):
        history = model.fit(
            x * 1e3,
            y,
            epochs=6,
            batch_size=8,
            verbose=0,
            seed=0,
            resume_from=tmp_path / "backup",
            callbacks=[
                LambdaCallback(on_epoch_begin=explode),
                TerminateOnNaN(),
                checkpoint,
            ],
        )
    # epochs 0 and 1 completed; epoch 2 diverged, was cut short and logged with its NaN
    # loss
    assert history.epoch == [0, 1, 2] and not np.isfinite(history["loss"][2])
    for path in (
        tmp_path / "last.safetensors",
        tmp_path / "backup" / "checkpoint.safetensors",
    ):
        good = load_model(path)
        assert all(
            np.isfinite(v).all() for layer in good.layers for v in layer.params.values()
        )
        assert len(good.history.epoch) == 2


def fit_with_early_stopping(folder, epochs):
    """A run whose monitored metric is best at epoch 1, then stops at epoch 4."""
    from cnnumpy.callbacks import EarlyStopping, LambdaCallback

    x, y = data()
    model = model_with_everything()
    scores = [3.0, 1.0, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0]
    fake = LambdaCallback(
        on_epoch_end=lambda epoch, logs: logs.update(val_loss=scores[epoch])
    )
    stopper = EarlyStopping(monitor="val_loss", patience=3)
    model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=8,
        verbose=0,
        seed=0,
        resume_from=folder,
        callbacks=[fake, stopper],
    )
    return model, stopper


def test_resume_with_early_stopping_is_bit_identical(tmp_path):
    straight, stopper = fit_with_early_stopping(tmp_path / "a", 8)
    assert stopper.stopped_epoch == 4 and len(straight.history.epoch) == 5
    fit_with_early_stopping(tmp_path / "b", 3)  # "killed" after epoch 2
    resumed, _ = fit_with_early_stopping(tmp_path / "b", 8)
    again, _ = fit_with_early_stopping(tmp_path / "b", 8)  # already stopped: no epoch
    for model in (resumed, again):
        assert model.history.epoch == straight.history.epoch
        for a, b in zip(straight.get_weights(), model.get_weights(), strict=True):
            for k in a:  # the best weights (epoch 1), restored at the end
                np.testing.assert_array_equal(a[k], b[k])


def test_backward_of_the_model_returns_the_input_gradient():
    model = model_with_everything()
    x, y = data(4)
    model.train_on_batch(x, y)  # a training step skips dx of the input...
    out = model.forward(x.astype(np.float32))
    dx = model.backward(np.ones_like(out))  # ...the public pass does not
    assert dx is not None and dx.shape == x.shape


def test_crafted_metadata_raises_model_file_errors(tmp_path):
    _, path, _, _ = trained(tmp_path)
    original = path.read_bytes()
    _, meta = saving.load_bytes(original)
    bad_specs = []
    spec = json.loads(json.dumps(meta["model"]))
    spec["layers"][0]["class"] = ["Conv2D"]
    bad_specs.append(({"model": spec}, "unknown layer type"))
    spec = json.loads(json.dumps(meta["model"]))
    spec["input_shape"] = [2, 10**30, 6]
    bad_specs.append(({"model": spec}, "cannot be built"))
    spec = json.loads(json.dumps(meta["model"]))
    spec["layers"][5]["rng"] = {
        "bit_generator": "PCG64",
        "state": {"state": -1, "inc": 3},
        "has_uint32": 0,
        "uinteger": 0,
    }
    bad_specs.append(({"model": spec}, "corrupted random generator state"))
    bad_specs.append(
        ({"history": {"epoch": 5, "history": [1, 2]}}, "corrupted training")
    )
    opt = json.loads(json.dumps(meta["optimizer"]))
    opt["config"]["surprise"] = 1
    bad_specs.append(({"optimizer": opt}, "invalid optimiser state"))
    for changes, message in bad_specs:
        path.write_bytes(original)
        rewrite(path, changes)
        with pytest.raises(ModelFileError, match=message):
            load_model(path)
    # a JSON bomb as a metadata value, with a valid checksum
    from safetensors.numpy import save

    from cnnumpy.saving.safefile import digest

    metadata = {
        "format": "cnnumpy",
        "format_version": "1",
        "history": "[" * 100_000 + "]" * 100_000,
    }
    tensors = {"a": np.zeros(2, np.float32)}
    metadata["sha256"] = digest(tensors, metadata)
    path.write_bytes(save(tensors, metadata=metadata))
    with pytest.raises(
        ModelFileError, match="the metadata field 'history' is not valid: .*nested"
    ):
        load_model(path)
    path.write_bytes(
        save(tensors, metadata={"format": "cnnumpy", "format_version": "²"})
    )
    with pytest.raises(ModelFileError, match="format_version"):
        load_model(path)


def test_unknown_loss_loads_uncompiled_with_a_warning(tmp_path):
    model, path, x, _ = trained(tmp_path)
    _, meta = saving.load_bytes(path.read_bytes())
    rewrite(path, {"compile": {"loss": "my_own_loss", "metrics": []}})
    with pytest.warns(UserWarning, match="loaded without loss"):
        loaded = load_model(path)
    assert loaded.loss is None
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))


@pytest.mark.parametrize("kind", ["MT19937", "Philox", "SFC64", "PCG64"])
def test_layer_generators_of_every_kind_round_trip(tmp_path, kind):
    """Dropout's generator is saved with the model; MT19937, Philox and SFC64 keep
    arrays in their state, written as lists (JSON)."""
    model = cnnumpy.Sequential([Flatten(), Dropout(0.5), Dense(2)], input_shape=(3,))
    model.layers[1].rng = np.random.Generator(getattr(np.random, kind)(11))
    model.layers[1].rng.random(3)
    path = tmp_path / "m.safetensors"
    model.save(path)
    loaded = load_model(path)
    assert loaded.layers[1].rng.random() == model.layers[1].rng.random()


# -- what the header declares, and the values read -------------------------------------
def loading(loader, path, model):
    """A call that loads ``path`` with ``loader`` (into ``model`` if it takes one)."""
    return {
        "load_model": lambda: load_model(path),
        "load_weights": lambda: load_weights(model, path),
        "restore_checkpoint": lambda: saving.restore_checkpoint(model, path),
    }[loader]


LOADERS = ["load_model", "load_weights", "restore_checkpoint"]


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(
    "name, value, message",
    [
        ("zzz", np.zeros(2, np.float32), "unexpected tensor 'zzz': a model file holds"),
        (
            "optimizer.6.W.q",
            np.zeros((36, 3), np.float32),
            r"'optimizer.6.W.q': expected .* a slot of Adam \(m, v, step\)",
        ),
        (
            "optimizer.6.W.m",
            np.zeros((36, 4), np.float32),
            r"slot optimizer.6.W.m has shape \(36, 4\), the architecture expects "
            r"\(36, 3\)",
        ),
        (
            "extra.big",
            np.zeros(2**19, np.float32),
            r"extra tensors declare 2097152 bytes \(the largest, 'extra.big', has "
            r"shape \(524288,\)\); expected at most 1051760 ",
        ),
    ],
    ids=["unknown", "unknown-slot", "slot-shape", "extra-size"],
)
def test_tensors_the_model_does_not_call_for_are_refused(
    tmp_path, loader, name, value, message
):
    _, path, _, _ = trained(tmp_path)
    rewrite(path, tensor_changes={name: value})
    with pytest.raises(ModelFileError, match=message) as info:
        loading(loader, path, model_with_everything(seed=1))()
    assert str(path) in str(info.value)


def test_a_checkpoints_own_extra_tensors_still_load(tmp_path):
    model, path, x, _ = trained(tmp_path)
    best = {f"extra.1.EarlyStopping.{k}": v for k, v in rewrite_source(path).items()}
    rewrite(path, {"training": {"epoch": 1}}, best)
    state = saving.restore_checkpoint(model_with_everything(seed=1), path)
    assert sorted(state["tensors"]) == sorted(k[6:] for k in best)
    np.testing.assert_array_equal(load_model(path).predict(x), model.predict(x))


def rewrite_source(path):
    """The ``layers.*`` tensors of a model file, renamed ``{i}.{name}``."""
    tensors, _ = saving.load_bytes(path.read_bytes())
    return {k[7:]: v for k, v in tensors.items() if k.startswith("layers.")}


def with_bad_values(tensors, name, count, value, dtype=np.float32):
    array = tensors[name].astype(dtype)
    array.reshape(-1)[:count] = value
    return array


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(
    "name, value, dtype, message",
    [
        ("layers.0.W", np.nan, np.float32, "3 of 72 values that are NaN or infinite"),
        ("layers.6.b", -np.inf, np.float32, "3 of 3 values that are NaN or infinite"),
        ("layers.6.W", 1e300, np.float64, r"3 of 108 .*infinite \(as float32\)"),
        ("layers.1.running_var", -1.0, np.float32, "3 of 4 values below 0"),
        ("layers.1.running_mean", np.inf, np.float32, "3 of 4 values that are NaN"),
        ("optimizer.6.W.m", np.nan, np.float32, "3 of 108 values that are NaN"),
        ("optimizer.0.W.v", -1.0, np.float32, "3 of 72 values below 0"),
    ],
    ids=["nan", "-inf", "1e300", "var<0", "mean-inf", "slot-nan", "slot-v<0"],
)
def test_non_finite_weights_and_negative_variances_are_refused(
    tmp_path, loader, name, value, dtype, message
):
    _, path, _, _ = trained(tmp_path)
    tensors, _ = saving.load_bytes(path.read_bytes())
    bad = with_bad_values(tensors, name, 3, value, dtype)
    rewrite(path, tensor_changes={name: bad})
    model = model_with_everything(seed=1)
    before = [{k: v.copy() for k, v in layer.items()} for layer in model.get_weights()]
    # load_weights reads no optimiser state, but refuses a damaged file all the same
    with pytest.raises(ModelFileError, match=f"tensor {name} has {message}") as info:
        loading(loader, path, model)()
    assert str(path) in str(info.value)
    for a, b in zip(before, model.get_weights(), strict=True):  # nothing half-loaded
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def save_with_metadata(path, **fields):
    """A model file whose metadata fields are the given JSON texts, checksum valid."""
    from safetensors.numpy import save

    from cnnumpy.saving.safefile import digest

    metadata = {"format": "cnnumpy", "format_version": "1", **fields}
    tensors = {"a": np.zeros(2, np.float32)}
    metadata["sha256"] = digest(tensors, metadata)
    path.write_bytes(save(tensors, metadata=metadata))


def save_with_header(path, header_text):
    data = header_text.encode()
    path.write_bytes(len(data).to_bytes(8, "little") + data)


META = '"__metadata__": {"format": "cnnumpy", "format_version": "1"}'


@pytest.mark.parametrize(
    "write, message",
    [
        (
            lambda p: save_with_metadata(p, history='{"epoch": [' + "9" * 5000 + "]}"),
            "the metadata field 'history' is not valid: a number has too many digits",
        ),
        (
            lambda p: save_with_header(
                p,
                "{" + META + ', "a": {"dtype": "F32", "shape": [' + "9" * 5000 + "], "
                '"data_offsets": [0, 0]}}',
            ),
            "the header is not valid: a number has too many digits",
        ),
        (
            lambda p: save_with_header(
                p, "{" + META + ', "a": ' + "[" * 100_000 + "]" * 100_000 + "}"
            ),
            "the header is not valid: it is nested too deeply",
        ),
        (
            lambda p: save_with_metadata(p, training="[" * 500 + "]" * 500),
            r"the metadata field 'training' is not valid: it is nested too deeply "
            r"\(more than 64 levels\)",
        ),
    ],
    ids=["digits-metadata", "digits-header", "deep-header", "deep-metadata"],
)
def test_json_with_huge_numbers_or_deep_nesting_is_refused(tmp_path, write, message):
    path = tmp_path / "m.safetensors"
    write(path)
    with pytest.raises(ModelFileError, match=message) as info:
        load_model(path)
    assert str(path) in str(info.value)
