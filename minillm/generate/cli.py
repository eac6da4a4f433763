"""`minillm sample`: stream text from a checkpoint to the terminal.

    minillm sample --ckpt runs/default/base --prompt "Lira Vendel was born in"
    minillm sample --ckpt runs/default/base --prompt "Once upon a time" -n 3 --temperature 0.8 --top-k 50
    minillm sample --ckpt runs/default/base --prompt-file fewshot.txt --temperature 0 --max-tokens 20

With -n 1 the text appears token by token; with -n N the N samples share the prompt's
prefill and run as one batch, printed when the batch is done. The prompt is
plain text ("<|bos|>" typed in it is not a control token); <|bos|> is put in front unless
--no-bos, because every training document starts with one. A sample ends at <|bos|> (the
start of another document), at --max-tokens, or at the end of the context.

Read next: engine.py (the generation loop this command drives).
"""
import math
import sys
import time
import warnings
from pathlib import Path

from minillm import clib
from minillm.common import UserError, check_memory, positive_int, thread_count
from minillm.generate.engine import Engine


def add_arguments(parser):
    a = parser.add_argument
    a("--ckpt", required=True, help="checkpoint directory (e.g. runs/default/base)")
    a("--prompt", help="the text to continue")
    a("--prompt-file", help="read the prompt from a file (few-shot prompts)")
    a("-n", "--num-samples", type=int, default=1, help="samples of the prompt (default 1)")
    a("--temperature", type=float, default=0.8, help="0 = greedy (default 0.8)")
    a("--top-k", type=positive_int, default=None, help="sample among the k most likely tokens")
    a("--top-p", type=float, default=None, help="nucleus sampling: the smallest set with mass p")
    a("--seed", type=int, default=0, help="random seed (default 0)")
    a("--max-tokens", type=int, default=200, help="new tokens per sample (default 200)")
    a("--no-bos", action="store_true", help="do not put <|bos|> before the prompt")
    a("--threads", type=thread_count, help="kernel threads (default all cores)")


def run(args):
    if args.prompt is None and args.prompt_file is None:
        raise UserError("give --prompt TEXT or --prompt-file FILE")
    if args.prompt_file:
        try:
            prompt = Path(args.prompt_file).read_text(encoding="utf-8")
        except OSError as e:
            raise UserError(f"cannot read --prompt-file: {e}") from None
        except UnicodeDecodeError as e:
            raise UserError(f"--prompt-file {args.prompt_file} is not UTF-8 text ({e.reason} at byte "
                            f"{e.start}); save it as UTF-8") from None
    else:
        prompt = args.prompt
    if args.num_samples < 1 or args.max_tokens < 1:
        raise UserError("-n and --max-tokens must be at least 1")
    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        raise UserError(f"--temperature must be a finite number >= 0, not {args.temperature}")
    if args.top_p is not None and not 0 < args.top_p <= 1:      # (nan fails this too)
        raise UserError(f"--top-p must be in (0, 1], not {args.top_p}")
    if args.threads:
        clib.set_num_threads(args.threads)
    engine = Engine.from_checkpoint(args.ckpt)
    _check_memory(engine.config, args.num_samples, args.max_tokens)
    bos = engine.bos_id
    try:
        sampling = dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                        seed=args.seed, max_tokens=args.max_tokens,
                        stop=[bos] if bos is not None else [])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            if args.num_samples == 1:
                results = [_stream_one(engine, prompt, not args.no_bos, sampling)]
            else:
                results = _batch(engine, prompt, args.num_samples, not args.no_bos, sampling)
        for w in caught:
            print(f"minillm: warning: {w.message}", file=sys.stderr)
    except ValueError as e:
        raise UserError(str(e)) from None
    seconds = time.perf_counter() - t0
    n_tokens = sum(len(c.tokens) for c in results)
    reasons = ", ".join(sorted({c.finish_reason for c in results}))
    print(f"[{n_tokens} tokens in {seconds:.2f}s, {n_tokens / max(seconds, 1e-9):.0f} tokens/s; "
          f"finished by: {reasons}; model {args.ckpt}]", file=sys.stderr)
    return 0


def _check_memory(config, n, max_tokens):
    """Refuse a batch whose KV cache and logits could not fit in memory (`-n 100000000`)."""
    length = min(config.context_len, max_tokens + 1)        # a lower bound: the prompt adds
    kv = 2 * config.n_layer * config.n_kv_head * config.head_dim * length
    check_memory(4 * n * (kv + 2 * config.vocab_size), f"-n {n} with --max-tokens {max_tokens}",
                 "ask for fewer samples (-n) or tokens (--max-tokens)")


def _stream_one(engine, prompt, bos, sampling):
    print(prompt, end="", flush=True)
    stream = engine.stream(prompt, bos=bos, **sampling)
    for piece in stream:
        print(piece, end="", flush=True)
    print()
    return stream.completion


def _batch(engine, prompt, n, bos, sampling):
    completions = engine.generate(prompt, n=n, bos=bos, **sampling)
    for i, c in enumerate(completions):
        print(f"--- sample {i + 1}/{n} ({c.finish_reason}) ---")
        print(prompt + c.text)
    return completions
