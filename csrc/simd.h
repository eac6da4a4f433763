/*
 * simd.h — the small vector vocabulary the attention kernels are written in, and the two
 * scalar helpers every kernel file shares (imin, imax).
 *
 * One `vec` holds VW floats: 16 with AVX-512, 8 with AVX2+FMA, 1 in the scalar fallback.
 * The level is chosen at build time by -march=native or MINILLM_MARCH (csrc/build.py), like runtime.c's
 * minillm_simd_level(). Every operation the kernels need is here, so the attention_*.c
 * files read the same on every machine (matmul_simd.h borrows its masks, transpose and
 * horizontal sum too):
 *
 *   vzero() vset1(x) vload(p) vstore(p, a)     plain loads/stores (unaligned)
 *   vfirst(n)                                  a mask of the first n lanes (n may exceed VW)
 *   vload_m(p, m) vstore_m(p, a, m)            masked: lanes outside m are 0 / left alone
 *   vload_or(p, m, x)                          masked load, lanes outside m set to x
 *   vkeep(a, m)                                lanes outside m set to 0
 *   vload_n(p, n) vstore_n(p, a, n)            the first n lanes (all when n >= VW):
 *                                              plain, or masked at the end of a row
 *   vfma(a, b, c) = a*b + c   vmul vadd vsub vmax vdiv
 *   vhsum(a) vhmax(a)                          horizontal sum / max of the lanes
 *   vhsum_lanes(a[VW])                         lane j = vhsum(a[j]): VW sums at once
 *   vtranspose(r[VW])                          the VW x VW block r[i][j], in place
 *   vexp(a)                                    e^a lane-wise, see below
 *
 * vexp: e^x = 2^n * e^r with n = round(x / ln 2) and r = x - n ln 2 (|r| <= ln2 / 2,
 * computed with ln 2 split in two so r is accurate); e^r is a degree-6 polynomial whose
 * coefficients we fitted (minimax on [-ln2/2, ln2/2], relative error 1.7e-8 with the
 * coefficients rounded to float), evaluated by Horner with FMAs; 2^n is applied exactly
 * (scalef on AVX-512, two exponent-field multiplies on AVX2 so that results down in the
 * subnormal range round once). Error, measured over every 97th float in [-104, 89.5]
 * (23 million inputs; AVX-512 and AVX2 alike): at most 0.998 ulp from the exact e^x, mean
 * 0.06 ulp, 99.3% correctly rounded and the rest one bit away; subnormal results within
 * one subnormal step. -inf -> 0, large x -> +inf, NaN -> NaN. tests/nn/kernels/test_attention.py
 * checks <= 1 ulp. The scalar fallback uses the C library's expf.
 */
#ifndef MINILLM_SIMD_H
#define MINILLM_SIMD_H

#include <math.h>

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

#define EXP_LO (-104.0f)  /* e^x rounds to 0 below about -103.97 */
#define EXP_HI (89.0f)    /* e^x overflows to +inf above about 88.72 */
#define EXP_C6 1.383679453e-3f
#define EXP_C5 8.374856785e-3f
#define EXP_C4 4.166822881e-2f
#define EXP_C3 1.666641980e-1f
#define EXP_C2 4.999999106e-1f
#define LOG2E 1.44269504089f
#define LN2_HI 0.693145751953125f        /* ln 2 to 16 bits: n * LN2_HI is exact */
#define LN2_LO 1.42860682030941723212e-6f /* ln 2 - LN2_HI */

#if defined(__AVX512F__)
#include <immintrin.h>
#define VW 16
#define SIMD_NAME "avx512"
typedef __m512 vec;
typedef __mmask16 vmask;
static inline vec vzero(void) { return _mm512_setzero_ps(); }
static inline vec vset1(float x) { return _mm512_set1_ps(x); }
static inline vec vload(const float *p) { return _mm512_loadu_ps(p); }
static inline void vstore(float *p, vec a) { _mm512_storeu_ps(p, a); }
static inline vmask vfirst(int n) {
    return n >= 16 ? (vmask)0xFFFF : n <= 0 ? (vmask)0 : (vmask)((1u << n) - 1u);
}
static inline vec vload_m(const float *p, vmask m) { return _mm512_maskz_loadu_ps(m, p); }
static inline vec vload_or(const float *p, vmask m, float x) {
    return _mm512_mask_loadu_ps(_mm512_set1_ps(x), m, p);
}
static inline void vstore_m(float *p, vec a, vmask m) { _mm512_mask_storeu_ps(p, m, a); }
static inline vec vkeep(vec a, vmask m) { return _mm512_maskz_mov_ps(m, a); }
static inline vec vfma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
static inline vec vmul(vec a, vec b) { return _mm512_mul_ps(a, b); }
static inline vec vadd(vec a, vec b) { return _mm512_add_ps(a, b); }
static inline vec vsub(vec a, vec b) { return _mm512_sub_ps(a, b); }
static inline vec vdiv(vec a, vec b) { return _mm512_div_ps(a, b); }
static inline vec vmax(vec a, vec b) { return _mm512_max_ps(a, b); }
static inline float vhsum(vec a) { return _mm512_reduce_add_ps(a); }
static inline float vhmax(vec a) { return _mm512_reduce_max_ps(a); }
/* A transpose-and-add tree: each level halves the vectors by adding two halves of a pair
 * (256-bit, then 128-bit blocks, then pairs, then single floats), 31 shuffles for 16 sums
 * where 16 vhsum would take 64.  The result lands in a 4x4-transposed lane order that the
 * last permute undoes. */
static inline vec vhsum_lanes(const vec *a) {
    vec b[8], c[4], d[2];
    for (int i = 0; i < 8; i++)   /* b[i]: lanes 0-7 partials of a[2i], 8-15 of a[2i+1] */
        b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44),
                             _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE));
    for (int i = 0; i < 4; i++)   /* c[i]: 128-bit block q holds 4 partials of a[4i+q] */
        c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0xDD));
    for (int i = 0; i < 2; i++)   /* d[i]: block q = 2 partials of a[8i+q], 2 of a[8i+4+q] */
        d[i] = _mm512_add_ps(_mm512_shuffle_ps(c[2 * i], c[2 * i + 1], 0x44),
                             _mm512_shuffle_ps(c[2 * i], c[2 * i + 1], 0xEE));
    vec e = _mm512_add_ps(_mm512_shuffle_ps(d[0], d[1], 0x88),   /* lane 4q+r: a[4r+q] */
                          _mm512_shuffle_ps(d[0], d[1], 0xDD));
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14,
                                                   3, 7, 11, 15), e);
}
static inline vec unpacklo64(vec a, vec b) {
    return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
}
static inline vec unpackhi64(vec a, vec b) {
    return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
}
/* 16x16 transpose: interleave 32-bit, then 64-bit elements (r[4g+c] lane L = column 4L+c,
 * rows 4g..4g+3), then gather 128-bit blocks twice. */
static inline void vtranspose(vec *r) {
    vec t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = unpacklo64(t[i], t[i + 2]);
        r[i + 1] = unpackhi64(t[i], t[i + 2]);
        r[i + 2] = unpacklo64(t[i + 1], t[i + 3]);
        r[i + 3] = unpackhi64(t[i + 1], t[i + 3]);
    }
    for (int h = 0; h < 16; h += 8)     /* t[h+c]: columns c, 8+c; t[h+4+c]: 4+c, 12+c */
        for (int c = 0; c < 4; c++) {
            t[h + c] = _mm512_shuffle_f32x4(r[h + c], r[h + 4 + c], 0x88);
            t[h + 4 + c] = _mm512_shuffle_f32x4(r[h + c], r[h + 4 + c], 0xDD);
        }
    for (int c = 0; c < 4; c++) {
        r[c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0xDD);
        r[4 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0xDD);
    }
}
static inline vec vexp(vec x) {
    /* subtle: min/max return their second operand when either is NaN, so with x second
     * NaN propagates while -inf is clamped to a value whose e^x is 0. */
    x = _mm512_min_ps(_mm512_set1_ps(EXP_HI), _mm512_max_ps(_mm512_set1_ps(EXP_LO), x));
    vec n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(LOG2E)),
                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    vec r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    vec p = _mm512_fmadd_ps(_mm512_set1_ps(EXP_C6), r, _mm512_set1_ps(EXP_C5));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_C4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_C3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_C2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define VW 8
#define SIMD_NAME "avx2"
typedef __m256 vec;
typedef __m256i vmask;
static inline vec vzero(void) { return _mm256_setzero_ps(); }
static inline vec vset1(float x) { return _mm256_set1_ps(x); }
static inline vec vload(const float *p) { return _mm256_loadu_ps(p); }
static inline void vstore(float *p, vec a) { _mm256_storeu_ps(p, a); }
static inline vmask vfirst(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline vec vload_m(const float *p, vmask m) { return _mm256_maskload_ps(p, m); }
static inline vec vload_or(const float *p, vmask m, float x) {
    return _mm256_blendv_ps(_mm256_set1_ps(x), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
}
static inline void vstore_m(float *p, vec a, vmask m) { _mm256_maskstore_ps(p, m, a); }
static inline vec vkeep(vec a, vmask m) { return _mm256_and_ps(a, _mm256_castsi256_ps(m)); }
static inline vec vfma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
static inline vec vmul(vec a, vec b) { return _mm256_mul_ps(a, b); }
static inline vec vadd(vec a, vec b) { return _mm256_add_ps(a, b); }
static inline vec vsub(vec a, vec b) { return _mm256_sub_ps(a, b); }
static inline vec vdiv(vec a, vec b) { return _mm256_div_ps(a, b); }
static inline vec vmax(vec a, vec b) { return _mm256_max_ps(a, b); }
static inline float vhsum(vec a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
static inline float vhmax(vec a) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}
/* The AVX-512 tree above, one level shorter. */
static inline vec vhsum_lanes(const vec *a) {
    vec b[4], c[2];
    for (int i = 0; i < 4; i++)   /* b[i]: lanes 0-3 partials of a[2i], 4-7 of a[2i+1] */
        b[i] = _mm256_add_ps(_mm256_permute2f128_ps(a[2 * i], a[2 * i + 1], 0x20),
                             _mm256_permute2f128_ps(a[2 * i], a[2 * i + 1], 0x31));
    for (int i = 0; i < 2; i++)   /* c[i]: block L = 2 partials of a[4i+L], 2 of a[4i+2+L] */
        c[i] = _mm256_add_ps(_mm256_shuffle_ps(b[2 * i], b[2 * i + 1], 0x44),
                             _mm256_shuffle_ps(b[2 * i], b[2 * i + 1], 0xEE));
    vec e = _mm256_add_ps(_mm256_shuffle_ps(c[0], c[1], 0x88),   /* lane 4L+r: a[2r+L] */
                          _mm256_shuffle_ps(c[0], c[1], 0xDD));
    return _mm256_permutevar8x32_ps(e, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}
static inline vec unpacklo64(vec a, vec b) {
    return _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(a), _mm256_castps_pd(b)));
}
static inline vec unpackhi64(vec a, vec b) {
    return _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(a), _mm256_castps_pd(b)));
}
/* 8x8 transpose: as the AVX-512 one, with one 128-bit exchange at the end. */
static inline void vtranspose(vec *r) {
    vec t[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        r[i] = unpacklo64(t[i], t[i + 2]);
        r[i + 1] = unpackhi64(t[i], t[i + 2]);
        r[i + 2] = unpacklo64(t[i + 1], t[i + 3]);
        r[i + 3] = unpackhi64(t[i + 1], t[i + 3]);
    }
    for (int c = 0; c < 4; c++) {
        t[c] = _mm256_permute2f128_ps(r[c], r[4 + c], 0x20);
        t[4 + c] = _mm256_permute2f128_ps(r[c], r[4 + c], 0x31);
    }
    for (int i = 0; i < 8; i++) r[i] = t[i];
}
/* 2^n for integer-valued n in [-126, 127], built in the exponent field. */
static inline vec pow2i(__m256i n) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23));
}
static inline vec vexp(vec x) {
    /* subtle: as in the AVX-512 version, x second keeps NaN and clamps -inf. */
    x = _mm256_min_ps(_mm256_set1_ps(EXP_HI), _mm256_max_ps(_mm256_set1_ps(EXP_LO), x));
    vec n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)),
                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    vec r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    vec p = _mm256_fmadd_ps(_mm256_set1_ps(EXP_C6), r, _mm256_set1_ps(EXP_C5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_C4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_C3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_C2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    /* n in [-150, 129]: scale by 2^(n/2) then 2^(n - n/2), both normal, so a subnormal
     * result is rounded once, by the second multiply. */
    __m256i ni = _mm256_cvtps_epi32(n), half = _mm256_srai_epi32(ni, 1);
    return _mm256_mul_ps(_mm256_mul_ps(p, pow2i(half)), pow2i(_mm256_sub_epi32(ni, half)));
}

#else
#define VW 1
#define SIMD_NAME "scalar"
typedef float vec;
typedef int vmask;
static inline vec vzero(void) { return 0.0f; }
static inline vec vset1(float x) { return x; }
static inline vec vload(const float *p) { return *p; }
static inline void vstore(float *p, vec a) { *p = a; }
static inline vmask vfirst(int n) { return n >= 1; }
static inline vec vload_m(const float *p, vmask m) { return m ? *p : 0.0f; }
static inline vec vload_or(const float *p, vmask m, float x) { return m ? *p : x; }
static inline void vstore_m(float *p, vec a, vmask m) { if (m) *p = a; }
static inline vec vkeep(vec a, vmask m) { return m ? a : 0.0f; }
static inline vec vfma(vec a, vec b, vec c) { return a * b + c; }
static inline vec vmul(vec a, vec b) { return a * b; }
static inline vec vadd(vec a, vec b) { return a + b; }
static inline vec vsub(vec a, vec b) { return a - b; }
static inline vec vdiv(vec a, vec b) { return a / b; }
static inline vec vmax(vec a, vec b) { return a > b ? a : b; }
static inline float vhsum(vec a) { return a; }
static inline float vhmax(vec a) { return a; }
static inline vec vhsum_lanes(const vec *a) { return a[0]; }
static inline void vtranspose(vec *r) { (void)r; }
static inline vec vexp(vec x) { return expf(x); }
#endif

/* The first n lanes of p (all when n >= VW), others 0 / left alone: a plain load or store
 * for every full vector (masked stores are slow on AMD), masked only at the end of a row. */
static inline vec vload_n(const float *p, int n) { return n >= VW ? vload(p) : vload_m(p, vfirst(n)); }
static inline void vstore_n(float *p, vec a, int n) {
    if (n >= VW) vstore(p, a);
    else vstore_m(p, a, vfirst(n));
}

#endif
