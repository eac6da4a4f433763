"""`minillm chat [render | search | data | probe | eval]`, the interactive chat, `minillm sft`.

    minillm chat render conversations.jsonl [--tokenizer PATH] [--index N] [--json] [--max-len N]
    minillm chat search --run default "who founded Velmora"        (builds the index on first use)
    minillm chat probe --ckpt runs/default/base        -> runs/default/chat/probe.jsonl (probe.py)
    minillm chat data --run default                    -> runs/default/chat/conversations.jsonl (data.py)
    minillm sft --ckpt runs/default/base --out runs/default/sft --data conversations.jsonl
    minillm chat --ckpt runs/default/sft [--temperature 0.6]        (talk to it: terminal.py)
    minillm chat eval --ckpt runs/default/sft --run default  -> runs/default/sft/chat_evals.json

`render` prints each conversation as tokens, the supervised ones coloured (render.py);
--json prints one {"index", "ids", "mask", "tokens"} line per conversation instead.
`search` prints the passages the search tool would paste into the context. With no action,
--ckpt starts the terminal chat. `minillm sft` fine-tunes (sft.py); its exit status is 130
when Ctrl-C stopped it (after writing a checkpoint).

minillm/cli.py calls add_arguments(parser) and run(args) for `chat` (actions: the explicit
table ACTIONS), add_sft_arguments and run_sft for `sft`.

Read next: template.py, render.py, search.py, tools.py, data.py, probe.py, sft.py, terminal.py,
evals.py.
"""
import dataclasses
import json
import math
import os
import sys
from pathlib import Path

from tqdm import tqdm

from minillm import clib
from minillm.chat import render as view
from minillm.chat import terminal
from minillm.chat.data import (IDENTITY, KINDS, DataConfig, fitting, generate_conversations, kind_table,
                               write_conversations)
from minillm.chat.data_math import FORMATS
from minillm.chat.evals import evaluate_checkpoint, format_table
from minillm.chat.probe import ProbeConfig, probe_facts, read_probe, write_probe
from minillm.chat.probe import summary as probe_summary
from minillm.chat.search import BM25Index, clean_documents
from minillm.chat.sft import SFTConfig, sft
from minillm.chat.template import ConversationTooLong, load_conversations, render
from minillm.common import (
    UserError, non_negative_int, positive_int, read_json, runs_dir, thread_count, write_json)
from minillm.generate.engine import Engine
from minillm.nn.gpt import GPTConfig, param_shapes
from minillm.tokenizer.bpe import Tokenizer
from minillm.tokenizer.cli import default_tokenizer_path, load_any
from minillm.world.world import World


def add_arguments(parser):
    a = parser.add_argument_group("the interactive chat (no action)").add_argument
    a("--ckpt", help="talk to this checkpoint (e.g. runs/default/sft)")
    a("--temperature", type=float, default=0.6, help="0 = greedy (default 0.6; /temp X changes it)")
    a("--max-tokens", type=positive_int, default=256, help="new tokens per reply (default 256)")
    a("--seed", type=int, default=0, help="random seed (default 0)")
    a("--system", help="a system message for the conversation")
    a("--search-index", type=Path, help="BM25 index for the search tool (default <ckpt>/../chat/search.npz)")
    a("--threads", type=thread_count, help="kernel threads (default all cores)")
    sub = parser.add_subparsers(dest="action", metavar="action")
    add_render_arguments(sub.add_parser("render", help="show conversations as tokens, the supervised ones coloured"))
    add_search_arguments(sub.add_parser("search", help="query the BM25 search tool over a run's clean corpus"))
    add_data_arguments(sub.add_parser("data", help="generate the SFT conversations from a run's world"))
    add_probe_arguments(sub.add_parser("probe", help="ask the base model every fact k times: known / unknown"))
    add_eval_arguments(sub.add_parser("eval", help="the chat evals on held-out items: prints a table, writes chat_evals.json"))


def run(args):
    if args.action is None and args.ckpt:
        return run_terminal(args)
    action = ACTIONS.get(args.action)
    if action is None:
        raise UserError(f"give an action: {', '.join(ACTIONS)} (e.g. `minillm chat render FILE.jsonl`), "
                        "or --ckpt DIR to talk to a checkpoint")
    return action(args)


def run_terminal(args):
    terminal.check_settings(args.temperature, args.max_tokens)
    if args.threads:
        clib.set_num_threads(args.threads)
    chat, note = terminal.open_chat(args.ckpt, args.search_index, temperature=args.temperature,
                                    max_tokens=args.max_tokens, seed=args.seed, system=args.system)
    sys.stdout.write(terminal.banner(chat, args.ckpt, note))
    terminal.run_chat(chat, sys.stdin, sys.stdout)


def add_sft_arguments(parser):
    """`minillm sft` flags. Unset flags stay None so --resume can tell them apart."""
    a = parser.add_argument
    a("--ckpt", help="the base checkpoint to fine-tune (e.g. runs/default/base)")
    a("--out", help="the SFT checkpoint to write (default <ckpt>/../sft)")
    a("--data", help="conversations .jsonl (default <ckpt>/../chat/conversations.jsonl)")
    a("--resume", action="store_true", default=None, help="continue the SFT run in --out")
    a("--force", action="store_true", default=None, help="replace the SFT run in --out")
    g = parser.add_argument_group("optimisation").add_argument
    g("--steps", type=int, help="optimizer steps (default: --epochs passes over the data)")
    g("--epochs", type=float, help="passes over the train conversations when --steps is unset (default 2)")
    g("--batch-size", type=positive_int, help="conversations per step (default 16)")
    g("--lr", type=float, help="peak learning rate (default: half the base run's)")
    g("--min-lr", type=float, help="final learning rate (default lr/10)")
    g("--warmup", type=non_negative_int, help="warmup steps (default min(20, steps/10))")
    g("--schedule", choices=["cosine", "wsd"], help="LR schedule (default cosine)")
    g("--weight-decay", type=float, help="AdamW weight decay (default 0)")
    g("--clip", type=float, help="max global gradient norm, 0 = off (default 1.0)")
    g("--seed", type=int, help="conversation order (default 0)")
    g = parser.add_argument_group("bookkeeping").add_argument
    g("--eval-frac", type=float, help="held out when no conversation has split \"eval\" (default 0.1)")
    g("--eval-every", type=non_negative_int, help="steps between held-out losses (default 50)")
    g("--eval-batches", type=non_negative_int, help="batches per held-out loss, 0 = all (default 0)")
    g("--ckpt-every", type=non_negative_int, help="steps between checkpoints (default 0: at the end)")
    g("--log-every", type=positive_int, help="steps between metrics.jsonl lines (default 1)")
    g("--metrics", help="metrics file (default <out>/../metrics.jsonl)")
    g("--threads", type=thread_count, help="threads for kernels and optimizer (default all cores)")
    g("--no-progress", dest="progress", action="store_false", default=None, help="no progress bar")


def run_sft(args):
    """`minillm sft`: fine-tune a base checkpoint on conversations."""
    config = SFTConfig(**{k: v for k, v in vars(args).items() if v is not None})
    if not config.resume and not config.ckpt:
        raise UserError("--ckpt is required: the base checkpoint to fine-tune (or --out DIR --resume)")
    result = sft(config)
    return 130 if result.interrupted else 0


def add_render_arguments(parser):
    parser.add_argument("file", type=Path, help="conversations, one JSON per line (.jsonl or .jsonl.gz)")
    parser.add_argument("--tokenizer", type=Path, default=None,
                        help="tokenizer.json or a directory holding one (default runs/default/tokenizer.json)")
    parser.add_argument("--index", type=int, default=None, metavar="N",
                        help="only conversation N (0-based, in file order)")
    parser.add_argument("--max-len", type=int, default=None, help="truncate to this many tokens (whole exchanges)")
    parser.add_argument("--json", action="store_true", help='one {"index", "ids", "mask", "tokens"} line each')
    parser.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                        help="ANSI colours: auto = when stdout is a terminal and NO_COLOR is unset")


def run_render(args):
    tok = load_any(args.tokenizer or default_tokenizer_path())
    records = load_conversations(args.file)
    chosen = range(len(records))
    if args.index is not None:
        if not 0 <= args.index < len(records):
            raise UserError(f"--index {args.index}: {args.file} has {len(records)} conversations (0..{len(records) - 1})")
        chosen = [args.index]
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty() and not os.environ.get("NO_COLOR"))
    if not args.json:
        print(view.legend(color))
    for n in chosen:
        try:
            ids, mask = render(records[n]["messages"], tok, args.max_len)
        except ConversationTooLong as e:
            raise UserError(f"conversation {n}: {e}") from None
        if args.json:
            print(json.dumps({"index": n, "ids": ids.tolist(), "mask": mask.tolist(),
                              "tokens": view.token_strings(ids, tok)}, ensure_ascii=False))
            continue
        kind = f", kind {records[n]['kind']}" if "kind" in records[n] else ""
        print(f"\n# conversation {n}{kind}: {view.summary(ids, mask)}")
        print(view.show(ids, mask, tok, color))


def add_search_arguments(parser):
    parser.add_argument("query", nargs="*", help="what to search for")
    parser.add_argument("--run", default="default", help="run name or directory with clean/ (default: default)")
    parser.add_argument("--index", type=Path, default=None, help="index file (default <run>/chat/search.npz)")
    parser.add_argument("--build", action="store_true", help="(re)build the index from <run>/clean first")
    parser.add_argument("-k", type=positive_int, default=3, help="passages to show (default 3)")


def run_search(args):
    run_dir = Path(args.run) if Path(args.run).is_dir() else runs_dir() / args.run
    path = args.index or run_dir / "chat" / "search.npz"
    if args.build or not path.exists():
        index = BM25Index.build(clean_documents(run_dir))
        index.save(path)
        print(f"indexed {len(index.texts):,} passages, {len(index.terms):,} words; wrote {path}")
    else:
        index = BM25Index.load(path)
    if not args.query:
        return
    query = " ".join(args.query)
    hits = index.search(query, args.k)
    print(f"{len(hits)} passage(s) for {query!r} (BM25, k1={index.k1}, b={index.b}):")
    for rank, hit in enumerate(hits, 1):
        print(f"\n{rank}. score {hit['score']:.3f}  [{hit['source']}]\n{hit['text']}")


def add_data_arguments(parser):
    parser.add_argument("--run", default="default", help="run name or directory with world/ and clean/")
    parser.add_argument("--probe", type=Path, default=None,
                        help="the base model's probe.jsonl (default <run>/chat/probe.jsonl when it exists)")
    parser.add_argument("--out", type=Path, default=None, help="default <run>/chat/conversations.jsonl")
    parser.add_argument("--size", type=positive_int, default=DataConfig.size, help="train conversations")
    parser.add_argument("--eval-size", type=non_negative_int, default=DataConfig.eval_size, help="held-out conversations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--without", default="", help=f"kinds to leave out (ablations), comma-separated: {', '.join(KINDS)}")
    parser.add_argument("--think-formats", default=",".join(FORMATS),
                        help="word-problem formats to use (answer_first alone: the ablation)")
    parser.add_argument("--params", type=int, default=None,
                        help="the model's parameter count, for 'how big are you?' (default: from <run>/base)")


def run_data(args):
    run_dir = Path(args.run) if Path(args.run).is_dir() else runs_dir() / args.run
    if not (run_dir / "world").is_dir():
        raise UserError(f"no world in {run_dir}; build one with `minillm world build --out {run_dir / 'world'}`")
    world = World.load(run_dir / "world")
    probe_path = args.probe or run_dir / "chat" / "probe.jsonl"
    probe = read_probe(probe_path) if args.probe or probe_path.exists() else None
    index_path = run_dir / "chat" / "search.npz"
    if index_path.exists():
        index = BM25Index.load(index_path)
    else:
        index = BM25Index.build(clean_documents(run_dir))
        index.save(index_path)
        print(f"indexed {len(index.texts):,} passages of {run_dir / 'clean'}; wrote {index_path}")
    try:
        config = DataConfig(seed=args.seed, size=args.size, eval_size=args.eval_size,
                            without=tuple(k for k in args.without.split(",") if k),
                            think_formats=tuple(f for f in args.think_formats.split(",") if f),
                            identity=dataclasses.replace(IDENTITY, parameters=args.params or _count_params(run_dir / "base")))
    except ValueError as e:
        raise UserError(str(e)) from None
    records = generate_conversations(world, config, probe, index)
    context = _context_len(run_dir / "base")
    if context:             # as the speedrun: only conversations the base model's context holds
        records, dropped = fitting(records, Tokenizer.load(run_dir / "base" / "tokenizer.json"), context + 1)
        if dropped:
            print(f"left out {dropped} conversation(s) with an exchange longer than the "
                  f"{context}-token context of {run_dir / 'base'}")
    out = args.out or run_dir / "chat" / "conversations.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_conversations(records, out)
    print(kind_table(records))
    known = f"probe {probe_path}" if probe is not None else "no probe: facts of `many` entities count as known"
    print(f"wrote {len(records):,} conversations to {out} ({known})")


def _context_len(ckpt):
    """The checkpoint's context length (config.json), or None without a readable one."""
    if not (ckpt / "config.json").is_file() or not (ckpt / "tokenizer.json").is_file():
        return None
    context = (read_json(ckpt / "config.json", what="checkpoint config").get("model") or {}).get("context_len")
    return context if isinstance(context, int) and context > 0 else None


def _count_params(ckpt):
    """Parameters of the checkpoint's model, from its config.json alone; None without one."""
    if not (ckpt / "config.json").is_file():
        return None
    model = read_json(ckpt / "config.json", what="checkpoint config").get("model") or {}
    try:
        return sum(math.prod(shape) for shape in param_shapes(GPTConfig(**model)).values())
    except (TypeError, ValueError):
        return None


def add_probe_arguments(parser):
    parser.add_argument("--ckpt", type=Path, required=True, help="the base model's checkpoint directory")
    parser.add_argument("--world", type=Path, default=None, help="default: the checkpoint's run/world")
    parser.add_argument("--out", type=Path, default=None, help="default <run>/chat/probe.jsonl")
    parser.add_argument("-k", type=positive_int, default=ProbeConfig.k, help="samples per fact")
    parser.add_argument("--temperature", type=float, default=ProbeConfig.temperature)
    parser.add_argument("--min-correct", type=float, default=ProbeConfig.min_correct,
                        help="share of right samples for 'known' (default half)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="at most this many facts per bucket")


def run_probe(args):
    run_dir = Path(args.ckpt).resolve().parent
    world_dir = args.world or run_dir / "world"
    if not Path(world_dir).is_dir():
        raise UserError(f"no world at {world_dir}; pass --world DIR")
    world = World.load(world_dir)
    engine = Engine.from_checkpoint(args.ckpt)
    config = ProbeConfig(k=args.k, temperature=args.temperature, min_correct=args.min_correct,
                         seed=args.seed, limit=args.limit)
    with tqdm(desc="probe", unit="fact", mininterval=0.5) as bar:
        def progress(done, total):
            bar.total = total
            bar.update(done - bar.n)
        records = probe_facts(engine, world, config, progress)
    out = args.out or run_dir / "chat" / "probe.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_probe(records, out)
    print(f"{'bucket':<7}{'facts':>7}{'known':>8}{'right samples':>15}")
    for bucket, n, known, right in probe_summary(records):
        print(f"{bucket:<7}{n:>7}{known:>8.1%}{right:>15.1%}")
    print(f"wrote {len(records):,} probe records to {out}")


def add_eval_arguments(parser):
    parser.add_argument("--ckpt", type=Path, required=True, help="the checkpoint to evaluate (e.g. runs/default/sft)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--run", help="run name or directory with world/ and chat/ (default: the checkpoint's)")
    where.add_argument("--world", type=Path, help="the world directory (probe and index: the checkpoint's run)")
    parser.add_argument("--limit", type=int, default=None, help="at most N items per eval (default all)")
    parser.add_argument("--seed", type=int, default=0, help="which items when --limit picks (default 0)")
    parser.add_argument("--out", type=Path, default=None, help="results JSON (default <ckpt>/chat_evals.json)")


def run_eval(args):
    """`minillm chat eval`: every chat eval on a checkpoint; prints the table, writes the JSON."""
    if not (args.ckpt / "config.json").is_file():
        raise UserError(f"--ckpt {args.ckpt}: no checkpoint there (no config.json)")
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be at least 1, not {args.limit}")
    if args.run:
        run_dir = Path(args.run) if Path(args.run).is_dir() else runs_dir() / args.run
    else:
        run_dir = args.ckpt.resolve().parent
    world = args.world or run_dir / "world"
    if not (Path(world) / "stats.json").is_file():
        raise UserError(f"no world at {world}; pass --world DIR or --run NAME")
    probe, index = run_dir / "chat" / "probe.jsonl", run_dir / "chat" / "search.npz"
    results = evaluate_checkpoint(args.ckpt, world, probe if probe.is_file() else None,
                                  index if index.is_file() else None, args.seed, args.limit,
                                  progress=lambda row: print(row, file=sys.stderr, flush=True))
    out = args.out or args.ckpt / "chat_evals.json"
    write_json(out, results)
    print(format_table(results))
    print(f"wrote {out}")


ACTIONS = {"render": run_render, "search": run_search, "data": run_data, "probe": run_probe, "eval": run_eval}
