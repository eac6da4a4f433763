"""The policy-gradient loss (rl/loss.py): advantages on hand examples, and the gradient
with respect to the logits against float64 central finite differences, with the mask,
PPO's clip and the KL penalty.

    python -m pytest tests/rl/test_loss.py
"""
import numpy as np
import pytest

from minillm.rl.loss import group_advantages, log_softmax, policy_gradient, token_logprobs


def test_group_advantages_by_hand():
    a = group_advantages([1, 0, 0, 1, 1, 1], group=3, normalize=False)
    assert np.allclose(a, [2 / 3, -1 / 3, -1 / 3, 0, 0, 0])
    a = group_advantages([1, 0, 1, 0], group=2)           # std 0.5 per group
    assert np.allclose(a, [1, -1, 1, -1], atol=1e-5)
    assert np.allclose(group_advantages([0.3] * 4, group=4), 0)   # nothing to learn


def _case(seed=0, B=3, T=5, V=7):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(B, T, V))                        # float64
    tokens = rng.integers(0, V, size=(B, T))
    mask = (rng.random((B, T)) < 0.7).astype(np.float64)
    mask[0, 0] = 1
    adv = np.array([1.3, -0.7, 0.4])[:B]
    return z, tokens, mask, adv


def _fd(fn, z, eps=1e-6):
    dz = np.zeros_like(z)
    for i in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[i] += eps
        zm[i] -= eps
        dz[i] = (fn(zp) - fn(zm)) / (2 * eps)
    return dz


@pytest.mark.parametrize("ppo, beta", [(False, 0.0), (True, 0.0), (False, 0.5), (True, 0.3)])
def test_gradient_matches_finite_differences(ppo, beta):
    z, tokens, mask, adv = _case()
    rng = np.random.default_rng(1)
    # an old policy close enough that some ratios stay inside the clip and some leave it
    old = token_logprobs(z + rng.normal(scale=0.4, size=z.shape), tokens) if ppo else None
    ref = log_softmax(z + rng.normal(scale=0.5, size=z.shape)) if beta else None
    loss, dz, stats = policy_gradient(z, tokens, mask, adv, old_logp=old, clip=0.2, ref_logp=ref, beta=beta)
    num = _fd(lambda x: policy_gradient(x, tokens, mask, adv, old_logp=old, clip=0.2, ref_logp=ref, beta=beta)[0], z)
    assert np.allclose(dz, num, rtol=1e-5, atol=1e-8)
    if ppo:
        assert 0 < stats["clipped"] < 1                  # both branches are exercised
    if beta:
        assert stats["kl"] > 0


def test_masked_tokens_and_zero_advantage_get_no_gradient():
    z, tokens, mask, adv = _case()
    _, dz, _ = policy_gradient(z, tokens, mask, adv)
    assert np.all(dz[mask == 0] == 0)
    _, dz, _ = policy_gradient(z, tokens, mask, np.zeros_like(adv))
    assert np.all(dz == 0)


def test_reinforce_raises_the_rewarded_tokens():
    """One gradient step along -dz makes an answer with A > 0 likelier, A < 0 less likely."""
    z, tokens, mask, adv = _case()
    _, dz, _ = policy_gradient(z, tokens, mask, adv)
    before = (token_logprobs(z, tokens) * mask).sum(axis=1)
    after = (token_logprobs(z - 0.5 * dz, tokens) * mask).sum(axis=1)
    assert np.all(np.sign(after - before) == np.sign(adv))
