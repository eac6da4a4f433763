/*
 * attention.c — causal self-attention (placeholder: one row at a time with a two-pass
 * softmax; the tiled online-softmax version replaces this file).
 */
#include <math.h>
#include <stdlib.h>
#include "kernels.h"

/* One query row against keys 0..L-1 of one KV head: writes out[HD], returns lse. */
static float attend_row(float *out, const float *q, const float *k, const float *v,
                        int L, int HD, float *scores) {
    float scale = 1.0f / sqrtf((float)HD), m = -INFINITY, sum = 0.0f;
    for (int j = 0; j < L; j++) {
        float s = 0.0f;
        for (int d = 0; d < HD; d++) s += q[d] * k[(long)j * HD + d];
        scores[j] = s * scale;
        if (scores[j] > m) m = scores[j];
    }
    for (int j = 0; j < L; j++) { scores[j] = expf(scores[j] - m); sum += scores[j]; }
    for (int d = 0; d < HD; d++) out[d] = 0.0f;
    for (int j = 0; j < L; j++) {
        float p = scores[j] / sum;
        for (int d = 0; d < HD; d++) out[d] += p * v[(long)j * HD + d];
    }
    return m + logf(sum);
}

void attention_forward(float *restrict out, float *restrict lse, const float *restrict q,
                       const float *restrict k, const float *restrict v,
                       int B, int NH, int NKV, int T, int HD) {
    int group = NH / NKV;
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            float *scores = malloc(sizeof(float) * T);
            long qo = ((long)b * NH + h) * T, ko = ((long)b * NKV + h / group) * T;
            for (int t = 0; t < T; t++)
                lse[qo + t] = attend_row(out + (qo + t) * HD, q + (qo + t) * HD,
                                         k + ko * HD, v + ko * HD, t + 1, HD, scores);
            free(scores);
        }
    }
}

void attention_backward(float *restrict dq, float *restrict dk, float *restrict dv,
                        const float *restrict dout, const float *restrict q,
                        const float *restrict k, const float *restrict v,
                        const float *restrict out, const float *restrict lse,
                        int B, int NH, int NKV, int T, int HD) {
    int group = NH / NKV;
    float scale = 1.0f / sqrtf((float)HD);
    /* parallel over KV heads: each thread owns dk, dv of its KV head and dq of its group */
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int kh = 0; kh < NKV; kh++) {
            long ko = ((long)b * NKV + kh) * T * HD;
            for (long i = 0; i < (long)T * HD; i++) { dk[ko + i] = 0.0f; dv[ko + i] = 0.0f; }
            for (int h = kh * group; h < (kh + 1) * group; h++) {
                long qo = ((long)b * NH + h) * T;
                for (int t = 0; t < T; t++) {
                    const float *qr = q + (qo + t) * HD, *dor = dout + (qo + t) * HD;
                    const float *orow = out + (qo + t) * HD;
                    float *dqr = dq + (qo + t) * HD, Drow = 0.0f;
                    for (int d = 0; d < HD; d++) { Drow += dor[d] * orow[d]; dqr[d] = 0.0f; }
                    for (int j = 0; j <= t; j++) {
                        const float *kr = k + ko + (long)j * HD, *vr = v + ko + (long)j * HD;
                        float s = 0.0f, dp = 0.0f;
                        for (int d = 0; d < HD; d++) { s += qr[d] * kr[d]; dp += dor[d] * vr[d]; }
                        float p = expf(s * scale - lse[qo + t]);
                        float ds = p * (dp - Drow) * scale;
                        for (int d = 0; d < HD; d++) {
                            dv[ko + (long)j * HD + d] += p * dor[d];
                            dk[ko + (long)j * HD + d] += ds * qr[d];
                            dqr[d] += ds * kr[d];
                        }
                    }
                }
            }
        }
    }
}

void attention_prefill(float *restrict out, const float *restrict q,
                       const float *restrict kcache, const float *restrict vcache,
                       int B, int NH, int NKV, int Tq, int pos0, int S, int HD) {
    int group = NH / NKV;
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            float *scores = malloc(sizeof(float) * (pos0 + Tq));
            long qo = ((long)b * NH + h) * Tq, ko = ((long)b * NKV + h / group) * S * HD;
            for (int t = 0; t < Tq; t++)
                attend_row(out + (qo + t) * HD, q + (qo + t) * HD, kcache + ko, vcache + ko,
                           pos0 + t + 1, HD, scores);
            free(scores);
        }
    }
}

void attention_decode(float *restrict out, const float *restrict q,
                      const float *restrict kcache, const float *restrict vcache,
                      const int *restrict lengths, int B, int NH, int NKV, int S, int HD) {
    int group = NH / NKV;
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            float *scores = malloc(sizeof(float) * lengths[b]);
            long qo = (long)b * NH + h, ko = ((long)b * NKV + h / group) * S * HD;
            attend_row(out + qo * HD, q + qo * HD, kcache + ko, vcache + ko, lengths[b], HD,
                       scores);
            free(scores);
        }
    }
}
