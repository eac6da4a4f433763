"""The C attention kernels (csrc/attention*.c, called through minillm/nn/kernels/attention.py)
against their NumPy twins in minillm/nn/attention.py (causal_attention and its backward,
attention_prefill, attention_decode, run on the same float32 arrays), and the wrappers'
argument checks.

    python -m pytest tests/nn/kernels/test_attention.py -q
    MINILLM_KERNELS_PATH=runs/build-attn python -m pytest tests/nn/kernels/test_attention.py -q

Shapes are odd and distinct (B, NH/NKV, T, HD) so that a transposed index, a missed tail
(T or HD not a multiple of the tile or vector width) or a wrong KV head fails. Tolerances:
the C kernels and the float32 references round differently (online vs two-pass softmax,
other summation orders), so values agree to ~1e-6 relative to their size; every check below
uses rtol=1e-4 and an atol of 1e-5 times the reference's largest magnitude (at least 1),
while an index error moves values by O(1). The 1- and 2-thread runs must agree exactly.
"""
import itertools

import cffi
import numpy as np
import pytest

from minillm import clib
from minillm.nn import attention as A
from minillm.nn.kernels import attention as KA

# numpy_lines (tests/nn/conftest.py): A.* run their NumPy lines, KA.* the C kernels
pytestmark = [pytest.mark.skipif(not clib.c_available(), reason="C kernels not built (these "
                                 "tests compare C with NumPy; tests/test_clib.py checks that)"),
              pytest.mark.usefixtures("numpy_lines")]

HEADS = [(1, 1), (4, 2), (6, 3), (4, 1)]           # (NH, NKV)
TIMES = [1, 2, 7, 17, 64, 65, 100, 257]
DIMS = [8, 13, 32, 48, 64]
# Every T with every HD (40 cases); B and the head layout cycle so that every (HD, heads)
# pair appears twice.
SHAPES = [(1 + i % 3,) + HEADS[i % 4] + (T, HD)
          for i, (T, HD) in enumerate(itertools.product(TIMES, DIMS))]


def close(actual, expected, rtol=1e-4, atol_rel=1e-5):
    scale = max(float(np.abs(expected).max()), 1.0) if expected.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol_rel * scale)


def qkv(rng, B, NH, NKV, T, HD):
    q = rng.standard_normal((B, NH, T, HD), dtype=np.float32)      # (B, NH, T, HD)
    k = rng.standard_normal((B, NKV, T, HD), dtype=np.float32)     # (B, NKV, T, HD)
    v = rng.standard_normal((B, NKV, T, HD), dtype=np.float32)     # (B, NKV, T, HD)
    return q, k, v


@pytest.mark.parametrize("B, NH, NKV, T, HD", SHAPES)
def test_forward_and_backward_match_reference(rng, B, NH, NKV, T, HD):
    q, k, v = qkv(rng, B, NH, NKV, T, HD)
    q *= 2.0                                       # peakier softmax than unit scores
    out, lse = KA.attention_forward(q, k, v)
    out_ref, lse_ref = A.causal_attention(q, k, v)
    close(out, out_ref)
    close(lse, lse_ref)
    dout = rng.standard_normal(out.shape, dtype=np.float32)
    grads = KA.attention_backward(dout, q, k, v, out, lse)
    grads_ref = A.causal_attention_backward(dout, q, k, v, out_ref, lse_ref)
    for name, g, g_ref in zip(("dq", "dk", "dv"), grads, grads_ref):
        assert g.shape == g_ref.shape, name
        close(g, g_ref)


@pytest.mark.parametrize("B, NH, NKV, T, HD", [(1, 2, 1, 70, 96), (2, 2, 2, 33, 128),
                                               (1, 3, 1, 66, 80)])
def test_wide_heads_match_reference(rng, B, NH, NKV, T, HD):
    """HD past one register strip (64 floats): the products split their columns."""
    q, k, v = qkv(rng, B, NH, NKV, T, HD)
    out, lse = KA.attention_forward(q, k, v)
    out_ref, lse_ref = A.causal_attention(q, k, v)
    close(out, out_ref)
    close(lse, lse_ref)
    dout = rng.standard_normal(out.shape, dtype=np.float32)
    for g, g_ref in zip(KA.attention_backward(dout, q, k, v, out, lse),
                        A.causal_attention_backward(dout, q, k, v, out_ref, lse_ref)):
        close(g, g_ref)
    close(KA.attention_prefill(np.ascontiguousarray(q[:, :, 9:]), k, v, 9), out_ref[:, :, 9:])


@pytest.mark.parametrize("B, T", [(0, 5), (2, 0)])
def test_empty_shapes(B, T):
    q = np.ones((B, 4, T, 8), np.float32)
    kv = np.ones((B, 2, T, 8), np.float32)
    out, lse = KA.attention_forward(q, kv, kv)
    assert out.shape == q.shape and lse.shape == (B, 4, T)
    dq, dk, dv = KA.attention_backward(out, q, kv, kv, out, lse)
    assert dq.shape == q.shape and dk.shape == dv.shape == kv.shape
    assert KA.attention_prefill(q, kv, kv, 0).shape == q.shape


def test_backward_matches_finite_differences(rng):
    """float64 central differences of loss = sum(out * R) through the reference forward."""
    B, NH, NKV, T, HD = 2, 4, 2, 5, 3
    q, k, v = (x.astype(np.float64) for x in qkv(rng, B, NH, NKV, T, HD))
    R = rng.standard_normal((B, NH, T, HD))
    loss = lambda q, k, v: float((A.causal_attention(q, k, v)[0] * R).sum())
    f32 = [x.astype(np.float32) for x in (q, k, v)]
    out, lse = KA.attention_forward(*f32)
    grads = KA.attention_backward(R.astype(np.float32), *f32, out, lse)
    eps = 1e-6
    for x, g in zip((q, k, v), grads):
        numeric = np.zeros_like(x)                                  # same shape as x
        for idx in np.ndindex(x.shape):
            old = x[idx]
            x[idx] = old + eps
            up = loss(q, k, v)
            x[idx] = old - eps
            down = loss(q, k, v)
            x[idx] = old
            numeric[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(g, numeric, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pos0, Tq", [(0, 1), (1, 1), (5, 2), (63, 3), (0, 4), (1, 7),
                                      (64, 64), (37, 65), (100, 29), (130, 100)])
def test_prefill_equals_rows_of_the_forward(rng, pos0, Tq):
    B, NH, NKV, HD, T = 2, 6, 3, 48, pos0 + Tq
    S = T + 5                                   # cache capacity past the filled positions
    q, k, v = qkv(rng, B, NH, NKV, T, HD)
    kcache = np.full((B, NKV, S, HD), np.nan, np.float32)   # NaN: reading past T shows
    vcache = np.full((B, NKV, S, HD), np.nan, np.float32)
    kcache[:, :, :T], vcache[:, :, :T] = k, v
    qnew = np.ascontiguousarray(q[:, :, pos0:])
    out = KA.attention_prefill(qnew, kcache, vcache, pos0)
    full, _ = A.causal_attention(q, k, v)
    close(out, full[:, :, pos0:])
    close(out, A.attention_prefill(qnew, kcache[:, :, :T], vcache[:, :, :T], pos0))


def test_chunked_prefill_matches_the_forward(rng):
    B, NH, NKV, T, HD = 1, 4, 2, 150, 32
    q, k, v = qkv(rng, B, NH, NKV, T, HD)
    full, _ = KA.attention_forward(q, k, v)
    pieces, pos0 = [], 0
    for Tq in (1, 3, 60, 17, 64, 5):            # ragged chunks filling the cache in order
        chunk = np.ascontiguousarray(q[:, :, pos0:pos0 + Tq])
        pieces.append(KA.attention_prefill(chunk, k, v, pos0))
        pos0 += Tq
    close(np.concatenate(pieces, axis=2), full)


@pytest.mark.parametrize("NH, NKV, HD", [(6, 6, 48), (4, 2, 13), (4, 1, 64), (6, 3, 8),
                                         (2, 2, 128)])
def test_decode_with_ragged_lengths(rng, NH, NKV, HD):
    B, S = 4, 600
    lengths = np.array([1, 17, 600, 259], np.int32)
    q = rng.standard_normal((B, NH, HD), dtype=np.float32) * 2
    kcache = rng.standard_normal((B, NKV, S, HD), dtype=np.float32)
    vcache = rng.standard_normal((B, NKV, S, HD), dtype=np.float32)
    for b, L in enumerate(lengths):             # NaN past each row's length must not leak
        kcache[b, :, L:] = np.nan
        vcache[b, :, L:] = np.nan
    out = KA.attention_decode(q, kcache, vcache, lengths)
    close(out, A.attention_decode(q, kcache, vcache, lengths))


def test_decode_equals_last_row_of_the_forward(rng):
    B, NH, NKV, T, HD = 1, 6, 6, 256, 48      # llama2.c's stories15M attention shape
    q, k, v = qkv(rng, B, NH, NKV, T, HD)
    full, _ = KA.attention_forward(q, k, v)
    out = KA.attention_decode(np.ascontiguousarray(q[:, :, -1]), k, v, np.array([T], np.int32))
    close(out, full[:, :, -1])


def _all_kernels(rng, B, NH, NKV, T, HD):
    q, k, v = qkv(rng, B, NH, NKV, T, HD)
    out, lse = KA.attention_forward(q, k, v)
    dout = rng.standard_normal(out.shape, dtype=np.float32)
    grads = KA.attention_backward(dout, q, k, v, out, lse)
    pre = KA.attention_prefill(np.ascontiguousarray(q[:, :, 40:]), k, v, 40)
    dec = KA.attention_decode(np.ascontiguousarray(q[:, :, -1]), k, v,
                             np.arange(T - B + 1, T + 1, dtype=np.int32))
    return (out, lse) + grads + (pre, dec)


@pytest.mark.parametrize("B, NH, NKV", [(1, 4, 1), (3, 4, 2)])
def test_one_and_two_threads_agree_exactly(B, NH, NKV):
    """Each output element has one owner and a fixed summation order, whatever the thread
    count; (1, 4, 1) takes the two-pass backward on 2 threads, the fused pass on 1."""
    before = clib.get_num_threads()
    try:
        clib.set_num_threads(1)
        one = _all_kernels(np.random.default_rng(7), B, NH, NKV, 200, 32)
        clib.set_num_threads(2)
        two = _all_kernels(np.random.default_rng(7), B, NH, NKV, 200, 32)
    finally:
        clib.set_num_threads(before)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_extreme_scores_stay_finite(rng):
    """Large logits: the online softmax must rescale, not overflow."""
    q, k, v = qkv(rng, 2, 4, 2, 100, 32)
    q *= 40.0
    out, lse = KA.attention_forward(q, k, v)
    out_ref, lse_ref = A.causal_attention(q, k, v)
    assert np.isfinite(out).all() and np.isfinite(lse).all()
    close(out, out_ref)
    close(lse, lse_ref)


def _exp_hook():
    """The kernels' vectorised exp (csrc/simd.h), reached through its test hook."""
    ffi = cffi.FFI()
    ffi.cdef("void minillm_attention_exp(float *out, const float *x, int n);")
    return ffi, ffi.dlopen(clib.library_path())


def test_vectorised_exp_is_accurate():
    ffi, lib = _exp_hook()
    spread = np.arange(0, 0x42D00000, 1009, dtype=np.uint32)       # every 1009th float
    x = np.concatenate([
        spread.view(np.float32), (spread | 0x80000000).view(np.float32),
        np.linspace(-1, 1, 10001, dtype=np.float32),                 # near 0
        np.linspace(-104.5, -85, 10001, dtype=np.float32),           # subnormal results
        np.linspace(85, 89.5, 10001, dtype=np.float32),              # overflow edge
    ])
    x = x[(x >= -104.5) & (x <= 89.5)]
    out = np.empty_like(x)
    lib.minillm_attention_exp(ffi.from_buffer("float[]", out, require_writable=True),
                              ffi.from_buffer("float[]", x), x.size)
    exact = np.exp(x.astype(np.float64))
    finite = exact <= np.finfo(np.float32).max
    assert np.isinf(out[~finite]).all() and (out[~finite] > 0).all()
    ulp = np.spacing(exact[finite].astype(np.float32)).astype(np.float64)
    err = np.abs(out[finite] - exact[finite]) / ulp                 # error in float32 ulps
    assert err.max() <= 1.0, f"max error {err.max():.2f} ulp at x={x[finite][err.argmax()]}"
    assert err.mean() <= 0.1
    special = np.array([-np.inf, np.inf, np.nan, 0.0, -1e30, 1e30, -103.98], np.float32)
    out = np.empty_like(special)
    lib.minillm_attention_exp(ffi.from_buffer("float[]", out, require_writable=True),
                              ffi.from_buffer("float[]", special), special.size)
    assert out[0] == 0 and out[1] == np.inf and np.isnan(out[2]) and out[3] == 1
    assert out[4] == 0 and out[5] == np.inf and 0 <= out[6] <= 2e-45


# ---- argument checks -------------------------------------------------------------------

def test_attention_rejects_bad_heads(rng):
    q = rng.standard_normal((1, 3, 4, 8), dtype=np.float32)
    kv = rng.standard_normal((1, 2, 4, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="multiple"):
        KA.attention_forward(q, kv, kv)
    with pytest.raises(ValueError, match="shape"):
        KA.attention_forward(q, kv[:, :, :3].copy(), kv)


def test_decode_rejects_bad_lengths(rng):
    q = rng.standard_normal((2, 2, 8), dtype=np.float32)
    cache = np.zeros((2, 2, 5, 8), np.float32)
    for lengths in ([0, 3], [3, 6], [3]):
        with pytest.raises(ValueError, match="lengths"):
            KA.attention_decode(q, cache, cache, lengths)


def test_wrappers_take_only_float32_c_contiguous_arrays(rng):
    q, k, v = qkv(rng, 1, 2, 1, 5, 8)
    with pytest.raises(ValueError, match="float32"):
        KA.attention_forward(q.astype(np.float64), k, v)
    with pytest.raises(ValueError, match="C-contiguous"):
        KA.attention_forward(q, k[:, :, ::-1], v)
    with pytest.raises(ValueError, match="positions"):
        KA.attention_prefill(q, k, v, 1)                            # 1..5 past a cache of 5
