"""Sampling (minillm/generate/sampling.py): greedy, temperature, top-k, top-p, log-probs.

    python -m pytest tests/generate/test_sampling.py
"""
import numpy as np
import pytest

from minillm.generate.sampling import SamplingParams, candidates, sample, token_logprobs


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture
def logits(rng):
    return rng.standard_normal((3, 11)).astype(np.float32) * 2          # (B, V)


def empirical(logits_row, params, n=20000):
    """Token frequencies over a fine grid of uniforms (inverse transform is exact)."""
    u = (np.arange(n) + 0.5) / n                                        # (n,)
    tokens = sample(np.repeat(logits_row[None], n, axis=0), params, u)
    return np.bincount(tokens, minlength=logits_row.shape[0]) / n


def test_greedy_is_argmax(logits):
    assert sample(logits, SamplingParams(temperature=0), None).tolist() == logits.argmax(axis=1).tolist()
    one = SamplingParams(temperature=1.5, top_k=1)
    assert sample(logits, one, np.array([0.1, 0.5, 0.99])).tolist() == logits.argmax(axis=1).tolist()


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_frequencies_follow_the_tempered_softmax(logits, temperature):
    freq = empirical(logits[0], SamplingParams(temperature=temperature))
    np.testing.assert_allclose(freq, softmax(logits[0].astype(np.float64) / temperature), atol=2e-4)


def test_top_k_keeps_the_k_most_likely_renormalized(logits):
    params = SamplingParams(temperature=1.0, top_k=3)
    freq = empirical(logits[1], params)
    top = np.argsort(-logits[1])[:3]
    assert set(np.flatnonzero(freq)) == set(top.tolist())
    expected = softmax(logits[1][top].astype(np.float64))
    np.testing.assert_allclose(freq[top], expected, atol=2e-4)


def test_top_p_keeps_the_smallest_set_reaching_p():
    z = np.log(np.array([[0.05, 0.5, 0.15, 0.3]]))                     # sorted: 1, 3, 2, 0
    for p, kept in ((0.5, {1}), (0.7, {1, 3}), (0.79, {1, 3}), (0.81, {1, 3, 2}), (1.0, {0, 1, 2, 3})):
        ids, probs = candidates(z, SamplingParams(temperature=1.0, top_p=p))
        assert set(ids[0][probs[0] > 0].tolist()) == kept, p
        assert probs[0].sum() == pytest.approx(1.0)
    freq = empirical(z[0].astype(np.float32), SamplingParams(temperature=1.0, top_p=0.7))
    np.testing.assert_allclose(freq[[1, 3]], [0.5 / 0.8, 0.3 / 0.8], atol=2e-4)


def test_same_uniform_same_token_regardless_of_batch(logits):
    params = SamplingParams(temperature=0.9, top_k=5, top_p=0.9)
    u = np.array([0.3, 0.7, 0.05])
    batch = sample(logits, params, u)
    for b in range(3):
        assert sample(logits[b:b + 1], params, u[b:b + 1])[0] == batch[b]


def test_token_logprobs_is_log_softmax(logits):
    tokens = np.array([0, 5, 10])
    ref = np.log(softmax(logits.astype(np.float64)))[np.arange(3), tokens]
    np.testing.assert_allclose(token_logprobs(logits, tokens), ref, atol=1e-6)
    big = logits + 1000.0                                               # no overflow
    np.testing.assert_allclose(token_logprobs(big.astype(np.float32), tokens), ref, atol=1e-4)


def test_params_are_checked():
    for bad in ({"temperature": -1}, {"top_k": -2}, {"top_p": 0.0}, {"top_p": 1.5}, {"max_tokens": 0}):
        with pytest.raises(ValueError):
            SamplingParams(**bad)
    p = SamplingParams(top_k=0, top_p=1.0)
    assert p.top_k is None and p.top_p is None
