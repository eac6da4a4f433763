"""`minillm chat render | search`: look at the chat format and the search tool.

    minillm chat render conversations.jsonl [--tokenizer PATH] [--index N] [--json] [--max-len N]
    minillm chat search --run default "who founded Velmora"        (builds the index on first use)

`render` prints each conversation as tokens, the supervised ones coloured (render.py);
--json prints one {"index", "ids", "mask", "tokens"} line per conversation instead.
`search` prints the passages the search tool would paste into the context.

minillm/cli.py calls add_arguments(parser) and run(args): subcommands are an explicit table
(ACTIONS); the interactive chat and `chat eval` join it with the SFT stage.

Read next: template.py, render.py, search.py, tools.py.
"""
import json
import os
import sys
from pathlib import Path

from minillm.chat import render as view
from minillm.chat.search import BM25Index, clean_documents
from minillm.chat.template import ConversationTooLong, load_conversations, render
from minillm.common import UserError, runs_dir
from minillm.tokenizer.cli import default_tokenizer_path, load_any


def add_arguments(parser):
    sub = parser.add_subparsers(dest="action", metavar="action")
    add_render_arguments(sub.add_parser("render", help="show conversations as tokens, the supervised ones coloured"))
    add_search_arguments(sub.add_parser("search", help="query the BM25 search tool over a run's clean corpus"))


def run(args):
    action = ACTIONS.get(args.action)
    if action is None:
        raise UserError(f"give an action: {', '.join(ACTIONS)} (e.g. `minillm chat render FILE.jsonl`)")
    return action(args)


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
    parser.add_argument("-k", type=int, default=3, help="passages to show (default 3)")


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


ACTIONS = {"render": run_render, "search": run_search}
