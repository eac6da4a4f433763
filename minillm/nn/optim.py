"""AdamW, learning-rate schedules and gradient clipping: how the weights move.

    opt = AdamW(params, weight_decay=0.1)       # params: the model's dict name -> array
    loss, cache = forward(params, config, x, y)
    opt.accumulate(backward(cache))             # once per micro-batch (gradient accumulation)
    report = opt.step(lr=lr_cosine(step, ...), clip=1.0, loss=loss)
    report.skipped                              # True when the loss or a gradient was not finite

AdamW touches every parameter with the same elementwise formula, so the optimizer keeps all
parameters in ONE flat float32 buffer (the caller's dict gets views of it), with gradients
and moments laid out alike: a step is two passes over memory, adamw_update and grad_store
below, each its NumPy lines with the C call (nn/kernels/optim.py) as the fast path. The
non-finite guard skips a step whose loss or global gradient norm is inf/nan, leaving
weights, moments and the step count untouched.

    python -m pytest tests/nn/test_optim.py

Read next: nn/checkpoint.py, which saves the parameters and this optimizer's state.
"""
import math
from dataclasses import dataclass

import numpy as np

from minillm import clib
from minillm.nn import kernels as K
from minillm.nn.kernels import optim as KO

FLOAT32_MAX = float(np.finfo(np.float32).max)
ALIGN = 16             # each parameter starts on a 64-byte boundary of the flat buffer
CHUNK = 65536          # floats per NumPy ufunc call: 256 KB per array, cache-resident


def decays(name, value):
    """True if weight decay applies to parameter `name`.

    Weight decay (decoupled: p <- p - lr * wd * p, before the Adam step) applies to the 2-D
    weight matrices of attention, MLP and the untied LM head. Not to the RMSNorm weights (a
    decay toward 0 would fight their 1.0 initialisation) nor to the token embedding
    `tok_emb`, tied or not: a rare token's row would shrink every step while receiving
    gradient only when the token occurs (nanoGPT decays embeddings; nanochat and many
    Llama recipes do not).
    """
    return value.ndim == 2 and name != "tok_emb"


# ---- the passes over the flat buffers: NumPy, with the C call as the fast path -----------
# use_c is the optimizer's choice, made once (AdamW.__init__): C when kernels.fast allows it.

@dataclass(frozen=True)
class AdamWCoefs:
    """The per-step constants of the update (see AdamW._update for how they are derived):
        m = b1 m + g1 g;  v = b2 v + g2 g^2;  p = p * decay - step_size * m / (sqrt(v) + eps_hat)
    """
    b1: float
    b2: float
    g1: float
    g2: float
    eps_hat: float
    step_size: float
    decay: float


def adamw_update(p, m, v, g, n_decay, c, use_c):
    """p, m, v (P,) updated in place from g (P,) with the constants c; values [0, n_decay)
    also decay. The C update does these float32 operations in the same order: same bits.

    NumPy: CHUNK values at a time, with 13 in-place ufunc calls (`out=`, no temporaries) per
    chunk, so that each chunk's p, g, m, v stay in cache across the calls (rather than 13
    passes over the whole buffer).
    """
    if use_c:
        return KO.adamw_update(p, m, v, g, n_decay, c)                  # csrc/optim.c: one pass
    # exercise: adamw
    tmp = np.empty(min(CHUNK, p.size), p.dtype)                         # (CHUNK,)
    for s in range(0, p.size, CHUNK):
        e = min(s + CHUNK, p.size)
        t = tmp[:e - s]
        ps, gs, ms, vs = p[s:e], g[s:e], m[s:e], v[s:e]
        if s < n_decay and c.decay != 1.0:
            ps[:n_decay - s] *= c.decay                 # decoupled weight decay
        ms *= c.b1
        np.multiply(gs, c.g1, out=t)
        ms += t                                         # m = b1 m + (1-b1) g
        np.multiply(gs, gs, out=t)
        t *= c.g2
        vs *= c.b2
        vs += t                                         # v = b2 v + (1-b2) g^2
        np.sqrt(vs, out=t)
        t += c.eps_hat
        np.divide(ms, t, out=t)
        t *= c.step_size
        ps -= t                                         # p -= step * m / (sqrt(v) + eps)
    # end exercise


def sum_squares(x, use_c):
    """Sum of x^2 (any shape). C adds in double, in blocks and lanes fixed by the size alone
    (the thread count and the address do not matter); NumPy adds float32 dot products of
    CHUNK values in float64. Both agree to rounding, each with itself bit for bit."""
    if use_c:
        return KO.sum_squares(x)                                        # csrc/optim.c
    flat = x.reshape(-1)                                                # (P,)
    with np.errstate(over="ignore"):        # an overflow gives inf: the step is skipped
        return math.fsum(float(np.dot(flat[s:s + CHUNK], flat[s:s + CHUNK]))
                         for s in range(0, flat.size, CHUNK))


def grad_store(dst, src, accumulate, use_c):
    """dst = src (accumulate False) or dst += src, in place. Returns the new dst's sum of
    squares when use_c (C sums them in the same pass, so the norm costs no extra read), else
    None (the NumPy optimizer sums the whole gradient once, in AdamW.grad_norm)."""
    if use_c and K.fast(src) and src.shape == dst.shape:
        return KO.grad_store(dst, src, accumulate)                      # csrc/optim.c: one pass
    if accumulate:                              # NumPy, or a gradient of another dtype or layout
        dst += src
    else:
        np.copyto(dst, src)
    return sum_squares(dst, use_c) if use_c else None


def _norm(sumsq, scale):
    """sqrt(sumsq) * |scale|, or nan when sumsq is not finite or overflows float32 (then
    g^2 in the second moment would overflow too)."""
    return math.sqrt(sumsq) * abs(scale) if sumsq <= FLOAT32_MAX else float("nan")


@dataclass
class StepReport:
    """What one optimizer step did."""
    grad_norm: float        # global L2 norm of the (averaged) gradient, before clipping
    clip_coef: float        # factor the gradient was scaled by (1.0 = not clipped)
    skipped: bool           # True: non-finite loss/gradient, nothing was changed
    reason: str = ""        # why it was skipped


class AdamW:
    """AdamW over a dict of float32 arrays, with one flat buffer for each of p, g, m, v.

    Hyperparameters follow torch.optim.AdamW: betas (b1, b2), eps added to sqrt(v_hat),
    decoupled weight decay multiplied by the learning rate. use_c: run the passes over the
    buffers in C (None: when kernels.fast allows it, i.e. the library is loaded; False: the
    NumPy lines of adamw_update, grad_store and sum_squares). extra: float32 slots after the
    gradient in grad_buf, summed with it by reduce_grads (a data-parallel run's loss).

    accumulate() copies (or adds) each gradient into the flat buffer and, in C, sums its
    squares in the same pass, so the global norm costs no extra read; step() clips with that
    norm, then runs ONE fused AdamW pass (read p, g, m, v; write p, m, v). The NumPy lines
    give the update's same bits; the C sums of squares add in double, in blocks and lanes
    fixed by the size alone, so results depend neither on the thread count nor on where the
    arrays sit in memory: a resumed run is bit-identical. A gradient norm that overflows
    float32 (> ~1.8e19) counts as non-finite.
    """

    def __init__(self, params, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0, use_c=None, extra=0):
        self.b1, self.b2 = float(betas[0]), float(betas[1])
        self.eps, self.weight_decay = float(eps), float(weight_decay)
        self.t = 0                                  # completed (non-skipped) updates
        # decayed parameters first, so decay applies to a prefix of the buffer
        names = sorted(params, key=lambda n: not decays(n, params[n]))
        self.layout, offset = {}, 0
        for name in names:
            shape = params[name].shape
            self.layout[name] = (offset, shape)
            offset += -(-int(np.prod(shape, dtype=np.int64)) // ALIGN) * ALIGN
        self.n_decay = max([self.layout[n][0] + params[n].size for n in names if decays(n, params[n])],
                           default=0)
        self.size = offset
        self.flat_p = np.zeros(offset, np.float32)  # (P,) parameters (padding stays 0)
        self.grad_buf = np.zeros(offset + extra, np.float32)  # (P + extra,) what reduce_grads sums
        self.flat_g = self.grad_buf[:offset]        # (P,) gradient sum of this step
        self.extra = self.grad_buf[offset:]         # (extra,) values that travel with it (a loss)
        self.flat_m = np.zeros(offset, np.float32)  # (P,) first moment
        self.flat_v = np.zeros(offset, np.float32)  # (P,) second moment
        self.grads = self._views(self.flat_g)
        self.m, self.v = self._views(self.flat_m), self._views(self.flat_v)
        for name, view in self._views(self.flat_p).items():
            if params[name].dtype != np.float32:
                raise ValueError(f"parameter {name} must be float32, got {params[name].dtype}")
            view[...] = params[name]
            params[name] = view                     # subtle: the caller's dict now holds views
        self.params = params
        c_ok = K.fast(self.flat_p, self.flat_g, self.flat_m, self.flat_v)  # the library is loaded
        self.use_c = c_ok if use_c is None else bool(use_c)
        if self.use_c and not c_ok:
            raise ValueError(f"use_c=True but the C kernels are not loaded ({clib.load_error()})")
        self._n_accum = 0
        self._sumsq = None          # sum of squares of flat_g, when accumulate() computed it

    def _views(self, flat):
        return {n: flat[o:o + int(np.prod(s, dtype=np.int64))].reshape(s)
                for n, (o, s) in self.layout.items()}

    # ---- gradients ----------------------------------------------------------------

    def accumulate(self, grads):
        """Add one micro-batch's gradients (a dict with the params' keys) to this step's sum."""
        if set(grads) != set(self.layout):
            missing, extra = set(self.layout) - set(grads), set(grads) - set(self.layout)
            raise ValueError(f"gradient keys differ from parameters: missing {sorted(missing)}, "
                             f"unexpected {sorted(extra)}")
        add = self._n_accum > 0
        parts = [grad_store(dst, grads[name], add, self.use_c) for name, dst in self.grads.items()]
        # C: the copy also summed the squares, so step() need not read the gradient again
        self._sumsq = math.fsum(parts) if self.use_c else None
        self._n_accum += 1

    def reduce_grads(self, allreduce, ranks, share=None):
        """Sum this step's gradient over `ranks` data-parallel processes (pretrain/dist.py).

        allreduce(buf) must replace buf, in place, by its elementwise sum over the processes:
        ONE call for grad_buf, the flat gradient and the `extra` slots together (not one per
        parameter). step()'s default scale then divides by every micro-batch of every
        process, so each one takes the same mean gradient. share: when the processes' parts
        of the mean differ in size (SFT: supervised tokens), this process's weight in it;
        its gradient is multiplied by share first (one more pass) and the sum is the mean.
        The gradient norm is of the sum, not of this process's part: step() reads the
        summed buffer once more for it."""
        if self._n_accum == 0:
            raise RuntimeError("AdamW.reduce_grads() called with no accumulated gradient")
        if share is not None:
            self.flat_g *= np.float32(share)
        allreduce(self.grad_buf)
        self._n_accum = 1 if share is not None else self._n_accum * ranks
        self._sumsq = None

    def zero_grad(self):
        """Forget the accumulated gradient (the next accumulate() starts a new sum)."""
        self._n_accum = 0
        self._sumsq = None

    def grad_norm(self, scale=1.0):
        """Global L2 norm of scale * (accumulated gradient); nan if not finite in float32."""
        if self.use_c:      # per parameter, as accumulate() sums: the same bits
            total = math.fsum(sum_squares(g, True) for g in self.grads.values())
        else:
            total = sum_squares(self.flat_g, False)
        return _norm(total, scale)

    # ---- the update ---------------------------------------------------------------

    def step(self, lr, *, clip=None, loss=None, grads=None, grad_scale=None):
        """One AdamW update with learning rate `lr`; returns a StepReport.

        grads: a convenience for one micro-batch (= accumulate(grads) first).
        grad_scale: multiplies the accumulated gradient sum; default 1 / (number of
            accumulated micro-batches), i.e. the mean gradient.
        clip: max global norm of the scaled gradient (None or 0: no clipping).
        loss: if given and not finite, the step is skipped.
        """
        if grads is not None:
            self.accumulate(grads)
        if self._n_accum == 0:
            raise RuntimeError("AdamW.step() called with no accumulated gradient")
        scale = 1.0 / self._n_accum if grad_scale is None else float(grad_scale)
        self._n_accum = 0
        norm = self.grad_norm(scale) if self._sumsq is None else _norm(self._sumsq, scale)
        self._sumsq = None
        if loss is not None and not math.isfinite(loss):
            return StepReport(norm, 1.0, True, f"loss is {loss}")
        if not math.isfinite(norm):
            return StepReport(norm, 1.0, True, "gradient is not finite")
        coef = min(1.0, clip / (norm + 1e-6)) if clip else 1.0
        self.t += 1
        self._update(float(lr), scale * coef)
        return StepReport(norm, coef, False)

    def _update(self, lr, gscale):
        """Update step self.t of the flat buffers with learning rate lr, the accumulated
        gradient scaled by gscale (1 / micro-batches, times the clip factor)."""
        # exercise: adamw
        b1, b2, t = self.b1, self.b2, self.t
        bc1, bc2 = 1.0 - b1 ** t, 1.0 - b2 ** t
        # With m_hat = m / bc1 and v_hat = v / bc2 (torch's formula):
        #   p -= lr * m_hat / (sqrt(v_hat) + eps)
        #      = (lr * sqrt(bc2) / bc1) * m / (sqrt(v) + eps * sqrt(bc2))
        # The constants are computed here in float64 and rounded to float32 once.
        coefs = AdamWCoefs(
            b1=b1, b2=b2,
            g1=(1.0 - b1) * gscale,             # m = b1 m + (1 - b1) (s g)
            g2=(1.0 - b2) * gscale * gscale,    # v = b2 v + (1 - b2) (s g)^2
            eps_hat=self.eps * math.sqrt(bc2),
            step_size=lr * math.sqrt(bc2) / bc1,
            decay=1.0 - lr * self.weight_decay)  # decoupled: p *= 1 - lr wd, before the step
        adamw_update(self.flat_p, self.flat_m, self.flat_v, self.flat_g, self.n_decay, coefs,
                     self.use_c)
        # end exercise

    # ---- state for checkpoints ------------------------------------------------------

    def state(self):
        """(tensors, meta): moments as arrays named m.<param>, v.<param>; scalars as a dict."""
        tensors = {f"m.{n}": a for n, a in self.m.items()}
        tensors.update({f"v.{n}": a for n, a in self.v.items()})
        meta = {"t": self.t, "betas": [self.b1, self.b2], "eps": self.eps,
                "weight_decay": self.weight_decay}
        return tensors, meta

    def load_state(self, tensors, meta):
        """Restore what state() returned; raises ValueError on missing or misshapen moments."""
        for prefix, views in (("m.", self.m), ("v.", self.v)):
            for name, view in views.items():
                key = prefix + name
                if key not in tensors or tuple(tensors[key].shape) != view.shape:
                    got = None if key not in tensors else tuple(tensors[key].shape)
                    raise ValueError(f"optimizer state {key}: expected shape {view.shape}, got {got}")
                view[...] = tensors[key]
        self.t = int(meta["t"])


# ---- learning-rate schedules ---------------------------------------------------------
# step counts from 0; total is the number of steps of the run.

def _warmup(step, lr, warmup):
    """Linear warmup: lr * (step + 1) / warmup, so step 0 already moves the weights."""
    return lr * (step + 1) / warmup


def lr_cosine(step, *, lr, min_lr, warmup, total):
    """Linear warmup, then cosine decay from lr to min_lr at the last step."""
    if step < warmup:
        return _warmup(step, lr, warmup)
    progress = min(1.0, (step - warmup) / max(1, total - 1 - warmup))
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def lr_wsd(step, *, lr, min_lr, warmup, total, decay_frac=0.2):
    """Warmup-stable-decay: linear warmup, constant lr, then a linear decay to min_lr over
    the last `decay_frac` of the steps (reaching min_lr at the last step)."""
    if step < warmup:
        return _warmup(step, lr, warmup)
    decay_start = total - max(1, round(decay_frac * total))
    if step < decay_start:
        return lr
    progress = min(1.0, (step - decay_start + 1) / max(1, total - decay_start))
    return lr + (min_lr - lr) * progress


SCHEDULES = {"cosine": lr_cosine, "wsd": lr_wsd}
