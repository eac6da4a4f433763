"""The web app's endpoints as plain functions: a request's JSON in, a JSON answer or events out.

server.py parses HTTP and calls these; its docstring documents the API (what to send, what
comes back). Everything a request asks for is checked here first, so a bad request is one
ApiError(status, reason) before any work starts: an unknown field, a wrong type, a number
out of range (400), a text or conversation over the Limits (413), no free generation slot
(429). A conversation is checked by chat/template.py's validate, and every text is encoded
as plain text (encode_ordinary), so "<|assistant_end|>" typed by a user is ordinary
characters, as in `minillm chat`.

A generation is prepared here (prepare_chat, prepare_complete: the model, the prompt's
ids, the sampling settings, as a Job) and run by events.py, one event per token.

Read next: events.py (a generation as events), server.py (HTTP, the API's documentation),
models.py, static/app.js.
"""
import contextlib
import json
import secrets
import threading
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

from minillm.chat.template import ConversationTooLong, chat_token_ids, render, render_prompt, validate
from minillm.common import UserError
from minillm.web.events import Job, token_list
from minillm.web.models import Models


class ApiError(Exception):
    """A request the server will not run: an HTTP status and a one-line reason."""

    def __init__(self, status, reason):
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass
class Limits:
    """How much one request may ask for; more is a 4xx naming the limit."""
    body_bytes: int = 256 * 1024    # a request body (413)
    text_chars: int = 20_000        # one text: a message, a prompt, text to tokenize (413)
    messages: int = 200             # messages in one conversation (413)
    new_tokens: int = 512           # max_tokens of a generation (and at most the model's context)
    generations: int = 2            # generations running at once over all models (429)
    top: int = 20                   # alternatives shown per token of a completion


@dataclass
class App:
    """The web app's state: the run, its models, the limits, the running generations."""
    run: Path
    models: Models
    limits: Limits = field(default_factory=Limits)
    running: int = 0                # generations streaming now
    log: deque = field(default_factory=lambda: deque(maxlen=100))  # the last generations, newest last
    _examples: list = None          # lines of <run>/chat/conversations.jsonl, read once
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self):
        self._slots = threading.BoundedSemaphore(self.limits.generations)

    @classmethod
    def open(cls, run, limits=None):
        return cls(Path(run), Models(run), limits or Limits())

    @contextlib.contextmanager
    def generation(self):
        """Hold one of the generation slots; ApiError 429 when all are taken."""
        if not self._slots.acquire(blocking=False):
            raise ApiError(429, f"{self.limits.generations} generations are running (the most "
                                "at once); try again when one finishes")
        with self._lock:
            self.running += 1
        try:
            yield
        finally:
            with self._lock:
                self.running -= 1
            self._slots.release()

    def examples(self):
        """The run's SFT conversations, one JSON line each (unparsed), [] without the file."""
        with self._lock:
            if self._examples is None:
                path = self.run / "chat" / "conversations.jsonl"
                lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
                self._examples = [line for line in lines if line.strip()]
            return self._examples


# ---- checking a request ----------------------------------------------------------------

def _fields(body, allowed):
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(400, f"unknown field {unknown[0]!r} (this endpoint takes {', '.join(sorted(allowed))})")


def _number(body, key, default, low, high, integer=False):
    """body[key] (default when absent or null) as a number in [low, high]."""
    value = body.get(key)
    if value is None:
        return default
    kind = "an integer" if integer else "a number"
    # subtle: JSON's 1e999 is inf and NaN is nan: the range check alone refuses both (and
    # a 400-digit integer, which math.isfinite could not even convert)
    if (isinstance(value, bool) or not isinstance(value, int if integer else (int, float))
            or not low <= value <= high):
        raise ApiError(400, f"{key} must be {kind} from {low} to {high}, not {json.dumps(value)[:40]}")
    return value


def _text(app, value, what):
    if not isinstance(value, str):
        raise ApiError(400, f"{what} must be a string")
    if len(value) > app.limits.text_chars:
        raise ApiError(413, f"{what} has {len(value):,} characters; the most is {app.limits.text_chars:,}")
    return value


def _model(app, body, for_chat):
    """The ModelInfo the request names (or the default one)."""
    name = body.get("model") or app.models.default(for_chat)
    if not isinstance(name, str) or name not in app.models.infos:
        have = ", ".join(app.models.infos) or "none"
        raise ApiError(400, f"unknown model {json.dumps(name)} (this run has: {have})")
    return app.models.info(name)


def _messages(app, messages):
    """A conversation checked by the chat format's own rules and the size limits."""
    if isinstance(messages, list) and len(messages) > app.limits.messages:
        raise ApiError(413, f"{len(messages)} messages; the most is {app.limits.messages}")
    try:
        validate(messages)
    except ValueError as e:
        raise ApiError(400, f"messages: {e}") from None
    for n, m in enumerate(messages, 1):
        parts = [m["content"]] if isinstance(m["content"], str) else [p["text"] for p in m["content"]]
        for text in parts:
            _text(app, text, f"message {n}")
    return messages


def _sampling(app, body, info, temperature, max_tokens):
    """The engine's sampling settings from the request (defaults: the given ones)."""
    cap = min(app.limits.new_tokens, info.context_len)
    return {"temperature": _number(body, "temperature", temperature, 0, 2),
            "top_k": _number(body, "top_k", 0, 0, 100_000, integer=True),
            "top_p": _number(body, "top_p", 1.0, 0.01, 1),
            "max_tokens": _number(body, "max_tokens", min(max_tokens, cap), 1, cap, integer=True),
            "seed": _number(body, "seed", secrets.randbelow(2**31), 0, 2**31 - 1, integer=True)}


def _engine(app, info):
    try:
        return app.models.engine(info.name)
    except UserError as e:
        raise ApiError(500, f"cannot load {info.name}: {e}") from None


def _stream_flag(body):
    value = body.get("stream", True)
    if not isinstance(value, bool):
        raise ApiError(400, "stream must be true or false")
    return value


# ---- GET /api/models, GET /api/report, POST /api/tokenize ----------------------------------

def models_info(app):
    """GET /api/models: the run's checkpoints, the defaults, the limits, what else there is."""
    return {"run": app.run.name,
            "models": [m.public() for m in app.models.infos.values()],
            "chat_default": app.models.default(for_chat=True),
            "complete_default": app.models.default(for_chat=False),
            "examples": len(app.examples()),
            "limits": asdict(app.limits),
            "running": app.running}


def report_plots(run):
    """{file name: path} of the report card's pictures (<run>/report/*.png)."""
    return {p.name: p for p in sorted(Path(run, "report").glob("*.png")) if p.is_file()}


def report_info(app):
    """GET /api/report: where the report card and its plots are served."""
    page = app.run / "report.html"
    return {"run": app.run.name, "report": "/report" if page.is_file() else None,
            "plots": [f"/report/{name}" for name in report_plots(app.run)]}


def tokenize(app, body):
    """POST /api/tokenize: text, a conversation or a training example -> its tokens."""
    _fields(body, {"model", "text", "messages", "example"})
    given = [k for k in ("text", "messages", "example") if k in body]
    if len(given) != 1:
        raise ApiError(400, 'give exactly one of "text", "messages" or "example"')
    info = _model(app, body, for_chat=True)
    try:
        tok = app.models.tokenizer(info.name)
    except UserError as e:
        raise ApiError(500, f"cannot load {info.name}'s tokenizer: {e}") from None
    out = {"model": info.name}
    if "text" in body:
        ids, mask = tok.encode_ordinary(_text(app, body["text"], "text")), None
    else:
        if "messages" in body:
            messages = _messages(app, body["messages"])
        else:
            lines = app.examples()
            if not lines:
                raise ApiError(400, f"this run has no training conversations ({app.run}/chat/conversations.jsonl)")
            n = _number(body, "example", 0, 0, len(lines) - 1, integer=True)
            record = json.loads(lines[n])
            messages = record["messages"] if isinstance(record, dict) else record
            out.update(example=n, kind=record.get("kind") if isinstance(record, dict) else None,
                       messages=messages)
        try:
            chat_token_ids(tok)
            ids, mask = render(messages, tok)
        except (ValueError, UserError) as e:
            raise ApiError(400, f"cannot render the conversation: {e}") from None
        ids, mask = ids.tolist(), mask.tolist()
        out["supervised"] = sum(mask)
    out["count"] = len(ids)
    out["tokens"] = token_list(ids, tok, mask)
    return out


# ---- generations: POST /api/chat, POST /api/complete ---------------------------------------

def prepare_chat(app, body):
    """POST /api/chat: the reply to a conversation that ends with a user message."""
    _fields(body, {"model", "messages", "temperature", "top_k", "top_p", "max_tokens", "seed", "stream"})
    if "messages" not in body:
        raise ApiError(400, 'give "messages": [{"role": "user", "content": "..."}, ...]')
    messages, info = _messages(app, body["messages"]), _model(app, body, for_chat=True)
    if messages[-1]["role"] != "user":
        raise ApiError(400, "the conversation must end with a user message (the one to answer)")
    sampling = _sampling(app, body, info, 0.6, 256)
    engine = _engine(app, info)
    tok = engine.tokenizer
    try:
        sp = chat_token_ids(tok)
    except UserError as e:
        raise ApiError(400, f"{info.name} cannot chat: {e}") from None
    S = info.context_len
    budget = S - min(sampling["max_tokens"], S // 2)      # the engine's room for the reply
    try:
        ids = render_prompt(messages, tok, budget)         # drops the oldest exchanges to fit
    except ConversationTooLong:
        raise ApiError(400, f"the last message does not fit in {info.name}'s context ({S} tokens, "
                            f"{S - budget} of them kept for the reply): say it in fewer words") from None
    users = sum(m["role"] == "user" for m in messages)
    dropped = users - ids.count(sp["<|user_start|>"])
    start = {"type": "start", "model": info.name, "seed": sampling["seed"], "prompt_tokens": len(ids),
             "dropped": dropped, "max_tokens": sampling["max_tokens"]}
    stop = [sp["<|assistant_end|>"], sp["<|user_start|>"], sp["<|bos|>"]]
    return Job(app, "chat", info, engine, ids, sampling, stop, start, _stream_flag(body))


def prepare_complete(app, body):
    """POST /api/complete: a continuation of a text prompt (the base model's playground)."""
    _fields(body, {"model", "prompt", "temperature", "top_k", "top_p", "max_tokens", "seed", "stream", "top"})
    info = _model(app, body, for_chat=False)
    prompt = _text(app, body.get("prompt", ""), "prompt")
    sampling = _sampling(app, body, info, 0.8, 100)
    top = _number(body, "top", 5, 0, app.limits.top, integer=True)
    engine = _engine(app, info)
    ids = engine.encode_prompt(prompt)                     # plain text, <|bos|> first
    try:
        engine.fit_prompt(ids, sampling["max_tokens"], truncate=False)
    except ValueError as e:
        raise ApiError(400, f"prompt too long for {info.name}: {e}") from None
    tok = engine.tokenizer
    start = {"type": "start", "model": info.name, "seed": sampling["seed"], "prompt_tokens": len(ids),
             "prompt": token_list(ids, tok), "max_tokens": sampling["max_tokens"]}
    stop = [engine.bos_id] if engine.bos_id is not None else []
    return Job(app, "complete", info, engine, ids, sampling, stop, start, _stream_flag(body), top)
