"""search.py: BM25 scores against a hand computation, ranking, passages, save/load, odd queries."""
import gzip
import json
import math

import numpy as np
import pytest

from minillm.chat.search import BM25Index, clean_documents, passages, words
from minillm.common import UserError

DOCS = ["the cat sat", "the cat and the dog", "a dog"]      # one passage each: 3, 5 and 2 words


def test_scores_match_the_formula_by_hand():
    index = BM25Index.build(DOCS)
    assert index.texts == DOCS and index.lengths.tolist() == [3, 5, 2]
    # N = 3 passages, avgdl = (3 + 5 + 2) / 3 = 10/3, k1 = 1.5, b = 0.75.
    # K(d) = k1 * (1 - b + b * |d| / avgdl):
    K0 = 1.5 * (0.25 + 0.75 * 3 / (10 / 3))        # 1.3875
    K1 = 1.5 * (0.25 + 0.75 * 5 / (10 / 3))        # 2.0625
    K2 = 1.5 * (0.25 + 0.75 * 2 / (10 / 3))        # 1.05
    # "cat" and "dog" are in 2 of the 3 passages: idf = ln(1 + (3 - 2 + 0.5) / (2 + 0.5)) = ln 1.6
    idf2 = math.log(1.6)
    # each term adds idf * f * (k1 + 1) / (f + K(d)), here with f = 1
    want = [idf2 * 2.5 / (1 + K0),                              # cat
            idf2 * 2.5 / (1 + K1) + idf2 * 2.5 / (1 + K1),      # cat + dog
            idf2 * 2.5 / (1 + K2)]                              # dog
    assert index.scores("cat dog") == pytest.approx(want, rel=1e-12)
    # "the" occurs twice in passage 1: f = 2
    assert index.scores("the") == pytest.approx([idf2 * 2.5 / (1 + K0), idf2 * 2 * 2.5 / (2 + K1), 0], rel=1e-12)
    # "a" is in 1 passage: idf = ln(1 + (3 - 1 + 0.5) / (1 + 0.5)) = ln(8/3)
    assert index.scores("a") == pytest.approx([0, 0, math.log(8 / 3) * 2.5 / (1 + K2)], rel=1e-12)


def test_ranking_best_first_and_only_matches():
    index = BM25Index.build(DOCS)
    hits = index.search("cat dog", k=3)
    assert [h["text"] for h in hits] == ["the cat and the dog", "a dog", "the cat sat"]
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert [h["text"] for h in index.search("sat", k=3)] == ["the cat sat"]
    assert len(index.search("cat dog", k=1)) == 1


def test_queries_are_words_lowercased_and_counted_once():
    index = BM25Index.build(DOCS)
    assert index.scores("CAT!!") == pytest.approx(index.scores("cat"))
    assert index.scores("cat cat cat") == pytest.approx(index.scores("cat"))
    assert words("Velmora's 3 mills, Zürich!") == ["velmora", "s", "3", "mills", "zürich"]


@pytest.mark.parametrize("query", ["", "   ", "!!! ???", "zebra", "<|search_end|>", "x" * 10_000])
def test_odd_queries_find_nothing(query):
    index = BM25Index.build(DOCS)
    assert index.search(query) == [] and index.search_tool(query) == "no results"


def test_ties_go_to_the_earlier_passage():
    index = BM25Index.build(["red fish", "red fish", "blue fish"])
    assert [h["text"] for h in index.search("red", k=2)] == ["red fish", "red fish"]
    assert [h["source"] for h in index.search("red", k=2)] == ["0", "1"]


def test_passages_keep_every_word_in_order_and_stay_short():
    text = " ".join(f"Sentence {i} has some words in it, about ten or so." for i in range(30))
    text += " " + " ".join(["long"] * 300) + ". The end."
    cut = passages(text, min_words=60, max_words=120)
    assert " ".join(cut).split() == text.split()
    assert all(len(p.split()) <= 120 for p in cut)
    assert all(len(p.split()) >= 60 for p in cut[:5])         # the short sentences are grouped
    assert passages("") == [] and passages("One short line") == ["One short line"]


def test_save_and_load_round_trip(tmp_path):
    docs = [{"text": "Ostrin is the capital of Velmora. It was founded in 1204.", "url": "http://w/ostrin"},
            {"text": "東京は日本の首都です。 Zürich is in Switzerland.", "id": "doc-2"}, "plain text doc"]
    index = BM25Index.build(docs, min_words=3, max_words=8)
    path = index.save(tmp_path / "sub" / "search.npz")
    back = BM25Index.load(path)
    assert back.texts == index.texts and back.sources == index.sources and back.terms == index.terms
    assert (back.k1, back.b) == (index.k1, index.b)
    for q in ("capital of Velmora", "zürich", "東京は日本の首都です", "founded 1204"):
        assert np.array_equal(back.scores(q), index.scores(q))
        assert back.search(q) == index.search(q)
    assert index.search("Velmora capital", k=1)[0]["source"] == "http://w/ostrin"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["search.npz"]      # no temporary left over
    empty = BM25Index.load(BM25Index.build([]).save(tmp_path / "empty.npz"))
    assert empty.search("anything") == []


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(UserError, match="search index not found"):
        BM25Index.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="is not a minillm search index"):
        BM25Index.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(UserError, match="is not a minillm search index"):
        BM25Index.load(tmp_path / "other.npz")


def test_search_tool_is_capped_and_joins_passages():
    index = BM25Index.build(["alpha beta " * 30, "alpha gamma " * 30, "delta"], min_words=1, max_words=100)
    out = index.search_tool("alpha", k=2, max_chars=100)
    assert len(out) == 100 and out.endswith("...")
    full = index.search_tool("alpha", k=2, max_chars=10_000)
    assert full.count("\n\n") == 1 and full.startswith("alpha")
    assert isinstance(index.search_tool("gamma"), str)        # fn(str) -> str, the engine's tool hook


def test_clean_documents_reads_a_runs_clean_folder(tmp_path):
    clean = tmp_path / "run" / "clean"
    clean.mkdir(parents=True)
    for shard, texts in (("b", ["second shard"]), ("a", ["first doc", "second doc"])):
        with gzip.open(clean / f"{shard}.jsonl.gz", "wt", encoding="utf-8") as f:
            for i, t in enumerate(texts):
                f.write(json.dumps({"id": f"{shard}{i}", "url": f"http://{shard}/{i}", "text": t}) + "\n")
    assert [d["text"] for d in clean_documents(tmp_path / "run")] == ["first doc", "second doc", "second shard"]
    assert [d["id"] for d in clean_documents(clean)] == ["a0", "a1", "b0"]
    with pytest.raises(UserError, match="no clean documents"):
        list(clean_documents(tmp_path))
