"""Bits per character after the same training time: cnnumpy against PyTorch.

Issue 16's measurement: ``examples/char_rnn.py``'s model (min-char-rnn's
``SimpleRNN(100)`` on one-hot characters, or ``--model lstm``) and its PyTorch twin
(``nn.RNN`` / ``nn.LSTM`` + ``nn.Linear``), from the same initial weights, trained
the same way for the same wall-clock time:

- the same windows: ``--batch`` consecutive streams of the text, 25 characters a
  step, the state carried from window to window (truncated BPTT) and reset at the
  start of each pass;
- the same optimiser: Adam, lr 2e-3, gradients clipped to a global norm of 5;
- the same clock: the two train in alternate turns of ``--turn`` seconds (cnnumpy,
  PyTorch, cnnumpy, ...) until each has trained ``--minutes``, so that a noisy
  neighbour slows both alike; only training steps are timed;
- the same yardstick: PyTorch's trained weights are copied into a cnnumpy model and
  both are scored by :func:`cnnumpy.generation.bits_per_character` on the held-out
  last 5% of the text.

It prints each turn, then steps, characters per second and validation bits per
character of both::

    .venv/bin/python benchmarks/char_rnn_vs_torch.py                 # 10 minutes each
    .venv/bin/python benchmarks/char_rnn_vs_torch.py --model lstm --minutes 2
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT))

import char_rnn  # noqa: E402  (examples/char_rnn.py: the model, text and windows)
from vs_torch import environment  # noqa: E402

import cnnumpy  # noqa: E402
from cnnumpy.data import one_hot  # noqa: E402
from cnnumpy.generation import bits_per_character  # noqa: E402


def torch_twin(model, kind: str):
    """The PyTorch model with the cnnumpy model's weights (and its optimiser)."""
    import torch
    from torch import nn

    recurrent, dense = model.layers
    K, hidden = dense.units, recurrent.units

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            cell = nn.RNN if kind == "rnn" else nn.LSTM
            self.rnn = cell(K, hidden, batch_first=True)
            self.out = nn.Linear(hidden, K)

        def forward(self, x, state):
            h, state = self.rnn(x, state)
            return self.out(h), state

    net = Twin()
    with torch.no_grad():
        net.rnn.weight_ih_l0.copy_(torch.from_numpy(recurrent.params["W_xh"].T))
        net.rnn.weight_hh_l0.copy_(torch.from_numpy(recurrent.params["W_hh"].T))
        net.rnn.bias_ih_l0.copy_(torch.from_numpy(recurrent.params["b_xh"]))
        net.rnn.bias_hh_l0.copy_(torch.from_numpy(recurrent.params["b_hh"]))
        net.out.weight.copy_(torch.from_numpy(dense.params["W"].T))
        net.out.bias.copy_(torch.from_numpy(dense.params["b"]))
    return net, torch.optim.Adam(net.parameters(), lr=char_rnn.DEFAULT_LR)


def copy_back(net, model) -> None:
    """PyTorch's trained weights into the cnnumpy model (to score both alike)."""
    recurrent, dense = model.layers
    recurrent.params["W_xh"][...] = net.rnn.weight_ih_l0.detach().numpy().T
    recurrent.params["W_hh"][...] = net.rnn.weight_hh_l0.detach().numpy().T
    recurrent.params["b_xh"][...] = net.rnn.bias_ih_l0.detach().numpy()
    recurrent.params["b_hh"][...] = net.rnn.bias_hh_l0.detach().numpy()
    dense.params["W"][...] = net.out.weight.detach().numpy().T
    dense.params["b"][...] = net.out.bias.detach().numpy()
    recurrent.reset_states()


class Trainer:
    """One framework's training, run in turns: ``turn(seconds)`` trains that long."""

    def __init__(self, name: str, step, train_ids, streams: int, K: int) -> None:
        self.name, self._step, self._K = name, step, K
        self._windows = char_rnn.consecutive_windows(train_ids, streams)
        self.steps, self.seconds, self.last_loss = 0, 0.0, float("nan")

    def turn(self, seconds: float) -> None:
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            x, y, restart = next(self._windows)
            x = one_hot(x.reshape(-1), self._K, np.float32).reshape(*x.shape, self._K)
            self.last_loss = self._step(x, y, restart)
            self.steps += 1
        self.seconds += time.perf_counter() - started


def cnnumpy_step(model):
    recurrent = model.layers[0]

    def step(x, y, restart):
        if restart:
            recurrent.reset_states()
        return model.train_on_batch(x, y)

    return step


def torch_step(net, optimiser, kind: str):
    import torch

    state = {"carried": None}
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(x, y, restart):
        if restart:
            state["carried"] = None
        optimiser.zero_grad()
        logits, carried = net(torch.from_numpy(x), state["carried"])
        loss = loss_fn(
            logits.reshape(-1, logits.shape[-1]), torch.from_numpy(y).reshape(-1)
        )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        optimiser.step()
        if kind == "lstm":
            state["carried"] = tuple(s.detach() for s in carried)
        else:
            state["carried"] = carried.detach()
        return float(loss.detach())

    return step


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("rnn", "lstm"), default="rnn")
    parser.add_argument("--text", help="a UTF-8 file (default: the stdlib corpus)")
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32, help="streams side by side")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--turn", type=float, default=30.0, help="seconds per turn")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print("JSON " + json.dumps({"environment": environment()}), flush=True)

    cnnumpy.seed(args.seed)
    text_args = argparse.Namespace(text=args.text, quick=False)
    vocabulary, ids = char_rnn.read_text(text_args)
    split = int(len(ids) * (1 - char_rnn.VALIDATION_FRACTION))
    train_ids, val_ids = ids[:split], ids[split:]
    K = len(vocabulary)
    lr = char_rnn.DEFAULT_LR
    model = char_rnn.build_model(args.model, K, args.hidden, 0, lr)
    net, optimiser = torch_twin(model, args.model)
    trainers = [
        Trainer("cnnumpy", cnnumpy_step(model), train_ids, args.batch, K),
        Trainer(
            "torch", torch_step(net, optimiser, args.model), train_ids, args.batch, K
        ),
    ]
    print(
        f"{args.model} ({args.hidden} units) on one-hot characters, K = {K}, "
        f"{model.count_params():,} parameters; {len(train_ids):,} training "
        f"characters, {len(val_ids):,} held out; {args.minutes} min each, in "
        f"alternate turns of {args.turn} s",
        flush=True,
    )
    budget = args.minutes * 60
    while any(t.seconds < budget for t in trainers):
        for t in trainers:
            if t.seconds < budget:
                t.turn(min(args.turn, budget - t.seconds))
                print(
                    f"  {t.name:8s} {t.seconds:7.1f} s  {t.steps:6d} steps  "
                    f"training bpc {t.last_loss / math.log(2):.3f}",
                    flush=True,
                )
    ours = bits_per_character(model, val_ids, char_rnn.SEQ_LENGTH, batch_size=64)
    twin = char_rnn.build_model(args.model, K, args.hidden, 0, lr)
    copy_back(net, twin)
    theirs = bits_per_character(twin, val_ids, char_rnn.SEQ_LENGTH, batch_size=64)
    per_step = args.batch * char_rnn.SEQ_LENGTH
    rows = []
    for t, bpc in zip(trainers, (ours, theirs), strict=True):
        row = {
            "framework": t.name,
            "model": args.model,
            "minutes": round(t.seconds / 60, 2),
            "steps": t.steps,
            "chars_per_s": t.steps * per_step / t.seconds,
            "validation_bpc": bpc,
        }
        rows.append(row)
        print("JSON " + json.dumps(row), flush=True)
    print("\n| framework | training time | steps | characters/s | validation bpc |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['framework']} | {r['minutes']:.1f} min | {r['steps']:,} | "
            f"{r['chars_per_s']:,.0f} | {r['validation_bpc']:.3f} |"
        )


if __name__ == "__main__":
    main()
