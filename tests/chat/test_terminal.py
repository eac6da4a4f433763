"""terminal.py: `minillm chat --ckpt DIR` driven by scripted stdin, no terminal needed.

The model is tiny and hand-set: its blocks add nothing (wo = w_down = 0), so the logits
depend on the current token alone, and lm_head makes a chain of greedy next tokens
(a bigram table): after <|assistant_start|> it writes a calculator call 17*23, and after
the tool's output "It is 391." and <|assistant_end|>. Every reply is then known exactly.
"""
import argparse
import io

import numpy as np
import pytest

from minillm.chat import cli, terminal
from minillm.chat.search import BM25Index
from minillm.chat.template import render_prompt
from minillm.common import UserError
from minillm.nn import gpt
from minillm.nn.checkpoint import save_checkpoint

REPLY = "[calculator: 17*23 -> 391] It is 391."


@pytest.fixture
def ckpt(tmp_path, tok):
    """A 64-token-context model whose greedy reply to anything is REPLY's tokens."""
    sp = tok.special_tokens
    text = lambda s: tok.encode_ordinary(s)                          # noqa: E731
    chains = [[sp["<|assistant_start|>"], sp["<|python_start|>"], *text("17*23"), sp["<|python_end|>"]],
              [sp["<|output_end|>"], *text("It is 391."), sp["<|assistant_end|>"]]]
    c = gpt.GPTConfig(vocab_size=tok.vocab_size, context_len=64, n_layer=1, n_head=2, n_kv_head=2,
                      n_embd=64, hidden_dim=32)
    p = gpt.init_params(c, 0)
    p["blocks.0.wo"][:] = 0
    p["blocks.0.w_down"][:] = 0
    emb = p["tok_emb"] / np.linalg.norm(p["tok_emb"], axis=1, keepdims=True)   # (V, C) unit rows
    p["lm_head"][:] = 0
    for chain in chains:
        assert len(set(chain)) == len(chain)
        for a, b in zip(chain, chain[1:]):
            p["lm_head"][b] += 5 * emb[a]                            # logit of b after a: ~5 * sqrt(C)
    save_checkpoint(tmp_path / "sft", c, p, tokenizer=tok, meta={"stage": "sft"})
    return tmp_path / "sft"


def session(ckpt, script, **settings):
    chat, note = terminal.open_chat(ckpt, **{"temperature": 0, "max_tokens": 24, **settings})
    out = io.StringIO()
    terminal.run_chat(chat, io.StringIO(script), out)
    return chat, out.getvalue()


def test_a_tool_call_shows_inline_and_stays_in_the_history(ckpt):
    chat, out = session(ckpt, "What is 17*23?\n/quit\nnever read\n")
    assert out == f"you> What is 17*23?\nassistant> {REPLY}\nyou> /quit\n"
    assert chat.history == [{"role": "user", "content": "What is 17*23?"},
                            {"role": "assistant", "content": [{"type": "python", "text": "17*23"},
                                                              {"type": "output", "text": "391"},
                                                              {"type": "text", "text": "It is 391."}]}]


def test_commands_reset_temp_help_and_end_of_input(ckpt):
    chat, out = session(ckpt, "hi\n/temp 0.5\n/temp hot\n/what\n/reset\n\n")
    assert out.splitlines() == ["you> hi", f"assistant> {REPLY}", "you> /temp 0.5", "[temperature 0.5]",
                                "you> /temp hot", "[/temp takes a number >= 0 (now 0.5)]", "you> /what",
                                f"[{terminal.HELP}]", "you> /reset", "[conversation reset]", "you> ", "you> "]
    assert chat.history == [] and chat.temperature == 0.5


def test_a_full_context_drops_the_oldest_exchanges(ckpt, tok):
    chat, out = session(ckpt, "What is 17*23?\n" * 3)
    replies = [line for line in out.splitlines() if line.startswith("assistant> ")]
    assert replies == [f"assistant> {REPLY}"] * 3             # the hand-set model answers regardless
    dropped = out.count("[the context is full (64 tokens): forgot the oldest 1 exchange(s)]")
    assert dropped >= 1 and out.index("forgot") > out.index(REPLY)
    assert len(chat.history) == 2 * (3 - dropped)
    budget = 64 - 24
    assert len(render_prompt(chat.history[:-1], tok)) <= budget


def test_a_message_too_long_for_the_context(ckpt):
    chat, out = session(ckpt, "word " * 80 + "\nhi\n")
    assert "[that message is too long for the context (40 tokens with the reply's room)" in out
    assert [m["content"] for m in chat.history if m["role"] == "user"] == ["hi"]


def test_search_uses_the_run_index_else_says_it_is_off(ckpt):
    chat, note = terminal.open_chat(ckpt)
    assert note.startswith("search: off (no index at") and chat.engine.tools["search"]("x") == terminal.NO_SEARCH
    index = BM25Index.build(["Velmora is a city by the sea. Its capital is Ostrin, founded in 1204."],
                            min_words=3, max_words=40)
    index.save(ckpt.parent / "chat" / "search.npz")
    chat, note = terminal.open_chat(ckpt)
    assert note == f"search: {ckpt.parent / 'chat' / 'search.npz'}"
    assert "Ostrin" in chat.engine.tools["search"]("capital of Velmora")


def test_the_cli_reads_stdin(ckpt, monkeypatch, capsys):
    parser = argparse.ArgumentParser(prog="minillm chat")
    cli.add_arguments(parser)
    monkeypatch.setattr("sys.stdin", io.StringIO("What is 17*23?\n"))
    cli.run(parser.parse_args(["--ckpt", str(ckpt), "--temperature", "0", "--max-tokens", "24"]))
    out = capsys.readouterr().out
    assert out.startswith(f"minillm chat: {ckpt} (") and f"assistant> {REPLY}\n" in out
    with pytest.raises(UserError, match="--temperature must be >= 0"):
        cli.run(parser.parse_args(["--ckpt", str(ckpt), "--temperature", "-1"]))
    with pytest.raises(UserError, match="or --ckpt DIR to talk to a checkpoint"):
        cli.run(parser.parse_args([]))


def test_a_checkpoint_without_chat_tokens_is_refused(tmp_path):
    c = gpt.GPTConfig(vocab_size=256, context_len=16, n_layer=1, n_head=2, n_kv_head=2, n_embd=16, hidden_dim=16)
    save_checkpoint(tmp_path / "bytes", c, gpt.init_params(c, 0))
    with pytest.raises(UserError, match="no chat special tokens"):
        terminal.open_chat(tmp_path / "bytes")


def test_a_reply_cut_at_max_tokens_says_so(ckpt):
    chat, out = session(ckpt, "hi\n", max_tokens=4)
    assert out.splitlines()[1:3] == ["assistant> [calculator: 17*23", "[the reply was cut at 4 tokens]"]
    assert chat.history[-1] == {"role": "assistant", "content": "17*23"}   # an unfinished call: its text


def test_ctrl_c_stops_a_reply_not_the_chat(ckpt, monkeypatch):
    real, calls = terminal.show, [0]

    def show(stream, tok, out):
        calls[0] += 1
        if calls[0] == 1:
            raise KeyboardInterrupt
        return real(stream, tok, out)

    monkeypatch.setattr(terminal, "show", show)
    chat, out = session(ckpt, "first\nsecond\n")
    assert "[stopped; the exchange is forgotten]" in out and f"assistant> {REPLY}" in out
    assert [m["content"] for m in chat.history if m["role"] == "user"] == ["second"]
