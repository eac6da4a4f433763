"""The KV cache: the keys and values of every position generated so far, per layer.

Training runs a whole sequence through the model at once. Generation adds one token at a
time, and recomputing the whole prefix for every new token would cost O(T^2) work per
sequence. A token's keys and values never change once computed (causal attention: position
t only sees 0..t), so they are kept here, and each step computes only the new token's:

    prefill  the prompt in one forward pass (nn/gpt.py's forward with kv=cache.rows(...)):
             every position's K and V go into the cache, RoPE at absolute positions
    decode   one token per row at its own position (nn/kernels/decode.py's decode_step)

A layer's cache is a pair of (Bmax, NKV, S, HD) float32 arrays allocated once (S = the
capacity, at most context_len). Rows of a batch may be at different positions: a row never
reads past its own length.

Read next: engine.py (the generation loop that fills and reads this cache).
"""
import numpy as np

from minillm.nn.kernels.decode import cache_pointers


class KVCache:
    """Keys and values of every layer: k[i], v[i] (Bmax, NKV, S, HD) float32, zero-filled."""

    def __init__(self, config, batch, capacity=None):
        S = capacity or config.context_len
        shape = (batch, config.n_kv_head, S, config.head_dim)
        self.batch, self.capacity = batch, S
        self.k = [np.zeros(shape, np.float32) for _ in range(config.n_layer)]  # (Bmax, NKV, S, HD) each
        self.v = [np.zeros(shape, np.float32) for _ in range(config.n_layer)]  # (Bmax, NKV, S, HD) each
        self.ptrs = cache_pointers(self.k, self.v)          # their C pointers, for decode_step

    def rows(self, r0, r1):
        """(k, v): lists of the layers' rows r0..r1-1 (B, NKV, S, HD), the kv of nn/gpt.py's
        forward. Views: the forward writes into this cache."""
        return [k[r0:r1] for k in self.k], [v[r0:r1] for v in self.v]

    def copy_rows(self, dst, src, length):
        """cache[dst[i], :, :length] = cache[src[i], :, :length] for every layer (the
        right-hand side is gathered first, so dst and src may overlap)."""
        for a in self.k + self.v:
            a[dst, :, :length] = a[src, :, :length]
