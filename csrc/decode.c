/*
 * decode.c — one whole decode step of the model in one call (csrc/kernels.h: decode_step).
 *
 * At batch 1 a decode step is ~60 small operations (per layer: RMSNorm, three matmuls,
 * RoPE, two cache writes, attention, two residual adds, SwiGLU, another RMSNorm), each only
 * microseconds of arithmetic at stories15M's size. Driven from Python, every one of them
 * also pays an interpreter round trip and a cffi call; here the whole sequence runs in C,
 * as in llama2.c's run.c forward(). minillm/nn/kernels/decode.py wraps it; its NumPy twin
 * (and the fallback without the C library) is minillm/nn/gpt.py's forward over the KV cache.
 *
 * The heavy parts are the existing kernels (matmul_forward, rmsnorm_forward,
 * attention_decode, swiglu_forward), called as plain functions: each opens its own
 * OpenMP region when its work is worth the threads. The small parts are plain loops on
 * one thread: RoPE, the cache writes, the residual adds.
 *
 * RoPE pairs are interleaved: (x[2i], x[2i+1]) read as the complex number x[2i] + i x[2i+1]
 * is multiplied by e^(i angle_i(pos)), i.e. rotated to
 *     (x0 cos - x1 sin,  x0 sin + x1 cos)
 * which is exactly NumPy's complex64 product that the Python path computes.
 *
 * Shapes: B rows, C channels, NH / NKV query / KV heads, HD head dim, QD = NH*HD,
 * KD = NKV*HD, H SwiGLU hidden size, V vocab, S cache capacity, P RoPE table positions.
 *
 *     python -m pytest tests/generate/test_decode_step.py
 */
#include <string.h>
#include "kernels.h"

/* out (n_pairs, 2) = in (n_pairs, 2) rotated pair by pair by rot (n_pairs, 2) = (cos, sin). */
static void rope_rotate(float *restrict out, const float *restrict in, const float *restrict rot,
                        int n_pairs) {
    for (int i = 0; i < n_pairs; i++) {
        float x0 = in[2 * i], x1 = in[2 * i + 1], c = rot[2 * i], s = rot[2 * i + 1];
        out[2 * i] = x0 * c - x1 * s;
        out[2 * i + 1] = x0 * s + x1 * c;
    }
}

/* From qkv (B, QD + 2KD) of layer-cache pair (kc, vc) (Bmax, NKV, S, HD): q (B, NH, HD)
 * gets the rotated queries; kc[b, :, pos_b] the rotated keys and vc[b, :, pos_b] the values,
 * pos_b = lengths[b] - 1. */
static void rope_and_cache(float *restrict q, float *restrict kc, float *restrict vc,
                           const float *restrict qkv, const float *restrict rope,
                           const int *restrict lengths, int B, int NH, int NKV, int HD, int S) {
    const int QD = NH * HD, KD = NKV * HD, row = QD + 2 * KD;
    for (int b = 0; b < B; b++) {
        const int pos = lengths[b] - 1;
        const float *src = qkv + (size_t)b * row, *rot = rope + (size_t)pos * HD;
        for (int h = 0; h < NH; h++)
            rope_rotate(q + ((size_t)b * NH + h) * HD, src + h * HD, rot, HD / 2);
        for (int g = 0; g < NKV; g++) {
            size_t at = (((size_t)b * NKV + g) * S + pos) * HD;
            rope_rotate(kc + at, src + QD + g * HD, rot, HD / 2);
            memcpy(vc + at, src + QD + KD + g * HD, sizeof(float) * HD);
        }
    }
}

/* x (n) += o (n). */
static void add_into(float *restrict x, const float *restrict o, int n) {
    for (int i = 0; i < n; i++) x[i] += o[i];
}

int decode_step(const decode_buffers *buf, float *const *kcache, float *const *vcache,
                const decode_weights *w, const int *lengths, int B, int S) {
    const int C = w->C, NH = w->NH, NKV = w->NKV, HD = w->HD, H = w->H;
    const int QD = NH * HD, KD = NKV * HD;
    for (int b = 0; b < B; b++)                  /* check every row before writing anything */
        if (lengths[b] < 1 || lengths[b] > S || lengths[b] > w->P) return -1;
    if (B <= 0) return 0;
    float *x = buf->x, *h = buf->h;
    for (int i = 0; i < w->n_layer; i++) {
        /* attention: x += wo(attention(rope(wqkv(x * rstd)))) */
        rmsnorm_forward(h, buf->rstd, x, w->ones, B, C, w->eps);
        matmul_forward(buf->qkv, h, w->wqkv[i], B, C, QD + 2 * KD);
        rope_and_cache(buf->q, kcache[i], vcache[i], buf->qkv, w->rope, lengths, B, NH, NKV, HD, S);
        attention_decode(buf->att, buf->q, kcache[i], vcache[i], lengths, B, NH, NKV, S, HD);
        matmul_forward(buf->o, buf->att, w->wo[i], B, QD, C);
        add_into(x, buf->o, B * C);
        /* MLP: x += w_down(swiglu(w_gu(x * rstd))) */
        rmsnorm_forward(h, buf->rstd, x, w->ones, B, C, w->eps);
        matmul_forward(buf->gu, h, w->w_gu[i], B, C, 2 * H);
        swiglu_forward(buf->a, buf->gu, B, H);
        matmul_forward(buf->o, buf->a, w->w_down[i], B, H, C);
        add_into(x, buf->o, B * C);
    }
    rmsnorm_forward(h, buf->rstd, x, w->ones, B, C, w->eps);
    matmul_forward(buf->logits, h, w->head, B, C, w->V);
    return 0;
}
