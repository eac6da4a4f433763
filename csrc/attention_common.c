/*
 * attention_common.c — what attention.c and attention_backward.c share besides the tile
 * product: K^T packing, the workspace, the row softmax helpers, and the row kernel (one
 * query against a run of keys), declared in attention_common.h.
 *
 * The row kernel. A lone query (decode, a prefill of a few tokens) cannot fill the key
 * lanes of attention.c's tiles, so it keeps the head dimension in the lanes instead:
 *   scores   s_j = q . k_j, VW keys at a time: each key's products accumulate in their own
 *            vector, and one transpose-and-add tree (vhsum_lanes) turns VW vectors into VW
 *            scores, instead of a horizontal sum per key;
 *   softmax  online, over chunks of ROW_CHUNK keys (running max m, sum l, rescale by
 *            e^(m - m') as in attention.c), so no buffer grows with the cache length;
 *   values   out += sum_j p_j v_j with four keys in flight (four accumulator sets).
 * The common head sizes (32, 48, 64, 128) get their own inlined copy of the score loop so
 * that every address is base + constant.
 */
#define _POSIX_C_SOURCE 200112L
#include <stdlib.h>
#include <string.h>
#include "attention_common.h"
#include "simd.h"

/* ---- K^T packing ---- */

size_t att_packed_size(int n, int HD) {
    return (size_t)((n + KT - 1) / KT) * HD * KT;
}

void att_pack_transposed(float *restrict packed, const float *restrict x, int n, int HD) {
    for (int t0 = 0; t0 < n; t0 += KT) {
        float *tile = packed + (size_t)(t0 / KT) * HD * KT;     /* (HD, KT) */
        for (int j0 = 0; j0 < KT; j0 += VW)                      /* VW keys x VW dims blocks */
            for (int d0 = 0; d0 < HD; d0 += VW) {
                vec r[VW];
                int nd = HD - d0 < VW ? HD - d0 : VW;
                vmask m = vfirst(nd);
                for (int j = 0; j < VW; j++) {
                    int key = t0 + j0 + j;
                    r[j] = key < n ? vload_m(x + (size_t)key * HD + d0, m) : vzero();
                }
                vtranspose(r);
                for (int c = 0; c < nd; c++) vstore(tile + (size_t)(d0 + c) * KT + j0, r[c]);
            }
    }
}

/* The workspace: one 64-byte aligned block per call, and a one-slot cache of the last block
 * released. Calls come in long sequences (each layer's forward, then each backward), and
 * handing big blocks back to the system every call costs page faults on the next one.
 * The slot is taken and refilled with atomic exchanges, so concurrent callers (cffi
 * releases the GIL) never share a block. The largest block stays cached until exit.
 * Layout: a 64-byte header holding the capacity in floats, then the floats. */
#define WS_HEADER 16   /* floats */
#if defined(__GNUC__)
static float *ws_slot = NULL;
#define WS_TAKE() __atomic_exchange_n(&ws_slot, (float *)NULL, __ATOMIC_ACQ_REL)
#define WS_GIVE(p) __atomic_exchange_n(&ws_slot, (p), __ATOMIC_ACQ_REL)
#else
#define WS_TAKE() ((float *)NULL)
#define WS_GIVE(p) (p)
#endif

float *att_workspace(size_t nfloats) {
    float *block = WS_TAKE();
    if (block && *(size_t *)block >= nfloats) return block + WS_HEADER;
    free(block);
    void *p = NULL;
    if (posix_memalign(&p, 64, (nfloats + WS_HEADER) * sizeof(float))) return NULL;
    *(size_t *)p = nfloats;
    return (float *)p + WS_HEADER;
}

void att_workspace_done(float *ws) {
    if (ws) free(WS_GIVE(ws - WS_HEADER));
}

size_t att_round(size_t nfloats) { return (nfloats + 15) / 16 * 16; }

int att_split_rows(int *start, int *cols, int i0, int nq, int p0, int j0, int nk) {
    int full = imin(nq, imax(i0, j0 + nk - 1 - p0)), c = 0;
    for (int a = i0; a < nq; c++) {
        int b = a < full ? imin(a + CHUNK, full) : nq;
        start[c] = a;
        cols[c] = imin(nk, p0 + b - j0);
        a = b;
    }
    start[c] = nq;
    return c;
}

void att_scale_row(float *x, int n, float a) {
    vec va = vset1(a);
    for (int d = 0; d < n; d += VW) {
        vmask m = vfirst(n - d);
        vstore_m(x + d, vmul(vload_m(x + d, m), va), m);
    }
}

float att_max_row(const float *s, int n, float scale) {
    vec m = vset1(-INFINITY);
    for (int j = 0; j < n; j += VW) m = vmax(m, vload_or(s + j, vfirst(n - j), -INFINITY));
    return vhmax(m) * scale;
}

float att_exp_row(float *s, int n, int ncols, float scale, float shift) {
    vec sum = vzero(), vscale = vset1(scale), vshift = vset1(-shift);
    for (int j = 0; j < ncols; j += VW) {
        vmask m = vfirst(n - j), inside = vfirst(ncols - j);
        vec p = vkeep(vexp(vfma(vload_m(s + j, inside), vscale, vshift)), m);
        sum = vadd(sum, p);
        vstore_m(s + j, p, inside);
    }
    return vhsum(sum);
}

void minillm_attention_exp(float *out, const float *x, int n) {
    for (int i = 0; i < n; i += VW) {
        vmask m = vfirst(n - i);
        vstore_m(out + i, vexp(vload_m(x + i, m)), m);
    }
}

/* ---- the row kernel ---- */

#define ROW_CHUNK 256      /* keys per online-softmax step */
#define NVMAX_ROW 4        /* vectors per strip of P V */

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

/* One query against keys/values 0..n-1: see attention_common.h. */
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
