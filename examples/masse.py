"""Seed 003's recurrent toy: learn the letters of « masse » over [a, e, m, s].

The slides (219-229) feed the one-hot letters m, a, s, s to a recurrent layer of 3
units, ``h_i = tanh(W^xh x_i + W^hh h_(i-1))``, and read each next letter from
``y_i = W^hy h_i`` through a softmax: m -> a -> s -> s -> e. At test time ("prédire les
lettres les unes après les autres") only the first letter is given, and each predicted
letter is fed back in as the next input.

    python examples/masse.py

prints the training loss, then for each step of the word its hidden state and the
softmax over [a, e, m, s], then the word the model writes from « m » alone.
"""

from __future__ import annotations

import numpy as np

import cnnumpy
from cnnumpy.data import Vocabulary, one_hot
from cnnumpy.layers import Dense, SimpleRNN

WORD = "masse"


def main() -> None:
    cnnumpy.seed(0)
    alphabet = Vocabulary.of(WORD)  # [a, e, m, s], the slides' order
    ids = alphabet.encode(WORD)
    x = one_hot(ids[:-1], len(alphabet))[None].astype(np.float32)  # m a s s
    y = ids[None, 1:]  # a s s e: the letter after each input letter
    model = cnnumpy.Sequential(
        [SimpleRNN(3, return_sequences=True), Dense(len(alphabet))],
        input_shape=(len(WORD) - 1, len(alphabet)),
    )
    model.compile(optimizer=cnnumpy.optimizers.Adam(lr=0.05), loss="cross_entropy")
    for step in range(301):
        loss = model.train_on_batch(x, y)
        if step % 100 == 0:
            print(f"step {step:3d}  loss {loss:.4f}")

    rnn, out = model.layers
    print("\nthe word, letter by letter (hidden state h_i, softmax over a e m s):")
    h = np.zeros((1, 3), np.float32)
    for i, letter in enumerate(WORD[:-1]):
        h, probs = step_once(rnn, out, x[:, i : i + 1], h)
        guess = alphabet.symbols[int(probs.argmax())]
        print(
            f"  x_{i + 1} = {letter}  h = {np.round(h[0], 2)}  "
            f"p = {np.round(probs, 3)}  -> {guess} (expected {WORD[i + 1]})"
        )

    print("\nat test time, from « m » alone, each prediction fed back in:")
    letter, written, h = "m", "m", np.zeros((1, 3), np.float32)
    for _ in range(len(WORD) - 1):
        x_t = one_hot(alphabet.encode(letter), len(alphabet))[None].astype(np.float32)
        h, probs = step_once(rnn, out, x_t, h)
        letter = alphabet.symbols[int(probs.argmax())]
        written += letter
    print(f"  {written}")


def step_once(rnn, out, x_t, h):
    """One time step: ``h = tanh(x W_xh + b_xh + h W_hh + b_hh)``, then the softmax
    of ``h W_hy + b_hy``; returns the new state and the probabilities."""
    h_seq = rnn.forward(x_t, initial_state=h)  # (1, 1, 3)
    logits = out.forward(h_seq)[0, 0]
    probs = np.exp(logits - logits.max())
    return h_seq[:, -1], probs / probs.sum()


if __name__ == "__main__":
    main()
