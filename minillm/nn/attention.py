"""Multi-head causal self-attention with grouped key/value heads (GQA), forward and backward.

    q = rope(x Wq^T), k = rope(x Wk^T), v = x Wv^T      split into heads
    out = softmax(q k^T / sqrt(HD) + causal mask) v     (KA.attention_forward)
    y = merge_heads(out) Wo^T

NH query heads share NKV key/value heads: query head h reads KV head h // (NH // NKV).
The three projections run as one matmul against [Wq; Wk; Wv], so backward also makes dx
with one matmul. The layouts are fused with work that touches the data anyway: one kernel
reads the projection's rows once and writes q, k rotated by RoPE and v in head layout.
The attention core's NumPy math (forward with its log-sum-exp, backward with the row sums
D) is KA.attention_forward_ref / attention_backward_ref in nn/kernels/attention.py.

    python -m pytest tests/nn/test_attention.py

Read next: nn/gpt.py, which stacks these blocks into the model.

Shapes: B batch, T time, C channels, NH query heads, NKV key/value heads, HD head dim,
QD = NH*HD, KD = NKV*HD.
"""
import numpy as np

from minillm.nn.kernels import attention as KA
from minillm.nn.kernels import layers as KL
from minillm.nn.layers import linear_backward, linear_forward


def split_qkv(qkv, n_head, n_kv_head, freqs):
    """qkv (B, T, QD + 2 KD) -> q (B, NH, T, HD), k, v (B, NKV, T, HD), contiguous, with
    RoPE (freqs (T, HD/2), see layers.rope_frequencies) applied to q and k.

    The inference engine uses this too: it writes k, v into its cache at positions
    pos0.. and passes the matching rope_frequencies(..., pos0=pos0).
    """
    return KL.rope_split_qkv(np.ascontiguousarray(qkv), n_head, n_kv_head, freqs)


def merge_heads(out):
    """out (B, NH, T, HD) -> (B, T, NH*HD), contiguous."""
    return KL.merge_heads(np.ascontiguousarray(out))                    # (B, T, QD)


def attention_forward(x, wq, wk, wv, wo, n_head, n_kv_head, freqs):
    """y (B, T, C) = causal GQA self-attention of x (B, T, C).

    wq (QD, C), wk and wv (KD, C), wo (C, QD); freqs (T, HD/2) from rope_frequencies.
    """
    wqkv = np.concatenate((wq, wk, wv))                                 # (QD + 2 KD, C)
    qkv, qkv_cache = linear_forward(x, wqkv)                            # (B, T, QD + 2 KD)
    q, k, v = split_qkv(qkv, n_head, n_kv_head, freqs)                  # (B, NH|NKV, T, HD)
    del qkv  # subtle: backward needs q, k, v in kernel layout, not the projection itself
    # S = q k^T / sqrt(HD) masked, out = softmax(S) v; lse = log(rowsum(exp(S))) is kept so
    # that backward rebuilds softmax(S) = exp(S - lse) without storing the (T, T) matrix
    out, lse = KA.attention_forward(q, k, v)                            # (B, NH, T, HD), (B, NH, T)
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
    # y = merge_heads(out): its backward is the inverse transpose
    dout = KL.split_heads(dy, NH)                                       # (B, NH, T, HD)
    # out = P v with P = exp(S - lse): dv = P^T dout, dS = P (dout v^T - D) with
    # D = rowsum(dout * out) (= rowsum(P * dout v^T), as out = P v), dq = dS k, dk = dS^T q
    dq, dk, dv = KA.attention_backward(dout, q, k, v, out, lse)         # (B, NH|NKV, T, HD)
    # q, k, v = split_qkv(qkv): dq, dk rotated back, all three in the projection's rows
    dqkv = KL.rope_split_qkv_backward(dq, dk, dv, freqs)                # (B, T, QD + 2 KD)
    # qkv = x [wq; wk; wv]^T
    dx, dwqkv = linear_backward(dqkv, qkv_cache)                        # (B, T, C), (QD + 2 KD, C)
    QD, KD = NH * HD, NKV * HD
    return dx, dwqkv[:QD], dwqkv[QD:QD + KD], dwqkv[QD + KD:], dwo
