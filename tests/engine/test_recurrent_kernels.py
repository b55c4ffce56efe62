"""The engine's recurrent and embedding kernels against the book's functions.

The layer tests (tests/layers/test_recurrent*.py) already run every case under each
kernel forced; here the kernels' own paths are checked on bigger, odd-sized cases:
the batch split into blocks (one per worker) or not, every output and gradient, with
and without upstream gradients on the final states, ``need_dx`` off, float64 to
1e-12 and float32 to stated tolerances."""

import numpy as np
import pytest

import cnnumpy.engine.kernels.recurrent as recurrent_module
from cnnumpy.engine.kernels import embedding as engine_embedding
from cnnumpy.engine.kernels import gru as engine_gru
from cnnumpy.engine.kernels import lstm as engine_lstm
from cnnumpy.engine.kernels.parallel import WORKERS
from cnnumpy.textbook import embedding as book_embedding
from cnnumpy.textbook import recurrent as book

CELLS = {
    # name: (book forward, book backward, engine forward, engine backward, G, states)
    "tanh": (
        book.simple_rnn_forward,
        book.simple_rnn_backward,
        recurrent_module.simple_rnn_forward,
        recurrent_module.simple_rnn_backward,
        1,
        1,
    ),
    "relu": (
        lambda *a: book.simple_rnn_forward(*a, activation="relu"),
        book.simple_rnn_backward,
        lambda *a: recurrent_module.simple_rnn_forward(*a, activation="relu"),
        recurrent_module.simple_rnn_backward,
        1,
        1,
    ),
    "lstm": (
        book.lstm_forward,
        book.lstm_backward,
        engine_lstm.lstm_forward,
        engine_lstm.lstm_backward,
        4,
        2,
    ),
    "gru": (
        book.gru_forward,
        book.gru_backward,
        engine_gru.gru_forward,
        engine_gru.gru_backward,
        3,
        1,
    ),
}


def _case(cell, N, T, F, U, dtype, rng):
    G, states = CELLS[cell][4], CELLS[cell][5]
    x = rng.standard_normal((N, T, F)).astype(dtype)
    h0s = [rng.standard_normal((N, U)).astype(dtype) for _ in range(states)]
    weights = [
        (rng.standard_normal(shape) / np.sqrt(U)).astype(dtype)
        for shape in ((F, G * U), (U, G * U), (G * U,), (G * U,))
    ]
    dout = rng.standard_normal((N, T, U)).astype(dtype)
    dfinals = [rng.standard_normal((N, U)).astype(dtype) for _ in range(states)]
    return x, h0s, weights, dout, dfinals


def _both(cell, x, h0s, weights, dout, dfinals, need_dx):
    book_f, book_b, engine_f, engine_b = CELLS[cell][:4]
    results = []
    for forward, backward in ((book_f, book_b), (engine_f, engine_b)):
        outs, cache = forward(x, *h0s, *weights)
        grads = backward(dout, cache, *dfinals, need_dx=need_dx)
        results.append((outs, grads))
    return results


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("upstream", [False, True])
def test_engine_equals_book_float64(cell, split, upstream, monkeypatch, rng):
    # split: every batch of 2 or more sequences cut into one block per worker
    monkeypatch.setattr(recurrent_module, "PARALLEL_MACS", 0 if split else 2**62)
    x, h0s, weights, dout, dfinals = _case(cell, 7, 13, 5, 6, np.float64, rng)
    if not upstream:
        dfinals = [None] * len(dfinals)
    (book_outs, book_grads), (engine_outs, engine_grads) = _both(
        cell, x, h0s, weights, dout, dfinals, need_dx=True
    )
    for ours, reference in zip(engine_outs, book_outs, strict=True):
        assert ours.shape == reference.shape and ours.dtype == reference.dtype
        np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-12)
    assert len(engine_grads) == len(book_grads)
    for ours, reference in zip(engine_grads, book_grads, strict=True):
        assert ours.shape == reference.shape
        np.testing.assert_allclose(ours, reference, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("cell", list(CELLS))
def test_blocks_cover_the_batch(cell, monkeypatch, rng):
    """With the split on, a batch of WORKERS + 1 sequences is cut in WORKERS blocks,
    and a single sequence stays whole; both give the book's results."""
    monkeypatch.setattr(recurrent_module, "PARALLEL_MACS", 0)
    for N in (1, WORKERS + 1):
        x, h0s, weights, dout, dfinals = _case(cell, N, 4, 3, 5, np.float64, rng)
        engine_f = CELLS[cell][2]
        _, cache = engine_f(x, *h0s, *weights)
        blocks = cache if isinstance(cache, recurrent_module.Cache) else cache[0]
        assert len(blocks.bounds) == min(N, WORKERS)
        (book_outs, _), (engine_outs, _) = _both(
            cell, x, h0s, weights, dout, dfinals, need_dx=True
        )
        np.testing.assert_allclose(engine_outs[0], book_outs[0], rtol=1e-12)


@pytest.mark.parametrize("cell", list(CELLS))
def test_no_dx_when_not_needed(cell, rng):
    x, h0s, weights, dout, dfinals = _case(cell, 3, 5, 4, 3, np.float64, rng)
    (_, book_grads), (_, engine_grads) = _both(
        cell, x, h0s, weights, dout, dfinals, need_dx=False
    )
    assert engine_grads[0] is None and book_grads[0] is None
    for ours, reference in zip(engine_grads[1:], book_grads[1:], strict=True):
        np.testing.assert_allclose(ours, reference, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("cell", list(CELLS))
def test_engine_equals_book_float32(cell, rng):
    """float32: same dtype out, and the book's values to float32 rounding, summed
    over 20 steps (relative to each array's largest entry)."""
    x, h0s, weights, dout, dfinals = _case(cell, 9, 20, 8, 16, np.float32, rng)
    (book_outs, book_grads), (engine_outs, engine_grads) = _both(
        cell, x, h0s, weights, dout, dfinals, need_dx=True
    )
    for ours, reference in zip(
        [*engine_outs, *engine_grads], [*book_outs, *book_grads], strict=True
    ):
        assert ours.dtype == np.float32
        scale = np.abs(reference).max()
        np.testing.assert_allclose(ours, reference, rtol=0, atol=2e-5 * scale)


def test_lstm_gate_order_is_its_own_inverse():
    order = engine_lstm.order(3)
    assert order.tolist() == [0, 1, 2, 3, 4, 5, 9, 10, 11, 6, 7, 8]
    assert (order[order] == np.arange(12)).all()


@pytest.mark.parametrize("shape", [(4, 9), (1, 1), (3, 0)])
def test_embedding_sorted_backward_equals_add_at(shape, rng):
    vocab, dim = 6, 5
    ids = rng.integers(0, vocab, shape)
    W = rng.standard_normal((vocab, dim))
    dout = rng.standard_normal((*shape, dim))
    _, cache = book_embedding.embedding_forward(ids, W)
    ours = engine_embedding.embedding_backward(dout, cache)
    reference = book_embedding.embedding_backward(dout, cache)
    assert ours.shape == reference.shape and ours.dtype == reference.dtype
    np.testing.assert_allclose(ours, reference, rtol=1e-13, atol=1e-13)
