"""By-the-formula references shared by several test files."""
import numpy as np


def rope_by_the_formula(x, theta, pos0=0):
    """x (..., T, hs) rotated by RoPE, interleaved: each pair (x[2i], x[2i+1]) at position
    pos0 + t turns by the angle (pos0 + t) * theta^(-2i/hs), one loop step at a time."""
    out = np.empty_like(x)
    T, hs = x.shape[-2:]
    for t in range(T):
        for i in range(hs // 2):
            angle = (pos0 + t) * theta ** (-2 * i / hs)
            a, b = x[..., t, 2 * i], x[..., t, 2 * i + 1]
            out[..., t, 2 * i] = a * np.cos(angle) - b * np.sin(angle)
            out[..., t, 2 * i + 1] = a * np.sin(angle) + b * np.cos(angle)
    return out
