"""The worker threads, the BLAS hold and the helpers of engine/kernels/parallel.py."""

import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import cnnumpy
import cnnumpy.engine.kernels.dense as dense_module
import cnnumpy.engine.kernels.parallel as parallel_module
from cnnumpy.engine.kernels import activations as A
from cnnumpy.engine.kernels.dense import dense_backward, dense_forward
from cnnumpy.engine.kernels.im2col import strided_view
from cnnumpy.engine.kernels.parallel import (
    WORKERS,
    blas_one_thread,
    by_rows,
    chunk_bounds,
    halves,
    parallel_chunks,
    zeros,
)
from cnnumpy.engine.kernels.pool import (
    avgpool2d_backward_tiles,
    avgpool2d_forward_tiles,
    maxpool2d_backward_tiles,
    maxpool2d_forward_tiles,
)
from cnnumpy.textbook.loops import (
    avgpool2d_backward_loops,
    avgpool2d_forward_loops,
    maxpool2d_backward_loops,
    maxpool2d_forward_loops,
)


def _blas_threads() -> list[int]:
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


def test_blas_hold_is_reentrant_and_restores():
    before = _blas_threads()
    with blas_one_thread():
        assert set(_blas_threads()) == {1}
        with blas_one_thread():
            assert set(_blas_threads()) == {1}
        assert set(_blas_threads()) == {1}  # the inner exit keeps the outer hold
    assert _blas_threads() == before


def _threads_seen_by_a_step_and_a_predict() -> list:
    """The BLAS threads the layer's forward saw in ``train_on_batch`` and ``predict``
    of a one-Dense model."""
    seen = []
    model = cnnumpy.Sequential([cnnumpy.layers.Dense(3)], input_shape=(4,))
    model.compile("sgd", "mse", metrics=[])
    layer = model.layers[0]
    forward = layer.forward

    def spy(x, training=False):
        seen.append(_blas_threads())
        return forward(x, training=training)

    layer.forward = spy
    model.train_on_batch(np.ones((2, 4)), np.ones((2, 3)))
    model.predict(np.ones((2, 4)))
    return seen


@pytest.mark.usefixtures("engine_on")  # the executor's hold: off, there is none
def test_model_step_holds_the_blas_and_releases_it():
    before = _blas_threads()
    seen = _threads_seen_by_a_step_and_a_predict()
    assert seen and all(set(s) == {1} for s in seen)
    assert _blas_threads() == before


def test_with_the_engine_off_a_step_leaves_the_blas_alone():
    """The book's path is the notes' loop as it is: no hold on the BLAS threads."""
    with cnnumpy.engine.off():
        seen = _threads_seen_by_a_step_and_a_predict()
    assert len(seen) == 2 and seen[0] == seen[1] == _blas_threads()


@pytest.mark.parametrize("n, per_item", [(64, 184_000), (256, 349_000), (7, 10**6)])
def test_chunk_bounds_are_balanced_between_workers(n, per_item):
    bounds = chunk_bounds(n, per_item)
    assert [i for lo, hi in bounds for i in range(lo, hi)] == list(range(n))
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) - min(sizes) <= 1
    if n >= WORKERS:
        assert len(bounds) % WORKERS == 0


def test_small_jobs_stay_on_the_calling_thread():
    assert chunk_bounds(100, 8) == [(0, 100)]
    assert halves(100, 10, 2**20) == [(0, 100)]
    split = halves(5, 10**9, 2**20)
    assert split == [(0, 5)] if WORKERS == 1 else len(split) > 1


def test_parallel_chunks_runs_every_chunk_once_and_reports_errors():
    hits = np.zeros(50, dtype=int)
    workers = set()

    def work(lo, hi, k):
        hits[lo:hi] += 1
        workers.add((k, threading.get_ident()))

    parallel_chunks(work, [(i, i + 5) for i in range(0, 50, 5)])
    assert (hits == 1).all()
    assert len({k for k, _ in workers}) == min(WORKERS, 10)

    def broken(lo, hi, k):
        raise ValueError(f"chunk {lo}")

    with pytest.raises(ValueError, match="chunk"):
        parallel_chunks(broken, [(0, 1), (1, 2)])


@pytest.mark.parametrize("contiguous", [True, False])
def test_by_rows_splits_big_arrays_and_covers_them(contiguous):
    x = np.arange(2 * 600_000, dtype=np.float32).reshape(600_000, 2)
    if not contiguous:
        x = x[:, ::-1]
    out = np.empty_like(x)
    calls = []

    def part(a, o):
        calls.append(a.shape)
        np.negative(a, out=o)

    by_rows(part, x, out)
    np.testing.assert_array_equal(out, -x)
    assert len(calls) >= min(WORKERS, 2)


def test_zeros_are_shared_read_only_and_grow():
    a = zeros((3, 4), np.float32)
    assert a.shape == (3, 4) and not a.any() and not a.flags.writeable
    b = zeros((10, 10), np.float32)
    assert b.shape == (10, 10) and not b.any()
    assert zeros((2,), np.float64).dtype == np.float64


def test_strided_view_checks_bounds_and_is_read_only():
    a = np.arange(10.0)
    v = strided_view(a, (3, 4), (16, 8))  # rows start 2 apart, 4 long
    np.testing.assert_array_equal(v[2], [4, 5, 6, 7])
    assert not v.flags.writeable
    w = strided_view(a, (2, 2), (8, 8), writeable=True)
    assert w.flags.writeable
    with pytest.raises(ValueError, match=r"strides is incompatible with shape"):
        strided_view(a, (3, 4), (32, 8))  # would read past the end


@pytest.mark.parametrize("batch", [9, 1])
@pytest.mark.parametrize("force_split", [False, True])
def test_dense_split_between_threads_matches_one_product(
    monkeypatch, force_split, batch
):
    if force_split:
        monkeypatch.setattr(dense_module, "PARALLEL_MACS", 1)
    rng = np.random.default_rng(0)
    x, W, b = rng.standard_normal((batch, 7)), rng.standard_normal((7, 5)), np.ones(5)
    out, cache = dense_forward(x, W, b)
    np.testing.assert_allclose(out, x @ W + b, rtol=1e-12)
    dout = rng.standard_normal(out.shape)
    dx, dW, db = dense_backward(dout, cache)
    np.testing.assert_allclose(dx, dout @ W.T, rtol=1e-12)
    np.testing.assert_allclose(dW, x.T @ dout, rtol=1e-12)
    np.testing.assert_allclose(db, dout.sum(0), rtol=1e-12)


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "tanh", "sigmoid"])
def test_activations_split_between_threads_match_one_pass(monkeypatch, name):
    monkeypatch.setattr(parallel_module, "PARALLEL_BYTES", 1)
    monkeypatch.setattr(parallel_module, "CHUNK_BYTES", 4096)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((37, 3, 5, 7)).astype(np.float32)
    out, cache = getattr(A, f"{name}_forward")(x)
    reference = {
        "relu": np.maximum(x, 0),
        "leaky_relu": np.where(x > 0, x, np.float32(0.01) * x),
        "tanh": np.tanh(x),
        "sigmoid": A.sigmoid(x),
    }[name]
    np.testing.assert_allclose(out, reference, rtol=1e-6, atol=1e-7)
    assert out.dtype == np.float32
    dout = rng.standard_normal(x.shape).astype(np.float32)
    dx = getattr(A, f"{name}_backward")(dout, cache)
    monkeypatch.setattr(parallel_module, "PARALLEL_BYTES", 10**12)
    dx_one = getattr(A, f"{name}_backward")(dout, cache)
    np.testing.assert_array_equal(dx, dx_one)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_tile_pooling_in_small_chunks_matches_naive(monkeypatch, kind):
    monkeypatch.setattr(parallel_module, "PARALLEL_BYTES", 1)
    rng = np.random.default_rng(2)
    x = rng.integers(-3, 3, (9, 2, 6, 8)).astype(np.float64)  # many ties
    fwd, bwd = {
        "max": (maxpool2d_forward_tiles, maxpool2d_backward_tiles),
        "avg": (avgpool2d_forward_tiles, avgpool2d_backward_tiles),
    }[kind]
    fwd_n, bwd_n = {
        "max": (maxpool2d_forward_loops, maxpool2d_backward_loops),
        "avg": (avgpool2d_forward_loops, avgpool2d_backward_loops),
    }[kind]
    out, cache = fwd(x, 2, 2)
    out_n, cache_n = fwd_n(x, 2, 2)
    np.testing.assert_array_equal(out, out_n)
    dout = rng.standard_normal(out.shape)
    np.testing.assert_allclose(bwd(dout, cache), bwd_n(dout, cache_n), rtol=1e-12)


@pytest.mark.parametrize("alpha", [0.01, 0.0, 1.0, 2.5, -0.3])
def test_leaky_relu_any_slope(alpha):
    x = np.array([-2.0, -0.5, 0.0, 0.5, 3.0, np.nan], dtype=np.float32)
    out, cache = A.leaky_relu_forward(x, alpha)
    want = np.where(x > 0, x, np.float32(alpha) * x)
    np.testing.assert_allclose(out, want, rtol=1e-7)
    dx = A.leaky_relu_backward(np.ones_like(x), cache)
    np.testing.assert_allclose(dx, np.where(x > 0, 1.0, alpha), rtol=1e-7)


def test_nested_and_concurrent_kernels_neither_deadlock_nor_mix():
    counts = np.zeros((2, 5), dtype=int)

    def outer(lo, hi, k):  # a kernel inside a chunk runs on the chunk's thread
        def inner(a, b, j):
            counts[lo, a:b] += 1

        parallel_chunks(inner, [(0, 3), (3, 5)])

    parallel_chunks(outer, [(0, 1), (1, 2)])
    assert (counts == 1).all()

    results = {}

    def user(t):
        x = np.arange(400_000, dtype=np.float64) * t
        out, _ = A.relu_forward(x)
        results[t] = bool((out == x).all())

    threads = [threading.Thread(target=user, args=(t,)) for t in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {1: True, 2: True, 3: True, 4: True}


def test_a_failing_helper_chunk_is_raised_after_all_chunks_end():
    finished = []

    def work(lo, hi, k):
        if k == 1:
            raise RuntimeError("helper failed")
        finished.append(lo)

    if WORKERS < 2:
        pytest.skip("one core: no helper thread")
    with pytest.raises(RuntimeError, match="helper failed"):
        parallel_chunks(work, [(0, 1), (1, 2), (2, 3), (3, 4)])
    w = min(WORKERS, 4)
    assert sorted(finished) == [c for c in range(4) if c % w != 1]
    assert parallel_chunks(lambda lo, hi, k: hi, [(0, 1), (1, 2)])[-1] == 2


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork here")
def test_kernels_work_in_a_forked_child():
    import os

    parallel_chunks(lambda lo, hi, k: None, [(0, 1), (1, 2)])  # helpers exist
    pid = os.fork()
    if pid == 0:  # the child inherits no helper threads
        try:
            got = parallel_chunks(lambda lo, hi, k: hi, [(0, 1), (1, 2)])
            os._exit(0 if got[-1] == 2 or WORKERS == 1 else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_interrupted_wait_gives_fresh_helpers_not_a_hang(tmp_path):
    """Ctrl-C while the caller waits for a helper (the usual Jupyter interrupt of
    ``fit``): the next kernels must still run, and give right results."""
    import subprocess
    import sys

    script = tmp_path / "interrupt.py"
    script.write_text(
        "import signal, threading, time\n"
        "import numpy as np\n"
        "from cnnumpy.engine.kernels.threads import WORKERS, parallel_chunks\n"
        "main = threading.get_ident()\n"
        "def slow(lo, hi, k):\n"
        "    if k == 0:\n"
        "        args = (main, signal.SIGINT)\n"
        "        threading.Timer(0.2, signal.pthread_kill, args).start()\n"
        "    else:\n"
        "        time.sleep(1.0)\n"
        "try:\n"
        "    parallel_chunks(slow, [(0, 1), (1, 2)])\n"
        "except KeyboardInterrupt:\n"
        "    pass\n"
        "for _ in range(3):\n"
        "    hits = np.zeros(4, int)\n"
        "    def work(lo, hi, k):\n"
        "        hits[lo:hi] += 1\n"
        "    parallel_chunks(work, [(0, 1), (1, 2), (2, 3), (3, 4)])\n"
        "    assert (hits == 1).all(), hits\n"
        "print('ok', WORKERS)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")


def test_a_fork_while_another_thread_holds_the_blas_restores_it_in_the_child():
    import os

    if not hasattr(os, "fork"):
        pytest.skip("no fork here")
    before = _blas_threads()
    held, release = threading.Event(), threading.Event()

    def holder():
        with blas_one_thread():
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(10)
    try:
        pid = os.fork()
        if pid == 0:
            try:
                os._exit(0 if _blas_threads() == before else 1)
            finally:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
    finally:
        release.set()
        thread.join()
    assert os.waitstatus_to_exitcode(status) == 0
    assert _blas_threads() == before


def test_empty_batches_pass_through_the_split_kernels():
    x = np.zeros((0, 3, 4, 4), dtype=np.float32)
    for name in ("relu", "leaky_relu", "tanh", "sigmoid"):
        out, cache = getattr(A, f"{name}_forward")(x)
        assert out.shape == x.shape
        assert getattr(A, f"{name}_backward")(out, cache).shape == x.shape
    for fwd, bwd in (
        (maxpool2d_forward_tiles, maxpool2d_backward_tiles),
        (avgpool2d_forward_tiles, avgpool2d_backward_tiles),
    ):
        out, cache = fwd(x, 2, 2)
        assert out.shape == (0, 3, 2, 2) and bwd(out, cache).shape == x.shape
    assert chunk_bounds(0, 100) == [(0, 0)]


def test_leaky_relu_with_zero_slope_keeps_infinities():
    x = np.array([np.inf, 1.0, -2.0], dtype=np.float32)
    out, _ = A.leaky_relu_forward(x, 0.0)
    np.testing.assert_array_equal(out, [np.inf, 1.0, 0.0])


def test_by_rows_refuses_arrays_of_different_shapes():
    with pytest.raises(ValueError, match="one shape"):
        by_rows(lambda a, b: None, np.zeros((2, 3)), np.zeros((3,)))


@pytest.mark.parametrize("layout", ["rot90", "transposed", "fortran"])
def test_batchnorm_any_input_layout(layout):
    rng = np.random.default_rng(3)
    base = rng.standard_normal((5, 3, 4, 6))
    x = {
        "rot90": np.rot90(base, axes=(2, 3)),
        "transposed": base.transpose(0, 1, 3, 2),
        "fortran": np.asfortranarray(base),
    }[layout]
    results = []
    for inp in (x, np.ascontiguousarray(x)):
        bn = cnnumpy.layers.BatchNorm()
        bn.build(inp.shape[1:])
        out = bn.forward(inp, training=True)
        dout = np.asfortranarray(np.cos(np.arange(inp.size)).reshape(inp.shape))
        dx = bn.backward(dout)
        results.append((out, dx, bn.grads["gamma"]))
    for got, want in zip(results[0], results[1], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("value, expected", [("1", 1), ("3", 3), (None, None)])
def test_cnnumpy_threads_sets_the_worker_count(monkeypatch, value, expected):
    from cnnumpy.engine.kernels.threads import _workers

    if value is None:
        monkeypatch.delenv("CNNUMPY_THREADS", raising=False)
        assert 1 <= _workers() <= 4
    else:
        monkeypatch.setenv("CNNUMPY_THREADS", value)
        assert _workers() == expected


@pytest.mark.parametrize("value", ["0", "-2", "two", ""])
def test_cnnumpy_threads_refuses_nonsense(monkeypatch, value):
    from cnnumpy.engine.kernels.threads import _workers

    monkeypatch.setenv("CNNUMPY_THREADS", value)
    with pytest.raises(ValueError, match="CNNUMPY_THREADS"):
        _workers()


@pytest.mark.parametrize(
    ("F", "K", "rows"),
    [(6, 9000, 26), (6, 4096, 26), (16, 9000, 151), (2, 3, 4), (3, 8193, 5)],
)
def test_weight_gradient_products_in_pieces_equal_one_product(F, K, rows):
    """add_product: (cols @ g.T).T in pieces of the inner dimension (small products,
    K beyond a piece) or whole; written, then accumulated."""
    from cnnumpy.engine.kernels.products import add_product
    from cnnumpy.engine.rules import INNER_PIECE, dw_product_pieces

    rng = np.random.default_rng(0)
    g, cols = rng.standard_normal((F, K)), rng.standard_normal((rows, K))
    pieces = dw_product_pieces(F, K, rows)
    assert pieces[0][0] == 0 and pieces[-1][1] == K
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:], strict=False))
    small = F * rows <= 256 and K > INNER_PIECE
    assert (len(pieces) > 1) == small
    part = np.full((F, rows), np.nan)
    add_product(part, g, cols.T, first=True)
    np.testing.assert_allclose(part, g @ cols.T, rtol=1e-12, atol=1e-10)
    add_product(part, g, cols.T, first=False)
    np.testing.assert_allclose(part, 2 * (g @ cols.T), rtol=1e-12, atol=1e-10)
