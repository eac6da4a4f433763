"""minillm against the same architecture in PyTorch (tests/torch_ref.py), loaded with the
same float32 weights: same logits, loss and every gradient.

float32 tolerances (both sides accumulate in float32, in different orders):
    logits   max |diff| <= 2e-5 * max |logit| + 1e-6
    loss     relative 1e-5
    grads    per tensor, max |diff| <= 1e-4 * max |torch grad|   (measured: ~1e-6)

    python -m pytest tests/nn/test_torch_parity.py
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch parity needs the test extra (torch)")

from minillm.nn.gpt import GPTConfig, backward, forward, init_params  # noqa: E402
from torch_ref import TorchLlama, grads_as_dict, load_params  # noqa: E402

CONFIGS = {
    "gqa-untied": GPTConfig(vocab_size=97, context_len=32, n_layer=3, n_head=4, n_kv_head=2,
                            n_embd=64, hidden_dim=176),
    "mha-tied": GPTConfig(vocab_size=61, context_len=24, n_layer=2, n_head=3, n_kv_head=3,
                          n_embd=48, hidden_dim=128, tie_embeddings=True),
    "mqa-odd": GPTConfig(vocab_size=37, context_len=16, n_layer=2, n_head=4, n_kv_head=1,
                         n_embd=40, hidden_dim=56, rope_theta=500.0, norm_eps=1e-6),
}


def compare(config, use_mask, seed=0, B=3, T=None):
    rng = np.random.default_rng(seed)
    T = T or config.context_len - 1
    params = init_params(config, seed)
    params = {k: v + rng.standard_normal(v.shape).astype(np.float32) * 0.05 for k, v in params.items()}
    idx = rng.integers(0, config.vocab_size, (B, T))
    targets = rng.integers(0, config.vocab_size, (B, T))
    targets[0, :3] = -1
    mask = rng.random((B, T)).astype(np.float32) if use_mask else None

    model = load_params(TorchLlama(config), params)
    logits, _ = forward(params, config, idx)
    ref_logits = model(idx).detach().numpy()
    assert np.abs(logits - ref_logits).max() <= 2e-5 * np.abs(ref_logits).max() + 1e-6

    loss, cache = forward(params, config, idx, targets, mask)
    grads = backward(cache)
    ref_loss = model(idx, targets, mask)
    ref_loss.backward()
    assert loss == pytest.approx(ref_loss.item(), rel=1e-5)
    ref_grads = grads_as_dict(model)
    assert list(grads) == list(ref_grads)
    for name, ref in ref_grads.items():
        err = np.abs(grads[name] - ref).max()
        assert err <= 1e-4 * np.abs(ref).max(), f"{name}: max |diff| {err:.3g}"


@pytest.mark.parametrize("name", list(CONFIGS))
def test_parity_with_pytorch(name):
    compare(CONFIGS[name], use_mask=False)


@pytest.mark.parametrize("name", ["gqa-untied", "mha-tied"])
def test_parity_with_pytorch_with_loss_mask(name):
    compare(CONFIGS[name], use_mask=True, seed=1, T=11)


@pytest.mark.slow
def test_parity_at_benchmark_shape_a():
    """The nanoGPT CPU recipe's shape (4 layers, 4 heads, 128 wide, context 64, batch 12)."""
    config = GPTConfig.from_depth(4, vocab_size=256, context_len=64, n_embd=128)
    compare(config, use_mask=False, B=12, T=64)
