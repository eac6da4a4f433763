"""Kind 4 of the SFT conversations: the search tool, for facts the weights do not hold.

A fact read once or a few times (the `few` and `one` buckets) is rarely recalled, but it is
on the model's "internet". So the assistant writes a query, the search tool (search.py:
BM25 over the clean corpus) pastes the best passages into the context, and the answer is
read from there, working memory instead of vague recollection:

    system: SEARCH_SYSTEM
    user: Where was Oska Brell born?
    assistant: <|search_start|>Oska Brell born<|search_end|>
               <|output_start|>...passages...<|output_end|>Oska Brell was born in Tarsk.

The tool output is exactly what index.search_tool(query) returns, as at inference. When the
pasted text does not hold the answer, the assistant says so instead of guessing (a few of
those are kept, MAX_NOT_FOUND of the kind). A system message turns the tool on, so the same
question without it is answered from the weights or with "I don't know" (kind 3).

Read next: data_math.py (kind 5).
"""
from minillm.chat.data_phrasings import IDK_TOPICS
from minillm.chat.data_qa import answer_sentence, fill, wrap
from minillm.world.probes import normalize
from minillm.world.templates import Template

SEARCH_SYSTEM = "You can use the search tool to look things up."
MAX_NOT_FOUND = 0.15
# What a query adds to the subject's name, per relation.
QUERY_WORDS = {
    "birth_year": "born", "birth_city": "born", "home_city": "lives", "occupation": "works as",
    "employer": "works for", "hobby": "hobby", "pet": "pet", "pet_name": "pet name",
    "best_friend": "best friend", "country": "country", "population": "population", "river": "river",
    "landmark": "landmark", "founded": "founded", "capital": "capital", "language": "language",
    "currency": "currency", "continent": "continent", "industry": "makes", "hq_city": "main office",
    "founder": "founded by", "city": "held in", "year": "held", "organizer": "organised by",
    "winner": "won by",
}
LEADS = ("", "", "According to the search results, ", "The search results say that ", "I found it: ")
NOT_FOUND = ("The search results don't say {topic}, so I don't know.",
             "I searched, but the results don't mention {topic}. I don't know.")


def query_for(world, entity, relation):
    name = Template("{S}", entity.type, "en").fill(world.entities, entity).removeprefix("the ")
    return f"{name} {QUERY_WORDS[relation]}"


def in_text(value, text):
    """Does the pasted text state the value (as whole words, normalised)?"""
    return f" {normalize(value)} " in f" {normalize(text)} "


def search_conversations(world, splits, index, n, split, rng, buckets=("few", "one")):
    """n "search" records about facts of rare entities of the split (train phrasings for
    train). index: a search.BM25Index over the run's clean corpus."""
    facts = [(i, r) for i in splits.entities(world, split, buckets) for r in world.entities[i].attrs]
    if not facts or index is None:
        return []
    out, misses, tries = [], 0, 0
    while len(out) < n and tries < 4 * n:
        tries += 1
        entity_id, rel = rng.choice(facts)
        e = world.entities[entity_id]
        query = query_for(world, e, rel)
        pasted = index.search_tool(query)
        found = in_text(e.attrs[rel], pasted)
        if not found and misses >= MAX_NOT_FOUND * n:
            continue
        misses += not found
        if found:
            lead, sentence = rng.choice(LEADS), answer_sentence(world, e, rel)
            text = lead + (sentence[0].lower() + sentence[1:] if lead and sentence.startswith("The ") else sentence)
        else:
            topic = Template(IDK_TOPICS[e.type, rel], e.type, "en").fill(world.entities, e)
            text = rng.choice(NOT_FOUND).format(topic=topic)
        phrasing = rng.choice(splits.questions(e.type, rel, split))
        messages = [{"role": "system", "content": SEARCH_SYSTEM},
                    {"role": "user", "content": wrap(fill(world, phrasing, e), rng)},
                    {"role": "assistant", "content": [{"type": "search", "text": query},
                                                      {"type": "output", "text": pasted},
                                                      {"type": "text", "text": text}]}]
        out.append({"messages": messages, "kind": "search", "split": split, "entity": e.id,
                    "bucket": world.bucket[e.id], "facts": [{"relation": rel, "answer": e.attrs[rel],
                                                             "phrasing": phrasing}],
                    "query": query, "found": found})
    return out
