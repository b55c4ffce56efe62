"""Seed 003's translation: an encoder-decoder (Sutskever et al. 2014) by hand.

The slides (242-247) translate 'assez' -> 'enough' letter by letter, over the
alphabets fr [<BoS>, a, e, s, z, <EoS>] and en [<BoS>, e, g, h, n, o, u, <EoS>]:
"pas le même nombre d'entrées que de sorties" (M inputs, N outputs). An encoder reads
the French word; its final state h_T is the decoder's initial state h_0; the decoder
writes the English word one letter at a time, from <BoS> until it writes <EoS>.

    encoder:  Embedding -> GRU            "<BoS> a s s e z <EoS>"  -> h_T
    decoder:  Embedding -> GRU -> Dense   "<BoS> e n o u g h" -> "e n o u g h <EoS>"

Training feeds the decoder the true previous letter (teacher forcing); the loss is
the cross-entropy of every written letter, padding ignored. Backward runs through the
decoder first; the gradient of its initial state, ``decoder.initial_state_grad``, is
dL/dh_T for the encoder, which ``encoder.backward(0, dstate=dL/dh_T)`` carries back
through the source letters. At test time the decoder is run greedily, each predicted
letter fed back in as its next input.

Part 1 learns the slides' single pair; part 2 a real-sized task made offline: the
French words of the numbers 0-999 to English ones ("quatre-vingt-onze" -> "ninety-one"),
with exact-match accuracy on numbers held out of training.

    python examples/translate.py [--seed 0] [--epochs 80] [--cell gru|lstm] [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import cnnumpy
from cnnumpy.data import Vocabulary
from cnnumpy.layers import GRU, LSTM, Dense, Embedding
from cnnumpy.losses import CrossEntropy
from cnnumpy.optimizers import Adam

PAD, BOS, EOS = "<pad>", "<BoS>", "<EoS>"

# -- the number words ------------------------------------------------------------------
FR_UNITS = (
    "zéro un deux trois quatre cinq six sept huit neuf dix onze douze treize "
    "quatorze quinze seize"
).split()
FR_TENS = {2: "vingt", 3: "trente", 4: "quarante", 5: "cinquante", 6: "soixante"}
EN_UNITS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
EN_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def _french_below_100(n: int) -> str:
    """0-99, traditional spelling: hyphens below 100 except around "et"."""
    if n <= 16:
        return FR_UNITS[n]
    if n < 20:
        return "dix-" + FR_UNITS[n - 10]  # dix-sept, dix-huit, dix-neuf
    tens, unit = divmod(n, 10)
    if tens == 7:  # 60 + 10..19: soixante-dix, soixante et onze, soixante-douze
        return (
            "soixante et onze"
            if unit == 1
            else "soixante-" + _french_below_100(10 + unit)
        )
    if tens == 8:  # quatre-vingts takes its s only when nothing follows; no "et un"
        return "quatre-vingts" if unit == 0 else "quatre-vingt-" + FR_UNITS[unit]
    if tens == 9:  # 80 + 10..19: quatre-vingt-dix, quatre-vingt-onze (no "et")
        return "quatre-vingt-" + _french_below_100(10 + unit)
    if unit == 0:
        return FR_TENS[tens]
    if unit == 1:
        return FR_TENS[tens] + " et un"  # vingt et un ... soixante et un
    return FR_TENS[tens] + "-" + FR_UNITS[unit]


def french(n: int) -> str:
    """The French words of ``n`` in 0-999: "deux cents", "deux cent un",
    "cent quatre-vingts" (cent takes an s when multiplied and nothing follows)."""
    if not 0 <= n <= 999:
        raise ValueError(f"french: expected a number in 0-999, got {n}")
    if n < 100:
        return _french_below_100(n)
    hundreds, rest = divmod(n, 100)
    head = "cent" if hundreds == 1 else FR_UNITS[hundreds] + " cent"
    if rest == 0:
        return head + ("s" if hundreds > 1 else "")
    return head + " " + _french_below_100(rest)


def english(n: int) -> str:
    """The (American) English words of ``n`` in 0-999: "one hundred forty-two"."""
    if not 0 <= n <= 999:
        raise ValueError(f"english: expected a number in 0-999, got {n}")
    hundreds, rest = divmod(n, 100)
    if rest < 20:
        tail = EN_UNITS[rest]
    else:
        tens, unit = divmod(rest, 10)
        tail = EN_TENS[tens] + ("-" + EN_UNITS[unit] if unit else "")
    if hundreds == 0:
        return tail
    head = EN_UNITS[hundreds] + " hundred"
    return head if rest == 0 else head + " " + tail


# -- alphabets and batches -------------------------------------------------------------
def alphabet(words) -> Vocabulary:
    """The slides' alphabet [<BoS>, letters..., <EoS>], after <pad> (id 0, which the
    loss ignores)."""
    letters = sorted(set("".join(words)))
    return Vocabulary([PAD, BOS, *letters, EOS])


def encode_source(words, vocab: Vocabulary, reverse: bool = False) -> np.ndarray:
    """``(N, T)`` ids "<BoS> w o r d <EoS>", padded on the LEFT: the encoder has no
    mask, so its last step must be every word's own <EoS>. ``reverse`` reads the
    letters backwards, Sutskever et al.'s trick: the first letters of the source are
    then the last the encoder sees, close to the first ones the decoder writes."""
    rows = [
        [
            vocab.index[BOS],
            *vocab.encode(w[::-1] if reverse else w).tolist(),
            vocab.index[EOS],
        ]
        for w in words
    ]
    T = max(len(r) for r in rows)
    ids = np.full((len(rows), T), vocab.index[PAD], np.int64)
    for n, r in enumerate(rows):
        ids[n, T - len(r) :] = r
    return ids


def encode_target(words, vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """Teacher forcing: decoder input "<BoS> w o r d" and target "w o r d <EoS>",
    both ``(N, T)`` and padded on the right with <pad> (ignored by the loss)."""
    rows = [vocab.encode(w).tolist() for w in words]
    T = max(len(r) for r in rows) + 1
    pad = vocab.index[PAD]
    dec_in = np.full((len(rows), T), pad, np.int64)
    target = np.full((len(rows), T), pad, np.int64)
    for n, r in enumerate(rows):
        dec_in[n, : len(r) + 1] = [vocab.index[BOS], *r]
        target[n, : len(r) + 1] = [*r, vocab.index[EOS]]
    return dec_in, target


# -- the model -------------------------------------------------------------------------
class Seq2Seq:
    """Encoder ``Embedding -> GRU`` (or LSTM), decoder ``Embedding -> GRU -> Dense``.

    Args:
        src_vocab, tgt_vocab: the two alphabets (id 0 is <pad>).
        units: size of the encoder's and the decoder's state (the same: h_T = h_0).
        dim: length of each letter's embedding.
        cell: ``"gru"`` or ``"lstm"`` (whose state is the pair (h, c)).
        reverse_source: read the source backwards (see :func:`encode_source`).
        dtype: float32 for training, float64 for the gradient check.

    Shape:
        ``forward(src (N, S), dec_in (N, T)) -> logits (N, T, len(tgt_vocab))``.
    """

    def __init__(
        self,
        src_vocab: Vocabulary,
        tgt_vocab: Vocabulary,
        units: int = 64,
        dim: int = 16,
        cell: str = "gru",
        reverse_source: bool = False,
        dtype=np.float32,
    ) -> None:
        if cell not in ("gru", "lstm"):
            raise ValueError(f"Seq2Seq: cell must be 'gru' or 'lstm', got {cell!r}")
        Cell = GRU if cell == "gru" else LSTM
        self.src_vocab, self.tgt_vocab, self.units = src_vocab, tgt_vocab, units
        self.reverse_source = reverse_source
        self.src_embed = Embedding(len(src_vocab), dim)
        self.encoder = Cell(units, return_state=True)
        self.tgt_embed = Embedding(len(tgt_vocab), dim)
        self.decoder = Cell(units, return_sequences=True, return_state=True)
        self.out = Dense(len(tgt_vocab), kernel_initializer="glorot_uniform")
        self.layers = [
            self.src_embed,
            self.encoder,
            self.tgt_embed,
            self.decoder,
            self.out,
        ]
        for layer, shape in zip(
            self.layers, [(1,), (1, dim), (1,), (1, dim), (1, units)], strict=True
        ):
            layer.build(shape)
            layer.astype(dtype)

    def source_ids(self, words) -> np.ndarray:
        return encode_source(words, self.src_vocab, self.reverse_source)

    def encode(self, src: np.ndarray) -> list[np.ndarray]:
        """The encoder's final state(s): [h_T] (LSTM [h_T, c_T]), each (N, units)."""
        _, *final = self.encoder.forward(self.src_embed.forward(src))
        return final

    def decode(self, dec_in: np.ndarray, state) -> tuple[np.ndarray, list]:
        """Logits (N, T, K) of the letters after ``dec_in``, from state h_0; also
        the decoder's final state(s), to go on one letter at a time."""
        h_seq, *final = self.decoder.forward(
            self.tgt_embed.forward(dec_in), initial_state=state
        )
        return self.out.forward(h_seq), final

    def forward(self, src: np.ndarray, dec_in: np.ndarray) -> np.ndarray:
        """Teacher forcing: the logits of every target letter."""
        logits, _ = self.decode(dec_in, self.encode(src))
        return logits

    def backward(self, dlogits: np.ndarray) -> None:
        """Fill every layer's grads: decoder first, then the encoder, which receives
        the gradient of the decoder's h_0 as that of its own h_T."""
        dh_seq = self.out.backward(dlogits)
        self.tgt_embed.backward(self.decoder.backward(dh_seq))
        dL_dhT = self.decoder.initial_state_grad  # LSTM: (dL/dh_T, dL/dc_T)
        N = dlogits.shape[0]
        no_output_grad = np.zeros((N, self.units), self.encoder.dtype)
        dx = self.encoder.backward(no_output_grad, dstate=dL_dhT)
        self.src_embed.backward(dx)

    def translate(self, words, max_len: int = 40) -> list[str]:
        """Greedy decoding, the whole batch at once: each step feeds back the most
        probable letter, until every word has written <EoS> (or ``max_len``)."""
        state = self.encode(self.source_ids(words))
        bos, eos = self.tgt_vocab.index[BOS], self.tgt_vocab.index[EOS]
        letter = np.full((len(words), 1), bos, np.int64)
        written = []
        for _ in range(max_len):
            logits, state = self.decode(letter, state)
            letter = logits.argmax(axis=-1)  # (N, 1)
            written.append(letter[:, 0])
            if (np.stack(written, axis=1) == eos).any(axis=1).all():
                break
        out = []
        for row in np.stack(written, axis=1).tolist():
            row = row[: row.index(eos)] if eos in row else row
            out.append(self.tgt_vocab.decode(row))
        return out


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def train_step(model: Seq2Seq, loss: CrossEntropy, optimizer, src, tgt) -> float:
    """One update on the pairs (src words, tgt words); returns the loss."""
    dec_in, target = encode_target(tgt, model.tgt_vocab)
    value = loss(model.forward(model.source_ids(src), dec_in), target)
    model.backward(loss.backward())
    optimizer.step(model.layers)
    return float(value)


# -- part 1: the slides' pair ----------------------------------------------------------
def part1_assez(seed: int, cell: str = "gru", steps: int = 300) -> str:
    """Learn 'assez' -> 'enough' and print the greedy decoding letter by letter."""
    print("Part 1: 'assez' -> 'enough' (seed 003, slides 242-247)")
    cnnumpy.seed(seed)
    fr, en = alphabet("assez"), alphabet("enough")
    print(f"  alphabet fr: {fr.symbols}\n  alphabet en: {en.symbols}")
    model = Seq2Seq(fr, en, units=16, dim=8, cell=cell)
    loss = CrossEntropy(ignore_index=en.index[PAD])
    optimizer = Adam(lr=0.02)
    for step in range(steps + 1):
        value = train_step(model, loss, optimizer, ["assez"], ["enough"])
        if step % 100 == 0:
            print(f"  step {step:3d}  loss {value:.4f}")

    print("  greedy decoding from h_0 = h_T(assez), each letter fed back in:")
    state = model.encode(encode_source(["assez"], fr))
    letter, written = BOS, ""
    for _ in range(10):
        logits, state = model.decode(np.array([[en.index[letter]]]), state)
        probs = softmax(logits[0, 0])
        nxt = en.symbols[int(probs.argmax())]
        print(f"    in {letter:5s} -> {nxt:5s} (p = {probs.max():.3f})")
        if nxt == EOS:
            break
        written, letter = written + nxt, nxt
    print(f"  assez -> {written}")
    return written


# -- part 2: number words --------------------------------------------------------------
def part2_numbers(
    seed: int,
    epochs: int,
    cell: str = "gru",
    quick: bool = False,
    reverse: bool = False,
    units: int = 64,
    batch: int = 16,
    lr: float = 0.005,
):
    """French number words 0-999 to English; returns the held-out exact-match
    accuracy."""
    print("\nPart 2: French number words -> English, 0-999")
    cnnumpy.seed(seed)
    rng = np.random.default_rng(seed)
    numbers = rng.permutation(1000)
    n_train = 800
    train, held_out = numbers[:n_train], numbers[n_train:]
    if quick:
        train, held_out = train[:64], held_out[:16]
    fr = alphabet(french(n) for n in range(1000))
    en = alphabet(english(n) for n in range(1000))
    units = 32 if quick else units
    model = Seq2Seq(
        fr, en, units=units, dim=16 if quick else 32, cell=cell, reverse_source=reverse
    )
    loss = CrossEntropy(ignore_index=en.index[PAD])
    optimizer = Adam(lr=lr, clipnorm=5.0)
    print(
        f"  {len(train)} training pairs, {len(held_out)} held out; {cell.upper()} of "
        f"{units} units; alphabets of {len(fr)} and {len(en)} symbols"
    )
    for epoch in range(1, epochs + 1):
        order = rng.permutation(train)
        total = 0.0
        for start in range(0, len(order), batch):
            chunk = order[start : start + batch]
            total += train_step(
                model,
                loss,
                optimizer,
                [french(n) for n in chunk],
                [english(n) for n in chunk],
            ) * len(chunk)
        if epoch % 10 == 0 or epoch == epochs:
            acc = exact_match(model, held_out)
            print(
                f"  epoch {epoch:3d}  loss {total / len(order):.4f}  "
                f"held-out exact match {acc:.1%}",
                flush=True,
            )
    acc = exact_match(model, held_out)
    print(f"  held-out exact match: {acc:.1%} of {len(held_out)} pairs")
    guesses = model.translate([french(n) for n in held_out[:8]])
    for n, guess in zip(held_out[:8], guesses, strict=True):
        mark = "ok" if guess == english(n) else f"expected {english(n)!r}"
        print(f"    {french(n)!r:36s} -> {guess!r:30s} {mark}")
    return acc


def exact_match(model: Seq2Seq, numbers) -> float:
    guesses = model.translate([french(n) for n in numbers])
    right = [g == english(n) for n, g in zip(numbers, guesses, strict=True)]
    return float(np.mean(right))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--cell", choices=("gru", "lstm"), default="gru")
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument(
        "--reverse", action="store_true", help="part 2 reads the source backwards"
    )
    parser.add_argument("--quick", action="store_true", help="a tiny run (tests)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    part1_assez(args.seed, args.cell)
    epochs = 2 if args.quick else args.epochs
    part2_numbers(
        args.seed,
        epochs,
        args.cell,
        quick=args.quick,
        reverse=args.reverse,
        units=args.units,
        batch=args.batch,
        lr=args.lr,
    )
    print(f"\ntime: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
