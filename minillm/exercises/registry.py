"""Every exercise, in lecture order: the real functions a learner rebuilds, a hint, a check.

    EXERCISES[i].functions   minillm's own functions; their `# exercise: NAME` lines are the
                             part to write (source.py cuts them out)
    EXERCISES[i].check       check(mine, swap): raises grading.Wrong, one line, unless the
                             learner's module `mine` gets minillm's answers (its docstring says
                             how it checks; `swap()` puts the learner's functions in place)

Adding one: put `# exercise: NAME` ... `# end exercise` around the lines to write in the real
function (a C fast path above them is left out by itself), add an Exercise here with a check
that fails on the empty skeleton; tests/exercises/test_exercises.py then proves the solution
passes and the skeleton fails.

Read next: workspace.py (start, check, solution).
"""
from dataclasses import dataclass

from minillm.chat import template, tools
from minillm.common import UserError
from minillm.exercises import checks_data, checks_model, checks_post
from minillm.generate import sampling
from minillm.internet import dedup, filters
from minillm.nn import attention, layers, optim
from minillm.rl import loss
from minillm.rlhf import arena, reward_model
from minillm.tokenizer import naive
from minillm.tokenizer.bpe import Tokenizer


@dataclass(frozen=True)
class Exercise:
    name: str               # the command's NAME, and the markers' name
    stage: str              # the lecture stage (minillm's package)
    title: str
    functions: tuple        # minillm's functions whose marked lines the learner writes
    hint: str
    check: object           # check(mine, swap) -> None, or raises grading.Wrong


EXERCISES = [
    Exercise(
        "gopher_quality", "internet", "a Gopher rule: the quality filter", (filters.gopher_quality,),
        "Words are the tokens of words_of(text) that _is_word (a punctuation mark is a token, not "
        "a word); lines are the non-empty lines, stripped. Test the rules in the docstring's order "
        "and return the first one's reason: too_few_words, too_many_words, short_mean_word, "
        "long_mean_word, hash_ratio ('#' per word), ellipsis_ratio ('...' and '…' per word), "
        "bullet_lines (a line starting with one of BULLETS), ellipsis_lines, alpha_words (a word "
        "with a letter), stop_words (w.lower() in stop_words, when n >= stop_words_from).",
        checks_data.check_gopher_quality),
    Exercise(
        "minhash", "internet", "MinHash signature and LSH bands", (dedup._signature_of, dedup.band_keys),
        "_signature_of: value j of the signature is min over the shingles h of (a[j] h + b[j]) "
        "mod PRIME; broadcast h[:, None] against a[None, :] in uint64 (h < 2^32 and a < PRIME, so "
        "nothing overflows), start from the uint32 maximum (an empty text keeps it) and take "
        "`chunk` shingles at a time. band_keys: cut each signature into NUM_BANDS bands of ROWS "
        "values and hash each band's values, in order, into one uint64 (keys = keys * _MIX + "
        "value, then mix64): equal bands must give equal keys, different ones almost never.",
        checks_data.check_minhash),
    Exercise(
        "bpe", "tokenizer", "BPE: a merge step and encode", (naive.merge_pair, Tokenizer._encode_chunk),
        "merge_pair: walk ids left to right; where (ids[k], ids[k+1]) == pair emit `new` and skip "
        "both, else emit ids[k]; return a new list. _encode_chunk: start from the ids of the "
        "chunk's bytes (self.byte_ids[b]); while there are two ids, find the adjacent pair of "
        "lowest rank (self._ranks maps a pair to its merge's rank; the leftmost of equals), stop "
        "if no pair has one, and replace it by self.merge_ids[rank].",
        checks_data.check_bpe),
    Exercise(
        "rmsnorm_backward", "nn", "RMSNorm backward", (layers.rmsnorm_backward,),
        "The forward is y = x * rstd * w with rstd = (mean(x^2) + eps)^(-1/2) per row, and its "
        "cache is x2 (N, C), w (C,), rstd (N,). dw sums dy * x * rstd over the rows. For dx, rstd "
        "depends on every x_c of its row: d rstd / d x_c = -rstd^3 x_c / C, which adds one term "
        "with the row's sum of dy * w * x. Return dx in dy's shape.",
        checks_model.check_rmsnorm_backward),
    Exercise(
        "attention_backward", "nn", "attention backward", (attention.causal_attention_backward,),
        "Rebuild P = exp(S - lse) under the causal mask, with S = q k^T / sqrt(HD) and k, v "
        "expanded to NH heads (_expand_kv). out = P v gives dv = P^T dout and dP = dout v^T; the "
        "softmax gives dS = P * (dP - D) with D = rowsum(dP * P) = rowsum(dout * out); S gives "
        "dq = dS k / sqrt(HD) and dk = dS^T q / sqrt(HD). The NH // NKV query heads of a KV head "
        "add their dk, dv into it: reshape to (B, NKV, NH // NKV, T, HD) and sum axis 2.",
        checks_model.check_attention_backward),
    Exercise(
        "rope", "nn", "RoPE: rotary position embeddings", (layers.rope_frequencies, attention._rotated),
        "rope_frequencies: pair i at position pos turns by pos * theta^(-2i/HD), i = 0 .. HD/2-1; "
        "make the angles in float64 (an outer product), then e^(i angle) in the complex dtype of "
        "`dtype` (np.result_type(dtype, np.complex64)). _rotated: read each pair (x[2i], x[2i+1]) "
        "as the complex number x[2i] + i x[2i+1] (x.view(complex dtype) does it for free), "
        "multiply by freqs, and give back x's dtype and shape.",
        checks_model.check_rope),
    Exercise(
        "adamw", "nn", "an AdamW step", (optim.adamw_update, optim.AdamW._update),
        "adamw_update works in place on the flat buffers: p[:n_decay] *= c.decay (decoupled "
        "weight decay), then m = b1 m + g1 g, v = b2 v + g2 g^2, p -= step_size m / (sqrt(v) + "
        "eps_hat); no need to go CHUNK by CHUNK. _update: with t = self.t, bc1 = 1 - b1^t and "
        "bc2 = 1 - b2^t, torch's p -= lr (m / bc1) / (sqrt(v / bc2) + eps) is step_size = lr "
        "sqrt(bc2) / bc1 with eps_hat = eps sqrt(bc2); the gradient's scale gives g1 = (1 - b1) "
        "gscale, g2 = (1 - b2) gscale^2; decay = 1 - lr weight_decay; then adamw_update on "
        "self.flat_p, flat_m, flat_v, flat_g.",
        checks_model.check_adamw),
    Exercise(
        "kv_decode", "generate", "the KV-cache decode step",
        (attention.attention_decode, attention.attention_cached),
        "attention_decode: row b's one query q[b] (NH, HD) attends to cache positions 0 .. "
        "lengths[b] - 1 only: scores q k^T / sqrt(HD), a softmax over them, times v, with each KV "
        "head serving NH // NKV query heads (_expand_kv). attention_cached's decode branch: row "
        "b's new key and value (column b of split_qkv's (1, NKV, B, HD) k and v) go into slot "
        "pos[b] of its cache row; then each row attends to its first pos[b] + 1 slots, and out is "
        "(B, NH, 1, HD).",
        checks_model.check_kv_decode),
    Exercise(
        "top_p", "generate", "top-p (nucleus) sampling", (sampling.candidates,),
        "p is sorted most likely first. A token stays while the mass of the tokens before it "
        "(cumsum minus itself) is below top_p, so the first always stays; zero the others and "
        "renormalise each row. Do nothing when params.top_p is None.",
        checks_model.check_top_p),
    Exercise(
        "chat_mask", "chat", "the chat format's loss mask", (template._segments,),
        "This is an assistant message: its content is a string (one text part) or a list of parts. "
        "Its ids start with <|assistant_start|> (mask 0); a text part is plain(text), mask 1; a "
        "python or search call is its CALLS start token, plain(text), its end token, all mask 1; "
        "a tool output is wrapped in OUTPUT's tokens, all mask 0 (the engine writes it, the model "
        "must not learn to); it ends with <|assistant_end|>, mask 1.",
        checks_post.check_chat_mask),
    Exercise(
        "calculator", "chat", "the calculator's parser", (tools._evaluate,),
        "Walk the tree ast.parse(text, mode='eval') made, depth + 1 per level (CalcError past "
        "MAX_DEPTH). Accept only an ast.Constant of type int or float (not bool), a BinOp whose "
        "operator is in BINARY (** through _power), a UnaryOp in UNARY, a Name in CONSTANTS, a "
        "Call of a Name in FUNCTIONS (through _call); pass results through _checked; raise "
        "CalcError for anything else. Never eval.",
        checks_post.check_calculator),
    Exercise(
        "grpo", "rl", "the GRPO advantage and the policy gradient",
        (loss.group_advantages, loss.policy_gradient),
        "group_advantages: rewards as (P, G), minus each group's mean, divided by its std + eps "
        "when normalize, flattened. policy_gradient: with the loss -(1/n) sum_t m A c log p(y_t) "
        "and w = -(m A c) / n per token (c the constant computed above), dloss/dz = w (onehot(y) "
        "- p): -w p everywhere, plus w at the sampled token (np.put_along_axis).",
        checks_post.check_grpo),
    Exercise(
        "bradley_terry", "rlhf", "the Bradley-Terry loss", (reward_model.bt_loss,),
        "Margins d = r[chosen] - r[rejected]; the loss is mean(softplus(-d)), stably "
        "np.logaddexp(0, -d); d softplus(-d) / dd = -1 / (1 + e^d), divided by the number of "
        "pairs; a chosen score gets +dd, a rejected one -dd, with np.add.at (an index can be in "
        "several pairs).",
        checks_post.check_bradley_terry),
    Exercise(
        "elo", "rlhf", "Elo ratings", (arena.expected, arena.elo),
        "expected: 1 / (1 + BASE^((rb - ra) / SCALE)). elo: everyone starts at INIT; battle by "
        "battle, in order, e = expected(r[a], r[b]); a gains k (score - e) and b loses as much "
        "(b's score is 1 - score, its expectation 1 - e).",
        checks_post.check_elo),
]

BY_NAME = {e.name: e for e in EXERCISES}


def find(name):
    """The exercise called `name`; a one-line UserError listing the names otherwise."""
    if name not in BY_NAME:
        raise UserError(f"no exercise {name!r}; the exercises are: {', '.join(BY_NAME)}")
    return BY_NAME[name]
