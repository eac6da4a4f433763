"""Data parallelism over MPI: R processes train one model, each on a slice of every batch.

    mpirun -np 2 minillm pretrain --data runs/default/shards --batch-size 8   # 4 rows a rank

    world = connect()                     # World(rank, size, comm); size 1 outside mpirun
    x, y = loader.next_batch()            # this rank's B / R rows of the global batch (shards.py)
    opt.accumulate(gpt.backward(cache))   # its gradient, into AdamW's flat buffer
    loss, stop = sum_step(world, opt, loss, stop)   # ONE Allreduce: gradient, loss, Ctrl-C
    opt.step(lr, clip=1.0)                # the same mean gradient everywhere: the same update
    check_same_weights(world, opt.flat_p, step)     # every --check-every steps (a CRC-32)

Why R ranks compute the single process's step: the loss is a mean over the global batch's
tokens, so its gradient is the mean of the R slices' gradients (each slice has B / R rows).
Summing R local gradients and dividing by R gives it, up to the order of float additions;
clipping and AdamW then run on identical inputs on every rank and leave identical weights.
Only the loader's (epoch, pos) and the weights are state, both the same on every rank, so a
checkpoint written by any R resumes on any R. Rank 0 alone writes checkpoints, metrics and
the progress bar; an error every rank meets alike (a bad flag, a diverged run) is printed
once, by rank 0; any other error on one rank aborts the job (MPI_Abort) rather than leave
the others waiting in an Allreduce forever.

mpi4py is optional (`pip install -e ".[mpi]"`, over an MPI such as Debian's openmpi-bin and
libopenmpi-dev): without mpirun, minillm never imports it. Read next: loop.py, where the
step calls sum_step. Run: python -m pytest tests/pretrain/test_dist.py
"""
import functools
import os
import sys
import traceback
import zlib
from dataclasses import dataclass

import numpy as np

from minillm.common import UserError, num_cores

# the variables launchers set in every process they start: Open MPI's mpirun, and the PMI
# of MPICH / Intel MPI / Slurm
SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
RANK_VARS = ("OMPI_COMM_WORLD_RANK", "PMI_RANK")
LOCAL_SIZE_VARS = ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS")
INSTALL = ('pip install "minillm[mpi]" (mpi4py; it builds against an MPI library, on Debian: '
           'apt-get install openmpi-bin libopenmpi-dev), or run without mpirun')
EXTRA_SLOTS = 2            # after the gradient in AdamW.grad_buf: the loss, a Ctrl-C vote
CHECK_EVERY = 100          # steps between weight checksums across the ranks (default)


@dataclass(frozen=True)
class World:
    """The processes training one model. A single process is World(): rank 0 of 1."""
    rank: int = 0
    size: int = 1
    comm: object = None        # mpi4py's MPI.COMM_WORLD; None in a single process
    local_size: int = 1        # ranks on this machine (they share its cores)

    @property
    def root(self):
        """Rank 0 writes checkpoints and metrics and prints; the others print only errors."""
        return self.rank == 0


def _env_int(names, default):
    for name in names:
        if os.environ.get(name, "").strip().isdigit():
            return int(os.environ[name])
    return default


def launched_size():
    """How many ranks the launcher started (1 outside mpirun)."""
    return _env_int(SIZE_VARS, 1)


def launched_rank():
    """This process's rank as the launcher's environment says (0 outside mpirun)."""
    return _env_int(RANK_VARS, 0)


@functools.lru_cache(maxsize=None)
def connect():
    """The World of this process: under mpirun with R > 1, MPI's (through mpi4py, imported
    here and only here), else a single process. Cached: MPI starts once per process.
    Under mpirun without mpi4py: a UserError saying how to install it (printed by rank 0)."""
    size = _env_int(SIZE_VARS, 1)
    if size <= 1:
        return World()
    try:
        from mpi4py import MPI  # optional: the [mpi] extra
    except ImportError as e:
        raise everywhere(UserError(f"started by mpirun with {size} processes, but mpi4py is "
                                   f"not installed ({e}): {INSTALL}"), launched_rank()) from None
    comm = MPI.COMM_WORLD
    local = comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()
    return World(rank=comm.Get_rank(), size=comm.Get_size(), comm=comm, local_size=local)


def check_batch(batch_size, ranks):
    """A UserError unless a batch of `batch_size` rows splits into `ranks` equal slices."""
    if batch_size % ranks:
        raise UserError(f"--batch-size {batch_size} does not split evenly over {ranks} ranks "
                        f"(mpirun -np {ranks}): give a multiple of {ranks}")


def default_threads(world):
    """Kernel threads for a rank when neither --threads nor MINILLM_THREADS says: this
    machine's cores shared among its ranks (mpirun's default binding gives each rank one
    core, and then this is 1). None for a single process: clib's default."""
    if world.size == 1 or os.environ.get("MINILLM_THREADS"):
        return None
    return max(1, num_cores() // world.local_size)


# ---- errors: printed once, and never a rank left waiting ----------------------------------

def everywhere(error, rank):
    """Mark a UserError that every rank raises alike (a bad setting, a diverged run, weights
    that differ): rank 0 prints it, the others stop quietly with the same exit status."""
    error.quiet = rank != 0
    error.on_every_rank = True
    return error


def run_ranks(world, fn, *args):
    """fn(*args) on this rank of `world`. An error met by every rank alike (marked by
    everywhere(), or found by agree()) propagates as usual; any other exception on one rank
    is printed and ends the whole job with MPI_Abort, because the other ranks would wait
    for this one in their next collective call forever."""
    if world.size == 1:
        return fn(*args)
    try:
        return fn(*args)
    except UserError as e:
        if getattr(e, "on_every_rank", False):
            raise
        print(f"minillm: error (rank {world.rank} of {world.size}): {e}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:               # a second Ctrl-C: no checkpoint, stop everything
        print(f"minillm: interrupted (rank {world.rank})", file=sys.stderr, flush=True)
    except BaseException:
        print(f"minillm: rank {world.rank} of {world.size} failed:", file=sys.stderr)
        traceback.print_exc()
        sys.stderr.flush()
    world.comm.Abort(2)


def agree(world, error=None):
    """Collective: each rank passes the UserError it met (or None); if any rank met one,
    every rank raises it (rank 0's own, else the first failing rank's, naming the rank)."""
    if world.size == 1:
        if error is not None:
            raise error
        return
    messages = world.comm.allgather(None if error is None else str(error))
    failed = [(r, m) for r, m in enumerate(messages) if m is not None]
    if failed:
        rank, message = failed[0]
        text = message if rank == 0 else f"rank {rank} of {world.size}: {message}"
        raise everywhere(UserError(text), world.rank) from None


# ---- the step's one collective, and the weight check --------------------------------------

def sum_step(world, optimizer, loss, stop, share=None):
    """After this rank's micro-batches went into optimizer's buffer: ONE Allreduce sums the
    flat gradient over the ranks together with the loss and the Ctrl-C vote (the optimizer
    was made with extra=EXTRA_SLOTS). Returns (the global batch's mean loss, True when any
    rank was interrupted: then all of them stop after this step, at the same step).
    share: this rank's weight in the batch's mean when the slices differ in size (SFT: its
    supervised tokens over the whole batch's); None: equal slices, 1/R each."""
    optimizer.extra[0] = loss if share is None else loss * share
    optimizer.extra[1] = 1.0 if stop else 0.0
    optimizer.reduce_grads(lambda buf: allreduce_sum(world, buf), world.size, share)
    total = float(optimizer.extra[0])
    return (total / world.size if share is None else total), bool(optimizer.extra[1] > 0)


def allreduce_sum(world, buf):
    """buf (a contiguous float32 array) replaced by its elementwise sum over the ranks."""
    from mpi4py import MPI  # only reached under mpirun, where connect() imported it
    world.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)


def sum_over_ranks(world, value):
    """A float summed over the ranks (the validation loss's parts); itself in one process."""
    return world.comm.allreduce(value) if world.size > 1 else value


def checksum(flat):
    """CRC-32 of an array's bytes: any differing bit gives a different number (~5 ms for
    the speedrun model's 4.3M float32 weights)."""
    return zlib.crc32(np.ascontiguousarray(flat).view(np.uint8))


def check_same_weights(world, flat_params, step):
    """Collective: every rank's weights must be bit for bit rank 0's, or every rank raises a
    UserError naming the ranks that differ. They can differ only if the ranks computed
    differently (another build of the kernels, another CPU) or memory was corrupted."""
    if world.size == 1:
        return
    sums = world.comm.allgather(checksum(flat_params))
    differ = [r for r, c in enumerate(sums) if c != sums[0]]
    if differ:
        raise everywhere(UserError(
            f"after step {step} the weights of rank(s) {', '.join(map(str, differ))} differ from "
            f"rank 0's (CRC-32 {sums[differ[0]]:08x} vs {sums[0]:08x}): the ranks no longer train one "
            "model. Run every rank with the same minillm build on the same kind of CPU, then "
            "--resume from the last checkpoint"), world.rank)
