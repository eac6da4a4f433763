"""The tiny pretraining run of the pretraining tests (tests/pretrain/): its fixed text and
its TrainConfig. tests/pretrain/conftest.py makes the text a fixture, `text_file`."""
import random

from minillm.pretrain.train import TrainConfig

WORDS = ("the of and to in a is that for it as was with be by on not he I this are or his "
         "from at which but have an they you were her she there one all we their can has more").split()


def write_text(path):
    """A fixed text at path: 20,000 words drawn with random.Random(0) from 40 common words."""
    rng = random.Random(0)
    path.write_text(" ".join(rng.choice(WORDS) for _ in range(20000)))
    return path


def tiny(text_file, out, **kw):
    """2 layers x 2 heads x 32 wide, context 32, batch 8, bytes of `text_file`."""
    base = dict(data=str(text_file), out=str(out), n_layer=2, n_head=2, n_embd=32, context_len=32,
                batch_size=8, steps=50, lr=3e-3, warmup=5, eval_every=25, eval_batches=4,
                ckpt_every=0, progress=False, threads=1)
    base.update(kw)
    return TrainConfig(**base)
