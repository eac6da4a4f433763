"""Fixtures of the RLHF tests: the smoke world and a tiny random model with the chat tokenizer."""
import pytest

from minillm.nn import gpt
from minillm.nn.checkpoint import save_checkpoint
from minillm.tokenizer.train import train_tokenizer
from minillm.world.world import World

TEXT = ("Write a short poem about Tamith. Tamith is a city in Tamonston on the river. "
        "Use 6 and 7 to make 42. Answer: 6 * 7\n") * 20


@pytest.fixture(scope="session")
def run(tmp_path_factory):
    """A run directory: world/ (smoke), base/ and sft/ (the same tiny random model)."""
    root = tmp_path_factory.mktemp("rlhf_run")
    tok = train_tokenizer(TEXT, 300)
    config = gpt.GPTConfig(vocab_size=tok.vocab_size, context_len=256, n_layer=1, n_head=2, n_kv_head=2,
                           n_embd=32, hidden_dim=64, tie_embeddings=True)
    params = gpt.init_params(config, 0)
    save_checkpoint(root / "base", config, params, tokenizer=tok, meta={"stage": "base"})
    save_checkpoint(root / "sft", config, params, tokenizer=tok, meta={"stage": "sft"})
    World.build(seed=0, size="smoke").save(root / "world")
    return root
