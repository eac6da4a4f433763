"""Data parallelism (pretrain/dist.py): the loader's slices, the one Allreduce, the checks
that stop every rank alike, the install hint without mpi4py; and, behind `slow`, real
2-rank runs under mpirun against one process (weights within 1e-5, resume across R)."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from mpirun import minillm_on_ranks
from tiny_train import tiny as train_tiny
from minillm import clib
from minillm.cli import main
from minillm.common import UserError
from minillm.nn.checkpoint import load_checkpoint
from minillm.nn.optim import AdamW
from minillm.pretrain import dist
from minillm.pretrain.shards import BatchLoader
from minillm.pretrain.train import TrainConfig, train

@pytest.fixture(autouse=True)
def single_process(monkeypatch):
    """Each test starts outside mpirun with a fresh connect(), and keeps the thread count."""
    for name in dist.SIZE_VARS + dist.RANK_VARS + dist.LOCAL_SIZE_VARS:
        monkeypatch.delenv(name, raising=False)
    dist.connect.cache_clear()
    threads = clib.get_num_threads()
    yield
    dist.connect.cache_clear()
    clib.set_num_threads(threads)


def tiny(text_file, out, **kw):
    """test_train.py's tiny model (2 layers x 32 wide, context 32, a global batch of 8) on
    its fixed text, for 20 steps with a validation loss every 10."""
    return train_tiny(text_file, out, **{"steps": 20, "eval_every": 10, **kw})


class FakeComm:
    """What an mpi4py communicator gives the functions under test: allgather returns the
    values every rank would contribute (`gathered`), Abort records its code."""

    def __init__(self, gathered=None):
        self.gathered, self.aborted = gathered, None

    def allgather(self, value):
        return self.gathered

    def Abort(self, code):
        self.aborted = code


# ---- the loader: each rank a disjoint slice of the same global batch --------------------

@pytest.mark.parametrize("ranks", [2, 4])
def test_rank_slices_make_up_the_single_loaders_batches(text_file, ranks):
    whole = BatchLoader(text_file, 8, 32, "train", seed=3)
    parts = [BatchLoader(text_file, 8, 32, "train", seed=3, rank=r, ranks=ranks) for r in range(ranks)]
    steps = whole.n_windows // 8 + 3                      # across an epoch boundary
    for _ in range(steps):
        x, y = whole.next_batch()                                          # (8, 32) each
        slices = [p.next_batch() for p in parts]                           # (8 / R, 32) each
        assert all(sx.shape == (8 // ranks, 32) for sx, _ in slices)
        np.testing.assert_array_equal(np.concatenate([sx for sx, _ in slices]), x)
        np.testing.assert_array_equal(np.concatenate([sy for _, sy in slices]), y)
    assert whole.epoch == 1 and all(p.state() == whole.state() for p in parts)


def test_a_batch_that_does_not_split_is_a_user_error(text_file):
    with pytest.raises(UserError, match="--batch-size 6 does not split evenly over 4 ranks"):
        BatchLoader(text_file, 6, 32, rank=0, ranks=4)


# ---- the one Allreduce ---------------------------------------------------------------------

def test_reduce_grads_sums_the_flat_buffer_once_and_takes_the_mean(rng):
    """Two ranks with equal gradients: the summed buffer, halved, is one rank's gradient, so
    the update is a single process's bit for bit; the extra slots ride along."""
    params = {"w": rng.standard_normal((5, 7)).astype(np.float32),
              "norm": rng.standard_normal(7).astype(np.float32)}
    grads = {n: rng.standard_normal(p.shape).astype(np.float32) for n, p in params.items()}
    alone = AdamW({n: p.copy() for n, p in params.items()}, weight_decay=0.1)
    pair = AdamW({n: p.copy() for n, p in params.items()}, weight_decay=0.1, extra=2)
    calls = []

    def allreduce(buf):                        # what MPI's sum over 2 identical ranks gives
        calls.append(buf.size)
        buf *= 2

    alone.accumulate(grads)
    pair.accumulate(grads)
    pair.extra[:] = (1.5, 0.0)
    pair.reduce_grads(allreduce, ranks=2)
    assert calls == [pair.size + 2]            # ONE call over the flat gradient and the slots
    assert list(pair.extra) == [3.0, 0.0]
    a, b = alone.step(1e-2, clip=1.0), pair.step(1e-2, clip=1.0)
    assert a.grad_norm == pytest.approx(b.grad_norm, rel=1e-12)
    assert np.array_equal(alone.flat_p, pair.flat_p)


# ---- the checks: every rank stops alike, the error printed once ---------------------------

def test_differing_weights_stop_every_rank_naming_the_ranks():
    weights = np.arange(10, dtype=np.float32)
    other = weights.copy()
    other[3] = np.nextafter(other[3], np.float32(np.inf))    # one bit of one weight
    sums = [dist.checksum(weights), dist.checksum(weights), dist.checksum(other)]
    for rank in range(3):
        world = dist.World(rank=rank, size=3, comm=FakeComm(sums))
        with pytest.raises(UserError, match=r"after step 7 the weights of rank\(s\) 2 differ") as e:
            dist.check_same_weights(world, weights, 7)
        assert e.value.quiet == (rank != 0)                  # rank 0 prints it, once
    dist.check_same_weights(dist.World(rank=1, size=3, comm=FakeComm(sums[:2] * 2)), weights, 7)


def test_agree_raises_one_ranks_error_on_every_rank():
    messages = [None, "data not found: x.txt"]
    for rank in range(2):
        world = dist.World(rank=rank, size=2, comm=FakeComm(messages))
        with pytest.raises(UserError, match="^rank 1 of 2: data not found: x.txt$") as e:
            dist.agree(world, UserError(messages[rank]) if messages[rank] else None)
        assert e.value.quiet == (rank != 0)
    dist.agree(dist.World(rank=0, size=2, comm=FakeComm([None, None])))
    with pytest.raises(UserError, match="^bad$"):            # one process: the error itself
        dist.agree(dist.World(), UserError("bad"))


def test_an_error_on_one_rank_aborts_the_job(capsys):
    """Other ranks would wait for this one in their next Allreduce: MPI_Abort ends them."""
    def fails(kind):
        raise kind("disk full")

    for kind in (UserError, OSError, KeyboardInterrupt):
        comm = FakeComm()
        dist.run_ranks(dist.World(rank=1, size=2, comm=comm), fails, kind)
        assert comm.aborted == 2
        err = capsys.readouterr().err
        assert "rank 1" in err and ("disk full" in err or kind is KeyboardInterrupt)
    comm = FakeComm()
    with pytest.raises(UserError):                           # met by every rank: no abort
        dist.run_ranks(dist.World(rank=1, size=2, comm=comm),
                       lambda: (_ for _ in ()).throw(dist.everywhere(UserError("x"), 1)))
    assert comm.aborted is None


# ---- without mpi4py ------------------------------------------------------------------------

def test_without_mpirun_no_mpi4py_is_needed(text_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)         # `import mpi4py` fails
    assert dist.connect() == dist.World()
    r = train(tiny(text_file, tmp_path / "ck", steps=3, eval_every=0))
    assert r.steps == 3 and r.time_split["allreduce"] == 0.0


@pytest.mark.parametrize("rank", [0, 1])
def test_under_mpirun_without_mpi4py_one_line_says_how_to_install(text_file, tmp_path, monkeypatch,
                                                                    capsys, rank):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", str(rank))
    code = main(["pretrain", "--data", str(text_file), "--out", str(tmp_path / "ck"), "--steps", "2"])
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "ck").exists()
    if rank == 0:
        assert err.count("\n") == 1 and err.startswith("minillm: error: started by mpirun with 2")
        assert 'pip install "minillm[mpi]"' in err
    else:
        assert err == ""                                     # rank 0 says it


# ---- real ranks: mpirun -np 2 (slow; CI installs Open MPI and mpi4py) ----------------------

def pretrain_on_2_ranks(config, *flags):
    """`mpirun -np 2 minillm pretrain` with `config`'s settings; returns stderr's lines."""
    args = ["--data", config.data, "--out", config.out, "--n-layer", config.n_layer,
            "--n-head", config.n_head, "--n-embd", config.n_embd, "--context-len", config.context_len,
            "--batch-size", config.batch_size, "--steps", config.steps, "--lr", config.lr,
            "--warmup", config.warmup, "--eval-every", config.eval_every,
            "--eval-batches", config.eval_batches, "--ckpt-every", "0", "--threads", "1",
            "--no-progress", "--check-every", "5", *flags]
    if config.min_lr is not None:
        args += ["--min-lr", config.min_lr]
    return minillm_on_ranks("pretrain", *args)


def relative_difference(a, b):
    """The largest |a - b| of any tensor over the largest |a| of that tensor."""
    return max(float(np.abs(a[n] - b[n]).max() / np.abs(a[n]).max()) for n in a)


def metrics(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


@pytest.mark.slow
def test_two_ranks_train_the_single_process_model(text_file, tmp_path):
    """20 steps, global batch 8: 2 ranks of 4 rows each end within 1e-5 (relative) of one
    process's weights (measured: 2.2e-6; the float sums run in another order); the loss
    curve and validation losses agree; rank 0 alone writes metrics and prints."""
    one = train(tiny(text_file, tmp_path / "one" / "base"))
    lines = pretrain_on_2_ranks(tiny(text_file, tmp_path / "two" / "base"))
    _, p1, _ = load_checkpoint(tmp_path / "one" / "base")
    _, p2, meta = load_checkpoint(tmp_path / "two" / "base")
    assert relative_difference(p1, p2) < 1e-5
    assert meta["train"]["ranks"] == 2 and meta["step"] == 20
    recs = metrics(tmp_path / "two" / "metrics.jsonl")
    assert [r["step"] for r in recs] == list(range(1, 21))          # written once, by rank 0
    for r in recs:
        assert r["loss"] == pytest.approx(one.losses[r["step"]], rel=1e-5)
    assert {r["step"]: r["val_loss"] for r in recs if "val_loss" in r} == pytest.approx(one.val_losses, rel=1e-5)
    assert not any(line.startswith("[1,1]") for line in lines), lines          # rank 1: silent
    assert any(line.startswith("[1,0]") and "on 2 ranks (4 sequences each)" in line for line in lines)


@pytest.mark.slow
def test_a_checkpoint_resumes_on_any_number_of_ranks(text_file, tmp_path):
    """10 steps on 2 ranks then 10 in one process, and 10 in one process then 10 on 2 ranks:
    both end where 20 steps in one process do, within 1e-5. (A constant learning rate after
    warmup, min_lr = lr, so that a 10-step run is the first half of a 20-step one.)"""
    ref = tiny(text_file, tmp_path / "ref" / "base", min_lr=3e-3)
    train(ref)
    _, p_ref, _ = load_checkpoint(ref.out)

    a = tiny(text_file, tmp_path / "a" / "base", steps=10, min_lr=3e-3)
    pretrain_on_2_ranks(a)
    train(TrainConfig(resume=a.out, steps=20, progress=False))
    b = tiny(text_file, tmp_path / "b" / "base", steps=10, min_lr=3e-3)
    train(b)
    pretrain_on_2_ranks(tiny(text_file, b.out, steps=20, min_lr=3e-3), "--resume")
    for out in (a.out, b.out):
        _, params, meta = load_checkpoint(out)
        assert meta["step"] == 20
        assert relative_difference(p_ref, params) < 1e-5, out
        assert [r["step"] for r in metrics(Path(out).parent / "metrics.jsonl")] == list(range(1, 21))
