/*
 * attention_gemm.c — the register-blocked product every attention tile is made of, and the
 * small helpers around it (K^T packing, the workspace, row softmax, the exp test hook).
 *
 * att_gemm computes C (R, N) [+]= A' B, A'[r][k] = A[k*sak + r*sar].  The micro-kernel
 * holds an (r rows) x (nv vectors) block of C in registers for the whole k loop:
 *
 *     for k:  b[0..nv) = B[k][c0 .. c0 + nv*VW)               nv vector loads
 *             for r:  a = broadcast A'[r][k];  c[r][v] += a * b[v]     r*nv FMAs
 *
 * so each loaded B vector is used r times and each broadcast nv times. With AVX-512's 32
 * registers a block is 6x4, 8x3 or 12x2 vectors (24 accumulators; 12x1 for narrow strips);
 * AVX2 (16 registers) uses 8x1 or 6x2. Column tails are masked loads/stores, so any N works without padding.
 * The block shape (r, nv, masked) must be a compile-time constant for the accumulators to
 * live in registers: GEMM_VARIANTS below instantiates every shape and att_gemm picks one.
 */
#define _POSIX_C_SOURCE 200112L
#include <stdlib.h>
#include "kernels.h"
#include "attention_internal.h"
#include "attention_simd.h"

#if VW == 16
#define NVMAX 4
static const int RMAX[NVMAX + 1] = {0, 12, 12, 8, 6};
#elif VW == 8
#define NVMAX 2
static const int RMAX[NVMAX + 1] = {0, 8, 6};
#else
#define NVMAX 4
static const int RMAX[NVMAX + 1] = {0, 4, 4, 4, 4};
#endif
#define RMAX_ALL 12

struct gemm_args {
    float *C;
    const float *A, *B;
    ptrdiff_t ldc, sak, sar, ldb;
    int K, accumulate;
    vmask tail;  /* lanes of the last vector that are inside N */
};

static inline __attribute__((always_inline))
void gemm_block(const struct gemm_args *g, const int R, const int NV, const int masked) {
    vec c[RMAX_ALL][NVMAX];
    float *C = g->C;
    const float *A = g->A, *B = g->B;
    const ptrdiff_t ldc = g->ldc, sak = g->sak, sar = g->sar, ldb = g->ldb;
#pragma GCC unroll 12
    for (int r = 0; r < R; r++) {
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            const float *p = C + r * ldc + v * VW;
            c[r][v] = !g->accumulate ? vzero() : (masked && v == NV - 1) ? vload_m(p, g->tail)
                                                                          : vload(p);
        }
    }
    for (int k = 0; k < g->K; k++) {
        vec b[NVMAX];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            b[v] = (masked && v == NV - 1) ? vload_m(B + v * VW, g->tail) : vload(B + v * VW);
#pragma GCC unroll 12
        for (int r = 0; r < R; r++) {
            vec a = vset1(A[r * sar]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) c[r][v] = vfma(a, b[v], c[r][v]);
        }
        A += sak;
        B += ldb;
    }
#pragma GCC unroll 12
    for (int r = 0; r < R; r++) {
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            float *p = C + r * ldc + v * VW;
            if (masked && v == NV - 1) vstore_m(p, c[r][v], g->tail);
            else vstore(p, c[r][v]);
        }
    }
}

typedef void (*gemm_fn)(const struct gemm_args *);

/* One function per block shape: gemm_<nv>_<r>_<masked>. */
#define GEMM_DEFINE(NV, R, M) \
    static void gemm_##NV##_##R##_##M(const struct gemm_args *g) { gemm_block(g, R, NV, M); }
#define GEMM_ENTRY(NV, R, M) [NV][R][M] = gemm_##NV##_##R##_##M,
#define GEMM_ROWS2(X, NV, M) X(NV, 1, M) X(NV, 2, M)
#define GEMM_ROWS4(X, NV, M) GEMM_ROWS2(X, NV, M) X(NV, 3, M) X(NV, 4, M)
#define GEMM_ROWS6(X, NV, M) GEMM_ROWS4(X, NV, M) X(NV, 5, M) X(NV, 6, M)
#define GEMM_ROWS8(X, NV, M) GEMM_ROWS6(X, NV, M) X(NV, 7, M) X(NV, 8, M)
#define GEMM_ROWS12(X, NV, M) \
    GEMM_ROWS8(X, NV, M) X(NV, 9, M) X(NV, 10, M) X(NV, 11, M) X(NV, 12, M)

#if VW == 16
#define GEMM_VARIANTS(X, M) GEMM_ROWS12(X, 1, M) GEMM_ROWS12(X, 2, M) GEMM_ROWS8(X, 3, M) \
                            GEMM_ROWS6(X, 4, M)
#elif VW == 8
#define GEMM_VARIANTS(X, M) GEMM_ROWS8(X, 1, M) GEMM_ROWS6(X, 2, M)
#else
#define GEMM_VARIANTS(X, M) GEMM_ROWS4(X, 1, M) GEMM_ROWS4(X, 2, M) GEMM_ROWS4(X, 3, M) \
                            GEMM_ROWS4(X, 4, M)
#endif

GEMM_VARIANTS(GEMM_DEFINE, 0)
#if VW > 1
GEMM_VARIANTS(GEMM_DEFINE, 1)
#endif
static const gemm_fn GEMM[NVMAX + 1][RMAX_ALL + 1][2] = {
    GEMM_VARIANTS(GEMM_ENTRY, 0)
#if VW > 1
    GEMM_VARIANTS(GEMM_ENTRY, 1)
#endif
};

void att_gemm(float *C, ptrdiff_t ldc, const float *A, ptrdiff_t sak, ptrdiff_t sar,
              const float *B, ptrdiff_t ldb, int R, int N, int K, int accumulate) {
    struct gemm_args g = {.ldc = ldc, .sak = sak, .sar = sar, .ldb = ldb, .K = K,
                          .accumulate = accumulate};
    for (int c0 = 0; c0 < N; c0 += NVMAX * VW) {
        int nc = N - c0 < NVMAX * VW ? N - c0 : NVMAX * VW;   /* columns in this strip */
        int nv = (nc + VW - 1) / VW, masked = nc % VW != 0, rmax = RMAX[nv];
        g.tail = vfirst(nc - (nv - 1) * VW);
        for (int r0 = 0; r0 < R; r0 += rmax) {
            int r = R - r0 < rmax ? R - r0 : rmax;
            g.C = C + r0 * ldc + c0;
            g.A = A + r0 * sar;
            g.B = B + c0;
            GEMM[nv][r][masked](&g);
        }
    }
}

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
 * handing big blocks back to the system every call costs page faults on the next one (20%
 * at T = 64). The slot is taken and refilled with atomic exchanges, so concurrent callers
 * (cffi releases the GIL) never share a block. The largest block stays cached until exit.
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
