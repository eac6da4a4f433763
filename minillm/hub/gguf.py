"""GGUF, llama.cpp's file format: written by our own code (not the gguf package), and read
back by a small reader that the tests use.

    minillm export --ckpt runs/default/sft --format gguf --out runs/default/model.gguf [--dtype q8_0]

A GGUF file (version 3, little-endian) is a header, key/value metadata, tensor infos, then
the tensors' bytes:

    "GGUF"  u32 version (3)  u64 tensor count  u64 key/value count
    per key/value:  key (u64 length + UTF-8 bytes)  u32 value type  value
                    (an array is u32 element type, u64 count, the elements)
    per tensor:     name  u32 n_dims  u64 dims[n_dims]  u32 ggml type  u64 offset
                    dims run fastest axis first: a NumPy (V, C) matrix is written as [C, V]
    zero padding to general.alignment (32 bytes), then each tensor's bytes, each padded to 32;
    a tensor's offset counts from the start of this data section.

RoPE needs no permutation: llama.cpp's "llama" architecture rotates interleaved pairs
(x[2i], x[2i+1]), exactly like our model. Read next: hf.py.
"""
import struct
from collections import Counter

import numpy as np
from tqdm import tqdm

from minillm.chat.template import CHAT_TEMPLATE
from minillm.common import UserError, atomic_path
from minillm.hub.vocab import bos_eos, has_chat_tokens, vocab_entries
from minillm.tokenizer.bpe import GPT2_DIGITS_PATTERN
from minillm.tokenizer.interop import to_hf_string

MAGIC, VERSION, ALIGNMENT = b"GGUF", 3, 32

# GGUF value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
_SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
           BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}

# ggml tensor types: id -> (name, values per block, bytes per block)
GGML_F32, GGML_F16, GGML_Q8_0 = 0, 1, 8
GGML_TYPES = {GGML_F32: ("F32", 1, 4), GGML_F16: ("F16", 1, 2), GGML_Q8_0: ("Q8_0", 32, 34)}
FILE_TYPES = {"f32": 0, "q8_0": 7}          # general.file_type: ALL_F32, MOSTLY_Q8_0

# token types of tokenizer.ggml.token_type
NORMAL, CONTROL, UNUSED = 1, 3, 5

# The tokenizer is byte-level BPE ("gpt2" in llama.cpp): tokens are strings in GPT-2's
# byte-to-character alphabet (tokenizer/interop.py's bytes_to_unicode: byte 0x20, a space, is
# "Ġ"), merges are "left right" strings in rank order, special tokens are CONTROL (type 3).
# llama.cpp picks its pre-tokenizer regex by the `pre` name: GPT-4's split pattern is
# llama.cpp's "dbrx" (the Llama 3 regex, but without Llama 3's shortcut of taking a whole
# word that is in the vocabulary without running the merges, which would differ from BPE).
# tests/hub/test_export_peers.py checks that llama.cpp tokenizes like us, for both patterns;
# a wider fuzz over random code points differed only on code points that one of the two
# Unicode databases calls unassigned (e.g. U+0383, U+13FFB, U+143D4).
PRE_NAMES = {"gpt4": "dbrx", "gpt2": "gpt-2"}   # our split pattern -> llama.cpp's name for it

Q8_BLOCK = np.dtype([("d", "<f2"), ("qs", "i1", (32,))])   # 34 bytes, like ggml's block_q8_0


# ---- q8_0 -----------------------------------------------------------------------------

def quantize_q8_0(w):
    """w (..., K) float32 with K % 32 == 0 -> structured blocks (w.size // 32,) of Q8_BLOCK.

    q8_0 (ggml's type 8) stores each run of 32 consecutive values of a row as one block: an
    f16 scale d = max|x| / 127 and 32 int8 q = round(x / d), so x ~ d * q, error <= d / 2.
    Norm weights stay F32; a matrix whose rows are not a multiple of 32 long stays F32 too.
    (On a CPU with AMX, llama.cpp 0.3.36's repacked Q8_0 kernels crashed on multi-token
    batches, for our file and the gguf package's alike; loading with use_extra_bufts = false,
    llama.cpp's weight repacking off, avoids them.)
    """
    x = np.ascontiguousarray(w, dtype=np.float32).reshape(-1, 32)      # (N, 32)
    d = np.abs(x).max(axis=1) / np.float32(127)                         # (N,) scale per block
    inv = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d > 0)  # (N,)
    # subtle: C's roundf rounds halves away from zero; np.round would round them to even
    scaled = x * inv[:, None]                                           # (N, 32)
    blocks = np.empty(len(x), dtype=Q8_BLOCK)                           # (N,)
    blocks["d"] = d.astype(np.float16)
    blocks["qs"] = np.sign(scaled) * np.floor(np.abs(scaled) + np.float32(0.5))
    return blocks


def dequantize_q8_0(blocks, shape):
    """The float32 array (shape) that q8_0 blocks stand for."""
    x = blocks["qs"].astype(np.float32) * blocks["d"].astype(np.float32)[:, None]  # (N, 32)
    return x.reshape(shape)


# ---- the writer --------------------------------------------------------------------------

def _pack_string(s):
    data = s.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


def _pack_value(vtype, value):
    if vtype == STR:
        return _pack_string(value)
    if vtype in _SCALAR:
        return struct.pack(_SCALAR[vtype], value)
    etype, items = value                                # ARR: (element type, items)
    head = struct.pack("<IQ", etype, len(items))
    if etype == STR:
        return head + b"".join(_pack_string(s) for s in items)
    return head + np.asarray(items, dtype=_SCALAR[etype]).tobytes()


def write_gguf(path, metadata, tensors):
    """Write a GGUF v3 file atomically.

    metadata: list of (key, value type, value); an array value is (element type, items).
    tensors: list of (name, ggml type, NumPy shape, data as a NumPy array of the bytes).
    """
    infos, offset = [], 0
    for name, gtype, shape, data in tensors:
        dims = list(reversed(shape))                    # fastest axis first
        infos.append(_pack_string(name) + struct.pack("<I", len(dims))
                     + struct.pack(f"<{len(dims)}Q", *dims) + struct.pack("<IQ", gtype, offset))
        offset += -(-data.nbytes // ALIGNMENT) * ALIGNMENT
    head = MAGIC + struct.pack("<IQQ", VERSION, len(tensors), len(metadata))
    head += b"".join(_pack_string(k) + struct.pack("<I", t) + _pack_value(t, v) for k, t, v in metadata)
    head += b"".join(infos)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(head + bytes(-len(head) % ALIGNMENT))
        for _, _, _, data in tensors:
            f.write(np.ascontiguousarray(data).tobytes())
            f.write(bytes(-data.nbytes % ALIGNMENT))
    return path


# ---- our model as GGUF ---------------------------------------------------------------

def gguf_tensor_names(config):
    """Our parameter name -> GGUF tensor name (llama.cpp's names end in ".weight"): token_embd,
    blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_up,
    ffn_down}, output_norm, output (absent when tied: llama.cpp then reuses token_embd)."""
    names = {"tok_emb": "token_embd", "final_norm": "output_norm"}
    if not config.tie_embeddings:
        names["lm_head"] = "output"
    block = {"attn_norm": "attn_norm", "wq": "attn_q", "wk": "attn_k", "wv": "attn_v",
             "wo": "attn_output", "mlp_norm": "ffn_norm", "w_gate": "ffn_gate", "w_up": "ffn_up",
             "w_down": "ffn_down"}
    for i in range(config.n_layer):
        names.update({f"blocks.{i}.{ours}": f"blk.{i}.{theirs}" for ours, theirs in block.items()})
    return {ours: f"{theirs}.weight" for ours, theirs in names.items()}


def pre_tokenizer_name(tok):
    """llama.cpp's name for our split pattern: GPT-4's, GPT-2's, or GPT-2's with single
    digits (an imported SmolLM2: llama.cpp's "smollm" splits digits first, then GPT-2's regex)."""
    if tok.pattern_name in PRE_NAMES:
        return PRE_NAMES[tok.pattern_name]
    if tok.pattern == GPT2_DIGITS_PATTERN:
        return "smollm"
    raise UserError("llama.cpp chooses its pre-tokenizer from a fixed list; this tokenizer's "
                    "custom split pattern has no llama.cpp equivalent (use the gpt4 or gpt2 pattern)")


def tokenizer_metadata(tok, vocab_size, meta=None):
    """The tokenizer.* key/values: a byte-level BPE vocabulary in llama.cpp's "gpt2" model."""
    pre = pre_tokenizer_name(tok)
    tokens, types = [], []
    for i, (kind, value) in enumerate(vocab_entries(tok, vocab_size)):
        if kind in ("byte", "merge"):
            tokens.append(to_hf_string(value))
            types.append(NORMAL)
        elif kind == "special":
            tokens.append(value)
            types.append(CONTROL)
        else:
            tokens.append(f"[PAD{i}]")
            types.append(UNUSED)
    if len(set(tokens)) != len(tokens):
        dup = Counter(tokens).most_common(1)[0][0]
        raise UserError(f"two tokens are both {dup!r} in GGUF's alphabet; llama.cpp needs distinct tokens")
    merges = [f"{to_hf_string(tok.token_bytes(a))} {to_hf_string(tok.token_bytes(b))}" for a, b in tok.merges]
    kv = [("tokenizer.ggml.model", STR, "gpt2"),
          ("tokenizer.ggml.pre", STR, pre),
          ("tokenizer.ggml.tokens", ARR, (STR, tokens)),
          ("tokenizer.ggml.token_type", ARR, (I32, types)),
          ("tokenizer.ggml.merges", ARR, (STR, merges))]
    bos, eos, eot = bos_eos(tok, meta)
    for key, value in (("bos_token_id", bos), ("eos_token_id", eos), ("eot_token_id", eot)):
        if value is not None:
            kv.append((f"tokenizer.ggml.{key}", U32, value))
    kv.append(("tokenizer.ggml.add_bos_token", BOOL, bos is not None))
    kv.append(("tokenizer.ggml.add_eos_token", BOOL, False))
    if has_chat_tokens(tok):
        kv.append(("tokenizer.chat_template", STR, CHAT_TEMPLATE))
    return kv


def model_metadata(config, dtype, name):
    kv = [("general.architecture", STR, "llama"),
          ("general.name", STR, name),
          ("general.file_type", U32, FILE_TYPES[dtype]),
          ("general.alignment", U32, ALIGNMENT)]
    if dtype != "f32":
        kv.append(("general.quantization_version", U32, 2))
    kv += [("llama.vocab_size", U32, config.vocab_size),
           ("llama.context_length", U32, config.context_len),
           ("llama.embedding_length", U32, config.n_embd),
           ("llama.block_count", U32, config.n_layer),
           ("llama.feed_forward_length", U32, config.hidden_dim),
           ("llama.attention.head_count", U32, config.n_head),
           ("llama.attention.head_count_kv", U32, config.n_kv_head),
           ("llama.attention.key_length", U32, config.head_dim),
           ("llama.attention.value_length", U32, config.head_dim),
           ("llama.rope.dimension_count", U32, config.head_dim),
           ("llama.rope.freq_base", F32, float(config.rope_theta)),
           ("llama.attention.layer_norm_rms_epsilon", F32, float(config.norm_eps))]
    return kv


def gguf_tensors(config, params, dtype):
    """[(gguf name, ggml type, shape, data)], and the names that stayed F32 despite q8_0."""
    tensors, kept_f32 = [], []
    for ours, theirs in tqdm(gguf_tensor_names(config).items(), desc="gguf tensors", leave=False):
        w = np.ascontiguousarray(params[ours], dtype=np.float32)        # (shape of the parameter)
        if dtype == "q8_0" and w.ndim == 2 and w.shape[-1] % 32 == 0:
            tensors.append((theirs, GGML_Q8_0, w.shape, quantize_q8_0(w)))
        else:
            if dtype == "q8_0" and w.ndim == 2:
                kept_f32.append(theirs)
            tensors.append((theirs, GGML_F32, w.shape, w))
    return tensors, kept_f32


def export_gguf(path, config, params, tok, meta=None, dtype="f32"):
    """Write our model as a llama.cpp GGUF file; returns the path."""
    if dtype not in FILE_TYPES:
        raise UserError(f"GGUF dtype must be one of {', '.join(FILE_TYPES)}, got {dtype!r}")
    name = f"minillm-{(meta or {}).get('stage', 'model')}"
    metadata = model_metadata(config, dtype, name) + tokenizer_metadata(tok, config.vocab_size, meta)
    tensors, kept_f32 = gguf_tensors(config, params, dtype)
    if kept_f32:
        print(f"note: {len(kept_f32)} matrices have rows not a multiple of 32 and stay F32 "
              f"({', '.join(kept_f32[:3])}{', ...' if len(kept_f32) > 3 else ''})")
    return write_gguf(path, metadata, tensors)


# ---- the reader (for tests and inspection) --------------------------------------------

class _Cursor:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return values if len(values) > 1 else values[0]

    def string(self):
        n = self.take("<Q")
        self.pos += n
        return bytes(self.data[self.pos - n:self.pos]).decode("utf-8")

    def value(self, vtype):
        if vtype == STR:
            return self.string()
        if vtype in _SCALAR:
            return self.take(_SCALAR[vtype])
        if vtype != ARR:
            raise ValueError(f"unknown GGUF value type {vtype}")
        etype, n = self.take("<IQ")
        return [self.value(etype) for _ in range(n)]


def read_gguf(path):
    """(metadata dict key -> value, tensors dict name -> (ggml type name, NumPy shape, float32
    array)). Q8_0 and F16 tensors are dequantized. Raises ValueError on a malformed file."""
    data = np.fromfile(path, dtype=np.uint8)
    cur = _Cursor(memoryview(data))
    if bytes(data[:4]) != MAGIC:
        raise ValueError(f"{path} is not a GGUF file")
    cur.pos = 4
    version, n_tensors, n_kv = cur.take("<IQQ")
    if version != VERSION:
        raise ValueError(f"{path} is GGUF version {version}, this reader reads {VERSION}")
    metadata = {}
    for _ in range(n_kv):
        key = cur.string()
        metadata[key] = cur.value(cur.take("<I"))
    infos = []
    for _ in range(n_tensors):
        name = cur.string()
        dims = [cur.take("<Q") for _ in range(cur.take("<I"))]
        gtype, offset = cur.take("<IQ")
        infos.append((name, tuple(reversed(dims)), gtype, offset))
    alignment = metadata.get("general.alignment", ALIGNMENT)
    start = cur.pos + (-cur.pos % alignment)
    tensors = {}
    for name, shape, gtype, offset in infos:
        tname, per_block, block_bytes = GGML_TYPES[gtype]
        n = int(np.prod(shape, dtype=np.int64))
        raw = data[start + offset:start + offset + n // per_block * block_bytes]
        if gtype == GGML_Q8_0:
            array = dequantize_q8_0(raw.view(Q8_BLOCK), shape)
        else:
            array = raw.view("<f4" if gtype == GGML_F32 else "<f2").astype(np.float32).reshape(shape)
        tensors[name] = (tname, shape, array)
    return metadata, tensors
