"""Evaluations: the base model's (base.py) and `minillm eval` (cli.py); SFT and RL add theirs."""
