"""A char model's vocabulary in its model file (``model.preprocessing``): saved,
loaded, and checked both ways; bad metadata gives a ModelFileError naming the file."""

from __future__ import annotations

import pytest

from cnnumpy import saving, zoo
from cnnumpy.saving import ModelFileError, check_preprocessing
from cnnumpy.saving.loading import load_model
from cnnumpy.saving.safefile import dump_bytes

SYMBOLS = list("abcde")


def char_model():
    model = zoo.char_rnn(vocab_size=len(SYMBOLS), hidden=4)
    model.preprocessing = {"vocabulary": SYMBOLS}
    return model


def test_the_vocabulary_round_trips(tmp_path):
    char_model().save(tmp_path / "m.safetensors")
    loaded = load_model(tmp_path / "m.safetensors")
    assert loaded.preprocessing == {"vocabulary": SYMBOLS}


@pytest.mark.parametrize(
    ("symbols", "match"),
    [
        (["a", "a", "b", "c", "d"], "must be a list of 1 to 65536 distinct characters"),
        (
            ["a", "bc", "d", "e", "f"],
            "must be a list of 1 to 65536 distinct characters",
        ),
        ("abcde", "must be a list of 1 to 65536 distinct characters"),
        ([], "must be a list of 1 to 65536 distinct characters"),
        (list("abcd"), "the vocabulary has 4 characters, the model reads one-hot"),
    ],
)
def test_bad_vocabularies_are_refused_on_save_and_load(tmp_path, symbols, match):
    model = char_model()
    model.preprocessing = {"vocabulary": symbols}
    with pytest.raises(ValueError, match=f"save: preprocessing vocabulary|{match}"):
        model.save(tmp_path / "bad.safetensors")
    path = tmp_path / "m.safetensors"
    char_model().save(path)
    tensors, meta = saving.load_bytes(path.read_bytes())
    for key in ("format", "format_version", "sha256"):
        meta.pop(key)
    meta["preprocessing"] = {"vocabulary": symbols}
    path.write_bytes(dump_bytes(tensors, meta))
    with pytest.raises(ModelFileError, match=rf"load_model\('{path}'\): .*{match}"):
        load_model(path)


def test_a_vocabulary_is_not_for_an_image_model():
    with pytest.raises(ValueError, match=r"a vocabulary is for a model on characters"):
        check_preprocessing({"vocabulary": SYMBOLS}, (1, 28, 28), "here")


def test_extra_keys_beside_the_vocabulary_are_refused():
    value = {"vocabulary": SYMBOLS, "code": "import os"}
    with pytest.raises(ValueError, match="must be a dict with the keys scale, mean"):
        check_preprocessing(value, (25, 5), "here")
