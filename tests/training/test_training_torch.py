"""Training against PyTorch: same weights in, same weights out; state dict interop."""

import numpy as np
import pytest
import torch

import cnnumpy
from cnnumpy import zoo
from cnnumpy.layers import BatchNorm, Conv2D, Dense, Flatten, MaxPool2D, ReLU
from cnnumpy.optimizers import SGD, Adam
from cnnumpy.saving import from_torch_state_dict, to_torch_state_dict

nn = torch.nn


def twin_pair():
    """A small CNN and its PyTorch twin.

    No conv bias before BatchNorm: its gradient is zero up to rounding, which Adam would
    amplify into noise.
    """
    cnnumpy.seed(0)
    ours = cnnumpy.Sequential(
        [
            Conv2D(4, 3, padding=1, use_bias=False),
            BatchNorm(),
            ReLU(),
            MaxPool2D(2),
            Conv2D(6, 3, stride=2),
            ReLU(),
            Flatten(),
            Dense(5),
        ],
        input_shape=(2, 10, 10),
    )
    theirs = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(24, 5),
    )
    return ours, theirs


@pytest.mark.torch
@pytest.mark.parametrize(
    "make_opt, make_torch_opt",
    [
        (
            lambda: SGD(lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True),
            lambda p: torch.optim.SGD(
                p, lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True
            ),
        ),
        (lambda: Adam(lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
    ],
)
def test_five_training_steps_match_pytorch(make_opt, make_torch_opt):
    ours, theirs = twin_pair()
    ours.astype(np.float64)
    theirs.double()
    theirs.load_state_dict(
        {k: torch.from_numpy(v) for k, v in to_torch_state_dict(ours).items()}
    )
    ours.compile(optimizer=make_opt(), loss="cross_entropy")
    opt = make_torch_opt(theirs.parameters())
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.standard_normal((8, 2, 10, 10))
        y = rng.integers(0, 5, 8)
        loss = ours.train_on_batch(x, y)
        opt.zero_grad()
        torch_loss = nn.functional.cross_entropy(
            theirs(torch.from_numpy(x)), torch.from_numpy(y)
        )
        torch_loss.backward()
        opt.step()
        assert loss == pytest.approx(torch_loss.item(), rel=1e-10)
    final = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    for name, value in to_torch_state_dict(ours).items():
        if name.endswith("num_batches_tracked"):
            continue
        assert value.shape == final[name].shape
        # float64 throughout: only summation order differs
        np.testing.assert_allclose(
            value, final[name], rtol=1e-9, atol=1e-11, err_msg=name
        )


def lenet5_torch():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5),
        nn.Tanh(),
        nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.Tanh(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(256, 120),
        nn.Tanh(),
        nn.Linear(120, 84),
        nn.Tanh(),
        nn.Linear(84, 10),
    )


@pytest.mark.torch
def test_lenet5_trained_in_pytorch_predicts_the_same_in_cnnumpy():
    torch.manual_seed(0)
    theirs = lenet5_torch()
    opt = torch.optim.SGD(theirs.parameters(), lr=0.1)
    rng = np.random.default_rng(0)
    x = rng.random((64, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(
            theirs(torch.from_numpy(x)), torch.from_numpy(y)
        ).backward()
        opt.step()
    ours = zoo.lenet5()
    ours.compile(loss="cross_entropy")
    from_torch_state_dict(
        ours, theirs.state_dict()
    )  # torch tensors accepted as they are
    with torch.no_grad():
        expected = torch.softmax(theirs(torch.from_numpy(x)), dim=1).numpy()
    np.testing.assert_allclose(ours.predict(x), expected, rtol=1e-5, atol=1e-6)
    assert (ours.predict(x).argmax(1) == expected.argmax(1)).all()


@pytest.mark.torch
def test_state_dict_round_trip_and_errors():
    ours, theirs = twin_pair()
    sd = to_torch_state_dict(ours)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    back = {k: v.numpy() for k, v in theirs.state_dict().items()}
    fresh, _ = twin_pair()
    cnnumpy.seed(9)
    fresh = cnnumpy.Sequential(
        [type(layer).from_config(layer.get_config()) for layer in ours.layers],
        input_shape=(2, 10, 10),
    )
    from_torch_state_dict(fresh, back)
    for a, b in zip(ours.get_weights(), fresh.get_weights(), strict=True):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    bad = dict(back)
    bad["7.weight"] = np.zeros((5, 23), np.float32)
    with pytest.raises(
        ValueError, match=r"7.weight has shape \(23, 5\), expected \(24, 5\)"
    ):
        from_torch_state_dict(fresh, bad)
    missing = {k: v for k, v in back.items() if k != "4.bias"}
    with pytest.raises(ValueError, match="missing entry '4.bias'"):
        from_torch_state_dict(fresh, missing)
