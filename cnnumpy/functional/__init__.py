"""Pure forward/backward math: functions take arrays and return arrays (and a cache).

``*_forward(x, ...) -> (out, cache)`` and ``*_backward(dout, cache) -> grads`` come in
pairs, in the spirit of cs231n's ``layers.py``. The naive loop twins (the notes'
"technique 1") sit beside the fast kernels, in ``*_naive`` modules, as the reference the
tests compare against.
"""
