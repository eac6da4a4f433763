"""Step 4 — inference: turn a trained model into text, one token at a time.

    minillm sample --ckpt runs/default/base --prompt "Lira Vendel was born in" -n 3
    minillm sample --ckpt runs/default/base --prompt-file fewshot.txt --temperature 0

    from minillm.generate.engine import Engine
    engine = Engine.from_checkpoint("runs/default/base")
    [c] = engine.generate("Once upon a time", max_tokens=50, temperature=0.8, seed=1)
    c.text, c.tokens, c.logprobs, c.finish_reason
    for piece in engine.stream("Once upon a time"):        # text as it is produced
        print(piece, end="", flush=True)

Reading order: this file (the engine: prompts, the generation loop, stopping, tools,
streaming), generate_cache.py (the KV cache, prefill and the decode step),
generate_sampling.py (temperature, top-k, top-p, seeds, log-probabilities),
generate_cli.py (`minillm sample`).

How a batch runs. Each distinct prompt is prefilled once (one forward pass over its tokens,
prompts of similar length batched together, padded on the right); a prompt asked for n
samples shares that prefill: its cache rows are copied n times (RL samples many answers
to one question). Then every unfinished sequence advances one token per step: sample from
its logits, append, feed the token back (one decode step for the whole batch). A
sequence that finishes leaves the batch at once: the last active row's cache moves into
its slot, so the batch only ever computes live rows.

Finishing: "stop" (a stop token was produced; it is kept in `tokens`), "length"
(max_tokens new tokens), or "context" (the sequence filled the model's context_len).

Long prompts (the rule): a sequence never exceeds context_len tokens. A prompt must leave
room for min(max_tokens, context_len // 2) new tokens; a longer prompt loses its FIRST
tokens (the most recent text is what a continuation needs), with a warning naming how
many, and Completion.truncated says so. truncate=False raises ValueError instead.

Tools. When a sequence produces <|python_start|> ... <|python_end|> (or the search pair)
and a tool of that name is registered, the engine decodes the span, calls the tool with
it, and forces <|output_start|> result <|output_end|> into the sequence, then lets the
model continue. The result is encoded as ordinary text (special tokens disallowed), so a
tool's output can never inject a control token. Forced tokens are marked in
Completion.forced (a training loss must mask them) and carry no log-probability.

Seeds: completion c of a call (prompt i, sample j, c = i * n + j) draws from
numpy.random.default_rng([seed, c]); pass seed=[s0, s1, ...] to give each completion its
own seed instead. A sample of a shared prefill therefore equals a separate run with that
completion's seed (tests/test_generate.py checks it).

    python -m pytest tests/test_generate*.py

Shapes: B rows in the batch, V vocab, P prompt length.
"""
import codecs
import warnings
from dataclasses import dataclass, field

import numpy as np

from minillm.common import UserError
from minillm.generate.cache import DecodeModel, KVCache
from minillm.generate.sampling import SamplingParams, sample, token_logprobs

TOOLS = {"python": ("<|python_start|>", "<|python_end|>"),
         "search": ("<|search_start|>", "<|search_end|>")}
PREFILL_TOKENS = 8192          # padded prompt tokens per prefill forward pass


@dataclass
class Completion:
    """One generated sequence."""
    prompt: list                  # the prompt's token ids as fed (after the long-prompt rule)
    tokens: list = field(default_factory=list)     # new token ids, sampled and forced
    logprobs: list = field(default_factory=list)   # log p_model of each token; None if forced
    forced: list = field(default_factory=list)     # True where the engine inserted the token
    finish_reason: str = None     # "stop" | "length" | "context"
    text: str = ""                # the new tokens as text (without a final stop token)
    truncated: int = 0            # prompt tokens dropped by the long-prompt rule
    tool_calls: list = field(default_factory=list)  # [{"tool", "input", "output"}]
    logits: list = None           # the logits (V,) that chose each token (keep_logits=True)


class ByteTokenizer:
    """The byte-level vocabulary of a model trained on raw bytes (no tokenizer.json)."""
    vocab_size = 256
    special_tokens = {}

    def encode_ordinary(self, text):
        return list(text.encode("utf-8"))

    def decode_bytes(self, ids):
        return bytes(int(i) for i in ids)

    def decode(self, ids):
        return self.decode_bytes(ids).decode("utf-8", errors="replace")


class _Row:
    """A sequence being generated: its Completion plus the loop's bookkeeping."""

    def __init__(self, completion, rng):
        self.c = completion
        self.rng = rng
        self.length = len(completion.prompt)       # tokens in the sequence so far
        self.pending = []                          # forced tokens still to insert
        self.tool = None                           # (name, end id, [ids]) inside a tool call
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")


class Engine:
    """Generation from one model: batched, cached, with sampling, streaming and tools.

    tools: {"python": fn, "search": fn}, each fn(str) -> str (see register_tool).
    max_batch: the decode buffers' initial size (they grow on demand).
    """

    def __init__(self, params, config, tokenizer=None, tools=None, max_batch=1):
        self.config = config
        self.model = DecodeModel(params, config, max_batch)
        self.tokenizer = tokenizer if tokenizer is not None else ByteTokenizer()
        if self.tokenizer.vocab_size > config.vocab_size:
            raise ValueError(f"tokenizer has {self.tokenizer.vocab_size} tokens, the model {config.vocab_size}")
        self.tools, self._tool_starts = {}, {}
        for name, fn in (tools or {}).items():
            self.register_tool(name, fn)
        self._cache = None

    @classmethod
    def from_checkpoint(cls, path, **kwargs):
        """An engine for a checkpoint directory (its tokenizer.json, or bytes without one)."""
        from pathlib import Path

        from minillm.nn.checkpoint import checkpoint_dir, load_checkpoint
        from minillm.tokenizer.bpe import Tokenizer

        config, params, _ = load_checkpoint(path)
        tok_path = Path(checkpoint_dir(path)) / "tokenizer.json"
        tokenizer = Tokenizer.load(tok_path) if tok_path.exists() else None
        if tokenizer is None and config.vocab_size != 256:
            raise UserError(f"{path} has no tokenizer.json and is not a byte-level model")
        return cls(params, config, tokenizer, **kwargs)

    def register_tool(self, name, fn):
        """Call fn(span text) -> str when the model writes a <|name_start|>...<|name_end|> span."""
        if name not in TOOLS:
            raise ValueError(f"unknown tool {name!r}; the chat format has {', '.join(TOOLS)}")
        self.tools[name] = fn
        specials = self.tokenizer.special_tokens
        start, end = TOOLS[name]
        if start in specials and end in specials:       # start id -> (tool, end id)
            self._tool_starts[specials[start]] = (name, specials[end])

    # ---- prompts ----------------------------------------------------------------------

    @property
    def bos_id(self):
        return self.tokenizer.special_tokens.get("<|bos|>")

    def encode_prompt(self, prompt, bos=True):
        """A str (encoded as ordinary text, <|bos|> first when bos and the vocabulary has
        one) or a list of token ids (used as is) -> list of ids."""
        if isinstance(prompt, str):
            ids = self.tokenizer.encode_ordinary(prompt)
            return ([self.bos_id] if bos and self.bos_id is not None else []) + ids
        ids = [int(t) for t in prompt]
        if ids and (min(ids) < 0 or max(ids) >= self.config.vocab_size):
            raise ValueError(f"prompt token ids must be in 0..{self.config.vocab_size - 1}")
        return ids

    def fit_prompt(self, ids, max_tokens, truncate=True):
        """(ids, dropped): the long-prompt rule of the module docstring."""
        S = self.config.context_len
        keep = S - min(max_tokens, S // 2)
        if not ids:
            raise ValueError("empty prompt: give at least one token (e.g. <|bos|>)")
        if len(ids) <= keep:
            return ids, 0
        if not truncate:
            raise ValueError(f"the prompt has {len(ids)} tokens; with max_tokens {max_tokens} "
                             f"and context_len {S}, at most {keep} fit")
        return ids[len(ids) - keep:], len(ids) - keep

    # ---- generation -------------------------------------------------------------------

    def generate(self, prompts, n=1, *, bos=True, truncate=True, keep_logits=False, **sampling):
        """Complete each prompt n times; returns [Completion] with prompt i's samples at
        i*n .. i*n+n-1. prompts: a str, a list of token ids, or a list of those.
        sampling: SamplingParams fields (temperature, top_k, top_p, max_tokens, stop,
        seed, logprobs)."""
        params = SamplingParams(**sampling)
        rows = self._rows(prompts, n, bos, truncate, keep_logits, params)
        for _ in self._run(rows, n, params, keep_logits):
            pass
        return [r.c for r in rows]

    def stream(self, prompt, *, bos=True, truncate=True, **sampling):
        """A Stream: iterate it for text pieces as they are produced (whole characters
        only: a UTF-8 character split across tokens waits for its last byte); its
        .completion is the full Completion once the iteration ends."""
        params = SamplingParams(**sampling)
        rows = self._rows(prompt, 1, bos, truncate, False, params)
        return Stream(self._run(rows, 1, params, False), rows[0].c)

    def _rows(self, prompts, n, bos, truncate, keep_logits, params):
        if isinstance(prompts, str) or (len(prompts) and isinstance(prompts[0], (int, np.integer))):
            prompts = [prompts]
        if n < 1 or not len(prompts):
            raise ValueError("need at least one prompt and n >= 1")
        seeds = params.seed
        total = len(prompts) * n
        if isinstance(seeds, (list, tuple)):
            if len(seeds) != total:
                raise ValueError(f"{len(seeds)} seeds for {total} completions")
        else:
            seeds = [[int(seeds), c] for c in range(total)]
        rows, dropped = [], 0
        for i, prompt in enumerate(prompts):
            ids, cut = self.fit_prompt(self.encode_prompt(prompt, bos), params.max_tokens, truncate)
            dropped = max(dropped, cut)
            for j in range(n):
                c = Completion(prompt=list(ids), truncated=cut, logits=[] if keep_logits else None)
                rows.append(_Row(c, np.random.default_rng(seeds[i * n + j])))
        if dropped:
            warnings.warn(f"prompt longer than the context allows: dropped its first {dropped} "
                          f"tokens (context_len {self.config.context_len}, max_tokens "
                          f"{params.max_tokens})", UserWarning, stacklevel=3)
        return rows

    def _run(self, rows, n, params, keep_logits):
        """The generation loop; yields (row, text piece) for every token produced. Rows
        i*n .. i*n+n-1 share prompt i."""
        cache, logits = self._prefill(rows, n, params.max_tokens)
        active = list(rows)                       # slot i of the batch holds active[i]
        while active:
            self._choose(active, logits, params, keep_logits)
            for row in active:
                yield row, self._piece(row)
            active = self._compact(cache, active)
            if not active:
                break
            tokens = np.array([r.c.tokens[-1] for r in active])                 # (B,)
            pos = np.array([r.length - 1 for r in active])                      # (B,)
            logits = self.model.decode(cache, tokens, pos)                      # (B, V)
        for row in rows:
            tail = row.decoder.decode(b"", final=True)
            if tail:
                yield row, tail

    def _prefill(self, rows, n_same, max_tokens):
        """Prefill every distinct prompt once into a cache big enough for all rows, and copy
        shared prompts' rows out to their n samples. Returns (cache, logits (R, V))."""
        R = len(rows)
        need = min(self.config.context_len, max(len(r.c.prompt) for r in rows) + max_tokens)
        if self._cache is None or self._cache.batch < R or self._cache.capacity < need:
            old, self._cache = self._cache, None  # free the old one first
            self._cache = KVCache(self.config, max(R, old.batch if old else 0),
                                  max(need, old.capacity if old else 0))
        cache = self._cache
        uniq = rows[::n_same]                                                   # one row per prompt
        order = sorted(range(len(uniq)), key=lambda u: len(uniq[u].c.prompt))
        V = self.config.vocab_size
        first = np.empty((len(uniq), V), np.float32)                            # (U, V)
        slot_of = np.empty(len(uniq), np.int64)                                 # prompt -> staging row
        s = 0
        while s < len(order):
            e = s + 1
            while e < len(order) and (e - s + 1) * len(uniq[order[e]].c.prompt) <= PREFILL_TOKENS:
                e += 1
            group = order[s:e]
            lengths = np.array([len(uniq[u].c.prompt) for u in group])        # (G,)
            idx = np.zeros((len(group), lengths.max()), np.int64)              # (G, Pmax) padded
            for g, u in enumerate(group):
                idx[g, :lengths[g]] = uniq[u].c.prompt
            first[group] = self.model.prefill(cache, slice(s, e), idx, lengths)
            slot_of[group] = np.arange(s, e)
            s = e
        src = np.repeat(slot_of, n_same)                                       # (R,) staging row of each row
        if np.any(src != np.arange(R)):
            cache.copy_rows(np.arange(R), src, max(len(r.c.prompt) for r in rows))
        return cache, np.repeat(first, n_same, axis=0)                         # (R, V)

    def _choose(self, active, logits, params, keep_logits):
        """Append each active row's next token: a forced one if pending, else a sample."""
        free = [i for i, r in enumerate(active) if not r.pending]         # rows that sample
        if free:
            lg = logits[free] if len(free) < len(active) else logits           # (F, V)
            u = None if params.temperature == 0 else np.array([active[i].rng.random() for i in free])
            tokens = sample(lg, params, u).tolist()                             # (F,)
            lps = token_logprobs(lg, tokens).tolist() if params.logprobs else [None] * len(free)
            sampled = dict(zip(free, zip(tokens, lps)))
        for i, row in enumerate(active):
            if keep_logits:
                row.c.logits.append(np.array(logits[i]))
            if row.pending:
                self._append(row, row.pending.pop(0), None, True, params)
            else:
                self._append(row, *sampled[i], False, params)

    def _append(self, row, token, logprob, forced, params):
        c = row.c
        c.tokens.append(token)
        c.logprobs.append(logprob)
        c.forced.append(forced)
        row.length += 1
        if not forced:
            self._watch_tools(row, token)
        if not forced and token in params.stop:
            c.finish_reason = "stop"
        elif len(c.tokens) >= params.max_tokens:
            c.finish_reason = "length"
        elif row.length >= self.config.context_len:
            c.finish_reason = "context"

    def _watch_tools(self, row, token):
        """Track tool-call spans; at a span's end, run the tool and queue its output."""
        if row.tool is None:
            if token in self._tool_starts:
                row.tool = self._tool_starts[token] + ([],)
            return
        specials = self.tokenizer.special_tokens
        name, end_id, span = row.tool
        if token != end_id:
            span.append(token)
            return
        row.tool = None
        text = self.tokenizer.decode(span)
        try:
            result = str(self.tools[name](text))
        except Exception as e:                    # a tool's failure is the model's observation
            result = f"error: {type(e).__name__}: {e}"
        row.c.tool_calls.append({"tool": name, "input": text, "output": result})
        row.pending = ([specials["<|output_start|>"]] + self.tokenizer.encode_ordinary(result)
                       + [specials["<|output_end|>"]])

    def _piece(self, row):
        """The text the row's newest token completes (incremental UTF-8 decoding); a stop
        token adds none."""
        if row.c.finish_reason == "stop":
            return ""
        piece = row.decoder.decode(self.tokenizer.decode_bytes([row.c.tokens[-1]]))
        row.c.text += piece
        return piece

    def _compact(self, cache, active):
        """Drop finished rows from the batch, moving the last active row into each gap."""
        i = 0
        while i < len(active):
            if active[i].c.finish_reason is None:
                i += 1
                continue
            last = len(active) - 1
            if i != last:
                cache.copy_rows([i], [last], active[last].length)
                active[i] = active[last]
            active.pop()
        return active


class Stream:
    """Iterate for text pieces; .completion holds the result (complete after the loop)."""

    def __init__(self, events, completion):
        self._events, self.completion = events, completion

    def __iter__(self):
        for _, piece in self._events:
            if piece:
                yield piece
