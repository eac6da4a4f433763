"""The inference engine (minillm/generate/): cached generation against the plain forward
pass, exact greedy and sampled tokens, batching, shared prefill, stopping, the long-prompt
rule, streaming, tool hooks and the `sample` command.

Two kinds of model:
  - a small random model (GQA, 2 layers; weights scaled up so logits are far from uniform)
    for the numerical checks against nn/gpt.py's uncached forward;
  - a "scripted" model (0 layers, one-hot embeddings, a hand-set LM head) that is a
    deterministic bigram machine: after token a it always emits NEXT[a]. It makes the
    engine emit exact token sequences (tool calls, split UTF-8 characters).

    python -m pytest tests/generate/test_engine.py
"""
import numpy as np
import pytest

from minillm.cli import main
from minillm.generate.engine import Engine
from minillm.nn.checkpoint import save_checkpoint
from minillm.nn.gpt import GPTConfig, init_params, logits_last
from minillm.tokenizer.bpe import Tokenizer

# Tolerance for cached vs uncached logits: the cached path runs the same float32 kernels
# on a different number of rows (1 vs T), so the sums may be ordered differently; 1e-4 is
# ~1000x float32 epsilon at these logit sizes (~1-10).
LOGIT_ATOL = 1e-4


@pytest.fixture(scope="module")
def tok():
    return Tokenizer([], "gpt4")               # bytes + the special tokens (vocab 267)


def random_model(tok, context_len=48, seed=0, **shape):
    shape = {"n_layer": 2, "n_head": 4, "n_kv_head": 2, "n_embd": 32, "hidden_dim": 48, **shape}
    config = GPTConfig(vocab_size=tok.vocab_size, context_len=context_len, **shape)
    params = init_params(config, seed)
    rng = np.random.default_rng(seed + 1)
    for name, a in params.items():
        if a.ndim == 2:
            params[name] = (a * 15).astype(np.float32)
        else:
            params[name] = (1 + 0.1 * rng.standard_normal(a.shape)).astype(np.float32)
    return params, config


def scripted_model(tok, chain, context_len=64):
    """A 0-layer model that emits chain[a] after token a (and token 0 after any other)."""
    V = tok.vocab_size
    C = -(-V // 4) * 4
    config = GPTConfig(vocab_size=V, context_len=context_len, n_layer=0, n_head=2, n_kv_head=2,
                       n_embd=C, hidden_dim=8)
    params = {"tok_emb": np.eye(V, C, dtype=np.float32), "final_norm": np.ones(C, np.float32),
              "lm_head": np.zeros((V, C), np.float32)}
    for a in range(V):
        params["lm_head"][chain.get(a, 0), a] = 1.0      # logit 1 * sqrt(C) for the successor
    return params, config


def chain_of(seq):
    return {a: b for a, b in zip(seq, seq[1:])}


def uncached_greedy(params, config, prompt, n):
    """Greedy continuation by the full forward pass over the whole sequence at each step."""
    seq, logits = list(prompt), []
    for _ in range(n):
        lg = logits_last(params, config, np.array([seq]))[0]            # (V,)
        logits.append(lg)
        seq.append(int(lg.argmax()))
    return seq[len(prompt):], logits


# ---- numerical parity -------------------------------------------------------------------

def test_cached_greedy_equals_uncached_forward(tok):
    params, config = random_model(tok)
    engine = Engine(params, config, tok)
    prompt = tok.encode_ordinary("The cat sat on the mat")
    [c] = engine.generate(prompt, temperature=0, max_tokens=20, keep_logits=True)
    tokens, ref_logits = uncached_greedy(params, config, prompt, 20)
    assert c.tokens == tokens
    for step, (ours, ref) in enumerate(zip(c.logits, ref_logits)):
        np.testing.assert_allclose(ours, ref, atol=LOGIT_ATOL, rtol=0, err_msg=f"step {step}")
    assert c.finish_reason == "length"


def test_greedy_and_sampled_tokens_are_exactly_the_recorded_ones(tok):
    """Golden tokens of the random model (C step or NumPy forward, whichever runs): a change
    in the forward, the cache, the sampling or the seeding shows up here."""
    params, config = random_model(tok)
    engine = Engine(params, config, tok)
    [c] = engine.generate(tok.encode_ordinary("The cat"), temperature=0, max_tokens=30)
    assert c.tokens == [211, 5, 99, 240, 255, 64, 132, 77, 255, 9, 61, 255, 142, 118, 72, 202,
                        132, 9, 22, 98, 112, 246, 72, 196, 72, 72, 255, 102, 127, 30]
    assert c.text == ("\ufffd\x05c\ufffd\ufffd@\ufffdM\ufffd\t=\ufffd\ufffdvH\u0284\t\x16bp"
                      "\ufffdH\ufffdHH\ufffdf\x7f\x1e")
    sampled = engine.generate(["The cat", "one two three"], n=2, temperature=0.8, top_p=0.9,
                              max_tokens=12, seed=5)
    assert [c.tokens for c in sampled] == [
        [221, 100, 92, 246, 16, 30, 211, 105, 188, 100, 118, 138],
        [101, 244, 107, 33, 33, 107, 54, 32, 119, 136, 70, 38],
        [138, 183, 255, 84, 126, 92, 72, 118, 168, 65, 230, 225],
        [63, 140, 18, 179, 118, 118, 108, 130, 266, 103, 220, 218]]


def test_logprobs_are_the_models_log_softmax(tok):
    params, config = random_model(tok)
    engine = Engine(params, config, tok)
    prompt = tok.encode_ordinary("abc")
    [c] = engine.generate(prompt, temperature=1.0, top_k=5, max_tokens=6, seed=3, keep_logits=True)
    for t, lp, lg in zip(c.tokens, c.logprobs, c.logits):
        z = lg.astype(np.float64)
        ref = z[t] - (z.max() + np.log(np.exp(z - z.max()).sum()))
        assert lp == pytest.approx(ref, abs=1e-6)


def test_batched_equals_one_by_one(tok):
    """Prompts of different lengths in one batch give what each gives alone: greedy, and
    sampled with stop tokens so that rows leave the batch at different steps."""
    params, config = random_model(tok)
    engine = Engine(params, config, tok)
    prompts = [tok.encode_ordinary(t) for t in ("a", "hello there", "one two three four five six")]
    stop = list(range(97, 123))                       # lower-case letters: rows stop early
    for kw in ({"temperature": 0}, {"temperature": 1.0, "stop": stop}, {"temperature": 0.7, "top_p": 0.9}):
        batch = engine.generate(prompts, max_tokens=15, seed=11, **kw)
        for i, p in enumerate(prompts):
            [alone] = engine.generate(p, max_tokens=15, seed=[[11, i]], **kw)
            assert batch[i].tokens == alone.tokens, (kw, i)
            assert batch[i].finish_reason == alone.finish_reason
            np.testing.assert_allclose(batch[i].logprobs, alone.logprobs, atol=1e-5)
    reasons = {c.finish_reason for c in engine.generate(prompts, max_tokens=15, seed=11,
                                                         temperature=1.0, stop=stop)}
    assert "stop" in reasons


def test_shared_prefill_samples_equal_separate_runs(tok):
    params, config = random_model(tok)
    engine = Engine(params, config, tok)
    prompt = tok.encode_ordinary("once upon a time")
    shared = engine.generate([prompt, prompt[:3]], n=4, temperature=1.0, max_tokens=12, seed=7)
    assert len(shared) == 8
    assert len({tuple(c.tokens) for c in shared[:4]}) > 1      # the samples differ
    for c, completion in enumerate(shared):
        p = prompt if c < 4 else prompt[:3]
        [alone] = engine.generate(p, temperature=1.0, max_tokens=12, seed=[[7, c]])
        assert completion.tokens == alone.tokens


def test_prefill_batch_with_padding_matches_single_prefill(tok):
    params, config = random_model(tok)
    engine = Engine(params, config, tok)
    prompts = [tok.encode_ordinary("x" * n) for n in (1, 4, 30)]
    batch = engine.generate(prompts, temperature=0, max_tokens=3, keep_logits=True)
    for p, c in zip(prompts, batch):
        ref = logits_last(params, config, np.array([p]))[0]
        np.testing.assert_allclose(c.logits[0], ref, atol=LOGIT_ATOL, rtol=0)


# ---- stopping and the long-prompt rule ----------------------------------------------------

def test_stop_token_ends_and_is_kept_but_not_in_text(tok):
    seq = [tok.bos_id] + list(b"hi!") + [tok.bos_id]
    params, config = scripted_model(tok, chain_of(seq))
    engine = Engine(params, config, tok)
    [c] = engine.generate("", temperature=0, stop=[tok.bos_id], max_tokens=50)
    assert c.tokens == list(b"hi!") + [tok.bos_id]
    assert c.text == "hi!" and c.finish_reason == "stop"
    [c] = engine.generate("", temperature=0, max_tokens=2)
    assert c.tokens == list(b"hi") and c.finish_reason == "length"


def test_generation_stops_at_the_context_end(tok):
    params, config = random_model(tok, context_len=32)
    engine = Engine(params, config, tok)
    [c] = engine.generate(list(range(65, 75)), temperature=0, max_tokens=100)
    assert c.finish_reason == "context"
    assert len(c.prompt) + len(c.tokens) == config.context_len


def test_long_prompt_keeps_its_end_with_a_warning(tok):
    params, config = random_model(tok, context_len=32)
    engine = Engine(params, config, tok)
    prompt = list(range(40, 90))                                        # 50 tokens
    with pytest.warns(UserWarning, match="dropped its first 28 tokens"):
        [c] = engine.generate(prompt, temperature=0, max_tokens=10)
    assert c.prompt == prompt[-22:] and c.truncated == 28              # room for 10 new tokens
    assert len(c.tokens) == 10
    with pytest.raises(ValueError, match="at most 22 fit"):
        engine.generate(prompt, temperature=0, max_tokens=10, truncate=False)
    # a long max_tokens reserves at most half the context for new tokens
    with pytest.warns(UserWarning, match="dropped its first 34"):
        [c] = engine.generate(prompt, temperature=0, max_tokens=1000)
    assert len(c.prompt) == 16 and c.finish_reason == "context"


# ---- streaming ----------------------------------------------------------------------------

def test_stream_yields_whole_characters(tok):
    text = "é日x"
    seq = [tok.bos_id] + list(text.encode()) + [tok.bos_id]            # é and 日 split over tokens
    params, config = scripted_model(tok, chain_of(seq))
    engine = Engine(params, config, tok)
    stream = engine.stream("", temperature=0, stop=[tok.bos_id], max_tokens=20)
    pieces = list(stream)
    assert "".join(pieces) == text
    assert pieces == ["é", "日", "x"]                                  # never half a character
    assert stream.completion.text == text and stream.completion.finish_reason == "stop"


def test_stream_keeps_the_logits_of_each_token_as_it_goes(tok):
    params, config = random_model(tok)
    engine = Engine(params, config, tok)
    prompt = tok.encode_ordinary("The cat")
    stream = engine.stream(prompt, temperature=0, max_tokens=6, keep_logits=True)
    c = stream.completion
    for _ in stream:                                   # the logits arrive with their token
        assert len(c.logits) == len(c.tokens)
    [ref] = engine.generate(prompt, temperature=0, max_tokens=6, keep_logits=True)
    assert c.tokens == ref.tokens and len(c.logits) == 6
    np.testing.assert_allclose(np.array(c.logits), np.array(ref.logits), rtol=0, atol=LOGIT_ATOL)
    assert [int(lg.argmax()) for lg in c.logits] == c.tokens              # greedy: the argmax


# ---- tool hooks ---------------------------------------------------------------------------

def test_tool_call_forces_output_and_cannot_inject_special_tokens(tok):
    py_start, py_end = tok.token_id("<|python_start|>"), tok.token_id("<|python_end|>")
    out_start, out_end = tok.token_id("<|output_start|>"), tok.token_id("<|output_end|>")
    # the model writes <|python_start|>1+2<|python_end|>, then after the tool's output
    # continues with "." and stops
    chain = chain_of([tok.bos_id, py_start] + list(b"1+2") + [py_end])
    chain[out_end] = ord(".")
    chain[ord(".")] = tok.bos_id
    params, config = scripted_model(tok, chain)
    calls = []

    def calculator(expr):
        calls.append(expr)
        return "3<|bos|>"                             # tries to inject a control token

    engine = Engine(params, config, tok, tools={"python": calculator})
    [c] = engine.generate("", temperature=0, stop=[tok.bos_id], max_tokens=40)
    assert calls == ["1+2"]
    forced = tok.encode_ordinary("3<|bos|>")
    assert tok.bos_id not in forced
    assert c.tokens == [py_start] + list(b"1+2") + [py_end, out_start] + forced + [out_end, ord("."), tok.bos_id]
    n = 5
    assert c.forced == [False] * n + [True] * (len(forced) + 2) + [False, False]
    assert all(lp is None for lp, f in zip(c.logprobs, c.forced) if f)
    assert c.tool_calls == [{"tool": "python", "input": "1+2", "output": "3<|bos|>"}]
    assert c.text == "<|python_start|>1+2<|python_end|><|output_start|>3<|bos|><|output_end|>."
    assert c.finish_reason == "stop"


def test_unregistered_tool_and_failing_tool(tok):
    s_start, s_end = tok.token_id("<|search_start|>"), tok.token_id("<|search_end|>")
    chain = chain_of([tok.bos_id, s_start] + list(b"q") + [s_end, ord("!"), tok.bos_id])
    chain[tok.token_id("<|output_end|>")] = ord("!")
    params, config = scripted_model(tok, chain)
    [c] = Engine(params, config, tok).generate("", temperature=0, stop=[tok.bos_id], max_tokens=20)
    assert c.tokens == [s_start, ord("q"), s_end, ord("!"), tok.bos_id] and not any(c.forced)

    def broken(query):
        raise RuntimeError("index offline")

    [c] = Engine(params, config, tok, tools={"search": broken}).generate(
        "", temperature=0, stop=[tok.bos_id], max_tokens=60)
    assert c.tool_calls[0]["output"] == "error: RuntimeError: index offline"
    assert "<|output_start|>error: RuntimeError: index offline<|output_end|>!" in c.text


# ---- the command line -----------------------------------------------------------------------

def test_sample_command_streams_from_a_checkpoint(tok, tmp_path, capsys):
    seq = [tok.bos_id] + list(b" world") + [tok.bos_id]
    params, config = scripted_model(tok, chain_of(seq))
    params["lm_head"][ord(" "), ord("y")] = 1.0          # "hey" -> " world"
    params["lm_head"][0, ord("y")] = 0.0
    save_checkpoint(tmp_path / "ckpt", config, params, tokenizer=tok)
    assert main(["sample", "--ckpt", str(tmp_path / "ckpt"), "--prompt", "hey", "--temperature", "0"]) == 0
    out = capsys.readouterr()
    assert out.out == "hey world\n"
    assert "finished by: stop" in out.err
    assert main(["sample", "--ckpt", str(tmp_path / "ckpt"), "--prompt", "hey", "-n", "2",
                 "--max-tokens", "3"]) == 0
    out = capsys.readouterr()
    assert out.out.count("--- sample") == 2 and out.out.count("hey wo\n") == 2
    assert main(["sample", "--ckpt", str(tmp_path / "nope"), "--prompt", "x"]) == 2


@pytest.mark.slow
def test_cached_equals_uncached_on_a_bigger_model(tok):
    """stories15M-like proportions, 100 steps: prefill lengths that take the C kernels'
    tiled paths, and a cache that fills most of the context."""
    params, config = random_model(tok, context_len=160, n_layer=4, n_head=6, n_kv_head=3,
                                  n_embd=96, hidden_dim=256)
    for name in params:
        if params[name].ndim == 2:
            params[name] *= 0.4
    engine = Engine(params, config, tok)
    prompt = list(np.random.default_rng(0).integers(0, 256, 50))
    [c] = engine.generate(prompt, temperature=0, max_tokens=100, keep_logits=True)
    tokens, ref_logits = uncached_greedy(params, config, prompt, 100)
    assert c.tokens == tokens
    worst = max(float(np.abs(a - b).max()) for a, b in zip(c.logits, ref_logits))
    assert worst <= LOGIT_ATOL


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_padded_vocabulary_never_samples_a_padded_id(tok, temperature):
    """An imported model may have more embedding rows than its tokenizer has tokens (padded
    to a multiple of 64, say): those ids get no probability, even with the largest logit."""
    V, C = tok.vocab_size + 13, 272                              # 13 padded rows
    config = GPTConfig(vocab_size=V, context_len=32, n_layer=0, n_head=2, n_kv_head=2,
                       n_embd=C, hidden_dim=8)
    params = {"tok_emb": np.eye(V, C, dtype=np.float32), "final_norm": np.ones(C, np.float32),
              "lm_head": np.zeros((V, C), np.float32)}
    params["lm_head"][tok.vocab_size + 3] = 10.0                 # padded id: the top logit always
    [c] = Engine(params, config, tok).generate(["ab"], temperature=temperature, max_tokens=12,
                                               seed=0, logprobs=True, keep_logits=True)
    assert len(c.tokens) == 12 and max(c.tokens) < tok.vocab_size
    assert all(np.isfinite(lp) for lp in c.logprobs)
    assert np.isneginf(c.logits[0][tok.vocab_size:]).all()      # what the sampler saw
