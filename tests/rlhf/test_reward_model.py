"""The reward model (rlhf/reward_model.py): the Bradley-Terry loss and its gradient, the
scalar head's gradient and the transformer's below it, against float64 central finite
differences; a head at 0 scores everything 0 (loss log 2).

    python -m pytest tests/rlhf/test_reward_model.py
"""
import numpy as np
import pytest

from gradcheck import assert_grad_close, numeric_grad
from minillm.nn.gpt import GPTConfig, init_params
from minillm.nn import gpt
from minillm.rlhf.reward_model import answer_logp, bt_loss, reward_backward, reward_forward

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


def test_answer_logp_is_minus_the_models_loss_on_the_answer(rng):
    """f = the mean log-probability of the answer's tokens, each after what came before:
    the negative of the LM's own cross-entropy (gpt.forward with targets) on those tokens."""
    config = GPTConfig(vocab_size=13, context_len=9, n_layer=1, n_head=2, n_kv_head=2, n_embd=8, hidden_dim=12)
    params = init_params(config, 3)
    x = rng.integers(1, 13, (2, 8))
    lengths, starts = np.array([8, 5]), np.array([3, 4])        # row 1: padded, a one-token answer
    f = answer_logp(params, config, x, lengths, starts)
    for b in range(2):
        n, s = lengths[b], starts[b]
        mask = (np.arange(n - 1) >= s - 1).astype(np.float32)[None]  # targets x[1:n]; the answer's from s
        loss, _ = gpt.forward(params, config, x[b:b + 1, :n - 1], targets=x[b:b + 1, 1:n], loss_mask=mask, grad=False)
        assert f[b] == pytest.approx(-loss, rel=1e-5)


def test_the_log_probability_weight_gradient_matches_finite_differences(rng):
    """r = h . w + u f: dL/du = sum_b dr_b f_b (reward_model.train_step)."""
    r0, f = rng.normal(size=4), rng.normal(size=4)
    u = np.array([0.7])
    _, dr = bt_loss(r0 + u[0] * f, PAIRS)
    num = numeric_grad(lambda: bt_loss(r0 + u[0] * f, PAIRS)[0], u)
    assert_grad_close(np.array([dr @ f]), num, rtol=1e-7)


def test_a_saved_reward_model_scores_the_same_and_needs_its_sft_model(tmp_path):
    """--logp: the head, u and the SFT checkpoint's place (relative) round-trip through
    save/load, a missing SFT checkpoint is one clear error; without it, the head alone."""
    import shutil

    from minillm.common import UserError
    from minillm.nn.checkpoint import save_checkpoint
    from minillm.rl.tasks import Item
    from minillm.rlhf.reward_model import RewardModel
    from minillm.tokenizer.train import train_tokenizer

    tok = train_tokenizer("Write a poem about Tarvale. Tarvale lies on the Senora River.\n" * 10, 300)
    config = GPTConfig(vocab_size=tok.vocab_size, context_len=32, n_layer=1, n_head=2, n_kv_head=2, n_embd=8,
                       hidden_dim=12)
    save_checkpoint(tmp_path / "run" / "sft", config, init_params(config, 4), tokenizer=tok, meta={"stage": "sft"})
    sft = tmp_path / "run" / "sft"
    rm = RewardModel(config, init_params(config, 5), np.linspace(-1, 1, 8).astype(np.float32), tok,
                     init_params(config, 4), sft.resolve(), np.array([0.8], np.float32))
    plain = RewardModel(config, rm.params, rm.head, tok)              # without --logp: the head alone
    items = [Item([{"role": "user", "content": "Write a poem about Tarvale."}], None, {})] * 2
    texts = ["Tarvale lies on the Senora River.", "River river river."]
    want = rm.scores(items, texts)
    rm.save(tmp_path / "run" / "rlhf" / "reward_model")
    shutil.move(tmp_path / "run", tmp_path / "moved")             # relative paths: the run can move
    back = RewardModel.load(tmp_path / "moved" / "rlhf" / "reward_model")
    assert back.u[0] == pytest.approx(0.8) and np.allclose(back.scores(items, texts), want, rtol=1e-6)
    assert not np.isclose(want[0], want[1])
    head_only = plain.scores(items, texts)
    assert not np.allclose(head_only, want)                        # u f is part of the --logp score
    plain.save(tmp_path / "moved" / "rlhf" / "plain")
    assert np.allclose(RewardModel.load(tmp_path / "moved" / "rlhf" / "plain").scores(items, texts), head_only, rtol=1e-6)
    shutil.rmtree(tmp_path / "moved" / "sft")
    with pytest.raises(UserError, match="SFT model it was trained from"):
        RewardModel.load(tmp_path / "moved" / "rlhf" / "reward_model")
