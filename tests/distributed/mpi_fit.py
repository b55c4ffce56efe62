"""Training runs for ``test_mpi.py``, launched by ``mpiexec -n N python mpi_fit.py``.

    mpi_fit.py equal OUT   LeNet-5, then a BatchNorm + Dropout model, 2 epochs each of
                           batches of 37 (150 examples: 37 does not divide them, and the
                           last batch holds 2); then the second model again, 1 epoch
                           with ``resume_from=OUT/checkpoint`` and, rebuilt from
                           another seed, resumed to 2 epochs. Every rank saves
                           ``OUT/<run>-rank<r>.npz`` (weights and history).
    mpi_fit.py fail OUT R  the second model, 3 epochs with ``resume_from``; rank R
                           raises in the 3rd batch of the 2nd epoch.

``fit`` finds MPI from the launcher's environment (no ``distributed=`` here). The test
trains the same runs in one process with :func:`train` and compares.
"""

import sys
from pathlib import Path

import numpy as np

import cnnumpy
from cnnumpy import layers as L
from cnnumpy import zoo

N, BATCH, EPOCHS = 150, 37, 2


def lenet5(seed: int = 3):
    cnnumpy.seed(seed)
    model = zoo.get("lenet5", input_shape=(1, 28, 28), num_classes=10)
    return _compiled(model)


def bn_dropout(seed: int = 3):
    """BatchNorm on maps and on features, a seeded Dropout and an unseeded one (its
    generator spawned from the global one, seeded here)."""
    cnnumpy.seed(seed)
    model = cnnumpy.Sequential(
        [
            L.Conv2D(4, 3, padding=1),
            L.BatchNorm(),
            L.ReLU(),
            L.MaxPool2D(2),
            L.Dropout(0.25, seed=7),
            L.Conv2D(6, 3),
            L.Tanh(),
            L.Flatten(),
            L.Dense(16),
            L.BatchNorm(),
            L.ReLU(),
            L.Dropout(0.2),
            L.Dense(5),
        ],
        input_shape=(2, 12, 12),
    )
    return _compiled(model)


def _compiled(model):
    model.astype("float64")
    model.compile(cnnumpy.optimizers.SGD(0.05, momentum=0.9), "cross_entropy")
    return model


def data(name: str):
    """``(x, y, validation pair or None)`` for the model ``name``."""
    rng = np.random.default_rng(0)
    if name == "lenet5":
        return rng.standard_normal((N, 1, 28, 28)), rng.integers(0, 10, N), None
    x = rng.standard_normal((N + 40, 2, 12, 12))
    y = rng.integers(0, 5, N + 40)
    return x[:N], y[:N], (x[N:], y[N:])


MODELS = {"lenet5": lenet5, "bn_dropout": bn_dropout}


def train(name: str, epochs: int = EPOCHS, model=None, **fit_args):
    """The model ``name`` after ``epochs`` epochs of the runs above."""
    model = MODELS[name]() if model is None else model
    x, y, validation = data(name)
    model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=BATCH,
        validation_data=validation,
        seed=5,
        verbose=0,
        **fit_args,
    )
    return model


def arrays(model) -> dict:
    """The weights and history of ``model``, as ``np.savez`` takes them."""
    saved = {
        f"w{i}.{key}": value
        for i, layer in enumerate(model.get_weights())
        for key, value in layer.items()
    }
    for key, values in model.history.history.items():
        saved[f"history.{key}"] = np.array(values)
    return saved


class FailAt(cnnumpy.callbacks.Callback):
    """Raise on rank ``rank`` at batch ``batch`` of epoch ``epoch`` (0-based)."""

    def __init__(self, rank: int, epoch: int, batch: int, own_rank: int) -> None:
        self.target, self.own_rank = (rank, epoch, batch), own_rank
        self.current_epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.current_epoch = epoch

    def on_batch_begin(self, batch, logs=None):
        if (self.own_rank, self.current_epoch, batch) == self.target:
            raise RuntimeError(f"rank {self.own_rank} fails on purpose")


def main(argv: list[str]) -> None:
    from mpi4py import MPI

    rank = MPI.COMM_WORLD.Get_rank()
    mode, out = argv[0], Path(argv[1])
    if mode == "equal":
        for name in MODELS:
            np.savez(out / f"{name}-rank{rank}.npz", **arrays(train(name)))
        folder = out / "checkpoint"
        train("bn_dropout", 1, resume_from=folder)
        resumed = train("bn_dropout", 2, bn_dropout(seed=11), resume_from=folder)
        np.savez(out / f"resumed-rank{rank}.npz", **arrays(resumed))
    elif mode == "fail":
        failing = FailAt(int(argv[2]), 1, 2, rank)
        train("bn_dropout", 3, resume_from=out / "checkpoint", callbacks=[failing])
        # never reached: a rank's error ends this process, whose next line would
        # otherwise take a failed run for a finished one
        (out / f"after-fit-rank{rank}").touch()
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
