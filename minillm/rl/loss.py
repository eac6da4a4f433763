"""The policy-gradient loss of RL on verifiable rewards, and its gradient, by hand.

Practice: the model samples G answers to a prompt, a checker scores each (reward 1 if the
final number is right, else 0), and every token of an answer is pushed up or down by how
much better than its group the answer did. That is all "RL" means here (GRPO, DeepSeek-R1):

    A_i = (r_i - mean(r)) / (std(r) + eps)           group_advantages: one A per answer
    L   = -(1/N) sum_t m_t * A * c_t * log p(y_t)    policy_gradient: N = supervised tokens

m_t is 1 on the tokens the model sampled (0 on the prompt, the tool outputs, the padding);
c_t is 1 for REINFORCE, or PPO's clipped ratio p/p_old (0 where the ratio left [1-eps, 1+eps]
in the direction A pushes: that token has moved enough). An optional KL penalty beta *
KL(p || p_ref) per token keeps the policy near the SFT model. The gradient with respect to
the logits z (B, T, V) is written beside each formula and checked by finite differences
(tests/rl/test_loss.py); gpt.backward(cache, dlogits) carries it into the weights.

Read next: tasks.py (the rewards), grpo.py (the loop).
"""
import numpy as np


def group_advantages(rewards, group, normalize=True, eps=1e-6):
    """rewards (P*G,) in prompt-major order -> advantages (P*G,): each reward minus its
    group's mean, divided by the group's std when normalize (GRPO). A group whose answers
    all scored the same gets 0 everywhere: nothing to learn from it."""
    # exercise: grpo
    r = np.asarray(rewards, dtype=np.float64).reshape(-1, group)       # (P, G)
    a = r - r.mean(axis=1, keepdims=True)                              # (P, G)
    if normalize:
        a = a / (r.std(axis=1, keepdims=True) + eps)                   # (P, G)
    return a.reshape(-1)                                               # (P*G,)
    # end exercise


def log_softmax(z):
    """z (..., V) -> log p (..., V), computed stably."""
    z = z - z.max(axis=-1, keepdims=True)                              # (..., V)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))           # (..., V)


def token_logprobs(z, tokens):
    """log p(tokens) under logits z: (B, T, V), (B, T) -> (B, T)."""
    logp = log_softmax(z)                                              # (B, T, V)
    return np.take_along_axis(logp, tokens[..., None], axis=-1)[..., 0]  # (B, T)


def policy_gradient(z, tokens, mask, adv, old_logp=None, clip=0.2, ref_logp=None, beta=0.0):
    """(loss, dz, stats) of the policy-gradient loss above.

    z (B, T, V) logits; tokens (B, T) the sampled token at each position; mask (B, T) 1 on
    the tokens to learn from; adv (B,) one advantage per sequence; old_logp (B, T) the
    sampling policy's log p(tokens) (None: REINFORCE, c_t = 1); ref_logp (B, T, V) the
    reference model's log-probabilities: stats["kl"] is KL(p || p_ref) per masked token,
    and with beta > 0 it is also a penalty in the loss."""
    B, T, V = z.shape
    mask = np.asarray(mask, dtype=z.dtype)                             # (B, T)
    n = max(float(mask.sum()), 1.0)
    logp = log_softmax(z)                                              # (B, T, V)
    p = np.exp(logp)                                                   # (B, T, V)
    lp = np.take_along_axis(logp, tokens[..., None], axis=-1)[..., 0]  # (B, T)
    a = np.asarray(adv, dtype=z.dtype)[:, None] * np.ones((1, T), z.dtype)  # (B, T)
    if old_logp is None:
        c = np.ones_like(lp)                                           # (B, T) REINFORCE
        surrogate = a * lp                                             # (B, T)
    else:
        ratio = np.exp(lp - old_logp)                                  # (B, T)
        # PPO: min(ratio * A, clip(ratio) * A); the clipped branch has no gradient
        clipped = np.where(a >= 0, ratio > 1 + clip, ratio < 1 - clip)  # (B, T)
        c = np.where(clipped, 0.0, ratio).astype(z.dtype)              # (B, T)
        surrogate = np.minimum(ratio * a, np.clip(ratio, 1 - clip, 1 + clip) * a)  # (B, T)
    loss = -(mask * surrogate).sum() / n
    # exercise: grpo
    # d(-A c log p(y)) / dz = -A c (onehot(y) - p); for PPO d ratio = ratio * d log p(y)
    w = -(mask * a * c) / n                                            # (B, T)
    dz = -w[..., None] * p                                             # (B, T, V)
    np.put_along_axis(dz, tokens[..., None], np.take_along_axis(dz, tokens[..., None], -1)
                      + w[..., None], axis=-1)
    # end exercise
    kl_mean = 0.0
    if ref_logp is not None:                                           # measured; a penalty if beta > 0
        kl = (p * (logp - ref_logp)).sum(axis=-1)                      # (B, T)
        kl_mean = float((mask * kl).sum() / n)
    if beta > 0 and ref_logp is not None:
        loss += beta * kl_mean
        # d KL / dz_k = p_k (log p_k - log q_k - KL): the softmax's Jacobian applied to
        # d KL / d log p = p (log p - log q) + p
        dz += (beta * mask / n)[..., None] * p * (logp - ref_logp - kl[..., None])
    entropy = -(p * logp).sum(axis=-1)                                 # (B, T)
    stats = {"entropy": float((mask * entropy).sum() / n),
             "clipped": float((mask * (c == 0)).sum() / n) if old_logp is not None else 0.0,
             "kl": kl_mean}
    return float(loss), dz, stats
