"""The package's shape: dependencies point one way, no cycles, no private imports.

DESIGN.md fixes the direction: book <- engine <- operations <- layers <- model <-
{training, saving, distributed, zoo, visualize} <- {cli, serve}. Each module of
``cnnumpy/`` gets a rank (``RANKS``); a module may import modules of its own rank or
below, never above.
Imports are read from the source with ``ast``, function-level ones included, so a cycle
hidden inside a function still counts.

Between the layers and the model sit the modules the model hands its work to (the
executor, the training loop, the writer of model files, the replicas' parent side):
they take the model as an argument and never import it, so ``model.fit`` and
``model.save`` import downwards. Only what builds a new model (``load_model``, a
replica process, the zoo) imports ``cnnumpy.model``; and no module touches another
object's private attributes.
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
    "cnnumpy.version": 0,
    "cnnumpy.divergence": 0,
    # the data sets (they need only the leaves)
    "cnnumpy.data": 1,
    # the book, then the engine's kernels and dispatch tables
    "cnnumpy.textbook": 1,
    "cnnumpy.engine.kernels": 2,
    "cnnumpy.engine": 2,
    "cnnumpy.sync": 2,  # how a step split over processes adds up (engine kernels)
    # the interface BatchNorm's kernel talks to (replicas and MPI implement it)
    "cnnumpy.distributed.communicator": 2,
    # what layers and training steps are made of
    "cnnumpy.graph": 3,  # symbolic tensors and graph passes (layer calls use it)
    "cnnumpy.graph_config": 3,
    "cnnumpy.layers": 3,
    "cnnumpy.losses": 3,
    "cnnumpy.metrics": 3,
    "cnnumpy.optimizer_base": 3,
    "cnnumpy.optimizer_groups": 3,
    "cnnumpy.optimizers": 3,
    "cnnumpy.schedules": 3,
    "cnnumpy.schedule_base": 3,
    "cnnumpy.step_schedules": 3,
    "cnnumpy.lab": 3,  # the technique lab: the book's steps and the engine, timed
    # what the model hands its work to: they use the model's public API and never
    # import the model (the executor runs its layers; the loop, the files and the
    # replicas take it as an argument)
    "cnnumpy.engine.executor": 4,
    "cnnumpy.engine.fusion": 4,
    "cnnumpy.callbacks": 4,
    "cnnumpy.training": 4,
    "cnnumpy.summary": 4,
    "cnnumpy.receptive_field": 4,  # reads a model's layers, like the summary
    "cnnumpy.tta": 4,  # test-time augmentation: model.predict on flipped inputs
    "cnnumpy.saving": 4,
    "cnnumpy.distributed": 4,
    # the model
    "cnnumpy.model": 5,
    "cnnumpy.sequential": 5,
    "cnnumpy.trainer": 5,
    # what builds models: from a file, in a replica process, by name
    "cnnumpy.saving.loading": 6,
    "cnnumpy.distributed.worker": 6,
    "cnnumpy.zoo": 6,
    "cnnumpy.zoo_images": 6,
    "cnnumpy.zoo_graphs": 6,
    "cnnumpy.zoo_targets": 6,
    "cnnumpy.zoo_text": 6,
    "cnnumpy.generation": 6,
    "cnnumpy.visualize": 6,
    "cnnumpy.report": 6,
    # the command line, then the package's front door
    "cnnumpy.cli": 7,
    "cnnumpy.serve": 7,  # the playground: reuses cnnumpy.cli's runs and preprocessing
    "cnnumpy.__main__": 7,
    "cnnumpy": 8,
}


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


def _none(found: set, what: str) -> None:
    assert not found, f"{what}:\n  " + "\n  ".join(map(str, sorted(found)))


def test_every_module_has_a_rank_and_every_rank_a_module():
    modules = all_modules()
    for name in modules:
        rank_of(name)
    assert not [name for name in RANKS if name not in modules]


def test_dependencies_point_one_way():
    _none(upward_imports(import_graph()), "upward imports")


def test_no_import_cycles():
    _none(cycles(import_graph()), "import cycles")


def test_no_private_names_imported_across_modules():
    _none(private_imports(import_graph()), "private imports")


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path):
    """The checks themselves can fail: a made-up graph with both faults."""
    graph = {
        "cnnumpy.layers.a": {("cnnumpy.model", None)},
        "cnnumpy.model": {("cnnumpy.layers.a", "_hidden")},
    }
    assert upward_imports(graph) == {("cnnumpy.layers.a", "cnnumpy.model")}
    assert cycles(graph) == {("cnnumpy.layers.a", "cnnumpy.model")}
    assert private_imports(graph) == {("cnnumpy.model", "cnnumpy.layers.a", "_hidden")}


# Private attributes of objects that are not cnnumpy's: http.client's connection
# exposes no public hook for the socket it makes (data/deadline.py watches it);
# os._exit, documented as the way to end a process with no clean-up, ends an MPI
# rank after MPI_Abort (distributed/mpi.py).
FOREIGN_PRIVATE = {
    ("cnnumpy.data.deadline", "_create_connection"),
    ("cnnumpy.distributed.mpi", "_exit"),
}


def private_uses(path: Path) -> list[tuple[int, str]]:
    """``obj._name`` for any ``obj`` but ``self`` and ``cls``: (line, name)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            owner = node.value
            own = isinstance(owner, ast.Name) and owner.id in ("self", "cls")
            if not own and not node.attr.startswith("__"):
                found.append((node.lineno, node.attr))
    return found


def test_no_module_reaches_into_another_objects_private_attributes():
    """The training loop, the files, the replicas, the CLI...: each uses the model,
    the layers and the optimisers through their public API only."""
    uses = {
        name: [
            (line, attr)
            for line, attr in private_uses(path)
            if (name, attr) not in FOREIGN_PRIVATE
        ]
        for name, path in all_modules().items()
    }
    assert not {name: found for name, found in uses.items() if found}


def test_the_private_use_checker_sees_one(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(
        "def f(model, cb):\n    return model._step, cb.model._fit_rng, self._ok\n"
    )
    assert private_uses(path) == [(2, "_step"), (2, "_fit_rng")]
