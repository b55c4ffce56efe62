"""The engine's kernels: the book's operations, faster, with the book's signatures.

Each ``*_forward(x, ...)`` returns ``(out, cache)`` and each ``*_backward(dout, cache)``
the gradients, like the book's (:mod:`cnnumpy.textbook`); :mod:`cnnumpy.engine.ops`
registers them in one dispatch table per operation, with the measured rule that picks
each, and the tests compare every one with the book. What each does and why it is
faster: ``cnnumpy/engine/README.md``.
"""
