"""cnnumpy's recurrent layers against PyTorch (CPU, default settings): tokens/s.

The char model of issue 16's measurements: ids ``(batch, T)`` over a vocabulary of 65
-> ``Embedding(65, 64)`` -> ``LSTM(256)`` or ``GRU(256)`` (every step's output) ->
``Dense(65)``, cross-entropy on every step. Both frameworks start from the same
weights; one training step is checked to give the same loss and gradients, then the
two are timed alternately (cnnumpy, PyTorch, cnnumpy, ...), like ``vs_torch.py``:

- training: forward, backward and one SGD step with momentum 0.9;
- inference: the softmax of every step's logits, under ``torch.no_grad``.

It prints the median tokens/s (batch x T per second) of both and their ratio
(cnnumpy / PyTorch: above 1, cnnumpy is faster)::

    .venv/bin/python benchmarks/vs_torch_rnn.py
    .venv/bin/python benchmarks/vs_torch_rnn.py --cells lstm --batch 64 --steps 50
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vs_torch import (  # noqa: E402
    LR,
    MOMENTUM,
    alternate,
    environment,
    print_table,
)

VOCAB, EMBED, UNITS = 65, 64, 256


def build_pair(cell: str, steps: int, seed: int = 0):
    """The cnnumpy model and its PyTorch twin with the same weights, and the twin's
    optimiser."""
    import torch
    from torch import nn

    import cnnumpy
    from cnnumpy.layers import GRU, LSTM, Dense, Embedding

    cnnumpy.seed(seed)
    rnn = {"lstm": LSTM, "gru": GRU}[cell](UNITS, return_sequences=True)
    model = cnnumpy.Sequential(
        [Embedding(VOCAB, EMBED), rnn, Dense(VOCAB)], input_shape=(steps,)
    )
    model.compile(
        optimizer=cnnumpy.optimizers.SGD(lr=LR, momentum=MOMENTUM),
        loss="cross_entropy",
        metrics=[],
    )
    torch.manual_seed(seed)

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(VOCAB, EMBED)
            kind = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
            self.rnn = kind(EMBED, UNITS, batch_first=True)
            self.out = nn.Linear(UNITS, VOCAB)

        def forward(self, x):
            return self.out(self.rnn(self.embed(x))[0])

    net = Twin()
    emb, rec, dense = model.layers
    with torch.no_grad():
        net.embed.weight.copy_(torch.from_numpy(emb.params["W"]))
        net.rnn.weight_ih_l0.copy_(torch.from_numpy(rec.params["W_xh"].T))
        net.rnn.weight_hh_l0.copy_(torch.from_numpy(rec.params["W_hh"].T))
        net.rnn.bias_ih_l0.copy_(torch.from_numpy(rec.params["b_xh"]))
        net.rnn.bias_hh_l0.copy_(torch.from_numpy(rec.params["b_hh"]))
        net.out.weight.copy_(torch.from_numpy(dense.params["W"].T))
        net.out.bias.copy_(torch.from_numpy(dense.params["b"]))
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    return model, net, opt


def step_functions(model, net, opt, x, y):
    """(train pair, predict pair) of zero-argument callables."""
    import torch

    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    loss_fn = torch.nn.CrossEntropyLoss()

    def ours_train():
        model.train_on_batch(x, y)

    def torch_train():
        opt.zero_grad()
        loss = loss_fn(net(xt).reshape(-1, VOCAB), yt.reshape(-1))
        loss.backward()
        opt.step()

    def ours_predict():
        model.predict(x, batch_size=len(x))

    def torch_predict():
        with torch.no_grad():
            torch.softmax(net(xt), dim=-1).numpy()

    return (ours_train, torch_train), (ours_predict, torch_predict)


def check_agreement(cell: str, x, y) -> tuple[float, float, float]:
    """The two losses of one training step's forward, and the largest difference of
    the recurrent layer's W_hh gradients, relative to PyTorch's largest entry."""
    import torch

    model, net, _ = build_pair(cell, x.shape[1])
    out = model.forward(x, training=True)
    loss = float(model.loss(out, y))
    model.backward(model.loss.backward())
    t_loss = torch.nn.functional.cross_entropy(
        net(torch.from_numpy(x)).reshape(-1, VOCAB), torch.from_numpy(y).reshape(-1)
    )
    t_loss.backward()
    ours = model.layers[1].grads["W_hh"]
    theirs = net.rnn.weight_hh_l0.grad.numpy().T
    err = float(np.abs(ours - theirs).max() / (np.abs(theirs).max() + 1e-12))
    return loss, float(t_loss.detach()), err


def speed_rows(cell: str, batch: int, steps: int, repeats: int, min_time: float):
    """Check one step against PyTorch, then time training and inference alternately:
    one row each, in ``vs_torch.py``'s row format (rates in tokens/s)."""
    rng = np.random.default_rng(1)
    x = rng.integers(0, VOCAB, (batch, steps)).astype(np.int64)
    y = rng.integers(0, VOCAB, (batch, steps)).astype(np.int64)
    ours_loss, torch_loss, err = check_agreement(cell, x, y)
    print(
        f"{cell}: one step agrees with torch (loss {ours_loss:.6f} vs "
        f"{torch_loss:.6f}, max rel. W_hh grad error {err:.1e})",
        flush=True,
    )
    if abs(ours_loss - torch_loss) > 1e-4 * abs(torch_loss) or err > 1e-3:
        raise SystemExit(f"{cell}: cnnumpy and torch disagree")
    rows = []
    for k, mode in enumerate(("train", "predict")):
        model, net, opt = build_pair(cell, steps)
        fns = step_functions(model, net, opt, x, y)[k]
        ours, theirs = alternate(fns, batch * steps, repeats, min_time)
        pairs = [a / b for a, b in zip(ours, theirs, strict=True)]
        row = {
            "net": f"{cell} (Embedding 64, {UNITS} units, T = {steps})",
            "mode": mode,
            "batch": batch,
            "unit": "tokens",
            "cnnumpy_rate": statistics.median(ours),
            "torch_rate": statistics.median(theirs),
            "pair_ratios": [round(r, 3) for r in pairs],
        }
        row["ratio"] = row["cnnumpy_rate"] / row["torch_rate"]
        rows.append(row)
        print(
            f"  {mode:7s} batch {batch:4d}: cnnumpy {row['cnnumpy_rate']:9.0f} "
            f"tokens/s  torch {row['torch_rate']:9.0f} tokens/s  ratio "
            f"{row['ratio']:.2f} (pairs {min(pairs):.2f}-{max(pairs):.2f})",
            flush=True,
        )
        print("JSON " + json.dumps(row), flush=True)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--min-time", type=float, default=0.5)
    args = parser.parse_args(argv)
    print("JSON " + json.dumps({"environment": environment()}), flush=True)
    rows = []
    for cell in args.cells:
        rows += speed_rows(cell, args.batch, args.steps, args.repeats, args.min_time)
    print_table(rows)


if __name__ == "__main__":
    main()
