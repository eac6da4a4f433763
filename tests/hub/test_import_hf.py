"""Fast checks of `minillm import --hf` (no transformers): Hugging Face directories written
here byte by byte (BF16 / F16 / F32, sharded, tied or not, grouped KV heads) with tokenizers
trained by the tokenizers library in its own id order; the split-pattern conversion checked
against the tokenizers library; the one-line errors.

    python -m pytest tests/hub/test_import_hf.py
"""
import json
import random
import struct

import numpy as np
import pytest

from export_helpers import TEXTS, checkpoint, hf_tokenizer, tokenizer
from minillm.cli import main
from minillm.common import UserError
from minillm.hub.vocab import load_for_export
from minillm.hub.hf import export_hf, half_to_interleaved
from minillm.hub.import_hf import import_hf
from minillm.nn.checkpoint import load_checkpoint
from minillm.tokenizer.bpe import Tokenizer

tokenizers = pytest.importorskip("tokenizers", reason="tokenizers (a test extra) is not installed")


def write_safetensors(path, tensors, dtype):
    """Our own minimal writer that can store BF16 (round to nearest even) and F16."""
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, w in tensors.items():
        w = np.ascontiguousarray(w, dtype=np.float32)
        if dtype == "BF16":
            bits = w.view(np.uint32).astype(np.uint64)
            data = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2").tobytes()
        else:
            data = w.astype("<f2" if dtype == "F16" else "<f4").tobytes()
        header[name] = {"dtype": dtype, "shape": list(w.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(head)) + head + b"".join(blobs))


def hf_dir(path, hf_tok, *, dtype="F32", shards=1, tie=False, n_kv=2, extra_config=None,
           extra_tensors=None, drop=(), vocab_pad=0):
    """A Hugging Face Llama directory with random weights; returns the weights (as float32,
    already rounded to `dtype`) under their Hugging Face names."""
    path.mkdir(parents=True, exist_ok=True)
    V, C, L, NH, H = hf_tok.get_vocab_size() + vocab_pad, 64, 2, 4, 96
    HD = C // NH
    cfg = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": V,
           "hidden_size": C, "intermediate_size": H, "num_hidden_layers": L, "num_attention_heads": NH,
           "num_key_value_heads": n_kv, "rms_norm_eps": 1e-5, "rope_theta": 100000.0,
           "max_position_embeddings": 128, "tie_word_embeddings": tie, "bos_token_id": 0,
           "eos_token_id": 0, "torch_dtype": {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}[dtype]}
    cfg.update(extra_config or {})
    (path / "config.json").write_text(json.dumps(cfg))
    rng = np.random.default_rng(7)
    shapes = {"model.embed_tokens.weight": (V, C), "model.norm.weight": (C,)}
    for i in range(L):
        p = f"model.layers.{i}."
        shapes.update({p + "self_attn.q_proj.weight": (NH * HD, C), p + "self_attn.k_proj.weight": (n_kv * HD, C),
                       p + "self_attn.v_proj.weight": (n_kv * HD, C), p + "self_attn.o_proj.weight": (C, NH * HD),
                       p + "mlp.gate_proj.weight": (H, C), p + "mlp.up_proj.weight": (H, C),
                       p + "mlp.down_proj.weight": (C, H), p + "input_layernorm.weight": (C,),
                       p + "post_attention_layernorm.weight": (C,)})
    if not tie:
        shapes["lm_head.weight"] = (V, C)
    weights = {n: (rng.standard_normal(s) * 0.05 + (len(s) == 1)).astype(np.float32) for n, s in shapes.items()}
    weights.update(extra_tensors or {})
    for name in drop:
        weights.pop(name)
    rounded = {}
    names = list(weights)
    parts = [names[k::shards] for k in range(shards)]
    weight_map = {}
    for k, part in enumerate(parts):
        fname = "model.safetensors" if shards == 1 else f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        write_safetensors(path / fname, {n: weights[n] for n in part}, dtype)
        weight_map.update({n: fname for n in part})
    if shards > 1:
        (path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    from minillm.nn.checkpoint import load_safetensors
    for fname in set(weight_map.values()):
        rounded.update(load_safetensors(path / fname))
    hf_tok.save(str(path / "tokenizer.json"))
    return rounded


# ---- tokenizers ----------------------------------------------------------------------

def _random_texts(n, seed=0):
    alphabet = list("abcXYZ '’\n\r\t 0123456789١٢٣²") + ["  ", "\n\n", "'s", "'LL", "éü", "日本", "🙂", ".,;!?-", "\xa0"]
    r = random.Random(seed)
    return ["".join(r.choice(alphabet) for _ in range(r.randint(1, 30))) for _ in range(n)]


@pytest.mark.parametrize("kind", ["smollm2", "gpt2", "llama3"])
def test_imported_tokenizer_encodes_like_the_tokenizers_library(tmp_path, kind):
    hf_tok = hf_tokenizer(kind)
    hf_dir(tmp_path / "hf", hf_tok, vocab_pad=5)
    import_hf(tmp_path / "hf", tmp_path / "ck")
    tok = Tokenizer.load(tmp_path / "ck" / "tokenizer.json")
    assert tok.byte_ids != list(range(256))                     # the source's own id order
    for text in TEXTS + _random_texts(300):
        assert tok.encode(text) == hf_tok.encode(text, add_special_tokens=False).ids, repr(text)
    assert tok.special_tokens["<|im_end|>"] == hf_tok.token_to_id("<|im_end|>") == 2
    ids = hf_tok.encode("Zürich 2024 🙂").ids
    assert tok.decode(ids) == hf_tok.decode(ids) == "Zürich 2024 🙂"


def test_import_bf16_sharded_tied_gqa(tmp_path):
    hf_tok = hf_tokenizer()
    weights = hf_dir(tmp_path / "hf", hf_tok, dtype="BF16", shards=3, tie=True, n_kv=1,
                     extra_tensors={"lm_head.weight": np.zeros((400, 64), np.float32)})
    out, report = import_hf(tmp_path / "hf", tmp_path / "ck")
    config, params, meta = load_checkpoint(out)
    assert (config.n_head, config.n_kv_head, config.tie_embeddings) == (4, 1, True)
    assert config.rope_theta == 100000.0 and config.norm_eps == 1e-5 and config.context_len == 128
    assert "lm_head" not in params                              # tied: the file's lm_head is ignored
    assert meta["stage"] == "imported" and meta["source"]["dtype"] == "bfloat16"
    # every weight is the BF16 value, widened exactly; q and k rows back in interleaved order
    np.testing.assert_array_equal(params["tok_emb"], weights["model.embed_tokens.weight"])
    assert np.all(params["tok_emb"].view(np.uint32) & 0xFFFF == 0)
    np.testing.assert_array_equal(params["blocks.1.wq"], half_to_interleaved(
        weights["model.layers.1.self_attn.q_proj.weight"], 4))
    np.testing.assert_array_equal(params["blocks.0.wk"], half_to_interleaved(
        weights["model.layers.0.self_attn.k_proj.weight"], 1))
    np.testing.assert_array_equal(params["blocks.0.w_down"], weights["model.layers.0.mlp.down_proj.weight"])
    assert any("400 merges" in line or "merges" in line for line in report)


def test_import_f16_untied_defaults(tmp_path):
    hf_tok = hf_tokenizer("gpt2")
    hf_dir(tmp_path / "hf", hf_tok, dtype="F16",
           extra_config={"rms_norm_eps": None, "rope_theta": None, "num_key_value_heads": None})
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    for key in ("rms_norm_eps", "rope_theta", "num_key_value_heads"):
        del cfg[key]
    (tmp_path / "hf" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="k_proj"):           # 2 KV heads on disk, 4 by default
        import_hf(tmp_path / "hf", tmp_path / "ck")
    hf_dir(tmp_path / "hf2", hf_tok, dtype="F16", n_kv=4)
    cfg = json.loads((tmp_path / "hf2" / "config.json").read_text())
    for key in ("rms_norm_eps", "rope_theta", "num_key_value_heads", "tie_word_embeddings"):
        del cfg[key]
    (tmp_path / "hf2" / "config.json").write_text(json.dumps(cfg))
    config, params, _ = load_checkpoint(import_hf(tmp_path / "hf2", tmp_path / "ck")[0])
    # transformers' defaults: eps 1e-6, base 10000, untied, KV heads = heads
    assert (config.norm_eps, config.rope_theta, config.tie_embeddings, config.n_kv_head) == (1e-6, 10000.0, False, 4)
    assert "lm_head" in params


def test_our_export_imports_back_exactly(tmp_path):
    tok = tokenizer()
    checkpoint(tmp_path / "ck", tok, n_kv_head=1)
    config, params, meta, tok = load_for_export(tmp_path / "ck")
    export_hf(tmp_path / "hf", config, params, tok, meta)
    config2, params2, _ = load_checkpoint(import_hf(tmp_path / "hf", tmp_path / "ck2")[0])
    assert config2 == config
    assert params2.keys() == params.keys()
    for name in params:
        np.testing.assert_array_equal(params2[name], params[name])
    tok2 = Tokenizer.load(tmp_path / "ck2" / "tokenizer.json")
    assert tok2.byte_ids == tok.byte_ids and tok2.merges == tok.merges and tok2.special_tokens == tok.special_tokens
    assert tok2.pattern_name == "gpt4"


# ---- errors --------------------------------------------------------------------------

def _edit_config(path, **changes):
    cfg = json.loads((path / "config.json").read_text())
    cfg.update(changes)
    (path / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("changes, message", [
    ({"model_type": "mistral"}, "model_type is 'mistral'"),
    ({"attention_bias": True}, "no biases"),
    ({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, "RoPE scaling type 'llama3'"),
    ({"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4}}, "RoPE scaling type 'yarn'"),
    ({"hidden_act": "gelu"}, "hidden_act"),
    ({"head_dim": 32}, "head_dim 32"),
])
def test_unsupported_configs_are_one_line_errors(tmp_path, changes, message):
    hf_dir(tmp_path / "hf", hf_tokenizer("gpt2"))
    _edit_config(tmp_path / "hf", **changes)
    with pytest.raises(UserError, match=message) as e:
        import_hf(tmp_path / "hf", tmp_path / "ck")
    assert "\n" not in str(e.value)
    assert not (tmp_path / "ck").exists()


def test_unsupported_weights_are_errors(tmp_path):
    hf_tok = hf_tokenizer("gpt2")
    hf_dir(tmp_path / "a", hf_tok, extra_tensors={"model.layers.0.self_attn.q_proj.bias": np.zeros(64, np.float32)})
    with pytest.raises(UserError, match="no biases"):
        import_hf(tmp_path / "a", tmp_path / "ck")
    hf_dir(tmp_path / "b", hf_tok, drop=["lm_head.weight"])
    with pytest.raises(UserError, match="tie_word_embeddings is false"):
        import_hf(tmp_path / "b", tmp_path / "ck")
    hf_dir(tmp_path / "c", hf_tok)
    (tmp_path / "c" / "model.safetensors").rename(tmp_path / "c" / "pytorch_model.bin")
    with pytest.raises(UserError, match="safetensors"):
        import_hf(tmp_path / "c", tmp_path / "ck")


def test_unsupported_tokenizers_are_errors(tmp_path):
    hf_dir(tmp_path / "hf", hf_tokenizer("gpt2"))
    good = json.loads((tmp_path / "hf" / "tokenizer.json").read_text())

    def attempt(doc, message):
        (tmp_path / "hf" / "tokenizer.json").write_text(json.dumps(doc))
        with pytest.raises(UserError, match=message):
            import_hf(tmp_path / "hf", tmp_path / "ck")

    unigram = dict(good, model={"type": "Unigram", "vocab": [["a", 0.0]]})
    attempt(unigram, "Unigram tokenizer")
    attempt(dict(good, model=dict(good["model"], byte_fallback=True)), "byte_fallback")
    attempt(dict(good, normalizer={"type": "NFC"}), "normalizer 'NFC'")
    attempt(dict(good, pre_tokenizer={"type": "Metaspace", "replacement": "▁"}), "not byte-level")
    attempt(dict(good, pre_tokenizer={"type": "Sequence", "pretokenizers": [
        {"type": "Punctuation"}, {"type": "ByteLevel", "use_regex": True}]}), "no minillm equivalent")
    dup = dict(good, model=dict(good["model"], merges=good["model"]["merges"] + [good["model"]["merges"][0]]))
    attempt(dup, "one merge per token")


def test_orphan_vocabulary_entries_become_special_tokens(tmp_path):
    hf_tok = hf_tokenizer("gpt2")
    hf_dir(tmp_path / "hf", hf_tok, vocab_pad=1)
    doc = json.loads((tmp_path / "hf" / "tokenizer.json").read_text())
    doc["model"]["vocab"]["ĠorphanĠtoken"] = 400               # no merge makes it
    (tmp_path / "hf" / "tokenizer.json").write_text(json.dumps(doc))
    import_hf(tmp_path / "hf", tmp_path / "ck")
    tok = Tokenizer.load(tmp_path / "ck" / "tokenizer.json")
    assert tok.special_tokens[" orphan token"] == 400 and tok.decode([400]) == " orphan token"
    assert 400 not in tok.encode(" orphan token")


def test_cli_import(tmp_path, capsys):
    hf_dir(tmp_path / "hf", hf_tokenizer())
    assert main(["import", "--hf", str(tmp_path / "hf"), "--out", str(tmp_path / "ck"),
                 "--context-len", "32"]) == 0
    out = capsys.readouterr().out
    assert "2 layers, 64 wide, 4 heads (2 KV)" in out and str(tmp_path / "ck") in out
    assert load_checkpoint(tmp_path / "ck")[0].context_len == 32
    assert main(["import", "--hf", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_imported_model_exports_to_gguf_with_the_source_vocabulary(tmp_path):
    from minillm.hub.gguf import export_gguf, read_gguf

    hf_tok = hf_tokenizer("smollm2")
    hf_dir(tmp_path / "hf", hf_tok, tie=True)
    out, _ = import_hf(tmp_path / "hf", tmp_path / "ck")
    config, params, meta, tok = load_for_export(out)
    export_gguf(tmp_path / "m.gguf", config, params, tok, meta)
    md, _ = read_gguf(tmp_path / "m.gguf")
    vocab = hf_tok.get_vocab()
    assert md["tokenizer.ggml.tokens"] == sorted(vocab, key=vocab.get)       # the source's strings and ids
    assert md["tokenizer.ggml.pre"] == "smollm" and md["tokenizer.ggml.token_type"][:3] == [3, 3, 3]
    assert md["tokenizer.ggml.bos_token_id"] == 0 == md["tokenizer.ggml.eos_token_id"]
    doc = json.loads((tmp_path / "hf" / "tokenizer.json").read_text())
    assert md["tokenizer.ggml.merges"] == [" ".join(m) for m in doc["model"]["merges"]]
