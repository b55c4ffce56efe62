"""Recurrent layers (seed 003, "Réseaux récurrents"): SimpleRNN, LSTM and GRU.

Each layer holds ``W_xh`` ``(F, G*units)``, ``W_hh`` ``(units, G*units)``, ``b_xh`` and
``b_hh`` ``(G*units,)`` and calls its operation (``ops.simple_rnn``, ``ops.lstm``,
``ops.gru``), whose book is :mod:`cnnumpy.textbook.recurrent`: the notes' loop
``h_t = f_a(W^xh x_t + W^hh h_(t-1))`` over the time steps of a batch-first
``(N, T, F)`` sequence.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnumpy.engine import ops
from cnnumpy.layers.base import Layer


class _Recurrent(Layer):
    """What SimpleRNN, LSTM and GRU share: shapes, states, checks and config.

    Initialisation: every parameter uniform on ``[-1/sqrt(units), 1/sqrt(units)]``,
    PyTorch's default for ``nn.RNN``, ``nn.LSTM`` and ``nn.GRU`` (Keras draws W_xh
    Glorot-uniform, W_hh orthogonal and zero biases; we keep PyTorch's, the library
    the tests compare with, so that a same-size twin starts from the same law).

    ``forward(x, training=False, initial_state=None)`` returns the output (with
    ``return_state``: ``(output, h_T)``, LSTM ``(output, h_T, c_T)``, as Keras).
    ``backward(dout, dstate=None)`` takes the gradient of the output and, optionally,
    of the final state(s) (an array, LSTM a pair ``(dh_T, dc_T)`` whose entries may be
    None); it returns dx and leaves dE/dh0 (LSTM ``(dE/dh0, dE/dc0)``) in
    ``initial_state_grad``, so that an encoder and a decoder can be chained by hand.

    With ``stateful=True`` the final state of one forward is the initial state of the
    next (truncated backpropagation through time over consecutive chunks, as
    min-char-rnn carries ``hprev``); the gradient stops at the chunk's start.
    ``reset_states()`` forgets it.
    """

    gates = 1  # G: blocks of ``units`` columns in W_xh, W_hh, b_xh, b_hh
    state_names: tuple[str, ...] = ("h0",)
    op = ops.simple_rnn

    def __init__(
        self,
        units: int,
        return_sequences: bool = False,
        return_state: bool = False,
        stateful: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        kind = type(self).__name__
        if (
            isinstance(units, bool)
            or not isinstance(units, (int, np.integer))
            or (units < 1)
        ):
            raise ValueError(f"{kind}: units must be a positive int, got {units!r}")
        self.units = int(units)
        for flag, value in (
            ("return_sequences", return_sequences),
            ("return_state", return_state),
            ("stateful", stateful),
        ):
            if not isinstance(value, bool):
                raise TypeError(
                    f"{kind}({units}): {flag} must be a bool, got {value!r}"
                )
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.stateful = stateful
        self.carried_state: tuple[np.ndarray, ...] | None = None  # stateful only
        self.initial_state_grad: np.ndarray | tuple[np.ndarray, ...] | None = None
        self._cache = None
        self._shape = None  # (N, T) of the last forward

    # -- shapes ------------------------------------------------------------------------
    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(T, units)`` with ``return_sequences``, else ``(units,)``."""
        input_shape = tuple(input_shape)
        if len(input_shape) != 2:
            got = ", ".join(str(d) for d in input_shape)
            raise self._error(f"expected input (N, T, features), got (N, {got})")
        T, F = input_shape
        if T < 1:
            raise self._error(
                f"expected at least one time step, got T = {T} in (N, {T}, {F})"
            )
        if self.built and F != self.input_shape[1]:
            raise self._error(
                f"expected input (N, T, {self.input_shape[1]}), got (N, {T}, {F})"
            )
        return (T, self.units) if self.return_sequences else (self.units,)

    def param_shapes(self, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """W_xh ``(F, G*units)``, W_hh ``(units, G*units)``, b_xh and b_hh."""
        self.output_shape(input_shape)
        width = self.gates * self.units
        return {
            "W_xh": (int(input_shape[1]), width),
            "W_hh": (self.units, width),
            "b_xh": (width,),
            "b_hh": (width,),
        }

    def build(self, input_shape: tuple[int, ...]) -> None:
        shapes = self.param_shapes(input_shape)
        bound = 1.0 / np.sqrt(self.units)  # PyTorch's nn.RNN/LSTM/GRU default
        self.params = {
            name: self.rng.uniform(-bound, bound, size=shape).astype(self.dtype)
            for name, shape in shapes.items()
        }
        super().build(input_shape)

    def _expected_input(self) -> str:
        return f"(N, T, {self.input_shape[1] if self.built else 'features'})"

    # -- states ------------------------------------------------------------------------
    def reset_states(self) -> None:
        """Forget the state a stateful layer carries: the next chunk starts at 0."""
        self.carried_state = None

    def _as_states(self, given, what: str, N: int, allow_none: bool) -> tuple:
        """``given`` (an array, or a list/tuple of them) as one entry per state, each
        ``(N, units)`` in the layer's dtype (or None where ``allow_none``)."""
        names = self.state_names
        listed = list(given) if isinstance(given, (list, tuple)) else [given]
        if len(listed) != len(names):
            raise self._error(
                f"expected {what} [{', '.join(names)}] ({len(names)} array(s)), "
                f"got {len(listed)}"
            )
        states = []
        for state_name, s in zip(names, listed, strict=True):
            if s is None and allow_none:
                states.append(None)
                continue
            s = np.asarray(s)
            if s.shape != (N, self.units):
                raise self._error(
                    f"expected {what} {state_name} of shape ({N}, {self.units}), "
                    f"got {s.shape}"
                )
            states.append(s.astype(self.dtype, copy=False))
        return tuple(states)

    def _initial_states(self, initial_state, N: int) -> tuple[np.ndarray, ...]:
        if initial_state is not None:
            return self._as_states(initial_state, "initial_state", N, False)
        if self.stateful and self.carried_state is not None:
            carried = self.carried_state[0].shape[0]
            if carried != N:
                raise self._error(
                    f"stateful: got a batch of {N} sequences but the carried state "
                    f"is for {carried}; call reset_states() first"
                )
            return tuple(s.astype(self.dtype, copy=False) for s in self.carried_state)
        return tuple(np.zeros((N, self.units), self.dtype) for _ in self.state_names)

    # -- passes ------------------------------------------------------------------------
    def _op_kwargs(self) -> dict[str, Any]:
        return {}

    def forward(
        self, x: np.ndarray, training: bool = False, initial_state=None
    ) -> np.ndarray | tuple[np.ndarray, ...]:
        """Run the recurrence over the T steps of ``x`` ``(N, T, F)``; keeps the
        book's cache (x, the weights, every h_t and the gates) for ``backward``."""
        x = self._prepare_input(x, rank=3)
        N, T, _ = x.shape
        h0s = self._initial_states(initial_state, N)
        p = self.params
        (outputs, *finals), self._cache = self.op.forward(
            x, *h0s, p["W_xh"], p["W_hh"], p["b_xh"], p["b_hh"], **self._op_kwargs()
        )
        self._shape = (N, T)
        if self.stateful:
            self.carried_state = tuple(s.copy() for s in finals)
        out = outputs if self.return_sequences else outputs[:, -1]
        return (out, *finals) if self.return_state else out

    def backward(self, dout: np.ndarray, dstate=None) -> np.ndarray | None:
        """dE/dx (None if ``need_input_grad`` is False); fills ``grads`` and
        ``initial_state_grad``. ``dstate``: the final state(s)' gradient, or None."""
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward() called before forward()")
        N, T = self._shape
        dout = np.asarray(dout).astype(self.dtype, copy=False)
        expected = (N, T, self.units) if self.return_sequences else (N, self.units)
        if dout.shape != expected:
            raise self._error(f"expected dout {expected}, got {dout.shape}")
        if dstate is None:
            dfinals = (None,) * len(self.state_names)
        else:
            dfinals = self._as_states(dstate, "dstate", N, True)
        if self.return_sequences:
            dout_all = dout
        else:  # the output is h_T: its gradient reaches the last step only
            dout_all = np.zeros((N, T, self.units), self.dtype)
            dout_all[:, -1] = dout
        dx, *grads = self.op.backward(
            dout_all, self._cache, *dfinals, need_dx=self.need_input_grad
        )
        n = len(self.state_names)
        dh0s, (dW_xh, dW_hh, db_xh, db_hh) = grads[:n], grads[n:]
        self.initial_state_grad = dh0s[0] if n == 1 else tuple(dh0s)
        self.grads.update(W_xh=dW_xh, W_hh=dW_hh, b_xh=db_xh, b_hh=db_hh)
        return dx

    def get_config(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "stateful": self.stateful,
            "name": self.name,
        }


class SimpleRNN(_Recurrent):
    """The notes' recurrent layer: ``h_t = f(x_t W_xh + b_xh + h_(t-1) W_hh + b_hh)``.

    Args:
        units: size of h.
        activation: f, ``"tanh"`` (the slides) or ``"relu"``.
        return_sequences: output every h_t ``(N, T, units)``, else h_T ``(N, units)``.
        return_state: also return h_T (Keras's ``return_state``).
        stateful: carry h_T into the next forward (see :class:`_Recurrent`).
        name: optional name of the layer.

    Shape:
        input ``(N, T, F)``; params ``W_xh`` ``(F, units)``, ``W_hh``
        ``(units, units)``, ``b_xh``, ``b_hh`` ``(units,)``.
    """

    def __init__(
        self,
        units: int,
        activation: str = "tanh",
        return_sequences: bool = False,
        return_state: bool = False,
        stateful: bool = False,
        name: str | None = None,
    ) -> None:
        if activation not in ("tanh", "relu"):
            raise ValueError(
                f"SimpleRNN: activation must be 'tanh' or 'relu', got {activation!r}"
            )
        self.activation = activation
        super().__init__(units, return_sequences, return_state, stateful, name)

    def _op_kwargs(self) -> dict[str, Any]:
        return {"activation": self.activation}

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        return {"units": self.units, "activation": self.activation, **config}


class LSTM(_Recurrent):
    """Long short-term memory (Hochreiter & Schmidhuber 1997), PyTorch's gates i, f,
    g, o: ``c_t = f c_(t-1) + i g``, ``h_t = o tanh(c_t)``.

    Arguments as :class:`SimpleRNN` (no activation). The state is the pair (h, c):
    ``initial_state=[h0, c0]``, ``return_state`` gives ``(output, h_T, c_T)``,
    ``backward(dout, (dh_T, dc_T))``, ``initial_state_grad == (dh0, dc0)``.

    Shape:
        params ``W_xh`` ``(F, 4*units)``, ``W_hh`` ``(units, 4*units)``, ``b_xh``,
        ``b_hh`` ``(4*units,)``.
    """

    gates = 4
    state_names = ("h0", "c0")
    op = ops.lstm


class GRU(_Recurrent):
    """Gated recurrent unit (Cho et al. 2014) as PyTorch's ``nn.GRU``: gates r, z, n,
    ``n = tanh(x W_xn + b_xn + r * (h W_hn + b_hn))``, ``h' = (1 - z) n + z h``.

    Arguments as :class:`SimpleRNN` (no activation).

    Shape:
        params ``W_xh`` ``(F, 3*units)``, ``W_hh`` ``(units, 3*units)``, ``b_xh``,
        ``b_hh`` ``(3*units,)``.
    """

    gates = 3
    op = ops.gru
