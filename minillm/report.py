"""The report card: runs/<name>/report.md and report.html, one section per part of the lecture.

    minillm report --run runs/default          # the speedrun also writes it after every stage

It only reads what the stages left in the run directory (speedrun.json, clean/funnel.json
and clean/report.json, tokenizer.json, metrics.jsonl, base/evals.json, chat/*_evals.json,
sft/chat_evals.json, rl_evals.json, ...) and never recomputes anything; a section whose
stage has not run yet says so. A section is a list of blocks (heading, paragraph, table, plot, tokens), written
twice: as Markdown (plots as PNG files in report/) and as one self-contained HTML file
(plots inline as data: URIs). Every piece of text, model output included, is escaped in
the HTML: the page shows it, never runs it. Plots need matplotlib (the [plots] extra:
`pip install -e ".[plots]"`); without it the report says so and keeps the tables.

Read next: speedrun.py (the stages that leave these files).
"""
import base64
import gzip
import html
import io
import json
from pathlib import Path

from minillm import clib
from minillm.chat.render import token_strings
from minillm.chat.template import render
from minillm.common import UserError, atomic_write, runs_dir
from minillm.nn.gpt import GPTConfig, num_params
from minillm.tokenizer.cli import load_any

PLOTS_HINT = 'plots need matplotlib: pip install -e ".[plots]"'


# ---- reading the run ---------------------------------------------------------------------

def _json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _metrics(run, stage, out_dir=None):
    """The metrics.jsonl records of one stage (and of one output directory, by its name),
    one per step: a step logged again after a resume replaces the earlier record."""
    by_step = {}
    try:
        with open(run / "metrics.jsonl") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("stage") == stage and (
                        out_dir is None or Path(str(record.get("out"))).name == out_dir):
                    by_step[record.get("step")] = record
    except OSError:
        pass
    return list(by_step.values())


def _first_jsonl_gz(folder):
    """The first record of the first *.jsonl.gz in folder, or None."""
    for path in sorted(Path(folder).glob("*.jsonl.gz")):
        try:
            with gzip.open(path, "rt") as f:
                line = f.readline()
            return json.loads(line) if line else None
        except (OSError, ValueError, EOFError):
            continue
    return None


# ---- blocks ------------------------------------------------------------------------------
# ("h", text) ("p", text) ("code", where in the source) ("pre", text) ("table", header, rows)
# ("plot", name, png, caption)
# ("tokens", [(text, kind), ...]) with kind "a"/"b" (alternating) or "learn-a"/"learn-b"

def _pct(x):
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(x, digits=4):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.{digits}g}" if abs(x) < 1000 else f"{x:,.0f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def _plot(name, caption, draw):
    """A ("plot", ...) block from draw(ax), or a hint when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ("p", f"({caption}: {PLOTS_HINT})")
    fig, ax = plt.subplots(figsize=(6.4, 3.4), dpi=100)
    draw(ax)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return ("plot", name, buf.getvalue(), caption)


def _token_view(ids, tokenizer, mask=None):
    """("tokens", ...): every token of ids, alternating shades; mask 1 marked as learned."""
    return ("tokens", [(text, ("learn-" if mask is not None and mask[k] else "") + "ab"[k % 2])
                       for k, text in enumerate(token_strings(ids, tokenizer))])


# ---- the sections --------------------------------------------------------------------------

def header(run, summary):
    stages = summary.get("stages", {})
    rows = [[name, f"{s.get('seconds', 0):,.1f}"] for name, s in stages.items()]
    total = sum(s.get("seconds", 0) for s in stages.values())
    machine = (f"{clib.cpu_model()}, SIMD {clib.simd_level()}, {clib.get_num_threads()} kernel threads "
               f"(the machine that wrote this report)")
    return [("h", f"minillm report card: {run.name}"),
            ("p", f"Profile {summary.get('profile', '?')}. Machine: {machine}. Stage times as "
                  f"measured when each stage ran; total {total / 60:.1f} min."),
            ("table", ["stage", "seconds"], rows)]


def section_internet(run, summary):
    s = summary.get("stages", {})
    out = [("h", "1. Download and preprocess the internet"),
           ("code", "minillm/world/, minillm/crawl/, minillm/internet/ (minillm clean)")]
    if "clean" not in s:
        return out + [("p", "The cleaning stage has not run yet.")]
    world, crawl = s.get("world", {}), s.get("crawl", {})
    out.append(("p", f"The mini-world: {_num(world.get('entities'))} entities, "
                     f"{_num(world.get('facts'))} facts, {_num(world.get('documents'))} documents, "
                     f"rendered as {_num(crawl.get('pages'))} web pages ({_num(crawl.get('warc_mb'))} MB "
                     f"of WARC), then cleaned by a FineWeb-style pipeline (minillm/internet/)."))
    funnel = _json(run / "clean" / "funnel.json") or {}
    rows = [[name, _num(st.get("docs_in")), _num(st.get("docs_out")),
             _num(st.get("docs_in", 0) - st.get("docs_out", 0)), f"{st.get('bytes_out', 0) / 1e6:.1f}"]
            for name, st in funnel.get("stages", {}).items()]
    if rows:
        out.append(("table", ["stage", "documents in", "out", "removed", "MB out"], rows))
    scores = (_json(run / "clean" / "report.json") or {}).get("targets", {})
    if scores:
        out.append(("p", "The pipeline scored against the crawl's ground truth (what every page "
                         "really is; the pipeline never reads it):"))
        out.append(("table", ["measure", "value", "goal", "met"],
                    [[name, _num(t.get("value")), t.get("goal"), "yes" if t.get("met") else "no"]
                     for name, t in scores.items() if t.get("value") is not None]))
    tokens = s.get("shards", {}).get("tokens")
    if tokens:
        out.append(("p", f"Pages -> documents -> tokens: {_num(crawl.get('pages'))} -> "
                         f"{_num(s['clean'].get('documents'))} -> {_num(tokens)}."))
    kept = _first_jsonl_gz(run / "clean")
    removed = _first_jsonl_gz(run / "clean" / "removed")
    if kept:
        out += [("p", f"A kept document ({kept.get('url', '?')}):"), ("pre", kept.get("text", "")[:400])]
    if removed:
        out += [("p", f"A removed one ({removed.get('url', '?')}), by {removed.get('stage')}: "
                      f"{removed.get('reason')}:"), ("pre", removed.get("text", "")[:400])]
    return out


def section_tokenizer(run, summary):
    out = [("h", "2. Tokenization"),
           ("code", "minillm/tokenizer/ (minillm tokenizer), csrc/bpe*.c")]
    path = run / "tokenizer.json"
    if not path.exists():
        return out + [("p", "The tokenizer has not been trained yet.")]
    tok = load_any(str(path))
    kept = _first_jsonl_gz(run / "clean")
    text = (kept or {}).get("text", "")[:300]
    ids = tok.encode(text) if text else []
    ratio = len(text.encode()) / len(ids) if ids else None
    out.append(("p", f"Vocabulary {tok.vocab_size:,} tokens (BPE trained on the clean text); "
                     f"{_num(ratio, 3)} bytes per token on the paragraph below."))
    if ids:
        out.append(_token_view(ids, tok))
    for word in ("strawberry", " strawberry"):
        pieces = [tok.decode([i]) for i in tok.encode(word)]
        out.append(("p", f"{word!r} is {len(pieces)} tokens: " + " | ".join(repr(p) for p in pieces)
                         + ". The model sees these ids, never the letters: counting the r's "
                           "means knowing how each token is spelled."))
    return out


def section_training(run, summary):
    out = [("h", "3. Pre-training the base model"),
           ("code", "minillm/nn/, minillm/pretrain/ (minillm pretrain), csrc/")]
    pre = summary.get("stages", {}).get("pretrain")
    config = (_json(run / "base" / "config.json") or {}).get("model")
    if not pre or not config:
        return out + [("p", "Pre-training has not run yet.")]
    n = num_params(GPTConfig(**config))
    out.append(("p", f"{n / 1e6:.2f}M parameters ({config['n_layer']} layers, {config['n_embd']} wide, "
                     f"context {config['context_len']}); {_num(pre.get('steps'))} steps, "
                     f"{_num(pre.get('tokens_seen'))} tokens at {_num(pre.get('tokens_per_s'))} tokens/s; "
                     f"final validation loss {_num(pre.get('val_loss'))}."))
    records = _metrics(run, "base")
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if r.get("val_loss") is not None]
    if train:
        def draw(ax):
            ax.plot(*zip(*train), label="train")
            if val:
                ax.plot(*zip(*val), "o-", label="validation")
            ax.set_yscale("log")
            ax.set_xlabel("step")
            ax.set_ylabel("loss (nats/token)")
            ax.legend()
        out.append(_plot("loss", "the loss curve", draw))
    return out


def section_base(run, summary):
    out = [("h", "4. Inference: the base model, an internet-document simulator"),
           ("code", "minillm/generate/ (minillm sample), minillm/evals/ (minillm eval)")]
    evals = _json(run / "base" / "evals.json")
    if not evals:
        return out + [("p", "The base-model evals have not run yet.")]
    buckets = evals.get("cloze", {}).get("buckets", {})
    rows = [[b, _num(v.get("n")), _pct(v.get("accuracy"))] for b, v in buckets.items()]
    out.append(("p", "Fact recall by exposure: a fact seen in hundreds of documents is stored, "
                     "one seen once is mostly not ('never' = invented entities: its rate is chance)."))
    out.append(("table", ["bucket", "facts", "recalled"], rows))
    if rows:
        def draw(ax):
            ax.bar([r[0] for r in rows], [buckets[r[0]].get("accuracy", 0) * 100 for r in rows])
            ax.set_ylabel("recalled (%)")
        out.append(_plot("recall", "recall by exposure", draw))
    e = summary.get("stages", {}).get("evals", {})
    if "verbatim_seen_many" in e:
        out.append(("p", f"Regurgitation (continuations matching the training text verbatim): "
                         f"{_pct(e['verbatim_seen_many'])} for documents seen many times, "
                         f"{_pct(e.get('verbatim_seen_once'))} once, {_pct(e.get('verbatim_never_seen'))} never. "
                         f"Few-shot: {_pct(e.get('few_shot_0'))} zero-shot, {_pct(e.get('few_shot_3'))} with 3 examples."
                         + (f" Copying from its context (random tokens written twice): {_pct(e['copy'])} of the "
                            "second copy predicted; reading a name, a number or an answer out of the context "
                            "(search, the calculator) needs this." if "copy" in e else "")))
    samples = _json(run / "base" / "samples.json") or []
    if samples and "checked" in samples[0]:
        right, wrong = (sum(x.get(k, 0) for x in samples) for k in ("facts_right", "facts_wrong"))
        out.append(("p", f"Samples, each stated fact checked against the world's fact table "
                         f"(minillm/evals/factcheck.py): {right} right, {wrong} wrong (hallucinated) "
                         f"in {len(samples)} samples."))
    for sample in samples[:3]:
        out += [("p", f"Prompt: {sample.get('prompt')!r}; the model continues:"),
                ("pre", sample.get("checked", sample.get("text", ""))[:500])]
    return out


CHAT_ROWS = (("identity", "identity: says it is minillm's assistant", "rate"),
             ("world_qa", "world QA (facts seen many times)", "rate"),
             ("hallucination", "made-up answer about a never-seen entity", "rate"),
             ("false_idk", "false 'I don't know' on known facts", "rate"),
             ("rare", "rare entities with the search tool", "rate"),
             ("calculator", "arithmetic with the calculator", "rate"),
             ("think", "3-step problems, step by step", "step_by_step"),
             ("think", "3-step problems, answer first", "answer_first"),
             ("spelling", "letter counting, direct", "count_direct"),
             ("spelling", "letter counting, spelled out", "count_spelled"))


def section_sft(run, summary):
    out = [("h", "5. Post-training: supervised fine-tuning (SFT)"),
           ("code", "minillm/chat/ (minillm sft, minillm chat eval)")]
    sft = _json(run / "sft" / "chat_evals.json")
    base = _json(run / "chat" / "base_chat_evals.json") or {}
    if not sft:
        return out + [("p", "SFT and its evals have not run yet.")]
    rows = [[label, _pct(base.get(k, {}).get(key)), _pct(sft[k].get(key))]
            for k, label, key in CHAT_ROWS if sft.get(k, {}).get(key) is not None]
    out.append(("p", "The same checks on the base model (prompted with the chat template) and on "
                     "the assistant after SFT (minillm/chat/evals.py):"))
    out.append(("table", ["measure", "base", "SFT"], rows))
    path = run / "chat" / "conversations.jsonl"
    tok_path = run / "tokenizer.json"
    if path.exists() and tok_path.exists():
        tok = load_any(str(tok_path))
        with open(path) as f:
            first = json.loads(f.readline())
        ids, mask = render(first["messages"] if "messages" in first else first["conversation"], tok)
        out.append(("p", f"Conversations are just tokens: one training conversation ({first.get('kind')}), "
                         f"green where the loss is counted (what the assistant writes):"))
        out.append(_token_view(ids, tok, mask))
    return out


def section_rl(run, summary):
    out = [("h", "6. Post-training: reinforcement learning on checkable problems"),
           ("code", "minillm/rl/ (minillm rl, minillm rl eval)")]
    runs = {name: _metrics(run, "rl", name) for name in ("rl", "rl_countdown")}   # the speedrun's
    evals = _json(run / "rl_evals.json")
    if not any(runs.values()) and not evals:
        return out + [("p", "RL has not run yet.")]
    for name, rs in runs.items():
        task = rs[0].get("task", name) if rs else name
        p1 = [(r["step"], r["pass1"]) for r in rs if r.get("pass1") is not None]
        length = [(r["step"], r["length"]) for r in rs if r.get("length") is not None]
        checking = [(r["step"], r["checking"]) for r in rs if r.get("checking") is not None]
        if p1:
            def draw(ax, p1=p1, length=length, checking=checking):
                ax.plot(*zip(*p1), "o-", label="held-out pass@1")
                if checking:
                    ax.plot(*zip(*checking), label="answers that check themselves")
                ax.set_xlabel("RL step")
                ax.set_ylim(0, 1)
                ax.legend(loc="lower left")
                if length:
                    twin = ax.twinx()
                    twin.plot(*zip(*length), color="gray", alpha=0.5)
                    twin.set_ylabel("answer length (tokens)", color="gray")
            out.append(_plot(name, f"RL on {task} ({name}/)", draw))
    if evals:
        models = evals.get("models", {})            # model -> task -> {"accuracy", ...}
        names = [m for m in ("sft", "rl_math", "rl_countdown") if m in models]
        tasks_seen = dict.fromkeys(t for m in names for t in models[m])
        rows = [[task] + [_pct(models[m].get(task, {}).get("accuracy")) for m in names]
                for task in tasks_seen]
        label = {"sft": "SFT", "rl_math": "after RL (word problems)",
                 "rl_countdown": "after RL (countdown)"}
        out.append(("p", f"Held-out accuracy (greedy, {evals.get('n')} problems each) of each model:"))
        out.append(("table", ["task"] + [label[m] for m in names], rows))
        if "demonstrator" in evals:
            out.append(("p", f"The countdown's SFT demonstrator solves {_pct(evals['demonstrator'])}: "
                             "RL is measured against the teacher it imitated."))
    return out


LOGP = (", plus the SFT model's mean log-probability of the answer times a learned weight "
        "(--logp)")


def section_rlhf(run, summary):
    out = [("h", "7. RLHF: a reward model, and how it gets gamed"),
           ("code", "minillm/rlhf/ (minillm rlhf)")]
    s = summary.get("stages", {})
    rm, curves = s.get("reward_model"), _json(run / "rlhf" / "curves.json")
    if not rm and not curves:
        return out + [("p", "RLHF has not run yet.")]
    if rm:
        out.append(("p", f"A simulated labeller (minillm/rlhf/labeller.py: true facts, on topic, "
                         f"length, no repetition, fluency) ranked the SFT model's answers into "
                         f"{_num(rm.get('pairs'))} preference pairs; the reward model (the SFT "
                         f"transformer with a scalar head on the last token"
                         f"{LOGP if rm.get('logp_weight') is not None else ''}, Bradley-Terry loss) agrees with "
                         f"{_pct(rm.get('accuracy'))} of {_num(rm.get('held_out_pairs'))} held-out pairs."))
        parts = rm.get("by_part") if isinstance(rm.get("by_part"), dict) else {}
        if parts:
            out.append(("p", f"What decided each held-out pair (the part of the true score that differs most "
                             f"between the two answers), and how often the reward model agreed. The labeller "
                             f"is noisy: even the noise-free true score orders only {_pct(rm.get('ceiling'))} "
                             f"of the pairs as it did, so near-ties are coin flips for any reward model."))
            out.append(("table", ["decided by", "held-out pairs", "reward model right"],
                        [[k, _num(v.get("pairs")), _pct(v.get("accuracy"))] for k, v in parts.items()]))
    for name, c in (curves if isinstance(curves, dict) else {}).items():
        if not isinstance(c, dict):
            continue
        evals = [h for h in c.get("history", []) if h.get("eval_true") is not None]
        if evals:
            def draw(ax, evals=evals, c=c):
                steps = [h["step"] for h in evals]
                ax.plot(steps, [h["eval_rm"] for h in evals], "o-", label="reward model's score")
                ax.plot(steps, [h["eval_true"] for h in evals], "s-", label="true score (labeller)")
                ax.axvline(c.get("peak_step", 0), color="gray", linestyle=":", label="true-score peak")
                ax.set_xlabel("RLHF step")
                ax.legend()
            kl = f"KL penalty beta {c.get('beta')}" if c.get("beta") else "no KL penalty"
            out.append(_plot(f"rlhf_{name}", f"RL against the reward model, {kl}", draw))
        out.append(("p", f"{name} ({'KL beta ' + str(c.get('beta')) if c.get('beta') else 'no KL'}): "
                         f"true score {_num(c.get('sft_true'), 3)} (SFT) -> {_num(c.get('peak_true'), 3)} "
                         f"at step {c.get('peak_step')} (the checkpoint kept) -> {_num(c.get('last_true'), 3)} "
                         f"at the last step, while the reward model's score went to "
                         f"{_num(c.get('last_rm'), 3)}."))
    samples = _json(run / "rlhf" / "policy" / "samples.json") or {}
    rows = [[when, f"{v.get('step')}", a.get("prompt", ""), a.get("answer", "")[:160],
             _num(a.get("rm"), 3), _num(a.get("true"), 3)]
            for when, v in samples.items() for a in v.get("answers", [])[:2]]
    if rows:
        out.append(("p", "What the reward model comes to love (answers before, at and after the peak):"))
        out.append(("table", ["when", "step", "prompt", "answer", "reward model", "true"], rows))
    return out


def section_arena(run, summary):
    out = [("h", "8. Keeping track of models, and where to find them"),
           ("code", "minillm/rlhf/arena.py (minillm arena), minillm/hub/ (minillm export)")]
    arena = _json(run / "arena.json")
    if arena and arena.get("models"):
        out.append(("p", f"An arena (minillm/rlhf/arena.py): {_num(arena.get('battles'))} battles between "
                         f"the checkpoints on {sum(arena.get('prompts', {}).values())} prompts, judged by the "
                         f"checkers where there is an answer and by the labeller where there is not; "
                         f"ratings with 95% intervals from {arena.get('rounds')} bootstrap rounds."))
        rows = [[m["name"], f"{m['bt']:.0f} ({m['bt_ci'][0]:.0f}-{m['bt_ci'][1]:.0f})",
                 f"{m['elo']:.0f} ({m['elo_ci'][0]:.0f}-{m['elo_ci'][1]:.0f})", _pct(m.get("win_rate"))]
                for m in arena["models"]]
        out.append(("table", ["model", "Bradley-Terry", "Elo", "win rate"], rows))
    else:
        out.append(("p", "The arena has not run yet."))
    ckpt = run / ("rl" if (run / "rl").exists() else "sft")
    out.append(("p", "Talk to the assistant, or export it to the tools people use:"))
    out.append(("pre", f"minillm chat --ckpt {ckpt}\n"
                       f"minillm export --ckpt {ckpt} --format gguf --out {run}/model.gguf   # llama.cpp\n"
                       f"minillm export --ckpt {ckpt} --format hf --out {run}/hf   # transformers"))
    return out


SECTIONS = (section_internet, section_tokenizer, section_training, section_base, section_sft,
            section_rl, section_rlhf, section_arena)


# ---- writing -----------------------------------------------------------------------------

def build(run):
    """All blocks of the report of run directory `run`."""
    run = Path(run)
    summary = _json(run / "speedrun.json")
    if summary is None:
        raise UserError(f"{run} has no speedrun.json: run `minillm speedrun` (or pass --run "
                        f"the directory of a speedrun)")
    blocks = header(run, summary)
    for section in SECTIONS:
        try:
            blocks += section(run, summary)
        except (UserError, OSError, ValueError, KeyError, TypeError, AttributeError) as e:   # damaged
            blocks.append(("p", f"(section {section.__name__.removeprefix('section_')}: "
                                f"could not be read: {e})"))
    return blocks


def to_markdown(blocks, plot_dir):
    lines = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            lines.append(("# " if block[1].startswith("minillm report") else "## ") + block[1])
        elif kind == "p":
            lines.append(block[1])
        elif kind == "code":
            lines.append(f"*Made by* `{block[1]}`")
        elif kind == "pre":
            lines.append("```\n" + block[1].replace("```", "'''") + "\n```")
        elif kind == "table":
            _, head, rows = block
            lines.append("| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n"
                         + "\n".join("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ↵ ") for c in r) + " |"
                                     for r in rows))
        elif kind == "plot":
            _, name, png, caption = block
            atomic_write(plot_dir / f"{name}.png", png)
            lines.append(f"![{caption}]({plot_dir.name}/{name}.png)")
        elif kind == "tokens":
            learned = any(k.startswith("learn") for _, k in block[1])
            lines.append("`" + "".join(f"{{{t}}}" if k.startswith("learn") else f"[{t}]"
                                       for t, k in block[1]).replace("`", "'") + "`"
                         + ("\n\n([...] context, {...} learned)" if learned else ""))
        lines.append("")
    return "\n".join(lines)


CSS = """body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}
pre{background:#f5f5f5;padding:.6em;white-space:pre-wrap}.tok{line-height:1.9}
.tok span{padding:.1em 0;white-space:pre-wrap}.a{background:#dde4f0}.b{background:#c3cde0}
.learn-a{background:#bfe3b4}.learn-b{background:#97cf88}img{max-width:100%}
.code{color:#666;font-size:90%}"""


def to_html(blocks):
    esc = html.escape
    parts = [f"<!doctype html><meta charset='utf-8'><title>minillm report</title><style>{CSS}</style>"]
    for block in blocks:
        kind = block[0]
        if kind == "h":
            tag = "h1" if block[1].startswith("minillm report") else "h2"
            parts.append(f"<{tag}>{esc(block[1])}</{tag}>")
        elif kind == "p":
            parts.append(f"<p>{esc(block[1])}</p>")
        elif kind == "code":
            parts.append(f"<p class='code'>Made by <code>{esc(block[1])}</code></p>")
        elif kind == "pre":
            parts.append(f"<pre>{esc(block[1])}</pre>")
        elif kind == "table":
            _, head, rows = block
            parts.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>"
                         + "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in r) + "</tr>"
                                   for r in rows) + "</table>")
        elif kind == "plot":
            _, name, png, caption = block
            data = base64.b64encode(png).decode()
            parts.append(f"<figure><img alt='{esc(caption)}' src='data:image/png;base64,{data}'>"
                         f"<figcaption>{esc(caption)}</figcaption></figure>")
        elif kind == "tokens":
            parts.append("<p class='tok'>" + "".join(f"<span class='{k}'>{esc(t)}</span>"
                                                      for t, k in block[1]) + "</p>")
    return "\n".join(parts) + "\n"


def write_report(run):
    """Write run/report.md (+ run/report/*.png) and run/report.html; return their paths."""
    run = Path(run)
    blocks = build(run)
    plot_dir = run / "report"
    plots = {f"{b[1]}.png" for b in blocks if b[0] == "plot"}
    if plots:
        plot_dir.mkdir(exist_ok=True)
    for old in plot_dir.glob("*.png") if plot_dir.is_dir() else ():
        if old.name not in plots:            # a plot of an earlier version of the report
            old.unlink()
    md, page = run / "report.md", run / "report.html"
    atomic_write(md, to_markdown(blocks, plot_dir))
    atomic_write(page, to_html(blocks))
    return md, page


def add_arguments(parser):
    parser.add_argument("--run", default=None,
                        help="the speedrun's directory (default: runs/default)")


def run(args):
    from_dir = Path(args.run) if args.run else runs_dir() / "default"
    if not from_dir.is_dir():
        raise UserError(f"no run directory {from_dir}: run `minillm speedrun` first, or pass "
                        f"--run DIR")
    md, page = write_report(from_dir)
    print(f"report: {md} and {page} (one file, plots inside: open it in a browser)")
