"""minillm: every stage of building a ChatGPT-like assistant, small enough to read, fast
enough to run on a laptop CPU.

One package per lecture stage, each importing only from the ones before it: world/ (the
mini-world, this project's fixture) -> internet/ (clean the web) -> crawl/ -> tokenizer/ ->
nn/ (the transformer, by hand) -> pretrain/ -> generate/ -> evals/ -> chat/ (SFT) -> hub/
(export to other tools); speedrun.py runs them end to end, cli.py holds the commands.
Run `minillm info` to see how this installation is set up.
"""
__version__ = "0.1.0"
