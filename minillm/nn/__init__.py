"""Step 3 of the lecture, the neural network: layers with hand-written backward passes, the
model, the optimizer and checkpoints. Reading order:

    layers.py      embedding, linear, RMSNorm, RoPE frequencies, SwiGLU, cross-entropy
    attention.py   causal self-attention with grouped KV heads, and over a KV cache
    gpt.py         the model: blocks of attention and MLP, forward and backward
    optim.py       AdamW over one flat buffer, schedules, clipping
    checkpoint.py  safetensors and the checkpoint directory
    kernels/       the C kernels' entry points (csrc/), one module per C file

Where the math is: in the layer's own function, as NumPy lines read top to bottom; the C
call sits right above them as the fast path, taken when kernels.fast(arrays) says so (the
library loaded, every array float32 and C-contiguous). kernels/ only checks arguments and
calls C; each wrapper names its NumPy twin here. Float64 arrays run the NumPy lines of the
same function, which is how every backward is checked against finite differences.

    python -m pytest tests/nn
"""
