/*
 * attention_gemm.c — the register-blocked product every attention tile is made of.
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
#include "attention_common.h"
#include "simd.h"

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
