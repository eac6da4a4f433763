"""The C kernels (csrc/, compiled through cffi) and the NumPy twin of each.

Every kernel has two implementations with the same signature:

    matmul_forward(inp, weight)       # C when the extension is loaded, else NumPy
    matmul_forward_ref(inp, weight)   # NumPy, always: the readable definition

The wrapper checks dtype, contiguity, shapes and aliasing before C sees a pointer, and
raises a one-line ValueError otherwise. It falls back to the reference when the extension
is not built or MINILLM_NO_C=1. MINILLM_THREADS sets the kernels' OpenMP threads (default:
all cores); MINILLM_KERNELS_PATH loads a build from another directory (the sanitizer
build of csrc/build.py).

Shapes: N rows (tokens), C input channels, OC output channels; B batch, NH query heads,
NKV key/value heads (NH % NKV == 0), T time, HD head dim, S KV-cache capacity.
"""
import importlib.util
import os
import sys
import warnings
from pathlib import Path

import numpy as np

_state = {"loaded": False, "lib": None, "ffi": None, "error": None, "path": None}


def _load():
    """Load the extension once; return (ffi, lib) or (None, None)."""
    if _state["loaded"]:
        return _state["ffi"], _state["lib"]
    _state["loaded"] = True
    if os.environ.get("MINILLM_NO_C") == "1":
        _state["error"] = "MINILLM_NO_C=1"
        return None, None
    # subtle: between parallel regions libgomp's idle threads spin-wait (300k spins by
    # default). On a quiet machine that saves a wake-up per kernel call; when another
    # process holds a core, the spinning starves the thread with work (training steps
    # measured 2-8x slower on 2 busy cores). 10k spins keeps the quiet-machine speed and
    # bounds the damage. libgomp reads this once, when it loads, so set it before that.
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")
    try:
        override = os.environ.get("MINILLM_KERNELS_PATH")
        if override:
            module = _load_from(Path(override))
        else:
            from minillm import _kernels as module
    except ImportError as e:
        _state["error"] = f"extension not built: {e}"
        warnings.warn(f"minillm: C kernels unavailable ({e}); using the NumPy references "
                      "(slower). Reinstall with a C compiler: pip install -e .", RuntimeWarning,
                      stacklevel=3)
        return None, None
    _state["ffi"], _state["lib"] = module.ffi, module.lib
    _state["path"] = module.__file__
    threads = os.environ.get("MINILLM_THREADS")
    if threads:
        set_num_threads(int(threads))
    return _state["ffi"], _state["lib"]


def _load_from(directory):
    """Import minillm._kernels from a build directory (csrc/build.py --out DIR)."""
    candidates = sorted(directory.glob("**/_kernels*.so")) + sorted(directory.glob("**/_kernels*.pyd"))
    if not candidates:
        raise ImportError(f"no _kernels extension under {directory}")
    spec = importlib.util.spec_from_file_location("minillm._kernels", candidates[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["minillm._kernels"] = module
    return module


# ---- runtime facts ---------------------------------------------------------------------

def c_available():
    """True when the C extension is loaded (and not disabled by MINILLM_NO_C=1)."""
    return _load()[1] is not None


def load_error():
    """Why the C extension is not in use, or None."""
    _load()
    return _state["error"]


def library_path():
    _load()
    return _state["path"]


def has_openmp():
    lib = _load()[1]
    return bool(lib and lib.minillm_has_openmp())


def simd_level():
    """"avx512", "avx2" or "scalar" for the C build; "numpy" without it."""
    ffi, lib = _load()
    return ffi.string(lib.minillm_simd_level()).decode() if lib else "numpy"


def get_num_threads():
    lib = _load()[1]
    return lib.minillm_get_num_threads() if lib else 1


def set_num_threads(n):
    """Set the kernels' OpenMP thread count (n >= 1)."""
    n = int(n)
    if n < 1:
        raise ValueError(f"thread count must be >= 1, got {n}")
    lib = _load()[1]
    if lib:
        lib.minillm_set_num_threads(n)


# ---- argument checks -------------------------------------------------------------------

def _check(name, a, shape=None, ndim=None):
    """Raise a one-line ValueError unless `a` is a C-contiguous float32 array of `shape`."""
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(a).__name__}")
    if a.dtype != np.float32:
        raise ValueError(f"{name} must be float32, got {a.dtype} (use .astype(np.float32))")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (use np.ascontiguousarray)")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {a.shape}")
    if shape is not None and tuple(a.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {a.shape}")


def _check_output(name, out, shape, *inputs):
    _check(name, out, shape)
    if not out.flags.writeable:
        raise ValueError(f"{name} must be writable")
    for other in inputs:
        if other is not None and np.may_share_memory(out, other):
            raise ValueError(f"{name} must not overlap an input array")


def _ptr(ffi, a, writable=False):
    if a.size == 0:
        return ffi.NULL
    kind = "int[]" if a.dtype == np.int32 else "float[]"
    return ffi.from_buffer(kind, a, require_writable=writable)


# ---- matmul: a linear layer y = x W^T, W (OC, C) ---------------------------------------

def matmul_forward_ref(inp, weight):
    """out (..., OC) = inp (..., C) @ weight (OC, C)^T."""
    return inp @ weight.T


def matmul_forward(inp, weight, out=None):
    """out (..., OC) = inp (..., C) @ weight (OC, C)^T, overwriting `out` if given."""
    _check("weight", weight, ndim=2)
    OC, C = weight.shape
    _check("inp", inp)
    if inp.ndim < 1 or inp.shape[-1] != C:
        raise ValueError(f"inp's last dimension must be {C} (weight is {weight.shape}), got {inp.shape}")
    shape = inp.shape[:-1] + (OC,)
    ffi, lib = _load()
    if lib is None:
        result = matmul_forward_ref(inp, weight)
        if out is None:
            return result
        _check_output("out", out, shape, inp, weight)
        out[...] = result
        return out
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    else:
        _check_output("out", out, shape, inp, weight)
    N = inp.size // C if C else int(np.prod(inp.shape[:-1]))
    lib.matmul_forward(_ptr(ffi, out, True), _ptr(ffi, inp), _ptr(ffi, weight), N, C, OC)
    return out


def matmul_backward_input_ref(dout, weight):
    """dinp (..., C) = dout (..., OC) @ weight (OC, C)."""
    return dout @ weight


def matmul_backward_input(dout, weight, dinp=None):
    """dinp (..., C) = dout (..., OC) @ weight (OC, C), overwriting `dinp` if given."""
    _check("weight", weight, ndim=2)
    OC, C = weight.shape
    _check("dout", dout)
    if dout.ndim < 1 or dout.shape[-1] != OC:
        raise ValueError(f"dout's last dimension must be {OC} (weight is {weight.shape}), got {dout.shape}")
    shape = dout.shape[:-1] + (C,)
    ffi, lib = _load()
    if lib is None:
        result = matmul_backward_input_ref(dout, weight)
        if dinp is None:
            return result
        _check_output("dinp", dinp, shape, dout, weight)
        dinp[...] = result
        return dinp
    if dinp is None:
        dinp = np.empty(shape, dtype=np.float32)
    else:
        _check_output("dinp", dinp, shape, dout, weight)
    N = int(np.prod(dout.shape[:-1]))
    lib.matmul_backward_input(_ptr(ffi, dinp, True), _ptr(ffi, dout), _ptr(ffi, weight), N, C, OC)
    return dinp


def matmul_backward_weight_ref(dout, inp):
    """dweight (OC, C) = dout (N, OC)^T @ inp (N, C), over all leading dims of dout, inp."""
    OC, C = dout.shape[-1], inp.shape[-1]
    return dout.reshape(-1, OC).T @ inp.reshape(-1, C)


def matmul_backward_weight(dout, inp, dweight=None):
    """dweight (OC, C) += dout (..., OC)^T @ inp (..., C); a new zeroed dweight if None."""
    _check("dout", dout)
    _check("inp", inp)
    if dout.ndim < 1 or inp.ndim < 1 or dout.shape[:-1] != inp.shape[:-1]:
        raise ValueError(f"dout {dout.shape} and inp {inp.shape} must agree in all but the last dimension")
    OC, C = dout.shape[-1], inp.shape[-1]
    N = int(np.prod(dout.shape[:-1]))
    ffi, lib = _load()
    if dweight is None:
        dweight = np.zeros((OC, C), dtype=np.float32)
    else:
        _check_output("dweight", dweight, (OC, C), dout, inp)
    if lib is None:
        dweight += matmul_backward_weight_ref(dout, inp)
        return dweight
    lib.matmul_backward_weight(_ptr(ffi, dweight, True), _ptr(ffi, dout), _ptr(ffi, inp), N, C, OC)
    return dweight


def matmul_backward(dout, inp, weight, dweight=None):
    """Both backward products of out = inp @ weight^T: returns (dinp, dweight).

    dinp is new; dweight is accumulated into (+=) when given, else returned fresh.
    """
    return matmul_backward_input(dout, weight), matmul_backward_weight(dout, inp, dweight)


# ---- causal self-attention -------------------------------------------------------------

def _attention_shapes(q, k, v):
    _check("q", q, ndim=4)
    _check("k", k, ndim=4)
    _check("v", v, ndim=4)
    B, NH, T, HD = q.shape
    NKV = k.shape[1]
    if k.shape != (B, NKV, T, HD) or v.shape != k.shape:
        raise ValueError(f"k and v must have shape (B, NKV, T, HD) = ({B}, NKV, {T}, {HD}); "
                         f"got k {k.shape}, v {v.shape}")
    if NKV < 1 or NH % NKV:
        raise ValueError(f"query heads ({NH}) must be a multiple of key/value heads ({NKV})")
    return B, NH, NKV, T, HD


def _expand_kv(x, NH):
    """(B, NKV, T, HD) -> (B, NH, T, HD): each KV head serves NH // NKV query heads."""
    return np.repeat(x, NH // x.shape[1], axis=1)


def attention_forward_ref(q, k, v):
    """out (B, NH, T, HD), lse (B, NH, T) of causal softmax(q k^T / sqrt(HD)) v."""
    B, NH, T, HD = q.shape
    if T == 0:
        return np.empty_like(q), np.empty((B, NH, 0), dtype=q.dtype)
    k, v = _expand_kv(k, NH), _expand_kv(v, NH)
    att = q @ k.transpose(0, 1, 3, 2) / np.sqrt(HD).astype(q.dtype)     # (B, NH, T, T)
    att = np.where(np.tril(np.ones((T, T), dtype=bool)), att, -np.inf)  # causal mask
    m = att.max(axis=-1, keepdims=True)                                 # (B, NH, T, 1)
    p = np.exp(att - m)                                                 # (B, NH, T, T)
    s = p.sum(axis=-1, keepdims=True)                                   # (B, NH, T, 1)
    out = (p / s) @ v                                                   # (B, NH, T, HD)
    lse = (m + np.log(s))[..., 0]                                       # (B, NH, T)
    return out.astype(q.dtype), lse.astype(q.dtype)


def attention_forward(q, k, v):
    """Causal self-attention: returns out (B, NH, T, HD) and lse (B, NH, T)."""
    B, NH, NKV, T, HD = _attention_shapes(q, k, v)
    ffi, lib = _load()
    if lib is None:
        return attention_forward_ref(q, k, v)
    out = np.empty((B, NH, T, HD), dtype=np.float32)
    lse = np.empty((B, NH, T), dtype=np.float32)
    lib.attention_forward(_ptr(ffi, out, True), _ptr(ffi, lse, True), _ptr(ffi, q), _ptr(ffi, k),
                          _ptr(ffi, v), B, NH, NKV, T, HD)
    return out, lse


def attention_backward_ref(dout, q, k, v, out, lse):
    """dq (B, NH, T, HD), dk, dv (B, NKV, T, HD): the gradients of attention_forward.

    With S = q k^T / sqrt(HD) (masked) and P = softmax(S) = exp(S - lse):
        out = P v        ->  dv = P^T dout,  dP = dout v^T
        P = softmax(S)   ->  dS = P * (dP - D),  D = rowsum(dP * P) = rowsum(dout * out)
        S = q k^T / sqrt(HD)  ->  dq = dS k / sqrt(HD),  dk = dS^T q / sqrt(HD)
    Query heads that share a KV head add their dk, dv into it.
    """
    B, NH, T, HD = q.shape
    NKV = k.shape[1]
    scale = 1.0 / np.sqrt(HD)
    ke, ve = _expand_kv(k, NH), _expand_kv(v, NH)
    att = q @ ke.transpose(0, 1, 3, 2) * scale                          # (B, NH, T, T)
    mask = np.tril(np.ones((T, T), dtype=bool))
    p = np.where(mask, np.exp(att - lse[..., None]), 0.0)               # (B, NH, T, T)
    dve = p.transpose(0, 1, 3, 2) @ dout                                # (B, NH, T, HD)
    dp = dout @ ve.transpose(0, 1, 3, 2)                                # (B, NH, T, T)
    D = (dout * out).sum(axis=-1, keepdims=True)                        # (B, NH, T, 1)
    ds = p * (dp - D) * scale                                           # (B, NH, T, T)
    dq = ds @ ke                                                        # (B, NH, T, HD)
    dke = ds.transpose(0, 1, 3, 2) @ q                                  # (B, NH, T, HD)
    group = NH // NKV
    dk = dke.reshape(B, NKV, group, T, HD).sum(axis=2)                  # (B, NKV, T, HD)
    dv = dve.reshape(B, NKV, group, T, HD).sum(axis=2)                  # (B, NKV, T, HD)
    return dq.astype(q.dtype), dk.astype(q.dtype), dv.astype(q.dtype)


def attention_backward(dout, q, k, v, out, lse):
    """Gradients of attention_forward: returns dq, dk, dv."""
    B, NH, NKV, T, HD = _attention_shapes(q, k, v)
    _check("dout", dout, (B, NH, T, HD))
    _check("out", out, (B, NH, T, HD))
    _check("lse", lse, (B, NH, T))
    ffi, lib = _load()
    if lib is None:
        return attention_backward_ref(dout, q, k, v, out, lse)
    dq = np.empty_like(q)
    dk = np.empty_like(k)
    dv = np.empty_like(v)
    lib.attention_backward(_ptr(ffi, dq, True), _ptr(ffi, dk, True), _ptr(ffi, dv, True),
                           _ptr(ffi, dout), _ptr(ffi, q), _ptr(ffi, k), _ptr(ffi, v),
                           _ptr(ffi, out), _ptr(ffi, lse), B, NH, NKV, T, HD)
    return dq, dk, dv


def attention_prefill_ref(q, kcache, vcache, pos0):
    """out (B, NH, Tq, HD): queries at positions pos0.. attend to cache positions 0..pos."""
    B, NH, Tq, HD = q.shape
    L = pos0 + Tq
    if Tq == 0:
        return np.empty_like(q)
    k, v = _expand_kv(kcache[:, :, :L], NH), _expand_kv(vcache[:, :, :L], NH)
    att = q @ k.transpose(0, 1, 3, 2) / np.sqrt(HD).astype(q.dtype)     # (B, NH, Tq, L)
    allowed = np.arange(L)[None, :] <= pos0 + np.arange(Tq)[:, None]    # (Tq, L)
    att = np.where(allowed, att, -np.inf)
    p = np.exp(att - att.max(axis=-1, keepdims=True))                   # (B, NH, Tq, L)
    return ((p / p.sum(axis=-1, keepdims=True)) @ v).astype(q.dtype)


def attention_prefill(q, kcache, vcache, pos0=0):
    """Attention of Tq new queries (positions pos0..pos0+Tq-1) against a KV cache."""
    _check("q", q, ndim=4)
    _check("kcache", kcache, ndim=4)
    _check("vcache", vcache, kcache.shape)
    B, NH, Tq, HD = q.shape
    _, NKV, S, _ = kcache.shape
    if kcache.shape[0] != B or kcache.shape[3] != HD or NKV < 1 or NH % NKV:
        raise ValueError(f"kcache must be (B={B}, NKV, S, HD={HD}) with NH={NH} a multiple of NKV; got {kcache.shape}")
    if not 0 <= pos0 or pos0 + Tq > S:
        raise ValueError(f"positions {pos0}..{pos0 + Tq - 1} do not fit in a cache of {S}")
    ffi, lib = _load()
    if lib is None:
        return attention_prefill_ref(q, kcache, vcache, pos0)
    out = np.empty_like(q)
    lib.attention_prefill(_ptr(ffi, out, True), _ptr(ffi, q), _ptr(ffi, kcache), _ptr(ffi, vcache),
                          B, NH, NKV, Tq, pos0, S, HD)
    return out


def attention_decode_ref(q, kcache, vcache, lengths):
    """out (B, NH, HD): row b's query attends to its first lengths[b] cache positions."""
    B, NH, HD = q.shape
    out = np.empty_like(q)
    for b in range(B):
        L = int(lengths[b])
        k = _expand_kv(kcache[b:b + 1, :, :L], NH)[0]                   # (NH, L, HD)
        v = _expand_kv(vcache[b:b + 1, :, :L], NH)[0]                   # (NH, L, HD)
        att = np.einsum("hd,hld->hl", q[b], k) / np.sqrt(HD)            # (NH, L)
        p = np.exp(att - att.max(axis=-1, keepdims=True))
        out[b] = np.einsum("hl,hld->hd", p / p.sum(axis=-1, keepdims=True), v)
    return out


def attention_decode(q, kcache, vcache, lengths):
    """One new query per sequence against its KV cache; lengths (B,) int32 in 1..S."""
    _check("q", q, ndim=3)
    _check("kcache", kcache, ndim=4)
    _check("vcache", vcache, kcache.shape)
    B, NH, HD = q.shape
    _, NKV, S, _ = kcache.shape
    if kcache.shape[0] != B or kcache.shape[3] != HD or NKV < 1 or NH % NKV:
        raise ValueError(f"kcache must be (B={B}, NKV, S, HD={HD}) with NH={NH} a multiple of NKV; got {kcache.shape}")
    lengths = np.ascontiguousarray(lengths, dtype=np.int32)
    if lengths.shape != (B,) or (B and (lengths.min() < 1 or lengths.max() > S)):
        raise ValueError(f"lengths must be {B} integers in 1..{S}, got {lengths}")
    ffi, lib = _load()
    if lib is None:
        return attention_decode_ref(q, kcache, vcache, lengths)
    out = np.empty_like(q)
    lib.attention_decode(_ptr(ffi, out, True), _ptr(ffi, q), _ptr(ffi, kcache), _ptr(ffi, vcache),
                         _ptr(ffi, lengths), B, NH, NKV, S, HD)
    return out
