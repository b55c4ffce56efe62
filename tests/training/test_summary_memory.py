"""summary(): the memory a training step keeps for the backward pass.

``cnnumpy.summary.cache_bytes`` estimates each layer's cache from the book's code. The
numbers are pinned by hand for a small model, then compared with the arrays the layers
really keep after one training step in float64: equal, layer by layer, on the book;
within a factor of 6 of the total on the engine, whose kernels keep other arrays (a
fast convolution the padded input instead of the columns): measured, from 0.20 of the
estimate (seed_cifar) to 1.03 (melpy_mnist).
"""

import numpy as np
import pytest

import cnnumpy
from cnnumpy import engine, zoo
from cnnumpy.layers import (
    ELU,
    GRU,
    LSTM,
    Arctan,
    AvgPool1D,
    AvgPool2D,
    BatchNorm,
    Conv1D,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    LeakyReLU,
    LocalResponseNorm,
    MaxPool1D,
    MaxPool2D,
    ReLU,
    Sigmoid,
    SimpleRNN,
    Softmax,
    Tanh,
)
from cnnumpy.summary import cache_bytes, summary_text, totals

ENGINE_FACTOR = 6  # the engine's caches against the book's estimate, either way


def small_cnn() -> cnnumpy.Sequential:
    return cnnumpy.Sequential(
        [
            Conv2D(2, 3, padding=1),
            BatchNorm(),
            ReLU(),
            MaxPool2D(2),
            Flatten(),
            Dropout(0.5),
            Dense(5),
            Tanh(),
            Dense(3),
        ],
        input_shape=(1, 8, 8),
    )


def test_small_cnn_by_hand():
    model = small_cnn().astype(np.float64)
    N, f64 = 4, 8  # batch, bytes per float64
    expected = [
        (1 * 3 * 3 + 1) * (N * 8 * 8) * f64,  # columns [x_cols; 1]: 10 x N*H_out*W_out
        (N * 2 * 8 * 8 + 3 * 2) * f64,  # x_hat, and 1/std, mean, var per channel
        N * 2 * 8 * 8,  # the mask x > 0, one byte each
        N * 2 * 4 * 4 * (2 * 2),  # each output's window mask, 2x2 bytes
        0,  # Flatten: the shape only
        N * 32 * f64,  # Dropout's scaled mask
        N * 32 * f64,  # Dense(5)'s input
        N * 5 * f64,  # Tanh's output
        N * 5 * f64,  # Dense(3)'s input
    ]
    assert cache_bytes(model, N) == expected
    assert sum(expected) == 28_016
    t = totals(model, N)
    assert t["backward_bytes"] == 28_016 and t["batch_size"] == N
    assert t["backward_mb"] == pytest.approx(0.028016)
    float32 = cache_bytes(small_cnn(), N)  # masks stay one byte, values take four
    assert float32[2:4] == expected[2:4] and float32[0] == expected[0] // 2


def cached_arrays_bytes(layer) -> int:
    """The bytes of the arrays in ``layer``'s cache, the parameters left out."""
    params = list(layer.params.values())

    def walk(obj) -> int:
        if isinstance(obj, np.ndarray):
            shared = any(np.shares_memory(obj, p) for p in params)
            return 0 if shared else obj.nbytes
        if isinstance(obj, dict):
            return sum(walk(v) for v in obj.values())
        if isinstance(obj, (tuple, list)):  # the engine's Cache is a tuple too
            return sum(walk(v) for v in obj)
        return 0

    return walk(getattr(layer, "_cache", None))


def one_step(model, x, y) -> list[int]:
    """One float64 training step; what each layer's cache then holds, in bytes."""
    model.astype(np.float64)
    model.compile(optimizer="sgd", loss="cross_entropy", metrics=())
    model.train_on_batch(x, y)
    return [cached_arrays_bytes(layer) for layer in model.layers]


def image_batch(model, n, rng):
    x = rng.standard_normal((n, *model.input_shape))
    return x, rng.integers(0, model.output_shape[-1], size=n)


def sequence_model():
    return cnnumpy.Sequential(
        [
            Embedding(10, 4),
            GRU(3, return_sequences=True),
            LSTM(3, return_sequences=True),
            SimpleRNN(2),
            Dense(3),
        ],
        input_shape=(5,),
    )


def one_d_model():
    return cnnumpy.Sequential(
        [
            Conv1D(3, 3, padding="same"),
            LeakyReLU(),
            MaxPool1D(2),
            AvgPool1D(2),
            Sigmoid(),
            Flatten(),
            Dense(4),
            Softmax(),
        ],
        input_shape=(2, 12),
    )


def lrn_model():
    return cnnumpy.Sequential(
        [
            Conv2D(4, 3, stride=2, use_bias=False),
            ELU(),
            LocalResponseNorm(3),
            Arctan(),
            AvgPool2D(2),
            GlobalAvgPool2D(),
            Dense(3),
        ],
        input_shape=(2, 9, 9),
    )


@pytest.mark.parametrize(
    "make", [small_cnn, one_d_model, lrn_model, zoo.lenet5, zoo.lenet5_classic]
)
@pytest.mark.parametrize("n", [1, 6])
def test_the_estimate_is_what_the_book_keeps(make, n, rng):
    model = make()
    x, y = image_batch(model, n, rng)
    with engine.off():
        kept = one_step(model, x, y)
    assert cache_bytes(model, n) == kept


def test_the_estimate_is_what_the_book_keeps_for_sequences(rng):
    model = sequence_model()
    ids = rng.integers(0, 10, size=(3, 5))
    with engine.off():
        kept = one_step(model, ids, rng.integers(0, 3, size=3))
    T, F, U = 5, 4, 3  # steps, features in, units
    assert kept[0] == 3 * T * 8  # the int64 ids
    assert kept[1] == 3 * (T * F + U + 5 * T * U) * 8  # GRU: x, h0, h_t, r z n, v_n
    # LSTM: x, h0, c0, every h_t, c_t, tanh(c_t) and the 4 gates
    assert kept[2] == 3 * (T * U + 2 * U + 7 * T * U) * 8
    assert cache_bytes(model, 3) == kept


@pytest.mark.parametrize(
    "make", [small_cnn, zoo.lenet5, zoo.seed_cifar, zoo.melpy_mnist, zoo.vgg_cifar]
)
def test_the_engine_keeps_the_same_within_a_factor(make, rng):
    model = make()
    x, y = image_batch(model, 8, rng)
    with engine.on():
        kept = sum(one_step(model, x, y))
    estimate = totals(model, 8)["backward_bytes"]
    assert estimate / ENGINE_FACTOR <= kept <= estimate * ENGINE_FACTOR


class Twice(Layer):
    """A user's own layer: its cache is unknown to the summary."""

    def forward(self, x, training=False):
        return 2 * self._prepare_input(x)

    def backward(self, dout):
        return 2 * dout


def test_unknown_layers_are_marked_and_left_out():
    model = cnnumpy.Sequential([Dense(4), Twice(), Dense(2)], input_shape=(3,))
    assert cache_bytes(model, 2) == [2 * 3 * 4, None, 2 * 4 * 4]
    text = summary_text(model, 2)
    assert "?" in text and "(layers marked ? not counted)" in text
    assert totals(model, 2)["backward_bytes"] == 24 + 32


def test_summary_prints_the_column_and_the_total():
    model = small_cnn().astype(np.float64)
    text = summary_text(model, 4)
    assert "Cache (N=4)" in text and "20.5 kB" in text  # the convolution's columns
    assert "Training step on 4 examples: ~0.0 MB kept for the backward pass" in text
    default = model.summary(print_fn=None)
    assert "Cache (N=32)" in default and "Training step on 32 examples" in default
    assert f"Total parameters: {model.count_params():,}" in default


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "8"])
def test_batch_size_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match="batch_size must be a positive int, got"):
        cache_bytes(small_cnn(), bad)


def test_an_unbuilt_model_is_refused():
    with pytest.raises(ValueError, match="the model is not built"):
        cache_bytes(cnnumpy.Sequential([Dense(3)]))
