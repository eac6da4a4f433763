"""Import a Hugging Face Llama checkpoint (for example SmolLM2-135M) as a minillm checkpoint,
so it runs in minillm's own NumPy/C engine.

    minillm import --hf ~/models/SmolLM2-135M --out runs/smollm2/base
    minillm sample --ckpt runs/smollm2/base --prompt "The capital of France is" --temperature 0

Read: config.json (model_type "llama", with transformers' own defaults for absent keys),
model.safetensors or its shards (F32, F16 or BF16, widened to float32), tokenizer.json (a
byte-level BPE). The weights are renamed, and the query/key rows of every head permuted back
from Hugging Face's rotate-half RoPE layout to our interleaved one (hf.py's
half_to_interleaved). The tokenizer keeps the source's ids (tokenizer_from_hf), so the
imported model produces exactly the ids transformers does.

Anything else (another architecture, biases, RoPE scaling, a sentencepiece or WordPiece
tokenizer, a normalizer, byte fallback) is refused with a one-line error.
Read next: minillm/generate/ (sampling from the imported model).
"""
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from minillm.common import UserError, read_json
from minillm.hub.hf import BLOCK_NAMES, half_to_interleaved
from minillm.nn.checkpoint import load_safetensors, save_checkpoint
from minillm.nn.gpt import GPTConfig, num_params, param_shapes
from minillm.tokenizer.bpe import GPT2_DIGITS_PATTERN, GPT2_PATTERN, Tokenizer
from minillm.tokenizer.interop import bytes_to_unicode

# a block's Hugging Face tensor name (after "layers.N.") -> ours: the export's table reversed
WEIGHT_NAMES = {theirs: ours for ours, theirs in BLOCK_NAMES.items()}


# ---- config.json ---------------------------------------------------------------------

def _rope_theta(cfg, where):
    """RoPE base from rope_parameters (transformers 5) or rope_theta; refuses scaled RoPE."""
    params = cfg.get("rope_parameters") or {}
    scaling = cfg.get("rope_scaling") or {}
    for spec in (params, scaling):
        kind = spec.get("rope_type", spec.get("type", "default"))
        if kind not in (None, "default"):
            raise UserError(f"{where}: RoPE scaling type {kind!r} is not implemented in minillm "
                            "(only plain RoPE)")
    return float(params.get("rope_theta", cfg.get("rope_theta", 10000.0)))


def config_from_hf(cfg, where, context_len=None):
    """A GPTConfig from a Hugging Face Llama config dict (transformers' defaults for absent keys)."""
    if cfg.get("model_type") != "llama":
        raise UserError(f"{where}: model_type is {cfg.get('model_type')!r}; minillm imports "
                        "Llama-architecture models (model_type \"llama\") only")
    for key, bad in (("attention_bias", True), ("mlp_bias", True)):
        if cfg.get(key) == bad:
            raise UserError(f"{where}: {key} is true; minillm's Llama has no biases")
    if cfg.get("hidden_act", "silu") != "silu":
        raise UserError(f"{where}: hidden_act {cfg['hidden_act']!r}; minillm's MLP is SwiGLU (silu)")
    try:
        C, NH = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
        shape = dict(vocab_size=int(cfg["vocab_size"]), n_layer=int(cfg["num_hidden_layers"]),
                     n_head=NH, n_kv_head=int(cfg.get("num_key_value_heads") or NH), n_embd=C,
                     hidden_dim=int(cfg["intermediate_size"]))
    except KeyError as e:
        raise UserError(f"{where} lacks {e.args[0]!r}") from None
    if cfg.get("head_dim") not in (None, C // NH):
        raise UserError(f"{where}: head_dim {cfg['head_dim']} differs from hidden_size / heads "
                        f"({C // NH}); minillm derives the head size from them")
    try:
        return GPTConfig(**shape, context_len=int(context_len or cfg.get("max_position_embeddings", 2048)),
                         tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
                         rope_theta=_rope_theta(cfg, where),
                         norm_eps=float(cfg.get("rms_norm_eps", 1e-6)))
    except ValueError as e:
        raise UserError(f"{where}: {e}") from None


# ---- weights -------------------------------------------------------------------------

def weight_files(src):
    """The safetensors files of a checkpoint directory (one file, or the index's shards)."""
    index = src / "model.safetensors.index.json"
    if index.exists():
        weight_map = read_json(index, "safetensors index").get("weight_map") or {}
        files = sorted(set(weight_map.values()))
        missing = [f for f in files if not (src / f).exists()]
        if missing:
            raise UserError(f"{index} names shards that are missing: {', '.join(missing[:3])}")
        return [src / f for f in files]
    if (src / "model.safetensors").exists():
        return [src / "model.safetensors"]
    if list(src.glob("*.bin")) or list(src.glob("*.pth")):
        raise UserError(f"{src} has PyTorch pickle weights only; minillm reads safetensors (save the "
                        "model with transformers' save_pretrained(..., safe_serialization=True))")
    raise UserError(f"{src} has no model.safetensors or model.safetensors.index.json")


def our_name(name):
    """Hugging Face tensor name -> our parameter name, None for tensors to skip."""
    if name.endswith("rotary_emb.inv_freq"):
        return None                                    # a RoPE cache some old saves include
    base = name[len("model."):] if name.startswith("model.") else name
    if base == "embed_tokens.weight":
        return "tok_emb"
    if base == "norm.weight":
        return "final_norm"
    if name == "lm_head.weight":
        return "lm_head"
    parts = base.split(".", 2)
    if len(parts) == 3 and parts[0] == "layers" and parts[1].isdigit() and parts[2] in WEIGHT_NAMES:
        return f"blocks.{parts[1]}.{WEIGHT_NAMES[parts[2]]}"
    raise UserError(f"unexpected tensor {name!r}: not part of a Llama model"
                    + (" (minillm's Llama has no biases)" if name.endswith(".bias") else ""))


def load_hf_params(src, config):
    """Our params dict (float32, interleaved RoPE rows) from the checkpoint's safetensors."""
    shapes = param_shapes(config)
    params = {}
    for path in tqdm(weight_files(src), desc="reading weights", leave=False):
        for name, w in load_safetensors(path).items():
            ours = our_name(name)
            if ours is None or (ours == "lm_head" and config.tie_embeddings):
                continue                               # tied: transformers ignores lm_head too
            if ours not in shapes:
                raise UserError(f"{path}: unexpected tensor {name} (config.json says "
                                f"{config.n_layer} layers)")
            if w.dtype != np.float32:
                raise UserError(f"{path}: tensor {name} is {w.dtype}; minillm imports F32, F16 or BF16")
            if w.shape != shapes[ours]:
                raise UserError(f"{path}: {name} has shape {w.shape}, config.json implies {shapes[ours]}")
            if ours.endswith(".wq"):
                w = half_to_interleaved(w, config.n_head)     # (NH*HD, C)
            elif ours.endswith(".wk"):
                w = half_to_interleaved(w, config.n_kv_head)  # (NKV*HD, C)
            params[ours] = np.ascontiguousarray(w)
    missing = [n for n in shapes if n not in params]
    if missing:
        hint = (" (tie_word_embeddings is false, so the model needs lm_head.weight)"
                if missing == ["lm_head"] else "")
        raise UserError(f"{src}: the weights lack {', '.join(missing[:4])}{hint}")
    return {name: params[name] for name in shapes}


# ---- tokenizer.json ------------------------------------------------------------------

def split_pattern(pre, where):
    """Our split regex for a Hugging Face byte-level pre-tokenizer:

      ByteLevel(use_regex=true)                      GPT-2's pattern
      Split(Regex R, isolated) + ByteLevel(no regex) R (Llama 3, Qwen2, minillm's own export)
      Digits(individual) + ByteLevel(use_regex=true) GPT-2's pattern with one digit per chunk
                                                     (SmolLM2), composed into one regex
    """
    steps = pre.get("pretokenizers", []) if pre and pre.get("type") == "Sequence" else [pre] if pre else []
    kinds = [s.get("type") for s in steps]
    byte_level = steps[-1] if kinds and kinds[-1] == "ByteLevel" else None
    if byte_level is None:
        raise UserError(f"{where}: pre-tokenizer {kinds or None} is not byte-level BPE's "
                        "(minillm imports ByteLevel tokenizers: GPT-2, Llama 3, SmolLM2, ...)")
    if byte_level.get("add_prefix_space"):
        raise UserError(f"{where}: ByteLevel add_prefix_space is not supported")
    regex_on = byte_level.get("use_regex", True)
    if kinds == ["ByteLevel"] and regex_on:
        return GPT2_PATTERN
    if kinds == ["Digits", "ByteLevel"] and regex_on and steps[0].get("individual_digits"):
        return GPT2_DIGITS_PATTERN
    if kinds == ["Split", "ByteLevel"] and not regex_on:
        split = steps[0]
        pattern = (split.get("pattern") or {}).get("Regex")
        if pattern and split.get("behavior") == "Isolated" and not split.get("invert"):
            return pattern
    raise UserError(f"{where}: the pre-tokenizer sequence {kinds} (use_regex={regex_on}) has no "
                    "minillm equivalent")


def _check_bpe(doc, where):
    model = doc.get("model") or {}
    if model.get("type") != "BPE":
        raise UserError(f"{where}: a {model.get('type')} tokenizer; minillm imports byte-level BPE only")
    if model.get("byte_fallback") or model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        raise UserError(f"{where}: BPE with byte_fallback or subword prefixes/suffixes "
                        "(sentencepiece style) is not byte-level BPE")
    normalizer = doc.get("normalizer")
    if normalizer and not (normalizer.get("type") == "Sequence" and not normalizer.get("normalizers")):
        raise UserError(f"{where}: normalizer {normalizer.get('type')!r} is not supported")
    decoder = doc.get("decoder")
    if decoder and decoder.get("type") != "ByteLevel":
        raise UserError(f"{where}: decoder {decoder.get('type')!r}; byte-level BPE decodes with ByteLevel")
    return model


def tokenizer_from_hf(doc, where, vocab_size):
    """(our Tokenizer keeping the source's ids, list of notes) from a tokenizer.json dict.

    Our own tokenizers put bytes at ids 0..255 and merge r at 256 + r, but Tokenizer also
    carries an id map (byte_ids, merge_ids). A real Hugging Face vocabulary has its own order
    (SmolLM2's special tokens come first, its bytes are not 0..255), so byte b gets the id of
    GPT-2-alphabet character bytes_to_unicode()[b], merge r the id of its result, and the
    embedding and head rows stay where they are. Added tokens (and any vocabulary entry that
    no byte or merge makes) become special tokens with their own ids; as everywhere in
    minillm, their text in a prompt is plain text unless allowed_special says otherwise.
    Known inexact case: a tokenizer with ignore_merges (Llama 3) takes a whole chunk that is
    a token without running the merges; we always merge, which can differ on rare words (a
    note says so).
    """
    model = _check_bpe(doc, where)
    pattern = split_pattern(doc.get("pre_tokenizer"), where)
    vocab = {str(s): int(i) for s, i in model["vocab"].items()}
    table = bytes_to_unicode()
    missing = [b for b in range(256) if table[b] not in vocab]
    if missing:
        raise UserError(f"{where}: the vocabulary lacks {len(missing)} of the 256 byte tokens "
                        f"(e.g. byte {missing[0]}); minillm's tokenizer needs all of them")
    byte_ids = [vocab[table[b]] for b in range(256)]
    merges, merge_ids, made = [], [], set(byte_ids)
    for r, m in enumerate(model.get("merges") or []):
        a, b = m.split(" ") if isinstance(m, str) else m
        if a not in vocab or b not in vocab or a + b not in vocab:
            raise UserError(f"{where}: merge {r} ({a!r}, {b!r}) uses or makes a token outside the vocabulary")
        if vocab[a + b] in made:
            raise UserError(f"{where}: merge {r} makes {a + b!r}, which a byte or an earlier merge "
                            "already makes; minillm's tokenizer needs one merge per token")
        merges.append((vocab[a], vocab[b]))
        merge_ids.append(vocab[a + b])
        made.add(vocab[a + b])
    specials = {t["content"]: int(t["id"]) for t in doc.get("added_tokens") or [] if int(t["id"]) not in made}
    orphans = sorted(set(vocab.values()) - made - set(specials.values()))
    names = {i: s for s, i in vocab.items()}
    byte_of = {c: b for b, c in table.items()}          # GPT-2 alphabet character -> byte
    for i in orphans:                                  # tokens no merge makes: never produced by encode
        try:
            specials.setdefault(bytes(byte_of[c] for c in names[i]).decode("utf-8"), i)
        except (KeyError, UnicodeDecodeError):
            raise UserError(f"{where}: token {names[i]!r} (id {i}) is neither a byte, a merge nor "
                            "an added token, and is not text") from None
    try:
        tok = Tokenizer(merges, pattern, specials, byte_ids=byte_ids, merge_ids=merge_ids)
    except (ValueError, UserError) as e:
        raise UserError(f"{where}: cannot be represented as a minillm tokenizer ({e})") from None
    if tok.vocab_size > vocab_size:
        raise UserError(f"{where} has token ids up to {tok.vocab_size - 1}, beyond the model's "
                        f"{vocab_size} embedding rows")
    notes = [f"tokenizer: {len(merges)} merges, {len(specials)} special tokens, pattern "
             f"{tok.pattern_name or 'custom'}, source ids kept"]
    if model.get("ignore_merges"):
        notes.append("warning: this tokenizer uses ignore_merges (a chunk that is a whole token skips "
                     "the merges); minillm always merges, which can differ on rare words")
    return tok, notes


# ---- the import ----------------------------------------------------------------------

def import_hf(src, out, context_len=None):
    """Convert a Hugging Face Llama directory into a minillm checkpoint; (out path, report lines)."""
    src = Path(src)
    if not src.is_dir():
        raise UserError(f"not a directory: {src}")
    cfg = read_json(src / "config.json", "Hugging Face config")
    config = config_from_hf(cfg, f"{src}/config.json", context_len)
    tok_path = src / "tokenizer.json"
    if not tok_path.exists():
        raise UserError(f"{src} has no tokenizer.json (minillm imports byte-level BPE tokenizers "
                        "in the tokenizers library's format)")
    try:
        doc = json.loads(tok_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{tok_path} is not valid JSON ({e})") from None
    tok, notes = tokenizer_from_hf(doc, str(tok_path), config.vocab_size)
    params = load_hf_params(src, config)
    source = {"format": "hf", "path": str(src), "model_type": "llama",
              "architectures": cfg.get("architectures"), "dtype": cfg.get("torch_dtype", cfg.get("dtype")),
              "bos_token_id": cfg.get("bos_token_id"), "eos_token_id": cfg.get("eos_token_id")}
    out = save_checkpoint(out, config, params, tokenizer=tok, meta={"stage": "imported", "source": source})
    size = num_params(config)
    report = [f"imported {src}: {config.n_layer} layers, {config.n_embd} wide, {config.n_head} heads "
              f"({config.n_kv_head} KV), vocab {config.vocab_size}, {size / 1e6:.1f}M parameters "
              f"({'tied' if config.tie_embeddings else 'untied'} head, rope base {config.rope_theta:g}, "
              f"eps {config.norm_eps:g}, context {config.context_len})"] + notes
    return out, report
