"""A tiny run directory for the web app's tests (tests/web/): build_run(path).

The checkpoints are "scripted" models (no layers, one-hot embeddings, a hand-set LM head:
after token a the model writes NEXT[a]), so every reply is known exactly:

    base/   continues any text with " la la la ..." for ever (p of each token ~0.93)
    sft/    answers anything with a calculator call:  [17*23 -> 391] Done!
    rl/     answers anything with a search:           [search: Velmora -> ...] Ok
    rlhf/reward_model/, notes/ and .sft.old-1/ckpt/ (an interrupted save's leftover) are
    not models the app may offer.

Plus chat/search.npz (the search tool's index), chat/conversations.jsonl (two training
conversations), report.html and report/loss.png.
"""
import json
import struct
import zlib
from pathlib import Path

import numpy as np

from minillm.chat.search import BM25Index
from minillm.nn.checkpoint import save_checkpoint
from minillm.nn.gpt import GPTConfig, init_params
from minillm.tokenizer.bpe import Tokenizer

PAGE_TEXT = ("Velmora is a small city by the sea. It was founded by Ada Quill in 1204, and its "
             "harbour still holds the old stone mill that she built with her brothers.")
EXAMPLES = [{"kind": "calc", "split": "train", "messages": [
                {"role": "user", "content": "What is 17*23?"},
                {"role": "assistant", "content": [{"type": "python", "text": "17*23"},
                                                  {"type": "output", "text": "391"},
                                                  {"type": "text", "text": "It is 391."}]}]},
            {"kind": "identity", "split": "train", "messages": [
                {"role": "user", "content": "Who are you?"},
                {"role": "assistant", "content": "I am Minnow."}]}]
CALC_REPLY = [{"type": "python", "text": "17*23"}, {"type": "output", "text": "391"},
              {"type": "text", "text": "Done!"}]


def scripted(tok, chains, default, context_len=64, weight=1.0):
    """A 0-layer model: after token a its most likely next token is chains' successor of a
    (else `default`), with logit weight * sqrt(C) against 0 for every other token."""
    V = tok.vocab_size
    C = -(-V // 4) * 4
    nxt = {a: default for a in range(V)}
    for chain in chains:
        assert len(set(chain)) == len(chain), chain
        nxt.update(zip(chain, chain[1:]))
    config = GPTConfig(vocab_size=V, context_len=context_len, n_layer=0, n_head=2, n_kv_head=2,
                       n_embd=C, hidden_dim=8)
    params = {"tok_emb": np.eye(V, C, dtype=np.float32), "final_norm": np.ones(C, np.float32),
              "lm_head": np.zeros((V, C), np.float32)}
    for a, b in nxt.items():
        params["lm_head"][b, a] = weight
    return config, params


def tiny_png():
    """A valid 2x2 grey PNG (so a browser can load it)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + bytes([128, 128]) for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def tokenizer():
    return Tokenizer([], "gpt4")                 # bytes + the chat's special tokens (267)


def build_run(run, tok):
    """Write the tiny run at `run` (see the module docstring); returns it."""
    run = Path(run)
    sp, text = tok.special_tokens, lambda s: list(s.encode())
    base = scripted(tok, [text(" la")], default=ord(" "), context_len=1024, weight=0.5)
    save_checkpoint(run / "base", *base, tokenizer=tok, meta={"stage": "base"})
    calc = [[sp["<|assistant_start|>"], sp["<|python_start|>"], *text("17*23"), sp["<|python_end|>"]],
            [sp["<|output_end|>"], *text("Done!"), sp["<|assistant_end|>"]]]
    save_checkpoint(run / "sft", *scripted(tok, calc, default=ord(" ")), tokenizer=tok, meta={"stage": "sft"})
    search = [[sp["<|assistant_start|>"], sp["<|search_start|>"], *text("Velmora"), sp["<|search_end|>"]],
              [sp["<|output_end|>"], *text("Ok"), sp["<|assistant_end|>"]]]
    save_checkpoint(run / "rl", *scripted(tok, search, default=ord(" "), context_len=512), tokenizer=tok, meta={"stage": "rl"})
    rm = GPTConfig(vocab_size=tok.vocab_size, context_len=64, n_layer=1, n_head=2, n_kv_head=2, n_embd=16, hidden_dim=8)
    save_checkpoint(run / "rlhf" / "reward_model", rm, init_params(rm), tokenizer=tok, meta={"stage": "reward_model"})
    save_checkpoint(run / ".sft.old-1" / "ckpt", rm, init_params(rm), tokenizer=tok, meta={"stage": "sft"})
    (run / "notes").mkdir()
    (run / "notes" / "config.json").write_text('{"not": "a checkpoint"}')
    BM25Index.build([PAGE_TEXT]).save(run / "chat" / "search.npz")
    (run / "chat" / "conversations.jsonl").write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES))
    (run / "report.html").write_text("<!doctype html><title>report</title><h1>minillm report card: tiny</h1>")
    (run / "report").mkdir()
    (run / "report" / "loss.png").write_bytes(tiny_png())
    return run
