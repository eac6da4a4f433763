"""The checks of the post-training exercises: the chat loss mask, the calculator, the GRPO
advantage and policy gradient, the Bradley-Terry loss, Elo.

Gradients are checked against float64 finite differences of the loss; the rest against
minillm's own function on fixed inputs (the chat format through a byte-level tokenizer with
the chat tokens, expressions good and hostile for the calculator, random battles for Elo).

    minillm exercise check calculator

Read next: registry.py, which names every exercise and its check.
"""
import ast

import numpy as np

from minillm.chat import template, tools
from minillm.exercises.grading import Wrong, close, equal, grad_close, numeric_grad, unpack
from minillm.rl import loss as rl_loss
from minillm.rlhf import arena, reward_model
from minillm.tokenizer.bpe import Tokenizer

# ---- the chat loss mask ------------------------------------------------------------------------

CONVERSATIONS = [
    [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "17*23?"},
     {"role": "assistant", "content": [{"type": "python", "text": "17*23"},
                                       {"type": "output", "text": "391"},
                                       {"type": "text", "text": "It is 391."}]}],
    [{"role": "user", "content": "Capital of Velmora?"},
     {"role": "assistant", "content": [{"type": "text", "text": "Let me look. "},
                                       {"type": "search", "text": "Velmora capital"},
                                       {"type": "output", "text": "Ostrin is the capital."},
                                       {"type": "text", "text": "Ostrin."}]},
     {"role": "user", "content": "Thanks <|assistant_start|>"},
     {"role": "assistant", "content": [{"type": "text", "text": "You're welcome."}]}],
    [{"role": "user", "content": "Say nothing."}, {"role": "assistant", "content": ""}],
]


def _token_name(tok, i):
    names = {v: k for k, v in tok.special_tokens.items()}
    return names.get(i, repr(tok.decode([i])))


def check_chat_mask(mine, swap):
    """_segments' ids and mask equal minillm's on 4 conversations (a system message, python
    and search calls with their outputs, a typed special token, empty content); then render()
    with your _segments."""
    tok = Tokenizer([], "gpt4")                         # bytes + the chat special tokens
    for n, conv in enumerate(CONVERSATIONS, 1):
        want = template._segments(conv, tok)
        got = mine._segments(conv, tok)
        if not isinstance(got, list) or len(got) != len(want):
            raise Wrong(f"_segments gives {len(got) if isinstance(got, list) else type(got).__name__} "
                        f"segments for conversation {n}, expected one per message ({len(want)})")
        for m, ((ids, mask), (w_ids, w_mask)) in enumerate(zip(got, want), 1):
            role = conv[m - 1]["role"]
            equal("the ids", list(ids), w_ids, f"conversation {n}, message {m} ({role})")
            if len(mask) != len(ids):
                raise Wrong(f"conversation {n}, message {m} ({role}): {len(mask)} mask values "
                            f"for {len(ids)} ids")
            for i, (a, b) in enumerate(zip(mask, w_mask)):
                if a != b:
                    raise Wrong(f"conversation {n}, message {m} ({role}), token {i} "
                                f"({_token_name(tok, ids[i])}): your mask {a}, expected {b}")
    want = [template.render(conv, tok) for conv in CONVERSATIONS]
    with swap():
        got = [template.render(conv, tok) for conv in CONVERSATIONS]
    for n, ((ids, mask), (w_ids, w_mask)) in enumerate(zip(got, want), 1):
        equal("render's mask", mask, w_mask, f"conversation {n}")


# ---- the calculator ----------------------------------------------------------------------------

GOOD = ["17*23", "0.1+0.2", "2**10 - sqrt(16)", "-(3+4)*2", "7//2", "7 % 3", "-7 / 2", "+5",
        "round(2.567, 2)", "max(1, 5, 3)", "min(4, 2)", "pi*2", "floor(2.7) + ceil(2.1)", "1e3/4",
        "2**0.5", "abs(-12)", "(1 + 2) * (3 + 4)", "10**99", "2 ** -2"]
BAD = ["1/0", "9**9**9", "10**100", "__import__('math').pi", "x + 1", "'a' * 3", "True + 1",
       "1 < 2", "math.pi", "(lambda: 1)()", "2 ^ 3", "abs(-3, 4)", "sqrt(-1)", "open('f')",
       "[1, 2]", "-" * 40 + "1", "1+" * 40 + "1", "max(*[1, 2])", "round(1.5, ndigits=1)", "1j",
       "None", "sqrt"]


def check_calculator(mine, swap):
    """calculator() with your _evaluate: 19 expressions give minillm's answers exactly, and 22
    that must be refused (names, attributes, lambdas, strings, bools, comparisons, 9**9**9,
    nesting deeper than MAX_DEPTH, ...) answer "error: ..."."""
    with swap():
        mine._evaluate(ast.parse("17*23", mode="eval").body, 0)     # a crash here is shown as is
    want = {text: tools.calculator(text) for text in GOOD}
    with swap():
        got = {text: tools.calculator(text) for text in GOOD + BAD}
    for text in GOOD:
        if got[text] != want[text]:
            raise Wrong(f"calculator({text!r}) answered {got[text]!r}, expected {want[text]!r}")
    for text in BAD:
        if not got[text].startswith("error:"):
            raise Wrong(f"calculator({text!r}) answered {got[text]!r}: it must refuse this (an answer "
                        "starting with 'error:'), raise CalcError for it")


# ---- GRPO: the advantage and the policy gradient -----------------------------------------------

def _pg_case():
    rng = np.random.default_rng(3)
    B, T, V = 3, 4, 5
    z = rng.normal(size=(B, T, V))                                   # float64
    tokens = rng.integers(0, V, size=(B, T))
    mask = (rng.random((B, T)) < 0.7).astype(np.float64)
    mask[0, 0] = 1
    old = rl_loss.token_logprobs(z + rng.normal(scale=0.4, size=z.shape), tokens)
    ref = rl_loss.log_softmax(z + rng.normal(scale=0.5, size=z.shape))
    return z, tokens, mask, np.array([1.3, -0.7, 0.4]), old, ref


def check_grpo(mine, swap):
    """group_advantages equals minillm's (groups of 4, one with equal rewards, normalized or
    not); policy_gradient's dz matches float64 finite differences of its loss for REINFORCE,
    PPO's clipped ratio, and with the KL penalty."""
    rewards = [1, 0, 0, 1, 1, 1, 1, 1, 0.2, 0.9, 0.4, 0.0]
    for normalize in (True, False):
        close("group_advantages", mine.group_advantages(rewards, 4, normalize),
              rl_loss.group_advantages(rewards, 4, normalize), 1e-9, 1e-12,
              f"rewards {rewards}, groups of 4, normalize={normalize}")
    z, tokens, mask, adv, old, ref = _pg_case()
    for name, kwargs in (("REINFORCE", {}), ("PPO", {"old_logp": old, "clip": 0.2}),
                         ("REINFORCE with a KL penalty", {"ref_logp": ref, "beta": 0.5})):
        _, dz, _ = unpack(mine.policy_gradient(z, tokens, mask, adv, **kwargs), 3, "policy_gradient")
        num = numeric_grad(lambda kw=kwargs: rl_loss.policy_gradient(z, tokens, mask, adv, **kw)[0], z)
        close("dz", dz, num, 1e-5, 1e-8, f"{name}, against finite differences of the loss")


# ---- the Bradley-Terry loss --------------------------------------------------------------------

PAIRS = [(0, 1), (0, 2), (3, 1), (2, 1), (3, 0), (4, 5)]


def check_bradley_terry(mine, swap):
    """bt_loss's loss equals minillm's and its dr matches float64 finite differences, on 6
    scores and 6 pairs (an index in several pairs); margins of +-800 stay finite."""
    r = np.random.default_rng(5).normal(size=6) * 2
    loss, dr = unpack(mine.bt_loss(r, PAIRS), 2, "bt_loss")
    close("the loss", loss, reward_model.bt_loss(r, PAIRS)[0], 1e-9, 1e-12)
    grad_close("dr", dr, numeric_grad(lambda: reward_model.bt_loss(r, PAIRS)[0], r), 1e-7, 1e-10)
    far = np.array([400.0, -400.0, 0.0, 0.0, 0.0, 0.0])
    loss, dr = unpack(mine.bt_loss(far, [(1, 0), (0, 1)]), 2, "bt_loss")
    want, want_dr = reward_model.bt_loss(far, [(1, 0), (0, 1)])
    if not np.isfinite(loss) or not np.all(np.isfinite(dr)):
        raise Wrong(f"bt_loss overflows for a margin of -800 (loss {loss}): compute softplus "
                    "stably (np.logaddexp(0, -d)), and sigmoid without e^800")
    close("the loss", loss, want, 1e-9, 1e-9, "margins -800 and +800")
    close("dr", dr, want_dr, 1e-9, 1e-12, "margins -800 and +800")


# ---- Elo ---------------------------------------------------------------------------------------

def check_elo(mine, swap):
    """expected() equals minillm's (400 points are 10:1); elo() gives minillm's ratings after
    60 random battles among 4 models (wins, losses, ties) with k 4 and 32."""
    for ra, rb in ((1000, 1000), (1400, 1000), (900, 1250.5)):
        close(f"expected({ra}, {rb})", mine.expected(ra, rb), arena.expected(ra, rb), 1e-12, 1e-15)
    rng = np.random.default_rng(11)
    battles = []
    for _ in range(60):
        a, b = rng.choice(4, 2, replace=False)
        battles.append(arena.Battle(int(a), int(b), float(rng.choice([0.0, 0.5, 1.0])), "x"))
    for k in (4.0, 32.0):
        close("the ratings", mine.elo(battles, 4, k), arena.elo(battles, 4, k), 1e-12, 1e-9,
              f"60 battles among 4 models, k={k}")
