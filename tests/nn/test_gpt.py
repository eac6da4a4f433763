"""The whole model (minillm/nn/gpt.py): the config dial, parameter names and init, the loss
against the cross-entropy of the logits, the gradients of every parameter against float64
central finite differences on tiny odd configurations (GQA, tied and untied), and the
forward over a KV cache (prefill, then decode steps) against the forward over the whole
sequence.

    python -m pytest tests/nn/test_gpt.py
"""
import numpy as np
import pytest

from gradcheck import assert_grad_close, numeric_grad
from minillm.nn import gpt, layers
from minillm.nn.gpt import GPTConfig, backward, forward, init_params


def tiny(tie=False, n_kv_head=2):
    return GPTConfig(vocab_size=11, context_len=9, n_layer=2, n_head=4, n_kv_head=n_kv_head,
                     n_embd=16, hidden_dim=20, tie_embeddings=tie)


def batch(rng, config, B=2, T=7):
    idx = rng.integers(0, config.vocab_size, (B, T))
    targets = rng.integers(0, config.vocab_size, (B, T))
    targets[0, :2] = -1
    mask = rng.random((B, T))
    mask[1, 3] = 0.0
    return idx, targets, mask


def as64(params, rng):
    """float64 copy of params with the norms jittered (so their gradients are not trivial)."""
    out = {k: v.astype(np.float64) for k, v in params.items()}
    for k in out:
        if out[k].ndim == 1:
            out[k] += rng.standard_normal(out[k].shape) * 0.1
        else:
            out[k] *= 10   # larger weights: gradients well above finite-difference noise
    return out


# ---- config and parameters ---------------------------------------------------------------

def test_from_depth_rules_and_overrides():
    c = GPTConfig.from_depth(6, vocab_size=4096, context_len=256)
    assert (c.n_layer, c.n_embd, c.n_head, c.n_kv_head, c.hidden_dim) == (6, 384, 6, 6, 1024)
    c = GPTConfig.from_depth(2, vocab_size=256, context_len=64)
    assert (c.n_embd, c.n_head, c.head_dim, c.hidden_dim) == (128, 4, 32, 352)
    c = GPTConfig.from_depth(4, 256, 64, n_embd=128, n_kv_head=2, tie_embeddings=True)
    assert (c.n_layer, c.n_embd, c.n_head, c.n_kv_head, c.hidden_dim, c.tie_embeddings) == \
        (4, 128, 4, 2, 352, True)
    assert GPTConfig.from_depth(4, 256, 64, hidden_dim=500, n_head=8).head_dim == 32
    with pytest.raises(ValueError, match="multiple of n_kv_head"):
        GPTConfig.from_depth(4, 256, 64, n_kv_head=3)
    with pytest.raises(ValueError, match="multiple of n_head"):
        GPTConfig.from_depth(4, 256, 64, n_head=5)


@pytest.mark.parametrize("tie", [False, True])
def test_param_names_shapes_and_init(tie):
    c = GPTConfig.from_depth(2, 256, 64, n_kv_head=2, tie_embeddings=tie)
    params = init_params(c, seed=3)
    names = ["tok_emb"]
    for i in range(2):
        names += [f"blocks.{i}.{n}" for n in
                  ["attn_norm", "wq", "wk", "wv", "wo", "mlp_norm", "w_gate", "w_up", "w_down"]]
    names += ["final_norm"] + ([] if tie else ["lm_head"])
    assert list(params) == names
    assert params["blocks.1.wk"].shape == (64, 128) and params["blocks.0.wo"].shape == (128, 128)
    assert all(a.dtype == np.float32 for a in params.values())
    assert gpt.num_params(c) == sum(a.size for a in params.values())
    assert np.all(params["blocks.0.attn_norm"] == 1)
    assert params["blocks.0.w_up"].std() == pytest.approx(0.02, rel=0.05)
    assert params["blocks.1.w_down"].std() == pytest.approx(0.02 / 2, rel=0.05)
    again = init_params(c, seed=3)
    assert all(np.array_equal(params[k], again[k]) for k in params)
    assert not np.array_equal(params["tok_emb"], init_params(c, seed=4)["tok_emb"])


# ---- forward -----------------------------------------------------------------------------

def test_loss_is_the_cross_entropy_of_the_logits(rng):
    c = tiny()
    params = init_params(c, 0)
    idx, targets, mask = batch(rng, c)
    logits, _ = forward(params, c, idx)
    z = logits.astype(np.float64).reshape(-1, c.vocab_size)
    nll = np.log(np.exp(z).sum(1)) - z[np.arange(len(z)), np.maximum(targets.reshape(-1), 0)]
    w = (targets.reshape(-1) >= 0) * mask.reshape(-1)
    loss, _ = forward(params, c, idx, targets, mask)
    assert loss == pytest.approx((w * nll).sum() / w.sum(), rel=1e-5)
    loss_nomask, _ = forward(params, c, idx, targets)
    assert loss_nomask == pytest.approx(nll[targets.reshape(-1) >= 0].mean(), rel=1e-5)
    eval_loss, cache = forward(params, c, idx, targets, mask, grad=False)
    assert cache is None and eval_loss == loss


def test_logits_last_and_input_checks(rng):
    c = tiny(tie=True)
    params = init_params(c, 0)
    idx = rng.integers(0, c.vocab_size, (3, 5)).astype(np.uint16)
    logits, _ = forward(params, c, idx)
    np.testing.assert_allclose(gpt.logits_last(params, c, idx), logits[:, -1], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="context_len"):
        forward(params, c, rng.integers(0, 11, (1, 10)))
    with pytest.raises(ValueError, match="targets"):
        forward(params, c, idx, targets=idx[:, :2])
    with pytest.raises(ValueError, match="token ids"):
        forward(params, c, np.array([[1, 11]]))


# ---- forward over a KV cache ---------------------------------------------------------------

def empty_kv(config, B, S):
    shape = (B, config.n_kv_head, S, config.head_dim)
    return ([np.zeros(shape, np.float32) for _ in range(config.n_layer)],
            [np.zeros(shape, np.float32) for _ in range(config.n_layer)])


@pytest.mark.parametrize("tie,n_kv_head", [(False, 2), (True, 1), (False, 6)])
def test_prefill_and_decode_equal_the_full_forward(rng, tie, n_kv_head):
    """Rows with prompts of 3, 8 and 5 tokens (padded to 8) prefilled at once, then decoded
    one token per step at three different positions, up to the cache's last slot: each
    step's logits are the full forward's at that position."""
    c = GPTConfig(vocab_size=23, context_len=15, n_layer=2, n_head=6, n_kv_head=n_kv_head,
                  n_embd=36, hidden_dim=22, tie_embeddings=tie)
    params = init_params(c, 3)
    for name in params:                                    # sharper than init: logits far apart
        params[name] *= 4 if params[name].ndim == 2 else 1
    seq = rng.integers(0, c.vocab_size, (3, 15))                            # (B, S)
    full, _ = forward(params, c, seq, grad=False)                           # (B, S, V)
    lengths = np.array([3, 8, 5])                                           # (B,)
    idx = np.where(np.arange(8) < lengths[:, None], seq[:, :8], 0)          # (B, 8) padded
    kv = empty_kv(c, 3, 15)
    first = gpt.logits_last(params, c, idx, kv, 0, lengths)                 # (B, V)
    np.testing.assert_allclose(first, full[np.arange(3), lengths - 1], rtol=0, atol=1e-5)
    pos = lengths.copy()                                                    # (B,)
    for _ in range(15 - lengths.max()):                                     # row 1 ends at slot 14
        tokens = seq[np.arange(3), pos]                                     # (B,)
        logits, cache = forward(params, c, tokens[:, None], kv=kv, pos=pos)  # (B, 1, V)
        assert cache is None
        np.testing.assert_allclose(logits[:, 0], full[np.arange(3), pos], rtol=0, atol=1e-5)
        pos += 1
    assert np.abs(full).max() > 1.0                                         # not a trivial model
    # a prompt continued by a second prefill at pos 8 is the same as one prefill of it all
    kv2 = empty_kv(c, 3, 15)
    forward(params, c, seq[:, :8], kv=kv2, pos=0)
    logits, _ = forward(params, c, seq[:, 8:13], kv=kv2, pos=8)             # (B, 5, V)
    np.testing.assert_allclose(logits, full[:, 8:13], rtol=0, atol=1e-5)


def test_kv_cache_checks_before_writing(rng):
    c = tiny()
    params = init_params(c, 0)
    kv = empty_kv(c, 2, 6)
    idx = rng.integers(0, c.vocab_size, (2, 4))
    for pos in (3, -1):                                     # 3..6 does not fit 6 slots
        with pytest.raises(ValueError, match="outside the cache"):
            forward(params, c, idx, kv=kv, pos=pos)
    with pytest.raises(ValueError, match="outside the cache"):
        forward(params, c, idx[:, :1], kv=kv, pos=np.array([0, 6]))
    with pytest.raises(ValueError, match="one per row"):
        forward(params, c, idx, kv=kv, pos=np.array([0, 1]))             # T = 4 with per-row pos
    with pytest.raises(ValueError, match="C-contiguous float32"):
        forward(params, c, idx[:1], kv=kv, pos=0)                           # 1 row, a 2-row cache
    assert not any(a.any() for a in kv[0] + kv[1])
    forward(params, c, idx, kv=kv, pos=2)                                   # 2..5 fits
    assert kv[0][0][:, :, 2:].any() and not kv[0][0][:, :, :2].any()


# ---- backward ----------------------------------------------------------------------------

def check_model_grads(params, config, loss_fn, grads, rng, per_tensor=5):
    """Compare `grads` with finite differences of loss_fn at a few entries per tensor
    (always including the first and last) to keep the test fast."""
    assert list(grads) == list(params)
    for name, p in params.items():
        assert grads[name].shape == p.shape, name
        picks = np.unique(np.r_[0, p.size - 1, rng.integers(0, p.size, per_tensor)])
        num = numeric_grad(loss_fn, p, indices=picks)
        assert_grad_close(grads[name], num, rtol=1e-5, atol=1e-9, indices=picks)


@pytest.mark.parametrize("tie,n_kv_head", [(False, 2), (True, 2), (False, 4)])
def test_model_gradients_match_finite_differences(rng, tie, n_kv_head):
    c = tiny(tie, n_kv_head)
    params = as64(init_params(c, 1), rng)
    idx, targets, mask = batch(rng, c)
    loss, cache = forward(params, c, idx, targets, mask)
    grads = backward(cache)
    check_model_grads(params, c, lambda: forward(params, c, idx, targets, mask, grad=False)[0],
                      grads, rng)


def test_backward_from_dlogits_matches_finite_differences(rng):
    c = tiny(tie=True)
    params = as64(init_params(c, 2), rng)
    idx = rng.integers(0, c.vocab_size, (2, 5))
    R = rng.standard_normal((2, 5, c.vocab_size))
    _, cache = forward(params, c, idx)
    grads = backward(cache, dlogits=R)
    check_model_grads(params, c, lambda: float((forward(params, c, idx, grad=False)[0] * R).sum()),
                      grads, rng)


def test_float32_gradients_match_float64(rng):
    c = GPTConfig(vocab_size=29, context_len=16, n_layer=2, n_head=4, n_kv_head=2, n_embd=24,
                  hidden_dim=40)
    p32 = init_params(c, 5)
    p64 = {k: v.astype(np.float64) for k, v in p32.items()}
    idx, targets, mask = batch(rng, c, B=3, T=13)
    loss32, cache32 = forward(p32, c, idx, targets, mask)
    loss64, cache64 = forward(p64, c, idx, targets, mask)
    assert loss32 == pytest.approx(loss64, rel=1e-6)
    g32, g64 = backward(cache32), backward(cache64)
    for name in p32:
        assert g32[name].dtype == np.float32
        scale = np.abs(g64[name]).max()
        assert np.abs(g32[name] - g64[name]).max() <= 1e-4 * scale, name


def test_backward_consumes_the_cache(rng):
    c = tiny()
    params = init_params(c, 0)
    idx, targets, _ = batch(rng, c)
    _, cache = forward(params, c, idx, targets)
    backward(cache)
    assert cache["blocks"] == []
    with pytest.raises(KeyError):
        backward(cache)


def test_lm_head_chunking_does_not_change_the_result(rng, monkeypatch):
    c = tiny(tie=True)
    params = init_params(c, 0)
    idx, targets, mask = batch(rng, c)
    loss, cache = forward(params, c, idx, targets, mask)
    grads = backward(cache)
    monkeypatch.setattr(layers, "CHUNK_ELEMENTS", 3 * c.vocab_size)   # 3 rows per chunk
    loss3, cache3 = forward(params, c, idx, targets, mask)
    grads3 = backward(cache3)
    assert loss3 == pytest.approx(loss, rel=1e-6)
    for name in grads:
        np.testing.assert_allclose(grads3[name], grads[name], rtol=1e-5, atol=1e-7)


def test_forward_backward_is_deterministic(rng):
    """Resume must replay bit for bit: the same inputs give identical loss and gradients."""
    c = GPTConfig(vocab_size=300, context_len=40, n_layer=2, n_head=4, n_kv_head=2, n_embd=64,
                  hidden_dim=176)
    params = init_params(c, 0)
    idx, targets, mask = batch(rng, c, B=5, T=40)
    runs = []
    for _ in range(2):
        loss, cache = forward(params, c, idx, targets, mask)
        runs.append((loss, backward(cache)))
    assert runs[0][0] == runs[1][0]
    for name in params:
        np.testing.assert_array_equal(runs[0][1][name], runs[1][1][name])
