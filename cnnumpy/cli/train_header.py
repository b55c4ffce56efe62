"""The start of ``cnnumpy train`` (image models): what the run will do, printed before
the first epoch: the data, the standardisation, the model and its recipe, and how
each batch is shared out over processes or MPI ranks."""

from __future__ import annotations

from cnnumpy import engine
from cnnumpy.cli import train_recipes as recipes
from cnnumpy.distributed import limits

__all__ = ["print_header", "split_text"]


def print_header(config: dict, model, args, ranks: int | None) -> None:
    """The run's first lines; ``ranks``: how many MPI ranks (None: not under MPI)."""
    data = config["data"]
    print(f"data: {data['train']}")
    print(f"data: {data['test']}")
    held = f", {data['n_val']:,} held out for validation" if data["n_val"] else ""
    print(
        f"      training on {data['n_train']:,} images{held}; standardised with the "
        f"training mean {_fmt(config['preprocessing']['mean'])} and std "
        f"{_fmt(config['preprocessing']['std'])}"
    )
    schedule = "" if args.schedule == "none" else f", {args.schedule} schedule"
    print(
        f"model: {args.model}, {model.count_params():,} parameters, {args.dtype}; "
        f"loss {args.loss}; {model.optimizer!r}{schedule}; {args.epochs} epochs of "
        f"batches of {args.batch_size}{', augmented' if args.augment else ''}; "
        f"seed {args.seed}"
    )
    tricks = recipes.describe(args)
    if tricks:
        print(f"recipes: {tricks}")
    split = split_text(args.batch_size, args.processes, ranks)
    if split:
        print(f"split: {split}")


def split_text(batch: int, processes: int, ranks: int | None) -> str:
    """How each batch is shared out, or "" in one process: what the group attached
    to the model's executor will do, said before the first epoch so that a run that
    cannot split (one rank, a small batch, the engine off) says so."""
    if ranks is not None:
        if ranks == 1:
            return "none: this process is MPI's only rank"
        how, count = "MPI ranks", ranks
    elif processes > 1:
        how, count = "processes of this machine", processes
    else:
        return ""
    # as DataParallel.splits and Replicas.splits decide: the book's code runs whole
    if not engine.enabled():
        return "none: the engine is off (CNNUMPY_ENGINE=0): each batch runs whole"
    if batch < count * limits.MIN_SLICE:
        return (
            f"none: a batch of {batch} gives fewer than {limits.MIN_SLICE} images to "
            f"each of {count} {how}; every rank runs it whole"
        )
    sizes = limits.split_sizes(batch, count)
    share = f"{sizes[-1]}" if sizes[0] == sizes[-1] else f"{sizes[-1]} to {sizes[0]}"
    return f"each batch of {batch} over {count} {how}, {share} images each"


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:.4f}" for v in values) + ")"
