"""Step 2, tokenization: a byte-level BPE tokenizer, text <-> token ids.

Reading order:
    naive.py    the BPE training loop in a dozen lines: count pairs, merge the best, repeat
    bpe.py      the Tokenizer: encode / decode with those merges, special tokens, tokenizer.json
    train.py    the same merges, fast: distinct chunks and incremental pair counts
    fast.py     the C path (csrc/bpe_split.c, bpe.c, bpe_train.c) for splitting, encoding, training
    interop.py  tiktoken ranks, Hugging Face tokenizer.json, GPT-2's vocab.json + merges.txt
    cli.py      `minillm tokenizer train | encode | decode | show | stats | export`

    minillm tokenizer train --input corpus.txt --vocab-size 1024 --out runs/demo/tokenizer.json
"""
