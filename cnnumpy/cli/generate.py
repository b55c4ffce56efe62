"""``cnnumpy generate RUN --prime "def " --length 200 --temperature 0.8 --seed 0``:
text written by a char model (``cnnumpy train --text``).

The vocabulary comes from the model file (``model.preprocessing["vocabulary"]``), so
a model file copied out of its run still decodes; the text is written by
``cnnumpy.generation.sample`` (the prime read once, then each drawn character fed
back in with the recurrent states carried) and printed after the prime.
"""

from __future__ import annotations

from cnnumpy.cli import runs
from cnnumpy.cli.runs import UsageError
from cnnumpy.data import Vocabulary
from cnnumpy.generation import sample


def generate(args) -> int:
    """The ``generate`` subcommand: print the prime and the text written after it."""
    model, _, _ = runs.open_run(args.target)
    vocabulary = char_vocabulary(model, args.target)
    unknown = sorted({c for c in args.prime if c not in vocabulary.index})
    if not args.prime or unknown:
        found = f"characters {unknown} outside" if unknown else "an empty text, not"
        raise UsageError(
            f"--prime: {found} the vocabulary of {args.target} ({len(vocabulary)} "
            "characters)"
        )
    text = sample(
        model, vocabulary, args.prime, args.length, args.temperature, args.seed
    )
    print(args.prime + text)
    return 0


def char_vocabulary(model, target) -> Vocabulary:
    """The vocabulary a char model's file carries, or a one-line ``UsageError``."""
    prep = model.preprocessing or {}
    symbols = prep.get("vocabulary")
    if symbols is None:
        raise UsageError(
            f"{target}: not a char model (its model file has no vocabulary); "
            "generate needs a run of cnnumpy train --text"
        )
    outputs = model.output_shape
    if len(outputs) != 2 or outputs[-1] != len(symbols):
        raise UsageError(
            f"{target}: the model outputs {tuple(outputs)}, not logits (T, "
            f"{len(symbols)}) over its vocabulary of {len(symbols)} characters"
        )
    return Vocabulary(symbols)
