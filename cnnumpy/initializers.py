"""Weight initialisers: by name, or a callable of your own.

An initialiser is a function ``init(shape, rng, dtype) -> np.ndarray``: ``shape`` is
the parameter's shape (a tuple of ints), ``rng`` the layer's ``numpy.random.Generator``
(seeded through ``cnnumpy.seed``) and ``dtype`` the layer's dtype (float32 or
float64). It returns a new array of exactly that shape and dtype, all finite.
``Dense``, ``Conv1D`` and ``Conv2D`` take as ``kernel_initializer`` and
``bias_initializer`` a name of the table below or such a callable; :func:`initialize`
calls it and checks its result. A callable with a parameter named ``input_shape`` also
receives, by keyword, the shape of one input of the layer's weight, batch axis
excluded: ``(C, H, W)`` for Conv2D, ``(C, L)`` for Conv1D, ``(features,)`` for Dense
(one step of a sequence). Seed 000's laws need it: they scale by the input's size.

Model files hold names, never code: a layer built with a callable is saved with its
weights and ``"custom"`` in its config. Loading sets the weights from the file, so the
loaded layer needs no initialiser (:func:`weights_follow`); building a ``"custom"``
layer anywhere else is an error.

| name              | law                           | source                     |
|-------------------|-------------------------------|----------------------------|
| he_normal         | N(0, 2 / fan_in)              | He et al. 2015             |
| he_uniform        | U(-a, a), Var = 2 / fan_in    | He et al. 2015             |
| glorot_normal     | N(0, 2 / (fan_in + fan_out))  | Glorot & Bengio 2010       |
| glorot_uniform    | U(-a, a), same variance       | Glorot & Bengio 2010       |
| lecun_normal      | N(0, 1 / fan_in)              | LeCun et al. 1998          |
| lecun_uniform     | U(-a, a), Var = 1 / fan_in    | LeCun et al. 1998          |
| zeros, ones       | 0, 1                          |                            |
| seed000_fc        | randn * 0.01 / sqrt(D1*H1*W1) | seed 000, II. 2. b (FC)    |
| seed000_conv      | randn / sqrt(D1*H1*W1)        | seed 000, II. 2. b (conv)  |
| seed000_conv_bias | ones / sqrt(D1*H1*W1)         | seed 000, II. 2. b (conv)  |
| uniform_half      | rand - 0.5: U[-0.5, 0.5)      | seed 002, FC and conv code |

``kaiming_*`` and ``xavier_*`` are He's and Glorot's. Fans follow cnnumpy's layouts:
Dense ``(in_features, units)``, convolution ``(F, C, *kernel)`` with ``fan_in = C *
prod(kernel)``, ``fan_out = F * prod(kernel)``. He's Var = 2 / fan_in keeps the
variance of ReLU activations constant from layer to layer; Glorot's suits tanh and
sigmoid. A uniform law on [-a, a] has variance a^2 / 3: ``a = sqrt(3 * var)``. In
seed 000's CIFAR-10 network D1*H1*W1 is the size of the layer's input (its
``prev_size``: depth x height x width), not of one receptive field; seed 002's
``FCLayer`` and ``ConvLayer`` (the XOR network, the first CNN) draw weights and biases
as ``np.random.rand(...) - 0.5``.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import math
from collections.abc import Callable, Iterator

import numpy as np

Initializer = Callable[[tuple, np.random.Generator, np.dtype], np.ndarray]
# what a layer's ``kernel_initializer`` may be: a name, "custom" or a callable
Spec = str | Initializer

CUSTOM = "custom"  # a config's name for a callable, which a file never stores

# True while a caller builds layers whose weights it sets right after (load_model)
_WEIGHTS_FOLLOW = contextvars.ContextVar("cnnumpy_weights_follow", default=False)


def compute_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of the given cnnumpy layout."""
    if len(shape) < 2:
        raise ValueError(
            f"compute_fans: expected a weight of rank >= 2, got shape {shape}"
        )
    if len(shape) == 2:  # Dense: (in_features, units)
        return int(shape[0]), int(shape[1])
    receptive = int(np.prod(shape[2:]))  # Conv: (F, C, *kernel)
    return int(shape[1]) * receptive, int(shape[0]) * receptive


def _normal(std: float, shape, rng, dtype):
    return (rng.standard_normal(shape) * std).astype(dtype)


def _uniform(var: float, shape, rng, dtype):
    a = np.sqrt(3.0 * var)
    return rng.uniform(-a, a, size=shape).astype(dtype)


def he_normal(shape, rng, dtype=np.float32):
    fan_in, _ = compute_fans(shape)
    return _normal(np.sqrt(2.0 / fan_in), shape, rng, dtype)


def he_uniform(shape, rng, dtype=np.float32):
    fan_in, _ = compute_fans(shape)
    return _uniform(2.0 / fan_in, shape, rng, dtype)


def glorot_normal(shape, rng, dtype=np.float32):
    fan_in, fan_out = compute_fans(shape)
    return _normal(np.sqrt(2.0 / (fan_in + fan_out)), shape, rng, dtype)


def glorot_uniform(shape, rng, dtype=np.float32):
    fan_in, fan_out = compute_fans(shape)
    return _uniform(2.0 / (fan_in + fan_out), shape, rng, dtype)


def lecun_normal(shape, rng, dtype=np.float32):
    fan_in, _ = compute_fans(shape)
    return _normal(np.sqrt(1.0 / fan_in), shape, rng, dtype)


def lecun_uniform(shape, rng, dtype=np.float32):
    fan_in, _ = compute_fans(shape)
    return _uniform(1.0 / fan_in, shape, rng, dtype)


def zeros(shape, rng=None, dtype=np.float32):
    return np.zeros(shape, dtype=dtype)


def ones(shape, rng=None, dtype=np.float32):
    return np.ones(shape, dtype=dtype)


# -- the notes' own initialisations -------------------------------------------------
def _input_size(name: str, shape, input_shape) -> int:
    """D1*H1*W1, the number of values of one input of the layer."""
    if input_shape is not None:
        return math.prod(int(d) for d in input_shape)
    if name == "seed000_fc" and len(shape) == 2:  # a Dense weight (in_features, units)
        return int(shape[0])
    raise ValueError(
        f"{name}: seed 000 scales by the layer's input size D1*H1*W1, which the "
        f"parameter's shape {tuple(shape)} does not give; pass input_shape="
    )


def seed000_fc(shape, rng, dtype=np.float32, *, input_shape=None):
    """Seed 000's FullyConnected layer (II. 2. b): weights and biases both
    ``randn(...) * 0.01 / sqrt(D1*H1*W1)``, i.e. N(0, (0.01 / sqrt(n_in))^2).

    ``n_in = D1*H1*W1`` is the size of the layer's input, ``prod(input_shape)``
    (``in_features`` for a Dense weight when ``input_shape`` is not given).
    """
    n_in = _input_size("seed000_fc", shape, input_shape)
    return _normal(0.01 / np.sqrt(n_in), shape, rng, dtype)


def seed000_conv(shape, rng, dtype=np.float32, *, input_shape=None):
    """Seed 000's Convolutional layer (II. 2. b): ``randn(D2, D1, F, F) /
    sqrt(D1*H1*W1)``, i.e. N(0, 1 / n_in) with ``n_in = prod(input_shape)``.

    The notes scale by the whole input map (D1*H1*W1), not by the receptive field
    (D1*F*F) as He or LeCun do: on a 3x32x32 image the std is 1/sqrt(3072) = 0.018.
    """
    n_in = _input_size("seed000_conv", shape, input_shape)
    return _normal(1.0 / np.sqrt(n_in), shape, rng, dtype)


def seed000_conv_bias(shape, rng=None, dtype=np.float32, *, input_shape=None):
    """Seed 000's Convolutional layer (II. 2. b): biases ``ones(D2) /
    sqrt(D1*H1*W1)``, every one equal to ``1 / sqrt(prod(input_shape))``."""
    n_in = _input_size("seed000_conv_bias", shape, input_shape)
    return np.full(shape, 1.0 / np.sqrt(n_in), dtype=dtype)


def uniform_half(shape, rng, dtype=np.float32):
    """Seed 002's ``FCLayer`` and ``ConvLayer`` ("Coder la couche FC", "Couche
    convolution"): weights and biases ``np.random.rand(...) - 0.5``, uniform on
    [-0.5, 0.5) (variance 1/12), as in its XOR network and its first CNN."""
    dtype = np.dtype(dtype)
    if dtype in (np.float32, np.float64):
        # drawn in the target dtype: a float64 draw just under 1 rounds to 1.0 in
        # float32, and the interval would close at 0.5
        return rng.random(shape, dtype=dtype) - dtype.type(0.5)
    return (rng.random(shape) - 0.5).astype(dtype)


_BY_NAME: dict[str, Initializer] = {
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "kaiming_normal": he_normal,
    "kaiming_uniform": he_uniform,
    "glorot_normal": glorot_normal,
    "glorot_uniform": glorot_uniform,
    "xavier_normal": glorot_normal,
    "xavier_uniform": glorot_uniform,
    "lecun_normal": lecun_normal,
    "lecun_uniform": lecun_uniform,
    "zeros": zeros,
    "ones": ones,
    "seed000_fc": seed000_fc,
    "seed000_conv": seed000_conv,
    "seed000_conv_bias": seed000_conv_bias,
    "uniform_half": uniform_half,
}


def get(name: str) -> Initializer:
    """The initialiser called ``name`` (e.g. ``"he_normal"``)."""
    if not isinstance(name, str) or name not in _BY_NAME:
        raise ValueError(
            f"unknown initializer {name!r}; expected one of {sorted(_BY_NAME)}"
        )
    return _BY_NAME[name]


# -- what layers use ----------------------------------------------------------------
def check(spec: Spec, owner: str, argument: str) -> None:
    """Fail now, naming ``owner`` (e.g. ``"Dense(10)"``), if ``spec`` is neither a
    known name, ``"custom"``, nor a callable: a typo must not wait for the first
    batch."""
    if isinstance(spec, str):
        if spec != CUSTOM and spec not in _BY_NAME:
            raise ValueError(
                f"{owner}: unknown initializer {spec!r} for {argument}; expected one "
                f"of {sorted(_BY_NAME)} or a callable f(shape, rng, dtype) -> array"
            )
    elif not callable(spec):
        raise TypeError(
            f"{owner}: {argument} must be an initializer name or a callable "
            f"f(shape, rng, dtype) -> array, got {type(spec).__name__} {spec!r}"
        )


def config_name(spec: Spec) -> str:
    """What a config records: a name as it is, one of this module's functions by
    its name, any other callable as ``"custom"`` (a file never stores code)."""
    if isinstance(spec, str):
        return spec
    for name, function in _BY_NAME.items():  # first name wins: he_normal, not kaiming
        if spec is function:
            return name
    return CUSTOM


@contextlib.contextmanager
def weights_follow() -> Iterator[None]:
    """Inside this block, a ``"custom"`` initialiser makes zeros instead of failing.

    For a caller that builds layers from a config and sets every weight right after
    (``load_model``): the callable the layer was built with is not in the config, and
    its weights are in the file.
    """
    token = _WEIGHTS_FOLLOW.set(True)
    try:
        yield
    finally:
        _WEIGHTS_FOLLOW.reset(token)


def initialize(
    spec: Spec,
    shape: tuple[int, ...],
    rng: np.random.Generator,
    dtype,
    *,
    input_shape: tuple[int, ...] | None = None,
    where: str = "initializer",
) -> np.ndarray:
    """A parameter's initial value ``spec(shape, rng, dtype)``, checked; errors
    name ``where`` (``"Dense(10): kernel_initializer"``). ``input_shape`` (one input
    of the weight, no batch axis) goes to a callable with a parameter of that name.

    Raises:
        ValueError: ``"custom"`` outside :func:`weights_follow`, a callable that
            raised (chained), a result of the wrong shape or not finite.
        TypeError: a result that is not an ndarray, or of the wrong dtype.
    """
    shape, dtype = tuple(int(d) for d in shape), np.dtype(dtype)
    if isinstance(spec, str) and spec == CUSTOM:
        if _WEIGHTS_FOLLOW.get():
            return np.zeros(shape, dtype=dtype)  # the caller sets the weights next
        raise ValueError(
            f"{where} is 'custom': the callable this layer was built with is not "
            f"saved (model files never run code), so its weights must come from a "
            f"file: cnnumpy.load_model(path) builds it and loads them; or pass an "
            f"initializer name or callable"
        )
    init = get(spec) if isinstance(spec, str) else spec
    label = getattr(init, "__qualname__", repr(init))
    label = repr(spec) if isinstance(spec, str) else label
    kwargs = {"input_shape": input_shape} if _takes_input_shape(init) else {}
    try:
        value = init(shape, rng, dtype, **kwargs)
    except Exception as exc:  # any failure of user code, named and chained
        raise ValueError(
            f"{where}={label} failed when called as f(shape={shape}, rng, "
            f"dtype={dtype.name}): {type(exc).__name__}: {exc}"
        ) from exc
    _check_result(value, shape, dtype, f"{where}={label}")
    # a copy: a callable may hand back an array it keeps (pretrained weights), which
    # training would otherwise update in place
    return value if isinstance(spec, str) else np.array(value, order="C", copy=True)


def _takes_input_shape(init: Callable) -> bool:
    try:
        return "input_shape" in inspect.signature(init).parameters
    except (TypeError, ValueError):  # some built-ins have no signature
        return False


def _check_result(value, shape: tuple, dtype: np.dtype, what: str) -> None:
    if not isinstance(value, np.ndarray):
        raise TypeError(
            f"{what} returned {type(value).__name__}, expected a numpy array of shape "
            f"{shape} and dtype {dtype.name}"
        )
    if value.shape != shape:
        raise ValueError(f"{what} returned shape {value.shape}, expected {shape}")
    if value.dtype != dtype:
        raise TypeError(
            f"{what} returned dtype {value.dtype}, expected {dtype.name} (the "
            f"layer's dtype, given as the third argument)"
        )
    if not np.isfinite(value).all():
        raise ValueError(f"{what} returned NaN or infinite values")
