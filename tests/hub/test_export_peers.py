"""Our exports run in the peers: transformers' LlamaForCausalLM (HF directory), llama.cpp
through llama-cpp-python (GGUF f32 and q8_0), llama2.c's run.c (if built). All slow.

    python -m pytest -m slow tests/hub/test_export_peers.py

Tolerances (float32 everywhere), as a fraction of max(1, max|logits|), every position:
  transformers vs ours: 1e-5 (measured 3e-7), argmax equal everywhere, greedy equal
  llama.cpp f32 GGUF (f32 KV cache) vs ours: 1e-5 (measured 4e-7), argmax equal everywhere,
      20 greedy tokens equal (also with llama.cpp's default f16 KV cache)
  llama.cpp q8_0 vs ours (float32): 5% (measured 1.3e-2), >= 90% of positions keep their
      argmax (measured 141/144), the first 10 greedy tokens equal (measured 20/20)
Greedy comparisons use "peaked" random models (embeddings and head scaled up) and assert the
top-1 / top-2 margin of every step, so they cannot hinge on a float-rounding tie.
"""
import itertools
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from export_helpers import CORPUS, TEXTS, greedy, model, tokenizer
from minillm.hub.gguf import export_gguf
from minillm.hub.hf import export_hf
from minillm.hub.llama2c import export_llama2c, llama2c_order
from minillm.nn.gpt import forward

pytestmark = pytest.mark.slow

MIN_MARGIN = 1e-2          # top-1 minus top-2 logit in every greedy step we compare


def _rel_err(a, b):
    return float(np.abs(a - b).max() / max(1.0, np.abs(b).max()))


def _sequences(config, n=3, T=48, seed=0):
    return np.random.default_rng(seed).integers(0, config.vocab_size, (n, T))


def _prompt(tok):
    return [tok.bos_id] + tok.encode("Once upon a time")


# ---- transformers --------------------------------------------------------------------

@pytest.fixture(scope="module")
def transformers_llama():
    pytest.importorskip("torch", reason="torch (a test extra) is not installed")
    transformers = pytest.importorskip("transformers", reason="transformers (a test extra) is not installed")
    return transformers


@pytest.mark.parametrize("tie, n_kv_head", [(False, 2), (True, 4)])
def test_transformers_runs_our_hf_export(tmp_path, transformers_llama, tie, n_kv_head):
    import torch

    tok = tokenizer()
    config, params = model(tok, tie=tie, n_kv_head=n_kv_head, peaked=True, seed=3)
    export_hf(tmp_path / "hf", config, params, tok, {"stage": "sft"})
    hf, info = transformers_llama.LlamaForCausalLM.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert hf.config.rms_norm_eps == 1e-5 and hf.config.tie_word_embeddings is tie
    hf.eval()
    idx = _sequences(config)
    ours, _ = forward(params, config, idx, grad=False)                      # (3, 48, V)
    with torch.no_grad():
        theirs = hf(torch.tensor(idx)).logits.float().numpy()
    assert _rel_err(theirs, ours) <= 1e-5
    assert np.array_equal(theirs.argmax(-1), ours.argmax(-1))                 # all 144 positions
    # greedy: transformers' generate vs our loop, to the first stop token
    prompt = _prompt(tok)
    want, margins = greedy(params, config, prompt, 20)
    assert min(margins) > MIN_MARGIN
    stops = set(hf.generation_config.eos_token_id)
    cut = next((k + 1 for k, t in enumerate(want) if t in stops), len(want))
    with torch.no_grad():
        out = hf.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False)
    assert out[0, len(prompt):].tolist() == want[:cut]


def test_transformers_tokenizer_and_chat_template(tmp_path, transformers_llama):
    tok = tokenizer()
    config, params = model(tok)
    export_hf(tmp_path / "hf", config, params, tok, {"stage": "sft"})
    hf_tok = transformers_llama.AutoTokenizer.from_pretrained(tmp_path / "hf")
    for text in TEXTS:
        assert hf_tok.encode(text, add_special_tokens=False) == tok.encode(text), repr(text)
    messages = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"},
                {"role": "user", "content": "And 3+3?"}]
    rendered = hf_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = hf_tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    ours = tok.encode(rendered, allowed_special="all")
    assert list(ids) == ours and ours[0] == tok.bos_id and ours[-1] == tok.token_id("<|assistant_start|>")


# ---- llama.cpp -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def llama_cpp():
    return pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed "
                               "(test extra: pip install llama-cpp-python==0.3.36, builds from source)")


def _llama(llama_cpp, path, n_ctx=64, f32_cache=True):
    """llama.cpp on a GGUF file; f32_cache: float32 KV cache (llama.cpp's default is f16,
    which alone moves the logits by ~1e-4 relative)."""
    kv = {"type_k": llama_cpp.GGML_TYPE_F32, "type_v": llama_cpp.GGML_TYPE_F32} if f32_cache else {}
    return llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, logits_all=True, verbose=False,
                           n_threads=2, n_batch=64, seed=0, **kv)


def _llama_logits(llm, ids):
    llm.reset()
    llm.eval(list(map(int, ids)))
    return np.array(llm.scores[:len(ids)], dtype=np.float32)                 # (T, V)


def _llama_greedy(llm, prompt, n):
    """Greedy by argmax of llama.cpp's own logits, one eval per token (its KV cache)."""
    llm.reset()
    llm.eval(prompt)
    out = []
    for _ in range(n):
        out.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
        llm.eval([out[-1]])
    return out


@pytest.mark.parametrize("tie", [False, True])
def test_llama_cpp_runs_our_f32_gguf(tmp_path, llama_cpp, tie):
    tok = tokenizer()
    config, params = model(tok, tie=tie, peaked=True, seed=3)
    export_gguf(tmp_path / "m.gguf", config, params, tok, {"stage": "sft"})
    llm = _llama(llama_cpp, tmp_path / "m.gguf")
    assert llm.n_vocab() == config.vocab_size
    for row in _sequences(config):
        ours, _ = forward(params, config, row[None], grad=False)
        theirs = _llama_logits(llm, row)
        assert _rel_err(theirs, ours[0]) <= 1e-5
        assert np.array_equal(theirs.argmax(-1), ours[0].argmax(-1))
    prompt = _prompt(tok)
    want, margins = greedy(params, config, prompt, 20)
    assert min(margins) > MIN_MARGIN
    assert _llama_greedy(llm, prompt, 20) == want
    # as people run it: llama.cpp's default f16 KV cache
    assert _llama_greedy(_llama(llama_cpp, tmp_path / "m.gguf", f32_cache=False), prompt, 20) == want
    # llama.cpp's own sampler chain at temperature 0
    assert list(itertools.islice(llm.generate(prompt, temp=0.0, reset=True), 20)) == want
    # llama.cpp's completion loop stops at end-of-generation ids: <|bos|> (eos), <|assistant_end|> (eot).
    # (create_completion itself is not run: with a random model's broken UTF-8 it skips its
    # max_tokens check and overruns the context, a llama-cpp-python quirk.)
    vocab = llm._model.vocab
    eog = [t for t in range(config.vocab_size) if llama_cpp.llama_vocab_is_eog(vocab, t)]
    assert eog == sorted([tok.bos_id, tok.token_id("<|assistant_end|>")])


def test_llama_cpp_runs_our_q8_0_gguf(tmp_path, llama_cpp, monkeypatch):
    tok = tokenizer()
    config, params = model(tok, peaked=True, seed=3)
    export_gguf(tmp_path / "q.gguf", config, params, tok, dtype="q8_0")
    # subtle: on this machine's CPU (AVX512 + AMX_INT8) llama.cpp 0.3.36 segfaults on Q8_0
    # matmuls of more than one token in its "extra buffer types" (weight repacking), for our
    # file and for the same tensors written by the gguf package's GGUFWriter alike; loading
    # with use_extra_bufts = false runs the plain CPU kernels.
    defaults = llama_cpp.llama_cpp.llama_model_default_params

    def no_extra_bufts():
        params = defaults()
        params.use_extra_bufts = False
        return params

    monkeypatch.setattr(llama_cpp.llama_cpp, "llama_model_default_params", no_extra_bufts)
    llm = _llama(llama_cpp, tmp_path / "q.gguf")
    agree, total = 0, 0
    for row in _sequences(config):
        ours, _ = forward(params, config, row[None], grad=False)
        theirs = _llama_logits(llm, row)
        assert _rel_err(theirs, ours[0]) <= 0.05
        agree += int((theirs.argmax(-1) == ours[0].argmax(-1)).sum())
        total += len(row)
    assert agree >= 0.9 * total
    want, _ = greedy(params, config, _prompt(tok), 20)
    assert _llama_greedy(llm, _prompt(tok), 20)[:10] == want[:10]


def test_llama_cpp_tokenizes_like_us(tmp_path, llama_cpp):
    tok = tokenizer()
    config, params = model(tok)
    export_gguf(tmp_path / "m.gguf", config, params, tok)
    llm = llama_cpp.Llama(model_path=str(tmp_path / "m.gguf"), vocab_only=True, verbose=False)
    for text in TEXTS:
        assert llm.tokenize(text.encode(), add_bos=False, special=False) == tok.encode(text), repr(text)
    assert llm.tokenize(b"hi", add_bos=True)[0] == tok.bos_id
    assert llm.token_bos() == tok.bos_id
    # special-token text: parsed as control tokens only when asked (special=True)
    text = "<|user_start|>hi<|user_end|>"
    assert llm.tokenize(text.encode(), add_bos=False, special=True) == tok.encode(text, allowed_special="all")
    assert llm.tokenize(text.encode(), add_bos=False, special=False) == tok.encode(text)
    ids = tok.encode("Zürich 🙂 and 日本語")
    assert llm.detokenize(ids).decode() == tok.decode(ids)
    # llama-cpp-python's chat formatter renders the GGUF's template into our chat format
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llm.metadata["tokenizer.chat_template"]
    chat = Jinja2ChatFormatter(template=template, eos_token="<|bos|>", bos_token="<|bos|>")
    prompt = chat(messages=[{"role": "user", "content": "What is 2+2?"}]).prompt
    assert llm.tokenize(prompt.encode(), add_bos=False, special=True) == [
        tok.bos_id, tok.token_id("<|user_start|>"), *tok.encode("What is 2+2?"),
        tok.token_id("<|user_end|>"), tok.token_id("<|assistant_start|>")]


@pytest.mark.parametrize("pattern", ["gpt4", "gpt2"])
def test_llama_cpp_tokenizes_random_text_like_us(tmp_path, llama_cpp, pattern):
    """5000 random strings of letters, digits, every kind of whitespace, apostrophe
    contractions, punctuation, accents, CJK, emoji, combining marks: not one differs.
    (A wider fuzz over random code points found differences only for code points one of the
    two Unicode databases calls unassigned, e.g. U+0383, U+13FFB, U+143D4.)"""
    import random

    from minillm.tokenizer.train import train_tokenizer

    tok = train_tokenizer(CORPUS, 420, pattern=pattern)
    config, params = model(tok)
    export_gguf(tmp_path / "m.gguf", config, params, tok)
    llm = llama_cpp.Llama(model_path=str(tmp_path / "m.gguf"), vocab_only=True, verbose=False)
    pieces = list("aZé日🙂 \t\n\r\x0b\x0c\x85\u2028\u3000\xa0'’\"0123456789١²½.,;!?-_()[]{}#@$%^&*+=<>/\\|`~")
    pieces += ["'s", "'S", "'ll", "'LL", "'Re", "  ", "\n\n", " \n", "\r\n", "ǅ", "ß", "İ", "ﬁ", "\u200b",
               "\u0301", "\ufeff", "𝔘", "Ⅻ", "\U0001F1FA\U0001F1F8"]
    r = random.Random(0)
    texts = ["".join(r.choice(pieces) for _ in range(r.randint(1, 25))) for _ in range(5000)]
    differ = [t for t in texts if llm.tokenize(t.encode(), add_bos=False, special=False) != tok.encode(t)]
    assert differ == []


# ---- llama2.c run.c (optional: only when someone built it) ----------------------------

RUNC = Path(os.environ.get("MINILLM_LLAMA2C_RUN", "/tmp/llama2c/run"))


def _runc_print(tok, tokens, bos):
    """What run.c prints for generated `tokens` (its decode + safe_printf rules)."""
    out, prev = b"", bos
    for t in tokens:
        if t == bos:
            break
        piece = tok.token_bytes(t).split(b"\0")[0]
        if prev == bos and piece.startswith(b" "):
            piece = piece[1:]
        printable = len(piece) != 1 or 0x20 <= piece[0] < 0x7f or piece[0] in b" \t\n\v\f\r"
        if piece and printable:
            out += piece
        prev = t
    return out + b"\n"


def test_runc_generates_our_greedy_text(tmp_path):
    if not RUNC.exists():
        pytest.skip(f"llama2.c's run is not built at {RUNC} (set MINILLM_LLAMA2C_RUN)")
    tok = tokenizer()
    config, params = model(tok, tie=False, peaked=True, seed=3)
    path, tok_path = export_llama2c(tmp_path / "model.bin", config, params, tok)
    n = 40
    want, margins = greedy(params, config, [tok.bos_id], n)
    stop = want.index(tok.bos_id) + 1 if tok.bos_id in want else n
    assert min(margins[:stop]) > MIN_MARGIN
    res = subprocess.run([str(RUNC), str(path), "-z", str(tok_path), "-t", "0", "-n", str(n)],
                         capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout == _runc_print(tok, want, tok.bos_id)
    assert llama2c_order(tok, config.vocab_size)[1] == tok.bos_id
