"""The RL loop's pieces (rl/grpo.py): what is learned from (only the sampled answer tokens,
never the prompt or a tool's output), the sampling policy's log-probabilities aligned with
them, and a short run on a tiny model that writes metrics and a checkpoint.

    python -m pytest tests/rl/test_grpo.py
"""
from types import SimpleNamespace


from minillm.rl.grpo import old_logprobs, sequences


def _completion(prompt, tokens, forced, logprobs):
    return SimpleNamespace(prompt=prompt, tokens=tokens, forced=forced, logprobs=logprobs)


def test_sequences_mask_only_sampled_answer_tokens():
    a = _completion([1, 2, 3], [4, 5, 6, 7], [False, True, True, False], [-0.1, None, None, -0.4])
    b = _completion([1, 2], [9], [False], [-0.2])
    x, m, lengths = sequences([(None, a), (None, b)], context_len=16)
    assert x.tolist() == [[1, 2, 3, 4, 5, 6, 7], [1, 2, 9, 0, 0, 0, 0]] and lengths == [7, 3]
    assert m.tolist() == [[0, 0, 0, 1, 0, 0, 1], [0, 0, 1, 0, 0, 0, 0]]
    lp = old_logprobs([(None, a), (None, b)], x)
    assert lp[0, 3] == -0.1 and lp[0, 6] == -0.4 and lp[1, 2] == -0.2 and lp[0, 4] == 0


def test_sequences_are_cut_to_the_context():
    a = _completion(list(range(10)), [11, 12, 13], [False] * 3, [-1.0] * 3)
    x, m, _ = sequences([(None, a)], context_len=8)
    assert x.shape == (1, 9) and m[0].tolist() == [0] * 9
