"""Step 4, generation: engine.py (the loop), cache.py (the KV cache), sampling.py, cli.py."""
