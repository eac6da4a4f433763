"""Multi-head causal self-attention with grouped key/value heads (GQA), forward and backward.

    q = rope(x Wq^T), k = rope(x Wk^T), v = x Wv^T      split into heads
    out = softmax(q k^T / sqrt(HD) + causal mask) v     (KA.attention_forward)
    y = merge_heads(out) Wo^T

NH query heads share NKV key/value heads: query head h reads KV head h // (NH // NKV).
The three projections run as one matmul against [Wq; Wk; Wv] (concatenated per call; the
parameters stay separate), so backward also makes dx with one matmul instead of three
matmuls and two adds.

Layouts: the projections produce (B, T, heads, HD) rows, the kernels want (B, heads, T, HD).
Each transpose is a full pass over memory, so they are fused with work that must touch the
data anyway: one kernel (kernels_layers.rope_split_qkv) reads the projection's rows once and
writes q and k rotated by RoPE, and v, in kernel layout; backward's kernel rotates dq, dk
back and writes them with dv straight into the rows of dqkv. Only out and its gradient are
plain transposing copies (merge_heads and split_heads, also C kernels on float32).

    python -m pytest tests/test_attention_layer.py

Shapes: B batch, T time, C channels, NH query heads, NKV key/value heads, HD head dim,
QD = NH*HD, KD = NKV*HD.
"""
import numpy as np

from minillm.nn.kernels import attention as KA
from minillm.nn.kernels import layers as KL
from minillm.nn.kernels import attention as KA
from minillm.nn.kernels import layers as KL
from minillm.nn.layers import linear_backward, linear_forward


def split_qkv(qkv, n_head, n_kv_head, freqs):
    """qkv (B, T, QD + 2 KD) -> q (B, NH, T, HD), k, v (B, NKV, T, HD), contiguous, with
    RoPE (freqs (T, HD/2), see layers.rope_frequencies) applied to q and k.

    The inference engine uses this too: it writes k, v into its cache at positions
    pos0.. and passes the matching rope_frequencies(..., pos0=pos0).
    """
    if qkv.dtype == np.float32:
        return KL.rope_split_qkv(np.ascontiguousarray(qkv), n_head, n_kv_head, freqs)
    return KL.rope_split_qkv_ref(qkv, n_head, n_kv_head, freqs)


def split_qkv_backward(dq, dk, dv, freqs):
    """dqkv (B, T, QD + 2 KD) of split_qkv: dq, dk rotated back, all three in rows again."""
    split_back = KL.rope_split_qkv_backward if dq.dtype == np.float32 else KL.rope_split_qkv_backward_ref
    return split_back(dq, dk, dv, freqs)


def merge_heads(out):
    """out (B, NH, T, HD) -> (B, T, NH*HD), contiguous."""
    if out.dtype == np.float32:
        return KL.merge_heads(np.ascontiguousarray(out))                # (B, T, QD)
    return KL.merge_heads_ref(out)                                      # (B, T, QD)


def split_heads(y, n_head):
    """y (B, T, NH*HD) -> (B, NH, T, HD), contiguous: merge_heads' inverse (and backward)."""
    if y.dtype == np.float32:
        return KL.split_heads(np.ascontiguousarray(y), n_head)          # (B, NH, T, HD)
    return KL.split_heads_ref(y, n_head)                                # (B, NH, T, HD)


def _attend(q, k, v):
    if q.dtype == np.float32:
        return KA.attention_forward(q, k, v)
    return KA.attention_forward_ref(q, k, v)


def _attend_backward(dout, q, k, v, out, lse):
    if q.dtype == np.float32:
        return KA.attention_backward(dout, q, k, v, out, lse)
    return KA.attention_backward_ref(dout, q, k, v, out, lse)


def attention_forward(x, wq, wk, wv, wo, n_head, n_kv_head, freqs):
    """y (B, T, C) = causal GQA self-attention of x (B, T, C).

    wq (QD, C), wk and wv (KD, C), wo (C, QD); freqs (T, HD/2) from rope_frequencies.
    """
    wqkv = np.concatenate((wq, wk, wv))                                 # (QD + 2 KD, C)
    qkv, qkv_cache = linear_forward(x, wqkv)                            # (B, T, QD + 2 KD)
    q, k, v = split_qkv(qkv, n_head, n_kv_head, freqs)                  # (B, NH|NKV, T, HD)
    del qkv  # subtle: backward needs q, k, v in kernel layout, not the projection itself
    out, lse = _attend(q, k, v)                                         # (B, NH, T, HD), (B, NH, T)
    y = merge_heads(out)                                                # (B, T, QD)
    o, o_cache = linear_forward(y, wo)                                  # (B, T, C)
    return o, (qkv_cache, q, k, v, out, lse, o_cache, freqs)


def attention_backward(do, cache):
    """dx (B, T, C), dwq, dwk, dwv, dwo: the gradients of attention_forward."""
    qkv_cache, q, k, v, out, lse, o_cache, freqs = cache
    B, NH, T, HD = q.shape
    NKV = k.shape[1]
    # o = y wo^T
    dy, dwo = linear_backward(do, o_cache)                              # (B, T, QD), (C, QD)
    # y = merge_heads(out)
    dout = split_heads(dy, NH)                                          # (B, NH, T, HD)
    # out, lse = attention(q, k, v)
    dq, dk, dv = _attend_backward(dout, q, k, v, out, lse)              # (B, NH|NKV, T, HD)
    # q, k, v = split_qkv(qkv): inverse RoPE and the transposes
    dqkv = split_qkv_backward(dq, dk, dv, freqs)                        # (B, T, QD + 2 KD)
    # qkv = x [wq; wk; wv]^T
    dx, dwqkv = linear_backward(dqkv, qkv_cache)                        # (B, T, C), (QD + 2 KD, C)
    QD, KD = NH * HD, NKV * HD
    return dx, dwqkv[:QD], dwqkv[QD:QD + KD], dwqkv[QD + KD:], dwo
