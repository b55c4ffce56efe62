"""MkDocs hook: links from a page to a repository file lead to a page showing it.

The pages cite the code they talk about with relative links out of docs/, such as
``[mpi.py](../cnnumpy/distributed/mpi.py)``, which read well on GitHub but which
MkDocs cannot serve (and ``--strict`` rejects). Before the build, every page is
scanned; each link that leaves docs/ and names a file or folder of the repository
gets a generated page, ``docs/source/cnnumpy/distributed/mpi.py/index.md``
(git-ignored),
with the file highlighted (a folder: the list of its files); while the page is built,
the link is pointed there.

A link to a path that does not exist is left alone, so ``mkdocs build --strict``
still fails on it, as on any broken link.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDER = "source"  # under docs/
_LINK = re.compile(r"(\]\()([^)\s]+)(\))")
_LANGUAGES = {
    ".py": "python",
    ".toml": "toml",
    ".yml": "yaml",
    ".yaml": "yaml",
    ".json": "json",
    ".sh": "bash",
    ".js": "javascript",
    ".css": "css",
    ".html": "html",
    ".md": "markdown",
    ".txt": "text",
    ".cfg": "ini",
}
_SKIP = {"__pycache__", ".git", ".venv", "site", "build"}


def _target(page_file: Path, link: str, docs_dir: Path) -> Path | None:
    """The repository file or folder a relative link names, if it leaves docs/."""
    if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", link):
        return None
    path = link.partition("#")[0]
    if not path:
        return None
    resolved = (page_file.parent / path).resolve()
    inside_docs = resolved == docs_dir or docs_dir in resolved.parents
    inside_repo = ROOT in resolved.parents
    if inside_docs or not inside_repo or not resolved.exists():
        return None
    if any(part in _SKIP for part in resolved.relative_to(ROOT).parts):
        return None
    return resolved


def _page_for(target: Path) -> str:
    """``source/cnnumpy/sync.py/index.md`` (served as ``source/cnnumpy/sync.py/``);
    a folder: ``source/tests/distributed/index.md``. Never ``sync.py.md``: the i18n
    plugin would read ``.py`` as a language suffix and drop the page."""
    relative = target.relative_to(ROOT).as_posix()
    return f"{FOLDER}/{relative}/index.md"


def _file_page(target: Path) -> str:
    relative = target.relative_to(ROOT).as_posix()
    text = target.read_text(encoding="utf-8", errors="replace").rstrip("\n")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    language = _LANGUAGES.get(target.suffix, "text")
    return (
        f"# `{relative}`\n\n"
        f"The repository's file `{relative}`, as it was when this site was built.\n\n"
        f'{fence}{language} linenums="1"\n{text}\n{fence}\n'
    )


def _folder_page(target: Path) -> str:
    relative = target.relative_to(ROOT).as_posix()
    names = sorted(
        p.name + ("/" if p.is_dir() else "")
        for p in target.iterdir()
        if p.name not in _SKIP and not p.name.startswith(".")
    )
    listing = "\n".join(f"- `{name}`" for name in names)
    intro = f"The files of the repository's folder `{relative}/`:"
    return f"# `{relative}/`\n\n{intro}\n\n{listing}\n"


def _scan(docs_dir: Path) -> dict[Path, str]:
    """Every repository file or folder a page links to, and its generated page."""
    targets = {}
    for page_file in docs_dir.rglob("*.md"):
        if FOLDER in page_file.relative_to(docs_dir).parts[:1]:
            continue
        text = page_file.read_text(encoding="utf-8")
        for match in _LINK.finditer(text):
            target = _target(page_file, match.group(2), docs_dir)
            if target is not None:
                targets[target] = _page_for(target)
    return targets


def on_pre_build(config) -> None:
    """Write a page for every linked repository file; remove the stale ones."""
    docs_dir = Path(config["docs_dir"]).resolve()
    written = set()
    for target, page in _scan(docs_dir).items():
        content = _folder_page(target) if target.is_dir() else _file_page(target)
        path = docs_dir / page
        if not (path.exists() and path.read_text(encoding="utf-8") == content):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
        written.add(path)
    folder = docs_dir / FOLDER
    for path in sorted(folder.rglob("*"), reverse=True) if folder.exists() else []:
        if path.is_file() and path not in written:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Point each link to a repository file at that file's generated page."""
    docs_dir = Path(config["docs_dir"]).resolve()
    page_file = docs_dir / page.file.src_uri

    def rewrite(match: re.Match) -> str:
        target = _target(page_file, match.group(2), docs_dir)
        if target is None:
            return match.group(0)
        generated = docs_dir / _page_for(target)
        link = Path(os.path.relpath(generated, page_file.parent)).as_posix()
        return match.group(1) + link + match.group(3)

    return _LINK.sub(rewrite, markdown)
