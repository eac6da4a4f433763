"""Step 4, inference: the engine that turns a trained model into text, one token at a time.

    from minillm.generate.engine import Engine
    engine = Engine.from_checkpoint("runs/default/base")
    [c] = engine.generate("Once upon a time", max_tokens=50, temperature=0.8, seed=1)
    for piece in engine.stream("Once upon a time"):        # text as it is produced
        print(piece, end="", flush=True)

A batch runs in two phases. Prefill: each distinct prompt goes through nn/gpt.py's forward
once, filling a KV cache (cache.py); a prompt asked for n samples shares it. Decode: every
unfinished sequence advances one token per step (sample, append, feed back: one C call,
nn/kernels/decode.py), and a finished one leaves the batch at once. Stopping, the
long-prompt rule, seeds and tool calls are described where they happen (Completion,
fit_prompt, generate, _watch_tools). The command: minillm sample (cli.py).

Read next: cache.py, sampling.py (temperature, top-k, top-p), cli.py.
    python -m pytest tests/generate
"""
import codecs
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from minillm.common import UserError
from minillm.generate.cache import KVCache
from minillm.generate.sampling import SamplingParams, sample, token_logprobs
from minillm.nn.checkpoint import checkpoint_dir, load_checkpoint
from minillm.nn.gpt import logits_last
from minillm.nn.kernels import decode as KD
from minillm.tokenizer.bpe import Tokenizer

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
    finish_reason: str = None     # "stop" (a stop token, kept in tokens) | "length"
                                  # (max_tokens new tokens) | "context" (context_len filled)
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
        self.params = {k: np.ascontiguousarray(a, dtype=np.float32) for k, a in params.items()}
        self.weights = KD.DecodeWeights(self.params, config)           # packed for the C step
        self.buf = KD.Buffers(config, max_batch)                        # the step's intermediates
        self.tokenizer = tokenizer if tokenizer is not None else ByteTokenizer()
        if self.tokenizer.vocab_size > config.vocab_size:
            raise ValueError(f"tokenizer has {self.tokenizer.vocab_size} tokens, the model {config.vocab_size}")
        # subtle: an imported model's embedding may have more rows than its tokenizer has
        # tokens (padded to a multiple of 8 or 64): those ids are never sampled (see _choose)
        self.n_tokens = self.tokenizer.vocab_size
        self.tools, self._tool_starts = {}, {}
        for name, fn in (tools or {}).items():
            self.register_tool(name, fn)
        self._cache = None

    @classmethod
    def from_checkpoint(cls, path, **kwargs):
        """An engine for a checkpoint directory (its tokenizer.json, or bytes without one)."""
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
        """(ids, dropped): the long-prompt rule. A sequence never exceeds context_len tokens,
        and a prompt must leave room for min(max_tokens, context_len // 2) new ones; a longer
        prompt loses its FIRST tokens (a continuation needs the most recent text), with a
        warning naming how many (Completion.truncated). truncate=False raises ValueError."""
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
        seed, logprobs).

        Seeds: completion c (prompt i, sample j, c = i*n + j) draws from
        numpy.random.default_rng([seed, c]); seed=[s0, s1, ...] gives each its own. So a
        sample of a shared prefill equals a separate run with that completion's seed."""
        params = SamplingParams(**sampling)
        rows = self._rows(prompts, n, bos, truncate, keep_logits, params)
        for _ in self._run(rows, n, params, keep_logits):
            pass
        return [r.c for r in rows]

    def stream(self, prompt, *, bos=True, truncate=True, keep_logits=False, **sampling):
        """A Stream: iterate it for text pieces as they are produced (whole characters
        only: a UTF-8 character split across tokens waits for its last byte); its
        .completion grows as it goes (tokens, logprobs, and with keep_logits the logits
        that chose each token) and is complete once the iteration ends."""
        params = SamplingParams(**sampling)
        rows = self._rows(prompt, 1, bos, truncate, keep_logits, params)
        return Stream(self._run(rows, 1, params, keep_logits), rows[0].c)

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
            logits = KD.decode_step(self.weights, self.buf, cache, tokens, pos)  # (B, V)
        for row in rows:
            tail = row.decoder.decode(b"", final=True)
            if tail:
                yield row, tail

    def _prefill(self, rows, n_same, max_tokens):
        """Prefill every distinct prompt once into a cache big enough for all rows, and copy
        shared prompts' rows out to their n samples. Returns (cache, logits (R, V)).

        Prompts of similar length share a forward pass, padded on the right to a common
        length: causal attention keeps a real position from ever seeing the padding, and the
        padding's K/V (past a row's length) are overwritten by decode before any query
        can reach them."""
        R = len(rows)
        need = min(self.config.context_len, max(len(r.c.prompt) for r in rows) + max_tokens)
        if self._cache is None or self._cache.batch < R or self._cache.capacity < need:
            old, self._cache = self._cache, None  # free the old one first
            self._cache = KVCache(self.config, max(R, old.batch if old else 0),
                                  max(need, old.capacity if old else 0))
        cache = self._cache
        if self.buf.bmax < R:
            self.buf = KD.Buffers(self.config, R)
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
            first[group] = logits_last(self.params, self.config, idx, cache.rows(s, e), 0, lengths)
            slot_of[group] = np.arange(s, e)
            s = e
        src = np.repeat(slot_of, n_same)                                       # (R,) staging row of each row
        if np.any(src != np.arange(R)):
            cache.copy_rows(np.arange(R), src, max(len(r.c.prompt) for r in rows))
        return cache, np.repeat(first, n_same, axis=0)                         # (R, V)

    def _choose(self, active, logits, params, keep_logits):
        """Append each active row's next token: a forced one if pending, else a sample."""
        if self.n_tokens < logits.shape[1]:
            logits[:, self.n_tokens:] = -np.inf   # padded rows of the embedding: no token
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
        """Track tool-call spans; at a span's end, run the tool and queue its output.

        When a sequence writes <|python_start|> ... <|python_end|> (or the search pair) and
        a tool of that name is registered, the span's text goes to the tool, and
        <|output_start|> result <|output_end|> is forced into the sequence. The result is
        encoded as ordinary text, so a tool's output can never inject a control token.
        Forced tokens are marked in Completion.forced (a training loss must mask them) and
        carry no log-probability."""
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
        token = row.c.tokens[-1]
        data = self.tokenizer.decode_bytes([token]) if token < self.n_tokens else b""  # padded: none
        piece = row.decoder.decode(data)
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
