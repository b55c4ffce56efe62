"""examples/translate.py: the number words (known values, distinct, the round trip
through word tokens), the held-out split, the encoder-decoder's gradients through the
chain encoder -> h_T = h_0 -> decoder (float64 finite differences), the slides'
'assez' -> 'enough' learnt exactly, and the ``--quick`` run."""

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import cnnumpy
from cnnumpy.losses import CrossEntropy
from gradcheck import numerical_gradient

ROOT = Path(__file__).resolve().parents[2]


def load_example():
    """examples/translate.py as a module (it imports its sibling translate_words)."""
    examples = str(ROOT / "examples")
    if examples not in sys.path:
        sys.path.insert(0, examples)
    spec = importlib.util.spec_from_file_location(
        "translate_example", ROOT / "examples" / "translate.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


translate = load_example()
number_words = sys.modules["translate_words"]

FRENCH = {
    0: "zéro",
    1: "un",
    16: "seize",
    17: "dix-sept",
    21: "vingt et un",
    22: "vingt-deux",
    61: "soixante et un",
    70: "soixante-dix",
    71: "soixante et onze",
    72: "soixante-douze",
    77: "soixante-dix-sept",
    80: "quatre-vingts",
    81: "quatre-vingt-un",
    90: "quatre-vingt-dix",
    91: "quatre-vingt-onze",
    99: "quatre-vingt-dix-neuf",
    100: "cent",
    101: "cent un",
    180: "cent quatre-vingts",
    200: "deux cents",
    201: "deux cent un",
    221: "deux cent vingt et un",
    280: "deux cent quatre-vingts",
    342: "trois cent quarante-deux",
    999: "neuf cent quatre-vingt-dix-neuf",
    1000: "mille",
    1001: "mille un",
    1080: "mille quatre-vingts",
    1100: "mille cent",
    1200: "mille deux cents",
    2000: "deux mille",
    2200: "deux mille deux cents",
    7071: "sept mille soixante et onze",
    9999: "neuf mille neuf cent quatre-vingt-dix-neuf",
}
ENGLISH = {
    0: "zero",
    1: "one",
    13: "thirteen",
    21: "twenty-one",
    23: "twenty-three",
    71: "seventy-one",
    80: "eighty",
    81: "eighty-one",
    91: "ninety-one",
    99: "ninety-nine",
    100: "one hundred",
    142: "one hundred forty-two",
    200: "two hundred",
    201: "two hundred one",
    999: "nine hundred ninety-nine",
    1000: "one thousand",
    1001: "one thousand one",
    1100: "one thousand one hundred",
    2200: "two thousand two hundred",
    9999: "nine thousand nine hundred ninety-nine",
}


@pytest.mark.parametrize("n, words", sorted(FRENCH.items()))
def test_french_number_words(n, words):
    assert translate.french(n) == words


@pytest.mark.parametrize("n, words", sorted(ENGLISH.items()))
def test_english_number_words(n, words):
    assert translate.english(n) == words


def test_number_words_are_distinct_and_range_checked():
    everything = range(10000)
    assert len({translate.french(n) for n in everything}) == 10000
    assert len({translate.english(n) for n in everything}) == 10000
    with pytest.raises(ValueError, match="0-9999, got 10000"):
        translate.french(10000)
    with pytest.raises(ValueError, match="0-9999, got -1"):
        translate.english(-1)


def test_word_tokens_round_trip():
    assert translate.tokens("quatre-vingt-dix-sept") == [
        "quatre", "-", "vingt", "-", "dix", "-", "sept"
    ]  # fmt: skip
    assert translate.tokens("deux cent vingt et un") == [
        "deux", "cent", "vingt", "et", "un"
    ]  # fmt: skip
    for n in range(10000):
        for text in (translate.french(n), translate.english(n)):
            assert translate.words(translate.tokens(text)) == text


def test_held_out_numbers_are_disjoint_from_training():
    train, held_out = translate.split_numbers(seed=0, n_train=9000, n_held_out=1000)
    assert len(train) == 9000 and len(held_out) == 1000
    assert not set(train.tolist()) & set(held_out.tolist())
    assert set(train.tolist()) | set(held_out.tolist()) == set(range(10000))
    again, _ = translate.split_numbers(seed=0, n_train=9000)
    np.testing.assert_array_equal(train, again)  # reproducible from the seed
    small, same_held_out = translate.split_numbers(seed=0, n_train=100)
    np.testing.assert_array_equal(held_out, same_held_out)  # whatever the n_train
    assert not set(small.tolist()) & set(held_out.tolist())


def test_teacher_forcing_and_padding():
    en = translate.vocabulary(["enough", "no"])
    dec_in, target = translate.encode_target(["enough", "no"], en)
    assert en.decode(dec_in[0]) == "<BoS>enough"
    assert en.decode(target[0]) == "enough<EoS>"
    assert en.decode(dec_in[1]) == "<BoS>no<pad><pad><pad><pad>"
    assert en.decode(target[1]) == "no<EoS><pad><pad><pad><pad>"
    fr = translate.vocabulary(["assez", "as"])
    src = translate.encode_source(["assez", "as"], fr)
    assert fr.decode(src[1]) == "<pad><pad><pad><BoS>as<EoS>"  # padded on the left
    reversed_src = translate.encode_source(["assez"], fr, reverse=True)
    assert fr.decode(reversed_src[0]) == "<BoS>zessa<EoS>"


def read(vocab, ids) -> list[str]:
    return [vocab.symbols[i] for i in ids]


def test_word_token_batches():
    """Part 2's sequences are lists of word tokens, reversed word by word."""
    fr_words = [translate.tokens("vingt et un"), translate.tokens("quatre-vingts")]
    fr = translate.vocabulary(fr_words)
    src = translate.encode_source(fr_words, fr, reverse=True)
    assert read(fr, src[0]) == ["<BoS>", "un", "et", "vingt", "<EoS>"]
    assert read(fr, src[1]) == ["<BoS>", "vingts", "-", "quatre", "<EoS>"]
    en_words = [translate.tokens("twenty-one"), translate.tokens("eighty")]
    en = translate.vocabulary(en_words)
    dec_in, target = translate.encode_target(en_words, en)
    assert read(en, dec_in[1]) == ["<BoS>", "eighty", "<pad>", "<pad>"]
    assert read(en, target[0]) == ["twenty", "-", "one", "<EoS>"]


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("reverse", [False, True])
def test_encoder_decoder_gradients_match_finite_differences(cell, reverse):
    """dL/dW of every layer, the encoder's W_xh included: its only path to the loss
    is h_T = h_0 of the decoder, so this checks the hand-made chain."""
    cnnumpy.seed(0)
    fr = translate.vocabulary(["assez", "as"])
    en = translate.vocabulary(["enough", "no"])
    model = translate.Seq2Seq(
        fr, en, units=3, dim=2, cell=cell, reverse_source=reverse, dtype=np.float64
    )
    rng = np.random.default_rng(0)
    for layer in model.layers:  # away from the zero bias of Dense, to test b too
        for p in layer.params.values():
            p[...] = rng.uniform(-0.8, 0.8, p.shape)
    src = model.source_ids(["assez", "as"])
    dec_in, target = translate.encode_target(["enough", "no"], en)
    loss = CrossEntropy(ignore_index=en.index[translate.PAD])

    def value():
        return loss(model.forward(src, dec_in), target)

    value()
    model.backward(loss.backward())
    assert model.encoder.grads["W_xh"].dtype == np.float64
    for layer in model.layers:
        for name, p in layer.params.items():
            analytic = layer.grads[name].copy()
            numeric = numerical_gradient(value, p, np.float64(1.0))
            np.testing.assert_allclose(
                analytic, numeric, rtol=1e-5, atol=1e-8, err_msg=f"{layer!r} {name}"
            )
    assert np.abs(model.encoder.grads["W_xh"]).max() > 1e-4  # the chain carries


def test_quick_run_learns_assez_enough_and_prints_an_accuracy(capsys):
    accuracy = translate.main(["--quick", "--seed", "0"])
    out = capsys.readouterr().out
    assert "assez -> enough" in out
    assert "in h     -> <EoS>" in out
    assert "epoch  2/2  loss" in out
    match = re.search(r"held-out exact match: ([\d.]+)% of 64 numbers", out)
    assert match, out
    assert float(match.group(1)) == pytest.approx(100 * accuracy, abs=0.05)
    assert 0.0 <= accuracy <= 1.0
    assert "time:" in out


def test_assez_enough_exactly():
    assert translate.part1_assez(seed=0, cell="gru") == "enough"


def test_assez_enough_with_lstm(capsys):
    assert translate.part1_assez(seed=1, cell="lstm") == "enough"


def test_greedy_decoding_stops_at_eos():
    cnnumpy.seed(0)
    fr = translate.vocabulary(["assez"])
    en = translate.vocabulary(["enough"])
    model = translate.Seq2Seq(fr, en, units=4, dim=2)
    guesses = model.translate(["assez", "sea"], max_len=5)
    assert len(guesses) == 2
    assert all(len(g) <= 5 for g in guesses)
    assert not any("<EoS>" in g for g in guesses)  # cut at <EoS>, which is not shown
