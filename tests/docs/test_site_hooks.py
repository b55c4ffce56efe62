"""The site's build hooks: links to repository files, and the CLI reference."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


@pytest.fixture
def hooks(docs_extra):
    import cli_reference
    import source_pages

    return source_pages, cli_reference


def test_a_link_to_a_repository_file_gets_a_page(hooks):
    source_pages, _ = hooks
    target = source_pages._target(DOCS / "distributed.md", "../cnnumpy/sync.py", DOCS)
    assert target == ROOT / "cnnumpy" / "sync.py"
    assert source_pages._page_for(target) == "source/cnnumpy/sync.py/index.md"
    assert "def " in source_pages._file_page(target)


def test_a_link_to_a_missing_file_is_left_broken(hooks):
    """So that ``mkdocs build --strict`` still reports it."""
    source_pages, _ = hooks
    page = DOCS / "distributed.md"
    assert source_pages._target(page, "../cnnumpy/no_such_file.py", DOCS) is None
    assert source_pages._target(page, "https://example.org/x.py", DOCS) is None
    assert source_pages._target(page, "images/x.png", DOCS) is None  # inside docs/


def test_the_cli_reference_has_every_command(hooks):
    _, cli_reference = hooks
    from cnnumpy.cli.parser import build_parser

    text = cli_reference.cli_help()
    commands = cli_reference._subcommands(build_parser())
    assert {"train", "evaluate", "predict", "serve"} <= set(commands)
    for name in commands:
        assert f"## `cnnumpy {name}`" in text
    assert "--epochs" in text
