"""The reproductions of ``benchmarks/reproduce.py``: one module per seed or source,
each with a list ``REPRODUCTIONS`` of :class:`reproduce.Reproduction`."""
