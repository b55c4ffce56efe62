"""Ablation: a recipe in full, then with each of its ingredients removed in turn.

Short runs (``--epochs``, 4 by default; the schedule is planned over them) of one
recipe of ``recipes.py``, one after the other in this process on the same data, so
that a learner sees what each ingredient is worth. The table gives, per ingredient
removed, the test accuracy (the recipe's headline figure: flip-averaged when it uses
the flip), its difference to the full recipe in percentage points, and the training
time; the last line printed is the same as JSON.

The moving average of the weights and the test-time flip do not change training (the
average only reads the weights): their rows are the full run evaluated without them,
not new runs.

    CNNUMPY_DATA=../shared/data python benchmarks/ablation.py --recipe cifar10 \\
        --epochs 4
    CNNUMPY_DATA=../shared/data python benchmarks/ablation.py --recipe cifar10 \\
        --ingredients cutout label_smoothing --limit 2000 --test-limit 1000   # smoke
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import accuracy
from recipes import EVAL_ONLY, INGREDIENTS, RECIPES, accuracies, uses, without


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", default="cifar10", choices=sorted(RECIPES))
    p.add_argument("--epochs", type=int, default=4, help="epochs of every run")
    p.add_argument(
        "--ingredients",
        nargs="+",
        choices=list(INGREDIENTS),
        metavar="ING",
        help=f"those to remove, among {', '.join(INGREDIENTS)} (default: every "
        "one the recipe uses)",
    )
    p.add_argument("--framework", default="cnnumpy", choices=("cnnumpy", "torch"))
    p.add_argument("--data-dir", help="folder with the files (default: $CNNUMPY_DATA)")
    p.add_argument("--limit", type=int, help="first N training images only")
    p.add_argument("--test-limit", type=int, help="first N test images (smoke runs)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def row(removed: str, value: float, full: dict | None, train_s: float, note=""):
    """One line of the table: the accuracy and its difference to the full run."""
    delta = None if full is None else round(100 * (value - full["accuracy"]), 2)
    return {"removed": removed, "accuracy": value, "delta_pp": delta,
            "train_s": train_s, "note": note}  # fmt: skip


def eval_only_row(name: str, full: dict, figures: dict) -> dict:
    """The row of an evaluation-only ingredient, read off the full run."""
    key = "test_accuracy_without_ema" if name == "ema" else "test_accuracy_plain"
    note = "the full run evaluated without it"
    return row(name, figures[key], full, full["train_s"], note)


def run(recipe, data, args) -> tuple[float, float, dict]:
    """Train once: (headline accuracy, training seconds, every figure)."""
    result = accuracy.train(recipe, data, args.framework, args.seed)
    figures = accuracies(recipe, result["tests"])
    train_s = result["history"][-1]["train_s"]
    return figures["test_accuracy"], train_s, figures


def markdown(rows: list[dict]) -> str:
    lines = ["| removed | test accuracy | vs full (pp) | train time | |",
             "|---|---:|---:|---:|---|"]  # fmt: skip
    for r in rows:
        delta = "" if r["delta_pp"] is None else f"{r['delta_pp']:+.2f}"
        lines.append(
            f"| {r['removed']} | {r['accuracy']:.2%} | {delta} | "
            f"{r['train_s']:.0f} s | {r['note']} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    recipe = dataclasses.replace(RECIPES[args.recipe], epochs=args.epochs)
    names = [n for n in (args.ingredients or INGREDIENTS) if uses(recipe, n)]
    data = accuracy.load(recipe.dataset, args.data_dir, args.limit, args.test_limit)
    print(
        f"ablation of {args.recipe} ({args.framework}, {args.epochs} epochs, "
        f"{len(data.x_train):,} training images): {', '.join(names)}",
        flush=True,
    )
    acc, train_s, figures = run(recipe, data, args)
    full = row("nothing (full recipe)", acc, None, train_s)
    rows = [full]
    for name in names:
        print(f"-- without {name}", flush=True)
        if name in EVAL_ONLY:
            rows.append(eval_only_row(name, full, figures))
            continue
        acc, train_s, _ = run(without(recipe, [name]), data, args)
        rows.append(row(name, acc, full, train_s))
    print(markdown(rows))
    summary = {"recipe": args.recipe, "epochs": args.epochs,
               "framework": args.framework, "train_images": len(data.x_train),
               "test_images": len(data.x_test), "rows": rows,
               "machine": accuracy.machine(args.framework)}  # fmt: skip
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
