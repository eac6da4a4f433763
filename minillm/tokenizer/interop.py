"""Tokenizer interop: tiktoken's mergeable ranks, Hugging Face tokenizer.json, GPT-2's files.

    minillm tokenizer export --tokenizer runs/demo/tokenizer.json --format hf --out runs/demo/hf/tokenizer.json
    minillm tokenizer export --tokenizer runs/demo/tokenizer.json --format tiktoken --out runs/demo/minillm.tiktoken

- tiktoken: a BPE is its mergeable ranks {token bytes: rank}. Our ids are ranks (bytes
  first, then merges in order), so the ranks are {token_bytes(i): i}.
- Hugging Face works on strings: ByteLevel maps every byte to a printable character
  (GPT-2's bytes_to_unicode: printable Latin-1 bytes stay, the other 68 go to U+0100..,
  so a space is "Ġ"). The pre-tokenizer is our regex (Split, "isolated") then ByteLevel
  without its own regex; specials go in added_tokens, which Hugging Face always matches
  in text (so "<|bos|>" typed in text becomes the control token there, not here).
- GPT-2's vocab.json + merges.txt: load_gpt2 keeps GPT-2's own byte and merge ids and
  split pattern; any token that is neither a byte nor a merge is a special token.

Read next: cli.py.
"""
import base64
import json
from functools import lru_cache
from pathlib import Path

from minillm.common import UserError, atomic_write, write_json
from minillm.tokenizer.bpe import Tokenizer


@lru_cache(maxsize=1)
def bytes_to_unicode():
    """GPT-2's byte -> printable character table (a dict of 256 entries)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:                               # control bytes, space, DEL, NBSP, soft hyphen
            table[b] = chr(256 + extra)
            extra += 1
    return table


def to_hf_string(data):
    table = bytes_to_unicode()
    return "".join(table[b] for b in data)


def _token_bytes(tok):
    """id -> bytes for every non-special token; refuses two tokens with the same bytes."""
    ids = tok.byte_ids + tok.merge_ids
    table = {i: tok.token_bytes(i) for i in ids}
    if len(set(table.values())) != len(table):
        raise ValueError("two tokens of this tokenizer have the same bytes; tiktoken and "
                         "Hugging Face cannot represent that")
    return table


# ---- tiktoken -----------------------------------------------------------------------

def to_tiktoken_ranks(tok):
    """{token bytes: rank} for tiktoken; rank == our id."""
    if sorted(tok.merge_ids) != tok.merge_ids or max(tok.byte_ids) >= min(tok.merge_ids, default=256):
        raise ValueError("tiktoken needs merge ids that grow with the merge order")
    return {data: i for i, data in _token_bytes(tok).items()}


def to_tiktoken(tok, name="minillm"):
    """A tiktoken.Encoding with our ranks, pattern and special tokens (tiktoken must be installed)."""
    try:
        import tiktoken  # an optional peer, needed only here
    except ImportError:
        raise UserError("tiktoken is not installed (pip install tiktoken)") from None
    return tiktoken.Encoding(name, pat_str=tok.pattern, mergeable_ranks=to_tiktoken_ranks(tok),
                             special_tokens=dict(tok.special_tokens))


def save_tiktoken(tok, path):
    """tiktoken's rank file: "base64(token) rank" per line (tiktoken.load.load_tiktoken_bpe)."""
    ranks = to_tiktoken_ranks(tok)
    lines = [f"{base64.b64encode(data).decode()} {rank}" for data, rank in sorted(ranks.items(), key=lambda x: x[1])]
    atomic_write(path, "\n".join(lines) + "\n")
    return Path(path)


# ---- Hugging Face tokenizers --------------------------------------------------------

def to_hf_json(tok):
    """The tokenizer.json dict of an equivalent Hugging Face byte-level BPE tokenizer."""
    table = _token_bytes(tok)
    vocab = {to_hf_string(data): i for i, data in sorted(table.items())}
    merges = [[to_hf_string(table[a]), to_hf_string(table[b])] for a, b in tok.merges]
    added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for s, i in tok.special_tokens.items()]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": tok.pattern}, "behavior": "Isolated", "invert": False},
            byte_level]},
        "post_processor": None,
        "decoder": dict(byte_level),
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": vocab, "merges": merges},
    }


def save_hf(tok, path):
    write_json(path, to_hf_json(tok))
    return Path(path)


# ---- GPT-2's vocab.json + merges.txt -------------------------------------------------

def load_gpt2(vocab_path, merges_path, **kwargs):
    """A Tokenizer that splits and merges exactly like GPT-2, with GPT-2's ids."""
    try:
        vocab = json.loads(Path(vocab_path).read_text(encoding="utf-8"))
        lines = Path(merges_path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as e:
        raise UserError(f"GPT-2 file not found: {e.filename}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{vocab_path} is not a GPT-2 vocab.json ({e})") from None
    if not isinstance(vocab, dict) or not all(isinstance(i, int) for i in vocab.values()):
        raise UserError(f"{vocab_path} is not a GPT-2 vocab.json (expected {{token: id}})")
    table = bytes_to_unicode()
    try:
        byte_ids = [vocab[table[b]] for b in range(256)]
    except KeyError as e:
        raise UserError(f"{vocab_path} lacks the byte token {e.args[0]!r}") from None
    merges, merge_ids = [], []
    for n, line in enumerate(lines, 1):
        if not line.strip() or (n == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2 or any(p not in vocab for p in parts) or parts[0] + parts[1] not in vocab:
            raise UserError(f"{merges_path}:{n}: {line!r} is not a merge of two tokens in {vocab_path}")
        merges.append((vocab[parts[0]], vocab[parts[1]]))
        merge_ids.append(vocab[parts[0] + parts[1]])
    made = set(byte_ids) | set(merge_ids)
    specials = {s: i for s, i in vocab.items() if i not in made}
    try:
        return Tokenizer(merges, "gpt2", specials, byte_ids=byte_ids, merge_ids=merge_ids, **kwargs)
    except ValueError as e:
        raise UserError(f"{vocab_path} + {merges_path} are inconsistent: {e}") from None
