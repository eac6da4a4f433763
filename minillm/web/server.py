"""`minillm serve --run runs/default`: the web app over Python's own http.server, and its JSON API.

One page (static/index.html, app.js, style.css, shipped in the package) and a JSON API it
uses, which curl can use too. A body is a JSON object sent as Content-Type:
application/json (`curl --json '{...}' URL`). An answer is JSON or, for a generation, a
stream of server-sent events (one `data: {...}` line each; `curl -N` shows them arrive).
A refused request is {"error": "one-line reason"} with a 4xx status.

  GET  /api/models    {"run", "models": [{"name", "stage", "params", "context_len", "step"}],
                       "chat_default", "complete_default", "examples": N, "limits", "running"}
  POST /api/chat      {"messages": [{"role": "user", "content": "What is 17*23?"}], "model": "sft",
                       "temperature": 0.6, "top_k": 0, "top_p": 1, "max_tokens": 256, "seed": 1,
                       "stream": true}     (all but messages optional; the last message is the user's)
      events  {"type": "start", "model", "seed", "prompt_tokens", "dropped", "max_tokens"}
              {"type": "token", "id", "token", "text", "p", "forced", "special"}   one per token:
                  "token" as the token view shows it, "text" what it adds to the reply, "p" its
                  probability under the model (null when the engine forced it: tool output)
              {"type": "part", "part": "python" | "search" | "output" | "text"}   the reply's next
                  part: a calculator call, a search query, the tool's answer, text again
              {"type": "done", "finish_reason", "message", "tool_calls", "tokens", "seconds",
               "tokens_per_second"}   message: the reply as the chat format stores it
              {"type": "error", "error"}
      "dropped": oldest exchanges left out to fit the context. "stream": false answers one
      JSON object instead: the start and done events' fields.
  POST /api/complete  {"prompt": "Once upon a time", "model": "base", "top": 5, + the sampling
                       fields above}: the same events without parts; the start event has the
                       prompt's tokens, each token event "top": [[token, p], ...] (the model's
                       most likely tokens there), the done event "text"
  POST /api/tokenize  {"text": "..."} | {"messages": [...]} | {"example": N}, and optional "model"
                       -> {"model", "count", "tokens": [{"id", "token", "special", "mask"}]}
                       (a conversation: "mask" 1 = trained on, "supervised"; an example, one of
                       the run's SFT conversations: "messages", "kind")
  GET  /api/report    {"report": "/report" or null, "plots": ["/report/loss.png", ...]}
  GET  /  /app.js  /style.css  /report  /report/<plot>.png     the page and the report card

Safety: it listens on 127.0.0.1 and, there, answers only requests addressed to it by that
name (Host header: no DNS rebinding); files come from a fixed table (no path is ever joined
from a URL); bodies, texts, conversations, max_tokens and generations running at once are
bounded (api.Limits); the page sets every text with textContent and a Content-Security-Policy
allows no inline script. A client that disconnects stops its generation at the next token.

Read next: api.py (each endpoint), events.py, models.py, static/app.js (the page); cli.py (the flags).
"""
import json
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from minillm.web import api
from minillm.web.api import ApiError

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC = {"/": ("index.html", "text/html; charset=utf-8"),          # URL -> (file, type): the only
          "/app.js": ("app.js", "text/javascript; charset=utf-8"),   # files of the package served
          "/style.css": ("style.css", "text/css; charset=utf-8")}
PAGE_CSP = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'none'")
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; sandbox"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
DRAIN_BYTES = 4 << 20           # an over-long body is read and dropped up to this, so the 413 arrives


class Server(ThreadingHTTPServer):
    """The HTTP server: a thread per request, the App (run, models, limits) shared."""
    daemon_threads = True

    def __init__(self, app, host="127.0.0.1", port=8000, quiet=False):
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), Handler)
        self.app, self.quiet = app, quiet
        port = self.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}/"
        # On a loopback address a request must name it: a web page on another site that
        # points its own domain at 127.0.0.1 (DNS rebinding) sends its own Host, and is refused.
        self.allowed_hosts = ({f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}
                              if host in LOOPBACK else None)

    def note(self, line):
        if not self.quiet:
            print(line, file=sys.stderr, flush=True)


class Handler(BaseHTTPRequestHandler):
    server_version = "minillm"
    timeout = 60                # seconds a silent client may hold its connection

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_other(self):
        """PUT, DELETE, PATCH, OPTIONS (no CORS preflight is answered): 405 or 404."""
        self._handle(self.command)

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_other

    def log_message(self, format, *args):       # noqa: A002 (the base class's name)
        """No access log: the server prints a line per generation (Server.note) instead."""

    def _handle(self, method):
        path = urlsplit(self.path).path
        try:
            try:
                self._route(method, path)
            except ApiError as e:
                self._json(e.status, {"error": e.reason})
            except (BrokenPipeError, ConnectionResetError, socket.timeout):
                raise
            except Exception as e:                               # our bug: say so, in one line
                self.server.note(f"minillm serve: {method} {path} failed: {type(e).__name__}: {e}")
                self._json(500, {"error": f"internal error: {type(e).__name__}: {e}"})
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True                         # the client left

    def _route(self, method, path):
        self._check_host()
        route = ROUTES.get((method, path))
        if route is not None:
            route(self)
        elif method == "GET" and (path in STATIC or path == "/report" or path.startswith("/report/")):
            self._file(path)
        elif any(p == path for _, p in ROUTES) or path in STATIC:
            allowed = sorted(m for m, p in ROUTES if p == path) or ["GET"]
            raise ApiError(405, f"{path} takes {' or '.join(allowed)}, not {method}")
        else:
            raise ApiError(404, f"no such page or endpoint: {path} (the API: /api/models, "
                                "/api/chat, /api/complete, /api/tokenize, /api/report)")

    def _check_host(self):
        allowed, host = self.server.allowed_hosts, self.headers.get("Host", "")
        if allowed is not None and host.lower() not in allowed:
            raise ApiError(403, f"this server answers requests for {self.server.url}, not for "
                                f"Host {host!r}")

    # ---- requests and answers --------------------------------------------------------------

    def _body(self):
        """The request's JSON object, or an ApiError saying what is wrong with it."""
        limit = self.server.app.limits.body_bytes
        kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise ApiError(415, "send the body as JSON with Content-Type: application/json "
                                "(curl --json '{...}')")
        if self.headers.get("Transfer-Encoding"):
            raise ApiError(411, "send the body with a Content-Length, not chunked")
        try:
            size = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise ApiError(411, "a body needs a Content-Length header") from None
        if size < 0:
            raise ApiError(400, "Content-Length must not be negative")
        if size > limit:
            if size <= DRAIN_BYTES:
                self.rfile.read(size)            # read it anyway, so the client hears the 413
            self.close_connection = True
            raise ApiError(413, f"the body has {size:,} bytes; the most is {limit:,}")
        raw = self.rfile.read(size)
        try:
            body = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ApiError(400, "the body is not UTF-8 text") from None
        except json.JSONDecodeError as e:
            raise ApiError(400, f"bad JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
        except RecursionError:
            raise ApiError(400, "bad JSON: nested too deeply") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object: {...}")
        return body

    def _headers(self, status, kind, length=None, csp=PAGE_CSP):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", csp)
        self.end_headers()

    def _json(self, status, obj):
        data = json.dumps(obj).encode("utf-8")
        self._headers(status, "application/json; charset=utf-8", len(data))
        self.wfile.write(data)

    def _file(self, path):
        """A file from the fixed tables: the page's three, the report card and its plots."""
        run = self.server.app.run
        if path in STATIC:
            name, kind = STATIC[path]
            data, csp = (STATIC_DIR / name).read_bytes(), PAGE_CSP
        elif path == "/report":
            if not (run / "report.html").is_file():
                raise ApiError(404, f"no report card in {run}: `minillm report --run {run}` writes it")
            data, kind, csp = (run / "report.html").read_bytes(), "text/html; charset=utf-8", REPORT_CSP
        else:
            plot = api.report_plots(run).get(path[len("/report/"):])   # a listed name, or nothing
            if plot is None:
                raise ApiError(404, f"no such plot: {path}")
            data, kind, csp = plot.read_bytes(), "image/png", REPORT_CSP
        self._headers(200, kind, len(data), csp)
        self.wfile.write(data)

    def _generate(self, prepare):
        """Check the request (prepare), take a generation slot, stream or collect the events."""
        app = self.server.app
        job = prepare(app, self._body())
        with app.generation():
            events = job.events()
            if job.stream:
                self._headers(200, "text/event-stream; charset=utf-8")
                try:
                    for event in events:
                        self.wfile.write(b"data: " + json.dumps(event).encode("utf-8") + b"\n\n")
                except (OSError, socket.timeout):
                    pass                     # the client went away: closing `events` stops the model
                finally:
                    events.close()
            else:
                got = list(events)
                if got[-1]["type"] == "error":
                    raise ApiError(500, got[-1]["error"])
                self._json(200, {k: v for e in got if e["type"] in ("start", "done")
                                 for k, v in e.items() if k != "type"})
        record = job.record
        if record:
            self.server.note(f"{record['endpoint']} {record['model']}: {record['tokens']} tokens in "
                             f"{record['seconds']:.2f} s ({record['end']})")


def _models(handler):
    handler._json(200, api.models_info(handler.server.app))


def _report(handler):
    handler._json(200, api.report_info(handler.server.app))


def _tokenize(handler):
    handler._json(200, api.tokenize(handler.server.app, handler._body()))


def _chat(handler):
    handler._generate(api.prepare_chat)


def _complete(handler):
    handler._generate(api.prepare_complete)


# (method, path) -> what answers it: the whole API.
ROUTES = {("GET", "/api/models"): _models, ("GET", "/api/report"): _report,
          ("POST", "/api/tokenize"): _tokenize, ("POST", "/api/chat"): _chat,
          ("POST", "/api/complete"): _complete}
