"""LocalResponseNorm: finite differences and PyTorch's local_response_norm."""

import engine_modes
import numpy as np
import pytest
import torch

from cnnumpy.layers.lrn import LocalResponseNorm
from gradcheck import check_layer_gradients


@pytest.fixture(autouse=True, params=engine_modes.modes("lrn"))
def engine_mode(request):
    """Every test once per mode: the engine, the book, each kernel forced."""
    with engine_modes.running(request.param):
        yield request.param


@pytest.mark.parametrize("size", [1, 2, 3, 5])
@pytest.mark.parametrize("shape", [(2, 6, 3, 3), (1, 4, 5)])
def test_lrn_gradients(size, shape, rng):
    layer = LocalResponseNorm(size, alpha=0.3, beta=0.75, k=1.5)
    check_layer_gradients(layer, rng.standard_normal(shape))


@pytest.mark.torch
@pytest.mark.parametrize("size", [2, 5])
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_lrn_matches_torch(size, dtype, tol, rng):
    x = rng.standard_normal((2, 7, 4, 4)).astype(dtype)
    layer = LocalResponseNorm(size)  # AlexNet's k=2, alpha=1e-4, beta=0.75
    y = layer.forward(x)
    g = rng.standard_normal(y.shape).astype(dtype)
    dx = layer.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.local_response_norm(xt, size, alpha=1e-4, beta=0.75, k=2.0)
    yt.backward(torch.tensor(g))
    assert y.shape == yt.shape and y.dtype == dtype
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol, atol=tol)


def test_lrn_rejects_bad_arguments():
    with pytest.raises(ValueError, match="size must be a positive integer, got 0"):
        LocalResponseNorm(0)
    with pytest.raises(ValueError, match="expected k > 0"):
        LocalResponseNorm(5, k=0)
    with pytest.raises(
        ValueError, match=r"LocalResponseNorm\(\): expected input \(N, C, \.\.\.\)"
    ):
        LocalResponseNorm().forward(np.zeros((2, 3)))


def test_lrn_config_round_trip_and_backward_checks():
    layer = LocalResponseNorm(3, name="lrn1")
    assert LocalResponseNorm.from_config(layer.get_config()).name == "lrn1"
    layer.forward(np.ones((1, 4, 2, 2)))
    with pytest.raises(ValueError, match=r"expected dout \(1, 4, 2, 2\), got \(1, 4\)"):
        layer.backward(np.ones((1, 4)))
    with pytest.raises(ValueError, match="must be finite numbers"):
        LocalResponseNorm(5, k=float("nan"))
