"""MkDocs hook: the chapter notebooks become pages before MkDocs looks for files.

``notebooks/en/NN_name.py`` -> ``docs/chapters/NN_name.md`` and
``notebooks/fr/NN_name.py`` -> ``docs/chapters/NN_name.fr.md`` (git-ignored), with
their figures in ``docs/chapters/figures/``. The work is in ``chapters.py``; this
file only ties it to MkDocs' build and turns a failing cell into a failed build.

The i18n plugin runs a whole build per language, so this runs twice per ``make docs``:
the second time every chapter comes from the cache and no file changes.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from mkdocs.exceptions import Abort

sys.path.insert(0, str(Path(__file__).parent))
import chapters  # noqa: E402  (beside this hook, not an installed module)

log = logging.getLogger("mkdocs.hooks.chapters")


def on_pre_build(config) -> None:
    """Write the chapter pages; a chapter that fails stops the build with its cell."""
    try:
        chapters.write_pages(Path(config["docs_dir"]), log.info)
    except chapters.ChapterError as exc:
        raise Abort(f"a chapter notebook failed:\n{exc}") from None
