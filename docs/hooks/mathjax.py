"""MkDocs hook: MathJax served from the site itself, so the math renders offline.

MathJax 2.7 comes inside the ``jupyter-server-mathjax`` wheel (the docs extra installs
it without its Jupyter-server dependencies); its files are copied to
``site/assets/mathjax/``, the path ``mkdocs.yml``'s ``extra_javascript`` names.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from mkdocs.exceptions import Abort


def _mathjax_folder() -> Path:
    """The wheel's ``static/`` folder, found without importing the package (its
    ``__init__`` imports jupyter_server, which is not installed)."""
    spec = importlib.util.find_spec("jupyter_server_mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise Abort(
            "MathJax is missing: `pip install --no-deps jupyter-server-mathjax` "
            "(make venv does it)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "static"


def on_post_build(config) -> None:
    """Copy MathJax once; the French build writes into ``site/fr/`` and uses the
    English build's assets through relative links, so one copy serves both."""
    target = Path(config["site_dir"]) / "assets" / "mathjax"
    if (target / "MathJax.js").exists():
        return
    shutil.copytree(_mathjax_folder(), target, dirs_exist_ok=True)
