"""The one-call decode step (csrc/decode.c, decode_step) against its twin, the step-by-step
sequence in minillm/generate_cache.py (DecodeModel._decode_steps), on the C kernels and on
the NumPy ones: logits, the KV cache it writes, greedy tokens, and its position check.

    python -m pytest tests/test_generate_decode_step.py
"""
import numpy as np
import pytest

from minillm.generate.engine import Engine
from minillm.generate.cache import DecodeModel, KVCache
from minillm import clib
from minillm.nn.gpt import GPTConfig, init_params
from minillm.tokenizer.bpe import Tokenizer

pytestmark = pytest.mark.skipif(not clib.c_available(),
                                reason="decode_step is C code: needs the C extension "
                                       f"({clib.load_error()})")

# Against the step-by-step path on the same C kernels, the only difference is the rounding
# of RoPE's complex product (NumPy may fuse a multiply-add where C does not: 1 ulp), which
# the three layers of these deliberately sharp models (weights x15) amplify: measured up to
# 7e-6 on logits and cached keys/values of magnitude ~1-10 (-O3 and sanitizer builds).
# 3e-5 is ~30 float32 ulps at 8; an indexing or layout mistake is off by O(1).
SAME_KERNELS_ATOL = 3e-5
CACHE_ATOL = 3e-5
# Against the NumPy twins the matmuls also sum in a different order (as tests/
# test_generate.py's cached-vs-uncached LOGIT_ATOL); measured up to 1.3e-5.
NUMPY_ATOL = 1e-4

CONFIGS = [   # odd sizes, grouped KV heads, HD off the kernels' special-cased sizes
    dict(n_layer=3, n_head=6, n_kv_head=2, n_embd=60, hidden_dim=37, vocab_size=53),
    dict(n_layer=2, n_head=3, n_kv_head=3, n_embd=42, hidden_dim=50, vocab_size=71),
    dict(n_layer=1, n_head=4, n_kv_head=1, n_embd=48, hidden_dim=13, vocab_size=29),
]


def random_model(seed=0, context_len=24, **shape):
    """Weights scaled up so that the logits are far from uniform (as tests/test_generate.py)."""
    config = GPTConfig(context_len=context_len, **shape)
    params = init_params(config, seed)
    rng = np.random.default_rng(seed + 1)
    for name, a in params.items():
        scaled = a * 15 if a.ndim == 2 else 1 + 0.1 * rng.standard_normal(a.shape)
        params[name] = scaled.astype(np.float32)
    return params, config


def numpy_model(params, config, monkeypatch):
    """A DecodeModel built without the C library: the NumPy twins, step by step."""
    with monkeypatch.context() as m:
        m.setattr(clib, "_load", lambda: (None, None))
        model = DecodeModel(params, config, max_batch=3)
    assert not model.use_c_step and model.c_weights is None
    return model


def copy_cache(dst, src):
    for d, s in zip(dst.k + dst.v, src.k + src.v):
        np.copyto(d, s)


@pytest.mark.parametrize("shape", CONFIGS)
@pytest.mark.parametrize("pos0", [[0], [5], [0, 7, 3]])
def test_c_step_equals_python_steps(shape, pos0, monkeypatch):
    """B = 1 and B = 3 rows at different positions, 6 steps in a row so that later steps
    attend to keys the earlier ones cached; the cache rows before pos0 hold a random
    "prompt" (as if prefilled). Each step starts all three paths from the C path's cache,
    so that the checks see one step's rounding, not six steps' compounded."""
    params, config = random_model(**shape)
    B, steps = len(pos0), 6
    rng = np.random.default_rng(len(pos0) * 10 + shape["n_layer"])
    tokens = rng.integers(0, config.vocab_size, (steps, B))                   # (steps, B)
    pos0 = np.array(pos0)                                                     # (B,)
    model = DecodeModel(params, config, max_batch=1)                          # grows to B on use
    assert model.use_c_step, "the C extension predates csrc/decode.c: rebuild it"
    twin = numpy_model(params, config, monkeypatch)
    cache, before, cache_c, cache_np = [KVCache(config, B + 1) for _ in range(4)]  # a spare row
    for layer in range(config.n_layer):
        cache.k[layer][:] = rng.standard_normal(cache.k[layer].shape)
        cache.v[layer][:] = rng.standard_normal(cache.v[layer].shape)
    for t in range(steps):
        pos = pos0 + t                                                        # (B,)
        for c in (before, cache_c, cache_np):
            copy_cache(c, cache)
        model.use_c_step = True
        fused = model.decode(cache, tokens[t], pos).copy()                    # (B, V)
        model.use_c_step = False
        steps_c = model.decode(cache_c, tokens[t], pos)                       # (B, V)
        np.testing.assert_allclose(fused, steps_c, rtol=0, atol=SAME_KERNELS_ATOL)
        steps_np = twin.decode(cache_np, tokens[t], pos)                      # (B, V)
        np.testing.assert_allclose(fused, steps_np, rtol=0, atol=NUMPY_ATOL)
        assert np.abs(fused).max() > 1.0                                      # not a trivial model
        # layer 0's values come from the embeddings alone, before any RoPE: exactly equal
        np.testing.assert_array_equal(cache.v[0], cache_c.v[0])
        written = (np.arange(B), slice(None), pos)                            # row b's slot pos[b]
        for ours, theirs, old in zip(cache.k + cache.v, cache_c.k + cache_c.v, before.k + before.v):
            new = ours[written].copy()                                        # (B, NKV, HD)
            np.testing.assert_allclose(new, theirs[written], rtol=0, atol=CACHE_ATOL)
            ours[written] = old[written]                                      # nothing else moved,
            np.testing.assert_array_equal(ours, old)                          # the spare row neither
            ours[written] = new


def test_greedy_tokens_identical():
    tok = Tokenizer([], "gpt4")
    params, config = random_model(context_len=64, n_layer=2, n_head=4, n_kv_head=2, n_embd=32,
                                  hidden_dim=48, vocab_size=tok.vocab_size)
    engine = Engine(params, config, tok)
    prompts = [tok.encode_ordinary(t) for t in ("The cat", "a", "one two three")]
    runs = {}
    for use_c_step in (True, False):
        engine.model.use_c_step = use_c_step
        runs[use_c_step] = engine.generate(prompts, temperature=0, max_tokens=40)
    assert [c.tokens for c in runs[True]] == [c.tokens for c in runs[False]]
    assert len(set(runs[True][0].tokens)) > 3                                 # not one token repeated


def test_positions_outside_the_cache_raise_and_write_nothing():
    params, config = random_model(**CONFIGS[0])
    model = DecodeModel(params, config)
    cache = KVCache(config, 2, capacity=10)
    for pos in ([10, 0], [0, -1], [3, 12]):
        with pytest.raises(ValueError, match="outside the cache"):
            model.decode(cache, np.array([1, 2]), np.array(pos))
    assert not any(a.any() for a in cache.k + cache.v)
    model.decode(cache, np.array([1, 2]), np.array([9, 0]))                  # the last slot is fine
    assert cache.k[0][0, :, 9].any() and cache.v[0][1, :, 0].any()
