"""Open-ended prompts about the mini-world: a poem, a tagline or a short story about an entity.

These are the lecture's "no verifiable answer" tasks: nothing checks a poem the way a
checker checks 6 * 7, so RLHF asks a (simulated) human instead (labeller.py). The prompts
are about `many` entities (the base model has read their facts a hundred times, so a good
answer is within reach) of the chat's train split (chat/splits.py; the chat evals' entities
stay out of RLHF, so those evals still mean the same on an RLHF model). Of those, a seeded
HELD_OUT share is RLHF's "eval" split: never in a preference pair nor an RL prompt, so the
reward model's accuracy and the RLHF model's true score are measured on entities it never
practised on.

    task = OpenEnded(world)
    items = task.items("train", 8, seed=0)
    items[0].messages   # [{"role": "user", "content": "Write a short poem about Tarvale."}]
    items[0].meta       # {"entity": "city-00006", "kind": "poem", "words": 20}

SFT never saw such a request (chat/data.py has no poems), so the SFT model answers them
badly, in many different ways: the spread the reward model learns to rank.

Read next: labeller.py (who judges the answers).
"""
from dataclasses import dataclass

from minillm.chat.splits import Splits
from minillm.rl.tasks import Item
from minillm.world.data import Rng

HELD_OUT = 0.25                 # of the entities: RLHF's eval split
TYPES = ("person", "city", "country", "org", "event")
# kind -> (the words asked for, phrasings); the length a labeller expects is the first number
KINDS = {
    "tagline": (8, ("Write a tagline for {name}.", "Give me a catchy tagline for {name}.",
                    "Write a one-line slogan about {name}.")),
    "poem": (20, ("Write a short poem about {name}.", "Write a little poem about {name}.",
                  "Can you write a poem about {name}?")),
    "story": (35, ("Write a short story about {name}.", "Tell me a short story about {name}.",
                   "Write a few sentences about {name} as a story.")),
}


@dataclass
class OpenEnded:
    """The open-ended prompts of a split (a task without a checker: rl/tasks.py's Item)."""
    world: object
    name: str = "open_ended"

    def entities(self, split):
        """The ids of the split's entities, in entity-table order."""
        pool = [i for i in Splits(self.world).entities(self.world, "train", buckets=("many",))
                if self.world.entities[i].type in TYPES]
        held = set(Rng("rlhf-split", self.world.seed).sample(pool, round(HELD_OUT * len(pool))))
        return [i for i in pool if (i in held) == (split == "eval")]

    def items(self, split, n, seed=0):
        """n prompts: an entity, a kind and a phrasing drawn from (seed, split)."""
        rng, pool = Rng("rlhf-prompts", seed, split), self.entities(split)
        out = []
        for _ in range(n):
            entity = self.world.entities[rng.choice(pool)]
            kind = rng.choice(sorted(KINDS))
            words, phrasings = KINDS[kind]
            text = rng.choice(phrasings).format(name=entity.name)
            out.append(Item([{"role": "user", "content": text}], None,
                            {"entity": entity.id, "kind": kind, "words": words}))
        return out
