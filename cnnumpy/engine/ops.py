"""The operations and their dispatch tables: for each, the book's pair, then the
engine's kernels in order of preference with the rule that picks each one.

A layer calls ``ops.<name>.forward(...)`` and ``ops.<name>.backward(dout, cache)``;
see :mod:`cnnumpy.engine.dispatch` for how a kernel is chosen. The measured rules
live in :mod:`cnnumpy.engine.rules` (this module and that one show every choice);
every kernel's measured reason is in its own docstring, in the module named here.
"""

from __future__ import annotations

from functools import partial

from cnnumpy.engine import rules
from cnnumpy.engine.dispatch import operation
from cnnumpy.engine.kernels import activations as engine_act
from cnnumpy.engine.kernels import conv as engine_conv
from cnnumpy.engine.kernels import dense as engine_dense
from cnnumpy.engine.kernels import dropout as engine_dropout
from cnnumpy.engine.kernels import embedding as engine_embedding
from cnnumpy.engine.kernels import gru as engine_gru
from cnnumpy.engine.kernels import lstm as engine_lstm
from cnnumpy.engine.kernels import normalization as engine_norm
from cnnumpy.engine.kernels import pool as engine_pool
from cnnumpy.engine.kernels import recurrent as engine_recurrent
from cnnumpy.textbook import activations as book_act
from cnnumpy.textbook import conv as book_conv
from cnnumpy.textbook import dense as book_dense
from cnnumpy.textbook import dropout as book_dropout
from cnnumpy.textbook import embedding as book_embedding
from cnnumpy.textbook import lrn as book_lrn
from cnnumpy.textbook import normalization as book_norm
from cnnumpy.textbook import pool as book_pool
from cnnumpy.textbook import recurrent as book_recurrent

# -- dense (book: textbook/dense.py; engine: kernels/dense.py) ------------------
dense = operation("dense", book_dense.dense_forward, book_dense.dense_backward)
dense.register(
    "threads",
    engine_dense.dense_forward,
    engine_dense.dense_backward,
    why="the product split in two blocks of rows (of units for a few examples), "
    "one per core, each on a one-thread BLAS",
)

# -- 2-D convolution (book: textbook/conv.py; engine: kernels/conv.py,
# conv_flat.py, conv_bands.py, conv_inner.py; rules: rules.layout_of). Conv1D runs
# it on (N, C, 1, L). ---------------------------------------------------------------


def _layout_is(layout: str):
    """The rule choosing ``layout``: :func:`~cnnumpy.engine.rules.layout_of`."""

    def rule(*args, **kwargs) -> bool:
        return rules.layout_of(*args, **kwargs) == layout

    rule.__name__ = f"layout_is_{layout}"
    return rule


conv2d = operation("conv2d", book_conv.conv2d_forward, book_conv.conv2d_backward)
_LAYOUTS = {  # rules.LAYOUTS (stride 1, zero padding), each chosen by layout_of
    "inner": "maps up to 16x16 on which the wide grid would compute 10% junk or "
    "more: images innermost, no junk (conv_inner.py: seed 000's 8x8 20->20 5x5 "
    "layer forward 1.09 -> 0.89 ms, backward 2.49 -> 1.70 ms)",
    "bands": "kernels 4 or more wide over C*KH >= 64 rows: the columns of kw = 0 "
    "only, KW times fewer rows copied (rules.use_bands: seed 000's 20->20 5x5 "
    "layer 1.54 -> 1.20 ms)",
    "wide": "columns copied in runs of a whole image plane on the wide grid, dx "
    "without col2im's short rows (conv_wide.py, conv_flat_backward.py)",
}
for _name, _why in _LAYOUTS.items():
    conv2d.register(
        _name,
        partial(engine_conv.conv2d_forward, layout=_name),
        engine_conv.conv2d_backward,
        applies=_layout_is(_name),
        serves=rules.flat_serves,
        why=f"stride 1, zero padding, {_why}",
    )
conv2d.register(
    "columns",
    partial(engine_conv.conv2d_forward, layout="columns"),
    engine_conv.conv2d_backward,
    why="any stride and padding: im2col chunk by chunk in cache, one GEMM per chunk "
    "on each core, the bias in the GEMM (conv.py)",
)

# -- activations (book: textbook/activations.py; engine: kernels/activations.py) --
_THREADS = (
    "each element-wise pass on both cores (a ufunc alone uses one), branch-free masks "
    "(np.where mispredicts half of random signs: 10-20x slower on a million floats)"
)
relu = operation("relu", book_act.relu_forward, book_act.relu_backward)
relu.register(
    "threads", engine_act.relu_forward, engine_act.relu_backward, why=_THREADS
)
leaky_relu = operation(
    "leaky_relu", book_act.leaky_relu_forward, book_act.leaky_relu_backward
)
leaky_relu.register(
    "threads",
    engine_act.leaky_relu_forward,
    engine_act.leaky_relu_backward,
    why=_THREADS,
)
sigmoid = operation("sigmoid", book_act.sigmoid_forward, book_act.sigmoid_backward)
sigmoid.register(
    "threads", engine_act.sigmoid_forward, engine_act.sigmoid_backward, why=_THREADS
)
tanh = operation("tanh", book_act.tanh_forward, book_act.tanh_backward)
tanh.register(
    "threads", engine_act.tanh_forward, engine_act.tanh_backward, why=_THREADS
)
elu = operation("elu", book_act.elu_forward, book_act.elu_backward)
elu.register("threads", engine_act.elu_forward, engine_act.elu_backward, why=_THREADS)
arctan = operation(
    "arctan", book_act.arctan_forward, book_act.arctan_backward
)  # NumPy's arctan is vectorised already: split over cores it measured 0.7-1.3x
softmax = operation(
    "softmax", book_act.softmax_forward, book_act.softmax_backward
)  # along one axis of a few classes: the book's vectorised form is the fast one

# -- pooling (book: textbook/pool.py; engine: kernels/pool.py, pool_tiles.py;
# rule: rules.tiling) ----------------------------------------------------------------
maxpool2d = operation(
    "maxpool2d", book_pool.maxpool2d_forward, book_pool.maxpool2d_backward
)
maxpool2d.register(
    "tiles",
    engine_pool.maxpool2d_forward_tiles,
    engine_pool.maxpool2d_backward_tiles,
    applies=rules.tiling,
    why="windows that tile the input are a free reshape: KH*KW passes of np.maximum "
    "on both cores, about 10x faster than an argmax per copied window for 2x2",
)
maxpool2d.register(
    "windows",
    engine_pool.maxpool2d_forward_windows,
    engine_pool.maxpool2d_backward_windows,
    why="any geometry: one copy of the windows, no im2col, the index of each maximum",
)

avgpool2d = operation(
    "avgpool2d", book_pool.avgpool2d_forward, book_pool.avgpool2d_backward
)
avgpool2d.register(
    "tiles",
    engine_pool.avgpool2d_forward_tiles,
    engine_pool.avgpool2d_backward_tiles,
    applies=rules.tiling,
    why="KH*KW strided adds over the free reshape, on both cores, no window copy",
)
avgpool2d.register(
    "windows",
    engine_pool.avgpool2d_forward_windows,
    engine_pool.avgpool2d_backward_windows,
    why="any geometry: the mean over a zero-copy window view",
)

global_avgpool2d = operation(
    "global_avgpool2d",
    book_pool.global_avgpool2d_forward,
    book_pool.global_avgpool2d_backward,
)  # the book's mean over each map is already one vectorised pass

# -- batch normalisation (book: textbook/normalization.py; engine:
# kernels/normalization.py). Every kernel's cache is a dict holding "mean", "var"
# (biased) and "m", from which the layer updates its running statistics. ----------
batchnorm = operation(
    "batchnorm", book_norm.batchnorm_forward, book_norm.batchnorm_backward
)
batchnorm.register(
    "threads",
    engine_norm.batchnorm_forward,
    engine_norm.batchnorm_backward,
    why="two passes over the data instead of about ten, BLAS reductions, chunks on "
    "both cores; and the statistics of the whole batch when a step is split over "
    "processes (cnnumpy.sync)",
)

# -- dropout (book: textbook/dropout.py; engine: kernels/dropout.py) ------------
dropout = operation(
    "dropout", book_dropout.dropout_forward, book_dropout.dropout_backward
)  # one multiply each way: the book's code is the fast one
dropout.register(
    "split",
    engine_dropout.dropout_forward_split,
    engine_dropout.dropout_backward,
    applies=engine_dropout.splitting,
    why="a step split over processes: the whole batch's mask, this slice's rows",
)

# -- recurrent layers (book: textbook/recurrent.py, the notes' loop over time steps on
# the whole batch; engine: kernels/recurrent.py, lstm.py, gru.py) ---------------------
simple_rnn = operation(
    "simple_rnn", book_recurrent.simple_rnn_forward, book_recurrent.simple_rnn_backward
)
simple_rnn.register(
    "blocks",
    engine_recurrent.simple_rnn_forward,
    engine_recurrent.simple_rnn_backward,
    why="each core runs the loop on its block of sequences, time-major; dW_hh as "
    "one product after the loop",
)
lstm = operation("lstm", book_recurrent.lstm_forward, book_recurrent.lstm_backward)
lstm.register(
    "blocks",
    engine_lstm.lstm_forward,
    engine_lstm.lstm_backward,
    why="each core runs the loop on its block of sequences, time-major; one tanh "
    "for the four gates (columns i, f, o, g); dW_hh as one product after the loop",
)
gru = operation("gru", book_recurrent.gru_forward, book_recurrent.gru_backward)
gru.register(
    "blocks",
    engine_gru.gru_forward,
    engine_gru.gru_backward,
    why="each core runs the loop on its block of sequences, time-major; one tanh "
    "for r and z; dW_hh as one product after the loop",
)

# -- local response normalisation (book: textbook/lrn.py) ----------------------------
lrn = operation(
    "lrn", book_lrn.lrn_forward, book_lrn.lrn_backward
)  # AlexNet's only: a sum over a few channels, vectorised in the book already

# -- embedding (book: textbook/embedding.py; engine: kernels/embedding.py) ----------

embedding = operation(
    "embedding", book_embedding.embedding_forward, book_embedding.embedding_backward
)  # forward: a row lookup, the book's indexing is the fast form already
embedding.register(
    "sorted",
    book_embedding.embedding_forward,
    engine_embedding.embedding_backward,
    why="the backward's rows summed per id by one sort and np.add.reduceat, "
    "instead of np.add.at's one indexed add per position",
)
