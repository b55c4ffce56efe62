"""The notes' experiments, one command each: the notes' number beside cnnumpy's.

Each reproduction runs an experiment of the course notes (``shared/seeds/``) with the
notes' own setup, or says precisely where it cannot, and prints what the notes
report beside what cnnumpy gets on this machine::

    .venv/bin/python benchmarks/reproduce.py --list
    .venv/bin/python benchmarks/reproduce.py seed002_xor
    .venv/bin/python benchmarks/reproduce.py --all --quick

``--quick`` shortens the long ones (fewer epochs or examples) so that they still show
the trend; ``--quick-over MIN`` shortens only those longer than MIN minutes, and
``--markdown FILE`` also writes the table of ``docs/reproductions.md``. The last line
printed is one JSON object: the machine, and for each reproduction its name, the
notes' figure, cnnumpy's, the settings and the seconds.

The reproductions live in ``benchmarks/reproductions/``, one module per seed or
source; each module lists its :class:`Reproduction` objects in ``REPRODUCTIONS``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))


@dataclass(frozen=True)
class Reproduction:
    """One experiment of the notes.

    Attributes:
        name: the command-line name, ``seedNNN_what`` (e.g. ``seed002_xor``).
        source: where in the notes, e.g. ``"seed 002, II.3 (XOR)"``.
        notes: what the notes report, in their words and numbers.
        run: ``run(quick) -> dict`` runs it and prints as it goes; the dict holds
            ``"cnnumpy"`` (cnnumpy's figure, in the notes' terms), ``"differences"``
            (one sentence on every departure from the notes' setup, or ``""``) and any
            other numbers worth keeping (``"settings"``, ``"accuracy"``, ...).
        minutes: about how long the full run takes on a 2-core laptop (``--quick``
            takes well under a minute).
    """

    name: str
    source: str
    notes: str
    run: Callable[[bool], dict] = field(repr=False)
    minutes: float = 0.1


def machine() -> dict:
    """What ran the reproductions: CPU model, cores, Python, NumPy and its BLAS."""
    import numpy as np

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    blas = []
    try:
        import threadpoolctl

        blas = [
            f"{p.get('internal_api')} {p.get('version')} {p.get('architecture')}"
            for p in threadpoolctl.threadpool_info()
            if p.get("user_api") == "blas"
        ]
    except ImportError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
    }


def registry() -> dict[str, Reproduction]:
    """Every reproduction of ``benchmarks/reproductions/*.py``, by name."""
    found: dict[str, Reproduction] = {}
    for path in sorted((HERE / "reproductions").glob("*.py")):
        if path.name.startswith("_"):
            continue
        module = importlib.import_module(f"reproductions.{path.stem}")
        for item in module.REPRODUCTIONS:
            if item.name in found:
                raise ValueError(f"reproduce: two reproductions named {item.name!r}")
            found[item.name] = item
    return found


# the keys of a record that run_one writes itself
RECORD_KEYS = ("name", "source", "notes", "quick", "seconds", "cnnumpy", "differences")


def run_one(item: Reproduction, quick: bool) -> dict:
    """Run ``item``, print the notes' figure beside cnnumpy's; its JSON record."""
    print(f"== {item.name}: {item.source}" + (" (--quick)" if quick else ""))
    started = time.perf_counter()
    result = item.run(quick)
    seconds = time.perf_counter() - started
    print(f"   the notes: {item.notes}")
    print(f"   cnnumpy:   {result['cnnumpy']}")
    if result.get("differences"):
        print(f"   differs:   {result['differences']}")
    print(f"   ({seconds:.1f} s)", flush=True)
    own = {k: v for k, v in result.items() if k not in RECORD_KEYS}
    if "seconds" in result:  # a reproduction's own timings keep their name apart
        own["timings"] = result["seconds"]
    return {
        **own,
        "name": item.name,
        "source": item.source,
        "notes": item.notes,
        "quick": quick,
        "seconds": round(seconds, 2),
        "cnnumpy": result["cnnumpy"],
        "differences": result.get("differences", ""),
    }


def markdown(summary: dict) -> str:
    """``docs/reproductions.md``: one row per reproduction, the notes' figure beside
    cnnumpy's, the command, the time, and the machine."""
    m = summary["machine"]
    lines = [
        "# The notes' experiments, reproduced",
        "",
        "Written by `benchmarks/reproduce.py --markdown`. The command of each row "
        "reruns it from the repository, with `CNNUMPY_DATA` naming the folder of "
        "MNIST and CIFAR-10 (here `../shared/data`); `--quick` rows are shortened "
        "runs that show the trend.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, NumPy "
        f"{m['numpy']}, BLAS {', '.join(m['blas']) or 'unknown'}.",
        "",
        "| reproduction | the notes | cnnumpy | differences | command | time |",
        "|---|---|---|---|---|---:|",
    ]
    for r in summary["reproductions"]:
        quick = " --quick" if r["quick"] else ""
        command = f"`reproduce.py {r['name']}{quick}`"
        cells = [
            f"{r['name']} ({r['source']})",
            r["notes"],
            r["cnnumpy"],
            r.get("differences") or "",
            command,
            f"{r['seconds']:.0f} s",
        ]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    quick = sum(r["quick"] for r in summary["reproductions"])
    lines += [
        "",
        f"This table's run took {summary['total_seconds'] / 60:.1f} minutes in all "
        f"({summary['command']}; {quick} of {len(summary['reproductions'])} rows "
        "shortened by --quick).",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="reproductions to run (see --list)")
    parser.add_argument("--list", action="store_true", help="name, source, figure")
    parser.add_argument("--all", action="store_true", help="run every reproduction")
    parser.add_argument("--quick", action="store_true", help="shortened long runs")
    parser.add_argument(
        "--quick-over",
        type=float,
        metavar="MIN",
        help="with --all: --quick only for the runs longer than MIN minutes",
    )
    parser.add_argument("--markdown", metavar="FILE", help="also write the table")
    args = parser.parse_args(argv)
    known = registry()
    if args.list:
        for item in known.values():
            print(f"{item.name:28s} {item.source}  [{item.minutes:g} min]")
            print(f"{'':28s} the notes: {item.notes}")
        return 0
    unknown = [n for n in args.names if n not in known]
    if unknown or not (args.names or args.all):
        what = f"unknown {', '.join(unknown)}; " if unknown else ""
        parser.error(f"{what}give names from --list, or --all")
    chosen = list(known.values()) if args.all else [known[n] for n in args.names]
    started = time.perf_counter()
    records = []
    for item in chosen:
        quick = args.quick or (
            args.quick_over is not None and item.minutes > args.quick_over
        )
        records.append(run_one(item, quick))
    summary = {
        "command": "reproduce.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
        "total_seconds": round(time.perf_counter() - started, 1),
        "reproductions": records,
    }
    line = json.dumps(summary, default=str, ensure_ascii=False)
    if args.markdown:  # the JSON is printed last, whatever happens here
        try:
            Path(args.markdown).write_text(markdown(summary), encoding="utf-8")
            print(f"wrote {args.markdown}")
        finally:
            print(line)
    else:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
