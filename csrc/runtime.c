/*
 * runtime.c — thread count and build facts of the kernel library, and the FMA probe.
 */
#include "kernels.h"
#include "simd.h"

#ifdef _OPENMP
#include <omp.h>
#endif

int minillm_get_num_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

void minillm_set_num_threads(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n < 1 ? 1 : n);
#else
    (void)n;
#endif
}

int minillm_has_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

const char *minillm_simd_level(void) {
#if defined(__AVX512F__)
    return "avx512";
#elif defined(__AVX2__) && defined(__FMA__)
    return "avx2";
#else
    return "scalar";
#endif
}

int minillm_simd_width(void) { return VW; }

/* The FMA probe: n rounds of FMA_CHAINS independent vector FMAs on registers only (no
 * memory), so the time is the core's FMA throughput: n * FMA_CHAINS * VW * 2 flops.
 * FMA_CHAINS covers latency x units (4 cycles x 2 FMA units on Zen 3 and Intel's cores),
 * and leaves registers for the two operands. clib.fma_peak() times it. Returns the sum of
 * the chains so that the compiler cannot drop the loop. */
#define FMA_CHAINS 12
float minillm_fma_probe(long n) {
    vec acc[FMA_CHAINS], b = vset1(0.999999f), c = vset1(1e-6f);
    #pragma GCC unroll 12
    for (int i = 0; i < FMA_CHAINS; i++) acc[i] = vset1((float)i);
    for (long k = 0; k < n; k++) {
        #pragma GCC unroll 12
        for (int i = 0; i < FMA_CHAINS; i++) acc[i] = vfma(acc[i], b, c);
    }
    vec s = vzero();
    #pragma GCC unroll 12
    for (int i = 0; i < FMA_CHAINS; i++) s = vadd(s, acc[i]);
    return vhsum(s);
}
