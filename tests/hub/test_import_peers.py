"""A tiny random LlamaForCausalLM saved by transformers (fp32 and bf16, tied and untied,
grouped KV heads, a tokenizers-trained byte-level BPE in its own id order) imported into
minillm gives transformers' logits and greedy tokens, through gpt.forward and through the
inference engine. Slow (loads torch + transformers).

    python -m pytest -m slow tests/hub/test_import_peers.py

Tolerance: |logits diff| <= 1e-5 * max(1, max|logits|) at every position, in float32 on
both sides. For bf16 checkpoints the reference is transformers run in float32 on the same
bf16-rounded weights (our import widens bf16 exactly), so the bound is the same.
"""
import json

import numpy as np
import pytest

from export_helpers import TEXTS, greedy
from minillm.hub.import_hf import import_hf
from minillm.nn.checkpoint import load_checkpoint
from minillm.nn.gpt import forward
from minillm.tokenizer.bpe import Tokenizer
from export_helpers import hf_tokenizer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def torch_transformers():
    torch = pytest.importorskip("torch", reason="torch (a test extra) is not installed")
    transformers = pytest.importorskip("transformers", reason="transformers (a test extra) is not installed")
    return torch, transformers


def _save_random_llama(torch, transformers, path, hf_tok, *, dtype, tie, n_kv):
    """A random Llama with peaked logits, saved by save_pretrained; returns its float32 twin
    holding exactly the saved (possibly bf16-rounded) weights."""
    cfg = transformers.LlamaConfig(
        vocab_size=hf_tok.get_vocab_size(), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=n_kv, max_position_embeddings=128,
        rms_norm_eps=1e-5, rope_theta=50000.0, tie_word_embeddings=tie, bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    m = transformers.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.ndim == 1:
                p.copy_(1 + 0.2 * torch.randn_like(p))
            else:
                p.mul_(10.0 if "embed" in name or "lm_head" in name else 8.0)
    m.to(getattr(torch, dtype)).save_pretrained(path)
    hf_tok.save(str(path / "tokenizer.json"))
    ref = transformers.LlamaForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return ref


@pytest.mark.parametrize("dtype, tie, n_kv", [("float32", False, 2), ("float32", True, 1),
                                              ("bfloat16", False, 2), ("bfloat16", True, 4)])
def test_transformers_llama_runs_in_minillm(tmp_path, torch_transformers, dtype, tie, n_kv):
    torch, transformers = torch_transformers
    hf_tok = hf_tokenizer("smollm2")
    ref = _save_random_llama(torch, transformers, tmp_path / "hf", hf_tok, dtype=dtype, tie=tie, n_kv=n_kv)
    saved = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert saved.get("dtype", saved.get("torch_dtype")) == dtype
    out, _ = import_hf(tmp_path / "hf", tmp_path / "ck")
    config, params, _ = load_checkpoint(out)
    assert (config.n_kv_head, config.tie_embeddings, config.rope_theta) == (n_kv, tie, 50000.0)

    idx = np.random.default_rng(1).integers(0, config.vocab_size, (3, 40))
    ours, _ = forward(params, config, idx, grad=False)                      # (3, 40, V)
    with torch.no_grad():
        theirs = ref(torch.tensor(idx)).logits.numpy()
    assert np.abs(ours - theirs).max() <= 1e-5 * max(1.0, np.abs(theirs).max())
    assert np.array_equal(ours.argmax(-1), theirs.argmax(-1))

    # greedy: the same ids from transformers' generate and minillm's engine
    tok = Tokenizer.load(out / "tokenizer.json")
    prompt = tok.encode("Once upon a time, 42 little")
    assert prompt == hf_tok.encode("Once upon a time, 42 little").ids
    with torch.no_grad():
        gen = ref.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False,
                           eos_token_id=None, pad_token_id=0)
    want = gen[0, len(prompt):].tolist()
    ours_greedy, margins = greedy(params, config, prompt, 20)
    assert ours_greedy == want and len(set(want)) >= 5      # a varied text, not one token repeated
    assert min(margins) > 1e-3                               # no step hinges on a rounding tie
    from minillm.generate.engine import Engine

    [c] = Engine.from_checkpoint(out).generate([prompt], max_tokens=20, temperature=0.0)
    assert c.tokens == want
    assert c.text == hf_tok.decode(want)


def test_transformers_tokenizer_matches_the_imported_one(tmp_path, torch_transformers):
    torch, transformers = torch_transformers
    hf_tok = hf_tokenizer("smollm2")
    _save_random_llama(torch, transformers, tmp_path / "hf", hf_tok, dtype="float32", tie=True, n_kv=2)
    import_hf(tmp_path / "hf", tmp_path / "ck")
    tok = Tokenizer.load(tmp_path / "ck" / "tokenizer.json")
    auto = transformers.PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "hf" / "tokenizer.json"))
    for text in TEXTS:
        assert tok.encode(text) == auto.encode(text, add_special_tokens=False), repr(text)


def test_imported_model_runs_in_llama_cpp_like_transformers(tmp_path, torch_transformers):
    """transformers -> minillm import -> GGUF export -> llama.cpp: same tokens, same logits."""
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed "
                                    "(test extra: pip install llama-cpp-python==0.3.36)")
    from minillm.hub.vocab import load_for_export
    from minillm.hub.gguf import export_gguf

    torch, transformers = torch_transformers
    hf_tok = hf_tokenizer("smollm2")
    ref = _save_random_llama(torch, transformers, tmp_path / "hf", hf_tok, dtype="float32", tie=True, n_kv=2)
    out, _ = import_hf(tmp_path / "hf", tmp_path / "ck")
    config, params, meta, tok = load_for_export(out)
    export_gguf(tmp_path / "m.gguf", config, params, tok, meta)
    llm = llama_cpp.Llama(model_path=str(tmp_path / "m.gguf"), n_ctx=64, logits_all=True,
                          verbose=False, n_threads=2, n_batch=64,
                          type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    for text in TEXTS:
        assert llm.tokenize(text.encode(), add_bos=False, special=False) == \
            hf_tok.encode(text, add_special_tokens=False).ids, repr(text)
    row = np.random.default_rng(2).integers(0, config.vocab_size, 40)
    llm.reset()
    llm.eval(row.tolist())
    theirs = np.array(llm.scores[:40], dtype=np.float32)                   # (40, V)
    with torch.no_grad():
        want = ref(torch.tensor(row[None])).logits[0].numpy()
    assert np.abs(theirs - want).max() <= 1e-5 * max(1.0, np.abs(want).max())
