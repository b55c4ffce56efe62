"""What every chapter of the course companion shares: showing the book's code,
drawing small arrays with their numbers, timing a function.

A chapter never pastes the book's code: it calls ``show(conv2d_forward)``, so the page
always shows the code that really runs, with the file and lines it comes from. The
chapters run two ways, and each helper works in both:

- as notebooks (jupytext, then nbclient at build time): ``show`` displays highlighted
  code, figures appear under the cell that draws them;
- as plain scripts (``python notebooks/en/03_convolution.py`` from the repository
  root): ``show`` prints the code, and figures go to matplotlib's Agg backend, which
  draws without a display (set ``MPLBACKEND`` to choose another one).
"""

from __future__ import annotations

import inspect
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def in_notebook() -> bool:
    """True under a Jupyter kernel, where rich output (highlighted code) is shown."""
    if "ipykernel" not in sys.modules:
        return False
    from IPython import get_ipython

    return get_ipython() is not None


if not in_notebook():  # a plain script has no window to show figures in
    os.environ.setdefault("MPLBACKEND", "Agg")


def _where(obj) -> str:
    """``cnnumpy/textbook/conv.py``: the file of ``obj``, relative to the repository,
    so the reader can open it beside the page."""
    path = Path(inspect.getsourcefile(obj)).resolve()
    for parent in path.parents:
        if (parent / "cnnumpy").is_dir() and (parent / "pyproject.toml").exists():
            return path.relative_to(parent).as_posix()
    return path.name


def source_of(obj, lines: tuple[int, int] | None = None) -> str:
    """The source of ``obj`` under a comment naming its file and line numbers.

    Args:
        obj: a function, class, method or module.
        lines: ``(start, end)``, 1-based and inclusive, counted from the first line of
            ``obj``'s source; None keeps it whole.
    """
    body, first = inspect.getsourcelines(obj)
    first = max(first, 1)  # a module starts at line 0 for inspect
    if lines is not None:
        start, end = lines
        body = body[start - 1 : end]
        first += start - 1
    last = first + len(body) - 1
    header = f"# {_where(obj)}, lines {first}-{last}\n"
    return header + "".join(body)


def show(obj, lines: tuple[int, int] | None = None) -> None:
    """Show the book's code for ``obj``: highlighted in a notebook, printed otherwise.

    ``lines=(start, end)`` shows only those lines of it (see :func:`source_of`).
    """
    text = source_of(obj, lines)
    if in_notebook():
        from IPython.display import Code, display

        display(Code(text, language="python"))
    else:
        print(text)


def draw_array(ax, a: np.ndarray, title: str = "", boxes=(), fmt: str = "{:g}"):
    """Draw a small 2-D array as a grid of cells with their numbers written in.

    The pictures of the chapters are drawn from the arrays the code computes, so a
    figure can never disagree with the printed numbers.

    Args:
        ax: a matplotlib Axes.
        a: a 2-D array, a few cells a side.
        title: written above the grid.
        boxes: ``(row, col, height, width, colour)`` rectangles to outline, e.g. the
            window a kernel covers.
        fmt: how each number is written.
    """
    from matplotlib.patches import Rectangle

    a = np.asarray(a)
    ax.imshow(a, cmap="Blues", alpha=0.6)
    for (i, j), value in np.ndenumerate(a):
        ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=9)
    for row, col, height, width, colour in boxes:
        ax.add_patch(
            Rectangle(
                (col - 0.5, row - 0.5), width, height, fill=False, lw=2.5, ec=colour
            )
        )
    ax.set_xticks(range(a.shape[1]))
    ax.set_yticks(range(a.shape[0]))
    ax.set_title(title, fontsize=10)


def best_time(fn: Callable[[], object], repeat: int = 3) -> float:
    """The fastest of ``repeat`` runs of ``fn()``, in seconds.

    The minimum, not the mean: other programs only ever slow a run down, so the
    fastest run is the closest to the code's own cost.
    """
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
