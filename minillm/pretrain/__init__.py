"""Pretraining: token shards and their loader (shards.py), the training loop (loop.py), its
configuration and Python API (train.py), `minillm pretrain` (cli.py), and data parallelism
over MPI (dist.py: `mpirun -np R minillm pretrain`)."""
