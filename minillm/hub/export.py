"""Where to find LLMs: run a minillm model in the tools people already use, and run a public
Llama model in minillm's own engine.

    minillm export --ckpt runs/default/sft --format gguf --out runs/default/model.gguf [--dtype q8_0]
    minillm export --ckpt runs/default/sft --format hf --out runs/default/hf
    minillm export --ckpt runs/default/base --format llama2c --out runs/default/model.bin
    minillm import --hf ~/models/SmolLM2-135M --out runs/smollm2/base

Reading order: this file (the commands, and what every export shares: the vocabulary as
a list of token entries, the chat template, which ids end a sequence), export_gguf.py
(llama.cpp), export_hf.py (Hugging Face transformers, with the query/key permutation),
export_llama2c.py (llama2.c's run.c), import_hf.py (a Hugging Face Llama into minillm).

Our model is Llama exactly (token embedding, RoPE, RMSNorm, grouped-query attention,
SwiGLU, no biases, tied or untied head), so an export renames tensors and writes headers;
the only change to numbers is the query/key row permutation that Hugging Face's RoPE
layout needs (export_hf.py), and the optional q8_0 quantization of GGUF.

    python -m pytest tests/test_export*.py tests/test_import*.py      (fast checks)
    python -m pytest -m slow tests/test_export*.py tests/test_import*.py  (against transformers, llama.cpp, run.c)
"""
import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from minillm.common import UserError

FORMATS = ("gguf", "hf", "llama2c")

# The chat format of DESIGN.md as a Jinja template (Hugging Face's and llama.cpp's
# convention). A system message has no token of its own: like nanochat, it is put in front
# of the first user message. Tool calls are text parts the engine inserts; a template only
# renders plain-text messages.
CHAT_TEMPLATE = (
    "{%- set ns = namespace(system='') -%}"
    "{{- '<|bos|>' -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}"
    "{%- set ns.system = message['content'] + '\\n\\n' -%}"
    "{%- elif message['role'] == 'user' -%}"
    "{{- '<|user_start|>' + ns.system + message['content'] + '<|user_end|>' -}}"
    "{%- set ns.system = '' -%}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{- '<|assistant_start|>' + message['content'] + '<|assistant_end|>' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant_start|>' -}}{%- endif -%}"
)


# ---- what every export needs from a checkpoint -------------------------------------

def load_for_export(ckpt):
    """(config, params, meta, tokenizer) of a checkpoint directory. A checkpoint without a
    tokenizer.json (a byte-level run) gets the plain byte tokenizer: 256 ids, no merges."""
    from minillm.nn.checkpoint import load_checkpoint
    from minillm.tokenizer.bpe import Tokenizer

    config, params, meta = load_checkpoint(ckpt)
    path = Path(ckpt) / "tokenizer.json"
    tok = Tokenizer.load(path) if path.exists() else Tokenizer([], special_tokens={})
    if tok.vocab_size > config.vocab_size:
        raise UserError(f"{path} has {tok.vocab_size} tokens but the model only "
                        f"{config.vocab_size} embedding rows")
    return config, params, meta, tok


def vocab_entries(tok, vocab_size):
    """The vocabulary as a list indexed by id: ("byte" | "merge", bytes), ("special", str),
    or ("pad", None) for embedding rows no token uses (a model padded past its tokenizer)."""
    entries = [("pad", None)] * vocab_size
    for i in tok.byte_ids:
        entries[i] = ("byte", tok.token_bytes(i))
    for i in tok.merge_ids:
        entries[i] = ("merge", tok.token_bytes(i))
    for s, i in tok.special_tokens.items():
        entries[i] = ("special", s)
    return entries


def bos_eos(tok, meta=None):
    """(bos id or None, eos id or None, end-of-turn id or None).

    A document starts with <|bos|>, which also separates documents: it is what a base model
    predicts at the end of a text (GPT-2's <|endoftext|> plays both roles). A chat model
    ends its turn with <|assistant_end|>. An imported model keeps the ids its source named.
    """
    specials = tok.special_tokens
    source = (meta or {}).get("source") or {}
    bos = specials.get("<|bos|>", source.get("bos_token_id"))
    eot = specials.get("<|assistant_end|>")
    eos = source.get("eos_token_id", bos)
    if isinstance(eos, list):
        eos = eos[0] if eos else None
    return bos, eos, eot


def has_chat_tokens(tok):
    needed = ("<|bos|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>", "<|assistant_end|>")
    return all(s in tok.special_tokens for s in needed)


@contextlib.contextmanager
def atomic_dir(path):
    """Yield a temporary directory next to `path`; on success it replaces `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    os.chmod(tmp, 0o755)
    try:
        yield tmp
        if path.exists():
            if not path.is_dir():
                raise UserError(f"{path} exists and is not a directory")
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---- CLI: `minillm export` -----------------------------------------------------------

def add_arguments(parser):
    parser.add_argument("--ckpt", required=True, help="checkpoint directory (e.g. runs/default/sft)")
    parser.add_argument("--format", required=True, choices=FORMATS,
                        help="gguf (llama.cpp), hf (transformers directory), llama2c (run.c's .bin)")
    parser.add_argument("--out", required=True,
                        help="output: a .gguf file, a directory for hf, a .bin for llama2c "
                             "(its tokenizer.bin is written beside it)")
    parser.add_argument("--dtype", default="f32", choices=("f32", "q8_0"),
                        help="GGUF weight type: f32, or q8_0 (blocks of 32 int8 + an f16 scale; "
                             "norms stay f32)")


def run(args):
    if args.dtype != "f32" and args.format != "gguf":
        raise UserError(f"--dtype {args.dtype} is only for --format gguf ({args.format} is float32)")
    config, params, meta, tok = load_for_export(args.ckpt)
    if args.format == "gguf":
        from minillm.hub.gguf import export_gguf

        out = export_gguf(args.out, config, params, tok, meta, dtype=args.dtype)
        print(f"wrote {out} (GGUF v3, llama, {args.dtype}); run it with llama.cpp: "
              f"llama-cli -m {out}")
    elif args.format == "hf":
        from minillm.hub.hf import export_hf

        out = export_hf(args.out, config, params, tok, meta)
        print(f"wrote {out}/ (config.json, model.safetensors, tokenizer.json, tokenizer_config.json, "
              f"generation_config.json); load it with transformers' LlamaForCausalLM.from_pretrained")
    else:
        from minillm.hub.llama2c import export_llama2c

        out, tok_out = export_llama2c(args.out, config, params, tok)
        print(f"wrote {out} and {tok_out}; run it with llama2.c: ./run {out} -z {tok_out}")


# ---- CLI: `minillm import` -----------------------------------------------------------

def add_import_arguments(parser):
    parser.add_argument("--hf", required=True,
                        help="a Hugging Face Llama checkpoint directory (config.json, *.safetensors, "
                             "tokenizer.json)")
    parser.add_argument("--out", required=True, help="minillm checkpoint directory to write")
    parser.add_argument("--context-len", type=int, default=None,
                        help="context length of the imported model (default: the source's "
                             "max_position_embeddings)")


def run_import(args):
    from minillm.hub.import_hf import import_hf

    out, report = import_hf(args.hf, args.out, context_len=args.context_len)
    for line in report:
        print(line)
    print(f"wrote {out}; sample from it: minillm sample --ckpt {out} --prompt \"...\"")
