"""RLHF: a simulated labeller, a reward model learned from its preferences, RL against the
reward model (and how it gets gamed), and an arena that rates checkpoints against each other.

Read in order: prompts.py, labeller.py, reward_model.py, policy.py, arena.py, cli.py.
"""
