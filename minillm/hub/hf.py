"""Hugging Face export: a directory that transformers' LlamaForCausalLM loads as it is.

    minillm export --ckpt runs/default/sft --format hf --out runs/default/hf

    runs/default/hf/
      config.json             model_type llama, LlamaForCausalLM, every geometry key written out
      model.safetensors       float32, Hugging Face's tensor names, query/key rows permuted
      tokenizer.json          our byte-level BPE in the tokenizers library's format
      tokenizer_config.json   special tokens and the chat template
      generation_config.json  bos / eos ids

The query/key permutation. RoPE rotates pairs of a head's channels. We (like Meta's
original Llama, llama2.c and GGUF) pair neighbours, (x[2i], x[2i+1]); Hugging Face's Llama
pairs the two halves, (x[i], x[i + HD/2]) ("rotate half"). Both rotate pair i by
pos * theta^(-2i/HD). Attention only uses q.k within a head, so reordering the channels of
every query and key head the same way changes nothing: Hugging Face's row h*HD + j*HD/2 + i
takes our row h*HD + 2i + j (j = 0, 1), in wq (per query head) and wk (per KV head). wv,
wo and the norms stay. Position 0 is not rotated at all, so a forgotten permutation is
invisible there: compare many positions.

Read next: llama2c.py, then import_hf.py (the way back).
"""
from pathlib import Path

import numpy as np

from minillm.chat.template import CHAT_TEMPLATE
from minillm.common import Output, UserError, write_json
from minillm.hub.vocab import bos_eos, has_chat_tokens
from minillm.nn.checkpoint import save_safetensors
from minillm.tokenizer.interop import to_hf_json


# ---- the query/key permutation -------------------------------------------------------

def interleaved_to_half(w, n_heads):
    """Rows of wq (n_heads = NH) or wk (NKV): our interleaved RoPE pairs -> Hugging Face's halves."""
    rows, C = w.shape
    hd = rows // n_heads
    # row h*hd + 2i + j is [h, i, j]; Hugging Face wants it at [h, j, i]
    return w.reshape(n_heads, hd // 2, 2, C).transpose(0, 2, 1, 3).reshape(rows, C)  # (rows, C)


def half_to_interleaved(w, n_heads):
    """The inverse of interleaved_to_half (importing a Hugging Face Llama)."""
    rows, C = w.shape
    hd = rows // n_heads
    return w.reshape(n_heads, 2, hd // 2, C).transpose(0, 2, 1, 3).reshape(rows, C)  # (rows, C)


# ---- names ---------------------------------------------------------------------------

BLOCK_NAMES = {"attn_norm": "input_layernorm.weight", "wq": "self_attn.q_proj.weight",
               "wk": "self_attn.k_proj.weight", "wv": "self_attn.v_proj.weight",
               "wo": "self_attn.o_proj.weight", "mlp_norm": "post_attention_layernorm.weight",
               "w_gate": "mlp.gate_proj.weight", "w_up": "mlp.up_proj.weight",
               "w_down": "mlp.down_proj.weight"}


def hf_tensor_names(config):
    """Our parameter name -> Hugging Face LlamaForCausalLM's state-dict name."""
    names = {"tok_emb": "model.embed_tokens.weight"}
    for i in range(config.n_layer):
        names.update({f"blocks.{i}.{ours}": f"model.layers.{i}.{theirs}" for ours, theirs in BLOCK_NAMES.items()})
    names["final_norm"] = "model.norm.weight"
    if not config.tie_embeddings:
        names["lm_head"] = "lm_head.weight"
    return names


def hf_tensors(config, params):
    """Hugging Face name -> float32 array, with the query/key rows permuted."""
    out = {}
    for ours, theirs in hf_tensor_names(config).items():
        w = params[ours]
        if ours.endswith(".wq"):
            w = interleaved_to_half(w, config.n_head)       # (NH*HD, C)
        elif ours.endswith(".wk"):
            w = interleaved_to_half(w, config.n_kv_head)    # (NKV*HD, C)
        out[theirs] = np.ascontiguousarray(w, dtype=np.float32)
    return out


# ---- config files --------------------------------------------------------------------

def hf_config(config, tok, meta=None):
    """config.json for transformers' LlamaConfig (old and new spellings of rope/dtype keys).

    Every key is written, because transformers' defaults differ from ours: rms_norm_eps 1e-6
    (ours is 1e-5), tie_word_embeddings false (a tied model without lm_head.weight would get
    a random head), num_key_value_heads the head count. Like transformers' save_pretrained, a
    tied model is written without lm_head.weight (hf_tensor_names)."""
    bos, eos, _ = bos_eos(tok, meta)
    theta = float(config.rope_theta)
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": config.vocab_size, "hidden_size": config.n_embd,
        "intermediate_size": config.hidden_dim, "num_hidden_layers": config.n_layer,
        "num_attention_heads": config.n_head, "num_key_value_heads": config.n_kv_head,
        "head_dim": config.head_dim, "hidden_act": "silu",
        "max_position_embeddings": config.context_len, "rms_norm_eps": float(config.norm_eps),
        "rope_theta": theta, "rope_scaling": None,
        "rope_parameters": {"rope_type": "default", "rope_theta": theta},
        "tie_word_embeddings": bool(config.tie_embeddings), "attention_bias": False,
        "mlp_bias": False, "attention_dropout": 0.0, "pretraining_tp": 1,
        "initializer_range": 0.02, "use_cache": True,
        "bos_token_id": bos, "eos_token_id": eos, "pad_token_id": None,
        "torch_dtype": "float32", "dtype": "float32",
    }


def generation_config(tok, meta=None):
    bos, eos, eot = bos_eos(tok, meta)
    stops = [i for i in dict.fromkeys([eos, eot]) if i is not None]
    return {"bos_token_id": bos, "eos_token_id": stops[0] if len(stops) == 1 else stops or None}


def tokenizer_config(config, tok, meta=None):
    """tokenizer_config.json: a fast tokenizer from tokenizer.json, our specials, the template."""
    bos, eos, _ = bos_eos(tok, meta)
    names = {i: s for s, i in tok.special_tokens.items()}
    doc = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": config.context_len,
           "clean_up_tokenization_spaces": False, "add_bos_token": False, "add_eos_token": False,
           "bos_token": names.get(bos), "eos_token": names.get(eos), "pad_token": None,
           "unk_token": None, "additional_special_tokens": list(tok.special_tokens)}
    if has_chat_tokens(tok):
        doc["chat_template"] = CHAT_TEMPLATE
    return doc


# ---- the export --------------------------------------------------------------------

# what `minillm export --format hf` writes (common.prepare_dir: --force, refusals)
OUTPUT = Output("hf-export", ("config.json", "model.safetensors", "tokenizer.json",
                              "tokenizer_config.json", "special_tokens_map.json",
                              "generation_config.json"))


def export_hf(path, config, params, tok, meta=None):
    """Write a Hugging Face model directory at `path`; returns the path.

    Each file is written atomically, config.json last (and removed first): a directory
    without it is an export that did not finish. Other files in `path` are left alone."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").unlink(missing_ok=True)
    try:
        tokenizer_json = to_hf_json(tok)
    except ValueError as e:
        raise UserError(f"cannot write tokenizer.json: {e}") from None
    save_safetensors(path / "model.safetensors", hf_tensors(config, params), {"format": "pt"})
    write_json(path / "tokenizer.json", tokenizer_json)
    tok_config = tokenizer_config(config, tok, meta)
    write_json(path / "tokenizer_config.json", tok_config)
    write_json(path / "special_tokens_map.json", {
        k: v for k, v in tok_config.items()
        if k in ("bos_token", "eos_token", "additional_special_tokens") and v is not None})
    write_json(path / "generation_config.json", generation_config(tok, meta))
    write_json(path / "config.json", hf_config(config, tok, meta))
    return path
