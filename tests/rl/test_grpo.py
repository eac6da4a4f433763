"""The RL loop's pieces (rl/grpo.py): what is learned from (only the sampled answer tokens,
never the prompt or a tool's output), the sampling policy's log-probabilities aligned with
them, and short runs on a tiny model: checkpoints, Ctrl-C, a bit-identical resume, --out.

    python -m pytest tests/rl/test_grpo.py
"""
import json
from types import SimpleNamespace

import numpy as np
import pytest

from minillm import speedrun
from minillm.common import UserError
from minillm.nn import gpt
from minillm.nn.checkpoint import load_checkpoint, save_checkpoint
from minillm.rl import grpo
from minillm.rl.grpo import RLConfig, old_logprobs, rl, sequences
from minillm.tokenizer.train import train_tokenizer
from minillm.world.world import World
from mpirun import minillm_on_ranks


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


# ---- a short run on a tiny model: checkpoints, Ctrl-C, resume ---------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A random tiny model with the chat tokenizer (tmp/sft) and the smoke world (tmp/world)."""
    root = tmp_path_factory.mktemp("rl")
    tok = train_tokenizer("Use 6 and 7 to make 42. You can use +, - or *. 6 * 7 = 42. Answer: 6 * 7\n" * 20, 300)
    config = gpt.GPTConfig(vocab_size=tok.vocab_size, context_len=64, n_layer=1, n_head=2, n_kv_head=2,
                           n_embd=32, hidden_dim=64)
    save_checkpoint(root / "sft", config, gpt.init_params(config, 0), tokenizer=tok, meta={"stage": "sft"})
    World.build(seed=0, size="smoke").save(root / "world")
    return root


def cfg(root, **kw):
    base = dict(ckpt=str(root / "sft"), task="countdown", steps=6, prompts=2, group=3, max_tokens=10,
                eval_every=3, eval_prompts=4, k=2, ckpt_every=2, lr=1e-3, progress=False, threads=1)
    base.update(kw)
    return RLConfig(**base)


def records(path, out):
    return [json.loads(line) for line in path.read_text().splitlines() if json.loads(line).get("out") == out]


def test_rollouts_in_chunks_draw_the_answers_of_one_call(tiny, monkeypatch):
    """rollouts() bounds its KV cache by drawing ROLLOUT_ROWS answers per engine call;
    answer c still draws from default_rng([seed, c]), so the chunks change nothing."""
    from minillm.chat.sft import chat_tokenizer
    from minillm.rl.tasks import Item
    model, params, _ = load_checkpoint(tiny / "sft")
    tok = chat_tokenizer(tiny / "sft", model.vocab_size)
    items = [Item([{"role": "user", "content": f"Use {a} and 7 to make 42."}], None, {}) for a in range(5)]

    def draw(rows):
        monkeypatch.setattr(grpo, "ROLLOUT_ROWS", rows)
        pairs = grpo.rollouts(grpo.policy_engine(params, model, tok), items, 3, 8, seed=11, temperature=1.0)
        assert [it for it, _ in pairs] == [it for it in items for _ in range(3)]
        return [c.tokens for _, c in pairs]

    whole = draw(1000)
    assert len({tuple(t) for t in whole}) > 5               # the samples differ from each other
    assert draw(6) == whole and draw(1) == whole            # 2 prompts x 3 answers per call; 1 prompt


@pytest.mark.parametrize("stop_in", ["practise", "eval"])
def test_resume_after_ctrl_c_is_bit_identical(tiny, monkeypatch, stop_in):
    """Ctrl-C in the middle of an update resumes from the last periodic checkpoint; between
    updates it saves where it is. Either way the resumed run equals the uninterrupted one."""
    full = rl(cfg(tiny, out=str(tiny / f"full-{stop_in}")))
    assert full["steps"] == 6 and not full["interrupted"]
    real, calls = (grpo.practise if stop_in == "practise" else grpo.pass_at_1), [0]

    def interrupted(*a, **kw):
        calls[0] += 1
        if calls[0] == (4 if stop_in == "practise" else 2):        # the 4th update / the eval at step 3
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(grpo, stop_in if stop_in == "practise" else "pass_at_1", interrupted)
    part = rl(cfg(tiny, out=str(tiny / f"part-{stop_in}")))
    assert part["interrupted"] and part["steps"] == (2 if stop_in == "practise" else 3)
    monkeypatch.undo()
    rest = rl(RLConfig(out=str(tiny / f"part-{stop_in}"), resume=True, progress=False, threads=1))
    assert rest["steps"] == 6 and not rest["interrupted"]
    metrics = tiny / "metrics.jsonl"
    a, b = records(metrics, f"full-{stop_in}"), records(metrics, f"part-{stop_in}")
    assert [r["step"] for r in b] == list(range(7))
    strip = lambda r: {k: v for k, v in r.items() if k not in ("out", "seconds", "seconds_sampling", "time")}  # noqa: E731
    assert [strip(r) for r in a] == [strip(r) for r in b]                     # every number, exactly
    pa, pb = load_checkpoint(tiny / f"full-{stop_in}")[1], load_checkpoint(tiny / f"part-{stop_in}")[1]
    assert all(np.array_equal(pa[n], pb[n]) for n in pa)


def test_out_rule_and_resume_keeps_settings(tiny):
    rl(cfg(tiny, out=str(tiny / "r"), steps=1))
    with pytest.raises(UserError, match="--resume continues it, --force replaces it"):
        rl(cfg(tiny, out=str(tiny / "r"), steps=1))
    with pytest.raises(UserError, match="lr 0.5 differs"):
        rl(RLConfig(out=str(tiny / "r"), resume=True, lr=0.5, progress=False))
    with pytest.raises(UserError, match="not an RL output"):
        rl(cfg(tiny, out=str(tiny / "world"), steps=1))
    with pytest.raises(UserError, match="input checkpoint"):
        rl(cfg(tiny, out=str(tiny / "sft"), steps=1))
    assert rl(cfg(tiny, out=str(tiny / "r"), steps=1, force=True))["steps"] == 1
    with pytest.raises(UserError, match="give --ckpt"):
        rl(RLConfig(progress=False))


def test_train_step_equals_the_loss_on_the_whole_batch():
    """Gathering the answer tokens (and splitting into micro-batches) changes nothing: the
    gradient equals policy_gradient's over the full (B, T, V) logits with the mask."""
    from minillm.rl.loss import policy_gradient
    config = gpt.GPTConfig(vocab_size=50, context_len=16, n_layer=1, n_head=2, n_kv_head=2, n_embd=16, hidden_dim=32)
    params = gpt.init_params(config, 1)
    rng = np.random.default_rng(0)
    B, L = 11, 12
    x = rng.integers(0, 50, (B, L))
    m = (rng.random((B, L)) < 0.5).astype(np.float32)
    m[:, 0] = 0
    adv = rng.normal(size=B)
    c = RLConfig(beta=0.0)
    grads, stats = grpo.train_step(params, config, params, x, m, adv, np.zeros((B, L)), c)
    z, cache = gpt.forward(params, config, x[:, :-1])
    loss, dz, _ = policy_gradient(z.astype(np.float64), x[:, 1:], m[:, 1:], adv)
    want = gpt.backward(cache, dz.astype(np.float32))
    assert abs(stats["loss"] - loss) < 1e-5
    for k in want:
        np.testing.assert_allclose(grads[k], want[k], rtol=1e-4, atol=1e-6)
    assert stats["kl"] == 0.0                                       # the policy is its own reference


# ---- data parallelism: 2 ranks under mpirun take the single process's steps -----------------

@pytest.mark.slow
def test_two_ranks_practise_like_one_process(tmp_path, monkeypatch):
    """The smoke run's SFT model counting letters at temperature 1 (a third of its answers
    are right, so groups hold right and wrong ones and the gradient is not zero): 3 steps of
    4 prompts x 8 answers on 2 ranks (2 prompts each) take the single process's steps: the
    same rewards, updates equal to 1e-4 of their size (measured 8e-6), and at most one weight
    in 10,000 further than 1e-4 (relative to its tensor's largest) from one process's. Not
    none: a group's advantages sum to zero, so some gradients nearly cancel, and Adam's
    first steps turn the float-order difference of a near-zero gradient into a fraction of
    the learning rate, at most lr a step (measured: on AVX2 4 of 139,584 weights differ by
    more than 1e-6 and none by 1e-4; on AVX-512 (Zen 5) 2 by more than 1e-4, at most 3.5e-4)."""
    monkeypatch.setenv("MINILLM_RUNS", str(tmp_path))
    run = tmp_path / "smoke"
    speedrun.speedrun("smoke", threads=1)
    flags = dict(task="spelling", steps=3, prompts=4, group=8, max_tokens=48, temperature=1.0, lr=3e-3,
                 eval_every=3, eval_prompts=8, k=2, threads=1)
    one = rl(RLConfig(ckpt=str(run / "sft"), out=str(tmp_path / "one"), progress=False, **flags))
    args = [f"--{k.replace('_', '-')}={v}" for k, v in flags.items()]
    lines = minillm_on_ranks("rl", "--ckpt", run / "sft", "--out", tmp_path / "two", "--no-progress", *args)
    assert not any(line.startswith("[1,1]") for line in lines), lines          # rank 1: silent
    start, p1, p2 = (load_checkpoint(d)[1] for d in (run / "sft", tmp_path / "one", tmp_path / "two"))
    d1, d2 = (np.concatenate([(p[n] - start[n]).ravel() for n in sorted(p)]) for p in (p1, p2))
    assert np.linalg.norm(d1) > 1e-3 and np.linalg.norm(d1 - d2) < 1e-4 * np.linalg.norm(d1)
    rel = np.concatenate([(np.abs(p1[n] - p2[n]) / np.abs(p1[n]).max()).ravel() for n in p1])
    assert (rel > 1e-4).sum() <= 1e-4 * rel.size
    assert max(float(np.abs(p1[n] - p2[n]).max()) for n in p1) <= 2 * flags["steps"] * flags["lr"]
    two = records(run / ".." / "metrics.jsonl", "two")
    assert [r["reward"] for r in two[:3]] == pytest.approx([r["reward"] for r in one["history"][:3]])
    assert two[0]["pass1"] == one["history"][0]["pass1"]
