"""sft.py: batches of whole conversations, the masked loss and its gradient (float64 finite
differences), a smoke run that memorises an identity answer, bit-identical resume after
Ctrl-C, the --out rule, the refusals (no chat special tokens, changed settings), and
(slow) 2 ranks under mpirun against one process."""
import argparse
import json
import os
import signal

import numpy as np
import pytest

from gradcheck import assert_grad_close, numeric_grad
from mpirun import minillm_on_ranks
from minillm import clib
from minillm.chat import cli
from minillm.chat.sft import ConversationBatches, SFTConfig, collate, load_examples, sft
from minillm.chat.template import render, render_prompt
from minillm.chat.tools import calculator
from minillm.common import UserError
from minillm.generate.engine import Engine
from minillm.nn import gpt
from minillm.nn.checkpoint import load_checkpoint, save_checkpoint
from minillm.tokenizer.train import train_tokenizer


def U(text):
    return {"role": "user", "content": text}


def A(content):
    return {"role": "assistant", "content": content}


CALL = [{"type": "python", "text": "17*23"}, {"type": "output", "text": "391"}, {"type": "text", "text": "It is 391."}]
CONVS = [
    {"kind": "identity", "messages": [U("Who are you?"), A("I am minillm's assistant.")]},
    {"kind": "calc", "messages": [U("What is 17*23?"), A(CALL)]},
    {"kind": "qa", "messages": [U("What is the capital of Velmora?"), A("The capital is Ostrin.")]},
    {"kind": "chat", "messages": [U("Hi!"), A("Hello! How can I help?"), U("Thanks."), A("You are welcome.")]},
    {"kind": "identity", "split": "eval", "messages": [U("Who made you?"), A("The minillm project made me.")]},
]
MODEL = dict(context_len=64, n_layer=2, n_head=2, n_kv_head=2, n_embd=32, hidden_dim=64)


@pytest.fixture(autouse=True)
def keep_thread_count():
    threads = clib.get_num_threads()
    yield
    clib.set_num_threads(threads)


@pytest.fixture
def run(tmp_path, tok):
    """tmp_path/base: a random tiny model with the chat tokenizer; tmp_path/convs.jsonl: CONVS."""
    config = gpt.GPTConfig(vocab_size=tok.vocab_size, **MODEL)
    save_checkpoint(tmp_path / "base", config, gpt.init_params(config, 0), tokenizer=tok,
                    meta={"train": {"lr": 3e-3}})
    (tmp_path / "convs.jsonl").write_text("".join(json.dumps(c) + "\n" for c in CONVS))
    return tmp_path


def config(run, **kw):
    base = dict(ckpt=str(run / "base"), out=str(run / "sft"), data=str(run / "convs.jsonl"), steps=100,
                batch_size=4, lr=5e-3, eval_every=0, progress=False, threads=1)
    base.update(kw)
    return SFTConfig(**base)


def greedy_reply(ckpt, question, tools=None):
    engine = Engine.from_checkpoint(ckpt, tools=tools)
    end = engine.tokenizer.special_tokens["<|assistant_end|>"]
    [c] = engine.generate(render_prompt([U(question)], engine.tokenizer), temperature=0, max_tokens=30,
                          stop=[end])
    return c.text


# ---- batches and the masked loss ---------------------------------------------------------

def test_collate_shifts_and_pads(tok):
    a, b = (render(c["messages"], tok) for c in CONVS[:2])
    x, y, w = collate([a, b], pad_id=7)
    T = max(len(a[0]), len(b[0])) - 1
    assert x.shape == y.shape == w.shape == (2, T)
    for row, (ids, mask) in enumerate((a, b)):
        n = len(ids) - 1
        assert x[row, :n].tolist() == ids[:-1].tolist() and y[row, :n].tolist() == ids[1:].tolist()
        assert w[row, :n].tolist() == mask[1:].tolist()
        assert (x[row, n:] == 7).all() and (y[row, n:] == -1).all() and (w[row, n:] == 0).all()


def tiny64(tok, rng):
    c = gpt.GPTConfig(vocab_size=tok.vocab_size, context_len=64, n_layer=1, n_head=2, n_kv_head=1,
                      n_embd=8, hidden_dim=12)
    params = {k: v.astype(np.float64) * (1 if v.ndim == 1 else 10) for k, v in gpt.init_params(c, 3).items()}
    params["final_norm"] += rng.standard_normal(params["final_norm"].shape) * 0.1
    return c, params


def test_masked_loss_is_the_mean_over_supervised_tokens(tok, rng):
    c, params = tiny64(tok, rng)
    x, y, w = collate([render(conv["messages"], tok) for conv in CONVS[:3]], tok.bos_id)
    loss, _ = gpt.forward(params, c, x, y, loss_mask=w, grad=False)
    logits, _ = gpt.forward(params, c, x, grad=False)                       # (B, T, V)
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))                     # (B, T, V)
    picked = np.take_along_axis(logp, np.maximum(y, 0)[..., None], -1)[..., 0]   # (B, T)
    assert loss == pytest.approx(-(picked * w).sum() / w.sum(), rel=1e-12)
    assert 0 < w.sum() < (y >= 0).sum()                  # some real tokens are not supervised


def test_masked_loss_gradient_matches_finite_differences(tok, rng):
    c, params = tiny64(tok, rng)
    x, y, w = collate([render(conv["messages"], tok) for conv in CONVS[1:4]], tok.bos_id)
    _, cache = gpt.forward(params, c, x, y, loss_mask=w)
    grads = gpt.backward(cache)
    loss = lambda: gpt.forward(params, c, x, y, loss_mask=w, grad=False)[0]   # noqa: E731
    used = np.unique(x)                                  # embedding rows the batch reads
    for name, p in params.items():
        if name == "tok_emb":
            picks = (used[rng.integers(0, len(used), 6)] * c.n_embd + rng.integers(0, c.n_embd, 6)).tolist()
        elif name == "lm_head":
            picks = (np.unique(y[w > 0])[:4] * c.n_embd).tolist() + rng.integers(0, p.size, 4).tolist()
        else:
            picks = rng.integers(0, p.size, 8).tolist()
        assert_grad_close(grads[name], numeric_grad(loss, p, indices=picks), rtol=1e-5, atol=1e-9,
                          indices=picks)


def test_masked_positions_contribute_nothing(tok, rng):
    c, params = tiny64(tok, rng)
    x, y, w = collate([render(conv["messages"], tok) for conv in CONVS[:4]], tok.bos_id)
    other = np.where(w > 0, y, rng.integers(0, c.vocab_size, y.shape))   # new targets where w = 0
    other[y < 0] = -1
    assert (other != y).any()
    loss_a, cache_a = gpt.forward(params, c, x, y, loss_mask=w)
    loss_b, cache_b = gpt.forward(params, c, x, other, loss_mask=w)
    assert loss_a == loss_b
    ga, gb = gpt.backward(cache_a), gpt.backward(cache_b)
    assert all(np.array_equal(ga[n], gb[n]) for n in ga)


# ---- data --------------------------------------------------------------------------------

def test_eval_split_is_held_out_else_a_fixed_fraction(run, tok):
    train, held, info = load_examples(run / "convs.jsonl", tok, 65, eval_frac=0.5)
    assert info == {"conversations": 4, "held_out": 1, "tokens": sum(len(i) for i, _ in train),
                    "supervised": sum(int(m.sum()) for _, m in train), "skipped": 0}
    assert held[0][0].tolist() == render(CONVS[4]["messages"], tok)[0].tolist()
    plain = run / "plain.jsonl"
    plain.write_text("".join(json.dumps(c["messages"]) + "\n" for c in CONVS))
    t1, h1, _ = load_examples(plain, tok, 65, eval_frac=0.4)
    t2, h2, _ = load_examples(plain, tok, 65, eval_frac=0.4)
    assert len(h1) == 2 and len(t1) == 3
    assert [i.tolist() for i, _ in h1] == [i.tolist() for i, _ in h2]     # fixed, not random


def test_long_conversations_keep_whole_exchanges(run, tok):
    """A two-exchange conversation in a context with room for one and a half: the first
    exchange is kept whole, the second dropped; an exchange that cannot fit is an error."""
    (run / "long.jsonl").write_text(json.dumps(CONVS[3]) + "\n")
    first = render(CONVS[3]["messages"][:2], tok)[0]
    [(ids, mask)], _, _ = load_examples(run / "long.jsonl", tok, len(first) + 3, eval_frac=0)
    assert ids.tolist() == first.tolist() and mask[-1] == 1
    with pytest.raises(UserError, match=f"long.jsonl:1: exchange 1 .* more than max_len {len(first) - 1}"):
        load_examples(run / "long.jsonl", tok, len(first) - 1, eval_frac=0)


def test_bad_data_names_file_and_line(run, tok):
    bad = [U("hi"), {"role": "bot", "content": "x"}]
    (run / "bad.jsonl").write_text(json.dumps(CONVS[0]) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(UserError, match=r"bad.jsonl:2: message 2 has unknown role 'bot'"):
        sft(config(run, data=str(run / "bad.jsonl")))


def test_loader_order_depends_on_seed_and_epoch_only(tok):
    examples = [render(c["messages"], tok) for c in CONVS]
    a, b = ConversationBatches(examples, 2, 0, 0), ConversationBatches(examples, 2, 0, 0)
    [a.next_batch() for _ in range(3)]                   # into the second epoch
    b.restore(a.state())
    assert [x.tolist() for x in a.next_batch()] == [x.tolist() for x in b.next_batch()]


def test_loader_visits_each_conversation_once_per_epoch_in_batches_of_like_length():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 200, size=1000)
    examples = [(np.full(n, k, np.int64), np.ones(n, np.int8)) for k, n in enumerate(lengths)]
    loader = ConversationBatches(examples, 16, 0, -1)
    seen, real, padded = [], 0, 0
    while loader.epoch == 0:
        x, y, w = loader.next_batch()
        if loader.epoch == 0:
            seen += [int(row[0]) for row in x]
            real, padded = real + int((y >= 0).sum()), padded + y.size
    assert sorted(seen) == list(range(1000))
    # random batches of 16 of these lengths are ~55% real tokens; grouped, above 90%
    assert real / padded > 0.9
    assert loader.state()["epoch"] == 1 and loader.pos == 1


# ---- the run -----------------------------------------------------------------------------

def test_smoke_run_memorises_the_identity_answer(run, tok, capsys):
    """Fixed seed, 100 steps on 4 conversations: the loss falls from ~ln(V) to a measured
    0.063 (band < 0.2), and greedy decoding gives the trained replies, tool call included."""
    before = greedy_reply(run / "base", "Who are you?")
    r = sft(config(run))
    assert r.losses[1] == pytest.approx(np.log(tok.vocab_size), abs=0.3) and r.final_loss < 0.2
    assert np.mean([r.losses[s] for s in range(1, 6)]) > np.mean([r.losses[s] for s in range(50, 56)]) > r.final_loss
    assert set(r.val_losses) == {0, 100}                 # the base model's held-out loss, and the end's
    assert before != "I am minillm's assistant."
    assert greedy_reply(run / "sft", "Who are you?") == "I am minillm's assistant."
    assert greedy_reply(run / "sft", "What is 17*23?", {"python": calculator}) == \
        "<|python_start|>17*23<|python_end|><|output_start|>391<|output_end|>It is 391."
    meta = json.loads((run / "sft" / "config.json").read_text())
    assert meta["stage"] == "sft" and meta["step"] == 100 and meta["base"] == str(run / "base")
    assert meta["train"]["lr"] == 5e-3 and meta["data"]["conversations"] == 4
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(0, 101)) and metrics[0]["val_loss"] > 0
    err = capsys.readouterr().err
    assert "checkpoint: " + str(run / "sft") in err and "before SFT" in err


def _interrupt_at(monkeypatch, step):
    """SIGINT to ourselves when step `step` (1-based) fetches its batch, like Ctrl-C."""
    real, calls = ConversationBatches.next_examples, [0]

    def next_examples(loader):
        calls[0] += 1
        if calls[0] == step:
            os.kill(os.getpid(), signal.SIGINT)
        return real(loader)

    monkeypatch.setattr(ConversationBatches, "next_examples", next_examples)


def losses_in(path, out):
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return {r["step"]: (r.get("loss"), r.get("val_loss")) for r in records if r.get("out") == out}


def test_resume_after_ctrl_c_is_bit_identical(run, monkeypatch, capsys):
    full = sft(config(run, out=str(run / "a"), steps=12, eval_every=4))
    _interrupt_at(monkeypatch, 5)
    part = sft(config(run, out=str(run / "b"), steps=12, eval_every=4))
    assert part.interrupted and part.steps == 5
    assert f"resume with: minillm sft --out {run / 'b'} --resume" in capsys.readouterr().err
    monkeypatch.undo()
    rest = sft(SFTConfig(out=str(run / "b"), resume=True, progress=False))
    assert rest.steps == 12 and not rest.interrupted and full.val_losses == rest.val_losses
    a, b = losses_in(run / "metrics.jsonl", "a"), losses_in(run / "metrics.jsonl", "b")
    assert list(b) == list(range(13)) and a == b                     # every step, exactly
    pa, pb = load_checkpoint(run / "a")[1], load_checkpoint(run / "b")[1]
    assert all(np.array_equal(pa[n], pb[n]) for n in pa)
    with pytest.raises(UserError, match="--lr 0.5 differs from the run's 0.005"):
        sft(SFTConfig(out=str(run / "b"), resume=True, lr=0.5, steps=20, progress=False))
    assert sft(SFTConfig(out=str(run / "b"), resume=True, progress=False)).losses == {}   # nothing to do


@pytest.mark.slow
def test_two_ranks_fine_tune_the_single_process_model(run):
    """Batches of 3 conversations over 2 ranks: 2 and 1 of them, of unlike lengths (each
    rank's gradient weighted by its supervised tokens), and each epoch's last batch of 1
    leaves rank 1 a stand-in of weight 0. 20 steps end within 1e-5 (relative) of one
    process's weights; the held-out losses agree."""
    flags = dict(ckpt=run / "base", data=run / "convs.jsonl", steps=20, batch_size=3, lr=5e-3,
                 eval_every=5, threads=1)
    one = sft(config(run, out=str(run / "one"), **flags))
    args = [f"--{k.replace('_', '-')}={v}" for k, v in flags.items()]
    lines = minillm_on_ranks("sft", "--out", run / "two", "--no-progress", *args)
    assert not any(line.startswith("[1,1]") for line in lines), lines        # rank 1: silent
    p1, (_, p2, meta) = load_checkpoint(run / "one")[1], load_checkpoint(run / "two")
    assert max(float(np.abs(p1[n] - p2[n]).max() / np.abs(p1[n]).max()) for n in p1) < 1e-5
    assert meta["train"]["ranks"] == 2
    two = losses_in(run / "metrics.jsonl", "two")
    assert list(two) == list(range(21))
    assert [two[s][0] for s in range(1, 21)] == pytest.approx([one.losses[s] for s in range(1, 21)], rel=1e-5)
    val = {s: v for s, (_, v) in two.items() if v is not None}
    assert list(val) == [0, 5, 10, 15, 20] and val == pytest.approx(one.val_losses, rel=1e-5)


# ---- --out and the refusals --------------------------------------------------------------

def test_out_rule(run):
    out = run / "sft"
    sft(config(run, steps=2))                                        # missing: created
    with pytest.raises(UserError, match="holds an SFT run at step 2 of 2: --resume continues it, --force replaces"):
        sft(config(run, steps=2))
    assert sft(config(run, steps=3, force=True)).steps == 3          # replaced: a fresh run
    assert json.loads((out / "config.json").read_text())["train"]["total_steps"] == 3
    assert sft(SFTConfig(out=str(out), resume=True, steps=4, progress=False)).steps == 4
    with pytest.raises(UserError, match="give one of them"):
        sft(config(run, resume=True, force=True))
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="also holds notes.txt, which minillm did not write"):
        sft(config(run, force=True))
    assert (out / "notes.txt").read_text() == "mine"
    with pytest.raises(UserError, match="is the input checkpoint"):
        sft(config(run, out=str(run / "base"), force=True))
    with pytest.raises(UserError, match="is the input checkpoint"):
        sft(config(run, out=str(run / "base" / "sft")))
    with pytest.raises(UserError, match="holds a base checkpoint, not an SFT output; --force replaces only"):
        sft(config(run, ckpt=str(out), out=str(run / "base"), force=True))
    (run / "user").mkdir()
    (run / "user" / "a.txt").write_text("keep")
    with pytest.raises(UserError, match=r"user holds files minillm did not write \(a.txt\)"):
        sft(config(run, out=str(run / "user"), force=True))
    assert (run / "user" / "a.txt").read_text() == "keep"
    (run / "file").write_text("keep")
    with pytest.raises(UserError, match="is a file; no flag replaces it"):
        sft(config(run, out=str(run / "file")))
    with pytest.raises(UserError, match="no SFT run at .* to continue"):
        sft(SFTConfig(out=str(run / "new"), resume=True))
    (run / "empty").mkdir()
    (run / ".empty.tmp-x1").mkdir()                                  # a killed save's leftover
    assert sft(config(run, out=str(run / "empty"), steps=1)).steps == 1
    assert not (run / ".empty.tmp-x1").exists()


def test_refuses_a_checkpoint_without_chat_tokens(run, tmp_path):
    c = gpt.GPTConfig(vocab_size=256, **MODEL)
    save_checkpoint(tmp_path / "bytes", c, gpt.init_params(c, 0))
    with pytest.raises(UserError, match="has no tokenizer.json .* no chat special tokens"):
        sft(config(run, ckpt=str(tmp_path / "bytes")))
    plain = train_tokenizer("some plain text, nothing more. " * 20, 300, special_tokens=["<|bos|>"])
    c = gpt.GPTConfig(vocab_size=plain.vocab_size, **MODEL)
    save_checkpoint(tmp_path / "plain", c, gpt.init_params(c, 0), tokenizer=plain)
    with pytest.raises(UserError, match=r"tokenizer has no chat special tokens \(<\|user_start\|>"):
        sft(config(run, ckpt=str(tmp_path / "plain")))


def test_cli(run, capsys):
    parser = argparse.ArgumentParser(prog="minillm sft")
    cli.add_sft_arguments(parser)
    args = parser.parse_args(["--ckpt", str(run / "base"), "--data", str(run / "convs.jsonl"), "--steps", "3",
                              "--batch-size", "2", "--no-progress", "--threads", "1"])
    assert cli.run_sft(args) == 0                                    # --out defaults to <ckpt>/../sft
    assert json.loads((run / "sft" / "config.json").read_text())["step"] == 3
    with pytest.raises(UserError, match="--ckpt is required"):
        cli.run_sft(parser.parse_args(["--steps", "3"]))


@pytest.mark.parametrize("flag,value", [("steps", 0), ("batch_size", 0), ("lr", float("nan")), ("lr", -1.0),
                                        ("eval_frac", 1.0), ("epochs", 0)])
def test_settings_that_cannot_train_are_refused(run, flag, value):
    with pytest.raises(UserError, match=f"--{flag.replace('_', '-')} {value}: must be"):
        sft(config(run, **{flag: value}))
    assert not (run / "sft").exists()
