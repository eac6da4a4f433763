/*
 * layers.c — the elementwise layers of the transformer: RMSNorm, SwiGLU, RoPE (fused with
 * the attention layouts' transposes), the softmax cross-entropy, the embedding's backward.
 *
 * Each is one pass (or two) over memory, so what matters is touching every byte once and
 * using every core: OpenMP over rows (every row's output has one owner), `omp simd` on
 * the inner loops so that they vectorize, and no temporaries beyond one small buffer.
 * The NumPy twin of each kernel is in minillm/nn/kernels/layers.py.
 *
 * Results never depend on the thread count: per-row work does not, and the one reduction
 * over rows (RMSNorm's dweight) sums fixed blocks of rows in a fixed order.
 *
 * Shapes: N rows (tokens), C channels, H SwiGLU hidden size, V vocab, B batch, T time,
 * NH query heads, NKV key/value heads, HD head dim.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "kernels.h"
#include "simd.h"     /* vec, vexp: the loops with an exp are written in vectors */

#define PARALLEL_MIN (1L << 14)  /* values per call worth waking the threads for */
#define NORM_BLOCK_ROWS 32       /* RMSNorm dweight: rows per partial sum */

/* sigmoid(g) = 1 / (1 + e^-g) lane-wise. For g < -89, e^-g is +inf and the result 0
 * (the true value is below 2^-128); nothing else overflows. vexp is within 1 ulp (simd.h). */
static inline vec vsigmoid(vec g) {
    return vdiv(vset1(1.0f), vadd(vset1(1.0f), vexp(vsub(vzero(), g))));
}

/* The loops with an exp go VW floats at a time in explicit vectors (GCC does not vectorize
 * the exp written in scalar C for AVX2); vload_n/vstore_n mask only the last n % VW. */

/* ---- RMSNorm: out = inp * rstd * weight, rstd = 1 / sqrt(mean(inp^2) + eps) ------------- */

void rmsnorm_forward(float *restrict out, float *restrict rstd, const float *restrict inp,
                     const float *restrict weight, int N, int C, float eps) {
    #pragma omp parallel for schedule(static) if ((long)N * C >= PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        float ss = 0.0f;
        #pragma omp simd reduction(+:ss)
        for (int c = 0; c < C; c++)
            ss += x[c] * x[c];
        float r = 1.0f / sqrtf(ss / C + eps);
        rstd[n] = r;
        #pragma omp simd simdlen(16)
        for (int c = 0; c < C; c++)
            y[c] = x[c] * r * weight[c];
    }
}

/* One row of the backward: dx = rstd * dy * w - x * rstd^3 * s / C with s = sum dy w x;
 * adds dy * x * rstd into dw_part. */
static inline void rmsnorm_backward_row(float *restrict dx, float *restrict dw_part,
                                        const float *restrict dy, const float *restrict x,
                                        const float *restrict w, float r, int C) {
    float s = 0.0f;
    #pragma omp simd reduction(+:s)
    for (int c = 0; c < C; c++)
        s += dy[c] * w[c] * x[c];
    float coef = r * r * r * s / C;
    #pragma omp simd simdlen(16)
    for (int c = 0; c < C; c++) {
        dx[c] = r * dy[c] * w[c] - x[c] * coef;
        dw_part[c] += dy[c] * x[c] * r;
    }
}

int rmsnorm_backward(float *restrict dinp, float *restrict dweight, const float *restrict dout,
                     const float *restrict inp, const float *restrict weight,
                     const float *restrict rstd, int N, int C) {
    /* dweight sums over all rows: each block of NORM_BLOCK_ROWS rows sums into its own
     * row of `part`, then the blocks are added up column by column, in block order. */
    int nblocks = (N + NORM_BLOCK_ROWS - 1) / NORM_BLOCK_ROWS;
    float *part = calloc((size_t)(nblocks > 0 ? nblocks : 1) * C, sizeof(float));
    if (part == NULL && C > 0)
        return -1;
    #pragma omp parallel if ((long)N * C >= PARALLEL_MIN)
    {
        #pragma omp for schedule(static)
        for (int blk = 0; blk < nblocks; blk++) {
            int n1 = (blk + 1) * NORM_BLOCK_ROWS < N ? (blk + 1) * NORM_BLOCK_ROWS : N;
            for (int n = blk * NORM_BLOCK_ROWS; n < n1; n++)
                rmsnorm_backward_row(dinp + (size_t)n * C, part + (size_t)blk * C,
                                     dout + (size_t)n * C, inp + (size_t)n * C, weight,
                                     rstd[n], C);
        }
        #pragma omp for schedule(static)
        for (int c = 0; c < C; c++) {
            float sum = 0.0f;
            for (int blk = 0; blk < nblocks; blk++)
                sum += part[(size_t)blk * C + c];
            dweight[c] = sum;
        }
    }
    free(part);
    return 0;
}

/* ---- SwiGLU: out = silu(g) * u with gu = [g | u] per row --------------------------------- */

void swiglu_forward(float *restrict out, const float *restrict gu, int N, int H) {
    #pragma omp parallel for schedule(static) if ((long)N * H >= PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const float *g = gu + (size_t)n * 2 * H, *u = g + H;
        float *a = out + (size_t)n * H;
        for (int j = 0; j < H; j += VW) {
            vec gj = vload_n(g + j, H - j);
            vstore_n(a + j, vmul(vmul(gj, vsigmoid(gj)), vload_n(u + j, H - j)), H - j);
        }
    }
}

/* du = dout * silu(g);  dg = dout * u * silu'(g),  silu'(g) = sig * (1 + g * (1 - sig)). */
void swiglu_backward(float *restrict dgu, const float *restrict dout, const float *restrict gu,
                     int N, int H) {
    #pragma omp parallel for schedule(static) if ((long)N * H >= PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const float *g = gu + (size_t)n * 2 * H, *u = g + H, *da = dout + (size_t)n * H;
        float *dg = dgu + (size_t)n * 2 * H, *du = dg + H;
        for (int j = 0; j < H; j += VW) {
            int r = H - j;                     /* floats left: a full vector unless r < VW */
            vec gj = vload_n(g + j, r), daj = vload_n(da + j, r), sig = vsigmoid(gj);
            vec dsilu = vmul(sig, vfma(gj, vsub(vset1(1.0f), sig), vset1(1.0f)));
            vstore_n(du + j, vmul(vmul(daj, gj), sig), r);
            vstore_n(dg + j, vmul(vmul(daj, vload_n(u + j, r)), dsilu), r);
        }
    }
}

/* ---- RoPE on the attention layouts ------------------------------------------------------
 * Row (b, t) of qkv holds NH query heads, NKV key heads, NKV value heads of HD values each.
 * freqs (T, HD/2, 2) holds (cos, sin) of each pair's angle at each position. A pair
 * (x0, x1) rotates to (x0 cos - x1 sin, x0 sin + x1 cos); backward rotates back (-sin). */

static inline void rotate(float *restrict out, const float *restrict x,
                          const float *restrict cs, float sign, int HD) {
    #pragma omp simd simdlen(16)
    for (int i = 0; i < HD / 2; i++) {
        float c = cs[2 * i], s = sign * cs[2 * i + 1], x0 = x[2 * i], x1 = x[2 * i + 1];
        out[2 * i] = x0 * c - x1 * s;
        out[2 * i + 1] = x0 * s + x1 * c;
    }
}

void rope_split_qkv(float *restrict q, float *restrict k, float *restrict v,
                    const float *restrict qkv, const float *restrict freqs,
                    int B, int T, int NH, int NKV, int HD) {
    int D = (NH + 2 * NKV) * HD;
    #pragma omp parallel for schedule(static) if ((long)B * T * D >= PARALLEL_MIN)
    for (int bt = 0; bt < B * T; bt++) {
        int b = bt / T, t = bt % T;
        const float *row = qkv + (size_t)bt * D, *cs = freqs + (size_t)t * HD;
        for (int h = 0; h < NH; h++)
            rotate(q + (((size_t)b * NH + h) * T + t) * HD, row + (size_t)h * HD, cs, 1.0f, HD);
        for (int h = 0; h < NKV; h++) {
            size_t dst = (((size_t)b * NKV + h) * T + t) * HD;
            rotate(k + dst, row + (size_t)(NH + h) * HD, cs, 1.0f, HD);
            memcpy(v + dst, row + (size_t)(NH + NKV + h) * HD, (size_t)HD * sizeof(float));
        }
    }
}

void rope_split_qkv_backward(float *restrict dqkv, const float *restrict dq,
                             const float *restrict dk, const float *restrict dv,
                             const float *restrict freqs, int B, int T, int NH, int NKV, int HD) {
    int D = (NH + 2 * NKV) * HD;
    #pragma omp parallel for schedule(static) if ((long)B * T * D >= PARALLEL_MIN)
    for (int bt = 0; bt < B * T; bt++) {
        int b = bt / T, t = bt % T;
        float *row = dqkv + (size_t)bt * D;
        const float *cs = freqs + (size_t)t * HD;
        for (int h = 0; h < NH; h++)
            rotate(row + (size_t)h * HD, dq + (((size_t)b * NH + h) * T + t) * HD, cs, -1.0f, HD);
        for (int h = 0; h < NKV; h++) {
            size_t src = (((size_t)b * NKV + h) * T + t) * HD;
            rotate(row + (size_t)(NH + h) * HD, dk + src, cs, -1.0f, HD);
            memcpy(row + (size_t)(NH + NKV + h) * HD, dv + src, (size_t)HD * sizeof(float));
        }
    }
}

/* The two layouts of attention heads: "merged" rows (B, T, NH * HD), the projections'
 * layout, and "split" heads (B, NH, T, HD), the attention kernels'. Plain copies. */

void merge_heads(float *restrict out, const float *restrict inp, int B, int NH, int T, int HD) {
    #pragma omp parallel for schedule(static) if ((long)B * T * NH * HD >= PARALLEL_MIN)
    for (int bt = 0; bt < B * T; bt++) {
        int b = bt / T, t = bt % T;
        for (int h = 0; h < NH; h++)
            memcpy(out + ((size_t)bt * NH + h) * HD, inp + (((size_t)b * NH + h) * T + t) * HD,
                   (size_t)HD * sizeof(float));
    }
}

void split_heads(float *restrict out, const float *restrict inp, int B, int NH, int T, int HD) {
    #pragma omp parallel for schedule(static) if ((long)B * T * NH * HD >= PARALLEL_MIN)
    for (int bt = 0; bt < B * T; bt++) {
        int b = bt / T, t = bt % T;
        for (int h = 0; h < NH; h++)
            memcpy(out + (((size_t)b * NH + h) * T + t) * HD, inp + ((size_t)bt * NH + h) * HD,
                   (size_t)HD * sizeof(float));
    }
}

/* ---- softmax cross-entropy, in place on the logits ---------------------------------------- */

void cross_entropy_forward(float *restrict losses, float *restrict logits,
                           const int *restrict targets, const float *restrict coef, int N, int V) {
    #pragma omp parallel for schedule(static) if ((long)N * V >= PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        float *z = logits + (size_t)n * V;
        float w = coef[n];
        if (w == 0.0f) {                           /* not counted: no loss, no gradient */
            memset(z, 0, (size_t)V * sizeof(float));
            losses[n] = 0.0f;
            continue;
        }
        float m = -INFINITY;
        #pragma omp simd reduction(max:m)
        for (int j = 0; j < V; j++)
            m = z[j] > m ? z[j] : m;
        float zt = z[targets[n]] - m;
        vec vs = vzero(), vm = vset1(m);
        for (int j = 0; j < V; j += VW) {
            vec e = vexp(vsub(vload_n(z + j, V - j), vm));
            if (V - j < VW) e = vkeep(e, vfirst(V - j));   /* lanes past V: e^-m, dropped */
            vstore_n(z + j, e, V - j);
            vs = vadd(vs, e);
        }
        float s = vhsum(vs);
        losses[n] = logf(s) - zt;                  /* logsumexp - target's logit */
        float scale = w / s;
        #pragma omp simd simdlen(16)
        for (int j = 0; j < V; j++)
            z[j] *= scale;                         /* softmax * coef */
        z[targets[n]] -= w;                        /* - onehot * coef */
    }
}

/* ---- embedding backward: each thread owns a stripe of columns, rows go in order ------------ */

void embedding_backward(float *restrict dweight, const float *restrict dout,
                        const int *restrict idx, int N, int C) {
    const int stripe = 64;                         /* columns per work item: whole cache lines */
    int nstripes = (C + stripe - 1) / stripe;
    #pragma omp parallel for schedule(static) if ((long)N * C >= PARALLEL_MIN)
    for (int s = 0; s < nstripes; s++) {
        int c0 = s * stripe, c1 = c0 + stripe < C ? c0 + stripe : C;
        for (int n = 0; n < N; n++) {
            float *dst = dweight + (size_t)idx[n] * C;
            const float *src = dout + (size_t)n * C;
            #pragma omp simd simdlen(16)
            for (int c = c0; c < c1; c++)
                dst[c] += src[c];
        }
    }
}
