"""`minillm pretrain`: the flags, turned into a TrainConfig (train.py) and trained.

    minillm pretrain --data runs/default/shards --depth 6 --steps 2000
    minillm pretrain --data tinyshakespeare.txt --n-layer 4 --n-head 4 \\
        --n-embd 128 --context-len 64 --batch-size 12 --steps 2000 --lr 1e-3 --min-lr 1e-4
    minillm pretrain --resume runs/default/base        # continue an interrupted run exactly
    mpirun -np 2 minillm pretrain --data runs/default/shards --batch-size 8   # 2 ranks (dist.py)

An --out that holds a checkpoint needs --resume (continue it) or --force (start over).
A flag left out stays None, so --resume can tell what was asked for from a default: a
resumed run keeps the checkpoint's settings, and changing one that matters is an error.
The exit status is 130 when Ctrl-C stopped the run (after writing a checkpoint).

Read next: train.py (TrainConfig, train), then loop.py (the loop itself).
"""
import argparse
import math
from pathlib import Path

from minillm.common import (
    FORCE_HELP, UserError, check_memory, non_negative_int, positive_int, prepare_dir, remove_temp_files,
    thread_count)
from minillm.nn import gpt
from minillm.nn.checkpoint import OUTPUT
from minillm.pretrain import dist
from minillm.pretrain.train import MODEL_FLAGS, TrainConfig, check_numbers, train


def add_arguments(parser):
    """`minillm pretrain` flags. Unset flags stay None so --resume can tell them apart."""
    a = parser.add_argument
    a("--data", help="token-shard directory (minillm tokenizer ...) or a text file (byte-level)")
    a("--tokenizer", help="tokenizer.json: encode a text file with it; copied into checkpoints "
      "(default: <data>/../tokenizer.json for shards when present)")
    a("--name", help="run name: outputs go to runs/<name>/ (default: default)")
    a("--out", help="checkpoint directory (default: runs/<name>/base)")
    a("--resume", nargs="?", const=True, help="continue from a checkpoint (default: --out's)")
    a("--force", action="store_true", default=None,
      help="start afresh over an existing checkpoint in --out (" + FORCE_HELP + ")")
    g = parser.add_argument_group("model size")
    g.add_argument("--depth", type=positive_int, help="the size dial: layers; width, heads follow (default 6)")
    g.add_argument("--n-layer", type=positive_int)
    g.add_argument("--n-head", type=positive_int)
    g.add_argument("--n-kv-head", type=positive_int, help="key/value heads (grouped-query attention)")
    g.add_argument("--n-embd", type=positive_int)
    g.add_argument("--hidden-dim", type=positive_int, help="SwiGLU inner size")
    g.add_argument("--tie-embeddings", action=argparse.BooleanOptionalAction,
                   help="share tok_emb and the LM head")
    g = parser.add_argument_group("optimisation")
    g.add_argument("--batch-size", type=int,
                   help="sequences per micro-batch, split over the ranks under mpirun (default 8)")
    g.add_argument("--context-len", type=int, help="tokens per sequence (default 256)")
    g.add_argument("--steps", type=int, help="optimizer steps (default 1000)")
    g.add_argument("--tokens", type=float, help="token budget instead of --steps (e.g. 2e7)")
    g.add_argument("--grad-accum", type=int, help="micro-batches per step (default 1)")
    g.add_argument("--lr", type=float, help="peak learning rate (default: by width, 1e-3 at 128)")
    g.add_argument("--min-lr", type=float, help="final learning rate (default lr/10)")
    g.add_argument("--warmup", type=non_negative_int, help="warmup steps (default min(100, steps/10))")
    g.add_argument("--schedule", choices=["cosine", "wsd"], help="LR schedule (default cosine)")
    g.add_argument("--weight-decay", type=float, help="AdamW decoupled weight decay (default 0.1)")
    g.add_argument("--beta1", type=float, help="AdamW beta1 (default 0.9)")
    g.add_argument("--beta2", type=float, help="AdamW beta2 (default 0.95; nanoGPT's tiny runs use 0.99)")
    g.add_argument("--clip", type=float, help="max global gradient norm, 0 = off (default 1.0)")
    g.add_argument("--seed", type=int, help="initialisation and data order (default 0)")
    g = parser.add_argument_group("bookkeeping")
    g.add_argument("--eval-every", type=non_negative_int, help="steps between validation losses (default 250)")
    g.add_argument("--eval-batches", type=non_negative_int, help="batches per validation loss (default 20)")
    g.add_argument("--final-eval-batches", type=non_negative_int,
                   help="batches for the last validation loss, 0 = whole split (default: --eval-batches)")
    g.add_argument("--sample-prompt", help="at each validation, print a short sample continuing this prompt")
    g.add_argument("--ckpt-every", type=non_negative_int, help="steps between checkpoints (default 1000)")
    g.add_argument("--log-every", type=positive_int, help="steps between metrics.jsonl lines (default 1)")
    g.add_argument("--metrics", help="metrics file (default runs/<name>/metrics.jsonl)")
    g.add_argument("--threads", type=thread_count, help="threads for kernels and optimizer (default all "
                   "cores; under mpirun, this machine's cores shared among its ranks)")
    g.add_argument("--check-every", type=non_negative_int,
                   help="under mpirun: steps between checks that all ranks hold the same weights (default 100)")
    g.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                   help="no progress bar")


def _check_memory(config):
    """Refuse a model and batch that could not fit in memory (`--depth 1000`), before
    anything is allocated. A lower bound: a 256-token vocabulary (bytes) and only the
    activations every layer must keep for backprop."""
    overrides = {k: getattr(config, k) for k in MODEL_FLAGS if getattr(config, k) is not None}
    try:
        model = gpt.GPTConfig.from_depth(config.depth, 256, config.context_len, **overrides)
    except ValueError:
        return                             # train() says what is wrong with the shape
    params = gpt.num_params(model)         # weights, gradients, AdamW's two moments: 16 bytes
    tokens = config.batch_size * config.context_len
    activations = tokens * model.n_layer * (8 * model.n_embd + 3 * model.hidden_dim)
    check_memory(16 * params + 4 * activations, "this model and batch",
                 "choose a smaller --depth/--n-embd or --batch-size/--context-len")


def run(args):
    """`minillm pretrain`: build a TrainConfig from the flags and train. Under mpirun every
    rank checks the flags (a mistake is printed once, by rank 0) and rank 0 alone prepares --out."""
    world = dist.connect()
    config, error = None, None
    try:
        config = _config(args, world)
    except UserError as e:
        error = e
    dist.agree(world, error)
    result = train(config)
    return 130 if result.interrupted else 0


def _config(args, world):
    """The run's TrainConfig from the flags, once the inputs and --out are checked."""
    given = {k: v for k, v in vars(args).items() if v is not None and k not in ("resume", "force")}
    beta1, beta2 = given.pop("beta1", None), given.pop("beta2", None)
    if beta1 is not None or beta2 is not None:
        default = TrainConfig().betas
        given["betas"] = (default[0] if beta1 is None else beta1, default[1] if beta2 is None else beta2)
    if "tokens" in given:
        if not math.isfinite(given["tokens"]) or given["tokens"] < 1:
            raise UserError(f"--tokens must be at least 1, not {given['tokens']}")
        given["tokens"] = int(given["tokens"])
    config = TrainConfig(**given)
    check_numbers(config)                  # before --out is touched, like the inputs below
    if args.resume is None:                # (resuming, the checkpoint's batch size counts)
        dist.check_batch(config.batch_size, world.size)
    _check_memory(config)
    inputs = {"--data": config.data, "--tokenizer": config.tokenizer}
    for flag, path in inputs.items():      # before --out is touched: a typo creates nothing
        if path is not None and not Path(path).exists():
            raise UserError(f"{'data' if flag == '--data' else 'tokenizer'} not found: {path}")
        if path is not None and Path(path).is_file() and Path(path).stat().st_size == 0:
            raise UserError(f"{flag} {path} is an empty file; give a file with text")
    if args.resume is not None:
        if args.force:
            raise UserError("--resume continues a checkpoint and --force replaces it: pass one")
        config.resume = str(config.out_dir() if args.resume is True else Path(args.resume))
        new_out = args.out and Path(args.out) != Path(config.resume)
        if world.root and new_out:
            prepare_dir(args.out, OUTPUT, resume=False, inputs=inputs)   # a new directory
        elif world.root:
            remove_temp_files(config.resume, OUTPUT)                      # of a killed save
    elif config.data is None:
        raise UserError("--data is required: a token-shard directory or a text file")
    elif world.root:
        prepare_dir(config.out_dir(), OUTPUT, force=bool(args.force), resume=False,
                    resume_flag="--resume", inputs=inputs)
    return config
