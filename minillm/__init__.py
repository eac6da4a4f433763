"""minillm: every stage of building a ChatGPT-like assistant, small enough to read, fast
enough to run on a laptop CPU.

Reading order (the lecture's): internet/ (crawl and clean the web) -> tokenizer.py ->
nn/ (the transformer, by hand) -> train.py -> generate.py -> chat/ (SFT) -> rl/ (RL, RLHF).
Run `minillm info` to see how this installation is set up.
"""
__version__ = "0.1.0"
