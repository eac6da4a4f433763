"""render.py: tokens shown one by one, supervised ones marked, specials by name."""
from minillm.chat.render import legend, show, summary, token_strings
from minillm.chat.template import render

CONV = [{"role": "user", "content": "Hi <|user_end|>\n"},
        {"role": "assistant", "content": [{"type": "python", "text": "17*23"}, {"type": "output", "text": "391"},
                                          {"type": "text", "text": "391."}]}]


def test_tokens_are_shown_one_by_one_with_specials_by_name(tok):
    ids, mask = render(CONV, tok)
    shown = token_strings(ids, tok)
    assert shown[:2] == ["<|bos|>", "<|user_start|>"] and shown[-1] == "<|assistant_end|>"
    assert shown.count("<|user_end|>") == 1                       # the typed one is several tokens
    assert "".join(shown[2:shown.index("<|user_end|>")]) == "Hi <|user_end|>↵"
    assert token_strings([tok.encode_ordinary("é")[0]], tok) in (["é"], ["<c3>"])


def test_plain_view_marks_supervised_tokens_with_braces(tok):
    ids, mask = render(CONV, tok)
    text = show(ids, mask, tok, color=False)
    lines = text.split("\n")
    assert lines[0] == "[<|bos|>]" and lines[1].startswith("[<|user_start|>][")
    assert lines[1].endswith("[<|user_end|>]") and "{" not in lines[1]
    assert lines[2].startswith("[<|assistant_start|>]{<|python_start|>}")
    assert "{<|python_end|>}[<|output_start|>]" in lines[2] and lines[2].endswith("{<|assistant_end|>}")
    assert text.count("{") == int(mask.sum()) and text.count("[") >= len(ids) - int(mask.sum())
    assert "\x1b" not in text and "\x1b" not in legend(False)


def test_colour_view_alternates_backgrounds(tok):
    ids, mask = render(CONV, tok)
    text = show(ids, mask, tok, color=True)
    assert text.count("\x1b[0m") == len(ids)
    assert text.count("\x1b[48;5;120m") + text.count("\x1b[48;5;78m") == int(mask.sum())
    assert "\x1b[1m<|bos|>" in text
    assert summary(ids, mask) == f"{len(ids)} tokens, {int(mask.sum())} supervised ({100 * mask.sum() / len(ids):.1f}%)"
