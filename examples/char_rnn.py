"""Seed 003's char-rnn: min-char-rnn, then an LSTM, writing text as they learn.

The slides (~230-250) show min-char-rnn (112 lines of NumPy: a recurrent layer of 100
units over one-hot characters, sequences of 25, Adagrad at lr 0.1) and the text it
writes after more and more training ("train more"). This example builds the same model
from cnnumpy's layers and trains it the same way:

- the model: one-hot characters ``(N, 25, K)`` -> ``SimpleRNN(100)`` -> ``Dense(K)``
  logits; ``--model lstm`` puts an ``LSTM(100)`` in its place (``--embedding D`` an
  ``Embedding(K, D)`` in front instead of the one-hot vectors);
- truncated backpropagation through time over *consecutive* windows: the text is cut
  into ``--batch`` streams read side by side, 25 characters a step, and the recurrent
  layer is ``stateful``, carrying its state from one window to the next as min-char-rnn
  carries ``hprev`` (the gradient stops at the window's start); back at the start of
  the text the state is reset, as min-char-rnn does. min-char-rnn reads one stream
  (batch 1); several streams give NumPy bigger matrix products for the same Python
  overhead;
- the optimiser: cnnumpy has no Adagrad; we use Adam (lr 2e-3, the char-rnn default)
  with gradients clipped to a global norm of 5 (min-char-rnn clips each entry to
  [-5, 5]).

Every ``--sample-every`` steps it prints a sample written by feeding each character
back in (:func:`cnnumpy.generation.sample`) and the validation bits per character on a
held-out tail of the text (the last 5%), then the final bpc and the time.

    python examples/char_rnn.py                       # SimpleRNN on the stdlib corpus
    python examples/char_rnn.py --model lstm --seconds 120
    python examples/char_rnn.py --text shakespeare.txt --steps 5000
    python examples/char_rnn.py --quick               # a few seconds (the tests)

The default text is :func:`cnnumpy.data.stdlib_corpus`, the Python standard library's
own sources (PSF licence), on every machine offline.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

import cnnumpy
from cnnumpy.data import Vocabulary, load_text, one_hot, stdlib_corpus
from cnnumpy.generation import bits_per_character, sample
from cnnumpy.layers import LSTM, Dense, Embedding, SimpleRNN

SEQ_LENGTH = 25  # min-char-rnn's seq_length
VALIDATION_FRACTION = 0.05  # the held-out tail
QUICK_CHARS = 20_000  # --quick trains on the corpus's first characters only
DEFAULT_LR = 2e-3  # char-rnn's default learning rate for Adam


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("rnn", "lstm"), default="rnn")
    parser.add_argument("--text", help="a UTF-8 file (default: the stdlib corpus)")
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--embedding", type=int, default=0, help="0: one-hot input")
    parser.add_argument("--batch", type=int, default=32, help="streams side by side")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seconds", type=float, help="stop after this much training")
    parser.add_argument("--lr", type=float, default=DEFAULT_LR)
    parser.add_argument("--sample-every", type=int, default=250)
    parser.add_argument("--sample-length", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a tiny run: seconds")
    args = parser.parse_args(argv)
    if args.quick:
        args.hidden, args.batch, args.steps = 32, 16, 120
        args.sample_every, args.sample_length = 40, 60
    return args


def read_text(args) -> tuple[Vocabulary, np.ndarray]:
    if args.text:
        return load_text(args.text)
    text = stdlib_corpus(QUICK_CHARS if args.quick else None)
    vocabulary = Vocabulary.of(text)
    return vocabulary, vocabulary.encode(text)


def build_model(kind: str, K: int, hidden: int, embedding: int, lr: float):
    """min-char-rnn's model: (one-hot or embedded) characters -> recurrent -> logits."""
    recurrent = SimpleRNN if kind == "rnn" else LSTM
    layers = [recurrent(hidden, return_sequences=True, stateful=True), Dense(K)]
    if embedding:
        layers.insert(0, Embedding(K, embedding))
        input_shape = (SEQ_LENGTH,)
    else:
        input_shape = (SEQ_LENGTH, K)
    model = cnnumpy.Sequential(layers, input_shape=input_shape)
    optimizer = cnnumpy.optimizers.Adam(lr=lr, clipnorm=5.0)
    model.compile(optimizer=optimizer, loss="cross_entropy", metrics=())
    return model


def consecutive_windows(ids: np.ndarray, streams: int):
    """Endless ``(x, y, restart)``: ``(streams, 25)`` windows read along ``streams``
    consecutive parts of the text; ``restart`` marks the first window of each pass,
    where the carried state must be forgotten."""
    L = (len(ids) - 1) // streams
    if L < SEQ_LENGTH:
        raise ValueError(
            f"char_rnn: {len(ids)} training characters are too few for {streams} "
            f"streams of {SEQ_LENGTH}; use a longer text or a smaller --batch"
        )
    inputs = ids[: streams * L].reshape(streams, L)
    targets = ids[1 : streams * L + 1].reshape(streams, L)
    while True:
        for lo in range(0, L - SEQ_LENGTH + 1, SEQ_LENGTH):
            hi = lo + SEQ_LENGTH
            yield inputs[:, lo:hi], targets[:, lo:hi], lo == 0


def show_progress(model, vocabulary, val_ids, args, step, rng, started) -> float:
    """Print the step, the validation bpc and a sample; return the bpc."""
    bpc = bits_per_character(model, val_ids, SEQ_LENGTH, batch_size=64)
    print(f"step {step:6d}  validation bpc {bpc:.3f}  ({time.time() - started:.1f} s)")
    prime = vocabulary.symbols[int(val_ids[0])]
    text = sample(model, vocabulary, prime, args.sample_length, args.temperature, rng)
    print("----\n" + prime + text + "\n----")
    return bpc


def train(model, vocabulary, train_ids, val_ids, args) -> tuple[int, float]:
    """Truncated BPTT over consecutive windows; returns (steps, final bpc)."""
    K = len(vocabulary)
    rng = np.random.default_rng(args.seed)  # the samples' draws
    windows = consecutive_windows(train_ids, args.batch)
    recurrent = model.layers[-2]
    started = time.time()
    step = 0
    while step < args.steps:
        if args.seconds is not None and time.time() - started > args.seconds:
            break
        if step % args.sample_every == 0:
            show_progress(model, vocabulary, val_ids, args, step, rng, started)
        x, y, restart = next(windows)
        if restart:
            recurrent.reset_states()  # back at the start: as min-char-rnn's hprev = 0
        if not args.embedding:
            x = one_hot(x.reshape(-1), K, model.dtype).reshape(*x.shape, K)
        loss = model.train_on_batch(x, y)
        step += 1
        if step % max(1, args.sample_every // 5) == 0:
            print(f"step {step:6d}  training bpc {loss / math.log(2):.3f}")
    final = show_progress(model, vocabulary, val_ids, args, step, rng, started)
    return step, final


def main(argv=None) -> None:
    args = parse_args(argv)
    cnnumpy.seed(args.seed)
    vocabulary, ids = read_text(args)
    split = int(len(ids) * (1 - VALIDATION_FRACTION))
    train_ids, val_ids = ids[:split], ids[split:]
    K = len(vocabulary)
    model = build_model(args.model, K, args.hidden, args.embedding, args.lr)
    kind = "SimpleRNN" if args.model == "rnn" else "LSTM"
    inputs = f"Embedding({K}, {args.embedding})" if args.embedding else "one-hot"
    print(
        f"{kind}({args.hidden}) on {inputs} characters, K = {K} symbols, "
        f"{model.count_params():,} parameters\n"
        f"text: {len(train_ids):,} training characters, {len(val_ids):,} held out; "
        f"{args.batch} consecutive streams, windows of {SEQ_LENGTH}, state carried "
        f"(truncated BPTT); Adam lr {args.lr}, clipnorm 5 (no Adagrad in cnnumpy)"
    )
    started = time.time()
    steps, bpc = train(model, vocabulary, train_ids, val_ids, args)
    print(
        f"final: validation bpc {bpc:.3f} after {steps} steps "
        f"({steps * args.batch * SEQ_LENGTH:,} characters), "
        f"{time.time() - started:.1f} s"
    )


if __name__ == "__main__":
    main()
