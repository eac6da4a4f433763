"""The learner's view of a rendered conversation: every token visible, the supervised ones marked.

"Conversations are just tokens": show() prints the ids template.render() made, one coloured
box per token (two shades alternate, so boundaries show), green where mask = 1 (what the
assistant learns to write), grey where mask = 0 (context: user turns, tool outputs).
Special tokens appear by name in bold; a user who typed "<|user_end|>" shows up as several
small ordinary tokens instead. Without colour (not a terminal, or --color never):

    [<|bos|>][<|user_start|>][What][ is][ 17][*][23][?][<|user_end|>]
    [<|assistant_start|>]{<|python_start|>}{17}{*}{23}{<|python_end|>}[<|output_start|>][391]...

[...] is context (mask 0), {...} supervised (mask 1).

    minillm chat render conversations.jsonl --index 3 --tokenizer runs/default/tokenizer.json

Read next: template.py (how the ids and the mask are made).
"""
# 256-colour backgrounds: two shades each, alternating token by token
_CONTEXT = (252, 246)           # greys: mask 0
_LEARNED = (120, 78)            # greens: mask 1
_BREAK_AFTER = ("<|bos|>", "<|user_end|>", "<|assistant_end|>")


def token_strings(ids, tokenizer):
    """Each token as text: special tokens by name, bytes that are not whole UTF-8
    characters as <xx>, newlines and tabs as visible marks."""
    names = {i: s for s, i in tokenizer.special_tokens.items()}
    out = []
    for i in ids:
        i = int(i)
        if i in names:
            out.append(names[i])
            continue
        data = tokenizer.decode_bytes([i])
        try:
            shown = data.decode("utf-8")
        except UnicodeDecodeError:              # part of a multi-byte character
            shown = "".join(f"<{b:02x}>" for b in data)
        out.append(shown.replace("\n", "↵").replace("\t", "→").replace("\r", "␍"))
    return out


def show(ids, mask, tokenizer, color=False):
    """ids and mask -> a printable string (ANSI colours when color, else brackets)."""
    specials = set(tokenizer.special_tokens.values())
    pieces = []
    for k, (i, text) in enumerate(zip(ids, token_strings(ids, tokenizer))):
        learned = bool(mask[k])
        if color:
            bg = (_LEARNED if learned else _CONTEXT)[k % 2]
            bold = "\x1b[1m" if int(i) in specials else ""
            pieces.append(f"\x1b[48;5;{bg}m\x1b[38;5;16m{bold}{text}\x1b[0m")
        else:
            pieces.append(f"{{{text}}}" if learned else f"[{text}]")
        if text in _BREAK_AFTER and int(i) in specials:
            pieces.append("\n")
    return "".join(pieces).rstrip("\n")


def legend(color=False):
    if color:
        return ("\x1b[48;5;120m\x1b[38;5;16m green \x1b[0m supervised (mask 1)   "
                "\x1b[48;5;252m\x1b[38;5;16m grey \x1b[0m context (mask 0)   special tokens in bold")
    return "{...} supervised (mask 1)   [...] context (mask 0)"


def summary(ids, mask):
    n, learned = len(ids), int(sum(int(m) for m in mask))
    return f"{n} tokens, {learned} supervised ({100 * learned / max(n, 1):.1f}%)"
