"""The search tool: Okapi BM25 over passages of the clean corpus (the model's "internet").

When the model writes <|search_start|>who founded Velmora<|search_end|>, the engine calls
index.search_tool("who founded Velmora") and pastes the best passages back as the tool's
output, so the answer can be read from the context instead of recalled from the weights.

Documents are cut into passages of two to four sentences (MIN_WORDS..MAX_WORDS words) and
tokenised into lowercase words. Short passages suit a small model: four of them (~130
tokens) leave room in a 256-token context, and the sentence that answers comes whole,
near the top, instead of somewhere in two paragraphs. Measured on the default run's
held-out rare facts (the answer in the pasted text): 60-120-word passages x 2 gave an
SFT model that answered 0% of them; 12-40 x 3 (71 tokens) hold the answer 67% of the
time, 20-50 x 4 (132 tokens) 78%, 30-60 x 4 (182 tokens) 81% but leave no room. A passage d scores, for query q with distinct words t:

    score(q, d) = sum_t idf(t) * f(t,d) * (k1 + 1) / (f(t,d) + k1 * (1 - b + b * |d| / avgdl))
    idf(t)      = ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5))

f(t,d) is how often t occurs in d, |d| its length in words, avgdl the mean length, N the
number of passages and n(t) how many contain t. k1 = 1.5 says how fast repeats of a word
stop adding (f -> infinity gives at most idf * (k1 + 1)); b = 0.75 how much a long passage
is penalised (b = 0: not at all). The idf never goes negative (Lucene's form).

    index = BM25Index.build(clean_documents("runs/default"))
    index.save("runs/default/chat/search.npz");  index = BM25Index.load(...)
    index.search("who founded Velmora", k=3)   # [{"text", "source", "score"}], best first
    minillm chat search --run default "who founded Velmora"

Read next: template.py (the search span's tokens), minillm/generate/engine.py (register_tool).
"""
import json
from collections import Counter
from pathlib import Path

import numpy as np
import regex

from minillm.common import UserError, atomic_path
from minillm.internet.pipeline import read_jsonl_gz

K1, B = 1.5, 0.75
MIN_WORDS, MAX_WORDS = 20, 50        # passage length: sentences are added until MIN_WORDS
TOOL_K, TOOL_MAX_CHARS = 4, 700      # what search_tool pastes into the context
FORMAT = "minillm-bm25"
_WORD = regex.compile(r"[\p{L}\p{N}]+")
_SENTENCE_END = regex.compile(r"(?<=[.!?])\s+")


def words(text):
    """The lowercase words BM25 counts: "Velmora's 3 mills!" -> ["velmora", "s", "3", "mills"]."""
    return _WORD.findall(text.lower())


def passages(text, min_words=MIN_WORDS, max_words=MAX_WORDS):
    """Cut a document into passages of whole sentences, each closed once it has min_words
    words, never over max_words (a longer sentence is cut at max_words words)."""
    out, current, count = [], [], 0
    for sentence in _SENTENCE_END.split(text.strip()):
        pieces = sentence.split()
        for start in range(0, len(pieces), max_words):
            chunk = pieces[start:start + max_words]
            if count and count + len(chunk) > max_words:
                out.append(" ".join(current))
                current, count = [], 0
            current += chunk
            count += len(chunk)
            if count >= min_words:
                out.append(" ".join(current))
                current, count = [], 0
    if current:
        out.append(" ".join(current))
    return out


def clean_documents(run):
    """The clean corpus of a run (runs/<name>/clean/*.jsonl.gz, or that folder itself):
    yields {"text", "url", ...} records in shard order."""
    folder = Path(run)
    folder = folder / "clean" if (folder / "clean").is_dir() else folder
    files = sorted(folder.glob("*.jsonl.gz"))
    if not files:
        raise UserError(f"no clean documents in {folder}; run `minillm clean` first")
    for path in files:
        yield from read_jsonl_gz(path)


class BM25Index:
    """Passages and their postings: for word row w, pids[offsets[w]:offsets[w+1]] are the
    passages that contain it and tfs[...] how often (compressed sparse rows)."""

    def __init__(self, texts, sources, terms, offsets, pids, tfs, k1=K1, b=B):
        self.texts, self.sources = list(texts), list(sources)    # passage text, its document
        self.terms = {t: row for row, t in enumerate(terms)}     # word -> row
        self.offsets = np.asarray(offsets, np.int64)             # (W + 1,)
        self.pids = np.asarray(pids, np.int32)                   # (P,) passage ids, by word
        self.tfs = np.asarray(tfs, np.int32)                     # (P,) f(t, d)
        self.lengths = np.zeros(len(self.texts), np.int64)       # (N,) |d| in words
        np.add.at(self.lengths, self.pids, self.tfs)
        self.avgdl = float(self.lengths.mean()) if len(self.texts) else 0.0
        self.k1, self.b = float(k1), float(b)

    @classmethod
    def build(cls, documents, min_words=MIN_WORDS, max_words=MAX_WORDS, k1=K1, b=B):
        """An index over documents: strs or records {"text", "url" or "id", ...}."""
        texts, sources, postings = [], [], {}                   # word -> [(pid, tf)]
        for n, doc in enumerate(documents):
            text = doc if isinstance(doc, str) else doc["text"]
            source = str(n) if isinstance(doc, str) else str(doc.get("url") or doc.get("id") or n)
            for passage in passages(text, min_words, max_words):
                pid = len(texts)
                texts.append(passage)
                sources.append(source)
                for word, tf in Counter(words(passage)).items():
                    postings.setdefault(word, []).append((pid, tf))
        terms = sorted(postings)
        sizes = [len(postings[t]) for t in terms]
        offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
        flat = [p for t in terms for p in postings[t]]
        pids = [p for p, _ in flat]
        tfs = [tf for _, tf in flat]
        return cls(texts, sources, terms, offsets, pids, tfs, k1, b)

    def scores(self, query):
        """BM25 score of every passage for the query -> (N,) float64."""
        N = len(self.texts)
        out = np.zeros(N)                                                  # (N,)
        norm = self.k1 * (1 - self.b + self.b * self.lengths / max(self.avgdl, 1e-9))  # (N,)
        for word in sorted(set(words(query))):
            row = self.terms.get(word)
            if row is None:
                continue
            lo, hi = self.offsets[row], self.offsets[row + 1]
            pids, tf = self.pids[lo:hi], self.tfs[lo:hi]                   # (n,), (n,)
            idf = np.log(1 + (N - len(pids) + 0.5) / (len(pids) + 0.5))
            out[pids] += idf * tf * (self.k1 + 1) / (tf + norm[pids])      # a passage once per word
        return out

    def search(self, query, k=3):
        """The k best passages with a positive score -> [{"text", "source", "score"}], best
        first; ties go to the earlier passage. An empty or unknown query gives []."""
        s = self.scores(query)
        order = np.lexsort((np.arange(len(s)), -s))[:k]                    # by -score, then id
        return [{"text": self.texts[i], "source": self.sources[i], "score": float(s[i])}
                for i in order if s[i] > 0]

    def search_tool(self, query, k=TOOL_K, max_chars=TOOL_MAX_CHARS):
        """The tool hook: the best passages joined by blank lines, cut at max_chars.

        engine.register_tool("search", index.search_tool)
        """
        hits = self.search(query, k)
        if not hits:
            return "no results"
        text = "\n\n".join(h["text"] for h in hits)
        return text if len(text) <= max_chars else text[:max_chars - 3].rstrip() + "..."

    # ---- files: one .npz, texts stored as UTF-8 bytes + offsets (no pickles) ------------

    def save(self, path):
        """Write the index atomically to an .npz file; returns the path."""
        terms = sorted(self.terms, key=self.terms.get)
        arrays = {"offsets": self.offsets, "pids": self.pids, "tfs": self.tfs,
                  "meta": np.frombuffer(json.dumps({"format": FORMAT, "k1": self.k1, "b": self.b})
                                        .encode(), np.uint8)}
        for name, strings in (("texts", self.texts), ("sources", self.sources), ("terms", terms)):
            arrays[name], arrays[name + "_ends"] = _pack(strings)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:                  # a file object: np.savez adds no suffix
                np.savez_compressed(f, **arrays)
        return Path(path)

    @classmethod
    def load(cls, path):
        """Read an index written by save(); a missing or foreign file is a UserError."""
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(z["meta"].tobytes())
                if meta.get("format") != FORMAT:
                    raise ValueError("not a BM25 index")
                texts, sources, terms = (_unpack(z[n], z[n + "_ends"]) for n in ("texts", "sources", "terms"))
                return cls(texts, sources, terms, z["offsets"], z["pids"], z["tfs"], meta["k1"], meta["b"])
        except FileNotFoundError:
            raise UserError(f"search index not found: {path}; build it with `minillm chat search --build`") from None
        except (ValueError, KeyError, OSError) as e:
            raise UserError(f"{path} is not a minillm search index ({e}); rebuild it") from None


def _pack(strings):
    """List of str -> (uint8 bytes of all of them, int64 end offsets)."""
    data = [s.encode("utf-8") for s in strings]
    ends = np.cumsum([len(d) for d in data], dtype=np.int64)                # (n,)
    return np.frombuffer(b"".join(data), np.uint8), ends


def _unpack(blob, ends):
    raw, starts = blob.tobytes(), np.concatenate([[0], ends[:-1]]) if len(ends) else []
    return [raw[s:e].decode("utf-8") for s, e in zip(starts, ends)]
