"""The notes' char models: min-char-rnn and its LSTM twin.

They read one-hot characters ``(N, T, K)`` (K = ``vocab_size``) rather than an
Embedding, as min-char-rnn does, and give logits ``(N, T, K)`` for any T;
:mod:`cnnumpy.zoo` lists them with the image networks.
"""

from __future__ import annotations

from cnnumpy.layers import LSTM, Dense, SimpleRNN
from cnnumpy.sequential import Sequential

CHAR_VOCAB = 65  # tiny Shakespeare's alphabet
CHAR_WINDOW = 25  # min-char-rnn's seq_length

# The models that read characters (cnnumpy train --text, cnnumpy generate).
TEXT_MODELS = ("char_rnn", "char_lstm")


def char_rnn(vocab_size=CHAR_VOCAB, hidden=100, stateful=False) -> Sequential:
    """min-char-rnn (seed 003): one-hot ``(N, T, K)`` -> SimpleRNN(hidden) -> Dense(K).

    Logits ``(N, T, K)``, one next-character prediction per step; ``stateful`` carries
    the state from one batch to the next (truncated BPTT over consecutive windows).
    """
    return _char_model(SimpleRNN, vocab_size, hidden, stateful, "char_rnn")


def char_lstm(vocab_size=CHAR_VOCAB, hidden=100, stateful=False) -> Sequential:
    """``char_rnn`` with an LSTM(hidden): 4·hidden·(K + hidden) + 2·4·hidden in it."""
    return _char_model(LSTM, vocab_size, hidden, stateful, "char_lstm")


def _char_model(recurrent, vocab_size, hidden, stateful, name) -> Sequential:
    layers = [
        recurrent(hidden, return_sequences=True, stateful=stateful),
        Dense(vocab_size),
    ]
    return Sequential(layers, input_shape=(CHAR_WINDOW, vocab_size), name=name)
