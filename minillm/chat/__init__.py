"""Post-training, SFT: the chat format, its tools, and (with the SFT stage) the training.

Reading order:
    template.py  a conversation <-> token ids and the loss mask; CHAT_TEMPLATE (Jinja) for hub/
    render.py    the learner's view: tokens with the supervised ones coloured
    tools.py     the calculator (ast, a whitelist, bounded work)
    search.py    BM25 over passages of the clean corpus, the search tool
    cli.py       `minillm chat render | search`

    minillm chat render conversations.jsonl --index 0
"""
