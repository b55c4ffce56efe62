"""Training split over processes: each process runs one slice of every batch.

Two ways, behind one communicator interface
(:mod:`~cnnumpy.distributed.communicator`: ``rank``, ``size``, an in-place
``allreduce`` and a ``broadcast``), which BatchNorm and Dropout talk to
(:mod:`cnnumpy.sync`):

- **process replicas** (``model.use_processes(n)``, ``cnnumpy train --processes N``):
  the caller and ``n - 1`` replica processes of one machine, through shared memory
  and pipes; this docstring says how below;
- **MPI ranks** (``mpiexec -n N cnnumpy train ...``, or ``fit`` in a program that
  ``mpiexec`` started): :mod:`~cnnumpy.distributed.data_parallel` over
  :mod:`~cnnumpy.distributed.mpi` (mpi4py), on one machine or many.

Why processes and not more threads: the kernels' threads (``engine/kernels/threads.py``)
need Python's GIL between two NumPy calls. Measured on this project's 2-core virtual
machine, two threads each copying 200 KB at a time ran 2x SLOWER together than one
alone (each hand-over of the GIL costs tens of microseconds); only calls of several MB
ran side by side at full speed. A small network (LeNet-5 at batch 64) is hundreds of
short NumPy calls, so its step was no faster on two threads than on one. Two
processes have a GIL each: LeNet-5 at batch 32 in each of two processes ran a step in
6.4-7.2 ms, against 10-12 ms for batch 64 in one process with threads.

How one training step runs with ``P`` processes (the caller and ``P - 1`` replicas):

1. the caller copies the weights into a shared block, and each replica's slice of the
   batch (inputs and targets) into that replica's own shared block;
2. every process runs forward, loss and backward on its slice (the caller included),
   each on one core: the caller's kernels run without helper threads meanwhile;
3. each replica writes its gradients and outputs into its block; the caller adds them
   up, weighted by slice size, so that the result is the gradient of the loss's mean
   over the whole batch (the same as one process computes, up to float rounding);
4. the caller's optimiser updates the weights, once.

Inference (``predict``, ``evaluate``) splits the batch the same way. Two layers depend
on the whole batch in training (:mod:`cnnumpy.sync`): BatchNorm adds its per-channel
sums up over the processes mid-step (each replica sends its part through its pipe and
waits for the total: two exchanges in the forward pass, one in the backward), and
Dropout draws the whole batch's mask in every process from a generator whose state the
caller sends with the step, each keeping its own rows. So a model with either trains
split too, with the numbers of one process up to float rounding. Replicas are plain
``python -c`` processes (never ``multiprocessing``, which would re-run an unguarded
user script), rebuilt from the model's config, so only cnnumpy's own layers can be
replicated.

Each replica talks to the caller through a socket (commands, and the descriptors of the
shared memory) and a pipe (answers). The shared memory is a file with no name
(``memfd_create``; elsewhere a temporary file unlinked the moment it is made), mapped by
both sides and handed over by descriptor, never by path: whenever either side is killed,
no file is left behind. What goes wrong becomes a ``ReplicaError`` naming the replica's
pid, after which the group is closed and the model runs alone:

- a replica that dies (its pipe ends);
- a replica that stays silent (stopped by SIGSTOP, stuck) longer than
  ``max(timeout, SLOW_FACTOR x the slowest step seen, SLOW_FACTOR x this step's time
  so far)`` (the caller runs a slice as big meanwhile); ``timeout`` is
  ``STEP_TIMEOUT`` unless ``use_processes(timeout=)`` or the environment variable
  ``CNNUMPY_REPLICA_TIMEOUT`` sets it. The silent replica is killed (SIGKILL stops a
  stopped process too).

How many processes: at most one per core this process may run on (more would only
take turns on the same cores), refused with a ``ValueError`` above that. A batch of
``n`` is split over ``min(processes, n // MIN_SLICE)`` processes, so a small batch
(the last one of an epoch, say) still uses the replicas it can feed; the command line,
which knows its batch size, refuses ``--processes`` above ``batch_size // MIN_SLICE``,
since the replicas beyond would never train.

Where the code is:

- :mod:`~cnnumpy.distributed.replicas`: the caller's group (``use_processes``,
  ``Replicas``, ``ReplicaError``), the names the model and the command line use;
- :mod:`~cnnumpy.distributed.process`: one replica process as the caller sees it
  (start it, talk to it, stop it);
- :mod:`~cnnumpy.distributed.worker`: the replica's side (it builds the model and runs
  its slices); the only module here that imports :mod:`cnnumpy.model`;
- :mod:`~cnnumpy.distributed.mirror`: what of the model crosses over (config, weights,
  gradients, Dropout's and BatchNorm's per-step state);
- :mod:`~cnnumpy.distributed.transport`: the bytes (messages, descriptors, shared
  memory);
- :mod:`~cnnumpy.distributed.limits`: the numbers (processes, slice size, timeouts);
- :mod:`~cnnumpy.distributed.communicator`: the interface both ways implement;
- :mod:`~cnnumpy.distributed.mpi` and :mod:`~cnnumpy.distributed.data_parallel`:
  the MPI ranks' communicator, and how ``fit`` splits every batch over them.
"""
