"""What a char model computed over a text: next-character probabilities, hidden states.

The numbers behind Karpathy's coloured-text pictures (:mod:`cnnumpy.visualize.text`
draws them). The model runs over the text with its state carried, as
:mod:`cnnumpy.generation` runs it (:func:`~cnnumpy.generation.carried_states`),
``CHUNK`` steps per forward.

- :func:`char_probabilities`: ``p(c_(t+1) | c_1..c_t)`` for every character after the
  first.
- :func:`hidden_activations`: the hidden states ``h_t`` ``(len(text), units)`` of one
  recurrent layer on the same run.
- :func:`probabilities_and_hidden`: both from a single run.
"""

from __future__ import annotations

import numpy as np

from cnnumpy.data.text import Vocabulary
from cnnumpy.data.transforms import one_hot
from cnnumpy.generation import RECURRENT_LAYERS, carried_states
from cnnumpy.validation import cast_inputs, takes_ids
from cnnumpy.visualize import _checks as ck

CHUNK = 256  # time steps per forward: the caches stay small on long texts


def _check_text(vocabulary: Vocabulary, text, where: str, at_least: int) -> None:
    if not isinstance(vocabulary, Vocabulary):
        raise TypeError(
            f"{where}: expected a Vocabulary, got {type(vocabulary).__name__}"
        )
    if not isinstance(text, str) or len(text) < at_least:
        raise ValueError(
            f"{where}: text must be a str of at least {at_least} character(s), "
            f"got {text!r}"
        )
    unknown = sorted({c for c in text if c not in vocabulary.index})
    if unknown:
        raise ValueError(
            f"{where}: text characters {unknown} are not in the vocabulary of "
            f"{len(vocabulary)} symbols"
        )


def _recurrent_index(model, layer, where: str) -> int:
    """The chosen recurrent layer, or the first one when ``layer`` is None."""
    if layer is None:
        for i, candidate in enumerate(model.layers):
            if isinstance(candidate, RECURRENT_LAYERS):
                return i
        raise ValueError(
            f"{where}: the model has no recurrent layer (SimpleRNN, LSTM or GRU)"
        )
    index = ck.layer_index(model, layer, where)
    if not isinstance(model.layers[index], RECURRENT_LAYERS):
        raise TypeError(
            f"{where}: layer {index} must be a SimpleRNN, LSTM or GRU, "
            f"got {model.layers[index]!r}"
        )
    return index


def _inputs(model, ids: np.ndarray, K: int) -> np.ndarray:
    """Ids ``(1, T)`` as the model reads them: ids for an Embedding, else one-hot."""
    if takes_ids(model):
        return ids
    return one_hot(ids.reshape(-1), K, model.dtype).reshape(*ids.shape, K)


def _run(model, vocabulary, text: str, watch: int | None, where: str):
    """One pass over ``text``, ``CHUNK`` steps per forward, states carried.

    Returns:
        The logits ``(T, K)`` in float64 and the outputs of layer ``watch``
        ``(T, units)`` (None when ``watch`` is None).
    """
    ck.check_built(model, where)
    K = len(vocabulary)
    outputs = model.output_shape[-1]
    if outputs != K:
        raise ValueError(
            f"{where}: the model gives {outputs} outputs per step, the vocabulary "
            f"has {K} symbols"
        )
    ids = vocabulary.encode(text)[None]  # (1, T)
    logits, watched = [], []
    with carried_states(model):
        for lo in range(0, ids.shape[1], CHUNK):
            out = cast_inputs(model, _inputs(model, ids[:, lo : lo + CHUNK], K))
            for i, layer in enumerate(model.layers):
                out = layer.forward(out, training=False)
                if i == watch:
                    watched.append(_sequence(out, layer, where))
            logits.append(_check_logits(out, K, where))
    hidden = np.concatenate(watched, axis=0) if watch is not None else None
    return np.concatenate(logits, axis=0).astype(np.float64), hidden


def _sequence(out, layer, where: str) -> np.ndarray:
    """The hidden states ``(T, units)`` a recurrent layer returned for one text."""
    if not isinstance(out, np.ndarray) or out.ndim != 3:
        raise ValueError(
            f"{where}: {layer!r} must return every h_t (return_sequences=True, no "
            f"return_state)"
        )
    return out[0]


def _check_logits(out, K: int, where: str) -> np.ndarray:
    if not isinstance(out, np.ndarray) or out.ndim != 3 or out.shape[-1] != K:
        got = out.shape if isinstance(out, np.ndarray) else type(out).__name__
        raise ValueError(
            f"{where}: expected a char model giving logits (N, T, {K}) for a "
            f"vocabulary of {K} symbols, got {got}"
        )
    return out[0]


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))  # shifted: no overflow
    return z / z.sum(axis=-1, keepdims=True)


def char_probabilities(model, vocabulary: Vocabulary, text: str) -> np.ndarray:
    """The probability the model gave each character of ``text`` after the first.

    ``p[t] = softmax(logits_t)[id(text[t + 1])]``, ``logits_t`` the output after
    reading ``text[: t + 1]``: every recurrent layer starts from a zero state and
    carries it along the text (the model's own carried state is left as it was).

    Args:
        model: a built char model (see :mod:`cnnumpy.generation`).
        vocabulary: the symbols of its K outputs, in id order.
        text: at least 2 characters, each in ``vocabulary``.

    Returns:
        ``(len(text) - 1,)`` float64 probabilities in [0, 1].
    """
    where = "char_probabilities"
    _check_text(vocabulary, text, where, 2)
    logits, _ = _run(model, vocabulary, text, None, where)
    return _next_char_probabilities(logits, vocabulary, text)


def _next_char_probabilities(logits, vocabulary: Vocabulary, text: str) -> np.ndarray:
    p = _softmax(logits[:-1])  # the last step predicts past the end of the text
    targets = vocabulary.encode(text)[1:]
    return p[np.arange(len(targets)), targets]


def hidden_activations(
    model, vocabulary: Vocabulary, text: str, layer=None
) -> np.ndarray:
    """The hidden states ``h_t`` of a recurrent layer over ``text``, state carried.

    Args:
        model: a built char model.
        vocabulary: the symbols of its K outputs, in id order.
        text: at least one character, each in ``vocabulary``.
        layer: the recurrent layer (index, Layer or name); default the first one.

    Returns:
        ``(len(text), units)``: row t is ``h_t`` after reading character t (for an
        LSTM, h, not the cell c).
    """
    where = "hidden_activations"
    _check_text(vocabulary, text, where, 1)
    ck.check_built(model, where)
    index = _recurrent_index(model, layer, where)
    _, hidden = _run(model, vocabulary, text, index, where)
    return hidden


def probabilities_and_hidden(
    model,
    vocabulary: Vocabulary,
    text: str,
    layer=None,
    where: str = "probabilities_and_hidden",
) -> tuple[int, np.ndarray, np.ndarray]:
    """One run over ``text``: the probabilities and the hidden states of one layer.

    Args:
        layer: the recurrent layer (index, Layer or name); default the first one.
        where: the caller's name, for the error messages.

    Returns:
        ``(index, probs, hidden)``: the recurrent layer's index, ``probs``
        ``(len(text) - 1,)`` as :func:`char_probabilities`, ``hidden``
        ``(len(text), units)`` as :func:`hidden_activations`.
    """
    _check_text(vocabulary, text, where, 2)
    ck.check_built(model, where)
    index = _recurrent_index(model, layer, where)
    logits, hidden = _run(model, vocabulary, text, index, where)
    return index, _next_char_probabilities(logits, vocabulary, text), hidden


def most_variable_unit(hidden: np.ndarray) -> int:
    """The unit whose activation varies most along the text (largest std)."""
    return int(np.argmax(hidden.std(axis=0)))
