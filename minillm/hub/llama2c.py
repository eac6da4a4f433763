"""llama2.c export: the legacy .bin that karpathy/llama2.c's run.c reads, and its tokenizer.bin.

    minillm export --ckpt runs/default/base --format llama2c --out runs/default/llama2c/model.bin
    ./run runs/default/llama2c/model.bin -z runs/default/llama2c/tokenizer.bin -t 0 -n 64

model.bin: a header of 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
seq_len; vocab_size < 0 means an untied classifier follows), then float32 tensors, each
kind stacked over all layers before the next kind:

    token embedding (V, C)   attention norms (L, C)   wq (L, C, C)   wk, wv (L, NKV*HD, C)
    wo (L, C, C)   ffn norms (L, C)   w1 = gate (L, H, C)   w2 = down (L, C, H)   w3 = up (L, H, C)
    final norm (C,)   RoPE cos and sin tables (T, HD/2) each (run.c skips them)   [classifier (V, C)]

tokenizer.bin: u32 max token length, then per id: f32 score, i32 length, the bytes.
RoPE needs no permutation: run.c rotates interleaved pairs, like us. run.c hard-codes
RMSNorm eps 1e-5 and RoPE base 10000, so models with other values are refused; its ids
differ from ours (llama2c_order). Read next: import_hf.py.
"""
import struct
from pathlib import Path

import numpy as np

from minillm.common import UserError, atomic_path
from minillm.hub.vocab import bos_eos, vocab_entries

RUNC_EPS, RUNC_THETA = 1e-5, 10000.0
SPECIAL_SCORE = -1e10


def llama2c_order(tok, vocab_size):
    """order[new id] = our id: our vocabulary laid out for run.c.

    run.c was written for Llama 2's sentencepiece vocabulary: it starts every sequence with
    id 1 (BOS), stops when it samples id 1, and encodes a character missing from the
    vocabulary as its bytes at ids byte + 3. So the export lays our vocabulary out as

        0: a spare special token   1: <|bos|>   2: <|assistant_end|> (or another special)
        3..258: bytes 0..255       then the merges in rank order, the other specials, unused rows

    permuting the embedding (and classifier) rows to match; generating from BOS in run.c is
    then our model generating from <|bos|>. Merges score -rank (run.c merges the pair of
    highest score first, i.e. the lowest rank); special tokens score -1e10, which run.c never
    merges into (it needs a score above -1e10).
    """
    entries = vocab_entries(tok, vocab_size)
    bos, _, eot = bos_eos(tok)
    specials = [i for i, (kind, _) in enumerate(entries) if kind == "special" and i not in (bos, eot)]
    if bos is None:
        raise UserError("run.c starts every sequence with a BOS token; this model's tokenizer has "
                        "none (a byte-level model cannot be exported to llama2.c)")
    if eot is None:
        eot = specials.pop() if len(specials) > 1 else None
    if eot is None or not specials:
        raise UserError("the llama2.c layout needs three special tokens (ids 0, 1, 2); this "
                        "tokenizer has fewer")
    head = [specials.pop(0), bos, eot] + list(tok.byte_ids) + list(tok.merge_ids)
    placed = set(head)
    rest = [i for i, (kind, _) in enumerate(entries) if kind == "special" and i not in placed]
    pads = [i for i, (kind, _) in enumerate(entries) if kind == "pad"]
    order = np.array(head + rest + pads, dtype=np.int64)                 # (V,)
    assert len(order) == vocab_size and len(set(order.tolist())) == vocab_size
    return order


def tokenizer_bin(tok, order):
    """The bytes of tokenizer.bin for the vocabulary in `order`."""
    entries = vocab_entries(tok, len(order))
    rank = {i: r for r, i in enumerate(tok.merge_ids)}
    pieces = []
    for new, old in enumerate(order.tolist()):
        kind, value = entries[old]
        if kind == "byte":
            text, score = value, 0.0
        elif kind == "merge":
            text, score = value, -float(rank[old])
        elif kind == "special":
            text, score = value.encode("utf-8"), SPECIAL_SCORE
        else:
            text, score = f"<unused{new}>".encode(), SPECIAL_SCORE
        pieces.append((text, score))
    return pack_tokenizer_bin(pieces)


def pack_tokenizer_bin(pieces):
    """tokenizer.bin's bytes for pieces [(token bytes, score)] in id order."""
    out = [struct.pack("<I", max(len(t) for t, _ in pieces))]
    out += [struct.pack("<fi", score, len(text)) + text for text, score in pieces]
    return b"".join(out)


def rope_tables(seq_len, head_dim, theta=RUNC_THETA):
    """cos and sin of pos * theta^(-2i/HD): (T, HD/2) each, as llama2.c's export writes them."""
    freqs = theta ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)  # (HD/2,)
    angles = np.outer(np.arange(seq_len), freqs)                                # (T, HD/2)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def model_bin_parts(config, params, order):
    """The .bin file as a list of byte strings / float32 arrays, in run.c's order."""
    if not np.isclose(config.norm_eps, RUNC_EPS, rtol=0, atol=1e-12) or config.rope_theta != RUNC_THETA:
        raise UserError(f"run.c hard-codes RMSNorm eps 1e-5 and RoPE base 10000; this model has eps "
                        f"{config.norm_eps:g} and base {config.rope_theta:g}, so run.c would compute "
                        "something else (export to gguf or hf instead)")
    V = config.vocab_size
    header = struct.pack("<7i", config.n_embd, config.hidden_dim, config.n_layer, config.n_head,
                         config.n_kv_head, V if config.tie_embeddings else -V, config.context_len)
    layers = range(config.n_layer)
    parts = [header, params["tok_emb"][order]]                         # (V, C), rows in run.c's ids
    for name in ("attn_norm", "wq", "wk", "wv", "wo", "mlp_norm", "w_gate", "w_down", "w_up"):
        parts.append(np.stack([params[f"blocks.{i}.{name}"] for i in layers]))  # (L, ...)
    parts.append(params["final_norm"])                                  # (C,)
    parts.extend(rope_tables(config.context_len, config.head_dim))      # (T, HD/2) x 2
    if not config.tie_embeddings:
        parts.append(params["lm_head"][order])                          # (V, C)
    return parts


def write_model_bin(path, config, params, order):
    """Write the .bin (model_bin_parts) at `path`, atomically."""
    parts = model_bin_parts(config, params, order)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        for part in parts:
            f.write(part if isinstance(part, bytes) else np.ascontiguousarray(part, "<f4").tobytes())


def export_llama2c(path, config, params, tok):
    """Write model.bin at `path` and tokenizer.bin beside it; returns both paths.

    Limits (run.c is not our tokenizer): run.c puts a space token in front of a prompt
    (sentencepiece's dummy prefix), has no split regex (merges cross word boundaries), and
    merges any adjacent pair whose concatenated text is a token, so a prompt may tokenize
    differently from `minillm`; generation from BOS (an empty prompt) is the exactly comparable
    case. Output printing skips single non-printable bytes (so characters split across byte
    tokens do not print), drops a leading space right after BOS, and a token containing a NUL
    byte is cut there (C strings).
    """
    path = Path(path)
    order = llama2c_order(tok, config.vocab_size)
    write_model_bin(path, config, params, order)
    tok_path = path.with_name("tokenizer.bin")
    with atomic_path(tok_path) as tmp:
        tmp.write_bytes(tokenizer_bin(tok, order))
    return path, tok_path
