"""MkDocs hook: the CLI reference is the parsers' own ``--help``, read at build time.

``docs/reference/cli.md`` holds the page's introduction and the marker
``<!-- cli-help -->``; this hook replaces the marker with ``cnnumpy --help`` and
``cnnumpy COMMAND --help`` for every subcommand, taken from
``cnnumpy.cli.parser.build_parser()``. A new option appears on the page with no one
editing it, and a renamed one cannot linger there.
"""

from __future__ import annotations

import argparse
import os
from contextlib import contextmanager

from mkdocs.exceptions import Abort

MARKER = "<!-- cli-help -->"
PAGE = "reference/cli.md"
COLUMNS = "88"  # argparse wraps to the terminal: fix the width, so builds agree


@contextmanager
def _columns(width: str):
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = width
    try:
        yield
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommands' parsers, in the order ``cnnumpy --help`` lists them."""
    for action in parser._actions:  # argparse keeps no public list of subparsers
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _section(title: str, help_text: str) -> str:
    return f"## `{title}`\n\n```text\n{help_text.rstrip()}\n```\n"


def cli_help() -> str:
    """Markdown: one section per command, each with its help text."""
    from cnnumpy.cli.parser import build_parser

    with _columns(COLUMNS):
        parser = build_parser()
        sections = [_section("cnnumpy", parser.format_help())]
        for name, sub in _subcommands(parser).items():
            sections.append(_section(f"cnnumpy {name}", sub.format_help()))
    return "\n".join(sections)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise Abort(f"docs/{PAGE} lost its marker {MARKER}: the help goes there")
    return markdown.replace(MARKER, cli_help())
