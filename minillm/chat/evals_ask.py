"""The chat evals' harness: prompts in, greedy replies out, and the shared judges.

ask(engine, conversations, max_tokens) renders each conversation with
template.render_prompt (optionally forcing the reply's first words), decodes greedily
(temperature 0, one batch) and returns a Reply per prompt: the assistant's own text (tool
calls left out), the text as shown with the tools' outputs pasted in, the tools called.
A prompt that does not fit the context with room for the reply gets None: the evals count
it as "too_long", never as right or wrong.

says_idk(text) is the one "I don't know" detector (the hallucination and false-IDK evals);
it catches every wording data_phrasings.IDK_ANSWERS and data_search.NOT_FOUND use.
scored(...) is the dict every eval returns: n judged, too_long, rate, and its extras.

Read next: evals.py (the evals), evals_skills.py.
"""
import re
from dataclasses import dataclass

from minillm.chat.template import chat_token_ids, render_prompt

BATCH = 64                     # prompts per engine.generate call (its KV cache grows with the batch)
CALLS = {"<|python_start|>": "<|python_end|>", "<|search_start|>": "<|search_end|>"}
# "I don't know" as data_phrasings.IDK_ANSWERS and data_search.NOT_FOUND word it (and a few
# more ways a model may put it); tests check every one of those wordings is caught
_IDK = re.compile(r"\b(?:i (?:do not|don't|dont) know|i'm not sure|i am not sure|i can't (?:say|tell)|"
                  r"i cannot (?:say|tell)|no reliable (?:facts|information)|"
                  r"i (?:don't|do not) have (?:reliable )?information)\b")


def says_idk(text):
    """Does a reply decline to answer ("I don't know", "I'm not sure ...")?"""
    return bool(_IDK.search(text.lower().replace("\u2019", "'")))


# ---- asking: prompts in, greedy replies out ------------------------------------------------

@dataclass
class Reply:
    text: str            # what the assistant wrote, tool calls left out (outputs: see `shown`)
    shown: str           # text with the tools' outputs pasted where they came (what a user reads)
    tools: list          # the tools it called, in order ("python", "search")
    finish: str          # the engine's finish_reason


def ask(engine, conversations, max_tokens, prefixes=None):
    """Greedy replies to conversations ending with a user message: [Reply or None], None
    where the prompt does not fit the context with room for the reply. prefixes: text the
    reply is made to start with (forced, and part of Reply.text)."""
    tok, S = engine.tokenizer, engine.config.context_len
    sp = chat_token_ids(tok)
    prefixes = prefixes or [""] * len(conversations)
    room = S - min(max_tokens, S // 2)                    # the engine's long-prompt rule
    prompts, where = [], []
    for n, (conv, prefix) in enumerate(zip(conversations, prefixes)):
        ids = render_prompt(conv, tok) + (tok.encode_ordinary(prefix) if prefix else [])
        if len(ids) <= room:
            prompts.append(ids)
            where.append(n)
    out = [None] * len(conversations)
    if not prompts:
        return out
    stop = [sp["<|assistant_end|>"], sp["<|user_start|>"], sp["<|bos|>"]]
    completions = []
    for start in range(0, len(prompts), BATCH):       # greedy: the same replies however batched
        completions += engine.generate(prompts[start:start + BATCH], temperature=0.0, max_tokens=max_tokens,
                                       seed=0, logprobs=False, stop=stop)
    for n, c in zip(where, completions):
        text, shown, tools = read_reply(c.tokens, tok)
        out[n] = Reply(prefixes[n] + text, prefixes[n] + shown, tools, c.finish_reason)
    return out


def read_reply(tokens, tok):
    """(text, shown, tools) of a reply's tokens: tool-call spans left out, outputs kept in
    `shown` only, special tokens dropped."""
    names = {i: s for s, i in tok.special_tokens.items()}
    text, shown, tools, inside = [], [], [], None
    for t in tokens:
        name = names.get(t)
        if name in CALLS:
            inside = CALLS[name]
            tools.append("python" if name == "<|python_start|>" else "search")
        elif name is not None and name == inside:
            inside = None
        elif name == "<|output_start|>":
            inside = "<|output_end|>"
        elif name is None and inside is None:
            text.append(t)
            shown.append(t)
        elif name is None and inside == "<|output_end|>":
            shown.append(t)
    return tok.decode(text), tok.decode(shown), tools


def rate(flags):
    """The share of True flags; None when there are none (JSON has no NaN)."""
    return sum(flags) / len(flags) if flags else None


def scored(name, flags, replies, **extra):
    """The common dict of an eval: n judged, too_long, the rate, and extra numbers."""
    return {"eval": name, "n": len(flags), "too_long": sum(r is None for r in replies),
            "rate": rate(flags), **extra}


def pick(items, limit, rng):
    """At most limit items, a seeded sample kept in order."""
    if limit is None or len(items) <= limit:
        return list(items)
    keep = set(rng.sample(range(len(items)), limit))
    return [x for i, x in enumerate(items) if i in keep]
