"""Why ``use_processes`` keeps its own transport: what a lost worker does to the caller.

``model.use_processes(n)`` runs inside the user's own process (a script, a notebook
kernel holding a model and its data). Putting it on MPI means that process starting
its workers itself with ``MPI.COMM_SELF.Spawn`` and merging them into one
communicator (MPI's dynamic processes; ``mpiexec`` is not involved). This script
tries it with the ``[mpi]`` extra (mpi4py, MPICH's wheel) and, against it, the
process replicas:

- ``ok``: five steps of one allreduce;
- ``killed``: the worker is killed (SIGKILL) before the third step, as the kernel's
  out-of-memory killer would;
- ``raises`` (MPI only): the worker raises before the third step, as a bug would.

Each case runs in a fresh Python process (the "user's session"); the script prints
whether that session was still alive after the fault, with its exit status and what
it printed.

    .venv/bin/python benchmarks/processes_on_mpi.py
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = ("ok", "killed", "raises")
HANG = 20  # seconds a session may take before it counts as hung

# the user's session, MPI way: spawn one worker, merge, five allreduces; the worker
# fails before the third step in the chosen way
MPI_SESSION = textwrap.dedent(
    """
    import sys, numpy as np
    from mpi4py import MPI
    case = sys.argv[1]
    worker = __file__.replace("session.py", "worker.py")
    child = MPI.COMM_SELF.Spawn(sys.executable, args=[worker, "-", case], maxprocs=1)
    comm = child.Merge(high=False)
    comm.Set_errhandler(MPI.ERRORS_RETURN)  # errors as exceptions, if MPI can
    buffer = np.ones(1000)
    try:
        for step in range(5):
            comm.Allreduce(MPI.IN_PLACE, buffer)
        print("session: 5 steps done", flush=True)
    except Exception as exc:
        print("session: caught", type(exc).__name__, flush=True)
    print("session: still alive, the model still here", flush=True)
    """
)
MPI_WORKER = textwrap.dedent(
    """
    import os, sys, numpy as np
    from mpi4py import MPI
    comm = MPI.Comm.Get_parent().Merge(high=True)
    buffer = np.ones(1000)
    for step in range(5):
        if step == 2 and sys.argv[2] == "killed":
            os.kill(os.getpid(), 9)
        if step == 2 and sys.argv[2] == "raises":
            raise RuntimeError("a bug in the worker")
        comm.Allreduce(MPI.IN_PLACE, buffer)
    """
)
# the user's session, replicas way: a BatchNorm model split over 2 processes, the
# replica killed before the third step (a replica that raises answers with its
# traceback, which the caller raises as a ReplicaError: tests/distributed)
REPLICA_SESSION = textwrap.dedent(
    """
    import os, signal, sys, numpy as np
    import cnnumpy
    from cnnumpy import layers as L
    from cnnumpy.distributed.replicas import ReplicaError
    case = sys.argv[1]
    cnnumpy.seed(0)
    model = cnnumpy.Sequential(
        [L.Conv2D(8, 3), L.BatchNorm(), L.ReLU(), L.Flatten(), L.Dense(10)],
        input_shape=(1, 12, 12),
    )
    model.compile("sgd", "cross_entropy")
    x = np.random.default_rng(0).standard_normal((64, 1, 12, 12)).astype("float32")
    y = np.arange(64) % 10
    try:
        with model.use_processes(2) as group:
            for step in range(5):
                if step == 2 and case == "killed":
                    os.kill(group._children[0].pid, signal.SIGKILL)
                model.train_on_batch(x, y)
        print("session: 5 steps done", flush=True)
    except ReplicaError as exc:
        print("session: caught ReplicaError:", str(exc).splitlines()[0], flush=True)
    model.train_on_batch(x, y)
    print("session: still alive, the model still here", flush=True)
    """
)


def session(folder: Path, code: str, case: str) -> tuple[str, str]:
    """Run ``code`` as a fresh session in ``folder``: (exit status, last line)."""
    script = folder / "session.py"
    script.write_text(code)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # mpiexec, which MPICH starts for a spawn, from the environment's bin/ (the extra)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    with subprocess.Popen(
        [sys.executable, str(script), case],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,  # MPICH's clean-up kills the whole process group
    ) as proc:
        try:
            out, _ = proc.communicate(timeout=HANG)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the session and what it started
            proc.communicate()
            return f"hung: no answer after {HANG} s (killed then)", "(nothing)"
    code = proc.returncode
    status = f"killed by signal {-code}" if code < 0 else f"exit {code}"
    lines = [line.removeprefix("session: ") for line in out.strip().splitlines()]
    return status, "; ".join(lines) or "(nothing)"


def main() -> None:
    print("| way | case | the session after the fault | what it printed |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "worker.py").write_text(MPI_WORKER)
        for case in CASES:
            status, last = session(folder, MPI_SESSION, case)
            print(f"| MPI Spawn | {case} | {status} | {last} |", flush=True)
        for case in ("ok", "killed"):
            status, last = session(folder, REPLICA_SESSION, case)
            print(f"| replicas | {case} | {status} | {last} |", flush=True)


if __name__ == "__main__":
    main()
