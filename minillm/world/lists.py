"""List pages of the mini-world: "Cities of Velmar", "People Who Love Chess", ...

Part of minillm.world.world. A list names several popular (`many`) entities and states
one or two facts about each, one bullet an entity; it is how a fact about one entity also
turns up next to its neighbours. Lists only ever name `many` entities (see
entities.py: links point up), so they never change a rarer entity's exposure.

Read worksheets.py next.
"""
from minillm.world.document import DocPlan
from minillm.world.frames import FactWriter

MAX_ITEMS = 8
# what -> (member type, grouping relation, extra relations for each item)
KINDS = {
    "cities_of": ("city", "country", ("population", "river", "landmark", "founded")),
    "companies_in": ("org", "hq_city", ("industry", "founder", "founded")),
    "people_hobby": ("person", "hobby", ("occupation", "home_city", "birth_city")),
    "winners": ("event", "kind", ("winner",)),
    "continent": ("country", "continent", ("capital", "language")),
}
TITLES = {
    "cities_of": ("Cities of {key}", "Towns and Cities in {key}", "A List of Cities in {key}"),
    "companies_in": ("Companies in {key}", "Where to Work in {key}", "Businesses Based in {key}"),
    "people_hobby": ("People Who Love {key}", "Fans of {key}", "Who Enjoys {key}?"),
    "winners": ("Winners of the {key}", "Past Winners: {key}", "Who Won the {key}?"),
    "continent": ("Countries of {key}", "The Countries on {key}", "A Guide to {key}"),
}
INTROS = ("Here is a short list.", "Some of them are well known, some less so.",
          "We made this list for our readers.", "Did we miss one? Let us know.")


def list_groups(many_ids, entities):
    """what -> {key: [member ids]} over `many` entities (the Planner builds it once)."""
    groups = {what: {} for what in KINDS}
    for what, (type_, rel, _) in KINDS.items():
        for i in many_ids[type_]:
            e = entities[i]
            key = e.extra["kind"] if rel == "kind" else e.attrs[rel]
            groups[what].setdefault(key, []).append(i)
    return {w: {k: v for k, v in sorted(g.items())} for w, g in groups.items()}


def plan_list(planner, index, rng):
    groups = planner.list_groups
    what = rng.choice([w for w in KINDS if groups[w]])
    keys = [k for k, members in groups[what].items() if len(members) > 1] or list(groups[what])
    key = rng.choice(keys)
    members = rng.sample(groups[what][key], MAX_ITEMS)
    type_, rel, extras = KINDS[what]
    paths = {}
    for k, i in enumerate(members):
        facts = [(i, rel)] if rel != "kind" else []
        facts += [(i, r) for r in rng.sample(extras, 1 if rel != "kind" else 2) if (i, r) not in facts]
        if rel == "kind":
            facts = [(i, "winner"), (i, "year")]
        paths[f"item{k}"] = facts
    return DocPlan(index, "list", "en", f"list:{what}", None, "none", paths)


def render_list(world, plan, rng):
    what = plan.frame.split(":")[1]
    type_, rel, _ = KINDS[what]
    first = world.entities[plan.paths["item0"][0][0]]
    key = first.extra["kind"] if rel == "kind" else first.attrs[rel]
    title = rng.choice(TITLES[what]).format(key=key)
    writer = FactWriter(world.entities, "en", rng, None)
    lines, facts = [rng.choice(INTROS)], []
    for item in plan.paths.values():
        lines.append("- " + " ".join(s + "." for s in writer.write(item)))
        facts += item
    return title, "\n".join(lines), [(e, r, world.entities[e].attrs[r]) for e, r in facts]
