/*
 * attention_decode.c — the row kernel: one query against a run of cached keys, and the
 * decode step built on it (csrc/kernels.h: attention_decode).
 *
 * A lone query cannot fill the key lanes of attention.c's tiles, so the row kernel keeps
 * the head dimension in the lanes instead:
 *   scores   s_j = q . k_j, VW keys at a time: each key's products accumulate in their own
 *            vector, and one transpose-and-add tree (vhsum_lanes) turns VW vectors into VW
 *            scores, instead of a horizontal sum per key;
 *   softmax  online, over chunks of ROW_CHUNK keys (running max m, sum l, rescale by
 *            e^(m - m') as in attention.c), so no buffer grows with the cache length;
 *   values   out += sum_j p_j v_j with four keys in flight (four accumulator sets).
 * The common head sizes (32, 48, 64, 128) get their own inlined copy of the score loop so
 * that every address is base + constant. At stories15M's shape (NH = 6, HD = 48, L = 256)
 * the kernel streams K and V (590 KB) from L2 at about 5 ns per key and head.
 */
#include <string.h>
#include "kernels.h"
#include "attention_internal.h"
#include "attention_simd.h"

#define ROW_CHUNK 256      /* keys per online-softmax step */
#define NVMAX_ROW 4        /* vectors per strip of P V */
#ifndef DECODE_PARALLEL_MIN
#define DECODE_PARALLEL_MIN (1L << 14)  /* multiply-adds worth waking the threads for: in a
                                         * decode step K and V come from L3 (the weights
                                         * flushed L2), and two cores read them faster */
#endif

/* s[0 .. last] = q . k[j] for keys k[0 .. last] (rows of stride HD), 0 <= last < VW: each
 * key's products stay in its own vector and vhsum_lanes adds the VW vectors at once (no
 * per-key reduction). Inlined with HD and last constants for whole blocks of the common head
 * sizes, so every load is base + constant. */
static inline __attribute__((always_inline))
void score_block(float *restrict s, const float *restrict q, const float *restrict k,
                 const int last, const int HD) {
    vec acc[VW];
#pragma GCC unroll 16
    for (int j = 0; j < VW; j++) acc[j] = vzero();
    int d = 0;
    for (; d + VW <= HD; d += VW) {
        vec qv = vload(q + d);
#pragma GCC unroll 16
        for (int j = 0; j < VW; j++)      /* past the last key: repeat it, store nothing */
            acc[j] = vfma(qv, vload(k + (j < last ? j : last) * HD + d), acc[j]);
    }
    if (d < HD) {
        vmask tail = vfirst(HD - d);
        vec qv = vload_m(q + d, tail);
#pragma GCC unroll 16
        for (int j = 0; j < VW; j++)
            acc[j] = vfma(qv, vload_m(k + (j < last ? j : last) * HD + d, tail), acc[j]);
    }
    vstore_m(s, vhsum_lanes(acc), vfirst(last + 1));
}

/* s[j] = q . k[j] for the n keys k (n, HD). */
static inline __attribute__((always_inline))
void scores_strided(float *restrict s, const float *restrict q, const float *restrict k, int n,
                    const int HD) {
    int j0 = 0;
    for (; j0 + VW <= n; j0 += VW) score_block(s + j0, q, k + (size_t)j0 * HD, VW - 1, HD);
    if (j0 < n) score_block(s + j0, q, k + (size_t)j0 * HD, n - j0 - 1, HD);
}

static void row_scores(float *restrict s, const float *restrict q, const float *restrict k,
                       int n, int HD) {
    switch (HD) {
    case 32: scores_strided(s, q, k, n, 32); break;
    case 48: scores_strided(s, q, k, n, 48); break;
    case 64: scores_strided(s, q, k, n, 64); break;
    case 128: scores_strided(s, q, k, n, 128); break;
    default: scores_strided(s, q, k, n, HD); break;
    }
}

/* out[0 .. NV*VW) += sum_j p[j] v[j][same columns] for n keys (rows of v, stride HD), four
 * keys per step into four accumulator sets so that the FMA chains overlap. */
static inline __attribute__((always_inline))
void pv_strip(float *restrict out, const float *restrict p, const float *restrict v, int n,
              int HD, const int NV, const int masked, vmask tail) {
    vec acc[4][NVMAX_ROW];
#pragma GCC unroll 4
    for (int u = 0; u < 4; u++)
#pragma GCC unroll 4
        for (int c = 0; c < NV; c++) acc[u][c] = vzero();
    for (int j = 0; j < n; j += 4) {
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) {
            if (j + u >= n) break;
            vec pj = vset1(p[j + u]);
            const float *vr = v + (size_t)(j + u) * HD;
#pragma GCC unroll 4
            for (int c = 0; c < NV; c++) {
                vec x = masked && c == NV - 1 ? vload_m(vr + c * VW, tail) : vload(vr + c * VW);
                acc[u][c] = vfma(pj, x, acc[u][c]);
            }
        }
    }
#pragma GCC unroll 4
    for (int c = 0; c < NV; c++) {
        vec sum = vadd(vadd(acc[0][c], acc[1][c]), vadd(acc[2][c], acc[3][c]));
        if (masked && c == NV - 1)
            vstore_m(out + c * VW, vadd(vload_m(out + c * VW, tail), sum), tail);
        else
            vstore(out + c * VW, vadd(vload(out + c * VW), sum));
    }
}

/* out (HD) += p (n) V (n, HD), strip by strip of at most NVMAX_ROW vectors. */
static void row_pv(float *restrict out, const float *restrict p, const float *restrict v,
                   int n, int HD) {
    for (int c0 = 0; c0 < HD; c0 += NVMAX_ROW * VW) {
        int nc = imin(HD - c0, NVMAX_ROW * VW), nv = (nc + VW - 1) / VW;
        vmask tail = vfirst(nc - (nv - 1) * VW);
        float *o = out + c0;
        const float *vs = v + c0;
        switch (nv * 2 + (nc % VW != 0)) {   /* the strip's shape as compile-time constants */
        case 2: pv_strip(o, p, vs, n, HD, 1, 0, tail); break;
        case 3: pv_strip(o, p, vs, n, HD, 1, 1, tail); break;
        case 4: pv_strip(o, p, vs, n, HD, 2, 0, tail); break;
        case 5: pv_strip(o, p, vs, n, HD, 2, 1, tail); break;
        case 6: pv_strip(o, p, vs, n, HD, 3, 0, tail); break;
        case 7: pv_strip(o, p, vs, n, HD, 3, 1, tail); break;
        case 8: pv_strip(o, p, vs, n, HD, 4, 0, tail); break;
        default: pv_strip(o, p, vs, n, HD, 4, 1, tail); break;
        }
    }
}

/* One query against keys/values 0..n-1: see attention_internal.h. */
float att_attend_row(float *restrict out, const float *restrict q, const float *restrict k,
                     const float *restrict v, int n, int HD) {
    const float scale = 1.0f / sqrtf((float)HD);
    float s[ROW_CHUNK], m = -INFINITY, l = 0.0f;
    memset(out, 0, sizeof(float) * HD);
    for (int j0 = 0; j0 < n; j0 += ROW_CHUNK) {
        int nk = imin(ROW_CHUNK, n - j0);
        row_scores(s, q, k + (size_t)j0 * HD, nk, HD);
        float mt = att_max_row(s, nk, scale), mnew = mt > m ? mt : m;
        float alpha = expf(m - mnew);
        l = l * alpha + att_exp_row(s, nk, nk, scale, mnew);
        if (alpha != 1.0f) att_scale_row(out, HD, alpha);
        row_pv(out, s, v + (size_t)j0 * HD, nk, HD);
        m = mnew;
    }
    att_scale_row(out, HD, 1.0f / l);
    return m + logf(l);
}

/* out (B, NH, HD): q (B, NH, HD), row b against the first lengths[b] positions of kcache,
 * vcache (B, NKV, S, HD).  Overwrites out. */
void attention_decode(float *restrict out, const float *restrict q,
                      const float *restrict kcache, const float *restrict vcache,
                      const int *restrict lengths, int B, int NH, int NKV, int S, int HD) {
    if (B <= 0 || NH <= 0 || HD <= 0) return;               /* empty: nothing to write */
    int group = NH / NKV;
    long work = 0;
    for (int b = 0; b < B; b++) work += (long)lengths[b] * NH * HD;
    #pragma omp parallel for collapse(2) schedule(dynamic, 1) if (work > DECODE_PARALLEL_MIN)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            size_t row = (size_t)b * NH + h, kv = ((size_t)b * NKV + h / group) * S * HD;
            att_attend_row(out + row * HD, q + row * HD, kcache + kv, vcache + kv, lengths[b],
                           HD);
        }
}
