"""The model's forward pass for inference: a KV cache, prefill, and one-token decode steps.

Training runs the whole sequence through the model at once (nn/gpt.py). Generation adds
one token at a time, and recomputing the whole prefix for every new token would cost
O(T^2) matmul work per sequence. A token's keys and values never change once computed
(causal attention: position t only sees 0..t), so they are kept in a cache:

    prefill(rows, idx (B, T))    the prompt in ONE forward pass: every position's K and V
                                 go into the cache rows (RoPE at absolute positions), and
                                 the logits of each row's last prompt token come out
    decode(tokens (B,), pos (B,))  one new token per row at its own position pos[b]: its
                                 K, V are written at cache[b, :, pos[b]] and its query
                                 attends to cache[b, :, :pos[b] + 1] (KA.attention_decode)

The cache of a layer is a pair of (Bmax, NKV, S, HD) float32 arrays allocated once (S =
context_len). Rows of a batch may be at different positions: decode takes a position per
row, and a row never reads past its own length.

At batch 1 a decode step is ~30 small kernel calls, so the per-call cost of Python
matters as much as the arithmetic (llama2.c's run.c has none). DecodeModel therefore:
  - fuses projections once: W_qkv = [wq; wk; wv] and W_gu = [w_gate; w_up];
  - precomputes RoPE as a (S, HD/2) table of complex rotations, gathered by position;
  - writes every intermediate into buffers allocated up front (the `Buffers` below,
    like run.c's RunState), with cffi pointers to them made once;
  - runs the whole step, every layer and the head, as ONE C call (csrc/decode.c's
    decode_step, which calls the same kernels): a tiny model's step took ~75 us, now ~30.
The step-by-step sequence in Python (_decode_steps) is decode_step's twin: it runs on the
C kernels when tests switch use_c_step off, and on the NumPy twins without the extension.

    python -m pytest tests/test_generate.py tests/test_generate_decode_step.py

Shapes: B rows (sequences), T prompt length, C = n_embd, V vocab, NH / NKV query / KV
heads, HD head dim, S cache capacity, QD = NH*HD, KD = NKV*HD, H SwiGLU hidden size.
"""

import numpy as np

from minillm import clib
from minillm.nn.kernels import attention as KA
from minillm.nn.kernels import layers as KL
from minillm.nn.attention import merge_heads, split_qkv
from minillm.nn.layers import linear_forward, rmsnorm_forward, rope_frequencies, swiglu_forward


class KVCache:
    """Keys and values of every layer: k[i], v[i] (B, NKV, S, HD) float32, zero-filled."""

    def __init__(self, config, batch, capacity=None):
        S = capacity or config.context_len
        shape = (batch, config.n_kv_head, S, config.head_dim)
        self.batch, self.capacity = batch, S
        self.k = [np.zeros(shape, np.float32) for _ in range(config.n_layer)]  # (B, NKV, S, HD) each
        self.v = [np.zeros(shape, np.float32) for _ in range(config.n_layer)]  # (B, NKV, S, HD) each
        self.ptrs = None        # cffi pointers to k and v (lists, and C arrays of them),
                                # made by DecodeModel on first use

    def copy_rows(self, dst, src, length):
        """cache[dst[i], :, :length] = cache[src[i], :, :length] for every layer (the
        right-hand side is gathered first, so dst and src may overlap)."""
        for a in self.k + self.v:
            a[dst, :, :length] = a[src, :, :length]


class _Layer:
    """One block's weights in the engine's layout: fused, contiguous, norms folded in.

    RMSNorm's weight w scales the normalized input of the matmul that follows it, and
    (x * rstd * w) W^T = (x * rstd) (W * w)^T: so w is multiplied into the columns of that
    matrix once, here, and a decode step only computes x * rstd.
    """

    def __init__(self, p):
        wqkv = np.concatenate((p["wq"], p["wk"], p["wv"])) * p["attn_norm"]       # (QD + 2KD, C)
        w_gu = np.concatenate((p["w_gate"], p["w_up"])) * p["mlp_norm"]           # (2H, C)
        self.wqkv = np.ascontiguousarray(wqkv, dtype=np.float32)
        self.wo = np.ascontiguousarray(p["wo"], dtype=np.float32)                  # (C, QD)
        self.w_gu = np.ascontiguousarray(w_gu, dtype=np.float32)
        self.w_down = np.ascontiguousarray(p["w_down"], dtype=np.float32)          # (C, H)


class Buffers:
    """Every intermediate of a decode step, for up to Bmax rows (run.c's RunState)."""

    def __init__(self, config, bmax):
        C, H, V, HD = config.n_embd, config.hidden_dim, config.vocab_size, config.head_dim
        NH, NKV = config.n_head, config.n_kv_head
        f32 = np.float32
        self.bmax = bmax
        self.x = np.zeros((bmax, C), f32)                     # (B, C) residual stream
        self.h = np.zeros((bmax, C), f32)                     # (B, C) x * rstd, a matmul's input
        self.ss = np.zeros(bmax, f32)                         # (B,) RMSNorm's 1 / rms
        self.qkv = np.zeros((bmax, (NH + 2 * NKV) * HD), f32)  # (B, QD + 2KD)
        self.q = np.zeros((bmax, NH, HD), f32)                # (B, NH, HD) contiguous query
        self.att = np.zeros((bmax, NH, HD), f32)              # (B, NH, HD) attention output
        self.o = np.zeros((bmax, C), f32)                     # (B, C) a block's residual update
        self.gu = np.zeros((bmax, 2 * H), f32)                # (B, 2H) gate | up
        self.a = np.zeros((bmax, H), f32)                     # (B, H) silu(gate) * up
        self.logits = np.zeros((bmax, V), f32)                # (B, V)
        self.rot = np.zeros((bmax, HD // 2), np.complex64)    # (B, HD/2) RoPE of each row's position
        self.lengths = np.zeros(bmax, np.int32)               # (B,) cache length after this token
        self.rows = np.arange(bmax)                           # (B,) row indices
        # q and k rotate together: the first QD + KD floats of qkv as (NH + NKV) heads of
        # HD/2 complex numbers (pairs (x[2i], x[2i+1]) = x[2i] + i x[2i+1]).
        self.qk_c = self.qkv[:, :(NH + NKV) * HD].view(np.complex64).reshape(bmax, NH + NKV, HD // 2)


class DecodeModel:
    """The model's weights laid out for inference, and its cached forward passes.

        model = DecodeModel(params, config)
        cache = KVCache(config, batch=4)
        logits = model.prefill(cache, rows=slice(0, 2), idx=ids, lengths=[7, 5])  # (2, V)
        logits = model.decode(cache, tokens, pos)                                # (B, V)
    """

    def __init__(self, params, config, max_batch=1):
        self.config = config
        self.tok_emb = np.ascontiguousarray(params["tok_emb"], dtype=np.float32)    # (V, C)
        head = params["tok_emb"] if config.tie_embeddings else params["lm_head"]
        self.head = np.ascontiguousarray(head * params["final_norm"], dtype=np.float32)  # (V, C) norm folded
        self.layers = [_Layer({k: params[f"blocks.{i}.{k}"] for k in
                               ("attn_norm", "wq", "wk", "wv", "wo", "mlp_norm", "w_gate",
                                "w_up", "w_down")}) for i in range(config.n_layer)]
        self.ones = np.ones(config.n_embd, np.float32)                           # (C,) folded norms
        self.rope = rope_frequencies(config.context_len, config.head_dim, config.rope_theta)  # (S, HD/2)
        ffi, lib = clib._load()
        self.ffi, self.lib = ffi, lib if lib is not None else _NumpyKernels()
        self.ptr = (lambda a: ffi.from_buffer("int[]" if a.dtype == np.int32 else "float[]", a)) \
            if lib is not None else (lambda a: a)
        for layer in self.layers:
            layer.p = [self.ptr(w) for w in (layer.wqkv, layer.wo, layer.w_gu, layer.w_down)]
        self.head_p = self.ptr(self.head)
        self.ones_p = self.ptr(self.ones)
        # With the C library a decode step is one call (csrc/decode.c); the step-by-step
        # sequence in _decode_steps is its twin (tests switch use_c_step off to compare) and
        # also serves an extension built before decode.c existed.
        self.use_c_step = lib is not None and hasattr(lib, "decode_step")
        self.c_weights = self._c_weights() if self.use_c_step else None
        self.buf = None
        self.reserve(max_batch)

    def _c_weights(self):
        """csrc/kernels.h's decode_weights for decode_step; the arrays it points to are kept
        alive on self."""
        cfg, ffi = self.config, self.ffi
        self._layer_ptrs = [ffi.new("float *[]", [layer.p[j] for layer in self.layers])
                            for j in range(4)]                                  # wqkv, wo, w_gu, w_down
        rope = self.rope.view(np.float32)                                       # (P, HD): (cos, sin) pairs
        self._rope_p = self.ptr(rope)
        wqkv, wo, w_gu, w_down = self._layer_ptrs
        return ffi.new("decode_weights *", {
            "n_layer": cfg.n_layer, "C": cfg.n_embd, "NH": cfg.n_head, "NKV": cfg.n_kv_head,
            "HD": cfg.head_dim, "H": cfg.hidden_dim, "V": cfg.vocab_size, "P": rope.shape[0],
            "eps": cfg.norm_eps, "wqkv": wqkv, "wo": wo, "w_gu": w_gu, "w_down": w_down,
            "head": self.head_p, "rope": self._rope_p, "ones": self.ones_p})

    def reserve(self, batch):
        """Make the decode buffers hold at least `batch` rows."""
        if self.buf is None or self.buf.bmax < batch:
            b = self.buf = Buffers(self.config, batch)
            b.p = {name: self.ptr(getattr(b, name)) for name in
                   ("x", "h", "ss", "qkv", "q", "att", "o", "gu", "a", "logits", "lengths")}
            if self.c_weights is not None:                                      # decode_step's view
                fields = {name: b.p[name] for name in
                          ("x", "h", "qkv", "q", "att", "o", "gu", "a", "logits")}
                b.c = self.ffi.new("decode_buffers *", {**fields, "rstd": b.p["ss"]})

    # ---- prefill: the prompt in one forward pass ----------------------------------------

    def prefill(self, cache, rows, idx, lengths=None, pos0=0):
        """Run idx (B, T) through the model at positions pos0..pos0+T-1 of cache rows `rows`
        (a slice of B consecutive rows), writing their K and V into the cache. Returns the
        logits (B, V) at position lengths[b] - 1 of each row (default T: the last).

        Rows may be padded on the right to a common T: causal attention keeps a real
        position from ever seeing the padding, and the padding's K/V (written past a row's
        length) are overwritten by decode before any query can reach them.
        """
        cfg = self.config
        B, T = idx.shape
        r0, r1 = rows.start, rows.stop
        if r1 - r0 != B or pos0 + T > cache.capacity:
            raise ValueError(f"prefill of {B} rows x {T} tokens at {pos0} does not fit "
                             f"cache rows {r0}:{r1} of capacity {cache.capacity}")
        rot = self.rope[pos0:pos0 + T]                                          # (T, HD/2)
        x = self.tok_emb[idx]                                                   # (B, T, C)
        for layer, kc, vc in zip(self.layers, cache.k, cache.v):
            kc, vc = kc[r0:r1], vc[r0:r1]                                       # (B, NKV, S, HD) views
            h, _ = rmsnorm_forward(x, self.ones, cfg.norm_eps)                  # (B, T, C)
            qkv, _ = linear_forward(h, layer.wqkv)                              # (B, T, QD + 2KD)
            q, k, v = split_qkv(qkv, cfg.n_head, cfg.n_kv_head, rot)            # (B, NH|NKV, T, HD)
            kc[:, :, pos0:pos0 + T] = k
            vc[:, :, pos0:pos0 + T] = v
            out = KA.attention_prefill(q, kc, vc, pos0)                    # (B, NH, T, HD)
            o, _ = linear_forward(merge_heads(out), layer.wo)                   # (B, T, C)
            x += o
            h, _ = rmsnorm_forward(x, self.ones, cfg.norm_eps)                  # (B, T, C)
            gu, _ = linear_forward(h, layer.w_gu)                               # (B, T, 2H)
            a, _ = swiglu_forward(gu)                                           # (B, T, H)
            o, _ = linear_forward(a, layer.w_down)                              # (B, T, C)
            x += o
        last = np.full(B, T) if lengths is None else np.asarray(lengths)        # (B,)
        xl = np.ascontiguousarray(x[np.arange(B), last - 1])                    # (B, C)
        h, _ = rmsnorm_forward(xl, self.ones, cfg.norm_eps)                     # (B, C)
        logits, _ = linear_forward(h, self.head)                                # (B, V)
        return logits

    # ---- decode: one token per row ------------------------------------------------------

    def decode(self, cache, tokens, pos):
        """Feed tokens (B,) at positions pos (B,) of cache rows 0..B-1; returns the logits
        (B, V), a view of a buffer that the next call overwrites.

        With the C library the whole step is one call, csrc/decode.c's decode_step (rows
        may be at different positions: it takes each row's cache length). Without it, or
        with use_c_step off, _decode_steps runs the same sequence from Python.
        """
        B = len(tokens)
        if B > self.buf.bmax:
            self.reserve(B)
        if not self.use_c_step:
            return self._decode_steps(cache, tokens, pos)
        b = self.buf
        self.tok_emb.take(tokens, axis=0, out=b.x[:B])                          # (B, C)
        np.add(pos, 1, out=b.lengths[:B])                                       # (B,) lengths after this token
        k_arr, v_arr = self._cache_ptrs(cache)[2:]
        if self.lib.decode_step(b.c, k_arr, v_arr, self.c_weights, b.p["lengths"], B,
                                cache.capacity):
            raise ValueError(f"decode positions {list(pos)} outside the cache (capacity "
                             f"{cache.capacity}, RoPE table {self.rope.shape[0]})")
        return b.logits[:B]

    def _decode_steps(self, cache, tokens, pos):
        """decode() as a lean sequence of kernel calls on fixed buffers: the C kernels take
        the pointers made in reserve(), NumPy works in place. At B = 1 the query is read
        straight out of qkv and the cache is written with plain indexing."""
        B = len(tokens)
        b, cfg, lib = self.buf, self.config, self.lib
        p = b.p
        C, NH, NKV, HD, H = cfg.n_embd, cfg.n_head, cfg.n_kv_head, cfg.head_dim, cfg.hidden_dim
        QD, KD, S = NH * HD, NKV * HD, cache.capacity
        kp, vp = self._cache_ptrs(cache)[:2]
        x, qkv = b.x[:B], b.qkv[:B]
        self.tok_emb.take(tokens, axis=0, out=x)                                # (B, C)
        self.rope.take(pos, axis=0, out=b.rot[:B])                              # (B, HD/2)
        np.add(pos, 1, out=b.lengths[:B])
        rot, qk = b.rot[:B, None, :], b.qk_c[:B]                                # (B, 1, HD/2), (B, NH+NKV, HD/2)
        k_new = qkv[:, QD:QD + KD].reshape(B, NKV, HD)                          # (B, NKV, HD) views
        v_new = qkv[:, QD + KD:].reshape(B, NKV, HD)
        at = (0, slice(None), int(pos[0])) if B == 1 else (b.rows[:B], slice(None), pos)
        q_p = p["qkv"] if B == 1 else p["q"]                # B = 1: q is qkv's first QD floats
        ones, eps = self.ones_p, cfg.norm_eps               # RMSNorm weights are folded into the matmuls
        for i, layer in enumerate(self.layers):
            wqkv_p, wo_p, wgu_p, wdown_p = layer.p
            lib.rmsnorm_forward(p["h"], p["ss"], p["x"], ones, B, C, eps)
            lib.matmul_forward(p["qkv"], p["h"], wqkv_p, B, C, QD + 2 * KD)     # qkv (B, QD + 2KD)
            np.multiply(qk, rot, out=qk)                                        # RoPE on q and k
            cache.k[i][at] = k_new[0] if B == 1 else k_new
            cache.v[i][at] = v_new[0] if B == 1 else v_new
            if B > 1:
                np.copyto(b.q[:B], qkv[:, :QD].reshape(B, NH, HD))
            lib.attention_decode(p["att"], q_p, kp[i], vp[i], p["lengths"], B, NH, NKV, S, HD)
            lib.matmul_forward(p["o"], p["att"], wo_p, B, QD, C)                # o (B, C)
            x += b.o[:B]
            lib.rmsnorm_forward(p["h"], p["ss"], p["x"], ones, B, C, eps)
            lib.matmul_forward(p["gu"], p["h"], wgu_p, B, C, 2 * H)             # gu (B, 2H)
            lib.swiglu_forward(p["a"], p["gu"], B, H)                          # a (B, H)
            lib.matmul_forward(p["o"], p["a"], wdown_p, B, H, C)                # o (B, C)
            x += b.o[:B]
        lib.rmsnorm_forward(p["h"], p["ss"], p["x"], ones, B, C, eps)
        lib.matmul_forward(p["logits"], p["h"], self.head_p, B, C, cfg.vocab_size)  # (B, V)
        return b.logits[:B]

    def _cache_ptrs(self, cache):
        """(k pointers, v pointers, C arrays of them or None), made once per cache."""
        if cache.ptrs is None:
            kp, vp = [self.ptr(k) for k in cache.k], [self.ptr(v) for v in cache.v]
            arrays = (self.ffi.new("float *[]", kp), self.ffi.new("float *[]", vp)) \
                if self.c_weights is not None else (None, None)
            cache.ptrs = (kp, vp) + arrays
        return cache.ptrs


class _NumpyKernels:
    """The two decode kernels on arrays instead of pointers (no C extension): the same
    calls as the C library's, sizes included, so decode() has one code path."""

    @staticmethod
    def matmul_forward(out, inp, weight, N, C, OC):
        x = inp.reshape(-1)[:N * C].reshape(N, C)                               # (N, C)
        out.reshape(-1)[:N * OC] = (x @ weight.T).reshape(-1)

    @staticmethod
    def rmsnorm_forward(out, rstd, inp, weight, N, C, eps):
        out[:N], rstd[:N] = KL.rmsnorm_forward_ref(inp[:N], weight, eps)

    @staticmethod
    def swiglu_forward(out, gu, N, H):
        out[:N] = KL.swiglu_forward_ref(gu[:N])

    @staticmethod
    def attention_decode(out, q, kcache, vcache, lengths, B, NH, NKV, S, HD):
        qb = q.reshape(-1)[:B * NH * HD].reshape(B, NH, HD)                     # (B, NH, HD)
        res = KA.attention_decode_ref(qb, kcache[:B], vcache[:B], lengths[:B])
        out.reshape(-1)[:B * NH * HD] = res.reshape(-1)
