"""The reward model (rlhf/reward_model.py): the Bradley-Terry loss and its gradient, the
scalar head's gradient and the transformer's below it, against float64 central finite
differences; a head at 0 scores everything 0 (loss log 2).

    python -m pytest tests/rlhf/test_reward_model.py
"""
import numpy as np
import pytest

from gradcheck import assert_grad_close, numeric_grad
from minillm.nn.gpt import GPTConfig, init_params
from minillm.rlhf.reward_model import bt_loss, reward_backward, reward_forward

PAIRS = [(0, 1), (0, 2), (3, 1), (2, 1), (3, 0)]


def test_bt_loss_by_hand():
    loss, dr = bt_loss(np.zeros(4), PAIRS)
    assert loss == pytest.approx(np.log(2))                       # every score equal: P = 1/2
    # d/dr_c of -log sigmoid(r_c - r_r) at 0 is -1/2, over 5 pairs
    assert dr[0] == pytest.approx((-0.5 - 0.5 + 0.5) / 5) and dr[1] == pytest.approx(3 * 0.5 / 5)
    loss, _ = bt_loss(np.array([2.0, 0.0]), [(0, 1)])
    assert loss == pytest.approx(np.log1p(np.exp(-2.0)))


def test_bt_loss_gradient_matches_finite_differences(rng):
    r = rng.normal(size=4) * 2                                    # float64
    _, dr = bt_loss(r, PAIRS)
    num = numeric_grad(lambda: bt_loss(r, PAIRS)[0], r)
    assert_grad_close(dr, num, rtol=1e-7)


@pytest.mark.parametrize("tie", [True, False])
def test_head_and_model_gradients_match_finite_differences(rng, tie):
    config = GPTConfig(vocab_size=13, context_len=9, n_layer=2, n_head=2, n_kv_head=1, n_embd=8,
                       hidden_dim=12, tie_embeddings=tie)
    params = {k: v.astype(np.float64) * (1 if v.ndim == 1 else 10) for k, v in init_params(config, 1).items()}
    head = rng.normal(size=8)                                     # (C,) float64
    x = rng.integers(0, 13, (4, 7))
    lengths = np.array([7, 3, 5, 6])                              # rows padded on the right

    def loss():
        r, _ = reward_forward(params, config, head, x, lengths, grad=False)
        return bt_loss(r, PAIRS)[0]

    r, cache = reward_forward(params, config, head, x, lengths)
    _, dr = bt_loss(r, PAIRS)
    grads, dhead = reward_backward(dr, cache)
    assert_grad_close(dhead, numeric_grad(loss, head), rtol=1e-6)
    for name in ("tok_emb", "blocks.0.wq", "blocks.1.w_down", "final_norm"):
        assert_grad_close(grads[name], numeric_grad(loss, params[name]), rtol=1e-5)
    if not tie:
        assert not grads["lm_head"].any()                         # the LM head is not used


def test_padding_after_the_last_token_changes_nothing(rng):
    config = GPTConfig(vocab_size=13, context_len=9, n_layer=1, n_head=2, n_kv_head=2, n_embd=8, hidden_dim=12)
    params, head = init_params(config, 2), rng.normal(size=8).astype(np.float32)
    x = rng.integers(1, 13, (1, 7))
    short, _ = reward_forward(params, config, head, x[:, :4], np.array([4]), grad=False)
    padded, _ = reward_forward(params, config, head, np.where(np.arange(7) < 4, x, 0), np.array([4]), grad=False)
    assert short[0] == pytest.approx(padded[0], rel=1e-5)


def test_accuracy_by_part_counts_what_decided_each_pair():
    """Each pair goes to the part of the true score with the largest weighted gap
    (labeller.WEIGHTS: facts 0.35, length 0.15, fluency 0.20); the ceiling is the share of
    the labeller's pairs that the noise-free true score orders the same way."""
    from minillm.rlhf.labeller import WEIGHTS
    from minillm.rlhf.reward_model import accuracy_by_part

    def parts(**given):
        p = {k: given.get(k, 0.0) for k in WEIGHTS}
        return dict(p, true=sum(WEIGHTS[k] * p[k] for k in WEIGHTS))

    table = {"a": parts(facts=1.0), "b": parts(length=1.0), "c": parts(fluency=0.5)}   # true .35 .15 .10
    scores = {"a": 1.0, "b": 2.0, "c": 0.0}

    class Labeller:
        def score_parts(self, items, texts):
            return [table[t] for t in texts]

    class RM:
        def scores(self, items, texts):
            return np.array([scores[t] for t in texts])

    # (a, b): facts +.35 vs length -.15 -> facts, RM wrong; (a, c): facts, RM right;
    # (c, b), a labeller's slip: length -.15 vs fluency +.10 -> length, RM wrong, true disagrees
    records = [{"messages": [{"role": "user", "content": "x"}], "meta": {}, "texts": ["a", "b", "c"],
                "pairs": [(0, 1), (0, 2), (2, 1)]}]
    out = accuracy_by_part(RM(), Labeller(), records)
    assert out["parts"] == {"facts": {"pairs": 2, "accuracy": 0.5}, "length": {"pairs": 1, "accuracy": 0.0}}
    assert out["ceiling"] == pytest.approx(2 / 3)
