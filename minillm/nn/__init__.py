"""Step 3 of the lecture, the neural network: layers with hand-written backward passes, the
model, the optimizer and checkpoints. Reading order:

    layers.py      embedding, linear, RMSNorm, RoPE frequencies, SwiGLU, cross-entropy
    attention.py   causal self-attention with grouped KV heads
    gpt.py         the model: blocks of attention and MLP, forward and backward
    optim.py       AdamW over one flat buffer, schedules, clipping
    checkpoint.py  safetensors and the checkpoint directory
    kernels/       the C kernels' wrappers (csrc/), one module per C file

Where the math is: a layer file composes the steps and says their math in its comments; each
step's NumPy code lives once, as the twin `<name>_ref` right above its C call in kernels/
(layers import kernels, never the reverse). The wrapper alone picks C (float32, contiguous,
library loaded) or the twin, so float64 finite-difference checks run the same layer code.

    python -m pytest tests/nn
"""
