"""AdamW (minillm/nn/optim.py) against torch.optim.AdamW, the LR schedules, clipping, the
non-finite guard, and its C and NumPy paths across thread counts. The kernels themselves are
checked against their NumPy twins in tests/nn/kernels/test_optim.py.

    python -m pytest tests/nn/test_optim.py
"""
import math
from contextlib import contextmanager

import numpy as np
import pytest

from minillm import clib
from minillm.nn import optim as O
from minillm.nn.kernels import optim as KO
from minillm.nn.optim import CHUNK, AdamW, lr_cosine, lr_wsd

needs_c = pytest.mark.skipif(not clib.c_available(),
                             reason=f"C kernels not loaded: {clib.load_error()}")
# the AdamW tests run on both paths: NumPy (use_c=False) and C (use_c=True)
BOTH = pytest.mark.parametrize("use_c", [False, pytest.param(True, marks=needs_c)],
                               ids=["numpy", "c"])

SHAPES = {"tok_emb": (11, 13), "blocks.0.attn_norm": (13,), "blocks.0.wq": (7, 13),
          "blocks.0.w_down": (13, 5), "final_norm": (13,), "lm_head": (11, 13)}


def _params(seed=0):
    rng = np.random.default_rng(seed)
    return {n: rng.standard_normal(s).astype(np.float32) for n, s in SHAPES.items()}


def _grads(rng, scale=1.0):
    return {n: (scale * rng.standard_normal(s)).astype(np.float32) for n, s in SHAPES.items()}


def _torch_adamw(params, lr, wd, betas, eps):
    torch = pytest.importorskip("torch", reason="torch is a test extra (pip install '.[test]')")
    tparams = {n: torch.nn.Parameter(torch.tensor(a)) for n, a in params.items()}
    decay = [p for n, p in tparams.items() if p.ndim == 2 and n != "tok_emb"]
    no_decay = [p for n, p in tparams.items() if not (p.ndim == 2 and n != "tok_emb")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": wd},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=betas, eps=eps, foreach=False)
    return tparams, opt


@BOTH
@pytest.mark.parametrize("clip", [None, 0.5])
def test_adamw_matches_torch(clip, use_c):
    params = _params()
    tparams, topt = _torch_adamw(params, 1e-2, 0.1, (0.9, 0.95), 1e-8)
    torch = pytest.importorskip("torch", reason="torch is a test extra (pip install '.[test]')")
    opt = AdamW(params, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, use_c=use_c)
    rng = np.random.default_rng(1)
    for step in range(6):
        lr = 1e-2 * (0.5 + 0.1 * step)              # a changing learning rate
        micro = [_grads(rng, scale=3.0) for _ in range(2)]  # two micro-batches, averaged
        for g in micro:
            opt.accumulate(g)
        report = opt.step(lr, clip=clip, loss=1.0)
        for n, p in tparams.items():
            p.grad = torch.tensor((micro[0][n] + micro[1][n]) / 2)
        tnorm = torch.nn.utils.clip_grad_norm_(list(tparams.values()), clip or 1e30)
        for group in topt.param_groups:
            group["lr"] = lr
        topt.step()
        assert not report.skipped
        assert report.grad_norm == pytest.approx(float(tnorm), rel=1e-5)
        if clip:
            assert report.clip_coef < 1.0       # these gradients are big: clipping acts
        for n in SHAPES:
            np.testing.assert_allclose(params[n], tparams[n].detach().numpy(), rtol=1e-5, atol=1e-6,
                                       err_msg=f"{n} after step {step}")


def test_params_dict_holds_views_of_the_flat_buffer():
    params = _params()
    before = {n: a.copy() for n, a in params.items()}
    opt = AdamW(params, weight_decay=0.0)
    for n in SHAPES:
        assert params[n].shape == SHAPES[n] and params[n].flags.c_contiguous
        assert np.shares_memory(params[n], opt.flat_p)
        np.testing.assert_array_equal(params[n], before[n])
    opt.step(1e-3, grads=_grads(np.random.default_rng(2)))
    assert all(not np.array_equal(params[n], before[n]) for n in SHAPES)


@BOTH
def test_weight_decay_skips_norms_and_embedding(use_c):
    params = _params()
    before = {n: a.copy() for n, a in params.items()}
    opt = AdamW(params, weight_decay=0.5, use_c=use_c)
    zero = {n: np.zeros(s, np.float32) for n, s in SHAPES.items()}
    opt.step(0.1, grads=zero)       # zero gradient: only the decay moves anything
    for n in SHAPES:
        decayed = n in ("blocks.0.wq", "blocks.0.w_down", "lm_head")
        expected = before[n] * np.float32(1 - 0.1 * 0.5) if decayed else before[n]
        np.testing.assert_allclose(params[n], expected, rtol=1e-6, err_msg=n)


@BOTH
@pytest.mark.parametrize("poison", ["nan_grad", "inf_grad", "overflow", "nan_loss"])
def test_non_finite_step_is_skipped_and_reported(poison, use_c):
    params = _params()
    opt = AdamW(params, weight_decay=0.1, use_c=use_c)
    rng = np.random.default_rng(3)
    opt.step(1e-2, grads=_grads(rng))
    snapshot = [a.copy() for a in (opt.flat_p, opt.flat_m, opt.flat_v)]
    grads, loss = _grads(rng), 2.0
    if poison == "nan_grad":
        grads["blocks.0.wq"][3, 4] = np.nan
    elif poison == "inf_grad":
        grads["final_norm"][0] = np.inf
    elif poison == "overflow":      # finite, but the squares overflow float32
        grads["lm_head"][...] = 1e19
    else:
        loss = float("nan")
    report = opt.step(1e-2, grads=grads, loss=loss)
    assert report.skipped and report.reason
    assert opt.t == 1
    for before, after in zip(snapshot, (opt.flat_p, opt.flat_m, opt.flat_v)):
        np.testing.assert_array_equal(before, after)
    # the next healthy step goes through
    assert not opt.step(1e-2, grads=_grads(rng)).skipped and opt.t == 2


@BOTH
def test_clipping_scales_to_the_max_norm(use_c):
    params = _params()
    opt = AdamW(params, use_c=use_c)
    grads = _grads(np.random.default_rng(4), scale=10.0)
    norm = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads.values()))
    report = opt.step(1e-3, grads=grads, clip=1.0)
    assert report.grad_norm == pytest.approx(norm, rel=1e-6)
    assert report.clip_coef == pytest.approx(1.0 / norm, rel=1e-5)
    # first Adam step with bias correction: m_hat / sqrt(v_hat) = sign(g) whatever the
    # scale, so clipping shows in the moments: m = (1 - b1) * coef * g
    np.testing.assert_allclose(opt.m["lm_head"], 0.1 * grads["lm_head"] / norm, rtol=1e-5)


def test_chunked_update_matches_one_big_chunk(monkeypatch):
    """The NumPy update runs chunk by chunk (CHUNK floats); chunk edges must not change a
    bit. (No clipping here: the norm's float32 partial sums do depend on the chunking.)"""
    big = {"a": np.random.default_rng(5).standard_normal((3 * CHUNK + 123,)).astype(np.float32),
           "w": np.random.default_rng(6).standard_normal((301, 777)).astype(np.float32)}
    outs = []
    for chunk in (CHUNK, 1 << 30):
        monkeypatch.setattr(O, "CHUNK", chunk)
        params = {n: a.copy() for n, a in big.items()}
        opt = AdamW(params, weight_decay=0.1, use_c=False)
        rng = np.random.default_rng(7)
        for _ in range(3):
            opt.step(1e-3, grads={n: rng.standard_normal(a.shape).astype(np.float32)
                                  for n, a in big.items()})
        outs.append(opt.flat_p.copy())
    np.testing.assert_array_equal(outs[0], outs[1])


@BOTH
def test_state_round_trip_continues_identically(use_c):
    rng = np.random.default_rng(8)
    grads = [_grads(rng) for _ in range(4)]
    p1 = _params()
    o1 = AdamW(p1, weight_decay=0.1, use_c=use_c)
    for g in grads:
        o1.step(1e-2, grads=g, clip=1.0)
    p2 = _params()
    o2 = AdamW(p2, weight_decay=0.1, use_c=use_c)
    for g in grads[:2]:
        o2.step(1e-2, grads=g, clip=1.0)
    tensors, meta = o2.state()
    saved = {n: a.copy() for n, a in p2.items()}
    p3 = {n: a.copy() for n, a in saved.items()}
    o3 = AdamW(p3, weight_decay=0.1, use_c=use_c)
    o3.load_state({n: a.copy() for n, a in tensors.items()}, meta)
    for g in grads[2:]:
        o3.step(1e-2, grads=g, clip=1.0)
    np.testing.assert_array_equal(o1.flat_p, o3.flat_p)
    with pytest.raises(ValueError, match="m.lm_head"):
        o3.load_state({k: v for k, v in tensors.items() if k != "m.lm_head"}, meta)


def test_cosine_schedule():
    kw = dict(lr=1e-3, min_lr=1e-4, warmup=10, total=100)
    lrs = [lr_cosine(s, **kw) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a < b for a, b in zip(lrs[:9], lrs[1:10]))          # warming up
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))          # decaying
    assert lrs[99] == pytest.approx(1e-4)
    mid = 10 + (99 - 10) / 2
    assert lr_cosine(mid, **kw) == pytest.approx(5.5e-4)


def test_wsd_schedule():
    kw = dict(lr=1e-3, min_lr=0.0, warmup=5, total=100, decay_frac=0.2)
    lrs = [lr_wsd(s, **kw) for s in range(100)]
    assert lrs[0] == pytest.approx(2e-4) and lrs[4] == pytest.approx(1e-3)
    assert all(x == 1e-3 for x in lrs[5:80])                         # stable
    assert all(a > b for a, b in zip(lrs[79:], lrs[80:]))             # decaying
    assert lrs[99] == pytest.approx(0.0, abs=1e-12)
    assert lrs[80] == pytest.approx(1e-3 * 19 / 20)


def test_use_c_without_the_kernels_is_refused():
    if clib.c_available():
        assert AdamW(_params(), use_c=True).use_c
    else:
        with pytest.raises(ValueError, match="C kernels are not loaded"):
            AdamW(_params(), use_c=True)
    assert not AdamW(_params(), use_c=False).use_c


# ---- thread counts and the two paths ------------------------------------------------------

@contextmanager
def _threads(n):
    before = clib.get_num_threads()
    clib.set_num_threads(n)
    try:
        yield
    finally:
        clib.set_num_threads(before)


BIG = {"tok_emb": (257, 131), "blocks.0.wq": (129, 131), "blocks.0.attn_norm": (131,),
       "lm_head": (257, 131)}      # ~118K values: both threads get work


def _big_run(use_c, steps=3, clip=1.0):
    rng = np.random.default_rng(9)
    params = {n: rng.standard_normal(s).astype(np.float32) for n, s in BIG.items()}
    opt = AdamW(params, weight_decay=0.1, use_c=use_c)
    norms = []
    for _ in range(steps):
        for _ in range(2):          # two micro-batches: copy, then accumulate
            opt.accumulate({n: rng.standard_normal(s).astype(np.float32) for n, s in BIG.items()})
        norms.append(opt.step(1e-2, clip=clip).grad_norm)
    return opt, norms


@needs_c
def test_c_results_do_not_depend_on_the_thread_count():
    if not clib.has_openmp():
        pytest.skip("the C kernels were built without OpenMP: one thread only")
    runs = {}
    for threads in (1, 2):
        with _threads(threads):
            assert clib.get_num_threads() == threads
            runs[threads] = _big_run(True)
            x = np.random.default_rng(4).standard_normal(300_001).astype(np.float32)
            runs[threads] += (KO.sum_squares(x),)
    (o1, n1, s1), (o2, n2, s2) = runs[1], runs[2]
    assert n1 == n2 and s1 == s2
    for a, b in ((o1.flat_p, o2.flat_p), (o1.flat_m, o2.flat_m), (o1.flat_v, o2.flat_v)):
        np.testing.assert_array_equal(a, b)


@needs_c
def test_c_and_numpy_paths_agree():
    """Without clipping the norm is not used and the two paths agree bit for bit; with it,
    the norms differ in rounding only (double vs float32 partial sums)."""
    (oc, nc), (on, nn) = _big_run(True, clip=None), _big_run(False, clip=None)
    np.testing.assert_array_equal(oc.flat_p, on.flat_p)
    np.testing.assert_array_equal(oc.flat_v, on.flat_v)
    np.testing.assert_allclose(nc, nn, rtol=1e-6)
    (oc, nc), (on, nn) = _big_run(True), _big_run(False)
    np.testing.assert_allclose(nc, nn, rtol=1e-6)
    np.testing.assert_allclose(oc.flat_p, on.flat_p, rtol=1e-5, atol=1e-6)


@needs_c
def test_fused_norm_equals_grad_norm_and_handles_any_layout():
    params = _params()
    opt = AdamW(params, use_c=True)
    rng = np.random.default_rng(10)
    g1, g2 = _grads(rng), _grads(rng)
    g2["blocks.0.wq"] = np.asfortranarray(g2["blocks.0.wq"])          # not C-contiguous
    g2["final_norm"] = g2["final_norm"].astype(np.float64)              # another dtype
    opt.accumulate(g1)
    opt.accumulate(g2)
    for n in SHAPES:
        np.testing.assert_array_equal(opt.grads[n], (g1[n] + g2[n]).astype(np.float32))
    exact = math.sqrt(math.fsum((opt.flat_g.astype(np.float64) ** 2).tolist())) / 2
    recomputed = opt.grad_norm(0.5)             # a separate pass over the buffer
    assert recomputed == pytest.approx(exact, rel=1e-12)
    assert opt.step(1e-3).grad_norm == recomputed   # the norm fused into accumulate(): same bits
