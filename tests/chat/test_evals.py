"""The chat evals (evals.py, evals_ask.py, evals_skills.py) score right and wrong replies right.

A scripted engine stands in for the model: it reads the last user message of each prompt
(and the words a reply was made to start with) and answers with what a test's script says,
running the tools as the real engine does. Each test scripts some replies right and some
wrong, so an eval that always said 0% or 100% would fail it; the expected rates are counted
from the items themselves.
"""
import argparse
import json
from types import SimpleNamespace

import pytest

from minillm.chat import evals, evals_ask, evals_skills
from minillm.chat.cli import add_eval_arguments, run_eval
from minillm.chat.data_phrasings import IDK_ANSWERS
from minillm.chat.data_search import NOT_FOUND, SEARCH_SYSTEM
from minillm.chat.data_spelling import count_letter
from minillm.chat.evals_ask import ask, read_reply, says_idk
from minillm.chat.search import BM25Index
from minillm.chat.splits import Splits
from minillm.chat.template import chat_token_ids
from minillm.chat.tools import calculator
from minillm.cli import main
from minillm.common import UserError
from minillm.nn import gpt
from minillm.nn.checkpoint import save_checkpoint
from minillm.world.data import Rng
from minillm.world.world import World

RIVALS = (("Ottilo", "Brightwell Labs"), ("ChatGPT", "OpenAI"))


class Scripted:
    """An engine stand-in. script(user_text, started) -> the reply: a str, or a list of
    (kind, text) parts where ("python" | "search", input) runs the registered tool."""

    def __init__(self, tok, script, context_len=512):
        self.tokenizer, self.script, self.tools = tok, script, {}
        self.config = SimpleNamespace(context_len=context_len)
        self.sp = chat_token_ids(tok)

    def register_tool(self, name, fn):
        self.tools[name] = fn

    def generate(self, prompts, temperature, max_tokens, stop, **_):
        assert temperature == 0.0 and self.sp["<|assistant_end|>"] in stop
        return [self._reply(list(ids)) for ids in prompts]

    def _reply(self, ids):
        sp, tok = self.sp, self.tokenizer
        a = len(ids) - 1 - ids[::-1].index(sp["<|assistant_start|>"])
        u = len(ids) - 1 - ids[::-1].index(sp["<|user_start|>"])
        user, started = tok.decode(ids[u + 1:ids.index(sp["<|user_end|>"], u)]), tok.decode(ids[a + 1:])
        reply = self.script(user, started)
        parts = [("text", reply)] if isinstance(reply, str) else reply
        tokens = []
        for kind, text in parts:
            if kind == "text":
                text = text[len(started):] if not tokens and text.startswith(started) else text
                tokens += tok.encode_ordinary(text)
            else:
                output = self.tools[kind](text)
                tokens += ([sp[f"<|{kind}_start|>"]] + tok.encode_ordinary(text) + [sp[f"<|{kind}_end|>"]]
                           + [sp["<|output_start|>"]] + tok.encode_ordinary(output) + [sp["<|output_end|>"]])
        return SimpleNamespace(tokens=tokens + [sp["<|assistant_end|>"]], finish_reason="stop")


@pytest.fixture(scope="module")
def world():
    return World.build(seed=0, size="smoke")


@pytest.fixture(scope="module")
def splits(world):
    return Splits(world)


def half(items):
    """Every other item: the ones a script answers right."""
    return set(range(0, len(items), 2))


# ---- the "I don't know" detector and the reply reader -------------------------------------

def test_says_idk_catches_every_wording_of_the_data_and_no_answer():
    for wording in IDK_ANSWERS + NOT_FOUND:
        assert says_idk(wording.format(topic="where Lira Vendel was born", name="Lira Vendel")), wording
    assert says_idk("I DON\u2019T KNOW.")
    for answer in ("Lira Vendel was born in Tarsk.", "I know: she was born in Tarsk.",
                   "I'm Minnow, an AI assistant made by the minillm project.", "Knowledge is power."):
        assert not says_idk(answer), answer


def test_read_reply_leaves_tool_calls_out_and_shows_outputs(tok):
    sp = tok.special_tokens
    tokens = (tok.encode_ordinary("It is ") + [sp["<|python_start|>"]] + tok.encode_ordinary("17*23")
              + [sp["<|python_end|>"], sp["<|output_start|>"]] + tok.encode_ordinary("391")
              + [sp["<|output_end|>"]] + tok.encode_ordinary(".") + [sp["<|assistant_end|>"]])
    assert read_reply(tokens, tok) == ("It is .", "It is 391.", ["python"])


def test_ask_forces_the_start_and_skips_prompts_too_long(tok):
    engine = Scripted(tok, lambda user, started: started + " and more" if started else "short", context_len=40)
    long = "word " * 60
    replies = ask(engine, [[{"role": "user", "content": "hi"}], [{"role": "user", "content": long}],
                           [{"role": "user", "content": "hi"}]], 16, prefixes=["", "", "Well"])
    assert replies[0].text == "short" and replies[1] is None and replies[2].text == "Well and more"
    many = ask(engine, [[{"role": "user", "content": f"q{n}"}] for n in range(evals_ask.BATCH + 3)], 16,
               prefixes=[f"A{n}" for n in range(evals_ask.BATCH + 3)])     # more than one engine batch
    assert [r.text for r in many] == [f"A{n} and more" for n in range(evals_ask.BATCH + 3)]


# ---- identity ----------------------------------------------------------------------------

def test_identity_counts_ours_and_what_it_says_instead(tok, world, splits):
    def script(user, started):
        if "name" in user.lower():
            return "I'm Minnow, an AI assistant made by the minillm project."
        if "?" in user:
            return "I am Ottilo, made by Brightwell Labs."
        return "I am a cat."
    r = evals.eval_identity(Scripted(tok, script), world, splits, rivals=RIVALS)
    rng = Rng("chat-evals", 0, "identity")
    asked = [evals.fill_rival(q, rng, RIVALS)[0] for _, q in splits.identity_questions("eval")]
    right = sum("name" in q.lower() for q in asked)
    ottilo = sum("name" not in q.lower() and "?" in q for q in asked)
    assert 0 < right < len(asked) and r["n"] == len(asked) >= 50
    assert r["rate"] == pytest.approx(right / len(asked))
    assert r["instead"] == {k: v for k, v in (("Ottilo", ottilo), ("other", len(asked) - right - ottilo)) if v}
    # "I am <rival>" is wrong even when our name is in the reply too
    r = evals.eval_identity(Scripted(tok, lambda u, s: "I am Ottilo, not Minnow."), world, splits, limit=5, rivals=RIVALS)
    assert r["rate"] == 0 and r["instead"] == {"Ottilo": 5}


# ---- facts ---------------------------------------------------------------------------------

def fact_script(world, items, right, idk=()):
    """Right (the answer sentence) on indices in `right`, "I don't know" on `idk`, else
    another value of the same kind (a wrong fact)."""
    by_question = {q: (n, p) for n, (p, q) in enumerate(items)}
    assert len(by_question) == len(items)

    def script(user, started):
        n, p = by_question[user.split("\n\n")[-1]]
        if n in idk:
            return "I don't know."
        if n in right:
            return f"As far as I know, it is {p.answer}."
        wrong = next(v for v in sorted(world.candidates(world.entities[p.entity].type, p.relation))
                     if v != p.answer.lower()) if p.answer_type not in ("year", "number") else str(int(p.answer.replace(",", "")) + 1)
        return f"It is {wrong}."
    return script


def test_world_qa_judges_with_the_world_checker(tok, world, splits):
    many = splits.entities(world, buckets=("many",))
    items = evals.fact_items(world, splits, many, Rng("chat-evals", 0, "qa"), 30)
    right, idk = half(items), {1, 3}
    r = evals.eval_world_qa(Scripted(tok, fact_script(world, items, right, idk)), world, splits, limit=30)
    assert r["n"] == len(items) == 30
    assert r["rate"] == pytest.approx(len(right) / 30) and r["idk_rate"] == pytest.approx(2 / 30)


def test_hallucination_is_the_share_not_saying_i_dont_know(tok, world, splits):
    never = splits.entities(world, buckets=("never",))
    items = evals.fact_items(world, splits, never, Rng("chat-evals", 0, "hallucination"), 20)
    idk = half(items)
    r = evals.eval_hallucination(Scripted(tok, fact_script(world, items, {1}, idk)), world, splits, limit=20)
    assert r["rate"] == pytest.approx(1 - len(idk) / 20) and r["right_by_chance"] == pytest.approx(1 / 20)


def test_false_idk_needs_a_probe_and_counts_idk_on_known_facts(tok, world, splits):
    assert "skipped" in evals.eval_false_idk(None, world, splits, probe=None)
    known = {(p.entity, p.relation): {"known": n % 3 == 0} for n, p in enumerate(world.probes("qa"))}
    keep = lambda p: known[p.entity, p.relation]["known"]
    items = evals.fact_items(world, splits, splits.entities(world), Rng("chat-evals", 0, "false_idk"), 20, keep)
    idk = {0, 1, 2, 5}
    r = evals.eval_false_idk(Scripted(tok, fact_script(world, items, set(range(20)) - idk, idk)), world, splits,
                             probe=known, limit=20)
    assert r["n"] == 20 and r["rate"] == pytest.approx(4 / 20) and r["right_rate"] == pytest.approx(16 / 20)


def test_rare_with_and_without_search_and_pasted_text_is_not_an_answer(tok, world, splits):
    rare = splits.entities(world, "eval", ("few", "one"))
    items = evals.fact_items(world, splits, rare, Rng("chat-evals", 0, "rare"), 12)
    by_question = {q: (n, p) for n, (p, q) in enumerate(items)}

    def script(user, started):
        n, p = by_question[user.split("\n\n")[-1]]
        if SEARCH_SYSTEM not in user:
            return [("search", "anything"), ("text", "I don't know.")]     # the tool is off: NO_SEARCH
        if n % 2:                                           # the answer only in the pasted text
            return [("search", p.answer), ("text", "I could not find it.")]
        return [("search", p.answer), ("text", f"It is {p.answer}.")]
    index = BM25Index.build([f"The answer is {p.answer} for this one." for p, _ in items])
    r = evals.eval_rare(Scripted(tok, script), world, splits, index=index, limit=12)
    assert r["n"] == 12 and r["rate"] == pytest.approx(6 / 12) and r["without_tool"] == 0
    assert r["search_used"] == 1
    r = evals.eval_rare(Scripted(tok, script), world, splits, index=None, limit=12)
    assert "skipped" in r and r["without_tool"] == 0


# ---- skills ----------------------------------------------------------------------------------

def problem_script(problems, right, through_tool=False):
    by_question = {p.question: (n, p) for n, p in enumerate(problems)}

    def script(user, started):
        n, p = by_question[user.rsplit("?", 1)[0] + "?"]
        answer = p.answer if n in right else p.answer + 7
        final = p.final.format(answer=answer)
        if through_tool and p.template == "product4":
            head = final.split(" = ")[0] + " = "
            expr = f"{p.steps[0].expr}" if n in right else f"{p.steps[0].expr}+7"
            return [("text", head), ("python", expr), ("text", ".")]
        return f"Step 1: some work. So {final[0].lower()}{final[1:]}"
    return script


def test_stated_answer_reads_the_final_sentence(world, splits):
    [p] = evals_skills.eval_problems(world, splits, 1, 0, "steps3")
    final = p.final.format(answer=1234)
    assert evals_skills.stated_answer(p, f"Blah 5. {final}") == 1234
    assert evals_skills.stated_answer(p, f"So {final.lower()}") == 1234
    assert evals_skills.stated_answer(p, "The answer is 1234.") is None


def test_calculator_counts_products_and_problems(tok, world, splits):
    products = evals_skills.eval_problems(world, splits, 10, 0, "product4")
    problems = evals_skills.eval_problems(world, splits, 10, 0, "steps3")
    assert all(splits.problem(p.key) == "eval" and len(p.steps) == 3 for p in problems)
    assert all(p.template == "product4" and p.answer == int(calculator(p.steps[0].expr)) for p in products)
    engine = Scripted(tok, problem_script(products + problems, half(products + problems), through_tool=True))
    r = evals.eval_calculator(engine, world, splits, limit=10)
    assert r["n"] == 20 and r["rate_product4"] == pytest.approx(5 / 10) and r["rate_steps3"] == pytest.approx(5 / 10)
    assert r["calculator_used"] == pytest.approx(10 / 20)


def test_think_compares_the_two_cues(tok, world, splits):
    problems = evals_skills.eval_problems(world, splits, 12, 0, "steps3")
    step, first = problem_script(problems, set(range(12))), problem_script(problems, {0, 1, 2})
    engine = Scripted(tok, lambda user, started: (step if "step by step" in user else first)(user, started))
    r = evals.eval_think(engine, world, splits, limit=12)
    assert r["step_by_step"] == 1 and r["answer_first"] == pytest.approx(3 / 12)
    assert r["gap"] == pytest.approx(9 / 12)


def test_spelling_forces_each_method_and_recounts(tok, world, splits):
    def script(user, started):
        if user.startswith("How many"):
            letter, word = user.split("'")[1], user.split('"')[1]
            n = word.count(letter)
            if started == "There":                                   # direct: off by one
                return f"There are {n + 1} {letter}'s in \"{word}\"."
            if started.startswith("Spelled"):                         # the tool: right
                return [("text", started), ("python", "+".join("1" if c == letter else "0" for c in word)),
                        ("text", f"There are {n} {letter}'s.")]
            return count_letter(word, letter, "spelled")[1]          # spelled out: right
        word = user.split('"')[1]
        return started + word[::-1] + '".' if started.startswith('"') else f"So \"{word}\" backwards is \"{word[::-1]}\"."
    r = evals.eval_spelling(Scripted(tok, script), world, splits, limit=8)
    assert r["n"] == 8 and r["count_direct"] == 0 and r["count_spelled"] == 1 and r["count_tool"] == 1
    assert r["reverse_direct"] == 1 and r["reverse_spelled"] == 1
    assert r["direct"] == pytest.approx(0.5) and r["spelled"] == 1


def test_spelling_count_asks_about_repeated_single_and_absent_letters(tok, world, splits):
    """A reply that always says "2" (the count of a letter a word repeats) cannot score: the
    questions cycle through a repeated letter, a letter held once and one the word lacks."""
    def always_two(user, started):
        if not user.startswith("How many"):
            return "no"
        letter, word = user.split("'")[1], user.split('"')[1]
        return f"There are 2 {letter}'s in \"{word}\"."
    r = evals.eval_spelling(Scripted(tok, always_two), world, splits, limit=30)
    assert r["count_direct"] <= 0.5
    rng = Rng("t", 0)
    asked = [evals_skills.count_letter_for("balloon", k, rng) for k in range(6)]
    assert ["balloon".count(c) for c in asked] == [2, 1, 0, 2, 1, 0]


# ---- all of them, the table, the command ------------------------------------------------------

def test_run_chat_evals_returns_every_eval_and_a_table(tok, world, splits):
    engine = Scripted(tok, lambda user, started: started + " I'm Minnow. I don't know.")
    rows = []
    results = evals.run_chat_evals(engine, world, splits, limit=3, progress=rows.append)
    assert set(results) == {"settings", "identity", "world_qa", "hallucination", "false_idk", "rare",
                            "calculator", "think", "spelling"}
    assert results["identity"]["rate"] == 1 and results["hallucination"]["rate"] == 0
    assert engine.tools["python"] is calculator
    table = evals.format_table(results)
    assert len(table.splitlines()) == 9 and "skipped" in table and rows == table.splitlines()[1:]
    json.dumps(results, allow_nan=False)
    assert evals.numbers(results)["identity"] == 1


def test_the_command_refuses_bad_input_in_one_line(tmp_path):
    parser = argparse.ArgumentParser()
    add_eval_arguments(parser)
    with pytest.raises(UserError, match="no checkpoint"):
        run_eval(parser.parse_args(["--ckpt", str(tmp_path / "nope")]))
    (tmp_path / "sft").mkdir()
    (tmp_path / "sft" / "config.json").write_text("{}")
    with pytest.raises(UserError, match="no world"):
        run_eval(parser.parse_args(["--ckpt", str(tmp_path / "sft")]))
    with pytest.raises(UserError, match="--limit"):
        run_eval(parser.parse_args(["--ckpt", str(tmp_path / "sft"), "--limit", "0"]))


def test_the_command_evaluates_a_checkpoint_and_writes_chat_evals_json(tmp_path, tok, capsys):
    c = gpt.GPTConfig(vocab_size=tok.vocab_size, context_len=64, n_layer=1, n_head=2, n_kv_head=2,
                      n_embd=32, hidden_dim=32)
    save_checkpoint(tmp_path / "sft", c, gpt.init_params(c, 0), tokenizer=tok, meta={"stage": "sft"})
    World.build(seed=0, size="smoke").save(tmp_path / "world")
    assert main(["chat", "eval", "--ckpt", str(tmp_path / "sft"), "--limit", "2"]) in (0, None)
    out = capsys.readouterr().out
    results = json.loads((tmp_path / "sft" / "chat_evals.json").read_text())
    assert results["settings"]["limit"] == 2 and results["identity"]["n"] + results["identity"]["too_long"] == 2
    assert out.splitlines()[0].startswith("eval") and "hallucination" in out and "chat_evals.json" in out
