"""Post-training, SFT: the chat format, its tools, the fine-tuning loop and the terminal chat.

Reading order:
    template.py  a conversation <-> token ids and the loss mask; CHAT_TEMPLATE (Jinja) for hub/
    render.py    the learner's view: tokens with the supervised ones coloured
    tools.py     the calculator (ast, a whitelist, bounded work)
    search.py    BM25 over passages of the clean corpus, the search tool
    data.py      the SFT conversations from the mini-world (data_*.py: one file per kind)
    splits.py    which entities, phrasings and problems are held out for the evals, decided once
    probe.py     what the base model knows: each fact asked k times (for "I don't know")
    sft.py       the SFT loop: batches of whole conversations, the loss on the mask only
    terminal.py  `minillm chat --ckpt DIR`: streaming replies, history, tool calls shown inline
    evals.py     what the assistant can do, measured (evals_ask.py: the harness; evals_skills.py:
                 calculator, thinking in tokens, spelling)
    cli.py       `minillm sft`, `minillm chat [render | search | data | probe | eval]`

    minillm chat render conversations.jsonl --index 0
    minillm sft --ckpt runs/default/base --data conversations.jsonl --out runs/default/sft
"""
