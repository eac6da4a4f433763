/*
 * matmul_simd.h — the innermost loops of csrc/matmul.c, one version per instruction set.
 *
 * Included once, by matmul.c only. The build compiles with -march=native (or MINILLM_MARCH),
 * so exactly one of the three sections below is used, chosen by the preprocessor:
 *   __AVX512F__          32 registers of 16 floats: a 14 x 32 tile (28 accumulators)
 *   __AVX2__ + __FMA__   16 registers of 8 floats:  a  6 x 16 tile (12 accumulators)
 *   otherwise            plain C:                   a  4 x  8 tile
 * Each section defines the same things:
 *   MM_MR, MM_NR       the register tile: MM_MR rows x MM_NR columns of C held in registers
 *   mm_tile(...)       C tile (mr x nr, mr <= MM_MR, nr <= MM_NR) (+)= A panel @ B panel
 *   mm_pack_bt(...)    copy a sliver of B = W^T out of W (a transpose), for the forward
 *   mm_copy_short(...) copy <= MM_MR floats, for packing a k-major A panel
 *   mm_dot_block(...)  dot products out[i][j] = x[i] . w[j] for the few-token forward
 *                      (decoding), where both operands are contiguous rows
 *
 * The micro-kernel (mm_tile), with MR = MM_MR and NR = MM_NR:
 *     for k in 0..kc-1:                       # one rank-1 update of the tile per k
 *         b = B[k, 0:NR]                      # NR/16 vector loads (contiguous)
 *         for r in 0..mr-1:
 *             acc[r, :] += broadcast(A[r, k]) * b      # NR/16 fused multiply-adds
 *     C[0:mr, 0:nr] = acc  (or += acc when accumulating)
 * Every B vector is reused mr times and every A scalar NR/16 times from registers, so the
 * loop does 28 FMAs per 16 loads (AVX-512; 12 per 8 with AVX2) and keeps both FMA units
 * busy. A full tile (nr = NR) reads and writes with plain loads and stores; only a ragged
 * last sliver uses masked ones (on AMD a masked store costs about ten plain ones).
 * A(r, k) is either row-major, a[r*lda + k] (the rows of inp or dout, read in place), or
 * k-major, a[k*lda + r] (a packed panel of dout^T); B(k, j) = b[k*ldb + j] is a packed
 * sliver (ldb = MM_NR) or, for few rows, the row-major matrix itself.
 * Lanes past nr are masked: never loaded, never stored, so any nr is safe.
 */
#include <stddef.h>
#include "simd.h"   /* the shared vector vocabulary: vfirst, vtranspose, vhsum; imin */

#define MM_INLINE static inline __attribute__((always_inline))

#if defined(__AVX512F__)
#include <immintrin.h>

#define MM_MR 14
#define MM_NR 32

/* The body, instantiated for each constant MR_ (rows) and KMAJOR_ (layout of A) so the
 * compiler unrolls the r loop and keeps acc0/acc1 in registers. */
MM_INLINE void tile_avx512(const int MR_, const int KMAJOR_, int nr, int kc,
                           const float *restrict a, ptrdiff_t lda,
                           const float *restrict b, ptrdiff_t ldb,
                           float *restrict c, ptrdiff_t ldc, int accumulate) {
    /* columns 0..15 live in acc0, 16..31 in acc1; m0/m1 mask the lanes < nr */
    __mmask16 m0 = vfirst(nr), m1 = vfirst(nr - 16);
    ptrdiff_t off1 = nr > 16 ? 16 : 0;  /* subtle: with m1 == 0 stay in bounds anyway */
    __m512 acc0[MM_MR], acc1[MM_MR];
    #pragma GCC unroll 16
    for (int r = 0; r < MR_; r++) {   /* start fetching the C tile now: it is needed last */
        _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + r * ldc + off1), _MM_HINT_T0);
        acc0[r] = _mm512_setzero_ps();
        acc1[r] = _mm512_setzero_ps();
    }
    for (int k = 0; k < kc; k++) {
        const float *bk = b + k * ldb;
        __m512 b0 = _mm512_maskz_loadu_ps(m0, bk);
        __m512 b1 = _mm512_maskz_loadu_ps(m1, bk + off1);
        #pragma GCC unroll 16
        for (int r = 0; r < MR_; r++) {
            __m512 ar = _mm512_set1_ps(KMAJOR_ ? a[k * lda + r] : a[r * lda + k]);
            acc0[r] = _mm512_fmadd_ps(ar, b0, acc0[r]);
            acc1[r] = _mm512_fmadd_ps(ar, b1, acc1[r]);
        }
    }
    #pragma GCC unroll 16
    for (int r = 0; r < MR_; r++) {
        float *cr = c + r * ldc;
        if (accumulate) {
            acc0[r] = _mm512_add_ps(acc0[r], _mm512_maskz_loadu_ps(m0, cr));
            acc1[r] = _mm512_add_ps(acc1[r], _mm512_maskz_loadu_ps(m1, cr + off1));
        }
        _mm512_mask_storeu_ps(cr, m0, acc0[r]);
        _mm512_mask_storeu_ps(cr + off1, m1, acc1[r]);
    }
}

#define MM_TILE_CASE(R) case R: \
    (kmajor ? tile_avx512(R, 1, nr, kc, a, lda, b, ldb, c, ldc, accumulate) \
            : tile_avx512(R, 0, nr, kc, a, lda, b, ldb, c, ldc, accumulate)); break;

static void mm_tile(int mr, int nr, int kc, const float *restrict a, ptrdiff_t lda, int kmajor,
                    const float *restrict b, ptrdiff_t ldb,
                    float *restrict c, ptrdiff_t ldc, int accumulate) {
    switch (mr) {
        MM_TILE_CASE(14) MM_TILE_CASE(13) MM_TILE_CASE(12) MM_TILE_CASE(11) MM_TILE_CASE(10)
        MM_TILE_CASE(9) MM_TILE_CASE(8) MM_TILE_CASE(7) MM_TILE_CASE(6) MM_TILE_CASE(5)
        MM_TILE_CASE(4) MM_TILE_CASE(3) MM_TILE_CASE(2) MM_TILE_CASE(1)
        default: break;
    }
}

/* dst[0:n] = src[0:n] for n <= 16 (one masked load and store) */
MM_INLINE void mm_copy_short(float *restrict dst, const float *restrict src, int n) {
    __mmask16 m = vfirst(n);
    _mm512_mask_storeu_ps(dst, m, _mm512_maskz_loadu_ps(m, src));
}

/* Pack a transposed sliver: dst[p*MM_NR + j] = src[j*lds + p] for p < kc, j < nr, and 0
 * for nr <= j < MM_NR. Blocks of 16 x 16 go through vtranspose (simd.h); the
 * ragged end of p is copied one float at a time. */
static void mm_pack_bt(float *restrict dst, const float *restrict src, ptrdiff_t lds,
                       int kc, int nr) {
    int p0 = 0;
    for (; p0 + 16 <= kc; p0 += 16)
        for (int j0 = 0; j0 < MM_NR; j0 += 16) {
            __m512 r[16];
            for (int j = 0; j < 16; j++)
                r[j] = j0 + j < nr ? _mm512_loadu_ps(src + (j0 + j) * lds + p0) : _mm512_setzero_ps();
            vtranspose(r);
            for (int q = 0; q < 16; q++) _mm512_storeu_ps(dst + (p0 + q) * MM_NR + j0, r[q]);
        }
    for (int p = p0; p < kc; p++)
        for (int j = 0; j < MM_NR; j++) dst[p * MM_NR + j] = j < nr ? src[j * lds + p] : 0.0f;
}

/* Dot products: out[i*ldo + j] = x[i] . w[j] for i < ni, j < nj, rows of length C.
 * Tiles of NX rows of x times NW = 16 / NX rows of w: 16 accumulators, one per (i, j);
 * a transpose-and-add tree then sums the 16 lanes of all 16 at once (reduce16), which is
 * ~3 instructions per dot product instead of ~8 for separate horizontal sums. */

/* lane i of the result = sum of the 16 lanes of v[i] */
MM_INLINE __m512 reduce16(const __m512 v[16]) {
    __m512 s1[8], s2[4], s3[2];
    for (int p = 0; p < 8; p++)     /* per 128-bit chunk: [a0+a2, b0+b2, a1+a3, b1+b3] */
        s1[p] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * p], v[2 * p + 1]),
                              _mm512_unpackhi_ps(v[2 * p], v[2 * p + 1]));
    for (int p = 0; p < 4; p++) {   /* per chunk: the chunk sums of 4 sources */
        __m512d x = _mm512_castps_pd(s1[2 * p]), y = _mm512_castps_pd(s1[2 * p + 1]);
        s2[p] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)),
                              _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
    }
    for (int p = 0; p < 2; p++)     /* pair up chunks 0+1 and 2+3 of 8 sources */
        s3[p] = _mm512_add_ps(_mm512_shuffle_f32x4(s2[2 * p], s2[2 * p + 1], 0x88),
                              _mm512_shuffle_f32x4(s2[2 * p], s2[2 * p + 1], 0xDD));
    return _mm512_add_ps(_mm512_shuffle_f32x4(s3[0], s3[1], 0x88),
                         _mm512_shuffle_f32x4(s3[0], s3[1], 0xDD));
}

/* One NX x (16 / NX) tile; rows past nx / nw repeat the last row, their sums are dropped. */
MM_INLINE void dot_tile_avx512(const int NX, int nx, int nw, int C,
                               const float *restrict x, ptrdiff_t ldx,
                               const float *restrict w, ptrdiff_t ldw,
                               float *restrict out, ptrdiff_t ldo) {
    const int NW = 16 / NX;
    const float *xr[4], *wr[16];
    for (int i = 0; i < NX; i++) xr[i] = x + (i < nx ? i : nx - 1) * ldx;
    for (int j = 0; j < NW; j++) wr[j] = w + (j < nw ? j : nw - 1) * ldw;
    __m512 acc[16];
    for (int t = 0; t < 16; t++) acc[t] = _mm512_setzero_ps();
    for (int c0 = 0; c0 < C; c0 += 16) {
        __mmask16 m = vfirst(C - c0);
        __m512 xv[4];
        for (int i = 0; i < NX; i++) xv[i] = _mm512_maskz_loadu_ps(m, xr[i] + c0);
        for (int j = 0; j < NW; j++) {
            __m512 wv = _mm512_maskz_loadu_ps(m, wr[j] + c0);
            for (int i = 0; i < NX; i++) acc[i * NW + j] = _mm512_fmadd_ps(xv[i], wv, acc[i * NW + j]);
        }
    }
    __m512 sums = reduce16(acc);     /* lane i*NW + j = x[i] . w[j] */
    __mmask16 keep = (__mmask16)((1u << nw) - 1);
    for (int i = 0; i < nx; i++)      /* move row i's lanes down to lane 0, store nw */
        _mm512_mask_storeu_ps(out + i * ldo, keep,
                              _mm512_maskz_compress_ps((__mmask16)(keep << (i * NW)), sums));
}

/* A single row x (N = 1, the decoding hot path): 4 rows of w at a time, each summed in 4
 * independent accumulators over 64 floats per step, so every w row is read as one
 * sequential stream (4 streams per tile rather than 16: the L2 prefetcher keeps up). */
MM_INLINE void dot_row_avx512(int nw, int C, const float *restrict x, const float *restrict w,
                              ptrdiff_t ldw, float *restrict out) {
    const float *wr[4];
    for (int j = 0; j < 4; j++) wr[j] = w + (j < nw ? j : nw - 1) * ldw;
    __m512 acc[16];                   /* acc[4*j + u]: row j, floats 16u..16u+15 of each 64 */
    for (int t = 0; t < 16; t++) acc[t] = _mm512_setzero_ps();
    int c0 = 0;
    for (; c0 + 64 <= C; c0 += 64)
        for (int u = 0; u < 4; u++) {
            __m512 xv = _mm512_loadu_ps(x + c0 + 16 * u);
            for (int j = 0; j < 4; j++)
                acc[4 * j + u] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(wr[j] + c0 + 16 * u), acc[4 * j + u]);
        }
    for (; c0 < C; c0 += 16) {        /* the last < 64 floats, masked */
        __mmask16 m = vfirst(C - c0);
        __m512 xv = _mm512_maskz_loadu_ps(m, x + c0);
        for (int j = 0; j < 4; j++)
            acc[4 * j] = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(m, wr[j] + c0), acc[4 * j]);
    }
    __m512 s[4];
    for (int j = 0; j < 4; j++)
        s[j] = _mm512_add_ps(_mm512_add_ps(acc[4 * j], acc[4 * j + 1]),
                             _mm512_add_ps(acc[4 * j + 2], acc[4 * j + 3]));
    for (int j = 0; j < nw; j++) out[j] = _mm512_reduce_add_ps(s[j]);
}

static void mm_dot_block(int ni, int nj, int C, const float *restrict x, ptrdiff_t ldx,
                         const float *restrict w, ptrdiff_t ldw, float *restrict out, ptrdiff_t ldo) {
    if (ni == 1) {                              /* one token: a matrix-vector product */
        for (int j = 0; j < nj; j += 4)
            dot_row_avx512(nj - j < 4 ? nj - j : 4, C, x, w + j * ldw, ldw, out + j);
        return;
    }
    for (int j = 0; j < nj; j += 16)            /* these 16 rows of w stay in L1 ... */
        for (int i = 0; i < ni;) {              /* ... while the rows of x pass by */
            int nx = ni - i >= 4 ? 4 : ni - i >= 2 ? 2 : 1, nw = nx == 1 ? 4 : 16 / nx;
            for (int jj = j; jj < j + 16 && jj < nj; jj += nw) {
                int n = nj - jj < nw ? nj - jj : nw;
                const float *xi = x + i * ldx, *wj = w + jj * ldw;
                float *o = out + i * ldo + jj;
                if (nx == 4) dot_tile_avx512(4, nx, n, C, xi, ldx, wj, ldw, o, ldo);
                else if (nx == 2) dot_tile_avx512(2, nx, n, C, xi, ldx, wj, ldw, o, ldo);
                else dot_row_avx512(n, C, xi, wj, ldw, o);
            }
            i += nx;
        }
}

#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#define MM_MR 6
#define MM_NR 16

MM_INLINE void tile_avx2(const int MR_, const int KMAJOR_, const int FULL_, int nr, int kc,
                         const float *restrict a, ptrdiff_t lda,
                         const float *restrict b, ptrdiff_t ldb,
                         float *restrict c, ptrdiff_t ldc, int accumulate) {
    /* FULL_: nr == 16, so B and C are read and written with plain loads and stores. The
     * masked forms are slow on AMD (a vmaskmovps store costs ~10x a plain one), and two
     * masks would take the 16th and 17th register, spilling one in the k loop. */
    __m256i m0 = vfirst(FULL_ ? 8 : nr), m1 = vfirst(FULL_ ? 8 : nr - 8);
    ptrdiff_t off1 = FULL_ || nr > 8 ? 8 : 0;  /* subtle: with m1 all off stay in bounds */
    __m256 acc0[MM_MR], acc1[MM_MR];
    #pragma GCC unroll 8
    for (int r = 0; r < MR_; r++) {  /* start fetching the C tile now: it is needed last */
        _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + r * ldc + 15), _MM_HINT_T0);
        acc0[r] = _mm256_setzero_ps();
        acc1[r] = _mm256_setzero_ps();
    }
    #pragma GCC unroll 2
    for (int k = 0; k < kc; k++) {
        const float *bk = b + k * ldb;
        __m256 b0 = FULL_ ? _mm256_loadu_ps(bk) : _mm256_maskload_ps(bk, m0);
        __m256 b1 = FULL_ ? _mm256_loadu_ps(bk + 8) : _mm256_maskload_ps(bk + off1, m1);
        #pragma GCC unroll 8
        for (int r = 0; r < MR_; r++) {
            __m256 ar = _mm256_set1_ps(KMAJOR_ ? a[k * lda + r] : a[r * lda + k]);
            acc0[r] = _mm256_fmadd_ps(ar, b0, acc0[r]);
            acc1[r] = _mm256_fmadd_ps(ar, b1, acc1[r]);
        }
    }
    #pragma GCC unroll 8
    for (int r = 0; r < MR_; r++) {
        float *cr = c + r * ldc;
        if (FULL_) {
            if (accumulate) {
                acc0[r] = _mm256_add_ps(acc0[r], _mm256_loadu_ps(cr));
                acc1[r] = _mm256_add_ps(acc1[r], _mm256_loadu_ps(cr + 8));
            }
            _mm256_storeu_ps(cr, acc0[r]);
            _mm256_storeu_ps(cr + 8, acc1[r]);
        } else {
            if (accumulate) {
                acc0[r] = _mm256_add_ps(acc0[r], _mm256_maskload_ps(cr, m0));
                acc1[r] = _mm256_add_ps(acc1[r], _mm256_maskload_ps(cr + off1, m1));
            }
            _mm256_maskstore_ps(cr, m0, acc0[r]);
            _mm256_maskstore_ps(cr + off1, m1, acc1[r]);
        }
    }
}

#define MM_TILE_LAYOUT(R, FULL) \
    (kmajor ? tile_avx2(R, 1, FULL, nr, kc, a, lda, b, ldb, c, ldc, accumulate) \
            : tile_avx2(R, 0, FULL, nr, kc, a, lda, b, ldb, c, ldc, accumulate))
#define MM_TILE_CASE(R) case R: \
    (nr == MM_NR ? MM_TILE_LAYOUT(R, 1) : MM_TILE_LAYOUT(R, 0)); break;

static void mm_tile(int mr, int nr, int kc, const float *restrict a, ptrdiff_t lda, int kmajor,
                    const float *restrict b, ptrdiff_t ldb,
                    float *restrict c, ptrdiff_t ldc, int accumulate) {
    switch (mr) {
        MM_TILE_CASE(6) MM_TILE_CASE(5) MM_TILE_CASE(4) MM_TILE_CASE(3) MM_TILE_CASE(2)
        MM_TILE_CASE(1)
        default: break;
    }
}

/* dst[0:n] = src[0:n] for n <= 6: a full panel row is one 4-float and one 2-float move */
MM_INLINE void mm_copy_short(float *restrict dst, const float *restrict src, int n) {
    if (n == 6) {
        _mm_storeu_ps(dst, _mm_loadu_ps(src));
        _mm_storel_pi((__m64 *)(dst + 4), _mm_loadl_pi(_mm_setzero_ps(), (const __m64 *)(src + 4)));
        return;
    }
    for (int i = 0; i < n; i++) dst[i] = src[i];
}

/* Pack a transposed sliver: dst[p*MM_NR + j] = src[j*lds + p], zero for nr <= j < MM_NR. */
static void mm_pack_bt(float *restrict dst, const float *restrict src, ptrdiff_t lds,
                       int kc, int nr) {
    for (int p = 0; p < kc; p++)
        for (int j = 0; j < MM_NR; j++) dst[p * MM_NR + j] = j < nr ? src[j * lds + p] : 0.0f;
}

/* Dot products (see the AVX-512 section). Plain loads in the main loops and masked ones
 * only for the last C % 8 floats: a masked load per step made these 4x slower on AMD.
 *
 * Tiles of NX = 2 rows of x by 4 rows of w: 8 accumulators, each summed horizontally
 * (vhsum) at the end; rows past nx / nw repeat the last row, their sums are dropped. */
static void dot_tile_avx2(int nx, int nw, int C, const float *restrict x, ptrdiff_t ldx,
                          const float *restrict w, ptrdiff_t ldw, float *restrict out, ptrdiff_t ldo) {
    const float *xr[2], *wr[4];
    for (int i = 0; i < 2; i++) xr[i] = x + (i < nx ? i : nx - 1) * ldx;
    for (int j = 0; j < 4; j++) wr[j] = w + (j < nw ? j : nw - 1) * ldw;
    __m256 acc[8];
    for (int t = 0; t < 8; t++) acc[t] = _mm256_setzero_ps();
    for (int c0 = 0; c0 < C; c0 += 8) {
        int rest = C - c0;
        __m256 wv[4];
        for (int j = 0; j < 4; j++) wv[j] = vload_n(wr[j] + c0, rest);
        for (int i = 0; i < 2; i++) {
            __m256 xv = vload_n(xr[i] + c0, rest);
            for (int j = 0; j < 4; j++) acc[4 * i + j] = _mm256_fmadd_ps(xv, wv[j], acc[4 * i + j]);
        }
    }
    for (int i = 0; i < nx; i++)
        for (int j = 0; j < nw; j++) out[i * ldo + j] = vhsum(acc[4 * i + j]);
}

/* A single row x (N = 1, the decoding hot path): one row of w at a time, summed in 4
 * accumulators over 32 floats per step. One sequential stream through W is what the AMD
 * prefetchers follow best: 4 rows at a time (4 interleaved streams, as with AVX-512 above)
 * decoded stories15M at 155 tokens/s on a Zen 3 core, one row at a time at 267. */
MM_INLINE float dot1_avx2(int C, const float *restrict x, const float *restrict w) {
    __m256 acc[4];
    for (int t = 0; t < 4; t++) acc[t] = _mm256_setzero_ps();
    int c0 = 0;
    for (; c0 + 32 <= C; c0 += 32)
        for (int u = 0; u < 4; u++)
            acc[u] = _mm256_fmadd_ps(_mm256_loadu_ps(x + c0 + 8 * u), _mm256_loadu_ps(w + c0 + 8 * u), acc[u]);
    for (; c0 < C; c0 += 8)
        acc[0] = _mm256_fmadd_ps(vload_n(x + c0, C - c0), vload_n(w + c0, C - c0), acc[0]);
    return vhsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
}

static void mm_dot_block(int ni, int nj, int C, const float *restrict x, ptrdiff_t ldx,
                         const float *restrict w, ptrdiff_t ldw, float *restrict out, ptrdiff_t ldo) {
    if (ni == 1) {                              /* one token: a matrix-vector product */
        for (int j = 0; j < nj; j++)
            out[j] = dot1_avx2(C, x, w + j * ldw);
        return;
    }
    for (int j = 0; j < nj; j += 4)
        for (int i = 0; i < ni; i += 2)
            dot_tile_avx2(ni - i < 2 ? ni - i : 2, nj - j < 4 ? nj - j : 4, C, x + i * ldx, ldx,
                          w + j * ldw, ldw, out + i * ldo + j, ldo);
}

#else  /* portable C: the same loops, left to the compiler */

#define MM_MR 4
#define MM_NR 8

static void mm_tile(int mr, int nr, int kc, const float *restrict a, ptrdiff_t lda, int kmajor,
                    const float *restrict b, ptrdiff_t ldb,
                    float *restrict c, ptrdiff_t ldc, int accumulate) {
    float acc[MM_MR][MM_NR] = {{0.0f}};
    ptrdiff_t rs = kmajor ? 1 : lda, ks = kmajor ? lda : 1;   /* A(r, k) = a[r*rs + k*ks] */
    for (int k = 0; k < kc; k++)
        for (int r = 0; r < mr; r++) {
            float ar = a[r * rs + k * ks];
            for (int j = 0; j < nr; j++) acc[r][j] += ar * b[k * ldb + j];
        }
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < nr; j++) c[r * ldc + j] = (accumulate ? c[r * ldc + j] : 0.0f) + acc[r][j];
}

/* dst[0:n] = src[0:n] for short n */
MM_INLINE void mm_copy_short(float *restrict dst, const float *restrict src, int n) {
    for (int i = 0; i < n; i++) dst[i] = src[i];
}

/* Pack a transposed sliver: dst[p*MM_NR + j] = src[j*lds + p], zero for nr <= j < MM_NR. */
static void mm_pack_bt(float *restrict dst, const float *restrict src, ptrdiff_t lds,
                       int kc, int nr) {
    for (int p = 0; p < kc; p++)
        for (int j = 0; j < MM_NR; j++) dst[p * MM_NR + j] = j < nr ? src[j * lds + p] : 0.0f;
}

static void mm_dot_block(int ni, int nj, int C, const float *restrict x, ptrdiff_t ldx,
                         const float *restrict w, ptrdiff_t ldw, float *restrict out, ptrdiff_t ldo) {
    for (int j = 0; j < nj; j++)
        for (int i = 0; i < ni; i++) {
            float s = 0.0f;
            for (int c0 = 0; c0 < C; c0++) s += x[i * ldx + c0] * w[j * ldw + c0];
            out[i * ldo + j] = s;
        }
}

#endif
