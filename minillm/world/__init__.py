"""The mini-world: a generated, fact-checkable internet, this project's fixture.

Reading order: world.py (the World API and what it is for), entities.py (what is true),
document.py and plan.py (which documents exist), frames.py and templates.py (facts ->
sentences, and back), lists.py, worksheets.py, probes.py (questions and the answer
checker), store.py (files on disk), data.py (the stable Rng), cli.py (`minillm world`).
"""
