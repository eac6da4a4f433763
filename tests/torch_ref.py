"""The same Llama architecture as minillm/nn/gpt.py, written in PyTorch: the reference that
tests and benchmarks compare minillm against.

It is written the way a PyTorch user would write it (autograd, F.scaled_dot_product_attention,
F.cross_entropy), independently of minillm's layers; only GPTConfig is shared. Parameter
names are minillm's, so weights and gradients move between the two by name:

    from tests.torch_ref import TorchLlama, load_params, grads_as_dict
    model = TorchLlama(config)             # initialized like gpt.init_params (its own RNG)
    load_params(model, params)             # ... or with exactly minillm's weights
    loss = model(idx, targets, loss_mask)  # idx, targets: LongTensor or NumPy (B, T)
    loss.backward()
    grads = grads_as_dict(model)           # name -> float32 NumPy array, like gpt.backward

Requires torch (a test extra): `python -m pytest tests/nn/test_torch_parity.py`.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from minillm.nn.gpt import param_shapes


def rope_frequencies(T, HD, theta=10000.0):
    """(T, HD/2) complex64: e^(i * t * theta^(-2i/HD)), angles in float64."""
    inv_freq = theta ** (-torch.arange(0, HD, 2, dtype=torch.float64) / HD)
    angles = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)
    return torch.polar(torch.ones_like(angles), angles).to(torch.complex64)


def apply_rope(x, freqs):
    """x (B, T, heads, HD): rotate the interleaved pairs (x[2i], x[2i+1]) (Meta's layout)."""
    B, T, NH, HD = x.shape
    xc = torch.view_as_complex(x.float().reshape(B, T, NH, HD // 2, 2))
    return torch.view_as_real(xc * freqs[None, :, None, :]).reshape(B, T, NH, HD).type_as(x)


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        C, H, HD = config.n_embd, config.hidden_dim, config.head_dim
        self.config = config
        self.attn_norm = nn.Parameter(torch.ones(C))
        self.wq = nn.Parameter(torch.empty(config.n_head * HD, C))
        self.wk = nn.Parameter(torch.empty(config.n_kv_head * HD, C))
        self.wv = nn.Parameter(torch.empty(config.n_kv_head * HD, C))
        self.wo = nn.Parameter(torch.empty(C, config.n_head * HD))
        self.mlp_norm = nn.Parameter(torch.ones(C))
        self.w_gate = nn.Parameter(torch.empty(H, C))
        self.w_up = nn.Parameter(torch.empty(H, C))
        self.w_down = nn.Parameter(torch.empty(C, H))

    def forward(self, x, freqs):
        cfg = self.config
        B, T, C = x.shape
        HD = cfg.head_dim
        h = rmsnorm(x, self.attn_norm, cfg.norm_eps)
        q = F.linear(h, self.wq).view(B, T, cfg.n_head, HD)
        k = F.linear(h, self.wk).view(B, T, cfg.n_kv_head, HD)
        v = F.linear(h, self.wv).view(B, T, cfg.n_kv_head, HD)
        q, k = apply_rope(q, freqs), apply_rope(k, freqs)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                           is_causal=True, enable_gqa=cfg.n_kv_head != cfg.n_head)
        x = x + F.linear(y.transpose(1, 2).reshape(B, T, -1), self.wo)
        h = rmsnorm(x, self.mlp_norm, cfg.norm_eps)
        return x + F.linear(F.silu(F.linear(h, self.w_gate)) * F.linear(h, self.w_up), self.w_down)


class TorchLlama(nn.Module):
    def __init__(self, config, seed=0):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Parameter(torch.empty(config.vocab_size, config.n_embd))
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.final_norm = nn.Parameter(torch.ones(config.n_embd))
        if not config.tie_embeddings:
            self.lm_head = nn.Parameter(torch.empty(config.vocab_size, config.n_embd))
        self.register_buffer("freqs", rope_frequencies(config.context_len, config.head_dim,
                                                       config.rope_theta), persistent=False)
        self._init(seed)

    @torch.no_grad()
    def _init(self, seed):
        """gpt.init_params' scheme: norms 1, matrices N(0, 0.02), wo and w_down
        N(0, 0.02 / sqrt(2 n_layer)). Same distribution, not the same numbers."""
        gen = torch.Generator().manual_seed(seed)
        for name, p in self.named_parameters():
            if p.ndim == 2:
                std = 0.02 / math.sqrt(2 * self.config.n_layer) if name.endswith(("wo", "w_down")) else 0.02
                p.normal_(0.0, std, generator=gen)

    def forward(self, idx, targets=None, loss_mask=None):
        """logits (B, T, V) when targets is None; else the (masked) mean cross-entropy."""
        idx = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        B, T = idx.shape
        x = self.tok_emb[idx]
        for block in self.blocks:
            x = block(x, self.freqs[:T])
        h = rmsnorm(x, self.final_norm, self.config.norm_eps)
        logits = F.linear(h, self.tok_emb if self.config.tie_embeddings else self.lm_head)
        if targets is None:
            return logits
        targets = torch.as_tensor(np.asarray(targets), dtype=torch.long).view(-1)
        V = logits.shape[-1]
        if loss_mask is None:
            return F.cross_entropy(logits.view(-1, V), targets, ignore_index=-1)
        nll = F.cross_entropy(logits.view(-1, V), targets, ignore_index=-1, reduction="none")
        w = (targets != -1).float() * torch.as_tensor(np.asarray(loss_mask), dtype=torch.float32).view(-1)
        return (nll * w).sum() / w.sum()


@torch.no_grad()
def load_params(model, params):
    """Copy minillm's params dict (name -> NumPy array) into the model; names must match."""
    names = dict(model.named_parameters())
    if set(names) != set(params):
        raise ValueError(f"parameter names differ: {sorted(set(names) ^ set(params))}")
    for name, p in names.items():
        p.copy_(torch.from_numpy(np.asarray(params[name], dtype=np.float32)))
    return model


def _in_minillm_order(model, tensors):
    """Reorder like gpt.param_shapes (torch lists a module's own parameters first)."""
    return {name: tensors[name] for name in param_shapes(model.config)}


def params_as_dict(model):
    """name -> float32 NumPy array (copies) of the model's weights, in minillm's order."""
    return _in_minillm_order(model, {n: p.detach().numpy().copy() for n, p in model.named_parameters()})


def grads_as_dict(model):
    """name -> float32 NumPy array (copies) of the gradients after loss.backward()."""
    return _in_minillm_order(model, {n: p.grad.detach().numpy().copy() for n, p in model.named_parameters()})
