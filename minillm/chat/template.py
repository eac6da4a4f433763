"""The chat format: a conversation <-> token ids, plus the mask of what the assistant learns.

A conversation is a list of messages {"role": "system" | "user" | "assistant", "content": ...}.
System and user content is a string. Assistant content is a string, or a list of parts
{"type": "text" | "python" | "search" | "output", "text": str}: "python" is a calculator
call, "search" a search query, "output" what the tool answered (right after its call).
The token layout (ordinary(s) = s encoded as plain text, never a special token):

    <|bos|>
    <|user_start|> ordinary(system + "\\n\\n" + user text) <|user_end|>   (system: first user only)
    <|assistant_start|> ordinary(text)
        <|python_start|> ordinary(expr) <|python_end|> <|output_start|> ordinary(out) <|output_end|>
        ordinary(text) <|assistant_end|>
    <|user_start|> ... and so on, alternating

mask[i] = 1 where the model must learn to write ids[i]: assistant text, the whole call spans
(<|python_start|> expr <|python_end|>, the same for search) and <|assistant_end|>. Everything
else is 0: <|bos|>, <|assistant_start|> (the prompt ends with it), system and user turns, and
tool outputs, <|output_start|> included, since the engine inserts them after a call ends.
A training step predicts ids[1:] from ids[:-1] with loss weights mask[1:].

    ids, mask = render([{"role": "user", "content": "17*23?"},
                        {"role": "assistant", "content": [
                            {"type": "python", "text": "17*23"}, {"type": "output", "text": "391"},
                            {"type": "text", "text": "It is 391."}]}], tokenizer)

Read next: render.py (`minillm chat render FILE.jsonl` shows ids and mask), tools.py, search.py.
"""
import gzip
import json
from pathlib import Path

import numpy as np

from minillm.common import UserError

ROLES = ("system", "user", "assistant")
CALLS = {"python": ("<|python_start|>", "<|python_end|>"),     # the model writes these spans
         "search": ("<|search_start|>", "<|search_end|>")}
OUTPUT = ("<|output_start|>", "<|output_end|>")                # the engine writes this one
PART_TYPES = ("text", "python", "search", "output")
SYSTEM_SEPARATOR = "\n\n"
CHAT_SPECIALS = ("<|bos|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>",
                 "<|assistant_end|>", *CALLS["python"], *CALLS["search"], *OUTPUT)

# The same format as a Jinja template, for Hugging Face (tokenizer_config.json's
# chat_template) and llama.cpp (GGUF's tokenizer.chat_template); hub/ exports it. Those
# tools render a string and then tokenize it with special tokens allowed, so for text that
# does not itself spell a special token it gives render()'s ids exactly (tests check this);
# only render() keeps a typed "<|user_end|>" plain text.
CHAT_TEMPLATE = (
    "{%- set ns = namespace(system='') -%}"
    "{{- '<|bos|>' -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}"
    "{%- set ns.system = message['content'] + '\\n\\n' -%}"
    "{%- elif message['role'] == 'user' -%}"
    "{{- '<|user_start|>' + ns.system + message['content'] + '<|user_end|>' -}}"
    "{%- set ns.system = '' -%}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{- '<|assistant_start|>' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{- part['text'] -}}"
    "{%- elif part['type'] == 'python' -%}{{- '<|python_start|>' + part['text'] + '<|python_end|>' -}}"
    "{%- elif part['type'] == 'search' -%}{{- '<|search_start|>' + part['text'] + '<|search_end|>' -}}"
    "{%- elif part['type'] == 'output' -%}{{- '<|output_start|>' + part['text'] + '<|output_end|>' -}}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{- '<|assistant_end|>' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant_start|>' -}}{%- endif -%}"
)


class ConversationTooLong(ValueError):
    """Not even one exchange (a user message and its reply) fits in max_len tokens."""


def chat_token_ids(tokenizer):
    """{special token name: id} for the chat format; a tokenizer without them is a UserError."""
    specials = tokenizer.special_tokens
    missing = [s for s in CHAT_SPECIALS if s not in specials]
    if missing:
        raise UserError(f"the tokenizer has no chat special tokens ({', '.join(missing)} missing); "
                        "chat needs a model trained with minillm's tokenizer, which adds them")
    return {s: specials[s] for s in CHAT_SPECIALS}


# ---- validation ------------------------------------------------------------------------

def validate(conversation, tokenizer=None, max_len=None):
    """Raise ValueError with a one-line reason if the conversation is malformed.

    Rules: messages are {"role", "content"} objects; an optional system message first, then
    user and assistant alternate, starting with user; an assistant's parts are
    {"type", "text"}, an "output" part directly follows a "python" or "search" part, and two
    text parts are never adjacent (join them). With a tokenizer and max_len, every exchange
    must fit in max_len tokens (truncation keeps whole exchanges, so a longer one could
    never be trained on).

    >>> validate([{"role": "assistant", "content": "hi"}])
    Traceback (most recent call last):
    ValueError: message 1 is assistant, but the conversation must start with user
    """
    if not isinstance(conversation, list) or not conversation:
        raise ValueError("a conversation must be a non-empty list of messages")
    for n, message in enumerate(conversation, 1):
        _check_message(message, n)
    roles = [m["role"] for m in conversation]
    first = 1 if roles[0] == "system" else 0
    if first == len(roles):
        raise ValueError("a system message must be followed by a user message")
    for n, role in enumerate(roles[first:], first + 1):
        expected = "user" if (n - first) % 2 == 1 else "assistant"
        if role != expected:
            where = "start with user" if n == first + 1 else f"alternate user, assistant (expected {expected})"
            raise ValueError(f"message {n} is {role}, but the conversation must {where}")
    if tokenizer is not None and max_len is not None:
        segments = _segments(conversation, tokenizer)
        for e, group in enumerate(_exchanges(conversation)):
            size = (e == 0) + sum(len(segments[k][0]) for k in group)
            if size > max_len:
                raise ValueError(f"exchange {e + 1} (messages {group[0] + 1}-{group[-1] + 1}) has "
                                 f"{size} tokens, more than max_len {max_len}")


def _check_message(message, n):
    if not isinstance(message, dict):
        raise ValueError(f"message {n} is not an object with role and content")
    role = message.get("role")
    if role not in ROLES:
        raise ValueError(f"message {n} has unknown role {role!r} (expected system, user or assistant)")
    extra = sorted(set(message) - {"role", "content"})
    if extra:
        raise ValueError(f"message {n} ({role}) has unknown key(s) {', '.join(map(repr, extra))}")
    if "content" not in message or message["content"] is None:
        raise ValueError(f"message {n} ({role}) has no content")
    content = message["content"]
    if isinstance(content, str):
        return
    if role != "assistant" or not isinstance(content, list):
        kind = "a string or a list of parts" if role == "assistant" else "a string"
        raise ValueError(f"message {n} ({role}) content must be {kind}, not {type(content).__name__}")
    previous = None
    for j, part in enumerate(content, 1):
        where = f"message {n} part {j}"
        if not isinstance(part, dict) or set(part) != {"type", "text"}:
            raise ValueError(f'{where} must be {{"type": ..., "text": ...}} and nothing else')
        kind = part["type"]
        if kind not in PART_TYPES:
            raise ValueError(f"{where} has unknown type {kind!r} (expected {', '.join(PART_TYPES)})")
        if not isinstance(part["text"], str):
            raise ValueError(f"{where} ({kind}) text must be a string")
        if kind == "output" and previous not in CALLS:
            raise ValueError(f"{where}: a tool output must directly follow a python or search call")
        if kind == "text" and previous == "text":
            raise ValueError(f"{where}: two text parts in a row (join them into one)")
        previous = kind


def normalize(conversation):
    """The canonical form parse() returns: assistant content is a string when it has no tool
    parts, else a list without empty text parts. Same tokens as the input."""
    out = []
    for m in conversation:
        content = m["content"]
        if m["role"] == "assistant" and isinstance(content, list):
            content = [dict(p) for p in content if p["type"] != "text" or p["text"]]
            if all(p["type"] == "text" for p in content):
                content = "".join(p["text"] for p in content)
        out.append({"role": m["role"], "content": content})
    return out


# ---- conversation -> ids ---------------------------------------------------------------

def _segments(conversation, tokenizer):
    """One (ids, mask) pair of lists per message. A system message's text is encoded with
    the first user message's (one plain-text piece, as the Jinja template gives), so the
    system message's own pair is empty."""
    sp = chat_token_ids(tokenizer)
    plain = tokenizer.encode_ordinary                  # special-token text stays plain text
    segments, system = [], ""
    for m in conversation:
        role, content = m["role"], m["content"]
        if role == "system":
            system = content + SYSTEM_SEPARATOR
            segments.append(([], []))
            continue
        if role == "user":
            ids = [sp["<|user_start|>"], *plain(system + content), sp["<|user_end|>"]]
            system = ""
            segments.append((ids, [0] * len(ids)))
            continue
        # exercise: chat_mask
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        ids, mask = [sp["<|assistant_start|>"]], [0]
        for part in parts:
            if part["type"] == "text":
                piece, learn = plain(part["text"]), 1
            else:
                start, end = CALLS.get(part["type"], OUTPUT)
                piece = [sp[start], *plain(part["text"]), sp[end]]
                learn = int(part["type"] in CALLS)      # outputs come from the tool: mask 0
            ids += piece
            mask += [learn] * len(piece)
        ids.append(sp["<|assistant_end|>"])
        mask.append(1)
        segments.append((ids, mask))
        # end exercise
    return segments


def _exchanges(conversation):
    """Message indices grouped by exchange: [system,] user[, assistant] -> [[0, 1, 2], [3, 4], ...]."""
    groups = []
    for k, m in enumerate(conversation):
        if m["role"] == "user" and (k == 0 or conversation[k - 1]["role"] != "system"):
            groups.append([])
        if not groups:                                   # the system message opens the first
            groups.append([])
        groups[-1].append(k)
    return groups


def render(conversation, tokenizer, max_len=None):
    """conversation -> (ids int32 (T,), mask uint8 (T,)); see the module docstring.

    max_len: keep the longest run of whole exchanges from the start that fits (a later
    exchange is dropped with everything after it, never cut); ConversationTooLong if not
    even the first exchange fits. ValueError for a malformed conversation.
    """
    validate(conversation)
    bos = chat_token_ids(tokenizer)["<|bos|>"]
    segments = _segments(conversation, tokenizer)
    ids, mask = [bos], [0]
    for e, group in enumerate(_exchanges(conversation)):
        e_ids = [t for k in group for t in segments[k][0]]
        if max_len is not None and len(ids) + len(e_ids) > max_len:
            if e == 0:
                raise ConversationTooLong(f"the first exchange has {1 + len(e_ids)} tokens, "
                                          f"more than max_len {max_len}")
            break
        ids += e_ids
        mask += [b for k in group for b in segments[k][1]]
    return np.array(ids, dtype=np.int32), np.array(mask, dtype=np.uint8)


def render_prompt(conversation, tokenizer, max_len=None):
    """A conversation ending with a user message -> ids (a list) ending with
    <|assistant_start|>, for the engine to write the reply.

    max_len: drop the OLDEST exchanges (a system message stays, on the first kept user
    message) until the prompt fits; ConversationTooLong if the last exchange alone does not.
    """
    validate(conversation)
    if conversation[-1]["role"] != "user":
        raise ValueError("a prompt must end with a user message")
    start = chat_token_ids(tokenizer)["<|assistant_start|>"]
    system = [m for m in conversation if m["role"] == "system"]
    groups = _exchanges(conversation)
    for e in range(len(groups)):
        kept = system + [conversation[k] for g in groups[e:] for k in g if conversation[k]["role"] != "system"]
        ids = render(kept, tokenizer)[0].tolist() + [start]
        if max_len is None or len(ids) <= max_len:
            return ids
    raise ConversationTooLong(f"the last message alone needs {len(ids)} tokens, more than max_len {max_len}")


# ---- ids -> conversation ---------------------------------------------------------------

def parse(ids, tokenizer, partial=False):
    """Token ids -> the conversation (in normalize()'s form); the inverse of render().

    parse(render(c)[0]) == normalize(c) when c has no system message; a system message
    comes back inside the first user message ("system\\n\\nuser": the format has no system
    token), which renders to the same ids. partial=True accepts a last assistant turn
    without <|assistant_end|> (generation stopped early). ValueError names the bad token.
    """
    sp = chat_token_ids(tokenizer)
    ids = [int(t) for t in ids]
    specials = set(tokenizer.special_tokens.values())
    names = {i: s for s, i in tokenizer.special_tokens.items()}
    ends = {sp[a]: (kind, sp[b]) for kind, (a, b) in {**CALLS, "output": OUTPUT}.items()}

    def next_special(i):
        while i < len(ids) and ids[i] not in specials:
            i += 1
        return i

    def expect(i, token):
        if i == len(ids):
            raise ValueError(f"the ids end before {token}")
        if ids[i] != sp[token]:
            raise ValueError(f"token {i}: expected {token}, got {names.get(ids[i], ids[i])}")

    if not ids or ids[0] != sp["<|bos|>"]:
        raise ValueError("token 0: a conversation starts with <|bos|>")
    conversation, i = [], 1
    while i < len(ids):
        if ids[i] == sp["<|user_start|>"]:
            j = next_special(i + 1)
            expect(j, "<|user_end|>")
            conversation.append({"role": "user", "content": tokenizer.decode(ids[i + 1:j])})
            i = j + 1
            continue
        if ids[i] != sp["<|assistant_start|>"]:
            raise ValueError(f"token {i}: expected <|user_start|> or <|assistant_start|>, "
                             f"got {names.get(ids[i], ids[i])}")
        parts, i = [], i + 1
        while True:
            j = next_special(i)
            if j > i:
                parts.append({"type": "text", "text": tokenizer.decode(ids[i:j])})
            if j == len(ids):
                if not partial:
                    raise ValueError("the ids end inside an assistant turn (no <|assistant_end|>)")
                i = j
                break
            if ids[j] == sp["<|assistant_end|>"]:
                i = j + 1
                break
            if ids[j] not in ends:
                raise ValueError(f"token {j}: {names.get(ids[j], ids[j])} inside an assistant turn")
            kind, end = ends[ids[j]]
            k = next_special(j + 1)
            if k == len(ids) and partial:
                parts.append({"type": kind, "text": tokenizer.decode(ids[j + 1:k])})
                i = k
                break
            expect(k, names[end])
            parts.append({"type": kind, "text": tokenizer.decode(ids[j + 1:k])})
            i = k + 1
        conversation.append({"role": "assistant", "content": parts})
        if i == len(ids):
            break
    try:
        validate(conversation)
    except ValueError as e:
        raise ValueError(f"the ids hold a malformed conversation: {e}") from None
    return normalize(conversation)


# ---- files -----------------------------------------------------------------------------

def load_conversations(path, tokenizer=None, max_len=None):
    """Read a .jsonl (or .jsonl.gz) file of conversations -> list of records, each a dict
    with "messages" (the conversation) and the line's other fields ("kind", "split", ...).

    A line is {"messages": [...], ...} or a bare list of messages. Each is validate()d
    (with tokenizer and max_len: no over-long exchange); the first problem is a UserError
    naming file, line and problem: "data.jsonl:3: message 2 has unknown role 'bot' ...".
    """
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    records = []
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    if isinstance(record, list):
                        record = {"messages": record}
                    if not isinstance(record, dict) or "messages" not in record:
                        raise ValueError('a line must be {"messages": [...], ...} or a list of messages')
                    validate(record["messages"], tokenizer, max_len)
                except json.JSONDecodeError as e:
                    raise UserError(f"{path}:{n}: not valid JSON ({e.msg})") from None
                except ValueError as e:
                    raise UserError(f"{path}:{n}: {e}") from None
                records.append(record)
    except FileNotFoundError:
        raise UserError(f"conversation file not found: {path}") from None
    except (UnicodeDecodeError, OSError, EOFError) as e:
        raise UserError(f"cannot read {path}: {e}") from None
    return records
