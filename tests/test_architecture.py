"""The package's shape: dependencies point one way, no cycles, no private imports.

DESIGN.md fixes the direction: book <- engine <- operations <- layers <- model <-
{training, saving, distributed, zoo, visualize} <- cli. Each module of ``cnnumpy/`` gets
a rank (``RANKS``); a module may import modules of its own rank or below, never above.
Imports are read from the source with ``ast``, function-level ones included, so a cycle
hidden inside a function still counts.

The ``KNOWN_*`` sets list the violations the code had when this test was written
(issue 14 removes them). They can only shrink: an entry that no longer occurs fails the
test too, so that it is taken off the list the moment it is fixed.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cnnumpy"

# Lowest first. A name matches itself and everything below it (``cnnumpy.data``
# covers ``cnnumpy.data.cifar``); the longest matching name wins.
RANKS = {
    # leaves that anything may use
    "cnnumpy.rng": 0,
    "cnnumpy.fileio": 0,
    "cnnumpy.folderlock": 0,
    "cnnumpy.validation": 0,
    "cnnumpy.progress": 0,
    "cnnumpy.initializers": 0,
    # the book, then the engine
    "cnnumpy.textbook": 1,
    "cnnumpy.functional": 2,
    "cnnumpy.engine": 2,
    "cnnumpy.sync": 2,  # how a step split over processes adds up (engine kernels)
    # what layers and training steps are made of
    "cnnumpy.layers": 3,
    "cnnumpy.losses": 3,
    "cnnumpy.metrics": 3,
    "cnnumpy.optimizer_base": 3,
    "cnnumpy.optimizers": 3,
    "cnnumpy.schedules": 3,
    # the model
    "cnnumpy.model": 4,
    "cnnumpy.summary": 4,
    "cnnumpy.inference": 4,
    "cnnumpy.callbacks": 4,
    # what is built on the model
    "cnnumpy.training": 5,
    "cnnumpy.backup": 5,
    "cnnumpy.io": 5,
    "cnnumpy.safefile": 5,
    "cnnumpy.interop": 5,
    "cnnumpy.saving": 5,
    "cnnumpy.replicas": 5,
    "cnnumpy.distributed": 5,
    "cnnumpy.zoo": 5,
    "cnnumpy.visualize": 5,
    "cnnumpy.report": 5,
    "cnnumpy.data": 5,
    # the command line, then the package's front door
    "cnnumpy.runs": 6,
    "cnnumpy.run_config": 6,
    "cnnumpy.image_files": 6,
    "cnnumpy.cli": 6,
    "cnnumpy.cli_tools": 6,
    "cnnumpy.cli_train": 6,
    "cnnumpy.__main__": 6,
    "cnnumpy": 7,
}

# (importer, imported) pairs that go upwards today.
KNOWN_UPWARD = {
    ("cnnumpy.cli", "cnnumpy"),
    ("cnnumpy.cli_train", "cnnumpy"),
    ("cnnumpy.io", "cnnumpy"),
    ("cnnumpy.model", "cnnumpy.io"),
    ("cnnumpy.model", "cnnumpy.replicas"),
    ("cnnumpy.model", "cnnumpy.training"),
    ("cnnumpy.replicas", "cnnumpy"),
}

# Strongly connected groups of modules today, each as a sorted tuple.
KNOWN_CYCLES = {
    (
        "cnnumpy.backup",
        "cnnumpy.io",
        "cnnumpy.model",
        "cnnumpy.replicas",
        "cnnumpy.training",
    ),
    ("cnnumpy.cli_tools", "cnnumpy.cli_train"),
}

# (importer, imported module, private name) today.
KNOWN_PRIVATE: set = set()  # none left


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is a module of the package."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def imports_of(name: str, path: Path, modules: dict) -> set[tuple[str, str | None]]:
    """(imported module, imported name or None) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _resolve(alias.name, modules)
                if target:
                    found.add((target, None))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                submodule = _resolve(f"{base}.{alias.name}", modules)
                if submodule == f"{base}.{alias.name}":
                    found.add((submodule, None))
                elif (target := _resolve(base, modules)) is not None:
                    found.add((target, alias.name))
    return found


def import_graph() -> dict[str, set[tuple[str, str | None]]]:
    modules = all_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def rank_of(module: str) -> int:
    parts = module.split(".")
    while parts:
        key = ".".join(parts)
        if key in RANKS:
            return RANKS[key]
        parts.pop()
    raise AssertionError(f"{module} has no rank: add it to RANKS")


def upward_imports(graph) -> set[tuple[str, str]]:
    return {
        (src, dst)
        for src, targets in graph.items()
        for dst, _ in targets
        if not dst.startswith(src + ".") and rank_of(dst) > rank_of(src)
    }


def cycles(graph) -> set[tuple[str, ...]]:
    """Strongly connected components of more than one module (Tarjan).

    A package's ``__init__`` importing its own submodules is how packages are built,
    so those edges are left out; everything else counts.
    """
    edges = {
        src: sorted(
            {dst for dst, _ in targets if dst != src and not dst.startswith(src + ".")}
        )
        for src, targets in graph.items()
    }
    index, low, stack, on_stack, found = {}, {}, [], set(), set()

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.add(tuple(sorted(group)))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def private_imports(graph) -> set[tuple[str, str, str]]:
    return {
        (src, dst, name)
        for src, targets in graph.items()
        for dst, name in targets
        if name and name.startswith("_") and not name.startswith("__") and dst != src
    }


def _compare(found: set, known: set, what: str) -> None:
    new, fixed = sorted(found - known), sorted(known - found)
    message = []
    if new:
        message.append(f"new {what}:\n  " + "\n  ".join(map(str, new)))
    if fixed:
        message.append(
            f"{what} no longer found (remove from the known list):\n  "
            + "\n  ".join(map(str, fixed))
        )
    assert not message, "\n".join(message)


def test_every_module_has_a_rank():
    for name in all_modules():
        rank_of(name)


def test_dependencies_point_one_way():
    _compare(upward_imports(import_graph()), KNOWN_UPWARD, "upward imports")


def test_no_import_cycles():
    _compare(cycles(import_graph()), KNOWN_CYCLES, "import cycles")


def test_no_private_names_imported_across_modules():
    _compare(private_imports(import_graph()), KNOWN_PRIVATE, "private imports")


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path):
    """The checks themselves can fail: a made-up graph with both faults."""
    graph = {
        "cnnumpy.layers.a": {("cnnumpy.model", None)},
        "cnnumpy.model": {("cnnumpy.layers.a", "_hidden")},
    }
    assert upward_imports(graph) == {("cnnumpy.layers.a", "cnnumpy.model")}
    assert cycles(graph) == {("cnnumpy.layers.a", "cnnumpy.model")}
    assert private_imports(graph) == {("cnnumpy.model", "cnnumpy.layers.a", "_hidden")}
