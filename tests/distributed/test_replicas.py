"""Process replicas (cnnumpy.distributed.replicas): same results as one process,
clear failures."""

import os

import numpy as np
import pytest

import cnnumpy
from cnnumpy import layers as L
from cnnumpy.distributed import limits
from cnnumpy.distributed.replicas import ReplicaError, split_sizes

# the engine's own machinery: run with its kernels, whatever CNNUMPY_ENGINE says
pytestmark = pytest.mark.usefixtures("engine_on")


def _small_cnn(dtype="float64", extra=tuple):
    cnnumpy.seed(3)
    model = cnnumpy.Sequential(
        [
            L.Conv2D(4, 3, padding=1),
            L.ReLU(),
            L.MaxPool2D(2),
            *extra(),
            L.Conv2D(6, 3),
            L.Tanh(),
            L.Flatten(),
            L.Dense(5),
        ],
        input_shape=(2, 8, 8),
    )
    model.astype(dtype)
    model.compile(cnnumpy.optimizers.SGD(0.05, momentum=0.9), "cross_entropy")
    return model


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 2, 8, 8)), rng.integers(0, 5, n)


def max_weight_diff(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    return max(
        float(np.abs(wa[i][k] - wb[i][k]).max()) for i in range(len(wa)) for k in wa[i]
    )


@pytest.fixture
def pair():
    one, split = _small_cnn(), _small_cnn()
    group = split.use_processes(2)
    yield one, split, group
    group.close()


def test_split_sizes():
    assert split_sizes(64, 2) == [32, 32]
    assert split_sizes(37, 3) == [13, 12, 12]
    assert sum(split_sizes(5, 4)) == 5


@pytest.mark.parametrize("n", [32, 37, 5])  # even, uneven, too small to split
def test_training_matches_one_process(pair, n):
    one, split, group = pair
    x, y = _data(n)
    assert group.splits(n) == (n >= 16)
    for _ in range(3):
        assert split.train_on_batch(x, y) == pytest.approx(
            one.train_on_batch(x, y), rel=1e-12
        )
    assert max_weight_diff(one, split) < 1e-12


def test_fit_predict_evaluate_match_one_process(pair):
    one, split, _group = pair
    x, y = _data(100, seed=1)
    h1 = one.fit(x, y, epochs=2, batch_size=32, seed=5, verbose=0)
    h2 = split.fit(x, y, epochs=2, batch_size=32, seed=5, verbose=0)
    np.testing.assert_allclose(h1.history["loss"], h2.history["loss"], rtol=1e-12)
    assert h1.history["accuracy"] == h2.history["accuracy"]
    assert max_weight_diff(one, split) < 1e-12
    np.testing.assert_allclose(one.predict(x, 64), split.predict(x, 64), atol=1e-14)
    e1, e2 = one.evaluate(x, y), split.evaluate(x, y)
    assert e1 == pytest.approx(e2, rel=1e-12)


@pytest.fixture
def three_cores(monkeypatch):
    """Three processes on a machine with fewer cores: they take turns, same numbers."""
    monkeypatch.setattr(limits, "available_cores", lambda: 3)


def test_float32_model_splits_too(three_cores):
    one, split = _small_cnn("float32"), _small_cnn("float32")
    x, y = _data(40)
    with split.use_processes(3):
        for _ in range(2):
            one.train_on_batch(x, y)
            split.train_on_batch(x, y)
        out = split.predict(x)
    assert out.dtype == np.float32
    assert max_weight_diff(one, split) < 1e-5
    np.testing.assert_allclose(out, one.predict(x), atol=1e-5)


def _bn_dropout():
    return (L.BatchNorm(), L.Dropout(0.2, seed=7))


@pytest.mark.parametrize("processes, n", [(2, 48), (2, 37), (3, 40)])
def test_batchnorm_and_dropout_train_split_like_one_process(processes, n, three_cores):
    """BatchNorm adds its sums up over the processes, Dropout draws the whole batch's
    mask in every process: weights, losses, running statistics and dropout masks
    are those of one process up to float rounding."""
    one, split = _small_cnn(extra=_bn_dropout), _small_cnn(extra=_bn_dropout)
    x, y = _data(n)
    with split.use_processes(processes) as group:
        assert group.splits(n)
        for _ in range(3):
            a, b = one.train_on_batch(x, y), split.train_on_batch(x, y)
            assert abs(a - b) < 1e-12
        assert max_weight_diff(one, split) < 1e-12  # running statistics included
        # the dropout generators moved by the same draws
        drop_one, drop_split = one.layers[4], split.layers[4]
        assert drop_one.rng.random() == drop_split.rng.random()
        np.testing.assert_allclose(one.predict(x), split.predict(x), atol=1e-12)
        assert not group.closed


def test_settings_changed_after_use_processes_and_other_bit_generators():
    """The replicas get Dropout's rate and generator state and BatchNorm's eps with
    every step: a change made after use_processes is seen, and a generator whose
    state holds arrays (MT19937) travels too. A rate-0 Dropout spawns no generator."""
    one, split = _small_cnn(extra=_bn_dropout), _small_cnn(extra=_bn_dropout)
    for model in (one, split):
        model.layers[4].rng = np.random.Generator(np.random.MT19937(5))
    x, y = _data(32)
    with split.use_processes(2):
        for model in (one, split):
            model.layers[4].rate = 0.5
            model.layers[3].eps = 1e-2
        for _ in range(2):
            assert abs(one.train_on_batch(x, y) - split.train_on_batch(x, y)) < 1e-12
        assert max_weight_diff(one, split) < 1e-12
    quiet = _small_cnn(extra=lambda: (L.Dropout(0.0),))
    with quiet.use_processes(2):
        quiet.train_on_batch(x, y)
        assert quiet.layers[3]._rng is None


def test_an_error_in_the_callers_slice_of_a_batchnorm_model_closes_the_group(
    monkeypatch,
):
    """The replica then waits in BatchNorm's allreduce for a sum that never comes:
    the group is closed (its replicas stopped) rather than left hanging."""
    split = _small_cnn(extra=_bn_dropout)
    x, y = _data(32)
    with split.use_processes(2) as group:
        bn = split.layers[3]
        real = type(bn).forward

        def broken(self, x, training=False):
            raise RuntimeError("boom")

        monkeypatch.setattr(type(bn), "forward", broken)
        with pytest.raises(RuntimeError, match="boom"):
            split.train_on_batch(x, y)
        monkeypatch.setattr(type(bn), "forward", real)
        assert group.closed and split.executor.replicas is None
        split.train_on_batch(x, y)  # alone now


def test_a_replica_dying_mid_step_raises(monkeypatch):
    split = _small_cnn(extra=_bn_dropout)
    x, y = _data(32)
    with split.use_processes(2) as group:
        split.train_on_batch(x, y)
        child = group._children[0].proc
        real = group.allreduce

        def kill_first(a):  # the replica dies while the caller is mid-step
            child.kill()
            child.wait()
            return real(a)

        monkeypatch.setattr(group, "allreduce", kill_first)
        with pytest.raises(ReplicaError, match="mid-step"):
            split.train_on_batch(x, y)
        assert group.closed


def test_shared_files_are_unlinked(pair):
    _one, split, group = pair
    x, y = _data(32)
    split.train_on_batch(x, y)
    paths = [group._weights.block.path] + [c.block.path for c in group._children]
    assert not any(os.path.exists(p) for p in paths)


def test_a_dead_replica_raises_then_the_model_trains_alone(pair):
    one, split, group = pair
    x, y = _data(32)
    group._children[0].proc.kill()
    group._children[0].proc.wait()
    with pytest.raises(ReplicaError, match="died"):
        split.train_on_batch(x, y)
    assert group.closed and split.executor.replicas is None
    one.train_on_batch(x, y)
    split.train_on_batch(x, y)  # no replica left: one process, no hang


def test_close_and_use_processes_one_stop_the_replicas():
    model = _small_cnn()
    group = model.use_processes(2)
    procs = [c.proc for c in group._children]
    assert model.use_processes(1) is None
    assert group.closed and all(p.poll() is not None for p in procs)
    group.close()  # idempotent


@pytest.mark.parametrize("bad", [0, -1, True, "2", 1.5])
def test_use_processes_rejects_bad_counts(bad):
    model = _small_cnn()
    with pytest.raises((TypeError, ValueError), match="expected an int >= 1"):
        model.use_processes(bad)


def test_unbuilt_model_is_refused():
    model = cnnumpy.Sequential([L.Dense(3)])
    with pytest.raises(ValueError, match="not built"):
        model.use_processes(2)


def test_custom_layer_is_refused():
    class Twice(L.Layer):
        def forward(self, x, training=False):
            return 2 * x

        def backward(self, dout):
            return 2 * dout

    model = cnnumpy.Sequential([L.Dense(3), Twice()], input_shape=(4,))
    with pytest.raises(ReplicaError, match="not one of cnnumpy's own layers"):
        model.use_processes(2)


def test_a_changed_model_is_refused(pair):
    _one, split, _group = pair
    split.astype("float32")
    x, y = _data(32)
    with pytest.raises(ReplicaError, match="changed after use_processes"):
        split.train_on_batch(x, y)


def test_an_error_here_keeps_the_replicas_in_step(pair, monkeypatch):
    one, split, group = pair
    x, y = _data(32)

    def boom(*args):
        raise FloatingPointError("boom")

    monkeypatch.setattr(split.executor, "gradients", boom)
    with pytest.raises(FloatingPointError, match="boom"):
        split.train_on_batch(x, y)
    monkeypatch.undo()
    assert not group.closed  # the replica's answer was read: still usable
    for _ in range(2):
        one.train_on_batch(x, y)
        split.train_on_batch(x, y)
    assert max_weight_diff(one, split) < 1e-12


def test_a_recompiled_loss_reaches_the_replicas():
    one, split = _small_cnn(), _small_cnn()
    x = _data(32)[0]
    y = np.eye(5)[_data(32)[1]]
    with split.use_processes(2):
        for model in (one, split):
            model.compile(cnnumpy.optimizers.SGD(0.05), "mse")
        assert split.train_on_batch(x, y) == pytest.approx(
            one.train_on_batch(x, y), rel=1e-12
        )
    assert max_weight_diff(one, split) < 1e-12


def test_a_custom_loss_is_refused(pair):
    _one, split, _group = pair

    class Scaled(cnnumpy.losses.CrossEntropy):
        pass

    split.compile("sgd", Scaled())
    x, y = _data(32)
    with pytest.raises(ReplicaError, match="not one of cnnumpy's own losses"):
        split.train_on_batch(x, y)


def test_a_dropped_model_stops_its_replicas():
    import gc

    model = _small_cnn()
    group = model.use_processes(2)
    procs = [c.proc for c in group._children]
    del model, group
    gc.collect()
    for proc in procs:
        assert proc.wait(timeout=10) is not None


def test_a_module_in_the_working_directory_is_not_imported(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "cnnumpy.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.chdir(tmp_path)
    model = _small_cnn()
    with model.use_processes(2):
        model.train_on_batch(*_data(32))
    assert not marker.exists()


def test_a_model_built_with_a_callable_initialiser_splits_too():
    """The replicas rebuild the model from its config, where a callable initialiser
    is "custom": they take the weights from the caller instead of calling it."""

    def small(shape, rng, dtype):
        return (rng.standard_normal(shape) * 0.1).astype(dtype)

    def build():
        cnnumpy.seed(4)
        model = cnnumpy.Sequential(
            [L.Flatten(), L.Dense(7, kernel_initializer=small), L.Tanh(), L.Dense(5)],
            input_shape=(2, 8, 8),
        )
        model.astype("float64")
        model.compile(cnnumpy.optimizers.SGD(0.05, momentum=0.9), "cross_entropy")
        return model

    one, split = build(), build()
    group = split.use_processes(2)
    try:
        x, y = _data(32)
        for _ in range(2):
            assert split.train_on_batch(x, y) == pytest.approx(
                one.train_on_batch(x, y), rel=1e-12
            )
        assert max_weight_diff(one, split) < 1e-12
    finally:
        group.close()
