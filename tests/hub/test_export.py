"""Fast checks of the exports (no transformers, no llama.cpp): the query/key permutation,
q8_0, GGUF through our reader and the gguf package's, the Hugging Face directory and
tokenizer, the chat template, llama2.c's files, the CLI.

    python -m pytest tests/hub/test_export.py
"""
import json
import struct

import numpy as np
import pytest

from export_helpers import TEXTS, checkpoint, model, tokenizer
from minillm.cli import main
from minillm.common import UserError
from minillm.chat.template import CHAT_TEMPLATE
from minillm.hub.vocab import load_for_export, vocab_entries
from minillm.hub.gguf import (CONTROL, NORMAL, dequantize_q8_0, export_gguf, gguf_tensor_names,
                                 quantize_q8_0, read_gguf)
from minillm.hub.hf import export_hf, half_to_interleaved, hf_tensor_names, interleaved_to_half
from minillm.hub.llama2c import SPECIAL_SCORE, export_llama2c, llama2c_order
from minillm.nn.checkpoint import load_safetensors
from minillm.tokenizer.interop import bytes_to_unicode, to_hf_string


# ---- the query/key permutation ---------------------------------------------------------

def test_permutation_is_formats_md_map_and_inverts(rng):
    n_heads, hd, C = 3, 8, 5
    w = rng.standard_normal((n_heads * hd, C)).astype(np.float32)
    hf = interleaved_to_half(w, n_heads)
    for h in range(n_heads):
        for i in range(hd // 2):
            for j in (0, 1):                 # HF row h*hd + j*hd/2 + i takes Meta row h*hd + 2i + j
                np.testing.assert_array_equal(hf[h * hd + j * hd // 2 + i], w[h * hd + 2 * i + j])
    np.testing.assert_array_equal(half_to_interleaved(hf, n_heads), w)


def _rope_interleaved(x, pos, theta=10000.0):
    hd = x.shape[-1]
    ang = pos[:, None] * theta ** (-np.arange(0, hd, 2) / hd)                  # (T, hd/2)
    xc = x[..., 0::2] + 1j * x[..., 1::2]
    r = xc * np.exp(1j * ang)
    return np.stack([r.real, r.imag], axis=-1).reshape(x.shape)


def _rope_half(x, pos, theta=10000.0):
    hd = x.shape[-1]
    ang = pos[:, None] * theta ** (-np.arange(0, hd, 2) / hd)                  # (T, hd/2)
    cos, sin = np.cos(np.concatenate([ang, ang], -1)), np.sin(np.concatenate([ang, ang], -1))
    rot = np.concatenate([-x[..., hd // 2:], x[..., :hd // 2]], -1)
    return x * cos + rot * sin


def test_permutation_keeps_attention_scores_at_every_position(rng):
    """Interleaved RoPE on our rows == rotate-half RoPE on the permuted rows, for q.k. Without
    the permutation only position 0 (no rotation) agrees: the trap a test that only checks position 0 falls into."""
    hd, C, T = 16, 12, 9
    wq, wk = rng.standard_normal((hd, C)), rng.standard_normal((hd, C))
    x = rng.standard_normal((T, C))
    pos = np.arange(T, dtype=np.float64)
    ours = _rope_interleaved(x @ wq.T, pos) @ _rope_interleaved(x @ wk.T, pos).T        # (T, T)
    perm_q, perm_k = interleaved_to_half(wq, 1), interleaved_to_half(wk, 1)
    theirs = _rope_half(x @ perm_q.T, pos) @ _rope_half(x @ perm_k.T, pos).T
    np.testing.assert_allclose(theirs, ours, rtol=1e-10, atol=1e-10)
    wrong = _rope_half(x @ wq.T, pos) @ _rope_half(x @ wk.T, pos).T
    assert np.allclose(wrong[0, 0], ours[0, 0]) and not np.allclose(wrong[1:, 1:], ours[1:, 1:])


# ---- q8_0 ---------------------------------------------------------------------------------

def _q8_input(rng):
    x = rng.standard_normal((6, 64)).astype(np.float32)
    x[0, :32] = 0                                          # an all-zero block (scale 0)
    x[1, :32] = np.arange(32) - 15.5                       # halves after scaling: rounding mode
    x[2, 32:] = 1e-3 * rng.standard_normal(32)             # a tiny block
    return x


def test_q8_0_matches_the_gguf_package_bit_for_bit(rng):
    quants = pytest.importorskip("gguf.quants", reason="the gguf package (a test extra) is not installed")
    from gguf import GGMLQuantizationType

    x = _q8_input(rng)
    ours = quantize_q8_0(x).tobytes()
    theirs = quants.quantize(x, GGMLQuantizationType.Q8_0).tobytes()
    assert ours == theirs


def test_q8_0_error_is_at_most_half_a_step(rng):
    x = _q8_input(rng)
    blocks = quantize_q8_0(x)
    assert blocks.dtype.itemsize == 34 and len(blocks) == x.size // 32
    back = dequantize_q8_0(blocks, x.shape)
    d = blocks["d"].astype(np.float32).repeat(32).reshape(x.shape)
    # the scale is stored as f16 (relative error 2^-11), q is rounded from the f32 scale
    assert np.all(np.abs(back - x) <= d / 2 + np.abs(x) * 2e-3 + 1e-12)
    assert np.all(back[0, :32] == 0)


# ---- GGUF ----------------------------------------------------------------------------

@pytest.mark.parametrize("tie", [False, True])
def test_gguf_f32_round_trip_through_our_reader(tmp_path, tie):
    tok = tokenizer()
    config, params = model(tok, tie=tie, vocab_size=tok.vocab_size + 3)   # 3 unused rows
    export_gguf(tmp_path / "m.gguf", config, params, tok, {"stage": "sft"})
    md, tensors = read_gguf(tmp_path / "m.gguf")
    expect = {"general.architecture": "llama", "general.file_type": 0, "llama.context_length": 64,
              "llama.embedding_length": 64, "llama.block_count": 2, "llama.feed_forward_length": 96,
              "llama.attention.head_count": 4, "llama.attention.head_count_kv": 2,
              "llama.rope.dimension_count": 16, "tokenizer.ggml.model": "gpt2",
              "tokenizer.ggml.pre": "dbrx", "tokenizer.ggml.bos_token_id": tok.bos_id,
              "tokenizer.ggml.eot_token_id": tok.token_id("<|assistant_end|>"),
              "tokenizer.chat_template": CHAT_TEMPLATE}
    assert {k: md[k] for k in expect} == expect
    assert md["llama.rope.freq_base"] == 10000.0
    assert md["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(1e-5, rel=1e-6)
    names = gguf_tensor_names(config)
    assert set(tensors) == set(names.values()) and ("output.weight" in tensors) == (not tie)
    for ours, theirs in names.items():
        tname, shape, array = tensors[theirs]
        assert tname == "F32" and shape == params[ours].shape
        np.testing.assert_array_equal(array, params[ours])


def test_gguf_tokenizer_uses_gpt2_byte_alphabet(tmp_path):
    tok = tokenizer()
    config, params = model(tok, vocab_size=tok.vocab_size + 2)
    export_gguf(tmp_path / "m.gguf", config, params, tok)
    md, _ = read_gguf(tmp_path / "m.gguf")
    tokens, types = md["tokenizer.ggml.tokens"], md["tokenizer.ggml.token_type"]
    table = bytes_to_unicode()
    assert len(tokens) == config.vocab_size == len(types)
    assert tokens[:256] == [table[b] for b in range(256)] and tokens[32] == "Ġ" and tokens[10] == "Ċ"
    for s, i in tok.special_tokens.items():
        assert tokens[i] == s and types[i] == CONTROL
    assert types[:tok.vocab_size - len(tok.special_tokens)] == [NORMAL] * (tok.vocab_size - 11)
    assert tokens[-2:] == [f"[PAD{config.vocab_size - 2}]", f"[PAD{config.vocab_size - 1}]"]
    inverse = {c: b for b, c in table.items()}
    for line, (a, b), new in zip(md["tokenizer.ggml.merges"], tok.merges, tok.merge_ids):
        left, right = line.split(" ")
        assert bytes(inverse[c] for c in left) == tok.token_bytes(a)
        assert bytes(inverse[c] for c in right) == tok.token_bytes(b)
        assert tokens[new] == left + right


def test_gguf_q8_0_quantizes_matrices_keeps_norms(tmp_path):
    tok = tokenizer()
    config, params = model(tok, hidden_dim=80)          # w_down rows are 80 long: stays F32
    export_gguf(tmp_path / "q.gguf", config, params, tok, dtype="q8_0")
    md, tensors = read_gguf(tmp_path / "q.gguf")
    assert md["general.file_type"] == 7 and md["general.quantization_version"] == 2
    for ours, theirs in gguf_tensor_names(config).items():
        tname, _, array = tensors[theirs]
        w = params[ours]
        if w.ndim == 1 or ours.endswith("w_down"):
            assert tname == "F32"
            np.testing.assert_array_equal(array, w)
        else:
            assert tname == "Q8_0"
            step = np.abs(w.reshape(-1, 32)).max(1, keepdims=True) / 127       # (N, 1)
            # half a step, plus the f16 rounding of the scale (relative 2^-11) times |q| <= 127
            bound = step / 2 + np.abs(w.reshape(-1, 32)) * 1e-3
            assert np.all(np.abs(array - w).reshape(-1, 32) <= bound), ours
            assert np.abs(array - w).max() > 0


@pytest.mark.parametrize("dtype", ["f32", "q8_0"])
def test_gguf_package_reader_validates_the_file(tmp_path, dtype):
    gguf = pytest.importorskip("gguf", reason="the gguf package (a test extra) is not installed")
    tok = tokenizer()
    config, params = model(tok)
    export_gguf(tmp_path / "m.gguf", config, params, tok, dtype=dtype)
    reader = gguf.GGUFReader(tmp_path / "m.gguf")
    fields = reader.fields
    assert fields["general.architecture"].contents() == "llama"
    for key in ("llama.context_length", "llama.embedding_length", "llama.block_count",
                "llama.feed_forward_length", "llama.attention.head_count",
                "llama.attention.head_count_kv", "llama.rope.dimension_count", "llama.rope.freq_base",
                "llama.attention.layer_norm_rms_epsilon", "general.file_type",
                "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"):
        assert key in fields, key
    assert fields["tokenizer.ggml.tokens"].contents()[:256] == [bytes_to_unicode()[b] for b in range(256)]
    assert fields["tokenizer.ggml.token_type"].contents()[tok.bos_id] == 3
    names = gguf_tensor_names(config)
    assert {t.name for t in reader.tensors} == set(names.values())
    by_name = {t.name: t for t in reader.tensors}
    for ours, theirs in names.items():
        t = by_name[theirs]
        assert list(t.shape) == list(reversed(params[ours].shape))
        want = "F32" if params[ours].ndim == 1 or dtype == "f32" else "Q8_0"
        assert t.tensor_type.name == want
        data = gguf.quants.dequantize(t.data, t.tensor_type).reshape(params[ours].shape)
        np.testing.assert_allclose(data, params[ours], atol=0 if want == "F32" else 2e-3)


def test_gguf_refuses_a_custom_split_pattern(tmp_path):
    from minillm.tokenizer.bpe import Tokenizer

    tok = Tokenizer([], pattern=r"\w+|\s+|[^\w\s]+")
    config, params = model(tok)
    with pytest.raises(UserError, match="pre-tokenizer"):
        export_gguf(tmp_path / "m.gguf", config, params, tok)


# ---- Hugging Face ---------------------------------------------------------------------

@pytest.mark.parametrize("tie", [False, True])
def test_hf_directory(tmp_path, tie):
    tok = tokenizer()
    checkpoint(tmp_path / "ck", tok, tie=tie)
    config, params, meta, tok = load_for_export(tmp_path / "ck")
    export_hf(tmp_path / "hf", config, params, tok, meta)
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert cfg["model_type"] == "llama" and cfg["architectures"] == ["LlamaForCausalLM"]
    assert (cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"],
            cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]) == (64, 96, 2, 4, 2, 16)
    assert cfg["rms_norm_eps"] == 1e-5 and cfg["rope_theta"] == 10000.0
    assert cfg["tie_word_embeddings"] is tie and cfg["vocab_size"] == tok.vocab_size
    assert cfg["bos_token_id"] == tok.bos_id and cfg["max_position_embeddings"] == 64
    tensors = load_safetensors(tmp_path / "hf" / "model.safetensors")
    names = hf_tensor_names(config)
    assert set(tensors) == set(names.values()) and ("lm_head.weight" in tensors) == (not tie)
    for ours, theirs in names.items():
        w = tensors[theirs]
        if ours.endswith((".wq", ".wk")):
            w = half_to_interleaved(w, config.n_head if ours.endswith("wq") else config.n_kv_head)
            assert not np.array_equal(tensors[theirs], params[ours])
        np.testing.assert_array_equal(w, params[ours])
    tok_cfg = json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text())
    assert tok_cfg["chat_template"] == CHAT_TEMPLATE and tok_cfg["bos_token"] == "<|bos|>"
    gen = json.loads((tmp_path / "hf" / "generation_config.json").read_text())
    assert gen["eos_token_id"] == [tok.bos_id, tok.token_id("<|assistant_end|>")]


def test_hf_tokenizer_json_encodes_like_us(tmp_path):
    tokenizers = pytest.importorskip("tokenizers", reason="tokenizers (a test extra) is not installed")
    tok = tokenizer()
    config, params = model(tok)
    export_hf(tmp_path / "hf", config, params, tok)
    hf = tokenizers.Tokenizer.from_file(str(tmp_path / "hf" / "tokenizer.json"))
    for text in TEXTS:
        assert hf.encode(text, add_special_tokens=False).ids == tok.encode(text), text
        assert hf.decode(tok.encode(text), skip_special_tokens=False) == text
    specials = "<|bos|><|user_start|>hi<|user_end|>"
    assert hf.encode(specials).ids == tok.encode(specials, allowed_special="all")


def test_chat_template_renders_our_format():
    sandbox = pytest.importorskip("jinja2.sandbox", reason="jinja2 is not installed")
    # the environment transformers renders chat templates in
    template = sandbox.ImmutableSandboxedEnvironment().from_string(CHAT_TEMPLATE)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": "4"}, {"role": "user", "content": "3+3?"}]
    assert template.render(messages=messages, add_generation_prompt=True) == (
        "<|bos|><|user_start|>Be brief.\n\n2+2?<|user_end|><|assistant_start|>4<|assistant_end|>"
        "<|user_start|>3+3?<|user_end|><|assistant_start|>")
    assert template.render(messages=messages[1:3], add_generation_prompt=False) == (
        "<|bos|><|user_start|>2+2?<|user_end|><|assistant_start|>4<|assistant_end|>")


# ---- llama2.c -------------------------------------------------------------------------

def read_llama2c(path, tok_path):
    """A small independent reader of run.c's legacy format: (header, tensors, tokens)."""
    raw = path.read_bytes()
    dim, hidden, layers, heads, kv_heads, vocab, seq = struct.unpack_from("<7i", raw)
    data = np.frombuffer(raw, dtype="<f4", offset=28)
    hd, V = dim // heads, abs(vocab)
    shapes = [("tok", (V, dim)), ("att_norm", (layers, dim)), ("wq", (layers, dim, dim)),
              ("wk", (layers, kv_heads * hd, dim)), ("wv", (layers, kv_heads * hd, dim)),
              ("wo", (layers, dim, dim)), ("ffn_norm", (layers, dim)), ("w1", (layers, hidden, dim)),
              ("w2", (layers, dim, hidden)), ("w3", (layers, hidden, dim)), ("final", (dim,)),
              ("cos", (seq, hd // 2)), ("sin", (seq, hd // 2))] + ([("cls", (V, dim))] if vocab < 0 else [])
    out, at = {}, 0
    for name, shape in shapes:
        n = int(np.prod(shape))
        out[name] = data[at:at + n].reshape(shape)
        at += n
    assert at == len(data), "trailing bytes"
    traw, tokens = tok_path.read_bytes(), []
    (max_len,), pos = struct.unpack_from("<I", traw), 4
    for _ in range(V):
        score, n = struct.unpack_from("<fi", traw, pos)
        tokens.append((score, traw[pos + 8:pos + 8 + n]))
        pos += 8 + n
    assert pos == len(traw) and max_len == max(len(t) for _, t in tokens)
    return (dim, hidden, layers, heads, kv_heads, vocab, seq), out, tokens


@pytest.mark.parametrize("tie", [False, True])
def test_llama2c_files_read_back(tmp_path, tie):
    tok = tokenizer()
    config, params = model(tok, tie=tie, vocab_size=tok.vocab_size + 1)
    path, tok_path = export_llama2c(tmp_path / "model.bin", config, params, tok)
    header, w, tokens = read_llama2c(path, tok_path)
    V = config.vocab_size
    assert header == (64, 96, 2, 4, 2, V if tie else -V, 64)
    order = llama2c_order(tok, V)
    assert order[1] == tok.bos_id and order[2] == tok.token_id("<|assistant_end|>")
    assert list(order[3:259]) == list(range(256)) and sorted(order) == list(range(V))
    np.testing.assert_array_equal(w["tok"], params["tok_emb"][order])
    if not tie:
        np.testing.assert_array_equal(w["cls"], params["lm_head"][order])
    for ours, theirs in (("attn_norm", "att_norm"), ("wq", "wq"), ("wk", "wk"), ("wv", "wv"),
                         ("wo", "wo"), ("mlp_norm", "ffn_norm"), ("w_gate", "w1"), ("w_down", "w2"),
                         ("w_up", "w3")):
        for i in range(config.n_layer):
            np.testing.assert_array_equal(w[theirs][i], params[f"blocks.{i}.{ours}"])
    np.testing.assert_array_equal(w["final"], params["final_norm"])
    np.testing.assert_allclose(w["cos"][5, 1], np.cos(5 * 10000 ** (-2 / 16)), rtol=1e-6)
    assert tokens[3 + ord("a")] == (0.0, b"a") and tokens[1] == (SPECIAL_SCORE, b"<|bos|>")
    for r, new in enumerate(tok.merge_ids[:20]):
        assert tokens[list(order).index(new)] == (-float(r), tok.token_bytes(new))
    assert tokens[-1][0] == SPECIAL_SCORE                      # the unused row


@pytest.mark.parametrize("change", [{"norm_eps": 1e-6}, {"rope_theta": 500000.0}])
def test_llama2c_refuses_what_runc_hard_codes(tmp_path, change):
    tok = tokenizer()
    config, params = model(tok, **change)
    with pytest.raises(UserError, match="run.c hard-codes"):
        export_llama2c(tmp_path / "model.bin", config, params, tok)
    assert not (tmp_path / "model.bin").exists()


def test_llama2c_needs_a_bos_token(tmp_path):
    from minillm.tokenizer.bpe import Tokenizer

    tok = Tokenizer([], special_tokens={})
    config, params = model(tok)
    with pytest.raises(UserError, match="BOS"):
        export_llama2c(tmp_path / "model.bin", config, params, tok)


# ---- the command line ----------------------------------------------------------------

def test_cli_export_every_format(tmp_path, capsys):
    tok = tokenizer()
    checkpoint(tmp_path / "ck", tok)
    for fmt, out, extra in (("gguf", "m.gguf", ["--dtype", "q8_0"]), ("hf", "hf", []),
                            ("llama2c", "l2c/model.bin", [])):
        assert main(["export", "--ckpt", str(tmp_path / "ck"), "--format", fmt,
                     "--out", str(tmp_path / out), *extra]) == 0
        assert str(tmp_path / out) in capsys.readouterr().out
    assert (tmp_path / "l2c" / "tokenizer.bin").exists() and (tmp_path / "hf" / "config.json").exists()
    assert main(["export", "--ckpt", str(tmp_path / "ck"), "--format", "hf", "--dtype", "q8_0",
                 "--out", str(tmp_path / "x")]) == 2
    assert "only for --format gguf" in capsys.readouterr().err
    assert main(["export", "--ckpt", str(tmp_path / "nope"), "--format", "hf", "--out", str(tmp_path / "x")]) == 2


def test_byte_level_checkpoint_exports_bytes_only(tmp_path):
    from minillm.nn.checkpoint import save_checkpoint
    from minillm.tokenizer.bpe import Tokenizer

    config, params = model(Tokenizer([], special_tokens={}))
    save_checkpoint(tmp_path / "ck", config, params)                   # no tokenizer.json
    config, params, meta, tok = load_for_export(tmp_path / "ck")
    assert [kind for kind, _ in vocab_entries(tok, 256)] == ["byte"] * 256
    export_gguf(tmp_path / "m.gguf", config, params, tok)
    md, _ = read_gguf(tmp_path / "m.gguf")
    assert md["tokenizer.ggml.tokens"] == [to_hf_string(bytes([b])) for b in range(256)]
    assert "tokenizer.ggml.bos_token_id" not in md and "tokenizer.chat_template" not in md
