"""Kinds 1 and 3 of the SFT conversations: world QA, and "I don't know" where the model doesn't.

Kind "qa" (1): questions about one mini-world entity, one to three turns, every fact asked
in one of six phrasings (data_phrasings.questions()), follow-ups with "she"/"he"/"it", every
answer a full sentence from the world's answer template:

    user: Where was Lira Vendel born?         assistant: Lira Vendel was born in Tarsk.
    user: And what does she do for a living?  assistant: She works as a baker.

Kind "idk" (3), Llama 3 style: one question per fact; the answer is the fact where the base
model knew it (probe.py asked it k times and it was right every time it had to be), and an
"I don't know" in varied words where it did not. So SFT teaches the model to say what it
knows and to admit what it doesn't, instead of teaching it to answer confidently from
weights that hold no answer (which is how fine-tuning on unknown facts breeds hallucination).
A QA turn about a fact the model does not know is answered the same way.

Knowledge (below) says who knows what: the probe's labels, or without a probe a proxy
(a fact of a `many` entity is known, any other is not).

Read next: data_identity.py (kind 2), data.py (the mixture).
"""
from minillm.chat.data_phrasings import ANSWER_LEADS, IDK_ANSWERS, IDK_TOPICS, WRAPPERS
from minillm.chat.splits import lower_forms
from minillm.world.entities import RELATIONS
from minillm.world.templates import Template, capitalize, probe_templates

TURN_WEIGHTS = (0.5, 0.3, 0.2)         # conversations of 1, 2, 3 questions
_PREPOSITIONS = (" of ", " in ", " through ", " on ", " about ", " for ", " from ", " at ")


class Knowledge:
    """known(entity, relation) -> bool: did the base model know this fact?

    probe: {(entity, relation): probe record} from probe.read_probe(), or None for the proxy
    (facts of `many` entities are known). A fact the probe did not ask is judged by the proxy.
    everything=True: every fact counts as known (the no-"I don't know" ablation)."""

    def __init__(self, world, probe=None, everything=False):
        self.world, self.probe, self.everything = world, probe or {}, everything

    def known(self, entity_id, relation):
        if self.everything:
            return True
        record = self.probe.get((entity_id, relation))
        if record is not None:
            return bool(record["known"])
        return self.world.bucket[entity_id] == "many"


# ---- sentences -----------------------------------------------------------------------------

def fill(world, text, entity, pronoun=False):
    """A phrasing with {S} slots filled for `entity` (a pronoun for it when pronoun=True)."""
    return capitalize(Template(text, entity.type, "en").fill(world.entities, entity, use_pronoun=pronoun))


def pronoun_question_ok(phrasing):
    """May {S} become "she"/"it" here? Not after a preposition ("the capital of it")."""
    head = phrasing.split("{S", 1)[0]
    return "{S" in phrasing and not head.endswith(_PREPOSITIONS)


def answer_sentence(world, entity, relation, pronoun=False):
    """The full-sentence answer: "Lira Vendel was born in Tarsk." ("She was born ..." with pronoun)."""
    template = probe_templates()[entity.type, relation]["answer"]
    use = pronoun and template.pronoun_ok and template.text.startswith(("{S} ", "{S's} "))
    return capitalize(template.fill(world.entities, entity, use_pronoun=use)) + "."


def idk_sentence(world, entity, relation, rng):
    """An "I don't know" about one fact, in one of IDK_ANSWERS' wordings."""
    wording = rng.choice(IDK_ANSWERS)
    # "... about Lira Vendel, so I can't say where she was born": the name once, then a pronoun
    later = "{name}" in wording and "{topic}" in wording and wording.index("{name}") < wording.index("{topic}")
    topic = IDK_TOPICS[entity.type, relation]
    topic = Template(topic, entity.type, "en").fill(world.entities, entity,
                                                    use_pronoun=later and pronoun_question_ok(topic))
    name = Template("{S}", entity.type, "en").fill(world.entities, entity)
    return wording.format(topic=topic, name=name)


def wrap(question, rng, wrappers=WRAPPERS):
    """The question as a user may type it: as is, with a greeting, lower-case, no "?"."""
    return rng.choice(wrappers).format(q=question, **lower_forms(question))


def reply(world, knowledge, entity, relation, rng, pronoun=False):
    """(assistant text, known) for one question."""
    if knowledge.known(entity.id, relation):
        lead, sentence = rng.choice(ANSWER_LEADS), answer_sentence(world, entity, relation, pronoun)
        if lead.endswith(", ") and sentence.startswith("The "):        # "As far as I know, the ..."
            sentence = "t" + sentence[1:]
        return lead + sentence, True
    return idk_sentence(world, entity, relation, rng), False


def _fact(world, entity, relation, known, phrasing):
    return {"relation": relation, "answer": entity.attrs[relation], "known": known, "phrasing": phrasing}


# ---- kind 1: world QA ------------------------------------------------------------------------

def qa_conversations(world, splits, knowledge, n, split, rng):
    """n "qa" records. train: train entities (not `never`), train phrasings. eval: the eval
    phrasings, about train and eval entities of the `many` bucket."""
    if split == "train":
        pool = [i for i in splits.entities(world, "train") if world.bucket[i] != "never"
                and any(knowledge.known(i, r) for r in world.entities[i].attrs)]
    else:
        pool = splits.entities(world, buckets=("many",))
    if not pool:
        return []
    out = []
    for _ in range(n):
        e = world.entities[rng.choice(pool)]
        turns = rng.weighted((1, 2, 3), TURN_WEIGHTS)
        relations = rng.sample(RELATIONS[e.type], turns)
        messages, facts = [], []
        for t, rel in enumerate(relations):
            phrasing = rng.choice(splits.questions(e.type, rel, split))
            use_pronoun = t > 0 and pronoun_question_ok(phrasing) and rng.chance(0.8)
            question = fill(world, phrasing, e, use_pronoun)
            if t == 0:
                question = wrap(question, rng)
            elif rng.chance(0.4):
                question = "And " + lower_forms(question)["lq"]
            text, known = reply(world, knowledge, e, rel, rng, pronoun=use_pronoun)
            messages += [{"role": "user", "content": question}, {"role": "assistant", "content": text}]
            facts.append(_fact(world, e, rel, known, phrasing))
        out.append({"messages": messages, "kind": "qa", "split": split, "entity": e.id,
                    "bucket": world.bucket[e.id], "facts": facts})
    return out


# ---- kind 3: I don't know --------------------------------------------------------------------

def idk_conversations(world, splits, knowledge, n, split, rng):
    """n "idk" records, half about facts the model knew and half about facts it did not
    (as far as both exist). train: train entities, train phrasings; eval: eval entities
    (every `never` entity among them), eval phrasings."""
    facts = [(i, r) for i in splits.entities(world, split) for r in world.entities[i].attrs
             if split == "eval" or world.bucket[i] != "never"]
    known = [f for f in facts if knowledge.known(*f)]
    unknown = [f for f in facts if not knowledge.known(*f)]
    out = []
    for j in range(n):
        side = (known, unknown)[j % 2] if known and unknown else (known or unknown)
        if not side:
            return out
        entity_id, rel = rng.choice(side)
        e = world.entities[entity_id]
        phrasing = rng.choice(splits.questions(e.type, rel, split))
        text, is_known = reply(world, knowledge, e, rel, rng)
        out.append({"messages": [{"role": "user", "content": wrap(fill(world, phrasing, e), rng)},
                                 {"role": "assistant", "content": text}],
                    "kind": "idk", "split": split, "entity": e.id, "bucket": world.bucket[e.id],
                    "facts": [_fact(world, e, rel, is_known, phrasing)],
                    "response": "fact" if is_known else "idk"})
    return out
