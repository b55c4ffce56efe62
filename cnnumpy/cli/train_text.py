"""``cnnumpy train --model char_lstm --text FILE``: a char model trained as
min-char-rnn trains it, into a run folder like the image runs'.

The text (a UTF-8 file; ``stdlib``, the Python standard library's sources, PSF
licence, offline; or ``tiny-shakespeare``, char-rnn's corpus, found as the data sets
are or downloaded and verified) becomes ids over its sorted characters; its last
``--val-split`` part is held out. Training is truncated backpropagation through
time over consecutive windows (``examples/char_rnn.py``): the training text is cut
into ``--batch-size`` streams read side by side, 25 characters a step, the recurrent
layer ``stateful`` so that it carries its state from one window to the next; each
epoch is one pass and starts from a zero state. After every epoch: the validation
bits per character (``cnnumpy.generation.bits_per_character``), ``history.csv`` and a
checkpoint (``--resume`` continues from it: the passes are deterministic, so a resumed
run ends with the weights of an uninterrupted one).

The model file carries the vocabulary (``model.preprocessing = {"vocabulary":
[...]}``, checked by ``cnnumpy.saving.preprocessing``), so ``cnnumpy generate`` can
decode what the model writes. The run folder holds ``config.json``,
``model.safetensors``, ``history.csv``, ``curves.png``, ``metrics.json`` (validation
bits per character), ``report.html`` (the validation text coloured by the model) and
``checkpoint/``; no confusion matrix.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from cnnumpy import optimizers, visualize, zoo
from cnnumpy.callbacks import History
from cnnumpy.cli import runs
from cnnumpy.cli.runs import UsageError
from cnnumpy.cli.train_folder import (
    check_resume,
    train_in_folder,
    write_history_csv,
)
from cnnumpy.data import Vocabulary, load_text, one_hot, stdlib_corpus, tiny_shakespeare
from cnnumpy.divergence import TrainingDiverged
from cnnumpy.generation import bits_per_character, sample
from cnnumpy.rng import seed as seed_everything
from cnnumpy.saving.loading import load_model
from cnnumpy.version import __version__
from cnnumpy.visualize.text import write_text_report

SEQ_LENGTH = zoo.CHAR_WINDOW  # min-char-rnn's seq_length
CLIP_NORM = 5.0  # char-rnn's gradient clipping (min-char-rnn clips entries to +-5)
DEFAULT_LR = {"sgd": 0.05, "adam": 2e-3, "adamw": 2e-3, "rmsprop": 2e-3}
SAMPLE_LENGTH = 100  # the sample printed at the end
REPORT_CHARS = 2000  # of the validation text, coloured in report.html
CORPORA = ("stdlib", "tiny-shakespeare")  # --text NAME, instead of a file
SAME_ON_RESUME = ("model", "text", "hidden", "batch_size", "optimizer", "lr")
SAME_ON_RESUME += ("momentum", "weight_decay", "limit", "val_split", "seed", "dtype")


def run(args) -> int:
    """The ``train`` subcommand for a char model; returns the exit code."""
    _check_args(args)
    args.optimizer = args.optimizer or "adam"
    args.lr = DEFAULT_LR[args.optimizer] if args.lr is None else args.lr
    out = Path(args.out)
    checkpoint = runs.CHECKPOINT
    return train_in_folder(args, lambda folder: _train(args, out, folder / checkpoint))


def _check_args(args) -> None:
    if args.model not in zoo.TEXT_MODELS:
        raise UsageError(
            f"--text is for the char models ({', '.join(zoo.TEXT_MODELS)}), "
            f"not --model {args.model}"
        )
    if args.text is None:
        raise UsageError(
            f"--model {args.model} reads text: give --text FILE (or --text "
            f"{' or '.join(CORPORA)})"
        )
    refused = {
        "--dataset": args.dataset is not None,
        "--data-dir": args.data_dir is not None and args.text != "tiny-shakespeare",
        "--augment": args.augment,
        "--schedule": args.schedule != "none",
        "--warmup": args.warmup is not None,
        "--cutout": args.cutout is not None,
        "--label-smoothing": args.label_smoothing > 0,
        "--no-decay-biases": args.no_decay_biases,
        "--nesterov": args.nesterov,
        "--ema": args.ema is not None,
        "--tta-flip": args.tta_flip,
        "--processes": args.processes != 1,
        "--sample-if-missing": args.sample_if_missing,
    }
    given = [name for name, used in refused.items() if used]
    if given:
        raise UsageError(f"--text: {', '.join(given)} is not for char models")


def _read_text(args) -> tuple[Vocabulary, np.ndarray, str]:
    """``(vocabulary, ids, description)`` of ``--text`` (its first ``--limit``)."""
    if args.text in CORPORA:
        if args.text == "stdlib":
            text, source = stdlib_corpus(), "the Python standard library's sources"
        else:
            text, source = tiny_shakespeare(args.data_dir), "tiny Shakespeare"
        text = text[: args.limit]
        vocabulary = Vocabulary.of(text)
        ids = vocabulary.encode(text)
    else:
        vocabulary, ids = load_text(args.text)
        source = str(Path(args.text).resolve())
        if args.limit is not None and args.limit < len(ids):
            text = vocabulary.decode(ids[: args.limit])
            vocabulary = Vocabulary.of(text)
            ids = vocabulary.encode(text)
    return vocabulary, ids, f"{len(ids):,} characters from {source}"


def _split(args, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The training text and the held-out tail (None with ``--val-split 0``)."""
    n_val = int(len(ids) * args.val_split)
    train, val = ids[: len(ids) - n_val], ids[len(ids) - n_val :]
    if args.val_split and len(val) < SEQ_LENGTH + 1:
        raise UsageError(
            f"--val-split {args.val_split}: {len(val)} held-out characters, fewer "
            f"than a window of {SEQ_LENGTH} + 1; use a longer text or a larger "
            "--val-split"
        )
    if (len(train) - 1) // args.batch_size < SEQ_LENGTH:
        raise UsageError(
            f"--text: {len(train):,} training characters are too few for "
            f"--batch-size {args.batch_size} streams of {SEQ_LENGTH}; use a longer "
            "text or a smaller --batch-size"
        )
    return train, (val if args.val_split else None)


def _config(args, vocabulary: Vocabulary, description: str, parts) -> dict:
    train, val = parts
    text = args.text if args.text in CORPORA else str(Path(args.text).resolve())
    keys = ("model", "hidden", "epochs", "batch_size", "optimizer", "lr")
    keys += ("momentum", "weight_decay", "limit", "val_split", "seed", "dtype")
    return {
        "command": "train",
        **{key: getattr(args, key) for key in keys},
        "text": text,
        "seq_length": SEQ_LENGTH,
        "input_shape": [SEQ_LENGTH, len(vocabulary)],
        "vocabulary": vocabulary.symbols,
        "data": {
            "text": description,
            "n_train": len(train),
            "n_val": 0 if val is None else len(val),
        },
        "cnnumpy_version": __version__,
    }


def _build(args, vocabulary: Vocabulary):
    seed_everything(args.seed)
    K = len(vocabulary)
    model = zoo.get(args.model, vocab_size=K, hidden=args.hidden, stateful=True)
    model.astype(np.dtype(args.dtype))
    options = {"lr": args.lr, "clipnorm": CLIP_NORM}
    if args.weight_decay is not None:
        options["weight_decay"] = args.weight_decay
    if args.optimizer == "sgd":
        options["momentum"] = args.momentum
    model.compile(optimizers.get(args.optimizer, **options), loss="cross_entropy")
    model.preprocessing = {"vocabulary": vocabulary.symbols}  # in the model file
    model.history = History()
    return model


def _resumed(args, checkpoint: Path, vocabulary: Vocabulary):
    """The checkpoint's model (weights, optimiser, history), or None."""
    if not (args.resume and checkpoint.is_file()):
        return None
    model = load_model(checkpoint)
    if (model.preprocessing or {}).get("vocabulary") != vocabulary.symbols:
        raise UsageError(
            f"--resume: {checkpoint} was trained on another vocabulary (the text "
            "changed?); use --overwrite"
        )
    done = len(model.history.epoch)
    if done > args.epochs:
        raise UsageError(
            f"--resume --epochs {args.epochs}: the run already completed {done}"
        )
    print(f"resuming after epoch {done}")
    return model


def _train(args, out: Path, checkpoint: Path) -> int:
    start = time.perf_counter()
    vocabulary, ids, description = _read_text(args)
    parts = _split(args, ids)
    config = _config(args, vocabulary, description, parts)
    if args.resume:
        check_resume(out / runs.CONFIG, config, SAME_ON_RESUME)
    model = _resumed(args, checkpoint, vocabulary) or _build(args, vocabulary)
    _print_header(config, model, args)
    runs.write_json(out / runs.CONFIG, config)
    timings = {"load_and_preprocess": time.perf_counter() - start}
    start = time.perf_counter()
    for epoch in range(len(model.history.epoch), args.epochs):
        logs = _epoch(model, parts, args.batch_size, epoch)
        model.history.on_epoch_end(epoch, logs)
        _print_epoch(epoch, args.epochs, logs)
        model.save(checkpoint, include_optimizer=True)
        write_history_csv(out / runs.HISTORY, model.history)
    timings["train"] = time.perf_counter() - start
    report = not args.no_report
    return _finish(out, model, vocabulary, config, parts, timings, args.seed, report)


def _epoch(model, parts, streams: int, epoch: int) -> dict:
    """One pass of truncated BPTT over the training text; the epoch's logs."""
    train, val = parts
    K = model.output_shape[-1]
    L = (len(train) - 1) // streams  # steps per stream
    inputs = train[: streams * L].reshape(streams, L)
    targets = train[1 : streams * L + 1].reshape(streams, L)
    model.layers[0].reset_states()  # each pass starts from h = 0, as min-char-rnn
    total, count = 0.0, 0
    for batch, lo in enumerate(range(0, L - SEQ_LENGTH + 1, SEQ_LENGTH)):
        x = inputs[:, lo : lo + SEQ_LENGTH]
        x = one_hot(x.reshape(-1), K, model.dtype).reshape(*x.shape, K)
        loss = model.train_on_batch(x, targets[:, lo : lo + SEQ_LENGTH])
        if not math.isfinite(loss):
            raise TrainingDiverged(f"the loss is {loss}", epoch=epoch, batch=batch)
        total, count = total + loss, count + 1
    logs = {"loss": total / count, "bpc": total / count / math.log(2)}
    if val is not None:
        bpc = bits_per_character(model, val, SEQ_LENGTH, batch_size=64)
        logs.update(val_loss=bpc * math.log(2), val_bpc=bpc)
    return logs


def _finish(out: Path, model, vocabulary, config, parts, timings, seed, report) -> int:
    """Write the model, metrics and curves; print a sample."""
    model.save(out / runs.MODEL, include_optimizer=False)
    last = {k: v[-1] for k, v in model.history.history.items() if v}
    runs.write_json(
        out / runs.METRICS,
        {
            "text": config["data"]["text"],
            "validation_bits_per_character": last.get("val_bpc"),
            "validation_loss": last.get("val_loss"),
            "validation_characters": config["data"]["n_val"],
            "training_bits_per_character": last.get("bpc"),
            "vocabulary_size": len(vocabulary),
            "epochs_completed": len(model.history.epoch),
            "last_epoch": last,
            "timings_s": timings,
        },
    )
    written = [runs.MODEL, runs.CONFIG, runs.METRICS, runs.HISTORY]
    try:  # matplotlib is imported only now, and may be missing
        visualize.training_curves(model.history, save=out / runs.CURVES)
        written.append(runs.CURVES)
    except ImportError as exc:
        print(f"warning: no curves.png ({exc}); pip install matplotlib")
    # report.html: the validation text coloured by the probability the model gave
    # each character and by its most variable hidden unit (Karpathy et al. 2015)
    shown = (parts[1] if parts[1] is not None else parts[0])[:REPORT_CHARS]
    if report and len(shown) >= 2:
        text = vocabulary.decode(shown)
        write_text_report(out / runs.REPORT, model, vocabulary, text)
        written.append(runs.REPORT)
    prime = vocabulary.symbols[int(parts[0][0])]
    text = sample(model, vocabulary, prime, SAMPLE_LENGTH, 1.0, seed)
    print(f"sample (temperature 1, seed {seed}):\n----\n{prime}{text}\n----")
    bpc = last.get("val_bpc")
    shown = "no validation text" if bpc is None else f"validation {bpc:.3f} bits/char"
    print(f"{shown}; trained {timings['train']:.0f} s")
    print(f"run folder: {out} ({', '.join(written)})")
    return 0


def _print_header(config: dict, model, args) -> None:
    data = config["data"]
    print(f"text: {data['text']}")
    print(
        f"      {len(config['vocabulary'])} distinct characters; training on "
        f"{data['n_train']:,}, {data['n_val']:,} held out (the last part)"
    )
    print(
        f"model: {args.model}, {model.count_params():,} parameters, {args.dtype}; "
        f"{model.optimizer!r}; {args.epochs} epochs of {args.batch_size} streams in "
        f"windows of {SEQ_LENGTH}, state carried; seed {args.seed}"
    )


def _print_epoch(epoch: int, epochs: int, logs: dict) -> None:
    val = f", validation {logs['val_bpc']:.3f}" if "val_bpc" in logs else ""
    print(f"epoch {epoch + 1}/{epochs}: training {logs['bpc']:.3f} bits/char{val}")
