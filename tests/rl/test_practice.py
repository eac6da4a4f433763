"""RL end to end on a small model (slow): practice raises the reward.

A 2-layer model learns the countdown puzzle by SFT from chat/data_countdown.py's imperfect
demonstrator (it multiplies only 20% of the times it should), then practises with GRPO on
the checked answer; the held-out pass@1 and the training reward must rise.

    python -m pytest -m slow tests/rl/test_practice.py
"""
import json

import numpy as np
import pytest

from minillm import clib
from minillm.chat.data_countdown import countdown_conversations
from minillm.chat.sft import SFTConfig, sft
from minillm.nn import gpt
from minillm.nn.checkpoint import save_checkpoint
from minillm.rl.grpo import RLConfig, rl
from minillm.tokenizer.train import train_tokenizer
from minillm.world.data import Rng
from minillm.world.world import World


@pytest.mark.slow
def test_practice_raises_the_reward(tmp_path):
    clib.set_num_threads(2)
    convs = countdown_conversations(3000, "train", Rng("test-practice", 0))
    text = "".join(c["messages"][0]["content"] + " " + c["messages"][1]["content"] + "\n" for c in convs[:400])
    tok = train_tokenizer(text, 320)
    config = gpt.GPTConfig(vocab_size=tok.vocab_size, context_len=64, n_layer=2, n_head=4, n_kv_head=4,
                           n_embd=96, hidden_dim=256, tie_embeddings=True)
    save_checkpoint(tmp_path / "base", config, gpt.init_params(config, 0), tokenizer=tok)
    (tmp_path / "convs.jsonl").write_text("".join(json.dumps(c) + "\n" for c in convs))
    sft(SFTConfig(ckpt=str(tmp_path / "base"), out=str(tmp_path / "sft"), data=str(tmp_path / "convs.jsonl"),
                  steps=600, batch_size=32, lr=3e-3, eval_every=0, progress=False))
    World.build(seed=0, size="smoke").save(tmp_path / "world")
    r = rl(RLConfig(ckpt=str(tmp_path / "sft"), out=str(tmp_path / "rl"), task="countdown", steps=60, prompts=8,
                    group=8, max_tokens=20, lr=3e-4, temperature=1.0, eval_every=60, eval_prompts=60, k=4,
                    progress=False))
    first, last = r["history"][0], r["history"][-1]
    rewards = [h["reward"] for h in r["history"] if "reward" in h]
    print(f"pass@1 {first['pass1']:.3f} -> {last['pass1']:.3f}; reward {np.mean(rewards[:5]):.3f} -> {np.mean(rewards[-5:]):.3f}")
    assert last["pass1"] >= first["pass1"] + 0.1
    assert np.mean(rewards[-5:]) >= np.mean(rewards[:5]) + 0.1
