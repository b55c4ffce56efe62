"""The book: the course notes' math as plain functions, NumPy only, whole batch.

Each ``*_forward(x, ...)`` returns ``(out, cache)`` and each ``*_backward(dout, cache)``
the gradients, written as the notes derive them, with no threads, chunks or scratch
buffers. The engine (:mod:`cnnumpy.engine`, its kernels in ``cnnumpy.engine.kernels``)
computes the same results faster, and its tests compare it with these functions.
"""
