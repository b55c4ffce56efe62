"""Text from a character model: sampling with a temperature, and bits per character.

Seed 003, "Réseaux récurrents" (the « masse » toy, slides 219-229): at test time the
network is given the first letter only, and each letter it predicts is fed back in as
the next input ("prédire les lettres les unes après les autres"). Karpathy's
min-char-rnn (112 lines, the slides' next example) does the same in its ``sample(h,
seed_ix, n)``: it carries the hidden state ``h`` from step to step, draws the next
character from ``p = softmax(y)`` and makes it the next one-hot input. Slides ~240-250
show what such samples look like after more and more training.

- :func:`sample`: feed a prime text through the model once, keeping each recurrent
  layer's final state, then write ``length`` characters one at a time, each drawn
  from ``softmax(logits / temperature)`` and fed back in with the carried states.
- :func:`bits_per_character`: the model's mean cross-entropy on a text, in bits
  (``log2`` rather than ``ln``): how a char model is evaluated; a model that knows
  nothing (uniform over K symbols) scores ``log2(K)``.

A *char model* is a :class:`~cnnumpy.sequential.Sequential` that maps a batch of ids
``(N, T)`` (first layer an Embedding) or of one-hot vectors ``(N, T, K)`` to logits
``(N, T, K)``, its recurrent layers built with ``return_sequences=True``. Stateful or
not, each recurrent layer is switched to ``stateful=True`` while these functions run
(its public carry does the work: the final state of one forward is the initial state
of the next), then given back its own ``stateful`` flag and carried state: sampling
in the middle of a stateful training leaves the training's carry untouched.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from cnnumpy.data.text import Vocabulary
from cnnumpy.data.transforms import one_hot
from cnnumpy.layers import GRU, LSTM, SimpleRNN
from cnnumpy.rng import as_rng
from cnnumpy.validation import takes_ids

RECURRENT_LAYERS = (SimpleRNN, LSTM, GRU)

__all__ = ["bits_per_character", "sample"]


@contextmanager
def carried_states(model) -> Iterator[None]:
    """Within the block, every recurrent layer of ``model`` starts from a zero state
    and carries its final state into the next forward; on leaving, each gets back its
    own ``stateful`` flag and carried state."""
    layers = [layer for layer in model.layers if isinstance(layer, RECURRENT_LAYERS)]
    saved = [(layer.stateful, layer.carried_state) for layer in layers]
    try:
        for layer in layers:
            layer.stateful = True
            layer.reset_states()
        yield
    finally:
        for layer, (stateful, carried) in zip(layers, saved, strict=True):
            layer.stateful = stateful
            layer.carried_state = carried


def _model_inputs(model, ids: np.ndarray, K: int) -> np.ndarray:
    """Ids ``(N, T)`` as the model reads them: the ids for an Embedding first layer,
    else their one-hot vectors ``(N, T, K)`` in the model's dtype."""
    if takes_ids(model):
        return ids
    return one_hot(ids.reshape(-1), K, model.dtype).reshape(*ids.shape, K)


def _logits(model, ids: np.ndarray, K: int) -> np.ndarray:
    """The model's logits ``(N, T, K)`` for ids ``(N, T)``, or a clear error."""
    out = model.forward(_model_inputs(model, ids, K))
    if not isinstance(out, np.ndarray) or out.ndim != 3 or out.shape[-1] != K:
        got = type(out).__name__ if not isinstance(out, np.ndarray) else out.shape
        raise ValueError(
            f"expected a char model giving logits (N, T, {K}) for a vocabulary of "
            f"{K} symbols (recurrent layers with return_sequences=True, no "
            f"return_state), got {got}"
        )
    return out


def _check_temperature(temperature) -> float:
    if isinstance(temperature, bool) or not isinstance(
        temperature, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"sample: temperature must be a number, got {temperature!r}")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(
            f"sample: temperature must be finite and > 0 (or 0 for the most likely "
            f"character), got {temperature!r}"
        )
    return float(temperature)


def _draw(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    """One id from ``softmax(logits / temperature)`` (float64); temperature 0 is the
    limit, the argmax (ties: the first)."""
    logits = logits.astype(np.float64)
    if temperature == 0:
        return int(np.argmax(logits))
    z = logits / temperature
    p = np.exp(z - z.max())  # shifted: exp never overflows, softmax is unchanged
    p /= p.sum()
    return int(rng.choice(len(p), p=p))


def sample(
    model,
    vocabulary: Vocabulary,
    prime: str,
    length: int,
    temperature: float = 1.0,
    rng: int | np.random.Generator | None = None,
) -> str:
    """``length`` characters written by a char model after ``prime``.

    The prime goes through the model once (one forward of ``len(prime)`` steps); its
    last logits give the first character. Then each drawn character is the next
    one-step input, with every recurrent layer's state carried: min-char-rnn's
    ``sample`` loop. Each character is drawn from ``softmax(logits / temperature)``:
    below 1 the likely characters get likelier (safer, more repetitive text), above 1
    the distribution flattens (more surprising, more mistakes). ``temperature=0`` is
    its limit: always the most likely character (greedy decoding, no randomness).

    Args:
        model: a char model (see the module's docstring), built.
        vocabulary: the symbols of the model's K outputs, in id order.
        prime: at least one character, each in ``vocabulary``.
        length: number of characters to write, >= 0.
        temperature: > 0, or 0 for the argmax.
        rng: a seed or a Generator: the same seed writes the same text.

    Returns:
        The ``length`` new characters (the prime is not repeated).

    Raises:
        ValueError: empty prime or one with a character outside the vocabulary, a
            negative length, a negative or non-finite temperature, or a model that
            does not give logits ``(N, T, K)``.
    """
    if not isinstance(prime, str) or not prime:
        raise ValueError(f"sample: prime must be a non-empty str, got {prime!r}")
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)):
        raise TypeError(f"sample: length must be an int, got {length!r}")
    if length < 0:
        raise ValueError(f"sample: length must be >= 0, got {length}")
    temperature = _check_temperature(temperature)
    unknown = sorted({c for c in prime if c not in vocabulary.index})
    if unknown:
        raise ValueError(
            f"sample: prime characters {unknown} are not in the vocabulary of "
            f"{len(vocabulary)} symbols"
        )
    rng = as_rng(rng)
    K = len(vocabulary)
    written = []
    with carried_states(model):
        logits = _logits(model, vocabulary.encode(prime)[None], K)[0, -1]
        for _ in range(length):
            next_id = _draw(logits, temperature, rng)
            written.append(next_id)
            logits = _logits(model, np.array([[next_id]]), K)[0, -1]
    return vocabulary.decode(np.array(written, dtype=np.int64))


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _check_text(ids, length, batch_size) -> np.ndarray:
    """``ids`` as a 1-D integer array of at least ``length + 1``, or a clear error."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(
            f"bits_per_character: expected 1-D integer ids, got {ids.dtype} "
            f"of shape {ids.shape}"
        )
    for name, value in (("length", length), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"bits_per_character: {name} must be an int, got {value!r}")
        if value < 1:
            raise ValueError(f"bits_per_character: {name} must be >= 1, got {value}")
    if len(ids) < length + 1:
        raise ValueError(
            f"bits_per_character: a text of {len(ids)} ids has no window of "
            f"{length} + 1"
        )
    return ids


def bits_per_character(model, ids, length: int, batch_size: int = 32) -> float:
    """The mean cross-entropy of the model's next-character predictions on ``ids``, in
    bits: ``-(1/n) sum_t log2 p(c_(t+1) | c_1..c_t)``.

    The text is read as min-char-rnn reads it, the state carried: it is cut into
    ``B = min(batch_size, (len(ids) - 1) // length)`` consecutive streams read side by
    side, ``length`` steps per forward, each recurrent layer carrying its state from
    one window to the next (each stream starts from a zero state). Every character
    after the first is predicted, but the ``(len(ids) - 1) % B`` last ones. A model
    with uniform outputs scores ``log2(K)`` for K symbols.

    Args:
        model: a char model (see the module's docstring), built.
        ids: the text's ids, 1-D integers in ``[0, K)``, at least ``length + 1``.
        length: time steps per forward (the windows' length), >= 1.
        batch_size: the most streams read at once.

    Returns:
        The mean bits per character, a float.
    """
    ids = _check_text(ids, length, batch_size)
    if model.input_shape is None:
        raise ValueError("bits_per_character: the model is not built")
    K = model.output_shape[-1]
    if ids.min() < 0 or ids.max() >= K:
        raise ValueError(
            f"bits_per_character: ids must be in [0, {K}) for the model's {K} "
            f"outputs, got {ids.min()} to {ids.max()}"
        )
    B = min(batch_size, (len(ids) - 1) // length)
    L = (len(ids) - 1) // B  # steps per stream
    inputs = ids[: B * L].reshape(B, L)  # stream b reads ids[b*L : (b+1)*L]
    targets = ids[1 : B * L + 1].reshape(B, L)
    total_nats = 0.0
    with carried_states(model):
        for lo in range(0, L, length):
            x, y = inputs[:, lo : lo + length], targets[:, lo : lo + length]
            log_p = _log_softmax(_logits(model, x, K).astype(np.float64))
            total_nats -= np.take_along_axis(log_p, y[..., None], axis=-1).sum()
    return float(total_nats / (B * L) / math.log(2))
