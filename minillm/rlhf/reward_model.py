"""The reward model: the SFT transformer with a scalar head, trained on the labeller's pairs.

    minillm rlhf reward-model --run runs/default       -> runs/default/rlhf/pairs.jsonl,
                                                          runs/default/rlhf/reward_model/

The data (collect): K answers sampled from the SFT model for each open-ended prompt
(prompts.py), ordered by the simulated labeller (labeller.rank): every ordered pair
(chosen, rejected). The model reads prompt + answer + <|assistant_end|> and its score is
one number from the last position (reward_forward):

    h = final_norm(blocks(x))[last]        (C,)   gpt.forward(..., head=False)
    r = h . w                               ()     w (C,): the scalar head

and learns the Bradley-Terry model P(chosen beats rejected) = sigmoid(r_c - r_r):

    L = mean over pairs of -log sigmoid(r_c - r_r) = softplus(-(r_c - r_r))

(bt_loss, its gradient beside it). No bias: it would cancel in every difference. The
head starts at 0 (every score 0, the loss log 2) and the transformer starts from the SFT
weights, so the features of "a good answer" are learned on top of what SFT knows.

With --logp (RMConfig.logp) the score also reads how likely the SFT model it started from
finds the answer (answer_logp), weighted by one more learned number u:

    f = mean over the answer's tokens of log p_SFT(token | what came before)
    r = h . w + u f                         dL/du = sum_b dr_b f_b

A last-token head learns slowly what the SFT model knows token by token: a false fact
("Tarvale lies on the Avea") is a surprise to a model that read Tarvale's page a hundred
times, and so is clumsy text. f comes from a frozen copy of the SFT weights (`ref`, no
gradient). Measured (README): held-out accuracy 2-7 points higher, and RL against it was
no longer gamed in 60 steps: f pulls the policy back to what SFT would say, as a KL
penalty does. Off by default, so the default run shows reward hacking. The
K answers of a prompt are scored in the same step and every one of their pairs is used
(InstructGPT); the forward runs in micro-batches of similar length. Held-out pair
accuracy: the share of held-out pairs (prompts about held-out entities) that the scores
order as the labeller did; accuracy_by_part splits it by what decided each pair (facts,
fluency, length, ...) and gives the ceiling that the labeller's noise sets.

Read next: policy.py (RL against this model).
"""
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minillm.chat.evals_ask import read_reply
from minillm.chat.sft import chat_tokenizer
from minillm.chat.template import chat_token_ids, render_prompt
from minillm.common import UserError, atomic_write
from minillm.nn import gpt
from minillm.nn.checkpoint import load_checkpoint, save_checkpoint
from minillm.nn.layers import lm_head_loss_forward
from minillm.nn.optim import AdamW
from minillm.rl.grpo import policy_engine, rollouts
from minillm.rl.tasks import Item
from minillm.rlhf.labeller import WEIGHTS
from minillm.rlhf.prompts import OpenEnded

STAGE = "reward_model"
MICRO = 8                       # sequences per forward/backward while training


@dataclass
class RewardModel:
    model: object                   # GPTConfig
    params: dict                    # the transformer's weights
    head: np.ndarray                # (C,) the scalar head
    tokenizer: object
    ref: dict = None                # --logp: the SFT weights it started from, frozen (f)
    reference: Path = None          # their checkpoint directory
    u: np.ndarray = None            # (1,) the weight of f

    @classmethod
    def load(cls, path):
        model, params, meta = load_checkpoint(path)
        if meta.get("stage") != STAGE or "reward_head" not in meta:
            raise UserError(f"{path} is a {meta.get('stage')} checkpoint, not a reward model: "
                            "train one with `minillm rlhf reward-model`")
        rm = cls(model, params, np.array(meta["reward_head"], np.float32), chat_tokenizer(path, model.vocab_size))
        if "reference" in meta:                     # trained with --logp
            rm.reference = (Path(path) / meta["reference"]).resolve()
            if not (rm.reference / "config.json").is_file():
                raise UserError(f"the reward model {path} reads answers with the SFT model it was trained from, "
                                f"{rm.reference}, which is missing: put it back or train the reward model again")
            _, rm.ref, _ = load_checkpoint(rm.reference)
            rm.u = np.array([meta["reward_logp_weight"]], np.float32)
        return rm

    def save(self, path, meta=None):
        # the head is C numbers (and u one): kept in config.json, with the SFT checkpoint's
        # place relative to this one, so the weights stay a plain GPT checkpoint
        doc = {"stage": STAGE, "reward_head": [float(x) for x in self.head], **(meta or {})}
        if self.ref is not None:
            doc.update(reward_logp_weight=float(self.u[0]),
                       reference=os.path.relpath(self.reference, Path(path).resolve()))
        return save_checkpoint(path, self.model, self.params, tokenizer=self.tokenizer, meta=doc)

    def scores(self, items, texts):
        """(n,) the reward of each answer text to its item (no gradient)."""
        rows = [answer_ids(it, t, self.tokenizer, self.model.context_len) for it, t in zip(items, texts)]
        out = np.zeros(len(rows))
        for chunk in by_length(rows, 4 * MICRO):
            x, lengths, starts = pad([rows[i] for i in chunk])
            r, _ = reward_forward(self.params, self.model, self.head, x, lengths, grad=False)
            out[chunk] = r if self.ref is None else r + self.u[0] * answer_logp(self.ref, self.model, x, lengths, starts)
        return out


def answer_ids(item, text, tok, context_len):
    """(ids, start): prompt + answer + <|assistant_end|>, what the reward model reads (the end
    kept when cut), and where the answer starts in it."""
    prompt = render_prompt(item.messages, tok)
    ids = (prompt + tok.encode_ordinary(text))[:context_len - 1] + [chat_token_ids(tok)["<|assistant_end|>"]]
    return ids, min(len(prompt), len(ids) - 1)


def by_length(rows, size):
    """Index chunks of at most `size` rows (answer_ids pairs) of similar length."""
    order = np.argsort([len(ids) for ids, _ in rows], kind="stable")
    return [order[s:s + size] for s in range(0, len(order), size)]


def pad(rows):
    """[(ids, start)] -> (x (B, T) int64 right-padded with 0, lengths (B,), starts (B,))."""
    T = max(len(ids) for ids, _ in rows)
    x = np.zeros((len(rows), T), np.int64)                                 # (B, T)
    for b, (ids, _) in enumerate(rows):
        x[b, :len(ids)] = ids
    return x, np.array([len(ids) for ids, _ in rows]), np.array([start for _, start in rows])


# ---- forward and backward ------------------------------------------------------------------

def reward_forward(params, model, head, x, lengths, grad=True):
    """r (B,) = the head on the final norm's output at each row's last token; (r, cache)."""
    h, gcache = gpt.forward(params, model, x, grad=grad, head=False)       # (B, T, C)
    B = len(x)
    last = h[np.arange(B), lengths - 1].astype(np.float64)                 # (B, C)
    r = last @ head.astype(np.float64)                                     # (B,)
    return r, (gcache, last, head, lengths, h.shape, h.dtype)


def reward_backward(dr, cache):
    """(grads of the transformer, dhead (C,)) from dr (B,) = dL/dr."""
    gcache, last, head, lengths, shape, dtype = cache
    # r_b = last_b . w  ->  dw = sum_b dr_b last_b,  dlast_b = dr_b w
    dhead = (dr @ last).astype(head.dtype)                                 # (C,)
    dh = np.zeros(shape, dtype)                                            # (B, T, C)
    dh[np.arange(len(dr)), lengths - 1] = np.outer(dr, head)               # only the last tokens
    return gpt.backward(gcache, dh=dh), dhead


def answer_logp(ref, model, x, lengths, starts):
    """f (B,): the mean log-probability the weights `ref` give row b's answer tokens
    x[b, starts[b]:lengths[b]] (its <|assistant_end|> included), each after what came
    before it: minus the LM's cross-entropy on them. No gradient: ref is frozen."""
    h, _ = gpt.forward(ref, model, x, grad=False, head=False)             # (B, T, C)
    w_head = ref["tok_emb"] if model.tie_embeddings else ref["lm_head"]   # (V, C)
    f = np.zeros(len(x))
    for b, (s, n) in enumerate(zip(starts, lengths)):   # the head and the loss fused, answer rows only
        loss, _ = lm_head_loss_forward(h[b, s - 1:n - 1], w_head, x[b, s:n], grad=False)
        f[b] = -loss
    return f


def bt_loss(r, pairs):
    """(loss, dr) of the Bradley-Terry loss over pairs [(chosen, rejected)] of indices into r."""
    # exercise: bradley_terry
    c, j = np.array(pairs).T                                               # (P,), (P,)
    d = r[c] - r[j]                                                        # (P,) margins
    loss = float(np.mean(np.logaddexp(0.0, -d)))                          # softplus(-d)
    # d softplus(-d) / dd = -sigmoid(-d); the mean divides by P; r_c gets +, r_j gets -
    dd = -1.0 / (1.0 + np.exp(d)) / len(d)                                 # (P,)
    dr = np.zeros_like(r)                                                  # (B,)
    np.add.at(dr, c, dd)
    np.add.at(dr, j, -dd)
    return loss, dr
    # end exercise


# ---- the data --------------------------------------------------------------------------------

def collect(engine, labeller, items, k, max_tokens, temperature, seed):
    """One record per item: its K sampled answers, their true scores and the labeller's pairs."""
    sampled = rollouts(engine, items, k, max_tokens, seed, temperature)
    texts = [read_reply(c.tokens, engine.tokenizer)[1] for _, c in sampled]
    true = labeller.true_scores([it for it, _ in sampled], texts)
    out = []
    for i, item in enumerate(items):
        group, scores = texts[i * k:(i + 1) * k], true[i * k:(i + 1) * k]
        out.append({"messages": item.messages, "meta": item.meta, "texts": group,
                    "true": [round(float(x), 4) for x in scores],
                    "pairs": labeller.rank(item, group, seed=seed, scores=scores)})
    return out


def write_pairs(records, path):
    """The records as JSON lines, written atomically."""
    atomic_write(path, "".join(json.dumps(r) + "\n" for r in records))


def read_pairs(path):
    """The records of write_pairs that hold at least one pair (K equal answers hold none)."""
    try:
        with open(path, encoding="utf-8") as f:
            records = [json.loads(line) for line in f]
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read the preference pairs {path} ({e}); rerun `minillm rlhf reward-model`") from None
    return [r for r in records if r["pairs"]]


# ---- training -------------------------------------------------------------------------------

@dataclass
class RMConfig:
    prompts: int = 1536             # training prompts (K answers each)
    held_out: int = 256             # held-out prompts (entities never trained on)
    k: int = 4                      # answers per prompt the labeller orders
    temperature: float = 0.8        # of the sampled answers
    max_tokens: int = 64
    epochs: int = 1
    batch: int = 8                  # prompts (each with its K answers) per step
    lr: float = 1e-4                # the transformer's (the head's is head_lr, u's logp_lr)
    head_lr: float = 1e-3
    logp: bool = False              # the score also reads the SFT model's log p of the answer
    logp_lr: float = 5e-2           # f spreads over ~0.45 nats: u moves 50x as fast as a head weight
    grad_clip: float = 1.0
    seed: int = 0


def make_reward_model(ckpt, out, labeller, cfg, log=None):
    """Sample, label, train, save: <out>/../pairs.jsonl and the reward model at out.
    Returns {"accuracy": held-out pair accuracy, "pairs": ..., "history": ...}."""
    model, params, _ = load_checkpoint(ckpt)
    engine = policy_engine(params, model, chat_tokenizer(ckpt, model.vocab_size))
    prompts = OpenEnded(labeller.world)
    t = time.perf_counter()
    train = collect(engine, labeller, prompts.items("train", cfg.prompts, seed=cfg.seed), cfg.k,
                    cfg.max_tokens, cfg.temperature, seed=2 * cfg.seed)
    held = collect(engine, labeller, prompts.items("eval", cfg.held_out, seed=cfg.seed), cfg.k,
                   cfg.max_tokens, cfg.temperature, seed=2 * cfg.seed + 1)
    for split, records in (("train", train), ("eval", held)):
        for rec in records:
            rec["split"] = split
    write_pairs(train + held, Path(out).parent / "pairs.jsonl")
    seconds_data = time.perf_counter() - t
    train, held = [r for r in train if r["pairs"]], [r for r in held if r["pairs"]]
    rm, history = train_reward_model(ckpt, train, held, cfg, log)
    result = {"accuracy": history[-1]["accuracy"], "train_accuracy": history[-1]["train_accuracy"],
              "pairs": sum(len(r["pairs"]) for r in train), "held_out_pairs": sum(len(r["pairs"]) for r in held),
              "seconds_data": seconds_data, "seconds_training": history[-1]["seconds"],
              "by_part": accuracy_by_part(rm, labeller, held)}
    if rm.ref is not None:
        result["logp_weight"] = float(rm.u[0])
    rm.save(out, meta={"step": history[-1]["step"], "base": str(ckpt), **result})
    return dict(result, history=history, checkpoint=str(out))


def train_reward_model(ckpt, train, held, cfg, log=None):
    """A RewardModel from SFT checkpoint ckpt, trained on the records `train`; the held-out
    pair accuracy on `held` after each epoch goes to log(dict)."""
    model, params, _ = load_checkpoint(ckpt)
    rm = RewardModel(model, params, np.zeros(model.n_embd, np.float32), chat_tokenizer(ckpt, model.vocab_size),
                     u=np.zeros(1, np.float32))
    if cfg.logp:                                      # a frozen copy for f
        rm.ref, rm.reference = {k: v.copy() for k, v in params.items()}, Path(ckpt).resolve()
    opt, head_opt, u_opt = AdamW(rm.params), AdamW({"head": rm.head}), AdamW({"u": rm.u})
    rm.head, rm.u = head_opt.params["head"], u_opt.params["u"]      # the optimizers' views: updated in place
    rng = np.random.default_rng(cfg.seed)
    history, t0, step = [], time.perf_counter(), 0
    for epoch in range(cfg.epochs):
        order = rng.permutation(len(train))
        for s in range(0, len(order), cfg.batch):
            loss = train_step(rm, [train[i] for i in order[s:s + cfg.batch]], (opt, head_opt, u_opt), cfg)
            step += 1
            if log:
                log({"step": step, "epoch": epoch, "loss": loss})
        rec = {"epoch": epoch + 1, "step": step, "accuracy": accuracy(rm, held),
               "train_accuracy": accuracy(rm, train[:len(held)]), "seconds": time.perf_counter() - t0}
        history.append(rec)
        if log:
            log(rec)
    return rm, history


def train_step(rm, records, optimizers, cfg):
    """One update on the K answers of each record and every pair among them; the loss."""
    opt, head_opt, u_opt = optimizers
    rows, pairs = [], []
    for rec in records:
        item = Item(rec["messages"], None, rec["meta"])
        pairs += [(len(rows) + a, len(rows) + b) for a, b in rec["pairs"]]
        rows += [answer_ids(item, t, rm.tokenizer, rm.model.context_len) for t in rec["texts"]]
    # forward in micro-batches of similar length, the loss over all pairs, then each backward
    r, f, caches = np.zeros(len(rows)), np.zeros(len(rows)), []
    for chunk in by_length(rows, MICRO):
        x, lengths, starts = pad([rows[i] for i in chunk])
        r[chunk], cache = reward_forward(rm.params, rm.model, rm.head, x, lengths)
        if rm.ref is not None:
            f[chunk] = answer_logp(rm.ref, rm.model, x, lengths, starts)
        caches.append((chunk, cache))
    loss, dr = bt_loss(r + rm.u[0] * f, pairs)
    for chunk, cache in caches:
        grads, dhead = reward_backward(dr[chunk], cache)
        opt.accumulate(grads)
        head_opt.accumulate({"head": dhead})
    # the gradient of the loss is the sum over micro-batches (dr is already divided by P);
    # r_b = ... + u f_b  ->  dL/du = sum_b dr_b f_b
    if rm.ref is not None:
        u_opt.step(cfg.logp_lr, clip=cfg.grad_clip, grad_scale=1.0, grads={"u": np.array([dr @ f], np.float32)})
    opt.step(cfg.lr, clip=cfg.grad_clip, grad_scale=1.0)
    head_opt.step(cfg.head_lr, clip=cfg.grad_clip, grad_scale=1.0)
    return loss


def accuracy_by_part(rm, labeller, records):
    """What the reward model gets right, by what decided each pair: the part of the true
    score (labeller.WEIGHTS) whose weighted difference between the two answers is the
    largest. {"ceiling": the share of pairs the noise-free true score orders as the
    labeller did (its noise makes the rest coin flips, for any reward model), "parts":
    {part: {"pairs": n, "accuracy": the reward model's share right}}}."""
    items = [Item(rec["messages"], None, rec["meta"]) for rec in records for _ in rec["texts"]]
    texts = [t for rec in records for t in rec["texts"]]
    parts, r = labeller.score_parts(items, texts), rm.scores(items, texts)
    tally, agree, at = {}, 0, 0
    for rec in records:
        for a, b in rec["pairs"]:
            pa, pb = parts[at + a], parts[at + b]
            gap = {k: WEIGHTS[k] * (pa[k] - pb[k]) for k in WEIGHTS}
            t = tally.setdefault(max(gap, key=lambda k: abs(gap[k])), [0, 0])
            t[0] += 1
            t[1] += bool(r[at + a] > r[at + b])
            agree += pa["true"] > pb["true"]
        at += len(rec["texts"])
    n = sum(t[0] for t in tally.values())
    return {"ceiling": agree / max(n, 1),
            "parts": {k: {"pairs": c, "accuracy": right / c} for k, (c, right) in
                      sorted(tally.items(), key=lambda kv: -kv[1][0])}}


def accuracy(rm, records):
    """The share of the labeller's pairs in records that rm's scores order the same way."""
    right, total = 0, 0
    for s in range(0, len(records), 8):
        chunk = records[s:s + 8]
        items = [Item(rec["messages"], None, rec["meta"]) for rec in chunk for _ in rec["texts"]]
        r = rm.scores(items, [t for rec in chunk for t in rec["texts"]])
        at = 0
        for rec in chunk:
            right += sum(r[at + a] > r[at + b] for a, b in rec["pairs"])
            total += len(rec["pairs"])
            at += len(rec["texts"])
    return right / max(total, 1)
