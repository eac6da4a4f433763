"""`minillm serve`: the web app on a run's checkpoints (chat, token view, playground, report card).

    minillm serve --run runs/default             # then open http://127.0.0.1:8000/
    minillm serve --run smoke --port 0           # a run under runs/ by name; any free port
    curl -N --json '{"messages": [{"role": "user", "content": "Who are you?"}]}' \\
        http://127.0.0.1:8000/api/chat           # the same API the page uses (server.py)

It listens on 127.0.0.1 only, unless --host says otherwise (with a warning: the app has
no login, so anyone who can reach the port can use it). Ctrl-C stops it.

Read next: server.py (the HTTP side and the API), api.py, models.py.
"""
import argparse
import sys
from pathlib import Path

from minillm import clib
from minillm.common import UserError, int_range, positive_int, runs_dir, thread_count
from minillm.web.api import App, Limits
from minillm.web.server import LOOPBACK, Server


EPILOG = """\
Open the address it prints (http://127.0.0.1:8000/) in a browser:
  Chat         talk to any checkpoint of the run (base, sft, rl, rlhf/...): the reply streams in,
               calculator and search calls show as they run; stop, regenerate, edit and resend,
               temperature, top-k, top-p
  Tokens       the conversation as the model sees it (special tokens, token boundaries, the loss
               mask), the run's training conversations, a box that tokenizes what you type
  Playground   the base model continues a text; hover a token for its probability
  Report card  the run's report.html and its plots
The page's JSON API works with curl too (minillm/web/server.py documents it):
  curl -N --json '{"messages": [{"role": "user", "content": "Who are you?"}]}' http://127.0.0.1:8000/api/chat
"""


def add_arguments(parser):
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    a = parser.add_argument
    a("--run", default="default", help="the speedrun's directory, or a run's name under runs/ (default: default)")
    a("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    a("--port", type=int_range(0, 65535, name="port (0..65535)"), default=8000,
      help="port (default 8000; 0 = any free port)")
    a("--max-generations", type=positive_int, default=Limits.generations,
      help=f"generations running at once; more get 429 (default {Limits.generations})")
    a("--max-tokens", type=positive_int, default=Limits.new_tokens,
      help=f"most new tokens one request may ask for (default {Limits.new_tokens}; never more than the context)")
    a("--threads", type=thread_count, help="kernel threads (default all cores)")
    a("--quiet", action="store_true", help="no line per generation on stderr")


def run(args):
    run_dir = Path(args.run) if Path(args.run).is_dir() else runs_dir() / args.run
    if not run_dir.is_dir():
        raise UserError(f"no run directory {run_dir}: run `minillm speedrun` first, or pass --run DIR")
    app = App.open(run_dir, Limits(new_tokens=args.max_tokens, generations=args.max_generations))
    if not app.models.infos:
        raise UserError(f"no checkpoints in {run_dir} (base/, sft/, ...): `minillm speedrun` trains them")
    if args.threads:
        clib.set_num_threads(args.threads)
    if args.host not in LOOPBACK:
        print(f"minillm serve: warning: --host {args.host} lets other machines reach this app; it has "
              "no login, so anyone who can reach the port can use it", file=sys.stderr)
    try:
        server = Server(app, args.host, args.port, quiet=args.quiet)
    except OSError as e:
        raise UserError(f"cannot listen on {args.host} port {args.port}: {e.strerror or e}; "
                        "choose another --port (0 = any free one)") from None
    names = ", ".join(app.models.infos)
    print(f"minillm serve: {server.url}  (run {run_dir}; models: {names}); Ctrl-C stops it", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nminillm serve: stopped", file=sys.stderr)
    finally:
        server.server_close()
