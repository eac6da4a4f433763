"""Post-training 2: reinforcement learning on verifiable problems (in progress).

Reading order: loss.py (the policy-gradient loss and its gradient, by hand), tasks.py (the
tasks and their checkers), grpo.py (the loop: sample, check, reinforce).
"""
