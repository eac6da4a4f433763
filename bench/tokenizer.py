"""Tokenizer benchmark: training time, compression and encoding speed against the references.

    python bench/tokenizer.py [--quick] [--threads 2]

Training: tinyshakespeare.txt + tinystories_sample.txt (3.2 MB; the stories split at
<|endoftext|>, Shakespeare one document) to vocab 4096, the same 3829 merges for each:
  - minillm: 256 bytes + 3829 merges + 11 special tokens = 4096 (C trainer, one thread);
  - Hugging Face tokenizers' BpeTrainer: the same split regex (Split, isolated) then
    ByteLevel(use_regex=False), the 256-byte alphabet, our 11 special tokens, vocab 4096,
    whole documents as input (train_from_iterator);
  - rustbpe (if installed): vocab 4085 = 256 + 3829, no special tokens.
Compression: bytes per token of each on held-out text (taylorswift.txt + botchan.txt).
Encoding: MB/s on the 3.2 MB training text, one call: our encode_ordinary against
tiktoken's encode_ordinary built from our exported ranks (ids checked identical); and
batched (documents spread over --threads threads) against tiktoken's encode_ordinary_batch.
The Rust libraries get RAYON_NUM_THREADS=--threads. Times are the best of several runs
(2 with --quick, 5 without); the one-time ~20 ms Unicode class table is built before timing.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

from minillm.tokenizer import fast as tokenizer_fast
from minillm.tokenizer.bpe import GPT4_PATTERN, SPECIAL_TOKENS
from minillm.tokenizer.interop import to_tiktoken
from minillm.tokenizer.train import train_tokenizer

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MINILLM_SHARED_DATA", ROOT.parent / "shared" / "data")) / "text"
VOCAB = 4096


def best_time(fn, repeats):
    best, result = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def load_documents():
    shakespeare = (DATA / "tinyshakespeare.txt").read_text(encoding="utf-8")
    stories = (DATA / "tinystories_sample.txt").read_text(encoding="utf-8")
    docs = [shakespeare] + [s for s in stories.split("<|endoftext|>") if s.strip()]
    held_out = "\n".join((DATA / n).read_text(encoding="utf-8") for n in ("taylorswift.txt", "botchan.txt"))
    return docs, shakespeare + stories, held_out


def train_ours(docs, repeats):
    if not tokenizer_fast.available():
        sys.exit("bench/tokenizer.py: the C tokenizer is not built (see csrc/build.py)")
    tokenizer_fast.class_table()
    seconds, tok = best_time(lambda: train_tokenizer(docs, VOCAB), repeats)
    return seconds, tok, lambda text: len(tok.encode_ordinary(text)), len(tok.merges)


def train_hf(docs, repeats):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers  # the reference

    def run():
        hf = Tokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(GPT4_PATTERN), "isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=VOCAB, show_progress=False, special_tokens=SPECIAL_TOKENS,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        hf.train_from_iterator(docs, trainer)
        return hf

    seconds, hf = best_time(run, repeats)
    merges = len(json.loads(hf.to_str())["model"]["merges"])
    return seconds, hf, lambda text: len(hf.encode(text, add_special_tokens=False).ids), merges


def train_rustbpe(docs, repeats):
    try:
        import rustbpe
    except ImportError:
        return None

    def run():
        tok = rustbpe.Tokenizer()
        tok.train_from_iterator(iter(docs), VOCAB - len(SPECIAL_TOKENS), pattern=GPT4_PATTERN)
        return tok

    seconds, tok = best_time(run, repeats)
    return seconds, tok, lambda text: len(tok.encode(text)), tok.vocab_size - 256


def bench_encoding(tok, text, docs, threads, repeats):
    enc = to_tiktoken(tok)
    n = len(text.encode("utf-8"))
    t_ours, ours = best_time(lambda: tok.encode_ordinary(text), repeats)
    t_tik, tik = best_time(lambda: enc.encode_ordinary(text), repeats)
    if ours != tik:
        sys.exit("bench/tokenizer.py: our ids differ from tiktoken's on the benchmark text")
    t_ours_b, ours_b = best_time(lambda: tok.encode_batch(docs, num_threads=threads), repeats)
    t_tik_b, tik_b = best_time(lambda: enc.encode_ordinary_batch(docs, num_threads=threads), repeats)
    if ours_b != tik_b:
        sys.exit("bench/tokenizer.py: batched ids differ from tiktoken's")
    return {"ours": n / t_ours / 1e6, "tiktoken": n / t_tik / 1e6,
            "ours_batch": n / t_ours_b / 1e6, "tiktoken_batch": n / t_tik_b / 1e6}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 repeats instead of 5 (under a minute)")
    parser.add_argument("--threads", type=int, default=2, help="threads for the Rust libraries and batched encoding")
    args = parser.parse_args()
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)        # before tokenizers / rustbpe start rayon
    os.environ["MINILLM_THREADS"] = str(args.threads)
    if not DATA.is_dir():
        sys.exit(f"bench/tokenizer.py: the shared text samples are missing ({DATA})")
    repeats = 2 if args.quick else 5
    docs, text, held_out = load_documents()
    n_held = len(held_out.encode("utf-8"))

    rows = []
    for name, fn in (("minillm (C, 1 thread)", train_ours), (f"HF tokenizers ({args.threads} thr)", train_hf),
                     (f"rustbpe ({args.threads} thr)", train_rustbpe)):
        got = fn(docs, repeats)
        if got is None:
            print(f"{name}: not installed, skipped")
            continue
        seconds, model, count, merges = got
        rows.append((name, merges, seconds, n_held / count(held_out), model))
    ours, hf = rows[0], rows[1]
    print(f"\ntraining to vocab {VOCAB} on {len(text.encode()) / 1e6:.2f} MB ({len(docs)} documents), "
          f"best of {repeats}; compression on {n_held / 1e6:.2f} MB held-out text")
    print(f"{'trainer':<26} {'merges':>7} {'time (s)':>9} {'time vs HF':>11} {'bytes/token':>12} {'vs HF':>8}")
    for name, merges, seconds, bpt, _ in rows:
        print(f"{name:<26} {merges:>7} {seconds:>9.3f} {seconds / hf[2]:>10.2f}x {bpt:>12.3f} "
              f"{(bpt / hf[3] - 1) * 100:>+7.2f}%")

    speed = bench_encoding(ours[4], text, docs, args.threads, repeats)
    print(f"\nencoding {len(text.encode()) / 1e6:.2f} MB with our 4096-token vocabulary (ids identical), best of {repeats}")
    print(f"{'encoder':<44} {'MB/s':>8} {'vs tiktoken':>12}")
    for label, key, ref in (("minillm encode_ordinary (1 thread)", "ours", "tiktoken"),
                            ("tiktoken encode_ordinary (1 thread)", "tiktoken", "tiktoken"),
                            (f"minillm encode_batch ({args.threads} threads)", "ours_batch", "tiktoken_batch"),
                            (f"tiktoken encode_ordinary_batch ({args.threads} threads)", "tiktoken_batch",
                             "tiktoken_batch")):
        print(f"{label:<44} {speed[key]:>8.1f} {speed[key] / speed[ref]:>11.2f}x")

    train_ratio = ours[2] / hf[2]
    bpt_ratio = ours[3] / hf[3]
    enc_ratio = speed["ours"] / speed["tiktoken"]
    info = {"ours_train_s": round(ours[2], 4), "hf_train_s": round(hf[2], 4),
            "encode_mb_s": round(speed["ours"], 1), "tiktoken_mb_s": round(speed["tiktoken"], 1),
            "quick": args.quick, "threads": args.threads}
    if len(rows) > 2:
        info.update(rustbpe_train_s=round(rows[2][2], 4), rustbpe_time_vs_hf=round(rows[2][2] / hf[2], 3),
                    ours_time_vs_rustbpe=round(ours[2] / rows[2][2], 3),
                    rustbpe_bytes_per_token_vs_hf=round(rows[2][3] / hf[3], 4))
    print(json.dumps({"targets": {
        "train_time_vs_hf": {"value": round(train_ratio, 3), "goal": "<= 1.0", "met": train_ratio <= 1.0},
        "bytes_per_token_vs_hf": {"value": round(bpt_ratio, 4), "goal": ">= 0.99", "met": bpt_ratio >= 0.99},
        "encode_vs_tiktoken": {"value": round(enc_ratio, 2), "goal": ">= 0.5", "met": enc_ratio >= 0.5},
    }, "info": info}))


if __name__ == "__main__":
    main()
