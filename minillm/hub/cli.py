"""`minillm export` and `minillm import`: a minillm model in the tools people already use,
and a public Llama model in minillm's own engine.

    minillm export --ckpt runs/default/sft --format gguf --out runs/default/model.gguf [--dtype q8_0]
    minillm export --ckpt runs/default/sft --format hf --out runs/default/hf
    minillm export --ckpt runs/default/base --format llama2c --out runs/default/model.bin
    minillm import --hf ~/models/SmolLM2-135M --out runs/smollm2/base

An existing --out is replaced only with --force (for hf, only the files an export writes).
FORMATS maps each --format to its writer (gguf.py, hf.py, llama2c.py); each prints where
its output went and the command that runs it in its tool.

Read next: vocab.py (what every export shares), then one format's module.
"""
from pathlib import Path

from minillm.common import FORCE_HELP, UserError, prepare_dir, prepare_file
from minillm.hub import hf
from minillm.hub.gguf import export_gguf
from minillm.hub.hf import export_hf
from minillm.hub.import_hf import import_hf
from minillm.hub.llama2c import export_llama2c
from minillm.hub.vocab import load_for_export
from minillm.nn.checkpoint import OUTPUT as CHECKPOINT


def write_gguf_export(args, config, params, tok, meta):
    out = export_gguf(args.out, config, params, tok, meta, dtype=args.dtype)
    print(f"wrote {out} (GGUF v3, llama, {args.dtype}); run it with llama.cpp: "
          f"llama-cli -m {out}")


def write_hf_export(args, config, params, tok, meta):
    out = export_hf(args.out, config, params, tok, meta)
    print(f"wrote {out}/ (config.json, model.safetensors, tokenizer.json, tokenizer_config.json, "
          f"generation_config.json); load it with transformers' LlamaForCausalLM.from_pretrained")


def write_llama2c_export(args, config, params, tok, meta):
    out, tok_out = export_llama2c(args.out, config, params, tok)
    print(f"wrote {out} and {tok_out}; run it with llama2.c: ./run {out} -z {tok_out}")


FORMATS = {"gguf": write_gguf_export, "hf": write_hf_export, "llama2c": write_llama2c_export}


# ---- `minillm export` ------------------------------------------------------------------

def add_export_arguments(parser):
    parser.add_argument("--ckpt", required=True, help="checkpoint directory (e.g. runs/default/sft)")
    parser.add_argument("--format", required=True, choices=tuple(FORMATS),
                        help="gguf (llama.cpp), hf (transformers directory), llama2c (run.c's .bin)")
    parser.add_argument("--out", required=True,
                        help="output: a .gguf file, a directory for hf, a .bin for llama2c "
                             "(its tokenizer.bin is written beside it)")
    parser.add_argument("--dtype", default="f32", choices=("f32", "q8_0"),
                        help="GGUF weight type: f32, or q8_0 (blocks of 32 int8 + an f16 scale; "
                             "norms stay f32)")
    parser.add_argument("--force", action="store_true", help=FORCE_HELP)


def run_export(args):
    if args.dtype != "f32" and args.format != "gguf":
        raise UserError(f"--dtype {args.dtype} is only for --format gguf ({args.format} is float32)")
    config, params, meta, tok = load_for_export(args.ckpt)
    inputs = {"--ckpt": args.ckpt}
    if args.format == "hf":
        prepare_dir(args.out, hf.OUTPUT, force=args.force, resume=False, inputs=inputs)
    else:
        prepare_file(args.out, force=args.force, inputs=inputs)
        if args.format == "llama2c":      # its tokenizer.bin goes beside it
            prepare_file(Path(args.out).with_name("tokenizer.bin"), force=args.force, inputs=inputs)
    FORMATS[args.format](args, config, params, tok, meta)


# ---- `minillm import` ------------------------------------------------------------------

def add_import_arguments(parser):
    parser.add_argument("--hf", required=True,
                        help="a Hugging Face Llama checkpoint directory (config.json, *.safetensors, "
                             "tokenizer.json)")
    parser.add_argument("--out", required=True, help="minillm checkpoint directory to write")
    parser.add_argument("--context-len", type=int, default=None,
                        help="context length of the imported model (default: the source's "
                             "max_position_embeddings)")
    parser.add_argument("--force", action="store_true", help=FORCE_HELP)


def run_import(args):
    if not Path(args.hf).is_dir():
        raise UserError(f"--hf {args.hf} is not a directory; give a Hugging Face checkpoint directory")
    if args.context_len is not None and args.context_len < 1:
        raise UserError(f"--context-len must be a positive number of tokens, got {args.context_len}")
    prepare_dir(args.out, CHECKPOINT, force=args.force, resume=False, inputs={"--hf": args.hf})
    out, report = import_hf(args.hf, args.out, context_len=args.context_len)
    for line in report:
        print(line)
    print(f"wrote {out}; sample from it: minillm sample --ckpt {out} --prompt \"...\"")
