"""Running minillm on 2 local ranks under Open MPI's mpirun, for the data-parallel tests
(tests/pretrain/test_dist.py, tests/chat/test_sft.py). CI installs mpirun and mpi4py."""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_RANK", "PMI_RANK",
               "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS")


def mpirun_or_skip(ranks=2):
    """The mpirun command line for `ranks` local ranks; a skip naming what is missing (a
    failure in CI, which installs both)."""
    missing = [what for what, ok in (("mpirun (apt-get install openmpi-bin libopenmpi-dev)",
                                      shutil.which("mpirun")),
                                     ('mpi4py (pip install -e ".[mpi]")', importlib.util.find_spec("mpi4py")))
               if not ok]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI installs Open MPI and mpi4py, but {' and '.join(missing)} is missing")
        pytest.skip(f"needs {' and '.join(missing)}")
    # --bind-to none: the ranks keep this process's CPU affinity (taskset) instead of
    # Open MPI's one core each; --tag-output prefixes every line with the rank that wrote it
    cmd = ["mpirun", "-np", str(ranks), "--oversubscribe", "--bind-to", "none", "--tag-output"]
    return cmd + (["--allow-run-as-root"] if os.geteuid() == 0 else [])


def minillm_on_ranks(*args, ranks=2):
    """`mpirun -np ranks python -m minillm ARGS` with this checkout's minillm and one thread
    a rank; asserts it succeeded and returns its stderr's lines."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), MINILLM_THREADS="1", OMP_NUM_THREADS="1")
    for name in LAUNCH_VARS:
        env.pop(name, None)
    done = subprocess.run(mpirun_or_skip(ranks) + [sys.executable, "-m", "minillm", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stderr.splitlines()
