"""The chapters "From the notes to the code": every notebook runs, in both languages.

Each chapter under ``notebooks/en`` and ``notebooks/fr`` is executed the way the site
build executes it (``docs/hooks/chapters.py``: jupytext, then nbclient in a kernel of
this Python, from the repository root), must finish within a minute, and fails with
the cell and its traceback. The executed notebook is kept in ``build/notebooks/``,
so the ``make docs`` that CI runs next reuses it instead of running it again.
"""

import re
import time
from pathlib import Path

import chapters
import pytest

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 60  # seconds per notebook on a 2-core machine
CITATION = re.compile(r"\b(seed|document)s?\s+00\d\b", re.IGNORECASE)


def _notebooks(language: str) -> list[Path]:
    return sorted((ROOT / "notebooks" / language).glob("[0-9]*.py"))


ALL = [p for language in chapters.LANGUAGES for p in _notebooks(language)]
IDS = [f"{p.parent.name}/{p.stem}" for p in ALL]


@pytest.mark.slow
@pytest.mark.parametrize("path", ALL, ids=IDS)
def test_notebook_runs(docs_extra, path):
    chapter = chapters.Chapter(path.parent.name, path)
    try:
        notebook, seconds = chapters.execute(chapter)
    except chapters.ChapterError as exc:
        pytest.fail(str(exc), pytrace=False)
    assert seconds < LIMIT, f"{path.relative_to(ROOT)} took {seconds:.0f} s (> {LIMIT})"
    chapters.store(chapter, notebook)


@pytest.mark.slow
def test_a_cell_over_the_time_limit_fails_its_chapter(docs_extra, tmp_path):
    """The limit is nbclient's own: with a blocking kernel manager handed to it, it
    waited for the cell's output with no limit (and for ever on a dead kernel)."""
    script = tmp_path / "01_slow.py"
    script.write_text("# %%\nx = 1\n\n# %%\nimport time\ntime.sleep(20)\n")
    start = time.perf_counter()
    with pytest.raises(chapters.ChapterError, match=r"(?s)cell 1 .*timed out"):
        chapters.execute(chapters.Chapter("en", script), timeout=2)
    assert time.perf_counter() - start < 15


def test_every_chapter_has_its_twin():
    english = {p.name for p in _notebooks("en")}
    french = {p.name for p in _notebooks("fr")}
    assert english, "no chapter in notebooks/en"
    assert english - french == set(), "chapters without a French twin in notebooks/fr"
    assert french - english == set(), "chapters without an English twin in notebooks/en"


def test_the_menu_lists_every_chapter(docs_extra):
    """mkdocs.yml's "From the notes to the code" names each chapter, and only those."""
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    section = next(
        entry["From the notes to the code"]
        for entry in config["nav"]
        if isinstance(entry, dict) and "From the notes to the code" in entry
    )
    listed = [page for page in section if page.startswith("chapters/")]
    expected = [f"chapters/{p.stem}.md" for p in _notebooks("en")]
    assert listed == expected


@pytest.mark.parametrize("path", ALL, ids=IDS)
def test_notebook_starts_with_title_and_citation(docs_extra, path):
    """First cell: a markdown H1 title, then the line naming the seed(s) it follows."""
    notebook = chapters.read(chapters.Chapter(path.parent.name, path))
    first = notebook.cells[0]
    assert first.cell_type == "markdown", "the first cell must be markdown"
    lines = [line for line in first.source.splitlines() if line.strip()]
    assert lines and re.match(r"^# \S", lines[0]), f"no H1 title first: {lines[:1]}"
    paragraph = first.source.split(lines[0], 1)[1].strip().split("\n\n")[0]
    assert CITATION.search(paragraph), (
        f"the paragraph under the title cites no seed ('seed 003', 'document 003'): "
        f"{paragraph[:200]!r}"
    )
