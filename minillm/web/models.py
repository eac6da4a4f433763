"""The checkpoints of a run, for the web app: found on disk, loaded on first use, one lock each.

A speedrun's directory (runs/<name>/) holds its checkpoints at base/, sft/, rl/,
rl_countdown/, rlhf/policy/ and so on: every folder up to two levels down whose
config.json is a minillm checkpoint's, except the reward model (it scores answers, it does
not write them). find_models lists them from their config.json alone; Models.engine(name)
loads one the first time it is asked for and keeps it, with the tools attached as
`minillm chat` attaches them: the calculator (chat/tools.py) and search over the run's
BM25 index (chat/search.py, <run>/chat/search.npz; without it the tool says so).

An Engine is not thread-safe (every call reuses its KV cache and decode buffers), so each
model has a lock and one generation at a time runs on it; api.py bounds how many run at
once over all models.

Read next: api.py (what a request does with a model), server.py.
"""
import threading
from dataclasses import dataclass, field
from pathlib import Path

from minillm.chat.search import BM25Index
from minillm.chat.terminal import attach_tools
from minillm.common import UserError, read_json
from minillm.generate.engine import Engine
from minillm.nn.checkpoint import FORMAT
from minillm.nn.gpt import GPTConfig, num_params
from minillm.tokenizer.bpe import Tokenizer

STAGE_ORDER = {"base": 0, "sft": 1, "rl": 2, "rlhf": 3}    # the lecture's order, for the menu
NOT_A_WRITER = ("reward_model",)                           # stages that do not generate text
CHAT_FIRST = ("sft", "rlhf/policy", "rl")                  # the default model of the chat


@dataclass
class ModelInfo:
    """One checkpoint of the run, as config.json describes it (no weights read)."""
    name: str                   # its path inside the run: "sft", "rlhf/policy"
    path: Path
    stage: str                  # config.json's "stage": base, sft, rl, rlhf
    params: int                 # parameter count
    context_len: int            # tokens the model can see
    step: int                   # optimizer steps it was trained for
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def public(self):
        return {"name": self.name, "stage": self.stage, "params": self.params,
                "context_len": self.context_len, "step": self.step}


def find_models(run):
    """[ModelInfo] of the checkpoints in run directory `run`, in lecture order."""
    found = []
    for config in sorted([*Path(run).glob("*/config.json"), *Path(run).glob("*/*/config.json")]):
        name = config.parent.relative_to(run).as_posix()
        if any(part.startswith(".") for part in name.split("/")):
            continue                                       # an interrupted save's leftovers
        try:
            meta = read_json(config, what="checkpoint config")
            model = GPTConfig(**meta["model"])
        except (UserError, KeyError, TypeError, ValueError):
            continue                                       # not a checkpoint we can run
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("stage") in NOT_A_WRITER:
            continue
        found.append(ModelInfo(name, config.parent, str(meta.get("stage", "?")), num_params(model),
                               model.context_len, int(meta.get("step") or 0)))
    return sorted(found, key=lambda m: (STAGE_ORDER.get(m.stage, len(STAGE_ORDER)), m.name))


class Models:
    """The run's checkpoints by name; engines and tokenizers loaded once, on first use."""

    def __init__(self, run):
        self.run = Path(run)
        self.infos = {m.name: m for m in find_models(self.run)}
        self._engines, self._tokenizers, self._search = {}, {}, None
        self._loading = threading.Lock()                   # one load at a time

    def info(self, name):
        """The ModelInfo called name; KeyError when the run has no such model."""
        return self.infos[name]

    def default(self, for_chat=True):
        """The model a page starts with: the SFT assistant for chat, the base model for
        completion (else the first one)."""
        prefer = CHAT_FIRST if for_chat else ("base",)
        return next((n for n in prefer if n in self.infos), next(iter(self.infos), None))

    def tokenizer(self, name):
        """The model's tokenizer (its tokenizer.json), without loading the weights."""
        with self._loading:
            if name not in self._tokenizers:
                engine = self._engines.get(name)
                self._tokenizers[name] = (engine.tokenizer if engine is not None
                                          else Tokenizer.load(self.infos[name].path / "tokenizer.json"))
            return self._tokenizers[name]

    def engine(self, name):
        """The model's Engine with the calculator and search tools (UserError if it cannot load)."""
        with self._loading:
            if name not in self._engines:
                engine = Engine.from_checkpoint(self.infos[name].path)
                attach_tools(engine, self._search_tool())
                self._engines[name] = engine
            return self._engines[name]

    def _search_tool(self):
        if self._search is None:
            path = self.run / "chat" / "search.npz"
            self._search = BM25Index.load(path).search_tool if path.exists() else False
        return self._search or None
