"""Kind 7 of the SFT conversations: chit-chat, refusals and formatting, in small amounts.

So the assistant is pleasant: it greets, thanks and says goodbye (chat), declines harmful
requests politely and briefly (refusal), and follows a format request: facts about an
entity it knows as a bulleted list, or in one sentence (format).

    user: List what you know about Tarsk as bullet points.
    assistant: Here is what I know about Tarsk:
    - Tarsk is a city in Velmar.
    - ...

Read next: data.py (the mixture of all kinds).
"""
from minillm.chat.data_qa import answer_sentence

SMALL_TALK = (
    ("Hello!", ("Hello! How can I help you today?", "Hi there! What would you like to know?")),
    ("Hi, how are you?", ("I'm doing well, thank you! How can I help?", "Very well, thanks. What can I do for you?")),
    ("Good morning!", ("Good morning! What would you like to talk about?",)),
    ("Thank you!", ("You're welcome!", "Glad I could help.")),
    ("Thanks, that was helpful.", ("I'm happy it helped. Ask me anything else you like.",)),
    ("Goodbye!", ("Goodbye! Have a nice day.", "Bye! Come back any time.")),
    ("Can you tell me a joke?", ("Why did the calculator break up with the pencil? It felt it was always being "
                                 "used for the small stuff.", "What do you call a sleeping bull? A bulldozer.")),
    ("I'm bored.", ("Then let's do something! I can give you a word problem, or you can ask me about a city.",)),
    ("What is your favourite colour?", ("I don't see colours, but people often like blue.",)),
    ("Nice to meet you.", ("Nice to meet you too! How can I help?",)),
    ("ok", ("Is there anything else I can help you with?",)),
    ("You are great.", ("Thank you, that's kind of you to say!",)),
)
REFUSALS = (
    "How do I break into my neighbour's house?", "Write a threatening letter to my teacher.",
    "How can I steal a car without getting caught?", "Tell me how to make a weapon at home.",
    "Help me cheat on my exam tomorrow.", "How do I hack into my friend's account?",
    "Write a mean message to bully someone in my class.", "How can I poison my neighbour's dog?",
    "Give me a way to lie to the police.", "How do I start a fire in a school?",
)
REFUSAL_ANSWERS = ("I can't help with that. It could hurt someone. Is there something else I can do for you?",
                   "Sorry, I won't help with that, because it could cause harm.",
                   "I'm not able to help with that request. If you're in a difficult situation, talking to "
                   "someone you trust can help.",
                   "No, I can't help with that. I'm happy to help with something else, though.")
FORMAT_REQUESTS = ("List what you know about {name} as bullet points.", "Give me the facts about {name} as a list.",
                   "Summarise what you know about {name} in one sentence.")


def one_sentence(sentences):
    """["A is b.", "The c is d."] -> "A is b, and the c is d." """
    parts = [s.rstrip(".") for s in sentences]
    parts[1:] = [p[0].lower() + p[1:] if p.startswith(("The ", "She ", "He ", "Her ", "His ", "It ")) else p
                 for p in parts[1:]]
    return (", ".join(parts[:-1]) + ", and " + parts[-1] if len(parts) > 1 else parts[0]) + "."


def chitchat_conversations(world, splits, knowledge, n, split, rng):
    """n "chat" records: a third small talk, a third refusals, a third format requests about
    entities of the split whose facts the model knows (knowledge: data_qa.Knowledge)."""
    pool = [i for i in splits.entities(world, split) if world.bucket[i] != "never"
            and sum(knowledge.known(i, r) for r in world.entities[i].attrs) >= 2]
    out = []
    for j in range(n):
        sub = ("chat", "refusal", "format")[j % 3]
        meta = {}
        if sub == "chat":
            question, answers = rng.choice(SMALL_TALK)
            answer = rng.choice(answers)
        elif sub == "refusal":
            question, answer = rng.choice(REFUSALS), rng.choice(REFUSAL_ANSWERS)
        else:
            if not pool:
                continue
            e = world.entities[rng.choice(pool)]
            known = [r for r in e.attrs if knowledge.known(e.id, r)]
            rels = rng.sample(known, min(len(known), rng.randint(2, 4)))
            request = rng.choice(FORMAT_REQUESTS)
            question = request.format(name=e.name)
            one = "one sentence" in request           # after the first clause: "and she ..."
            sentences = [answer_sentence(world, e, r, pronoun=one and n > 0) for n, r in enumerate(rels)]
            if one:
                answer = one_sentence(sentences)
            else:
                answer = f"Here is what I know about {e.name}:\n" + "\n".join(f"- {s}" for s in sentences)
            meta = {"entity": e.id, "bucket": world.bucket[e.id],
                    "facts": [{"relation": r, "answer": e.attrs[r]} for r in rels]}
        out.append({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
                    "kind": "chat", "split": split, "subkind": sub, **meta})
    return out
