"""Where to find LLMs: export a minillm model to GGUF (llama.cpp), Hugging Face or llama2.c,
and import a Hugging Face Llama. Reading order: cli.py, vocab.py, gguf.py, hf.py,
llama2c.py, import_hf.py."""
