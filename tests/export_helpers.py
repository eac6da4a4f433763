"""Shared pieces of the export / import tests: a tiny tokenizer and models, texts that probe
the byte mapping and the split pattern, and a plain greedy loop.

    python -m pytest tests/hub
"""
from functools import lru_cache

import numpy as np

from minillm.nn.checkpoint import save_checkpoint
from minillm.nn.gpt import GPTConfig, init_params, logits_last

# Training text for the tokenizer: English, numbers, contractions, whitespace runs,
# newlines, accented letters, CJK, emoji, so merges exist for all of them.
CORPUS = "\n\n".join([
    "The quick brown fox jumps over the lazy dog. It's 2024 and we've got 1234567 reasons; "
    "they'll say I'd rather not, you're right.",
    "Once upon a time, a little girl named Lily went to the park with her mom and dad.   "
    "They had a picnic\tunder the big old tree.\n\n\n    Then it rained!",
    "Zürich, Köln, Málaga, Ærøskøbing: naïve café déjà vu. Ελληνικά και русский текст.",
    "日本語のテキストと中文文本。 Emoji: 🙂🚀👍🏽 and symbols ©®™ — “quotes” …",
    "def add(a, b):\n    return a + b  # 3.14159 == pi?\n\tif x >= 10: print(x)",
] * 6)

# Texts whose tokenization must agree across minillm, Hugging Face and llama.cpp.
TEXTS = [
    "Hello world",
    " leading space and trailing space ",
    "It's 2024: we've 1234567 reasons, they'll say I'D NOT.",
    "Zürich café déjà vu — naïve “quotes” …",
    "日本語のテキスト 中文 🙂🚀👍🏽",
    "tabs\tand\nnewlines\n\n\n  indented\r\nwindows line",
    "   multiple    spaces   ",
    "x = [1, 22, 333, 4444]; y = a+b*c/d-e",
    "control bytes \x00\x01\x1f\x7f and nbsp\xa0soft\xadhyphen",
    "Ελληνικά και русский текст, ١٢٣ arabic digits, ²³ superscripts",
    "a\n\nb \n c  \n\n  d",
]


@lru_cache(maxsize=None)
def tokenizer(vocab_size=420):
    from minillm.tokenizer.train import train_tokenizer

    return train_tokenizer(CORPUS, vocab_size)


def model(tok, *, tie=False, n_kv_head=2, n_embd=64, n_head=4, hidden_dim=96, n_layer=2,
          context_len=64, seed=0, peaked=False, norm_eps=1e-5, rope_theta=10000.0, vocab_size=None):
    """(config, params) of a small random model. peaked: embeddings and head scaled up so
    the next-token logits have clear winners (greedy runs then do not hinge on 1e-6 ties)."""
    config = GPTConfig(vocab_size=vocab_size or tok.vocab_size, context_len=context_len,
                       n_layer=n_layer, n_head=n_head, n_kv_head=n_kv_head, n_embd=n_embd,
                       hidden_dim=hidden_dim, tie_embeddings=tie, norm_eps=norm_eps,
                       rope_theta=rope_theta)
    params = init_params(config, seed)
    rng = np.random.default_rng(seed + 100)
    for name, w in params.items():
        if w.ndim == 1:                                   # norms: not all ones, so a swap shows
            params[name] = (1 + 0.2 * rng.standard_normal(w.shape)).astype(np.float32)
        elif peaked and name in ("tok_emb", "lm_head"):
            params[name] = w * np.float32(25)
        elif peaked:
            params[name] = w * np.float32(4)
    return config, params


def checkpoint(path, tok, **kwargs):
    config, params = model(tok, **kwargs)
    save_checkpoint(path, config, params, tokenizer=tok, meta={"stage": "sft"})
    return config, params


def greedy(params, config, ids, n):
    """n greedy tokens after ids, and the top-1 minus top-2 logit margin of each step."""
    ids, margins = list(ids), []
    for _ in range(n):
        logits = logits_last(params, config, np.array([ids]))[0]        # (V,)
        top2 = np.sort(logits)[-2:]
        margins.append(float(top2[1] - top2[0]))
        ids.append(int(np.argmax(logits)))
    return ids[len(ids) - n:], margins


LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def hf_tokenizer(kind="smollm2", vocab_size=400):
    """A byte-level BPE trained by the tokenizers library: specials first, its own id order."""
    import tokenizers
    from tokenizers import decoders, models, pre_tokenizers, trainers

    bl = pre_tokenizers.ByteLevel
    pre = {"gpt2": bl(add_prefix_space=False, use_regex=True),
           "smollm2": pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                               bl(add_prefix_space=False, use_regex=True)]),
           "llama3": pre_tokenizers.Sequence([
               pre_tokenizers.Split(tokenizers.Regex(LLAMA3_REGEX), behavior="isolated"),
               bl(add_prefix_space=False, use_regex=False)])}[kind]
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer, tok.decoder = pre, decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=bl.alphabet())
    tok.train_from_iterator([CORPUS], trainer)
    return tok
