"""`minillm tokenizer train | encode | decode | show | stats | export`.

    minillm tokenizer train --input corpus.txt --vocab-size 1024 --out runs/demo/tokenizer.json
    minillm tokenizer encode --tokenizer runs/demo/tokenizer.json "Hello world"
    minillm tokenizer decode --tokenizer runs/demo/tokenizer.json 15496 995
    minillm tokenizer show --tokenizer runs/demo/tokenizer.json --demo
    minillm tokenizer stats --tokenizer runs/demo/tokenizer.json corpus.txt more.txt
    minillm tokenizer export --tokenizer runs/demo/tokenizer.json --format hf --out runs/demo/hf/tokenizer.json

--tokenizer takes our tokenizer.json, a directory holding one (a run or a checkpoint), or
a directory with GPT-2's vocab.json + merges.txt. It defaults to runs/default/tokenizer.json.
An existing --out file is replaced only with --force.
`show --demo` prints the lecture's examples of what tokens do to spelling, numbers, other
languages and code. minillm/cli.py calls add_arguments(parser) and run(args) below.

Read next: the next stage, minillm/nn/ (the transformer that reads these ids).
"""
import os
import sys
import time
from pathlib import Path

from minillm.common import UserError, atomic_write, positive_int, prepare_file, runs_dir
from minillm.tokenizer.bpe import Tokenizer
from minillm.tokenizer.interop import load_gpt2, save_hf, save_tiktoken
from minillm.tokenizer.train import iter_documents, train_tokenizer

DEMO = [
    ("How many r's are in strawberry?",
     "Spelling: the model sees a few tokens, not ten letters, so counting r's means knowing "
     "what is inside each token."),
    ("Which is bigger, 9.11 or 9.9?",
     "Numbers: '9.11' and '9.9' are split into pieces that say nothing about decimal places."),
    ("12345678901234567890 * 3 = 37037036703703703670",
     "Long numbers: GPT-4's pattern cuts digits into runs of at most 3, left to right, so "
     "carries cross token boundaries."),
    ("Les tokenizers découpent le texte. これは日本語の文です。 Привет, мир!",
     "Other languages: text unlike the training data costs more tokens per character "
     "(<xx> marks a token that is only part of a UTF-8 character)."),
    ("def add(a, b):\n    return a + b  # four spaces\n",
     "Code: indentation and symbols become tokens too; runs of spaces merge if the training "
     "text had them."),
    ("<|assistant_start|>",
     "Special tokens: typed text is plain text (several tokens); only the chat renderer, "
     "which allows it, gets the single control token shown last."),
]
_BACKGROUNDS = [153, 186, 217, 223, 194, 189, 230, 152, 181, 158]   # 256-colour pastels


def default_tokenizer_path():
    return runs_dir() / "default" / "tokenizer.json"


def load_any(path):
    """Our tokenizer.json, a directory with one, or a directory with GPT-2's vocab.json + merges.txt."""
    path = Path(path)
    if path.is_dir():
        if (path / "tokenizer.json").is_file():
            return Tokenizer.load(path / "tokenizer.json")
        if (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
            return load_gpt2(path / "vocab.json", path / "merges.txt")
        raise UserError(f"{path} has neither tokenizer.json nor vocab.json + merges.txt")
    if not path.exists():
        raise UserError(f"tokenizer not found: {path}; train one with `minillm tokenizer train "
                        f"--input FILES --vocab-size N --out {path}`")
    return Tokenizer.load(path)


def add_arguments(parser):
    sub = parser.add_subparsers(dest="action", required=True, metavar="action")
    p = sub.add_parser("train", help="learn merges from text files")
    p.add_argument("--input", nargs="+", required=True, metavar="FILE",
                   help="text files (UTF-8), .jsonl/.jsonl.gz with a \"text\" field, or directories of them")
    p.add_argument("--vocab-size", type=positive_int, required=True,
                   help="ids in all: 256 bytes + merges + 11 special tokens")
    p.add_argument("--out", type=Path, default=None, help="tokenizer.json to write (default runs/default/tokenizer.json)")
    p.add_argument("--pattern", default="gpt4", help="split pattern: gpt4 (default), gpt2, or a regex")
    p.add_argument("--python", action="store_true", help="use the pure-Python trainer (slow; for checking)")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    for name, help_ in (("encode", "text -> ids"), ("decode", "ids -> text"),
                        ("show", "text with coloured token boundaries and ids"),
                        ("stats", "bytes per token for files"), ("export", "write tiktoken / Hugging Face files")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--tokenizer", type=Path, default=None,
                       help="tokenizer.json, or a directory with it or GPT-2's vocab.json + merges.txt "
                            "(default runs/default/tokenizer.json)")
        if name in ("encode", "decode", "show"):
            p.add_argument("items", nargs="*", metavar="TEXT" if name != "decode" else "ID",
                           help="what to convert (else --input, else stdin)")
            p.add_argument("--input", type=Path, help="read from this file")
        if name in ("encode", "show"):
            p.add_argument("--allowed-special", default="", metavar="all|TOKEN,...",
                           help="special tokens to turn into control ids (default none: plain text)")
            p.add_argument("--strict", action="store_true", help="fail if the text contains special-token text")
        if name in ("encode", "decode"):
            p.add_argument("--out", type=Path, help="write the result here instead of stdout")
            p.add_argument("--force", action="store_true", help="replace an existing --out file")
        if name == "show":
            p.add_argument("--demo", action="store_true", help="the lecture's examples: spelling, numbers, languages, code")
            p.add_argument("--no-color", action="store_true", help="brackets instead of ANSI colours (also NO_COLOR=1)")
        if name == "stats":
            p.add_argument("files", nargs="+", type=Path, help="text files")
        if name == "export":
            p.add_argument("--format", choices=["hf", "tiktoken"], required=True)
            p.add_argument("--out", type=Path, required=True, help="file to write")
            p.add_argument("--force", action="store_true", help="replace an existing --out file")


def run(args):
    return {"train": run_train, "encode": run_encode, "decode": run_decode, "show": run_show,
            "stats": run_stats, "export": run_export}[args.action](args)


def _expand_inputs(items):
    paths = []
    for item in map(Path, items):
        if item.is_dir():
            paths += sorted(p for p in item.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif item.is_file():
            paths.append(item)
        else:
            raise UserError(f"input not found: {item}")
    if not paths:
        raise UserError("no input files found")
    return paths


def run_train(args):
    out = args.out or default_tokenizer_path()
    files = _expand_inputs(args.input)
    if all(f.stat().st_size == 0 for f in files):
        raise UserError(f"--input {' '.join(map(str, args.input))} is empty: no text to learn merges from")
    prepare_file(out, force=args.force, inputs=[("--input", f) for f in files])
    t0 = time.perf_counter()
    tok = train_tokenizer(files, args.vocab_size, args.pattern, progress=True, use_c=False if args.python else None)
    seconds = time.perf_counter() - t0
    tok.save(out)
    s = tok.training
    print(f"trained on {len(files)} file(s), {s['bytes'] / 1e6:.1f} MB, {s['distinct_chunks']:,} distinct "
          f"chunks: {s['merges']:,} merges in {seconds:.2f} s ({s['trainer']} trainer)")
    if s["merges"] < s["merges_requested"]:
        print(f"note: the text ran out of pairs after {s['merges']} of {s['merges_requested']} merges")
    print(f"vocab size {tok.vocab_size} (256 bytes + {len(tok.merges)} merges + {len(tok.special_tokens)} special)")
    print(f"wrote {out}")


def _read_items(args, what):
    if args.items:
        return " ".join(args.items)
    if args.input:
        try:
            return args.input.read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            raise UserError(f"cannot read {args.input}: {e.strerror}") from None
    if sys.stdin.isatty():
        raise UserError(f"give the {what} as arguments, with --input FILE, or on stdin")
    return sys.stdin.read()


def _special_args(args):
    allowed = args.allowed_special.strip()
    allowed = "all" if allowed == "all" else [s for s in allowed.split(",") if s]
    return allowed, ("all" if args.strict else ())


def _emit(text, out, what):
    if out:   # checked by _check_out before the work
        atomic_write(out, text)
        print(f"wrote {what} to {out}")
    else:
        print(text)


def _tokenizer_files(path):
    """The files load_any reads for `path`, as (flag, path) pairs for prepare_file."""
    path = Path(path)
    names = ("tokenizer.json", "vocab.json", "merges.txt") if path.is_dir() else ()
    return [("--tokenizer", path)] + [("--tokenizer", path / n) for n in names]


def _check_out(args):
    if args.out:
        prepare_file(args.out, force=args.force, inputs=[("--input", args.input)] +
                     _tokenizer_files(args.tokenizer or default_tokenizer_path()))


def run_encode(args):
    tok = load_any(args.tokenizer or default_tokenizer_path())
    _check_out(args)
    allowed, disallowed = _special_args(args)
    try:
        ids = tok.encode(_read_items(args, "text"), allowed_special=allowed, disallowed_special=disallowed)
    except ValueError as e:
        raise UserError(str(e)) from None
    _emit(" ".join(map(str, ids)), args.out, f"{len(ids)} ids")


def run_decode(args):
    tok = load_any(args.tokenizer or default_tokenizer_path())
    _check_out(args)
    raw = _read_items(args, "ids").replace(",", " ").replace("[", " ").replace("]", " ").split()
    try:
        ids = [int(x) for x in raw]
        text = tok.decode(ids)
    except ValueError as e:
        raise UserError(f"cannot decode: {e}") from None
    _emit(text, args.out, f"{len(text)} characters")


def render(tok, ids, color=True):
    """Text with each token's extent marked (ANSI background colours, or [brackets])."""
    pieces = []
    for k, i in enumerate(ids):
        data = tok.token_bytes(i)
        try:
            shown = data.decode("utf-8")
        except UnicodeDecodeError:           # a token holding part of a character
            shown = "".join(f"<{b:02x}>" for b in data)
        shown = shown.replace("\t", "→").replace("\r", "␍").replace("\n", "↵\n")
        if color:
            bg = _BACKGROUNDS[k % len(_BACKGROUNDS)]
            lines = [f"\x1b[48;5;{bg}m\x1b[38;5;16m{part}\x1b[0m" if part else "" for part in shown.split("\n")]
            pieces.append("\n".join(lines))
        else:
            pieces.append(f"[{shown}]")
    return "".join(pieces)


def _show_one(tok, text, color, allowed=(), disallowed=()):
    try:
        ids = tok.encode(text, allowed_special=allowed, disallowed_special=disallowed)
    except ValueError as e:
        raise UserError(str(e)) from None
    n_bytes = len(text.encode("utf-8"))
    print(render(tok, ids, color))
    print(f"  {len(ids)} tokens, {len(text)} characters, {n_bytes / max(len(ids), 1):.2f} bytes/token")
    print(f"  ids: {ids}")


def run_show(args):
    tok = load_any(args.tokenizer or default_tokenizer_path())
    color = not args.no_color and not os.environ.get("NO_COLOR")
    allowed, disallowed = _special_args(args)
    print(f"{tok}")
    if args.demo:
        for text, lesson in DEMO:
            print(f"\n# {lesson}")
            _show_one(tok, text, color)
            if text in tok.special_tokens:
                _show_one(tok, text, color, allowed=[text])
        return
    _show_one(tok, _read_items(args, "text"), color, allowed, disallowed)


def run_stats(args):
    tok = load_any(args.tokenizer or default_tokenizer_path())
    files = _expand_inputs(args.files)
    print(f"{tok}")
    print(f"{'file':<40} {'bytes':>12} {'tokens':>12} {'bytes/token':>12}")
    total_bytes = total_tokens = 0
    for path in files:
        n_bytes = n_tokens = 0
        for text, _ in iter_documents(path):
            if text:
                n_bytes += len(text.encode("utf-8"))
                n_tokens += len(tok.encode_ordinary(text))
        total_bytes += n_bytes
        total_tokens += n_tokens
        print(f"{str(path)[-40:]:<40} {n_bytes:>12,} {n_tokens:>12,} {n_bytes / max(n_tokens, 1):>12.3f}")
    if len(files) > 1:
        print(f"{'total':<40} {total_bytes:>12,} {total_tokens:>12,} {total_bytes / max(total_tokens, 1):>12.3f}")


def run_export(args):
    tok = load_any(args.tokenizer or default_tokenizer_path())
    prepare_file(args.out, force=args.force, inputs=_tokenizer_files(args.tokenizer or default_tokenizer_path()))
    try:
        path = (save_hf if args.format == "hf" else save_tiktoken)(tok, args.out)
    except ValueError as e:
        raise UserError(str(e)) from None
    print(f"wrote {args.format} tokenizer to {path}")
