"""A hand-made stand-in for the mini-world: Document-like objects with the contract's fields."""
from dataclasses import dataclass, field

from minillm.crawl import sites

SENTENCES = {
    "en": ["The old mill stood near the river for many years.", "People in the town said it was built by a famous carpenter.",
           "Children often played in the meadow behind it with their dogs.", "Later the mill became a small museum about local history.",
           "Visitors can see the big wheel turning on summer weekends.", "The museum is open every day except Monday and holidays.",
           "Its founder began collecting tools when he was young.", "Many of the tools came from farms in the valley to the north.",
           "A new roof was added after the storm of the previous winter.", "The baker next door sells bread made with flour from the mill."],
    "fr": ["Le vieux moulin se trouve près de la rivière depuis longtemps.", "Les habitants disent qu'il a été construit par un charpentier célèbre.",
           "Aujourd'hui, c'est un petit musée consacré à l'histoire locale.", "Les enfants jouaient souvent dans la prairie derrière le moulin."],
    "de": ["Die alte Mühle steht seit vielen Jahren am Fluss.", "Die Leute in der Stadt sagen, ein berühmter Zimmermann habe sie gebaut.",
           "Heute ist sie ein kleines Museum für Heimatgeschichte.", "Kinder spielten oft auf der Wiese hinter der Mühle."],
    "es": ["El viejo molino está junto al río desde hace muchos años.", "La gente del pueblo dice que lo construyó un carpintero famoso.",
           "Hoy es un pequeño museo de historia local.", "Los niños jugaban a menudo en el prado detrás del molino."],
}
KINDS = ["encyclopedia", "biography", "news", "story", "forum", "list", "howto", "worksheet"]


@dataclass
class Doc:
    id: str
    kind: str
    lang: str
    title: str
    text: str
    facts: list = field(default_factory=list)
    entities: list = field(default_factory=list)


class FakeWorld:
    """n documents, ~6% of them fr/de/es, 3-6 paragraphs of 3-5 sentences each."""

    def __init__(self, n, seed=0):
        rng = sites.Rng("fake", seed)
        self.docs = []
        for i in range(n):
            lang = "en" if rng.random() < 0.94 else rng.choice(["fr", "de", "es"])
            pars = []
            for p in range(rng.randint(3, 6)):
                sents = rng.sample(SENTENCES[lang], rng.randint(3, 4))
                pars.append(" ".join(sents) + f" Record {i}-{p} & <b>ok</b>.")
            self.docs.append(Doc(f"doc{i:05d}", rng.choice(KINDS), lang, f"The Mill of Tarvo {i}", "\n\n".join(pars)))

    def iter_documents(self):
        return iter(self.docs)
