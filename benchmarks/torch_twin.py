"""PyTorch twins of cnnumpy networks, for the benchmarks.

``torch_twin(model)`` builds one torch module per cnnumpy layer, in the same order
(an ``nn.Sequential`` for a stack of layers; for a graph model, a :class:`GraphTwin`
that runs them on the same connections), and loads the cnnumpy weights through
``cnnumpy.saving.to_torch_state_dict`` (the interop convention), so that both networks
start from exactly the same parameters.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cnnumpy.saving import to_torch_state_dict


def _conv(layer, channels: int) -> nn.Module:
    F, C, KH, KW = layer.params["W"].shape
    padding = layer.padding
    if padding == "same" and max(layer.stride) > 1:
        raise NotImplementedError("torch has no 'same' padding with a stride > 1")
    if isinstance(padding, list):
        padding = tuple(padding)
    if layer.padding_mode != "zeros":
        raise NotImplementedError("the benchmark twins use zero padding only")
    return nn.Conv2d(
        C, F, (KH, KW), stride=layer.stride, padding=padding, bias=layer.use_bias
    )


def _module(layer, in_shape: tuple[int, ...]) -> nn.Module:
    """The torch module that computes what ``layer`` computes on ``in_shape``."""
    kind = type(layer).__name__
    if kind == "Conv2D":
        return _conv(layer, in_shape[0])
    if kind == "Dense":
        W = layer.params["W"]
        return nn.Linear(W.shape[0], W.shape[1], bias=layer.use_bias)
    if kind in ("MaxPool2D", "AvgPool2D"):
        cls = nn.MaxPool2d if kind == "MaxPool2D" else nn.AvgPool2d
        return cls(layer.pool_size, stride=layer.stride, padding=layer.padding)
    if kind == "BatchNorm":
        cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d}[len(in_shape)]
        return cls(in_shape[0], eps=layer.eps, momentum=layer.momentum)
    simple = {
        "Add": lambda: _Merge(lambda xs: sum(xs[1:], xs[0])),
        "Multiply": lambda: _Merge(_product),
        "Concatenate": lambda: _Merge(lambda xs: torch.cat(xs, dim=layer.axis)),
        "GlobalAvgPool2D": lambda: _Merge(lambda xs: xs[0].mean(dim=(2, 3))),
        "ReLU": lambda: nn.ReLU(),
        "Tanh": lambda: nn.Tanh(),
        "Sigmoid": lambda: nn.Sigmoid(),
        "LeakyReLU": lambda: nn.LeakyReLU(layer.alpha),
        "ELU": lambda: nn.ELU(layer.alpha),
        "Flatten": lambda: nn.Flatten(),
        "Dropout": lambda: nn.Dropout(layer.rate),
    }
    if kind not in simple:
        raise NotImplementedError(f"no torch twin for {layer!r}")
    return simple[kind]()


class _Merge(nn.Module):
    """A module computing ``fn([x_1, ..., x_k])`` (merges, global pooling)."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *xs):
        return self.fn(list(xs))


def _product(xs):
    out = xs[0]
    for x in xs[1:]:
        out = out * x
    return out


class GraphTwin(nn.Module):
    """A graph model's twin: ``layers[j]`` reads the values ``sources[j]`` (the ids
    of :mod:`cnnumpy.graph`: the inputs first, then each layer's output)."""

    def __init__(self, model) -> None:
        super().__init__()
        shapes = model.layer_input_shapes()
        self.layers = nn.ModuleList(
            _module(layer, shape)
            for layer, shape in zip(model.layers, shapes, strict=True)
        )
        self.sources = [list(srcs) for srcs in model.sources]
        self.outputs = list(model.output_ids)
        self.n_inputs = model.n_inputs

    def forward(self, *xs):
        values = dict(enumerate(xs))
        for j, (module, srcs) in enumerate(zip(self.layers, self.sources, strict=True)):
            values[self.n_inputs + j] = module(*(values[s] for s in srcs))
        outs = [values[k] for k in self.outputs]
        return outs[0] if len(outs) == 1 else outs


def modules_of(net) -> list[nn.Module]:
    """The twin's modules, one per cnnumpy layer, in order."""
    return list(net.layers) if isinstance(net, GraphTwin) else list(net)


def torch_twin(model) -> nn.Module:
    """A torch module computing ``model`` with ``model``'s current weights."""
    if _is_chain(model):
        modules, shape = [], model.input_shape
        for layer in model.layers:
            modules.append(_module(layer, shape))
            shape = layer.output_shape(shape)
        net, prefix = nn.Sequential(*modules), ""
    else:
        net, prefix = GraphTwin(model), "layers."
    state = {
        k: torch.from_numpy(np.array(v))
        for k, v in to_torch_state_dict(model, prefix).items()
    }
    net.load_state_dict(state)
    return net.to(torch.float32 if model.dtype == np.float32 else torch.float64)


def _is_chain(model) -> bool:
    n = len(model.layers)
    chain = all(srcs == [j] for j, srcs in enumerate(model.sources))
    return model.n_inputs == 1 and chain and list(model.output_ids) == [n]


def set_dropout(model, net: nn.Sequential, rate: float | None) -> list[float]:
    """Set every dropout rate of both networks (None: restore from the saved list)."""
    saved = []
    for layer, module in zip(model.layers, modules_of(net), strict=True):
        if type(layer).__name__ == "Dropout":
            saved.append(layer.rate)
            layer.rate = module.p = float(rate)
    return saved


def compare_one_step(model, net: nn.Sequential, x: np.ndarray, y: np.ndarray) -> dict:
    """Loss and every parameter gradient of one training batch, in both frameworks.

    Dropout is switched off for the comparison (the masks come from different
    generators). Nothing is updated: only forward and backward run.

    Returns:
        ``{"loss": (ours, torch), "max_rel_grad_err": float}``.
    """
    saved = set_dropout(model, net, 0.0)
    try:
        out = model.forward(x, training=True)
        loss = float(model.loss(out, y))
        model.backward(model.loss.backward())
        net.train()
        net.zero_grad()
        t_loss = nn.functional.cross_entropy(
            net(torch.from_numpy(x)), torch.from_numpy(y)
        )
        t_loss.backward()
    finally:
        for layer, module in zip(model.layers, modules_of(net), strict=True):
            if type(layer).__name__ == "Dropout":
                layer.rate = module.p = saved.pop(0)
    worst = 0.0
    for layer, module in zip(model.layers, modules_of(net), strict=True):
        for key, grad in layer.grads.items():
            torch_name = _TORCH_NAME[key]
            g_torch = getattr(module, torch_name).grad.numpy()
            g_ours = grad.T if type(layer).__name__ == "Dense" and key == "W" else grad
            scale = max(float(np.abs(g_torch).max()), 1e-12)
            worst = max(worst, float(np.abs(g_ours - g_torch).max()) / scale)
    return {"loss": (loss, float(t_loss.detach())), "max_rel_grad_err": worst}


_TORCH_NAME = {"W": "weight", "b": "bias", "gamma": "weight", "beta": "bias"}
