"""Backup and restore.

A training process killed with SIGKILL mid-epoch resumes bit-identically.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    import cnnumpy
    from cnnumpy.callbacks import LambdaCallback
    from cnnumpy.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU

    out, run_dir, slow = sys.argv[1], sys.argv[2], sys.argv[3] == "slow"
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    cnnumpy.seed(0)
    model = cnnumpy.Sequential([Conv2D(4, 3, padding=1), ReLU(), MaxPool2D(2),
                                Flatten(), Dropout(0.3), Dense(3)],
                               input_shape=(1, 8, 8))
    model.compile(optimizer=cnnumpy.optimizers.SGD(lr=0.05, momentum=0.9),
                  loss="cross_entropy")

    def pace(batch, logs):
        if slow:
            print(f"batch {batch}", flush=True)
            time.sleep(0.05)

    model.fit(x, y, epochs=6, batch_size=8, seed=1, verbose=0, resume_from=run_dir,
              augment=lambda xb, r: xb + r.normal(0, 0.01, xb.shape).astype(xb.dtype),
              callbacks=[LambdaCallback(on_batch_end=pace)])
    np.savez(out, *[v for layer in model.layers for v in layer.params.values()])
    print("done", len(model.history.epoch), flush=True)
""")


def run(script, *args, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(script), *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    straight = run(script, tmp_path / "straight.npz", tmp_path / "run_a", "fast")
    assert straight.wait(timeout=120) == 0

    victim = run(script, tmp_path / "never.npz", tmp_path / "run_b", "slow")
    checkpoint = tmp_path / "run_b" / "checkpoint.safetensors"
    deadline = time.time() + 60
    batches_after_checkpoint = 0
    for line in victim.stdout:  # wait until epoch 2 is saved and epoch 3 is half done
        if checkpoint.exists() and line.startswith("batch"):
            batches_after_checkpoint += 1
        if batches_after_checkpoint >= 12 or time.time() > deadline:
            break
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL and checkpoint.exists()
    assert not (tmp_path / "never.npz").exists()
    # the killed run's lock file stays, unlocked (the kernel released its flock)
    leftovers = sorted(p.name for p in (tmp_path / "run_b").iterdir())
    assert leftovers == [".lock", "checkpoint.safetensors"], leftovers

    resumed = run(script, tmp_path / "resumed.npz", tmp_path / "run_b", "fast")
    output, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0 and "done 6" in output
    a, b = np.load(tmp_path / "straight.npz"), np.load(tmp_path / "resumed.npz")
    assert len(a.files) == len(b.files) == 4
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key])
