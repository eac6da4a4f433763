"""The model: a Llama-architecture transformer, its configuration, initialization, and the
forward and backward passes of the whole network, strung together from nn/layers.py and
nn/attention.py.

    x = tok_emb[idx]
    for each block:  x = x + attention(rmsnorm(x));  x = x + mlp(rmsnorm(x))
    logits = rmsnorm(x) @ lm_head^T           (tok_emb^T when the embeddings are tied)

Parameters and gradients are dicts name -> float32 array with identical keys (param_shapes).
    loss, cache = forward(params, config, x, targets=y);  grads = backward(cache)
Inference runs the same blocks with a KV cache (kv=..., pos=...): prefill writes the keys
and values of a prompt into the cache, decode feeds one token per row at its own position.

    python -m pytest tests/nn/test_gpt.py tests/nn/test_torch_parity.py

Read next: minillm/pretrain/ (training this model), minillm/generate/ (sampling from it).
Shapes: B batch, T time, C = n_embd, V vocab, H hidden_dim, NH heads, NKV key/value heads,
HD head dim, N = B*T, S KV-cache capacity.
"""
import math
from dataclasses import dataclass

import numpy as np

from minillm.nn.attention import attention_backward, attention_cached, attention_forward
from minillm.nn.layers import (embedding_backward, embedding_forward, linear_backward,
                               linear_forward, lm_head_loss_backward, lm_head_loss_forward,
                               rmsnorm_backward, rmsnorm_forward, rope_frequencies,
                               swiglu_backward, swiglu_forward)


MAX_SIZE = 1 << 20    # any one dimension (vocabulary, context, width, layers): far above real use


@dataclass
class GPTConfig:
    vocab_size: int
    context_len: int
    n_layer: int
    n_head: int
    n_kv_head: int
    n_embd: int
    hidden_dim: int            # SwiGLU inner size
    tie_embeddings: bool = False
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5

    def __post_init__(self):
        # subtle: a config also comes from files (config.json, an imported model's): check
        # every number, so a hostile 1e12 or -5 is a ValueError here, not a crash later
        for name in ("vocab_size", "context_len", "n_layer", "n_head", "n_kv_head", "n_embd",
                     "hidden_dim"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise ValueError(f"{name} must be an integer, not {value!r}")
            low = 0 if name == "n_layer" else 1     # no blocks: embeddings and head only
            if not low <= value <= MAX_SIZE:
                raise ValueError(f"{name} must be in {low}..{MAX_SIZE}, not {value}")
        for name in ("rope_theta", "norm_eps"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) \
                    or not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, not {value!r}")
        if not isinstance(self.tie_embeddings, bool):
            raise ValueError(f"tie_embeddings must be true or false, not {self.tie_embeddings!r}")
        if self.n_head < 1 or self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        if self.n_kv_head < 1 or self.n_head % self.n_kv_head:
            raise ValueError(f"n_head ({self.n_head}) must be a multiple of n_kv_head ({self.n_kv_head})")
        if self.head_dim % 2:
            raise ValueError(f"head_dim ({self.head_dim}) must be even for RoPE")

    @property
    def head_dim(self):
        return self.n_embd // self.n_head

    @classmethod
    def from_depth(cls, depth, vocab_size, context_len, **overrides):
        """The --depth dial: one number sets the model's shape (nanochat's idea).

            n_layer    = depth
            n_embd     = 64 * depth                 (aspect ratio 64)
            head_dim   = 64 if n_embd >= 256 else 32
            n_head     = n_embd // head_dim;  n_kv_head = n_head
            hidden_dim = 8/3 * n_embd rounded up to a multiple of 32  (SwiGLU's usual
                         2/3 of 4 * n_embd: about the parameters of a 4x GELU MLP)

        Explicit overrides win, and the rules fill in the rest from them (n_embd=128
        gives head_dim 32, 4 heads, hidden 352). depth 4 -> 256 wide, 4 heads, hidden 704;
        depth 6 -> 384 wide, 6 heads, hidden 1024.
        """
        shape = {"n_layer": depth, "n_embd": 64 * depth}
        shape.update({k: v for k, v in overrides.items() if k in shape})
        head_dim = 64 if shape["n_embd"] >= 256 else 32
        shape["n_head"] = overrides.get("n_head", max(1, shape["n_embd"] // head_dim))
        shape["n_kv_head"] = overrides.get("n_kv_head", shape["n_head"])
        shape["hidden_dim"] = overrides.get("hidden_dim", 32 * math.ceil(8 * shape["n_embd"] / 3 / 32))
        rest = {k: v for k, v in overrides.items() if k not in shape}
        return cls(vocab_size=vocab_size, context_len=context_len, **shape, **rest)


# ---- parameters --------------------------------------------------------------------------

def param_shapes(config):
    """name -> shape, in the canonical order (also the checkpoint's tensor order)."""
    C, H, HD, V = config.n_embd, config.hidden_dim, config.head_dim, config.vocab_size
    QD, KD = config.n_head * HD, config.n_kv_head * HD
    shapes = {"tok_emb": (V, C)}
    block = {"attn_norm": (C,), "wq": (QD, C), "wk": (KD, C), "wv": (KD, C), "wo": (C, QD),
             "mlp_norm": (C,), "w_gate": (H, C), "w_up": (H, C), "w_down": (C, H)}
    for i in range(config.n_layer):
        shapes.update({f"blocks.{i}.{name}": shape for name, shape in block.items()})
    shapes["final_norm"] = (C,)
    if not config.tie_embeddings:
        shapes["lm_head"] = (V, C)
    return shapes


def num_params(config):
    return sum(math.prod(shape) for shape in param_shapes(config).values())


def init_params(config, seed=0):
    """name -> float32 array, drawn from numpy's default_rng(seed) in param_shapes order.

    Norm weights are 1. Every matrix is normal(0, 0.02), except the two projections that
    write into the residual stream (wo, w_down), which get 0.02 / sqrt(2 * n_layer) so the
    stream's variance does not grow with depth (GPT-2's scheme).
    """
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in param_shapes(config).items():
        if len(shape) == 1:
            params[name] = np.ones(shape, dtype=np.float32)
            continue
        std = 0.02
        if name.endswith((".wo", ".w_down")):
            std = 0.02 / math.sqrt(2 * config.n_layer)
        params[name] = rng.standard_normal(shape, dtype=np.float32) * np.float32(std)
    return params


BLOCK_PARAMS = ("attn_norm", "wq", "wk", "wv", "wo", "mlp_norm", "w_gate", "w_up", "w_down")


def block_params(params, i):
    """Block i's parameters under their short names (attn_norm, wq, ..., w_down)."""
    return {name: params[f"blocks.{i}.{name}"] for name in BLOCK_PARAMS}


# ---- one transformer block ---------------------------------------------------------------

def mlp_forward(x, w_gate, w_up, w_down):
    """y (..., C) = w_down(silu(w_gate x) * w_up x): one matmul makes gate and up together."""
    w_gu = np.concatenate((w_gate, w_up))                               # (2H, C)
    gu, gu_cache = linear_forward(x, w_gu)                              # (..., 2H)
    a, act_cache = swiglu_forward(gu)                                   # (..., H)
    y, down_cache = linear_forward(a, w_down)                           # (..., C)
    return y, (gu_cache, act_cache, down_cache)


def mlp_backward(dy, cache):
    """dx (..., C), dw_gate, dw_up, dw_down of mlp_forward."""
    gu_cache, act_cache, down_cache = cache
    da, dw_down = linear_backward(dy, down_cache)                       # (..., H), (C, H)
    dgu = swiglu_backward(da, act_cache)                                # (..., 2H)
    dx, dw_gu = linear_backward(dgu, gu_cache)                          # (..., C), (2H, C)
    H = dw_gu.shape[0] // 2
    return dx, dw_gu[:H], dw_gu[H:], dw_down


def block_forward(x, p, config, freqs, kv=None, pos=0):
    """x (B, T, C) -> (B, T, C) through one block; p = block_params(params, i).

    With kv (this layer's KV cache, see attention.attention_cached) the attention reads and
    extends the cache, and nothing is kept for backward (the returned cache is None).
    """
    h, norm1 = rmsnorm_forward(x, p["attn_norm"], config.norm_eps)      # (B, T, C)
    if kv is None:
        a, attn = attention_forward(h, p["wq"], p["wk"], p["wv"], p["wo"],
                                    config.n_head, config.n_kv_head, freqs)  # (B, T, C)
    else:
        a = attention_cached(h, p["wq"], p["wk"], p["wv"], p["wo"], config.n_head,
                             config.n_kv_head, freqs, kv, pos)          # (B, T, C)
        attn = None
    x2 = np.add(x, a, out=a)                                            # (B, T, C) residual
    h2, norm2 = rmsnorm_forward(x2, p["mlp_norm"], config.norm_eps)     # (B, T, C)
    m, mlp = mlp_forward(h2, p["w_gate"], p["w_up"], p["w_down"])       # (B, T, C)
    x3 = np.add(x2, m, out=m)                                           # (B, T, C) residual
    return x3, ((norm1, attn, norm2, mlp) if kv is None else None)


def block_backward(dx3, cache):
    """dx (B, T, C) and the block's gradients under their short names."""
    norm1, attn, norm2, mlp = cache
    g = {}
    # x3 = x2 + m  and  m = mlp(h2)
    dh2, g["w_gate"], g["w_up"], g["w_down"] = mlp_backward(dx3, mlp)
    # h2 = rmsnorm(x2); x2 also reaches x3 directly (the residual): sum both paths
    dx2, g["mlp_norm"] = rmsnorm_backward(dh2, norm2)
    dx2 += dx3
    # x2 = x + a  and  a = attention(h)
    dh, g["wq"], g["wk"], g["wv"], g["wo"] = attention_backward(dx2, attn)
    # h = rmsnorm(x); x also reaches x2 directly
    dx, g["attn_norm"] = rmsnorm_backward(dh, norm1)
    dx += dx2
    return dx, g


# ---- the whole model ---------------------------------------------------------------------

def _check_idx(config, idx):
    if idx.ndim != 2:
        raise ValueError(f"idx must be (B, T) token ids, got shape {idx.shape}")
    if idx.shape[1] > config.context_len:
        raise ValueError(f"sequence length {idx.shape[1]} exceeds context_len {config.context_len}")
    if idx.size and (idx.min() < 0 or idx.max() >= config.vocab_size):
        raise ValueError(f"token ids must be in 0..{config.vocab_size - 1}, got {idx.min()}..{idx.max()}")


def _check_kv(config, idx, kv, pos):
    """The KV cache's arrays and the positions, checked before anything is written."""
    B, T = idx.shape
    k, v = kv
    if len(k) != config.n_layer or len(v) != config.n_layer:
        raise ValueError(f"kv must hold {config.n_layer} key and {config.n_layer} value arrays")
    S = k[0].shape[2] if config.n_layer else config.context_len
    shape = (B, config.n_kv_head, S, config.head_dim)
    for a in k + v:
        if a.shape != shape or a.dtype != np.float32 or not a.flags.c_contiguous:
            raise ValueError(f"kv arrays must be C-contiguous float32 {shape}, got {a.dtype} {a.shape}")
    last = min(S, config.context_len)                                   # positions 0..last-1 fit
    if np.ndim(pos) == 0:
        lo, hi = int(pos), int(pos) + T - 1
    elif np.shape(pos) == (B,) and T == 1:
        lo, hi = (int(pos.min()), int(pos.max())) if B else (0, 0)
    else:
        raise ValueError(f"pos must be an int, or {B} ints (one per row) with T = 1; "
                         f"got {np.shape(pos)} with T = {T}")
    if lo < 0 or hi >= last:
        raise ValueError(f"positions {lo}..{hi} are outside the cache (positions 0..{last - 1})")


def blocks_forward(params, config, idx, keep_cache=True, kv=None, pos=0):
    """The residual stream x (B, T, C) after the last block (before the final norm),
    and the caches that lead to it (no block caches when keep_cache is False).

    kv = (k, v), lists of n_layer cache arrays (B, NKV, S, HD) float32: the KV cache of
    idx's B rows, read and extended at the positions pos (see attention.attention_cached).
    """
    _check_idx(config, idx)
    B, T = idx.shape
    dtype = params["tok_emb"].dtype
    HD, theta = config.head_dim, config.rope_theta
    if kv is None:
        freqs = rope_frequencies(T, HD, theta, dtype=dtype)             # (T, HD/2)
    else:
        pos = pos if np.ndim(pos) == 0 else np.asarray(pos)            # int, or (B,)
        _check_kv(config, idx, kv, pos)
        if np.ndim(pos) == 0:
            freqs = rope_frequencies(T, HD, theta, pos0=int(pos), dtype=dtype)  # (T, HD/2)
        else:
            table = rope_frequencies(int(pos.max()) + 1, HD, theta, dtype=dtype)  # (P, HD/2)
            freqs = table[pos]                                          # (B, HD/2)
    x, emb = embedding_forward(idx, params["tok_emb"])                  # (B, T, C)
    blocks = []
    for i in range(config.n_layer):
        layer_kv = None if kv is None else (kv[0][i], kv[1][i])
        x, block = block_forward(x, block_params(params, i), config, freqs, layer_kv, pos)  # (B, T, C)
        if keep_cache:
            blocks.append(block)
    return x, {"emb": emb, "blocks": blocks}


def forward(params, config, idx, targets=None, loss_mask=None, grad=True, kv=None, pos=0, head=True):
    """Run the model on idx (B, T) token ids.

    targets None: returns (logits (B, T, V), cache).
    head=False: returns (h (B, T, C), cache), the final norm's output without the LM head,
    for a head of one's own (the reward model's scalar, rlhf/reward_model.py); backward
    then takes dh (B, T, C).
    targets (B, T), -1 = ignored: returns (loss, cache), the mean cross-entropy over the
    counted tokens, weighted by loss_mask (B, T) when given (0 = ignored). The LM head and
    the loss run fused, chunk by chunk of rows (layers.lm_head_loss_forward), so the
    (B*T, V) logits are never materialized, and the head's backward is done already.
    grad=False (evaluation) keeps no activations; the cache is then None.
    kv, pos: run over a KV cache (inference, see blocks_forward); implies grad=False.
    """
    grad = grad and kv is None
    x, cache = blocks_forward(params, config, idx, grad, kv, pos)       # (B, T, C)
    h, cache["final_norm"] = rmsnorm_forward(x, params["final_norm"], config.norm_eps)  # (B, T, C)
    B, T, C = h.shape
    w_head = params["tok_emb"] if config.tie_embeddings else params["lm_head"]  # (V, C)
    if not head:
        out, head = h, None
    elif targets is None:
        logits, head = linear_forward(h, w_head)                        # (B, T, V)
        out = logits
    else:
        if np.shape(targets) != (B, T) or (loss_mask is not None and np.shape(loss_mask) != (B, T)):
            raise ValueError(f"targets and loss_mask must have shape {(B, T)}, got "
                             f"{np.shape(targets)} and {np.shape(loss_mask)}")
        out, head = lm_head_loss_forward(h.reshape(B * T, C), w_head, targets, loss_mask,
                                         grad=grad)
    if not grad:
        return out, None
    cache.update(config=config, head=head, loss=targets is not None, shape=(B, T, C),
                 names=list(params))
    return out, cache


def backward(cache, dlogits=None, dh=None):
    """grads: a dict with exactly the keys of params.

    After a forward with targets, the gradient of its loss; after one without, pass
    dlogits (B, T, V); after one with head=False, dh (B, T, C) (the LM head's gradient is
    then 0). Backward consumes the cache (it frees each block's activations as it goes), so
    call it once per forward.
    """
    config = cache["config"]
    grads = {}
    if cache["head"] is None:
        if dh is None:
            raise ValueError("this forward had head=False: pass dh (B, T, C) to backward")
        dw_head = None                                                  # the LM head was not used
    elif cache["loss"]:
        dh, dw_head = lm_head_loss_backward(1.0, cache.pop("head"))     # (N, C), (V, C)
    else:
        if dlogits is None:
            raise ValueError("this forward had no targets: pass dlogits (B, T, V) to backward")
        dh, dw_head = linear_backward(dlogits, cache.pop("head"))       # (B, T, C), (V, C)
    dh = dh.reshape(cache["shape"])                                     # (B, T, C)
    dx, grads["final_norm"] = rmsnorm_backward(dh, cache.pop("final_norm"))  # (B, T, C)
    blocks = cache["blocks"]
    for i in reversed(range(config.n_layer)):
        dx, block_grads = block_backward(dx, blocks.pop())              # (B, T, C)
        grads.update({f"blocks.{i}.{name}": g for name, g in block_grads.items()})
    if config.tie_embeddings:
        # tied: the table is both the embedding and the head; its gradient sums both uses
        grads["tok_emb"] = embedding_backward(dx, cache.pop("emb"), dweight=dw_head)
    else:
        grads["tok_emb"] = embedding_backward(dx, cache.pop("emb"))
        grads["lm_head"] = dw_head if dw_head is not None else np.zeros_like(grads["tok_emb"])
    return {name: grads[name] for name in cache["names"]}


def logits_last(params, config, idx, kv=None, pos=0, lengths=None):
    """logits (B, V) at one position per row only: the final norm and head run on B rows.

    The position is lengths[b] - 1 of row b (rows padded on the right to a common T), by
    default T - 1, the last. kv, pos: run over a KV cache (see blocks_forward).
    """
    x, _ = blocks_forward(params, config, idx, False, kv, pos)          # (B, T, C)
    B, T = idx.shape
    last = np.full(B, T) if lengths is None else np.asarray(lengths)    # (B,)
    x_last = np.ascontiguousarray(x[np.arange(B), last - 1])            # (B, C)
    h, _ = rmsnorm_forward(x_last, params["final_norm"], config.norm_eps)  # (B, C)
    w_head = params["tok_emb"] if config.tie_embeddings else params["lm_head"]  # (V, C)
    logits, _ = linear_forward(h, w_head)                               # (B, V)
    return logits
