"""Pretraining: token shards and their loader (shards.py), the training loop (loop.py), its
configuration and Python API (train.py), and `minillm pretrain` (cli.py)."""
