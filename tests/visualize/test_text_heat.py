"""Karpathy's coloured-text pictures for a char model (cnnumpy.visualize.text)."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import numpy as np
import pytest

import cnnumpy
from cnnumpy.data import Vocabulary, one_hot
from cnnumpy.layers import GRU, LSTM, Dense, Embedding, ReLU, SimpleRNN
from cnnumpy.visualize import (
    char_probabilities,
    hidden_activations,
    text_heat_html,
    text_states,
    write_text_report,
)
from cnnumpy.visualize import text as vt

SYMBOLS = Vocabulary.of("ab <>&\"'\n")
TEXT = "ab <a&b> 'a\"b'\nba  <&>\n" * 3  # longer than nothing, shorter than a chunk


def char_model(kind=SimpleRNN, units=5, embedding=False, stateful=False):
    cnnumpy.seed(0)
    K = len(SYMBOLS)
    layers = [kind(units, return_sequences=True, stateful=stateful), Dense(K)]
    if embedding:
        model = cnnumpy.Sequential([Embedding(K, 4), *layers], input_shape=(6,))
    else:
        model = cnnumpy.Sequential(layers, input_shape=(6, K))
    return model.astype(np.float64)


def direct_forward(model, text: str) -> np.ndarray:
    """Logits ``(T, K)`` of one forward over the whole text from a zero state."""
    ids = SYMBOLS.encode(text)
    x = ids[None] if isinstance(model.layers[0], Embedding) else None
    if x is None:
        x = one_hot(ids, len(SYMBOLS), np.float64)[None]
    return model.forward(x)[0].astype(np.float64)


@pytest.mark.parametrize("kind", [SimpleRNN, LSTM, GRU])
@pytest.mark.parametrize("embedding", [False, True])
def test_probabilities_are_the_softmax_of_a_direct_forward(kind, embedding):
    model = char_model(kind, embedding=embedding)
    logits = direct_forward(model, TEXT)
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = z / z.sum(axis=1, keepdims=True)
    expected = p[np.arange(len(TEXT) - 1), SYMBOLS.encode(TEXT)[1:]]
    got = char_probabilities(model, SYMBOLS, TEXT)
    assert got.shape == (len(TEXT) - 1,)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_a_text_longer_than_a_chunk_carries_the_state(monkeypatch):
    model = char_model(LSTM)
    whole = char_probabilities(model, SYMBOLS, TEXT)
    monkeypatch.setattr(text_states, "CHUNK", 7)  # 7 does not divide len(TEXT)
    np.testing.assert_allclose(char_probabilities(model, SYMBOLS, TEXT), whole)
    hidden = hidden_activations(model, SYMBOLS, TEXT)
    monkeypatch.setattr(text_states, "CHUNK", 1000)
    np.testing.assert_allclose(hidden_activations(model, SYMBOLS, TEXT), hidden)


def test_the_models_own_carried_state_is_left_alone():
    model = char_model(GRU, stateful=True)
    model.forward(one_hot(SYMBOLS.encode("abab"), len(SYMBOLS), np.float64)[None])
    carried = model.layers[0].carried_state[0].copy()
    char_probabilities(model, SYMBOLS, TEXT)
    np.testing.assert_array_equal(model.layers[0].carried_state[0], carried)
    assert model.layers[0].stateful is True


@pytest.mark.parametrize("kind", [SimpleRNN, LSTM, GRU])
def test_activations_are_the_layers_outputs(kind):
    model = char_model(kind, units=6, embedding=True)
    hidden = hidden_activations(model, SYMBOLS, TEXT)
    assert hidden.shape == (len(TEXT), 6)
    x = model.layers[0].forward(SYMBOLS.encode(TEXT)[None])
    np.testing.assert_array_equal(hidden, model.layers[1].forward(x)[0])


def test_activations_of_a_chosen_recurrent_layer():
    cnnumpy.seed(1)
    K = len(SYMBOLS)
    first = SimpleRNN(4, return_sequences=True)
    second = GRU(3, return_sequences=True, name="top")
    model = cnnumpy.Sequential([first, second, Dense(K)], input_shape=(5, K))
    x = one_hot(SYMBOLS.encode(TEXT), K, model.dtype)[None]
    h1 = first.forward(x)
    h2 = second.forward(h1)
    np.testing.assert_array_equal(hidden_activations(model, SYMBOLS, TEXT), h1[0])
    for layer in (1, "top", second, -2):
        np.testing.assert_array_equal(
            hidden_activations(model, SYMBOLS, TEXT, layer=layer), h2[0]
        )


def test_characters_outside_the_vocabulary_are_refused():
    model = char_model()
    with pytest.raises(ValueError, match=r"text characters \['z'\] are not in the"):
        char_probabilities(model, SYMBOLS, "abz")
    with pytest.raises(ValueError, match=r"\['q', 'z'\] are not in the vocabulary"):
        hidden_activations(model, SYMBOLS, "zaq")
    with pytest.raises(ValueError, match=r"at least 2 character"):
        char_probabilities(model, SYMBOLS, "a")


def test_a_model_without_recurrent_layer_is_refused():
    K = len(SYMBOLS)
    model = cnnumpy.Sequential([Dense(K)], input_shape=(4, K))
    with pytest.raises(ValueError, match=r"the model has no recurrent layer"):
        hidden_activations(model, SYMBOLS, "ab")
    with pytest.raises(ValueError, match=r"the model has no recurrent layer"):
        write_text_report("never.html", model, SYMBOLS, "ab")
    rnn = char_model()
    with pytest.raises(TypeError, match=r"layer 1 must be a SimpleRNN, LSTM or GRU"):
        hidden_activations(rnn, SYMBOLS, "ab", layer=1)


def test_a_model_of_another_vocabulary_is_refused():
    model = char_model()
    with pytest.raises(
        ValueError, match=r"gives 9 outputs per step, the vocabulary has 2"
    ):
        char_probabilities(model, Vocabulary.of("ab"), "abba")


def test_a_layer_without_sequences_is_refused():
    K = len(SYMBOLS)
    model = cnnumpy.Sequential([LSTM(3), Dense(K)], input_shape=(4, K))
    with pytest.raises(ValueError, match=r"must return every h_t"):
        hidden_activations(model, SYMBOLS, "ab")


def test_the_html_escapes_every_character_and_the_title():
    text = "<b>&\"x'</b>"
    fragment = text_heat_html(text, np.linspace(0, 1, len(text)), title="<i>&'\"")
    assert "<b>" not in fragment and "<i>" not in fragment
    for escaped in ("&lt;", "&gt;", "&amp;", "&quot;", "&#x27;"):
        assert escaped in fragment
    shown = re.findall(r"<span[^>]*title=[^>]*>(.*?)</span>", fragment)
    assert html.unescape("".join(shown)) == text


def test_spaces_and_newlines_are_visible():
    fragment = text_heat_html("a b\nc", [0.1, 0.2, 0.3, 0.4, 0.5])
    assert "white-space:pre-wrap" in fragment
    assert "\u21b5\n" in fragment  # the newline is drawn, then breaks the line
    assert ">&nbsp;<" not in fragment and "> <" in fragment  # a space stays a space


def backgrounds(fragment: str) -> list[str]:
    return re.findall(r"background:(#[0-9a-f]{6})", fragment)


def test_colours_at_vmin_and_vmax_are_the_palettes_ends():
    blue, white, red = ("#2166ac", "#ffffff", "#b2182b")
    got = backgrounds(
        text_heat_html("abcde", [-1, 0, 1, -5, 5], -1, 1, palette="blue-white-red")
    )
    assert got == [blue, white, red, blue, red]  # beyond [vmin, vmax]: clipped
    got = backgrounds(text_heat_html("ab", [0.0, 1.0], 0, 1, palette="white-green"))
    assert got == ["#ffffff", "#008000"]


def test_a_nan_value_is_left_uncoloured():
    assert len(backgrounds(text_heat_html("ab", [np.nan, 0.5]))) == 1


def test_bad_heat_arguments_are_refused():
    with pytest.raises(ValueError, match=r"one value per character \(2,\), got \(3,\)"):
        text_heat_html("ab", [1, 2, 3])
    with pytest.raises(ValueError, match=r"expected vmin < vmax, got 1 and 1"):
        text_heat_html("ab", [1, 2], 1, 1)
    with pytest.raises(ValueError, match=r"palette must be one of"):
        text_heat_html("ab", [1, 2], palette="rainbow")


class Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.sections: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "section":
            self.sections.append(dict(attrs)["id"])
        if tag != "meta":
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack.pop() == tag


@pytest.mark.parametrize("unit", [None, 2])
def test_the_page_is_written_with_both_sections(tmp_path, unit):
    model = char_model(LSTM, units=4, embedding=True)
    path = write_text_report(tmp_path / "text.html", model, SYMBOLS, TEXT, unit=unit)
    page = path.read_text(encoding="utf-8")
    parser = Parser()
    parser.feed(page)
    assert parser.stack == []
    assert parser.sections == ["char-probabilities", "hidden-unit"]
    hidden = hidden_activations(model, SYMBOLS, TEXT)
    chosen = int(np.argmax(hidden.std(axis=0))) if unit is None else unit
    assert f"Hidden unit {chosen} of layer 1" in page
    assert len(backgrounds(page)) == 2 * len(TEXT) - 1  # the first char has no p
    assert "<script" not in page and "http" not in page  # self-contained


def test_a_bad_unit_is_refused(tmp_path):
    model = char_model(units=3)
    with pytest.raises(ValueError, match=r"unit must be in \[0, 3\), got 3"):
        write_text_report(tmp_path / "x.html", model, SYMBOLS, "abba", unit=3)
    assert not (tmp_path / "x.html").exists()


def test_a_relu_unit_widens_the_span():
    cnnumpy.seed(0)
    K = len(SYMBOLS)
    model = cnnumpy.Sequential(
        [SimpleRNN(3, "relu", return_sequences=True), Dense(K), ReLU(), Dense(K)],
        input_shape=(4, K),
    )
    body = vt.text_sections(model, SYMBOLS, TEXT, unit=0)
    assert body.count('<section id="') == 2
    unit = hidden_activations(model, SYMBOLS, TEXT)[:, 0]
    bound = max(1.0, float(np.abs(unit).max()))
    assert f">{-bound:.4g} <span" in body and f"</span> {bound:.4g}</p>" in body
