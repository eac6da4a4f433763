"""`minillm chat --ckpt DIR`: talk to a fine-tuned checkpoint in the terminal.

    minillm chat --ckpt runs/default/sft                    # type, Enter; /help for commands
    printf 'What is 17*23?\\n/quit\\n' | minillm chat --ckpt runs/default/sft --temperature 0

Every line typed becomes a user message. The conversation so far is rendered by
template.render_prompt (it ends with <|assistant_start|>) and the engine streams the reply
until <|assistant_end|>. When the assistant writes a tool call, the engine runs the tool
(the calculator of tools.py; search over the run's BM25 index, search.py) and pastes the
result into the sequence; the call and its result show inline as they happen:

    assistant> [calculator: 17*23 -> 391] It is 391.

/reset forgets the conversation, /temp X sets the sampling temperature, /quit (or the end
of the input) leaves; Ctrl-C stops a reply. When the conversation outgrows the context, render_prompt drops the
oldest exchanges and a line says so. Input is any text stream, so tests script it.

Read next: sft.py (how the checkpoint learned the format), minillm/generate/engine.py.
"""
import sys
from dataclasses import dataclass, field
from pathlib import Path

from minillm.chat.search import BM25Index
from minillm.chat.template import ConversationTooLong, chat_token_ids, parse, render_prompt
from minillm.chat.tools import calculator
from minillm.common import UserError
from minillm.generate.engine import Engine
from minillm.nn.gpt import num_params

# How a special token shows in the reply (tool spans as "[calculator: 17*23 -> 391]").
SHOWN = {"<|python_start|>": "[calculator: ", "<|search_start|>": "[search: ", "<|python_end|>": "",
         "<|search_end|>": "", "<|output_start|>": " -> ", "<|output_end|>": "] "}
SEARCH_SHOWN = 70               # characters of pasted search results shown inline
HELP = "/reset forgets the conversation, /temp X sets the temperature (0 = greedy), /quit leaves"
NO_SEARCH = "error: search is not available (no index)"


@dataclass
class Chat:
    """A conversation with one engine."""
    engine: Engine                  # the model, its tokenizer, the tools
    temperature: float = 0.6
    max_tokens: int = 256           # new tokens per reply (tool outputs included)
    seed: int = 0                   # reply n samples with seed + n: a scripted session replays
    system: str = None              # an optional system message, kept when history is dropped
    history: list = field(default_factory=list)   # the messages so far (system first, if any)
    replies: int = 0

    def reset(self):
        self.history = [{"role": "system", "content": self.system}] if self.system else []


def attach_tools(engine, search_tool):
    """The chat's tools on an engine: the calculator, and search_tool (None: a search call
    gets NO_SEARCH). `minillm chat` and the web app (web/models.py) both use it."""
    engine.register_tool("python", calculator)
    engine.register_tool("search", search_tool or (lambda query: NO_SEARCH))


def open_chat(ckpt, index=None, **settings):
    """(Chat, note about search) for a checkpoint. Search uses `index`, else the run's
    <ckpt>/../chat/search.npz when it exists; without one the tool answers NO_SEARCH."""
    engine = Engine.from_checkpoint(ckpt)
    chat_token_ids(engine.tokenizer)                     # no chat special tokens: a UserError
    path = Path(index) if index else Path(ckpt).parent / "chat" / "search.npz"
    if index or path.exists():
        attach_tools(engine, BM25Index.load(path).search_tool)
        note = f"search: {path}"
    else:
        attach_tools(engine, None)
        note = (f"search: off (no index at {path}; build it with "
                f"`minillm chat search --build --run {Path(ckpt).parent}`)")
    chat = Chat(engine, **settings)
    chat.reset()
    return chat, note


def run_chat(chat, inp=sys.stdin, out=sys.stdout):
    """Read lines from inp until /quit or its end, answering each in out."""
    echo = not inp.isatty()                     # scripted input: show it, so out reads as a dialogue
    while True:
        out.write("you> ")
        out.flush()
        line = inp.readline()
        if not line:
            out.write("\n")
            return
        text = line.rstrip("\n")
        if echo:
            out.write(text + "\n")
        if not text.strip():
            continue
        if text.startswith("/"):
            if command(chat, text.split(), out):
                return
            continue
        try:
            reply(chat, text, out)
        except KeyboardInterrupt:                # Ctrl-C stops the reply, not the chat
            if chat.history and chat.history[-1]["role"] == "user":
                chat.history.pop()               # the exchange never finished: forget it
            out.write("\n[stopped; the exchange is forgotten]\n")


def command(chat, words, out):
    """A /command; returns True for /quit."""
    name = words[0]
    if name in ("/quit", "/exit"):
        return True
    if name == "/reset":
        chat.reset()
        out.write("[conversation reset]\n")
    elif name == "/temp" and len(words) == 2 and _number(words[1]) is not None and _number(words[1]) >= 0:
        chat.temperature = _number(words[1])
        out.write(f"[temperature {chat.temperature:g}]\n")
    elif name == "/temp":
        out.write(f"[/temp takes a number >= 0 (now {chat.temperature:g})]\n")
    else:
        out.write(f"[{HELP}]\n")
    return False


def reply(chat, text, out):
    """Add the user's message, stream the assistant's reply into out, add it to the history."""
    engine, tok = chat.engine, chat.engine.tokenizer
    sp = chat_token_ids(tok)
    chat.history.append({"role": "user", "content": text})
    S = engine.config.context_len
    budget = S - min(chat.max_tokens, S // 2)            # the engine's room for the reply
    try:
        ids = render_prompt(chat.history, tok, budget)
    except ConversationTooLong:
        chat.history.pop()
        out.write(f"[that message is too long for the context ({budget} tokens with the reply's "
                  "room); say it in fewer words]\n")
        return
    dropped = _forget_to_fit(chat, len(ids))
    if dropped:
        out.write(f"[the context is full ({S} tokens): forgot the oldest {dropped} exchange(s)]\n")
    out.write("assistant> ")
    stream = engine.stream(ids, temperature=chat.temperature, max_tokens=chat.max_tokens,
                           seed=chat.seed + chat.replies, truncate=False,
                           stop=[sp["<|assistant_end|>"], sp["<|user_start|>"], sp["<|bos|>"]])
    show(stream, tok, out)
    chat.replies += 1
    c = stream.completion
    out.write("\n")
    if c.finish_reason == "context":
        out.write("[the context is full: the reply was cut; /reset starts a new conversation]\n")
    elif c.finish_reason == "length":
        out.write(f"[the reply was cut at {chat.max_tokens} tokens]\n")
    chat.history.append(_assistant_message(ids, c.tokens, tok))


def show(stream, tok, out):
    """Write the reply as it streams, a tool call as [calculator: 17*23 -> 391]; a search's
    pasted passages are cut to SEARCH_SHOWN characters."""
    names = {i: s for s, i in tok.special_tokens.items() if s in SHOWN}
    tokens, seen, tool, pasted = stream.completion.tokens, 0, None, None
    for piece in stream:
        new, seen = tokens[seen:], len(tokens)
        name = names.get(new[-1]) if new else None
        if name is None:
            if pasted is not None:
                pasted += piece                          # search results: shown at their end
            else:
                out.write(piece)
            out.flush()
            continue
        text = piece[:len(piece) - len(name)]            # the piece ends with the special's text
        if name in ("<|python_start|>", "<|search_start|>"):
            tool = name
        if name == "<|output_start|>" and tool == "<|search_start|>":
            pasted = ""
        if name == "<|output_end|>" and pasted is not None:
            text += pasted if len(pasted) <= SEARCH_SHOWN else pasted[:SEARCH_SHOWN] + "..."
            pasted, tool = None, None
        out.write(text.replace("\n", " ") + SHOWN[name])
        out.flush()


def _forget_to_fit(chat, n_ids):
    """render_prompt dropped the oldest exchanges to fit n_ids tokens: drop them from the
    history too, so what is shown is what the model sees. Returns how many."""
    tok, dropped = chat.engine.tokenizer, 0
    first = 1 if chat.history[0]["role"] == "system" else 0
    while len(render_prompt(chat.history, tok)) > n_ids:
        del chat.history[first:first + 2]                # one user message and its reply
        dropped += 1
    return dropped


def _assistant_message(prompt, tokens, tok):
    """The reply as a message of the history: parsed from the tokens (tool calls kept), or,
    if the model wrote something the format does not allow, its text."""
    sp = chat_token_ids(tok)
    body = list(tokens)
    if body and body[-1] in (sp["<|assistant_end|>"], sp["<|user_start|>"], sp["<|bos|>"]):
        body.pop()
    try:
        return parse(list(prompt) + body + [sp["<|assistant_end|>"]], tok)[-1]
    except ValueError:
        specials = set(tok.special_tokens.values())
        return {"role": "assistant", "content": tok.decode([t for t in body if t not in specials])}


def _number(text):
    try:
        return float(text)
    except ValueError:
        return None


def banner(chat, ckpt, note):
    m = chat.engine.config
    return (f"minillm chat: {ckpt} ({num_params(m) / 1e6:.2f}M parameters, context {m.context_len} "
            f"tokens); tools: calculator, {note}\n{HELP}\n")


def check_settings(temperature, max_tokens):
    if temperature < 0 or max_tokens < 1:
        raise UserError("--temperature must be >= 0 and --max-tokens >= 1")
