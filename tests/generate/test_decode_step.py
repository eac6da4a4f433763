"""The one-call decode step (csrc/decode.c through minillm/nn/kernels/decode.py) against its
NumPy twin, the model's own forward over the KV cache (nn/gpt.py): logits, the cache it
writes, greedy tokens, and its position check.

    python -m pytest tests/generate/test_decode_step.py
"""
import numpy as np
import pytest

from minillm import clib
from minillm.generate.cache import KVCache
from minillm.generate.engine import Engine
from minillm.nn.gpt import GPTConfig, init_params
from minillm.nn.kernels import decode as KD
from minillm.tokenizer.bpe import Tokenizer

needs_c = pytest.mark.skipif(not clib.c_available(),
                             reason=f"decode_step is C code: needs the C extension ({clib.load_error()})")

# The C step runs on packed weights (RMSNorm weights folded into the matmuls, fused
# projections), the twin on the model's own: the products round differently, and the three
# layers of these deliberately sharp models (weights x15) amplify it: measured up to 2.2e-5
# on logits and 1e-5 on cached keys, of magnitude ~1-10; an indexing or layout mistake is
# off by O(1).
LOGIT_ATOL = 1e-4
CACHE_ATOL = 1e-4

CONFIGS = [   # odd sizes, grouped KV heads, HD off the kernels' special-cased sizes
    dict(n_layer=3, n_head=6, n_kv_head=2, n_embd=60, hidden_dim=37, vocab_size=53),
    dict(n_layer=2, n_head=3, n_kv_head=3, n_embd=42, hidden_dim=50, vocab_size=71),
    dict(n_layer=1, n_head=4, n_kv_head=1, n_embd=48, hidden_dim=13, vocab_size=29),
]


def random_model(seed=0, context_len=24, **shape):
    """Weights scaled up so that the logits are far from uniform (as test_engine.py)."""
    config = GPTConfig(context_len=context_len, **shape)
    params = init_params(config, seed)
    rng = np.random.default_rng(seed + 1)
    for name, a in params.items():
        scaled = a * 15 if a.ndim == 2 else 1 + 0.1 * rng.standard_normal(a.shape)
        params[name] = scaled.astype(np.float32)
    return params, config


def copy_cache(dst, src):
    for d, s in zip(dst.k + dst.v, src.k + src.v):
        np.copyto(d, s)


@needs_c
@pytest.mark.parametrize("shape", CONFIGS)
@pytest.mark.parametrize("pos0", [[0], [5], [0, 7, 3]])
def test_c_step_equals_the_models_forward(shape, pos0):
    """B = 1 and B = 3 rows at different positions, 6 steps in a row so that later steps
    attend to keys the earlier ones cached; the cache rows before pos0 hold a random
    "prompt" (as if prefilled). Each step starts both paths from the C path's cache, so
    that the checks see one step's rounding, not six steps' compounded."""
    params, config = random_model(**shape)
    B, steps = len(pos0), 6
    rng = np.random.default_rng(len(pos0) * 10 + shape["n_layer"])
    tokens = rng.integers(0, config.vocab_size, (steps, B))                   # (steps, B)
    pos0 = np.array(pos0)                                                     # (B,)
    weights = KD.DecodeWeights(params, config)
    buf, buf_ref = KD.Buffers(config, B), KD.Buffers(config, B)
    cache, before, cache_ref = [KVCache(config, B + 1) for _ in range(3)]     # a spare row
    for layer in range(config.n_layer):
        cache.k[layer][:] = rng.standard_normal(cache.k[layer].shape)
        cache.v[layer][:] = rng.standard_normal(cache.v[layer].shape)
    for t in range(steps):
        pos = pos0 + t                                                        # (B,)
        for c in (before, cache_ref):
            copy_cache(c, cache)
        fused = KD.decode_step(weights, buf, cache, tokens[t], pos)           # (B, V)
        ref = KD.decode_step_ref(weights, buf_ref, cache_ref, tokens[t], pos)  # (B, V)
        np.testing.assert_allclose(fused, ref, rtol=0, atol=LOGIT_ATOL)
        assert np.abs(fused).max() > 1.0                                      # not a trivial model
        written = (np.arange(B), slice(None), pos)                            # row b's slot pos[b]
        for ours, theirs, old in zip(cache.k + cache.v, cache_ref.k + cache_ref.v, before.k + before.v):
            new = ours[written].copy()                                        # (B, NKV, HD)
            np.testing.assert_allclose(new, theirs[written], rtol=0, atol=CACHE_ATOL)
            ours[written] = old[written]                                      # nothing else moved,
            np.testing.assert_array_equal(ours, old)                          # the spare row neither
            theirs[written] = old[written]
            np.testing.assert_array_equal(theirs, old)
            ours[written] = new


@needs_c
def test_greedy_tokens_identical(monkeypatch):
    tok = Tokenizer([], "gpt4")
    params, config = random_model(context_len=64, n_layer=2, n_head=4, n_kv_head=2, n_embd=32,
                                  hidden_dim=48, vocab_size=tok.vocab_size)
    engine = Engine(params, config, tok)
    prompts = [tok.encode_ordinary(t) for t in ("The cat", "a", "one two three")]
    c_step = engine.generate(prompts, temperature=0, max_tokens=40)
    monkeypatch.setattr(KD, "decode_step", KD.decode_step_ref)
    numpy_step = engine.generate(prompts, temperature=0, max_tokens=40)
    assert [c.tokens for c in c_step] == [c.tokens for c in numpy_step]
    assert len(set(c_step[0].tokens)) > 3                                     # not one token repeated


@pytest.mark.parametrize("step", [pytest.param(KD.decode_step, marks=needs_c), KD.decode_step_ref],
                         ids=["c", "numpy"])
def test_positions_outside_the_cache_raise_and_write_nothing(step):
    params, config = random_model(**CONFIGS[0])
    weights, buf = KD.DecodeWeights(params, config), KD.Buffers(config, 2)
    cache = KVCache(config, 2, capacity=10)
    for pos in ([10, 0], [0, -1], [3, 12]):
        with pytest.raises(ValueError, match="outside the cache"):
            step(weights, buf, cache, np.array([1, 2]), np.array(pos))
    assert not any(a.any() for a in cache.k + cache.v)
    step(weights, buf, cache, np.array([1, 2]), np.array([9, 0]))             # the last slot is fine
    assert cache.k[0][0, :, 9].any() and cache.v[0][1, :, 0].any()


@needs_c
def test_rows_beyond_the_buffers_or_a_foreign_cache_raise():
    params, config = random_model(**CONFIGS[0])
    weights = KD.DecodeWeights(params, config)
    with pytest.raises(ValueError, match="do not fit"):
        KD.decode_step(weights, KD.Buffers(config, 1), KVCache(config, 2), np.array([1, 2]), np.array([0, 0]))
    _, other = random_model(**CONFIGS[1])
    with pytest.raises(ValueError, match="not the model's"):
        KD.decode_step(weights, KD.Buffers(config, 1), KVCache(other, 1), np.array([1]), np.array([0]))
