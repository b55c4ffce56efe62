"""The engine: faster kernels for the book's operations, behind one dispatcher.

``cnnumpy.engine.off()`` (a context manager) or ``CNNUMPY_ENGINE=0`` runs everything on
the book (:mod:`cnnumpy.textbook`) alone; ``force(op, kernel)`` routes one operation's
calls to one kernel; ``TABLES`` lists every operation with its kernels, in order of
preference. See :mod:`cnnumpy.engine.dispatch`.
"""

from cnnumpy.engine import ops
from cnnumpy.engine.dispatch import TABLES, Cache, enabled, force, off, on

__all__ = ["TABLES", "Cache", "enabled", "force", "off", "on", "ops"]
