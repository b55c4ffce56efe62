"""The chapters "From the notes to the code": notebooks executed, then written as pages.

A chapter is a jupytext "percent" script, ``notebooks/en/NN_name.py``, with its French
twin ``notebooks/fr/NN_name.py``. Turning one into a page takes three steps:

1. :func:`execute`: jupytext reads the script as a notebook, nbclient runs it in a
   kernel of this Python, from the repository root, with ``notebooks/`` on
   ``sys.path`` (for ``companion``), 120 s at most per cell. A failing cell raises
   :class:`ChapterError` naming the notebook, the cell and the error.
2. The executed notebook is cached under ``build/notebooks/``, keyed by a hash of the
   script, ``companion.py`` and cnnumpy's sources: ``make docs`` runs a chapter again
   only when something it shows may have changed.
3. :func:`to_markdown`: markdown cells as they are, code cells as highlighted
   Python, printed output as text blocks, figures as PNG files beside the page.

The mkdocs hook (``chapter_pages.py``) writes the English chapter to
``docs/chapters/NN_name.md`` and the French one to ``NN_name.fr.md``: the i18n
plugin's suffix structure pairs them, so the language switch goes from one to the
other. ``tests/docs/test_notebooks.py`` runs every chapter through :func:`execute`.

Cell tags (jupytext: ``# %% tags=["remove-input"]``): ``remove-cell`` leaves the cell
out of the page, ``remove-input`` keeps only its output (the path set-up cell that
lets a chapter also run as a plain script is one to hide).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
LANGUAGES = ("en", "fr")
CACHE = ROOT / "build" / "notebooks"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
CELL_TIMEOUT = 120  # seconds; a chapter should take well under a minute in all

# What an executed chapter depends on besides its own text (the book's code it shows,
# the numbers it prints): a change in any of them runs it again.
_DEPENDENCIES = ("cnnumpy/**/*.py", "notebooks/companion.py")


class ChapterError(RuntimeError):
    """A chapter failed to run: which notebook, which cell, which error."""


@dataclass(frozen=True)
class Chapter:
    """One notebook: ``notebooks/<language>/<stem>.py``."""

    language: str
    path: Path

    @property
    def stem(self) -> str:
        return self.path.stem

    @property
    def page(self) -> str:
        """The page's path under docs/: the i18n suffix marks the French one."""
        suffix = "" if self.language == LANGUAGES[0] else f".{self.language}"
        return f"chapters/{self.stem}{suffix}.md"


def chapters() -> list[Chapter]:
    """Every chapter notebook, English first, each language in file-name order."""
    found = []
    for language in LANGUAGES:
        folder = NOTEBOOKS / language
        found += [Chapter(language, p) for p in sorted(folder.glob("[0-9]*.py"))]
    return found


def read(chapter: Chapter):
    """The chapter as an nbformat notebook (jupytext percent format)."""
    import jupytext

    return jupytext.read(chapter.path, fmt="py:percent")


def kernel_env() -> dict[str, str]:
    """The kernel's environment: ``notebooks/`` importable, the repository first (so
    the chapters show this checkout's cnnumpy), and matplotlib left to the kernel's
    inline backend (a Makefile or CI ``MPLBACKEND=Agg`` would hide every figure)."""
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)
    paths = [str(NOTEBOOKS), str(ROOT), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # a debugger note on stderr, else
    return env


def execute(chapter: Chapter, timeout: int = CELL_TIMEOUT):
    """Run the chapter top to bottom; return the executed notebook and its seconds.

    Raises:
        ChapterError: a cell raised, took longer than ``timeout`` seconds, or killed
            the kernel.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import (
        CellExecutionError,
        CellTimeoutError,
        DeadKernelError,
    )
    from traitlets.config import Config

    notebook = read(chapter)
    running = {}  # the cell being run, for the error message
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cnnumpy-kernel-") as sockets:
        # local sockets, not TCP: no port to share, and no warning from ipykernel
        # about unencrypted TCP on every chapter. nbclient makes the kernel manager
        # itself, an asynchronous one, and shuts the kernel down: a blocking
        # KernelManager handed to it waits for a cell's output with no limit, so
        # ``timeout`` never fires and a dead kernel hangs the build.
        ipc = {"transport": "ipc", "ip": str(Path(sockets) / "kernel")}
        client = NotebookClient(
            notebook,
            kernel_name="python3",
            timeout=timeout,
            resources={"metadata": {"path": str(ROOT)}},
            config=Config({"KernelManager": ipc}),
        )
        client.on_cell_start = lambda cell, cell_index: running.update(index=cell_index)
        try:
            client.execute(env=kernel_env())
        # a dead kernel: a cell that crashed it (a segfault, the out-of-memory killer)
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
            index = running.get("index", 0)
            message = _failure(chapter, index, notebook.cells[index], exc)
            raise ChapterError(message) from None
    return notebook, time.perf_counter() - start


def _failure(chapter: Chapter, index: int, cell, exc: Exception) -> str:
    """``notebooks/en/03_convolution.py, cell 7 (line 52: 'y = ...') failed:`` and
    the error nbclient reports (the cell's traceback)."""
    where = _shown(chapter.path)
    lines = cell.source.strip().splitlines()
    first = lines[0] if lines else ""
    line = _line_of(chapter, first)
    error = _ANSI.sub("", str(exc))  # IPython colours its tracebacks
    return f"{where}, cell {index} (line {line}: {first!r}) failed:\n{error}"


def _shown(path: Path) -> str:
    """A path as the reader types it: from the repository root when inside it."""
    return str(path.relative_to(ROOT)) if ROOT in path.parents else str(path)


def _line_of(chapter: Chapter, first: str) -> int | str:
    """The line of the script where a cell's code starts, for the error message."""
    text = chapter.path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(text, start=1):
        if first and line == first:
            return number
    return "?"


def fingerprint(chapter: Chapter) -> str:
    """A hash of what the chapter's output depends on: its text and the code it runs."""
    digest = hashlib.sha256(chapter.path.read_bytes())
    for pattern in _DEPENDENCIES:
        for path in sorted(ROOT.glob(pattern)):
            digest.update(path.relative_to(ROOT).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _cache_path(chapter: Chapter) -> Path:
    return CACHE / f"{chapter.stem}.{chapter.language}.ipynb"


def store(chapter: Chapter, notebook, key: str | None = None) -> None:
    """Keep an executed notebook for later builds (the tests store theirs too)."""
    import nbformat

    notebook.metadata["cnnumpy_fingerprint"] = key or fingerprint(chapter)
    CACHE.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, _cache_path(chapter))


def executed(chapter: Chapter, log=print):
    """The executed notebook, from the cache when the chapter has not changed."""
    import nbformat

    key = fingerprint(chapter)
    cached = _cache_path(chapter)
    if cached.exists():
        notebook = nbformat.read(cached, as_version=4)
        if notebook.metadata.get("cnnumpy_fingerprint") == key:
            return notebook
    notebook, seconds = execute(chapter)
    log(f"executed {_shown(chapter.path)} in {seconds:.1f} s")
    store(chapter, notebook, key)
    return notebook


# ----- executed notebook -> Markdown page -------------------------------------------

_LINK = re.compile(r"(\]\()([^)\s]+)(\))")


def to_markdown(chapter: Chapter, notebook) -> tuple[str, dict[str, bytes]]:
    """The page's Markdown and its figures, ``{file name: PNG bytes}``.

    Figure files are named after the page and the language, so the English and the
    French page never share one: ``03_convolution.fr-7-0.png``.
    """
    parts, figures = [], {}
    for index, cell in enumerate(notebook.cells):
        tags = set(cell.metadata.get("tags", []))
        if "remove-cell" in tags or not cell.source.strip() and not cell.get("outputs"):
            continue
        if cell.cell_type == "markdown":
            parts.append(_relink(chapter, cell.source))
            continue
        if cell.cell_type != "code":
            continue
        if "remove-input" not in tags and cell.source.strip():
            parts.append(_fence(cell.source, "python"))
        for number, output in enumerate(cell.get("outputs", [])):
            name = f"{Path(chapter.page).stem}-{index}-{number}.png"
            parts += _render_output(output, name, figures)
    return "\n\n".join(p for p in parts if p) + "\n", figures


def _render_output(output, figure_name: str, figures: dict) -> list[str]:
    """One output as Markdown: text, highlighted code (``show``), a figure, or HTML."""
    kind = output.get("output_type")
    if kind == "stream":
        return [_fence(output.get("text", ""), "text")]
    if kind not in ("display_data", "execute_result"):
        return []  # errors never get here: execute() raised on them
    data = output.get("data", {})
    if "image/png" in data:
        figures[figure_name] = base64.b64decode(data["image/png"])
        return [f"![]({'figures/' + figure_name})"]
    if data.get("text/latex", "").startswith("\\begin{Verbatim}"):
        return [_fence(data.get("text/plain", ""), "python")]  # IPython.display.Code
    if "text/markdown" in data:
        return [data["text/markdown"]]
    if "text/html" in data:
        html = data["text/html"]
        return [f'<div class="notebook-output" markdown="0">{html}</div>']
    if "text/plain" in data:
        return [_fence(data["text/plain"], "text")]
    return []


def _fence(text: str, language: str) -> str:
    """A fenced block longer than any run of backticks inside ``text``."""
    text = text.rstrip("\n")
    if not text.strip():
        return ""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def _relink(chapter: Chapter, markdown: str) -> str:
    """Links written from the notebook's folder, rewritten from the page's.

    A link that names no file from the notebook's folder is kept as it is: it was
    written from the page (``../notes_errata.md``), or it is broken and the strict
    build reports it.

    ``../../cnnumpy/textbook/conv.py`` (from notebooks/en/) becomes
    ``../../cnnumpy/textbook/conv.py`` from docs/chapters/ (the source-page hook takes
    it from there), and ``04_im2col.py`` becomes the chapter's page ``04_im2col.md``.
    """
    here = chapter.path.parent
    pages = ROOT / "docs" / "chapters"

    def rewrite(match: re.Match) -> str:
        target = match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target):
            return match.group(0)  # a URL, an anchor on the page, an absolute path
        path, _, anchor = target.partition("#")
        resolved = (here / path).resolve()
        if not resolved.exists():
            return match.group(0)  # written from the page (or broken: MkDocs says so)
        if resolved.parent in (NOTEBOOKS / lang for lang in LANGUAGES):
            if resolved.suffix == ".py" and resolved.stem[:1].isdigit():
                resolved = pages / f"{resolved.stem}.md"
        new = Path(os.path.relpath(resolved, pages)).as_posix()
        if target.endswith("/"):
            new += "/"
        return match.group(1) + new + ("#" + anchor if anchor else "") + match.group(3)

    return _LINK.sub(rewrite, markdown)


def write_pages(docs_dir: Path, log=print) -> list[str]:
    """Execute (or reuse) every chapter; write its page and figures under
    ``docs/chapters/``, and remove what an earlier build left there and this one did
    not write (a renamed chapter, an old figure). Returns the pages' paths.

    Files are written only when their bytes change, so ``mkdocs serve``, which watches
    docs/, does not rebuild forever.
    """
    folder = docs_dir / "chapters"
    written = set()
    for chapter in chapters():
        markdown, figures = to_markdown(chapter, executed(chapter, log))
        page = docs_dir / chapter.page
        written.add(_write_if_changed(page, markdown.encode("utf-8")))
        for name, png in figures.items():
            written.add(_write_if_changed(folder / "figures" / name, png))
    for path in folder.rglob("*") if folder.exists() else []:
        if path.is_file() and path not in written:
            path.unlink()
    return [chapter.page for chapter in chapters()]


def _write_if_changed(path: Path, content: bytes) -> Path:
    if not (path.exists() and path.read_bytes() == content):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return path


def main(argv: list[str]) -> int:
    """``python docs/hooks/chapters.py [NAME ...]``: run chapters, print their times."""
    wanted = set(argv)
    for chapter in chapters():
        if wanted and chapter.stem not in wanted:
            continue
        try:
            _, seconds = execute(chapter)
        except ChapterError as exc:
            print(exc, file=sys.stderr)
            return 1
        print(
            json.dumps({"notebook": _shown(chapter.path), "seconds": round(seconds, 1)})
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
