"""A generation as a stream of events: each token as the engine makes it, with its text,
its probability and, for a chat reply, the part it belongs to.

api.py checks a request and makes a Job (the model, the prompt's ids, the sampling
settings); Job.events() runs it and yields dicts that server.py sends as server-sent events:

    {"type": "start", ...}                              the prompt, the seed, what was dropped
    {"type": "token", "id", "token", "text", "p", ...}  one per token, forced ones included
    {"type": "part", "part": "python"}                  a chat reply's next part begins
    {"type": "done", "finish_reason", ...}              the reply as a message, or the text

The text comes from decoding the tokens here, one at a time (a character split across tokens
appears with its last byte), so every event's text belongs to exactly one token. Closing the
generator (the client went away) stops the generation at the next token.

Read next: server.py (the events on the wire), minillm/generate/engine.py (Engine.stream).
"""
import codecs
import math
import time
from dataclasses import dataclass

import numpy as np

from minillm.chat.render import token_strings
from minillm.chat.template import CALLS, OUTPUT, normalize, validate


@dataclass
class Job:
    """A checked generation, ready to run (Job.events)."""
    app: object                     # the App (its log gets the record)
    endpoint: str                   # "chat" or "complete"
    info: object                    # the ModelInfo (its lock: one generation per model)
    engine: object                  # the model's Engine
    ids: list                       # the prompt's token ids
    sampling: dict                  # temperature, top_k, top_p, max_tokens, seed
    stop: list                      # token ids that end it
    start: dict                     # the first event
    stream: bool = True             # False: one JSON answer at the end
    top: int = 0                    # alternatives per token (completion)
    record: dict = None             # how it went, once it ended (also appended to App.log)

    def events(self):
        return _events(self)


def token_list(ids, tok, mask=None):
    """[{"id", "token" (as the token view shows it), "special"(, "mask")}] for token ids."""
    specials = set(tok.special_tokens.values())
    out = [{"id": i, "token": s, "special": i in specials} for i, s in zip(ids, token_strings(ids, tok))]
    for t, m in zip(out, mask or ()):
        t["mask"] = m
    return out


def _events(job):
    """Run the job on its model (one generation at a time per model); yield its events."""
    t0, end, c = time.time(), "error", None
    try:
        with job.info.lock:
            yield job.start
            stream = job.engine.stream(job.ids, truncate=False, keep_logits=job.top > 0,
                                       stop=job.stop, **job.sampling)
            c = stream.completion
            reply = _Reply(job.engine.tokenizer, job.endpoint == "chat")
            seen = 0
            for _ in _advances(stream):
                for k in range(seen, len(c.tokens)):
                    yield from reply.add(c, k, job.top)
                seen = len(c.tokens)
            seconds = time.time() - t0
            done = {"type": "done", "finish_reason": c.finish_reason, "tokens": len(c.tokens),
                    "seconds": round(seconds, 3), "tokens_per_second": round(len(c.tokens) / max(seconds, 1e-9), 1),
                    "tool_calls": c.tool_calls}
            done.update(reply.result())
            end = c.finish_reason
            yield done
    except GeneratorExit:                    # the client went away: the generation stops here
        end = "stopped by the client"
        raise
    except Exception as e:                   # a bug or a broken model: the client hears it, in one line
        yield {"type": "error", "error": f"{type(e).__name__}: {e}"}
    finally:
        job.record = {"endpoint": job.endpoint, "model": job.info.name, "end": end,
                      "tokens": len(c.tokens) if c else 0, "seconds": round(time.time() - t0, 3)}
        job.app.log.append(job.record)


def _advances(stream):
    """Drive the stream: yield once every time it produced text, and once at its end
    (the stop token and a split character's last bytes come without a text piece)."""
    for _ in stream:
        yield
    yield


class _Reply:
    """Turns a completion's tokens into token events and, for a chat, the reply's parts:
    text, a calculator or search call, the tool's output (forced by the engine)."""

    def __init__(self, tok, chat):
        self.tok, self.chat = tok, chat
        self.names = {i: s for s, i in tok.special_tokens.items()}
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.parts = [{"type": "text", "text": ""}]
        self.text = ""
        self.call = None                     # "python" or "search" inside a call span

    def add(self, c, k, top):
        """The events of token k of completion c."""
        token, forced = c.tokens[k], c.forced[k]
        name = self.names.get(token)
        text = "" if name else self.decoder.decode(self.tok.decode_bytes([token]))
        if name:
            text = self.decoder.decode(b"", final=True)    # a character cut by a special token
        self.parts[-1]["text"] += text
        self.text += text
        lp = c.logprobs[k]
        event = {"type": "token", "id": token, "token": token_strings([token], self.tok)[0], "text": text,
                 "p": None if lp is None else round(math.exp(lp), 5), "forced": forced,
                 "special": name is not None}
        if top:
            event["top"] = _alternatives(c.logits[k], top, self.tok)
            c.logits[k] = None                               # (V,) each: not kept longer than needed
        yield event
        part = self._part_after(name, forced) if self.chat else None
        if part:
            self.parts.append({"type": part, "text": ""})
            yield {"type": "part", "part": part}

    def _part_after(self, name, forced):
        """The part a special token opens (or None). A call span opens when the model
        writes its start token; a tool output only when the engine forced it."""
        if name is None:
            return None
        for kind, (start, end) in CALLS.items():
            if name == start and self.call is None:
                self.call = kind
                return kind
            if name == end and self.call == kind:
                self.call = None
        if forced and name == OUTPUT[0]:
            return "output"
        if forced and name == OUTPUT[1]:
            return "text"
        return None

    def result(self):
        """The done event's fields: the reply as a message (chat) or the text (completion)."""
        tail = self.decoder.decode(b"", final=True)
        self.parts[-1]["text"] += tail
        self.text += tail
        if not self.chat:
            return {"text": self.text}
        message = normalize([{"role": "assistant", "content": self.parts}])[0]
        try:
            validate([{"role": "user", "content": ""}, message])
        except ValueError:                   # the model broke the format: keep its text
            message = {"role": "assistant", "content": self.text}
        return {"message": message}


def _alternatives(logits, top, tok):
    """The `top` most likely next tokens under the model (temperature 1): [[token, p], ...]."""
    z = logits.astype(np.float64)                                      # (V,)
    p = np.exp(z - z.max())                                            # (V,)
    p /= p.sum()
    best = np.argpartition(-p, top - 1)[:top]                          # (top,) unordered
    best = best[np.argsort(-p[best], kind="stable")]                   # (top,) most likely first
    return [[s, round(float(p[i]), 5)] for i, s in zip(best, token_strings(best.tolist(), tok))]
