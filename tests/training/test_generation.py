"""Sampling text from a char model, bits per character, and examples/char_rnn.py."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cnnumpy
from cnnumpy.data import Vocabulary, one_hot
from cnnumpy.generation import bits_per_character, sample
from cnnumpy.layers import GRU, LSTM, Dense, Embedding, SimpleRNN
from cnnumpy.losses import CrossEntropy

REPO = Path(__file__).resolve().parents[2]
ABC = Vocabulary.of("abc")


def char_model(kind=SimpleRNN, K=3, units=8, embedding=False, stateful=False):
    cnnumpy.seed(0)
    layers = [kind(units, return_sequences=True, stateful=stateful), Dense(K)]
    if embedding:
        return cnnumpy.Sequential([Embedding(K, 4), *layers], input_shape=(6,))
    return cnnumpy.Sequential(layers, input_shape=(6, K))


@pytest.mark.parametrize("kind", [SimpleRNN, LSTM, GRU])
@pytest.mark.parametrize("embedding", [False, True])
def test_sample_is_reproducible_from_a_seed(kind, embedding):
    model = char_model(kind, embedding=embedding)
    first = sample(model, ABC, "ab", 40, rng=3)
    assert first == sample(model, ABC, "ab", 40, rng=np.random.default_rng(3))
    assert first != sample(model, ABC, "ab", 40, rng=4)
    assert set(first) <= set("abc")


@pytest.mark.parametrize("length", [0, 1, 37])
def test_sample_writes_length_characters(length):
    assert len(sample(char_model(), ABC, "c", length, rng=0)) == length


def test_temperature_zero_is_the_argmax_whatever_the_rng():
    model = char_model(LSTM)
    greedy = sample(model, ABC, "abc", 20, temperature=0, rng=1)
    assert greedy == sample(model, ABC, "abc", 20, temperature=0, rng=2)


@pytest.mark.parametrize("temperature", [-0.5, float("nan"), float("inf")])
def test_bad_temperature_is_refused(temperature):
    with pytest.raises(ValueError, match=r"temperature must be finite and > 0"):
        sample(char_model(), ABC, "a", 5, temperature=temperature)
    with pytest.raises(TypeError, match=r"temperature must be a number, got 'hot'"):
        sample(char_model(), ABC, "a", 5, temperature="hot")


def test_bad_prime_and_length_are_refused():
    model = char_model()
    with pytest.raises(ValueError, match=r"prime characters \['x', 'z'\] are not in"):
        sample(model, ABC, "azbx", 5)
    with pytest.raises(ValueError, match=r"prime must be a non-empty str, got ''"):
        sample(model, ABC, "", 5)
    with pytest.raises(ValueError, match=r"length must be >= 0, got -1"):
        sample(model, ABC, "a", -1)


def test_a_model_that_does_not_give_logits_per_step_is_refused():
    model = cnnumpy.Sequential([SimpleRNN(4), Dense(3)], input_shape=(6, 3))
    with pytest.raises(ValueError, match=r"expected a char model giving logits"):
        sample(model, ABC, "a", 5)


def test_sample_gives_stateful_layers_their_carry_back():
    model = char_model(LSTM, stateful=True)
    model.forward(one_hot(np.array([0, 1, 2, 0, 1, 2]), 3)[None])
    rnn = model.layers[0]
    carried = tuple(s.copy() for s in rnn.carried_state)
    sample(model, ABC, "ab", 10, rng=0)
    assert rnn.stateful
    for before, after in zip(carried, rnn.carried_state, strict=True):
        np.testing.assert_array_equal(before, after)
    stateless = char_model(GRU)
    sample(stateless, ABC, "ab", 10, rng=0)
    gru = stateless.layers[0]
    assert not gru.stateful and gru.carried_state is None


def test_sample_carries_the_state_as_one_long_forward():
    """Feeding back one character at a time is the same as reading the whole text."""
    model = char_model(LSTM)
    written = sample(model, ABC, "ab", 8, temperature=0)
    text = "ab" + written
    logits = model.forward(one_hot(ABC.encode(text), 3)[None])[0]
    np.testing.assert_array_equal(ABC.encode(written), logits[1:-1].argmax(axis=-1))


@pytest.mark.parametrize("kind", [SimpleRNN, LSTM])
def test_a_model_trained_on_a_periodic_text_writes_the_period(kind):
    model = char_model(kind, units=16)
    model.compile(optimizer=cnnumpy.optimizers.Adam(lr=0.02), loss="cross_entropy")
    ids = ABC.encode("abc" * 20)
    x = np.stack([one_hot(ids[s : s + 6], 3) for s in range(3)])  # every phase
    y = np.stack([ids[s + 1 : s + 7] for s in range(3)])
    for _ in range(300):
        model.train_on_batch(x, y)
    assert sample(model, ABC, "a", 30, temperature=0.1, rng=0) == "bcabca" * 5
    assert sample(model, ABC, "bc", 10, temperature=0.1, rng=0) == "abcabcabca"


@pytest.mark.parametrize("embedding", [False, True])
def test_a_uniform_model_scores_log2_K_bits(embedding):
    K = 5
    model = char_model(LSTM, K=K, embedding=embedding)
    dense = model.layers[-1]
    dense.params["W"][...] = 0  # logits 0 for every symbol: p = 1/K
    dense.params["b"][...] = 0
    ids = np.random.default_rng(0).integers(0, K, 200)
    bpc = bits_per_character(model, ids, 7, batch_size=4)
    assert abs(bpc - math.log2(K)) < 1e-6


def test_bits_per_character_carries_the_state_between_windows():
    """One stream read 4 characters at a time scores as one forward of the text."""
    model = char_model(SimpleRNN).astype("float64")
    ids = np.random.default_rng(0).integers(0, 3, 41)
    logits = model.forward(one_hot(ids[:-1], 3, np.float64)[None])
    nats = CrossEntropy()(logits, ids[None, 1:])
    bpc = bits_per_character(model, ids, 4, batch_size=1)
    np.testing.assert_allclose(bpc, nats / math.log(2), rtol=1e-12)


def test_bits_per_character_refuses_a_text_too_short():
    with pytest.raises(ValueError, match=r"a text of 4 ids has no window of 6 \+ 1"):
        bits_per_character(char_model(), np.arange(4) % 3, 6)
    with pytest.raises(ValueError, match=r"ids must be in \[0, 3\) .* got 0 to 3"):
        bits_per_character(char_model(), np.arange(10) % 4, 6)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_char_rnn_example_quick_run_learns(kind):
    script = REPO / "examples" / "char_rnn.py"
    result = subprocess.run(
        [sys.executable, str(script), "--quick", "--model", kind],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    bpc = [float(v) for v in re.findall(r"validation bpc (\d+\.\d+)", result.stdout)]
    assert len(bpc) >= 4  # step 0, the evaluations, then the final line
    assert all(b < a for a, b in zip(bpc[:-2], bpc[1:-1], strict=True)), bpc
    assert bpc[-1] == bpc[-2] < bpc[0] - 2  # the final line repeats the last one
    assert re.search(r"final: validation bpc \d+\.\d+ after 120 steps", result.stdout)
