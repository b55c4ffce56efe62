"""The technique lab: the notes' vectorisation steps side by side (loops, einsum,
im2col, the book, the engine), timed on the same inputs (``cnnumpy bench``,
``benchmarks/techniques.py``)."""
