"""Sampling: from the logits of the next token to a token id and its log-probability.

    temperature  logits / T before the softmax: T < 1 sharpens, T > 1 flattens; 0 is greedy
    top_k        keep only the k most likely tokens (a partial sort: np.argpartition)
    top_p        keep the smallest set of most likely tokens whose probability reaches p
                 (nucleus sampling), after top_k
    seed         every row draws from its own generator: its samples do not depend on
                 which other rows share its batch

A token is drawn by inverse transform: one uniform u per row and step, and the token is the
first whose cumulative probability exceeds u. The log-probability returned with each token
is under the model's own distribution (temperature 1, no top-k / top-p): the number
perplexity and policy-gradient RL need.

    python -m pytest tests/generate/test_sampling.py

Read next: cli.py (`minillm sample`). Shapes: B rows, V vocab, K candidates per row.
"""
from dataclasses import dataclass, field

import numpy as np


@dataclass
class SamplingParams:
    temperature: float = 1.0
    top_k: int = None            # None or 0: no limit
    top_p: float = None          # None or 1.0: no limit
    max_tokens: int = 256        # new tokens per sequence (forced tool output included)
    stop: tuple = field(default_factory=tuple)   # token ids that end a sequence (kept in it)
    seed: object = 0             # int, or one seed per sequence (see Engine.generate)
    logprobs: bool = True        # compute each sampled token's log-probability

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        self.stop = tuple(int(t) for t in self.stop)
        if not self.top_k:
            self.top_k = None            # 0 means no limit
        if self.top_p == 1.0:
            self.top_p = None            # the whole distribution


def logsumexp(logits):
    """lse (B,) = log sum_v exp(logits[b, v]), computed stably (float64 accumulation)."""
    m = logits.max(axis=1)                                              # (B,)
    z = np.exp(logits - m[:, None])                                     # (B, V)
    return m + np.log(z.sum(axis=1, dtype=np.float64))


def token_logprobs(logits, tokens):
    """log p(tokens[b]) (B,) under softmax(logits[b]) (temperature 1)."""
    B = logits.shape[0]
    return logits[np.arange(B), tokens].astype(np.float64) - logsumexp(logits)


def candidates(logits, params):
    """The tokens a row may sample, most likely first: ids (B, K), probabilities (B, K)
    summing to 1 per row, after temperature, top-k and top-p."""
    B, V = logits.shape
    z = logits.astype(np.float64) / params.temperature                  # (B, V)
    k = params.top_k if params.top_k and params.top_k < V else V
    if k < V:
        ids = np.argpartition(-z, k - 1, axis=1)[:, :k]                 # (B, k) unordered
        ids.sort(axis=1)                                                # ties: smaller id first
    else:
        ids = np.broadcast_to(np.arange(V), (B, V))                     # (B, V)
    zk = np.take_along_axis(z, ids, axis=1)                             # (B, K)
    order = np.argsort(-zk, axis=1, kind="stable")                      # (B, K) most likely first
    ids = np.take_along_axis(ids, order, axis=1)                        # (B, K)
    zk = np.take_along_axis(zk, order, axis=1)                          # (B, K)
    p = np.exp(zk - zk[:, :1])                                          # (B, K)
    p /= p.sum(axis=1, keepdims=True)
    # exercise: top_p
    if params.top_p is not None and params.top_p < 1.0:
        before = np.cumsum(p, axis=1) - p                               # (B, K) mass of better tokens
        p = np.where(before < params.top_p, p, 0.0)                     # the first always stays
        p /= p.sum(axis=1, keepdims=True)
    # end exercise
    return ids, p


def sample(logits, params, uniforms):
    """tokens (B,) int64 drawn from logits (B, V) with one uniform in [0, 1) per row.

    The candidates are in a fixed order (token id order; most likely first when top-k or
    top-p cut the list), so a row consumes exactly one random number per sampled token, and
    equal logits with equal seeds give equal tokens in a batch of 1 or of 64."""
    if params.temperature == 0:
        return logits.argmax(axis=1)
    if params.top_k is None and params.top_p is None:
        # the common case without a sort: inverse transform over the ids in order
        z = logits.astype(np.float64) / params.temperature              # (B, V)
        p = np.exp(z - z.max(axis=1, keepdims=True))                    # (B, V)
        cdf = np.cumsum(p, axis=1)                                      # (B, V)
        target = uniforms * cdf[:, -1]                                  # (B,)
        tokens = (cdf <= target[:, None]).sum(axis=1)                   # first with cdf > target
        return np.minimum(tokens, logits.shape[1] - 1)
    ids, p = candidates(logits, params)                                 # (B, K) each
    cdf = np.cumsum(p, axis=1)                                          # (B, K)
    pick = np.minimum((cdf <= uniforms[:, None] * cdf[:, -1:]).sum(axis=1), ids.shape[1] - 1)
    return ids[np.arange(len(ids)), pick]
