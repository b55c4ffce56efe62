"""The operations and their dispatch tables: for each, the book's pair, then the
engine's kernels in order of preference with the rule that picks each one.

A layer calls ``ops.<name>.forward(...)`` and ``ops.<name>.backward(dout, cache)``;
see :mod:`cnnumpy.engine.dispatch` for how a kernel is chosen. Every kernel's measured
reason is in its own docstring, in the module named here.
"""

from __future__ import annotations

from cnnumpy.engine.dispatch import operation
from cnnumpy.functional import activations as engine_act
from cnnumpy.functional import pool as engine_pool
from cnnumpy.textbook import activations as book_act
from cnnumpy.textbook import pool as book_pool

# -- activations (book: textbook/activations.py; engine: functional/activations.py) --
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
softmax = operation(
    "softmax", book_act.softmax_forward, book_act.softmax_backward
)  # along one axis of a few classes: the book's vectorised form is the fast one

# -- pooling (book: textbook/pool.py; engine: functional/pool.py, pool_tiles.py) ----
maxpool2d = operation(
    "maxpool2d", book_pool.maxpool2d_forward, book_pool.maxpool2d_backward
)
maxpool2d.register(
    "tiles",
    engine_pool.maxpool2d_forward_tiles,
    engine_pool.maxpool2d_backward_tiles,
    applies=engine_pool.tiling,
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
    applies=engine_pool.tiling,
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
