"""Kind 6 of the SFT conversations: what models can't do well, spelling and counting.

A model sees tokens, not letters: "strawberry" may be two tokens, and how many r's it
holds is nowhere in them. So a third of the conversations are spelling practice, and
three tasks are answered three ways:

    spell     "Spell these words: ..." -> '"strawberry" is spelled s, t, r, a, w, b, e, r, r, y.'
    count     "How many 'r's are in strawberry?"
    reverse   "Spell strawberry backwards."
    compare   "Which is bigger, 9.11 or 9.9?"

    direct      the answer at once (what fails)
    spelled     one character per token first, then the answer from that: 'Let me spell it
                out: "strawberry" is spelled s, t, r (1), a, w, b, e, r (2), r (3), y. So
                there are 3 r's in "strawberry".' (the word is written again right before
                its letters, where the model can read its tokens)
    tool        the calculator does the part that needs it: "0+0+1+0+0+0+0+1+1+0" -> 3,
                "9.9-9.11" -> 0.19 (positive, so 9.9 is bigger)

Words come from the mini-world (names, jobs, pets, ...) and a list of everyday words;
splits.word() holds some words out for the eval, splits.problem(("compare", a, b)) some pairs.

Read next: data_chitchat.py (kind 7).
"""
from minillm.chat.tools import calculator
from minillm.world.data import words as world_words

EVERYDAY = ("strawberry", "banana", "mississippi", "bookkeeper", "committee", "balloon", "coffee",
            "necessary", "parallel", "tomorrow", "assessment", "raspberry", "letter", "address",
            "success", "butterfly", "giraffe", "pepper", "umbrella", "cinnamon", "chocolate",
            "elephant", "hippopotamus", "occurrence", "accommodate", "embarrass", "millennium")
METHODS = ("direct", "spelled", "tool")


def vocabulary(world):
    """Lower-case single words to spell: everyday words and the world's words and names."""
    pool = set(EVERYDAY)
    for section in ("occupation", "pet", "industry", "hobby"):
        pool.update(w for w in world_words(section) if w.isalpha())
    for e in world.entities.values():
        pool.update(part.lower() for part in e.name.split() if part.isalpha() and len(part) >= 4)
    return sorted(pool)


def _plural(n, letter):
    return f"{n} {letter}'s" if n != 1 else f"1 {letter}"


def pick_letter(word, rng):
    """The letter a count question asks about: 40% a letter the word repeats (the
    "strawberry" case), 40% any of its letters, 20% a common letter that may be absent."""
    repeated = sorted(c for c in set(word) if word.count(c) > 1)
    u = rng.random()
    if u < 0.4 and repeated:
        return rng.choice(repeated)
    return rng.choice(sorted(set(word))) if u < 0.8 else rng.choice("aeiorstn")


def spelled(word):
    """'"banana" is spelled b, a, n, a, n, a': the word is written again right before its
    letters, so the model reads its tokens there, not a whole question back."""
    return f"\"{word}\" is spelled {', '.join(word)}"


SPELL_ASKS = ("Spell {w}.", "How do you spell {w}?", "Can you spell {w} for me?", "Spell these words: {w}.")


def spell_words(words, rng):
    """(question, answer) for "spell these words": one line per word, the letters in the
    form every other method spells in. The practice that teaches which letters a token
    holds (a token's letters are nowhere in its id)."""
    ask = rng.choice(SPELL_ASKS) if len(words) == 1 else SPELL_ASKS[-1]
    question = ask.format(w=", ".join(f"\"{w}\"" for w in words))
    return question, "\n".join(spelled(w) + "." for w in words)


def count_letter(word, letter, method):
    """(question, assistant content, answer) for "how many <letter> in <word>"."""
    n = word.count(letter)
    question = f"How many '{letter}'s are in the word \"{word}\"?"
    end = f"There {'is' if n == 1 else 'are'} {_plural(n, letter)} in \"{word}\"."
    if method == "direct":
        return question, end, n
    if method == "spelled":
        seen, shown = 0, []
        for ch in word:
            seen += ch == letter
            shown.append(f"{ch} ({seen})" if ch == letter else ch)
        return question, f"Let me spell it out: \"{word}\" is spelled {', '.join(shown)}. So {end[0].lower()}{end[1:]}", n
    ones = "+".join("1" if ch == letter else "0" for ch in word)
    content = [{"type": "text", "text": f"Spelled out: {spelled(word)}. A 1 for each '{letter}':"},
               {"type": "python", "text": ones}, {"type": "output", "text": calculator(ones)},
               {"type": "text", "text": end}]
    return question, content, n


def reverse_word(word, method):
    backwards = word[::-1]
    question = f"Spell \"{word}\" backwards."
    if method == "direct":
        return question, f"\"{word}\" backwards is \"{backwards}\".", backwards
    return question, (f"Forwards: {spelled(word)}. Backwards: {', '.join(backwards)}. "
                      f"So \"{word}\" backwards is \"{backwards}\"."), backwards


def compare_numbers(a, b, method):
    """a, b: decimal strings like "9.11" and "9.9"."""
    bigger = a if float(a) > float(b) else b
    question = f"Which is bigger, {a} or {b}?"
    end = f"{bigger} is bigger."
    if method == "direct":
        return question, end, bigger
    if method == "spelled":
        width = max(len(a.split(".")[1]), len(b.split(".")[1]))
        pa, pb = (x.split(".")[0] + "." + x.split(".")[1].ljust(width, "0") for x in (a, b))
        return question, (f"With the same number of decimals: {a} is {pa} and {b} is {pb}. "
                          f"Digit by digit, {', '.join(pa)} against {', '.join(pb)}. So {end}"), bigger
    diff = f"{a}-{b}"
    out = calculator(diff)
    sign = "negative" if out.startswith("-") else "positive"
    return question, [{"type": "python", "text": diff}, {"type": "output", "text": out},
                      {"type": "text", "text": f"{a} - {b} is {sign}, so {end}"}], bigger


def _decimal_pair(rng):
    """A pair where comparing the digits after the point as whole numbers misleads."""
    whole = rng.randint(1, 20)
    short = rng.randint(1, 9)
    long_ = rng.randint(10, 99)
    if long_ // 10 == short:
        long_ = (short - 1) * 10 + rng.randint(1, 9) if short > 1 else 10 + rng.randint(1, 9)
    pair = [f"{whole}.{short}", f"{whole}.{long_}"]
    rng.shuffle(pair)
    return pair


def spelling_conversations(world, splits, n, split, rng, methods=METHODS):
    """n "spelling" records on words of the split (splits.word)."""
    pool = [w for w in vocabulary(world) if splits.word(w) == split]
    out = []
    for _ in range(n):
        task, method = rng.choice(("spell", "spell", "count", "count", "reverse", "compare")), rng.choice(methods)
        if task == "spell":
            words = rng.sample(pool, rng.randint(1, 5))
            method = "spelled"
            question, content = spell_words(words, rng)
            answer, meta = " ".join(words), {"words": words}
        elif task == "count":
            word = rng.choice(pool)
            letter = pick_letter(word, rng)
            question, content, answer = count_letter(word, letter, method)
            meta = {"word": word, "letter": letter}
        elif task == "reverse":
            word = rng.choice(pool)
            method = "spelled" if method == "tool" else method     # no tool reverses a word
            question, content, answer = reverse_word(word, method)
            meta = {"word": word}
        else:
            a, b = _decimal_pair(rng)
            while splits.problem(("compare", a, b)) != split:
                a, b = _decimal_pair(rng)
            question, content, answer = compare_numbers(a, b, method)
            meta = {"numbers": [a, b]}
        out.append({"messages": [{"role": "user", "content": question},
                                 {"role": "assistant", "content": content}],
                    "kind": "spelling", "split": split, "task": task, "method": method,
                    "answer": answer, **meta})
    return out
