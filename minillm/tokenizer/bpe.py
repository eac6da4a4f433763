"""Step 2: the byte-level BPE Tokenizer: text <-> token ids, with the merges naive.py learns.

Byte-level BPE (GPT-2, GPT-4, Llama 3) starts from the 256 bytes of UTF-8 as tokens, so any
string can be encoded, then applies learned merges "(a, b) becomes 256 + r". Text is first
pre-split by a regex (GPT4_PATTERN, GPT2_PATTERN) and merges never cross a chunk boundary.

    ids:  0..255            the raw bytes
          256 .. 256+M-1    the M merges, in the order they were learned (rank r -> 256 + r)
          after the merges  SPECIAL_TOKENS, fixed ids (<|bos|> first)
    vocab_size = 256 + M + len(SPECIAL_TOKENS)

Special tokens follow tiktoken's rules: "<|bos|>" typed in text is plain text (so a web page
can never inject a control token) unless allowed_special names it. Lone surrogates become
U+FFFD; every other string round-trips exactly. encode runs in C (fast.py) when built.

    minillm tokenizer show --tokenizer runs/demo/tokenizer.json --demo

Read next: train.py (learning merges fast), fast.py + csrc/bpe*.c, interop.py, cli.py.
"""
import numbers
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import regex

from minillm.common import UserError, num_cores, parse_threads, read_json, write_json
from minillm.tokenizer import fast

SPECIAL_TOKENS = ["<|bos|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>",
                  "<|assistant_end|>", "<|python_start|>", "<|python_end|>", "<|search_start|>",
                  "<|search_end|>", "<|output_start|>", "<|output_end|>"]

# The pre-split patterns. GPT-4's (cl100k) splits numbers into runs of at most 3 digits and
# keeps a leading non-letter with a word; GPT-2's keeps a leading space with the word.
GPT4_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}|"""
                r""" ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+""")
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# GPT-2's split pattern after HF's Digits(individual_digits=True) has cut every digit out:
# a digit is a chunk of its own, and whitespace just before a digit is not followed by
# "\S" inside its piece (the piece ends there), hence the lookahead (?![^\s\p{N}]).
# Imported Hugging Face tokenizers (SmolLM2) use it; it is not one of the named PATTERNS.
GPT2_DIGITS_PATTERN = (r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"""
                       r"""|\s+(?![^\s\p{N}])|\s+""")
PATTERNS = {"gpt4": GPT4_PATTERN, "gpt2": GPT2_PATTERN}

FORMAT = "minillm-tokenizer"
VERSION = 1
_CACHE_LIMIT = 1 << 16                       # chunk cache entries (Python path) before a reset


def resolve_pattern(pattern):
    """"gpt4" / "gpt2" / a regex -> (regex string, name or None). Raises UserError if it doesn't compile."""
    if pattern in PATTERNS:
        return PATTERNS[pattern], pattern
    for name, known in PATTERNS.items():
        if pattern == known:
            return known, name
    if not isinstance(pattern, str) or not pattern:
        raise UserError(f"pattern must be 'gpt4', 'gpt2' or a regex, got {pattern!r}")
    try:
        regex.compile(pattern)
    except regex.error as e:
        raise UserError(f"the split pattern {pattern!r} is not a valid regex ({e})") from None
    return pattern, None


def split_text(compiled, text, named):
    """Pre-split text into chunks. Custom patterns may not match everywhere: the text between
    matches becomes chunks too (like Hugging Face's Split "isolated"), so nothing is lost."""
    if named:
        return compiled.findall(text)  # GPT-4 and GPT-2's patterns match at every position
    chunks, pos = [], 0
    for m in compiled.finditer(text):
        if m.start() > pos:
            chunks.append(text[pos:m.start()])
        if m.end() > m.start():
            chunks.append(m.group())
        pos = max(pos, m.end())
    if pos < len(text):
        chunks.append(text[pos:])
    return chunks


def clean_text(text):
    """text -> UTF-8 bytes; lone surrogates (invalid Unicode) become U+FFFD, as in tiktoken."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")


class Tokenizer:
    """Byte-level BPE: merges (a, b) in rank order, a split pattern and special tokens.

    merge_ids[r] is the id merge r creates and byte_ids[b] the id of byte b; both default
    to our layout (256 + r, and b itself). Imported vocabularies (GPT-2) set them.
    use_c: True / False forces the C or the Python path; None uses C when it is built.
    """

    def __init__(self, merges, pattern="gpt4", special_tokens=None, *, byte_ids=None,
                 merge_ids=None, use_c=None):
        self.merges = [(int(a), int(b)) for a, b in merges]
        self.pattern, self.pattern_name = resolve_pattern(pattern)
        self.byte_ids = list(range(256)) if byte_ids is None else [int(i) for i in byte_ids]
        n = len(self.merges)
        self.merge_ids = list(range(256, 256 + n)) if merge_ids is None else [int(i) for i in merge_ids]
        if special_tokens is None:
            special_tokens = {s: 256 + n + i for i, s in enumerate(SPECIAL_TOKENS)}
        self.special_tokens = {str(s): int(i) for s, i in dict(special_tokens).items()}
        self._vocab = self._build_vocab()               # id -> bytes (specials included)
        self.vocab_size = max(self._vocab) + 1
        self._ranks = {pair: r for r, pair in reversed(list(enumerate(self.merges)))}
        self._compiled = regex.compile(self.pattern)
        self._special_re = {}                           # frozenset of names -> compiled regex
        self._cache = {}                                # chunk bytes -> ids (Python path)
        self._use_c = use_c
        self._fast = None

    def _build_vocab(self):
        """id -> bytes, checking that the ids are consistent (one-line ValueErrors)."""
        if len(self.byte_ids) != 256 or len(set(self.byte_ids)) != 256 or min(self.byte_ids) < 0:
            raise ValueError("byte_ids must be 256 distinct non-negative ids")
        if len(self.merge_ids) != len(self.merges):
            raise ValueError(f"{len(self.merge_ids)} merge ids for {len(self.merges)} merges")
        vocab = {i: bytes([b]) for b, i in enumerate(self.byte_ids)}
        for r, ((a, b), new) in enumerate(zip(self.merges, self.merge_ids)):
            if a not in vocab or b not in vocab:
                raise ValueError(f"merge {r} ({a}, {b}) uses a token that no earlier merge made")
            if new in vocab or new < 0:
                raise ValueError(f"merge {r} creates id {new}, which is already taken")
            vocab[new] = vocab[a] + vocab[b]
        for s, i in self.special_tokens.items():
            if not s or i in vocab or i < 0:
                raise ValueError(f"special token {s!r} has id {i}, which is empty or already taken")
            vocab[i] = s.encode("utf-8")
        return vocab

    # ---- files -----------------------------------------------------------------------

    def to_dict(self):
        d = {"format": FORMAT, "version": VERSION, "pattern": self.pattern,
             "merges": [list(p) for p in self.merges], "special_tokens": self.special_tokens}
        if self.byte_ids != list(range(256)) or self.merge_ids != list(range(256, 256 + len(self.merges))):
            d["byte_ids"], d["merge_ids"] = self.byte_ids, self.merge_ids
        return d

    def save(self, path):
        """Write tokenizer.json atomically; returns the path."""
        write_json(path, self.to_dict())
        return Path(path)

    @classmethod
    def load(cls, path, **kwargs):
        """Read a tokenizer.json written by save(); a corrupt or foreign file is a one-line UserError."""
        d = read_json(path, "tokenizer")
        where = f"tokenizer file {path}"
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            hint = (" (it looks like a Hugging Face tokenizer.json)" if isinstance(d, dict) and "model" in d
                    else "")
            raise UserError(f"{where} is not a minillm tokenizer{hint}; train one with `minillm tokenizer train`")
        if d.get("version") != VERSION:
            raise UserError(f"{where} has version {d.get('version')!r}; this minillm reads version {VERSION}")
        try:
            merges = d["merges"]
            if not isinstance(merges, list) or not all(
                    isinstance(p, list) and len(p) == 2 and all(type(x) is int for x in p) for p in merges):
                raise ValueError("'merges' must be a list of [a, b] integer pairs")
            specials = d["special_tokens"]
            if not isinstance(specials, dict) or not all(type(i) is int for i in specials.values()):
                raise ValueError("'special_tokens' must map strings to integer ids")
            return cls(merges, d["pattern"], specials, byte_ids=d.get("byte_ids"),
                       merge_ids=d.get("merge_ids"), **kwargs)
        except KeyError as e:
            raise UserError(f"{where} is corrupt: missing {e}") from None
        except (ValueError, TypeError, UserError) as e:
            raise UserError(f"{where} is corrupt: {e}") from None

    # ---- special tokens --------------------------------------------------------------

    @property
    def bos_id(self):
        """<|bos|> (or <|endoftext|> for GPT-2's vocabulary), the document separator."""
        for name in ("<|bos|>", "<|endoftext|>"):
            if name in self.special_tokens:
                return self.special_tokens[name]
        raise ValueError("this tokenizer has no <|bos|> token")

    def token_id(self, special):
        """Id of a special token, e.g. token_id("<|assistant_start|>")."""
        try:
            return self.special_tokens[special]
        except KeyError:
            raise ValueError(f"{special!r} is not a special token of this tokenizer "
                             f"(it has {', '.join(self.special_tokens)})") from None

    def token_bytes(self, i):
        """The bytes token `i` stands for."""
        return self.decode_bytes([i])

    def _special_set(self, spec, what):
        if not spec:                        # the common case, on every encode()
            return set()
        if spec == "all":
            return set(self.special_tokens)
        names = set(spec)
        unknown = names - set(self.special_tokens)
        if unknown:
            raise ValueError(f"{what}: {sorted(unknown)} are not special tokens of this tokenizer")
        return names

    def _special_regex(self, names):
        key = frozenset(names)
        if key not in self._special_re:   # longest first, so a token never shadows a longer one
            alts = sorted(names, key=len, reverse=True)
            self._special_re[key] = regex.compile("(" + "|".join(regex.escape(s) for s in alts) + ")")
        return self._special_re[key]

    # ---- encode ----------------------------------------------------------------------

    def encode(self, text, allowed_special=(), disallowed_special=()):
        """text -> ids. Special-token text is plain text unless named in allowed_special
        (or "all"); any named in disallowed_special (or "all") that is not allowed raises."""
        allowed = self._special_set(allowed_special, "allowed_special")
        disallowed = self._special_set(disallowed_special, "disallowed_special") - allowed
        if disallowed:
            m = self._special_regex(disallowed).search(text)
            if m:
                raise ValueError(f"the text contains the special token {m.group()!r}, which is "
                                 "disallowed; allow it, or encode it as plain text (the default)")
        if not allowed:
            return self.encode_ordinary(text)
        ids = []
        for k, part in enumerate(self._special_regex(allowed).split(text)):
            if k % 2:                       # split() puts the captured separators at odd indices
                ids.append(self.special_tokens[part])
            elif part:
                ids.extend(self.encode_ordinary(part))
        return ids

    def _fast_model(self):
        if self._fast is None:
            if self._use_c is False or not fast.available():
                if self._use_c:
                    raise RuntimeError("the C tokenizer was requested but the extension is not built")
                self._fast = False
            else:
                self._fast = fast.FastModel(self.byte_ids, self.merges, self.merge_ids, self.pattern_name)
        return self._fast

    def encode_ordinary(self, text):
        """text -> ids, with no special tokens at all."""
        c_model = self._fast_model()
        if c_model and c_model.pattern:
            return c_model.encode_docs([clean_text(text)])[0]
        text = clean_text(text).decode("utf-8")
        chunks = [c.encode("utf-8") for c in split_text(self._compiled, text, self.pattern_name)]
        if c_model:
            return c_model.encode_chunks(chunks)
        ids = []
        for chunk in chunks:
            ids.extend(self._encode_chunk(chunk))
        return ids

    def _encode_chunk(self, chunk):
        """Python path: one chunk's bytes -> ids, repeatedly merging the adjacent pair of
        lowest rank (the leftmost of equals), with a cache of recent chunks."""
        ids = self._cache.get(chunk)
        if ids is not None:
            return ids
        # exercise: bpe
        ids = [self.byte_ids[b] for b in chunk]
        ranks, missing = self._ranks, len(self.merges)
        while len(ids) >= 2:
            rank, at = min((ranks.get(p, missing), k) for k, p in enumerate(zip(ids, ids[1:])))
            if rank == missing:
                break
            ids[at:at + 2] = [self.merge_ids[rank]]
        # end exercise
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[chunk] = ids
        return ids

    def encode_batch(self, texts, allowed_special=(), disallowed_special=(), num_threads=None):
        """Encode many documents -> list of id lists. On the C path, with no special
        tokens allowed, the documents are shared among `num_threads` threads (default
        MINILLM_THREADS or all cores) that run the C encoder without the GIL."""
        texts = list(texts)
        c_model = self._fast_model()
        if allowed_special or disallowed_special or not (c_model and c_model.pattern):
            return [self.encode(t, allowed_special, disallowed_special) for t in texts]
        env = os.environ.get("MINILLM_THREADS")
        threads = max(1, min(num_threads or (parse_threads(env) if env else num_cores()), len(texts)))
        docs = [clean_text(t) for t in texts]
        if threads == 1:
            return c_model.encode_docs(docs)
        step = -(-len(docs) // threads)
        with ThreadPoolExecutor(threads) as pool:
            parts = pool.map(c_model.encode_docs, [docs[i:i + step] for i in range(0, len(docs), step)])
            return [ids for part in parts for ids in part]

    # ---- decode ----------------------------------------------------------------------

    def decode_bytes(self, ids):
        """ids -> the raw bytes they stand for. An unknown id raises ValueError."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        try:
            return b"".join(map(self._vocab.__getitem__, ids))
        except (KeyError, TypeError):
            for i in ids:
                if not isinstance(i, numbers.Integral) or i not in self._vocab:
                    raise ValueError(f"token id {i!r} is out of range for this tokenizer "
                                     f"(valid ids are 0..{self.vocab_size - 1})") from None
            raise

    def decode(self, ids):
        """ids -> text. Ids that cut a multi-byte character apart decode to U+FFFD, never raise."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def __getstate__(self):
        """Pickle without the C handle and caches (for worker processes); rebuilt on use."""
        state = dict(self.__dict__)
        state.update(_fast=None, _cache={}, _special_re={})
        return state

    def __repr__(self):
        return (f"Tokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
                f"pattern={self.pattern_name or 'custom'}, special_tokens={len(self.special_tokens)})")

