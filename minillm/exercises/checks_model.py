"""The checks of the model exercises: RMSNorm and attention backward, RoPE, AdamW, the
KV-cache decode step and top-p sampling.

A backward is checked as the test suite checks minillm's own (tests/nn/test_layers.py):
float64 central finite differences of loss = sum(forward(...) * R), R a fixed random
upstream gradient, then in float32 against the C kernel (its twin) when the library is
loaded. The rest compare with minillm's own function or the formula, on small odd shapes
(B=2, T=5, HD=6, ...) so a transposed index or a missed row fails.

    minillm exercise check attention_backward

Read next: checks_post.py.
"""
import numpy as np

from minillm.exercises.grading import Wrong, close, grad_close, numeric_grad, unpack
from minillm.generate import sampling
from minillm.nn import attention, layers, optim


def _rng():
    return np.random.default_rng(7)


# ---- RMSNorm backward --------------------------------------------------------------------------

def check_rmsnorm_backward(mine, swap):
    """dx, dw against float64 finite differences on x (2, 3, 5); then in float32 against
    minillm's (the C kernel when it is loaded), dtype kept."""
    rng = _rng()
    x, w = rng.standard_normal((2, 3, 5)), 1.0 + 0.3 * rng.standard_normal(5)
    R = rng.standard_normal((2, 3, 5))

    def loss():
        return float((layers.rmsnorm_forward(x, w)[0] * R).sum())

    _, cache = layers.rmsnorm_forward(x, w)
    dx, dw = unpack(mine.rmsnorm_backward(R, cache), 2, "rmsnorm_backward")
    grad_close("dx", dx, numeric_grad(loss, x))
    grad_close("dw", dw, numeric_grad(loss, w))
    x32, w32, R32 = x.astype(np.float32), w.astype(np.float32), R.astype(np.float32)
    want = layers.rmsnorm_backward(R32, layers.rmsnorm_forward(x32, w32)[1])
    got = unpack(mine.rmsnorm_backward(R32, layers.rmsnorm_forward(x32, w32)[1]), 2, "rmsnorm_backward")
    for name, g, wnt in zip(("dx", "dw"), got, want):
        close(name, g, wnt, rtol=1e-4, atol=1e-5, context="float32 input")
        if np.asarray(g).dtype != np.float32:
            raise Wrong(f"{name} is {np.asarray(g).dtype} for float32 input; keep the input's dtype")


# ---- attention backward ----------------------------------------------------------------------

def check_attention_backward(mine, swap):
    """dq, dk, dv against float64 finite differences, B=1 NH=4 NKV=2 (grouped KV heads) T=5
    HD=3; then in float32 against minillm's (the C kernel when it is loaded)."""
    rng = _rng()
    q = rng.standard_normal((1, 4, 5, 3))
    k, v = rng.standard_normal((1, 2, 5, 3)), rng.standard_normal((1, 2, 5, 3))
    R = rng.standard_normal((1, 4, 5, 3))

    def loss():
        return float((attention.causal_attention(q, k, v)[0] * R).sum())

    out, lse = attention.causal_attention(q, k, v)
    got = unpack(mine.causal_attention_backward(R, q, k, v, out, lse), 3, "causal_attention_backward")
    for name, g, x in zip(("dq", "dk", "dv"), got, (q, k, v)):
        grad_close(name, g, numeric_grad(loss, x))
    q32, k32, v32, R32 = (a.astype(np.float32) for a in (q, k, v, R))
    out32, lse32 = attention.causal_attention(q32, k32, v32)
    want = attention.causal_attention_backward(R32, q32, k32, v32, out32, lse32)
    got = unpack(mine.causal_attention_backward(R32, q32, k32, v32, out32, lse32), 3,
                 "causal_attention_backward")
    for name, g, wnt in zip(("dq", "dk", "dv"), got, want):
        close(name, g, wnt, rtol=1e-4, atol=1e-5, context="float32 input")


# ---- RoPE --------------------------------------------------------------------------------------

def _rotated_by_formula(x, angles):
    """x (..., T, HD), each pair (x[2i], x[2i+1]) at time t turned by angles[t, i]."""
    out = np.empty_like(x)
    cos, sin = np.cos(angles), np.sin(angles)                           # (T, HD/2)
    a, b = x[..., 0::2], x[..., 1::2]                                   # (..., T, HD/2)
    out[..., 0::2] = a * cos - b * sin
    out[..., 1::2] = a * sin + b * cos
    return out


def check_rope(mine, swap):
    """rope_frequencies against e^(i pos theta^(-2i/HD)) (T=5, HD=6, pos0 3, float64 and
    float32 -> complex64); _rotated against the rotation written out pair by pair; then
    split_qkv with your _rotated against minillm's (the C kernel when it is loaded)."""
    T, HD, theta, pos0 = 5, 6, 100.0, 3
    angles = np.outer(np.arange(pos0, pos0 + T), theta ** (-np.arange(0, HD, 2) / HD))   # (T, HD/2)
    for dtype, want_dtype, tol in ((np.float64, np.complex128, 1e-12), (np.float32, np.complex64, 1e-6)):
        f = mine.rope_frequencies(T, HD, theta, pos0, dtype)
        close("rope_frequencies", f, np.exp(1j * angles), rtol=tol, atol=tol,
              context=f"T={T}, HD={HD}, theta={theta}, pos0={pos0}")
        if np.asarray(f).dtype != want_dtype:
            raise Wrong(f"rope_frequencies(..., dtype={dtype.__name__}) is {np.asarray(f).dtype}, "
                        f"expected {np.dtype(want_dtype)}")
    freqs = layers.rope_frequencies(T, HD, theta, pos0, np.float64)
    x = _rng().standard_normal((2, 3, T, HD))
    close("_rotated(x, freqs)", mine._rotated(x, freqs), _rotated_by_formula(x, angles), 1e-12, 1e-12)
    x32 = x.astype(np.float32)
    got = np.asarray(mine._rotated(x32, layers.rope_frequencies(T, HD, theta, pos0, np.float32)))
    close("_rotated(x, freqs)", got, _rotated_by_formula(x, angles), 1e-5, 1e-5, "float32 x")
    if got.dtype != np.float32:
        raise Wrong(f"_rotated gives {got.dtype} for float32 x; keep x's dtype")
    qkv = _rng().standard_normal((2, T, (2 + 2 * 1) * HD)).astype(np.float32)
    f32 = layers.rope_frequencies(T, HD, theta, 0, np.float32)
    want = attention.split_qkv(qkv, 2, 1, f32)                          # C when loaded
    with swap():
        got = attention.split_qkv(qkv.astype(np.float64), 2, 1, f32)   # NumPy: your _rotated
    for name, g, wnt in zip(("q", "k", "v"), got, want):
        close(f"split_qkv's {name}", g, wnt, 1e-5, 1e-5, "with your _rotated")


# ---- AdamW -------------------------------------------------------------------------------------

ADAMW_SHAPES = {"w": (3, 5), "tok_emb": (4, 3), "norm": (5,)}


def _adamw_by_the_book(params, steps, lr, wd, betas, eps):
    """torch.optim.AdamW's formulas in float64 (decay on 2-D weights but tok_emb)."""
    b1, b2 = betas
    p = {n: a.astype(np.float64) for n, a in params.items()}
    m = {n: np.zeros_like(a) for n, a in p.items()}
    v = {n: np.zeros_like(a) for n, a in p.items()}
    for t, micro in enumerate(steps, 1):
        for n in p:
            g = np.mean([mb[n] for mb in micro], axis=0, dtype=np.float64)
            if optim.decays(n, p[n]):
                p[n] *= 1 - lr * wd
            m[n] = b1 * m[n] + (1 - b1) * g
            v[n] = b2 * v[n] + (1 - b2) * g * g
            p[n] -= lr * (m[n] / (1 - b1 ** t)) / (np.sqrt(v[n] / (1 - b2 ** t)) + eps)
    return p, m


def check_adamw(mine, swap):
    """adamw_update in place against minillm's on (P=37,) buffers; then 3 steps of AdamW (two
    micro-batches each, weight decay 0.1) with your _update against AdamW's formulas."""
    rng = _rng()
    p, m, g = (rng.standard_normal(37).astype(np.float32) for _ in range(3))
    v = rng.random(37).astype(np.float32)
    c = optim.AdamWCoefs(b1=0.9, b2=0.95, g1=0.05, g2=0.0125, eps_hat=1e-6, step_size=0.01, decay=0.99)
    want = [a.copy() for a in (p, m, v)]
    optim.adamw_update(*want, g, 20, c, False)
    got = [a.copy() for a in (p, m, v)]
    mine.adamw_update(*got, g, 20, c, False)
    for name, gt, wnt, before in zip("pmv", got, want, (p, m, v)):
        if np.array_equal(gt, before):
            raise Wrong(f"adamw_update left {name} unchanged: update the given arrays in place "
                        f"({name}[...] = ..., {name} -= ...), the caller reads them afterwards")
        close(name, gt, wnt, 1e-6, 1e-7, "after adamw_update, n_decay 20")
    params = {n: rng.standard_normal(s).astype(np.float32) for n, s in ADAMW_SHAPES.items()}
    steps = [[{n: rng.standard_normal(s).astype(np.float32) for n, s in ADAMW_SHAPES.items()}
              for _ in range(2)] for _ in range(3)]
    want_p, want_m = _adamw_by_the_book(params, steps, 1e-2, 0.1, (0.9, 0.95), 1e-8)
    with swap():
        opt = optim.AdamW(dict(params), weight_decay=0.1, use_c=False)
        for t, micro in enumerate(steps, 1):
            for grads in micro:
                opt.accumulate(grads)
            opt.step(1e-2)
            if opt.t != t:
                raise Wrong("AdamW.t is not the step count: step() counts it before _update")
    for n in ADAMW_SHAPES:
        close(f"the first moment of {n}", opt.m[n], want_m[n], 1e-5, 1e-7, "after 3 steps")
        close(n, opt.params[n], want_p[n], 1e-5, 1e-6,
              "after 3 steps; " + ("decayed" if optim.decays(n, params[n]) else "not decayed"))


# ---- the KV-cache decode step ------------------------------------------------------------------

def check_kv_decode(mine, swap):
    """attention_decode against minillm's (B=3 rows at lengths 3, 8, 1 of an 8-slot cache,
    NH=4 query heads on NKV=2), never reading past a row's length; attention_cached's decode
    step (rows at positions 2, 6, 0) writes the same cache slots and gives the same output."""
    rng = _rng()
    B, NH, NKV, HD, S, C = 3, 4, 2, 4, 8, 12
    q = rng.standard_normal((B, NH, HD)).astype(np.float32)
    kc, vc = (rng.standard_normal((B, NKV, S, HD)).astype(np.float32) for _ in range(2))
    lengths = np.array([3, 8, 1])
    want = attention.attention_decode(q, kc, vc, lengths)
    close("attention_decode", mine.attention_decode(q, kc, vc, lengths), want, 1e-4, 1e-5,
          "rows at lengths 3, 8, 1")
    junk_k, junk_v = kc.copy(), vc.copy()
    for b, L in enumerate(lengths):
        junk_k[b, :, L:], junk_v[b, :, L:] = 50.0, -50.0
    close("attention_decode", mine.attention_decode(q, junk_k, junk_v, lengths), want, 1e-4, 1e-5,
          "the cache holds other values past each row's length: they must not count")
    wq, wk, wv = (0.3 * rng.standard_normal((d, C)).astype(np.float32) for d in (NH * HD, NKV * HD, NKV * HD))
    wo = 0.3 * rng.standard_normal((C, NH * HD)).astype(np.float32)
    x = rng.standard_normal((B, 1, C)).astype(np.float32)
    pos = np.array([2, 6, 0])
    freqs = layers.rope_frequencies(S, HD)[pos]                         # (B, HD/2)
    ref_kv, my_kv = (kc.copy(), vc.copy()), (kc.copy(), vc.copy())
    want = attention.attention_cached(x, wq, wk, wv, wo, NH, NKV, freqs, ref_kv, pos)
    got = mine.attention_cached(x, wq, wk, wv, wo, NH, NKV, freqs, my_kv, pos)
    for name, g, wnt in zip(("the key cache", "the value cache"), my_kv, ref_kv):
        for b, p in enumerate(pos):
            close(name, g[b, :, p], wnt[b, :, p], 1e-5, 1e-6, f"row {b} at its position {p}")
        close(name, g, wnt, 1e-5, 1e-6, "slots other than the rows' positions must stay as they were")
    close("attention_cached's output", got, want, 1e-4, 1e-5, "decode: rows at positions 2, 6, 0")


# ---- top-p sampling ----------------------------------------------------------------------------

def check_top_p(mine, swap):
    """candidates' ids and probabilities against minillm's on logits (4, 11) for top_p 0.05,
    0.5, 0.9 and 1, with top_k 5 and temperatures 1 and 0.7, ties included."""
    rng = _rng()
    logits = rng.standard_normal((4, 11)).astype(np.float32)
    logits[3, :4] = 2.0                                                 # ties at the top
    for top_p in (0.05, 0.5, 0.9, None):
        for top_k, temperature in ((None, 1.0), (5, 1.0), (None, 0.7)):
            params = sampling.SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p)
            want_ids, want_p = sampling.candidates(logits, params)
            ids, p = unpack(mine.candidates(logits, params), 2, "candidates")
            what = f"top_p={top_p}, top_k={top_k}, temperature={temperature}"
            close("the candidates' ids", ids, want_ids, 0, 0, what)
            close("the candidates' probabilities", p, want_p, 1e-9, 1e-12, what)
