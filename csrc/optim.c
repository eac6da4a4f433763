/*
 * optim.c — the optimizer's passes over the flat parameter buffer: AdamW's update in one
 * pass over memory, and the gradient's copy/accumulate fused with its sum of squares.
 *
 * All three are memory-bound: the update reads p, g, m, v and writes p, m, v, doing a
 * dozen flops per 28 bytes moved. So the goal is to touch each byte once and keep both
 * cores streaming: OpenMP over fixed blocks of the buffer, handed out dynamically (a
 * thread that a busy machine preempts does not hold the others up; which thread does a
 * block never changes its result), and vector loops: AVX intrinsics for the update
 * (subtle: without -fno-math-errno, GCC does not vectorize a loop that calls sqrtf),
 * plain loops the compiler vectorizes for the sums. The NumPy twin of each kernel is in
 * minillm/nn/kernels/optim.py.
 *
 * Bit-for-bit results:
 *   - the update does exactly the NumPy twin's float32 operations in the same order (no
 *     FMA: each multiply and add rounds on its own; sqrt and divide are IEEE-exact), so
 *     C and NumPy agree to the last bit, on any number of threads;
 *   - a sum of squares adds in double, in fixed blocks (sizes depend only on n) whose
 *     partial sums are combined in block order, and within a block in 8 fixed lanes
 *     (lane j takes elements j, j+8, ...): the result depends neither on the thread
 *     count nor on the arrays' alignment, so a resumed run reproduces the clipping.
 *
 * Shapes: n values of one flat buffer; the first n_decay of them get weight decay.
 */
#include <math.h>
#include <stddef.h>
#include "kernels.h"

#ifdef __AVX__
#include <immintrin.h>
#endif

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF     /* subtle: clang would fuse a * b + c into an FMA */
#endif

#define PARALLEL_MIN (1LL << 15)  /* values per call worth waking the threads for */
#define UPDATE_BLOCK (1LL << 14)  /* values per OpenMP work item of the update */
#define SUM_PARTS 256             /* at most this many partial sums per call (on the stack) */
#define SUM_BLOCK_MIN 4096        /* at least this many values per partial sum */
#define LANES 8                   /* independent double accumulators within a block */

/* ---- AdamW update ---------------------------------------------------------------- */

typedef struct {
    float b1, b2, g1, g2, eps_hat, step_size;
} adamw_coefs;

/* The update on values [0, n) of the pointers, with weight-decay factor `decay`
 * (1.0f for parameters that do not decay: multiplying by 1 is exact). */
static void adamw_range(float *restrict p, float *restrict m, float *restrict v,
                        const float *restrict g, long long n, adamw_coefs c, float decay) {
    long long i = 0;
#ifdef __AVX__
    const __m256 b1 = _mm256_set1_ps(c.b1), b2 = _mm256_set1_ps(c.b2);
    const __m256 g1 = _mm256_set1_ps(c.g1), g2 = _mm256_set1_ps(c.g2);
    const __m256 eps = _mm256_set1_ps(c.eps_hat), step = _mm256_set1_ps(c.step_size);
    const __m256 dec = _mm256_set1_ps(decay);
    for (; i + 8 <= n; i += 8) {
        __m256 gi = _mm256_loadu_ps(g + i);
        __m256 mi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(m + i), b1), _mm256_mul_ps(gi, g1));
        __m256 vi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + i), b2),
                                  _mm256_mul_ps(_mm256_mul_ps(gi, gi), g2));
        __m256 di = _mm256_mul_ps(_mm256_div_ps(mi, _mm256_add_ps(_mm256_sqrt_ps(vi), eps)), step);
        __m256 pi = _mm256_mul_ps(_mm256_loadu_ps(p + i), dec);
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        _mm256_storeu_ps(p + i, _mm256_sub_ps(pi, di));
    }
#endif
    for (; i < n; i++) {        /* the same operations, one value at a time */
        float gi = g[i];
        float mi = m[i] * c.b1 + gi * c.g1;                 /* m = b1 m + (1 - b1) s g */
        float vi = v[i] * c.b2 + (gi * gi) * c.g2;          /* v = b2 v + (1 - b2) (s g)^2 */
        float di = mi / (sqrtf(vi) + c.eps_hat) * c.step_size;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * decay - di;
    }
}

void adamw_update(float *p, float *m, float *v, const float *g, long long n, long long n_decay,
                  float b1, float b2, float g1, float g2, float eps_hat, float step_size,
                  float decay) {
    adamw_coefs c = {b1, b2, g1, g2, eps_hat, step_size};
    long long n_blocks = (n + UPDATE_BLOCK - 1) / UPDATE_BLOCK;
    #pragma omp parallel for schedule(dynamic, 1) if (n >= PARALLEL_MIN)
    for (long long b = 0; b < n_blocks; b++) {
        long long s = b * UPDATE_BLOCK, e = s + UPDATE_BLOCK < n ? s + UPDATE_BLOCK : n;
        long long mid = n_decay < s ? s : (n_decay > e ? e : n_decay);  /* decay: [s, mid) */
        adamw_range(p + s, m + s, v + s, g + s, mid - s, c, decay);
        adamw_range(p + mid, m + mid, v + mid, g + mid, e - mid, c, 1.0f);
    }
}

/* ---- gradient: copy/accumulate and sum of squares ----------------------------------- */

/* Sum of x[i]^2 over [0, n) in double, in LANES fixed lanes; with add != NULL first
 * x[i] = (accumulate ? x[i] : 0) + add[i] (the sum is then of the new values), in the
 * same pass. */
static double sumsq_range(float *restrict x, const float *restrict add, long long n,
                          int accumulate) {
    double lane[LANES] = {0};
    long long i = 0, body = n / LANES * LANES;
    /* three copies of one loop, so that each vectorizes (a branch inside would not) */
    if (!add) {
        for (; i < body; i += LANES)
            for (int j = 0; j < LANES; j++)
                lane[j] += (double)x[i + j] * x[i + j];
    } else if (accumulate) {
        for (; i < body; i += LANES)
            for (int j = 0; j < LANES; j++) {
                float xi = x[i + j] + add[i + j];
                x[i + j] = xi;
                lane[j] += (double)xi * xi;
            }
    } else {
        for (; i < body; i += LANES)
            for (int j = 0; j < LANES; j++) {
                float xi = add[i + j];
                x[i + j] = xi;
                lane[j] += (double)xi * xi;
            }
    }
    double s = 0.0;
    for (; i < n; i++) {        /* the tail, under LANES values */
        float xi = !add ? x[i] : accumulate ? x[i] + add[i] : add[i];
        if (add)
            x[i] = xi;
        s += (double)xi * xi;
    }
    for (int j = 0; j < LANES; j++)
        s += lane[j];
    return s;
}

/* The blocked, thread-count-independent sum behind both exported functions. */
static double sumsq_blocks(float *x, const float *add, long long n, int accumulate) {
    double part[SUM_PARTS];
    long long block = (n + SUM_PARTS - 1) / SUM_PARTS;
    block = block < SUM_BLOCK_MIN ? SUM_BLOCK_MIN : (block + LANES - 1) / LANES * LANES;
    int n_parts = (int)((n + block - 1) / block);
    #pragma omp parallel for schedule(dynamic, 1) if (n >= PARALLEL_MIN)
    for (int b = 0; b < n_parts; b++) {
        long long s = b * block, e = s + block < n ? s + block : n;
        part[b] = sumsq_range(x + s, add ? add + s : NULL, e - s, accumulate);
    }
    double total = 0.0;
    for (int b = 0; b < n_parts; b++)
        total += part[b];
    return total;
}

double sum_squares(const float *x, long long n) {
    /* subtle: x is only read (add == NULL); the cast drops const for the shared helper */
    return sumsq_blocks((float *)x, NULL, n, 0);
}

double grad_store(float *dst, const float *src, long long n, int accumulate) {
    return sumsq_blocks(dst, src, n, accumulate);
}
