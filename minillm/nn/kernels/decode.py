"""csrc/decode.c: one whole decode step of the model in one C call, and its NumPy twin.

A decode step feeds one new token per row through every layer and the head. At batch 1
that is ~60 small operations, each a few microseconds of arithmetic; driven from Python,
every one would also pay an interpreter round trip and a cffi call. decode_step runs the
whole sequence in C (as llama2.c's run.c forward() does), on weights packed once and
buffers allocated once. Its NumPy twin is the model itself: nn/gpt.py's forward over the
KV cache (decode_step_ref).

    weights = DecodeWeights(params, config)       # packed once (run.c's TransformerWeights)
    buf = Buffers(config, bmax=4)                 # every intermediate (run.c's RunState)
    logits = decode_step(weights, buf, cache, tokens, pos)   # (B, V): a view of buf.logits

    python -m pytest tests/generate/test_decode_step.py

Shapes: B rows, C channels, NH / NKV query / KV heads, HD head dim, QD = NH*HD, KD = NKV*HD,
H SwiGLU hidden size, V vocab, S cache capacity, P RoPE table positions (context_len).
"""
import numpy as np

from minillm.clib import _check, _load, _ptr
from minillm.nn.gpt import block_params, logits_last
from minillm.nn.layers import rope_frequencies


class DecodeWeights:
    """The model's weights laid out for decode_step (csrc/kernels.h's decode_weights).

    Per layer the matrices that read the same input are fused into one matmul: wqkv =
    [wq; wk; wv] and w_gu = [w_gate; w_up]. RMSNorm's weight w scales the normalized input
    of the matmul that follows it, and (x * rstd * w) W^T = (x * rstd) (W * w)^T: so w is
    multiplied into that matrix's columns once, here, and the step's norms multiply by ones.
    Without the C library nothing is packed: the twin runs the model on params.
    """

    def __init__(self, params, config):
        self.params, self.config = params, config             # what decode_step_ref runs on
        L = config.n_layer                                      # its caches' (L, NKV, HD), as
        self.kv_shape = (L, config.n_kv_head, config.head_dim) if L else (0, 0, 0)  # cache_pointers
        self.c = None                                           # the C struct (None without C)
        ffi, lib = _load()
        if lib is None:
            return
        f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)      # noqa: E731
        self.tok_emb = f32(params["tok_emb"])                           # (V, C)
        head = params["tok_emb"] if config.tie_embeddings else params["lm_head"]
        self.head = f32(head * params["final_norm"])                    # (V, C) final norm folded in
        self.wqkv, self.wo, self.w_gu, self.w_down = [], [], [], []     # n_layer each
        for i in range(config.n_layer):
            p = block_params(params, i)
            wqkv = np.concatenate((p["wq"], p["wk"], p["wv"])) * p["attn_norm"]    # (QD + 2KD, C)
            w_gu = np.concatenate((p["w_gate"], p["w_up"])) * p["mlp_norm"]        # (2H, C)
            self.wqkv.append(f32(wqkv))
            self.wo.append(f32(p["wo"]))                                            # (C, QD)
            self.w_gu.append(f32(w_gu))
            self.w_down.append(f32(p["w_down"]))                                    # (C, H)
        rope = rope_frequencies(config.context_len, config.head_dim, config.rope_theta)  # (P, HD/2)
        self.rope = rope.view(np.float32)                               # (P, HD): (cos, sin) pairs
        self.ones = np.ones(config.n_embd, np.float32)                  # (C,) the folded norms' weight
        self._layer_ptrs = [ffi.new("float *[]", [_ptr(ffi, w) for w in ws])   # kept alive here
                            for ws in (self.wqkv, self.wo, self.w_gu, self.w_down)]
        wqkv, wo, w_gu, w_down = self._layer_ptrs
        self.c = ffi.new("decode_weights *", {
            "n_layer": config.n_layer, "C": config.n_embd, "NH": config.n_head,
            "NKV": config.n_kv_head, "HD": config.head_dim, "H": config.hidden_dim,
            "V": config.vocab_size, "P": self.rope.shape[0], "eps": config.norm_eps,
            "wqkv": wqkv, "wo": wo, "w_gu": w_gu, "w_down": w_down,
            "head": _ptr(ffi, self.head), "rope": _ptr(ffi, self.rope), "ones": _ptr(ffi, self.ones)})


class Buffers:
    """Every intermediate of a decode step, for up to bmax rows (run.c's RunState); the step
    overwrites them all. Row b of each is the b-th sequence of the batch."""

    def __init__(self, config, bmax):
        C, H, V, HD = config.n_embd, config.hidden_dim, config.vocab_size, config.head_dim
        NH, NKV = config.n_head, config.n_kv_head
        f32 = np.float32
        self.bmax = bmax
        self.x = np.zeros((bmax, C), f32)                     # (B, C) residual stream; in: embeddings
        self.h = np.zeros((bmax, C), f32)                     # (B, C) x * rstd, a matmul's input
        self.rstd = np.zeros(bmax, f32)                       # (B,) RMSNorm's 1 / rms
        self.qkv = np.zeros((bmax, (NH + 2 * NKV) * HD), f32)  # (B, QD + 2KD) q | k | v, before RoPE
        self.q = np.zeros((bmax, NH, HD), f32)                # (B, NH, HD) rotated queries
        self.att = np.zeros((bmax, NH, HD), f32)              # (B, NH, HD) attention output
        self.o = np.zeros((bmax, C), f32)                     # (B, C) a block's residual update
        self.gu = np.zeros((bmax, 2 * H), f32)                # (B, 2H) gate | up
        self.a = np.zeros((bmax, H), f32)                     # (B, H) silu(gate) * up
        self.logits = np.zeros((bmax, V), f32)                # (B, V) out
        self.lengths = np.zeros(bmax, np.int32)               # (B,) cache lengths after this token
        self.c = self.lengths_p = None                        # the C struct and lengths' pointer
        ffi, lib = _load()
        if lib is not None:
            fields = ("x", "h", "rstd", "qkv", "q", "att", "o", "gu", "a", "logits")
            self.c = ffi.new("decode_buffers *", {f: _ptr(ffi, getattr(self, f), True) for f in fields})
            self.lengths_p = _ptr(ffi, self.lengths, True)


def cache_pointers(k, v):
    """(k, v, (L, NKV, HD)) for decode_step: C arrays of the L layers' cache pointers (None
    without C) and the shape they were checked for; k and v are lists of L (Bmax, NKV, S, HD)
    float32 arrays. Made once per cache."""
    ffi, lib = _load()
    if lib is None:
        return None
    if len(k) != len(v):
        raise ValueError(f"{len(k)} key arrays but {len(v)} value arrays")
    for i, a in enumerate(k + v):
        _check(f"cache array {i}", a, k[0].shape, ndim=4)
    shape = (len(k), k[0].shape[1], k[0].shape[3]) if k else (0, 0, 0)
    return (ffi.new("float *[]", [_ptr(ffi, a, True) for a in k]),
            ffi.new("float *[]", [_ptr(ffi, a, True) for a in v]), shape)


def decode_step_ref(weights, buf, cache, tokens, pos):
    """decode_step's NumPy twin: the model's own forward (nn/gpt.py) over cache rows 0..B-1."""
    B = len(tokens)
    kv = ([k[:B] for k in cache.k], [v[:B] for v in cache.v])          # (B, NKV, S, HD) views
    idx = np.asarray(tokens)[:, None]                                   # (B, 1)
    buf.logits[:B] = logits_last(weights.params, weights.config, idx, kv, np.asarray(pos))
    return buf.logits[:B]                                               # (B, V)


def decode_step(weights, buf, cache, tokens, pos):
    """Feed tokens (B,) at positions pos (B,) of cache rows 0..B-1; returns the logits (B, V),
    a view of buf.logits that the next call overwrites.

    cache: k, v (lists of n_layer (Bmax, NKV, S, HD) float32 arrays), batch (Bmax),
    capacity (S) and ptrs = cache_pointers(k, v) (generate/cache.py's KVCache). Row b's key
    and value go to slot pos[b] of its cache row, and its query attends to slots 0..pos[b].
    Raises ValueError, with nothing written to the cache, when a position is outside it.
    """
    ffi, lib = _load()
    if lib is None:
        return decode_step_ref(weights, buf, cache, tokens, pos)
    B = len(tokens)
    k_ptrs, v_ptrs, kv_shape = cache.ptrs
    if B > buf.bmax or B > cache.batch:
        raise ValueError(f"{B} rows do not fit buffers of {buf.bmax} rows or a cache of "
                         f"{cache.batch}")
    if kv_shape != weights.kv_shape:
        raise ValueError(f"the cache's (layers, NKV, HD) {kv_shape} are not the model's "
                         f"{weights.kv_shape}")
    weights.tok_emb.take(tokens, axis=0, out=buf.x[:B])                 # (B, C) embeddings
    np.add(pos, 1, out=buf.lengths[:B])                                 # (B,) lengths after the token
    if lib.decode_step(buf.c, k_ptrs, v_ptrs, weights.c, buf.lengths_p, B, cache.capacity):
        raise ValueError(f"decode positions {list(pos)} outside the cache (capacity "
                         f"{cache.capacity}, RoPE table {weights.rope.shape[0]})")
    return buf.logits[:B]                                               # (B, V)
