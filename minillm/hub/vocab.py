"""What every export needs from a checkpoint: the model, and its vocabulary as the exports
see it.

    config, params, meta, tok = load_for_export("runs/default/sft")
    vocab_entries(tok, config.vocab_size)   # by id: ("byte", b"a"), ("merge", b"the"),
                                            # ("special", "<|bos|>") or ("pad", None)
    bos_eos(tok, meta)                      # (bos, eos, end of turn) ids, None when absent
    has_chat_tokens(tok)                    # True: the export carries the chat template

Each format spells the same vocabulary its own way (GGUF and Hugging Face as GPT-2-alphabet
strings, llama2.c as raw bytes with scores), and each needs to know which ids start and end
a text: these functions answer once for all three.

Read next: gguf.py, hf.py, llama2c.py.
"""
from pathlib import Path

from minillm.common import UserError
from minillm.nn.checkpoint import load_checkpoint
from minillm.tokenizer.bpe import Tokenizer


def load_for_export(ckpt):
    """(config, params, meta, tokenizer) of a checkpoint directory. A checkpoint without a
    tokenizer.json (a byte-level run) gets the plain byte tokenizer: 256 ids, no merges."""
    config, params, meta = load_checkpoint(ckpt)
    path = Path(ckpt) / "tokenizer.json"
    tok = Tokenizer.load(path) if path.exists() else Tokenizer([], special_tokens={})
    if tok.vocab_size > config.vocab_size:
        raise UserError(f"{path} has {tok.vocab_size} tokens but the model only "
                        f"{config.vocab_size} embedding rows")
    return config, params, meta, tok


def vocab_entries(tok, vocab_size):
    """The vocabulary as a list indexed by id: ("byte" | "merge", bytes), ("special", str),
    or ("pad", None) for embedding rows no token uses (a model padded past its tokenizer)."""
    entries = [("pad", None)] * vocab_size
    for i in tok.byte_ids:
        entries[i] = ("byte", tok.token_bytes(i))
    for i in tok.merge_ids:
        entries[i] = ("merge", tok.token_bytes(i))
    for s, i in tok.special_tokens.items():
        entries[i] = ("special", s)
    return entries


def bos_eos(tok, meta=None):
    """(bos id or None, eos id or None, end-of-turn id or None).

    A document starts with <|bos|>, which also separates documents: it is what a base model
    predicts at the end of a text (GPT-2's <|endoftext|> plays both roles). A chat model
    ends its turn with <|assistant_end|>. An imported model keeps the ids its source named.
    """
    specials = tok.special_tokens
    source = (meta or {}).get("source") or {}
    bos = specials.get("<|bos|>", source.get("bos_token_id"))
    eot = specials.get("<|assistant_end|>")
    eos = source.get("eos_token_id", bos)
    if isinstance(eos, list):
        eos = eos[0] if eos else None
    return bos, eos, eot


def has_chat_tokens(tok):
    needed = ("<|bos|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>", "<|assistant_end|>")
    return all(s in tok.special_tokens for s in needed)
