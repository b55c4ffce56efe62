"""The dispatcher itself (``cnnumpy.engine.dispatch``), on a made-up operation.

A call goes to the first kernel whose rule accepts it, else to the book; the cache says
which kernel made it and the backward follows it; ``off()`` and ``force()`` change the
choice only inside their block, and bad names are refused with the known ones listed.
"""

import subprocess
import sys

import pytest

from cnnumpy.engine import dispatch

# the engine's own machinery: run with its kernels, whatever CNNUMPY_ENGINE says
pytestmark = pytest.mark.usefixtures("engine_on")


@pytest.fixture
def op():
    def book_forward(x, k):
        return ("book", x), ("book-cache", x)

    def book_backward(dout, cache):
        return ("book-back", cache)

    table = dispatch.Operation("toy", book_forward, book_backward)
    table.register(
        "small",
        lambda x, k: (("small", x), "small-cache"),
        lambda dout, cache: ("small-back", cache),
        applies=lambda x, k: k < 3,
        why="made up",
    )
    table.register(
        "any",
        lambda x, k: (("any", x), "any-cache"),
        lambda dout, cache: ("any-back", cache),
    )
    dispatch.TABLES["toy"] = table
    yield table
    del dispatch.TABLES["toy"]


def test_the_first_kernel_that_applies_runs_and_tags_its_cache(op):
    out, cache = op.forward(1.0, 2)
    assert out == ("small", 1.0) and cache == dispatch.Cache("small", "small-cache")
    assert op.backward(0.0, cache) == ("small-back", "small-cache")
    out, cache = op.forward(1.0, 5)
    assert out == ("any", 1.0) and cache.kernel == "any"
    assert op.names == ["book", "small", "any"]


def test_off_runs_the_book_and_the_backward_follows_the_cache(op):
    with dispatch.off():
        assert not dispatch.enabled()
        out, cache = op.forward(1.0, 2)
    assert dispatch.enabled()
    assert out == ("book", 1.0) and cache.kernel == "book"
    # the engine is back on, but this cache was made by the book: its backward runs
    assert op.backward(0.0, cache) == ("book-back", ("book-cache", 1.0))


def test_force_routes_the_calls_the_kernel_serves(op):
    with dispatch.force("toy", "any"):
        assert op.forward(1.0, 2)[1].kernel == "any"
    with dispatch.force("toy", "small"):
        assert op.forward(1.0, 9)[1].kernel == "any"  # small does not serve k = 9
    with dispatch.force("toy", "book"):
        assert op.forward(1.0, 2)[1].kernel == "book"
    assert op.forward(1.0, 2)[1].kernel == "small"


def test_bad_names_are_refused(op):
    with pytest.raises(ValueError, match=r"engine.force: no operation 'nope'; known: "):
        with dispatch.force("nope", "book"):
            pass
    with pytest.raises(ValueError, match=r"toy: no kernel named 'fast'; known: book, "):
        with dispatch.force("toy", "fast"):
            pass
    with pytest.raises(ValueError, match=r"toy: a kernel named 'any' exists already"):
        op.register("any", None, None)


@pytest.mark.parametrize("value, on", [("0", False), ("1", True)])
def test_the_environment_variable(value, on):
    code = "from cnnumpy.engine import dispatch; print(dispatch.enabled())"
    env = {"CNNUMPY_ENGINE": value, "PATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )
    assert result.stdout.strip() == str(on)


def test_a_bad_environment_variable_is_a_clear_error():
    code = "from cnnumpy.engine import dispatch"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"CNNUMPY_ENGINE": "yes"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert (
        "CNNUMPY_ENGINE: expected 0 (the book alone) or 1, got 'yes'" in result.stderr
    )
