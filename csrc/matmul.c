/*
 * matmul.c — the three products of a linear layer y = x W^T, weight W (OC, C), float32.
 *
 *   forward          out  (N, OC)  = inp  (N, C)   @ W^T     overwrites out
 *   backward input   dinp (N, C)   = dout (N, OC)  @ W       overwrites dinp
 *   backward weight  dW   (OC, C) += dout^T (OC, N) @ inp    accumulates into dW
 *
 * All three are one general product, gemm below, written in the textbook letters
 *     Cm (m x n) (+)= A (m x k) @ B (k x n)       (Cm: the output matrix, row-major)
 * (lowercase m, n, k to keep them apart from the layer's N tokens and C channels):
 *
 *   forward          m = N,  n = OC, k = C    A = inp  (rows)     B = W^T: B(k, j) = W[j, k]
 *   backward input   m = N,  n = C,  k = OC   A = dout (rows)     B = W:   B(k, j) = W[k, j]
 *   backward weight  m = OC, n = C,  k = N    A = dout^T (k-major) B = inp: B(k, j) = inp[k, j]
 *
 * How gemm is fast (the GotoBLAS/BLIS scheme; csrc/matmul_simd.h has the inner part):
 *
 * 1. Micro-kernel. A tile of MR x NR outputs (14 x 32 with AVX-512) lives in registers for
 *    the whole reduction: each k adds the outer product of a column piece of A (MR scalars,
 *    broadcast) and a row piece of B (NR floats, 2 vectors). That is 28 FMAs per 16 loads,
 *    so the FMA units, not memory, set the pace.
 * 2. Packing B. The micro-kernel wants B(k, 0:NR) contiguous for every k. Once per block
 *    we copy a KC x NC block of B into "slivers" of NR columns: sliver s holds
 *    B(pc + p, jc + s*NR + j) at bp[s*kc*NR + p*NR + j], zero-padded past the last column.
 *    For the forward this copy is also a transpose (W is stored as B^T).
 * 3. A in place. Row-major A (inp, dout) is read where it is: the MR rows of a panel are
 *    broadcast straight from the caller's array. K-major A (dout read as dout^T) is
 *    packed, MC rows at a time, because its k-steps lie a whole row of dout apart; so is
 *    a row-major A whose rows are a multiple of 4 KB apart with AVX-512 (pack_a_rows).
 * 4. Cache blocking, the loop order inside one thread:
 *        for jc in columns, step NC            B block, KC x NC floats (512 KB): in L2
 *          for pc in 0..k, step KC               pack the B block
 *            for ic in rows, step MC             (pack the A block: k-major or aliasing)
 *              for ir in ic.., step MR           A panel, MR x KC floats (14 KB): in L1
 *                for jr in 0..NC, step NR        B sliver streams from L2
 *                  micro-kernel: Cm[ir.., jc+jr..] (+)= A[ir.., pc..] @ Bp[pc.., jr..]
 *    The first depth block overwrites (or accumulates, for dW); later ones accumulate.
 *    Ragged edges: the last columns are masked lanes, the last rows a shorter panel.
 * 5. Threads. The output is cut into one rectangle per thread, across its longer side:
 *    by rows (whole panels) when m > n, else by columns (whole slivers). Each thread packs
 *    what its rectangle needs, so the operand along the uncut side is packed by every
 *    thread; cutting the longer side makes that the cheaper one, and keeps each thread's
 *    jr loop long (an A panel in L1 serves many B slivers). Each thread writes only its
 *    own rectangle: no atomics, no reduction between threads (dW's reduction over N
 *    stays in one thread), and every element is summed in the same order whatever the
 *    thread count.
 * 6. Few rows (decoding: N = 1 or a handful). Packing would cost more than it saves:
 *    the forward computes dot products of rows of inp and rows of W, both contiguous
 *    (mm_dot_block); the other products run the micro-kernel on the row-major B in place.
 *
 * Run the tests: python -m pytest tests/nn/kernels/test_matmul.py
 * Benchmark:     python bench/kernels_matmul.py --quick --threads 1
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "kernels.h"
#include "matmul_simd.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Cache blocks (L1 48 KB, L2 2 MB per core): a KC x NC block of packed B (512 KB) and an
 * MC x KC block of packed A (344 KB) fit in L2; one MR x KC A panel (14 KB) and the
 * current KC x NR B sliver (32 KB) fit in L1. Each can be overridden with -D to experiment. */
#ifndef KC
#define KC 256
#endif
#ifndef NC
#define NC 512
#endif
#ifndef UNPACKED_MAX_M         /* row-major B and m <= this: B read in place, not packed */
#define UNPACKED_MAX_M MM_MR
#endif
#ifndef MC                     /* rows of a packed k-major A block */
#define MC (24 * MM_MR)
#endif
#ifndef DOT_MAX_N              /* forward with N <= this: dot products, no packing */
#define DOT_MAX_N 15
#endif
#ifndef PARALLEL_MIN_WORK      /* m*n*k below this: one thread (startup cost) */
#define PARALLEL_MIN_WORK (1 << 18)
#endif
#ifndef DOT_PARALLEL_MIN_WORK  /* the same for the few-row forward: reading W from memory or
                                * L3 is its bottleneck, and two cores read faster than one */
#define DOT_PARALLEL_MIN_WORK (1 << 15)
#endif

/* Rows of the next micro-panel when `rest` rows remain: MM_MR, except that a short tail
 * is merged with the panel before it and the two split evenly (15 rows -> 8 + 7, not
 * 14 + 1): a 1- or 2-row tile has too few accumulators to keep the FMA units busy. */
static int panel_rows(int rest) {
    if (rest <= MM_MR) return rest;
    return rest < MM_MR + MM_MR / 2 ? (rest + 1) / 2 : MM_MR;
}

/* The operands of one product Cm (m x n) (+)= A (m x k) @ B (k x n). */
typedef struct {
    int m, n, k;
    const float *a; ptrdiff_t lda; int a_kmajor;   /* A(i, p) = a_kmajor ? a[p*lda + i] : a[i*lda + p] */
    const float *b; ptrdiff_t ldb; int b_kmajor;   /* B(p, j) = b_kmajor ? b[p*ldb + j] : b[j*ldb + p] */
    float *c; ptrdiff_t ldc;                       /* Cm(i, j) = c[i*ldc + j] */
    int accumulate;                                /* 1: Cm += A @ B;  0: Cm = A @ B */
} gemm_t;   /* (only the three layouts above occur: a k-major A comes with a k-major B,
               and a column-major B only in the forward, which overwrites) */

/* Pack B(pc..pc+kc, jc..jc+nc) into NR-wide slivers: bp[s*kc*NR + p*NR + j]. */
static void pack_b(float *restrict bp, const gemm_t *g, int pc, int kc, int jc, int nc) {
    for (int s = 0; s * MM_NR < nc; s++) {
        float *dst = bp + (ptrdiff_t)s * kc * MM_NR;
        int j0 = jc + s * MM_NR, nr = imin(MM_NR, nc - s * MM_NR);
        if (g->b_kmajor) {          /* rows of B are contiguous: copy NR floats per p */
            for (int p = 0; p < kc; p++) {
                const float *src = g->b + (ptrdiff_t)(pc + p) * g->ldb + j0;
                if (nr == MM_NR) {          /* (a constant size: a few vector moves) */
                    memcpy(dst + p * MM_NR, src, sizeof(float) * MM_NR);
                    continue;
                }
                for (int j = 0; j < nr; j++) dst[p * MM_NR + j] = src[j];
                for (int j = nr; j < MM_NR; j++) dst[p * MM_NR + j] = 0.0f;
            }
        } else {                    /* columns of B are contiguous (B = W^T): transpose */
            mm_pack_bt(dst, g->b + (ptrdiff_t)j0 * g->ldb + pc, g->ldb, kc, nr);
        }
    }
}

/* Address of A(i, p). */
static const float *a_at(const gemm_t *g, int i, int p) {
    return g->a_kmajor ? g->a + (ptrdiff_t)p * g->lda + i : g->a + (ptrdiff_t)i * g->lda + p;
}

/* Pack the k-major A block A(ic..ic+mc, pc..pc+kc) into micro-panels (panel_rows): the
 * panel of mr rows starting at row ic+o is stored k-major at ap + o*kc, i.e.
 * ap[o*kc + p*mr + r] = A(ic + o + r, pc + p), contiguous for the micro-kernel.
 * subtle: read in place, a panel's k-steps are lda floats apart (dout's rows); for OC =
 * 1024, 4096, ... they all hit the same L1 set and a different page each. Packed, they are
 * adjacent: each panel's strip of dout (mr floats per row) is copied into one contiguous
 * run, written in order (the strips' reads share cache lines with the next panel's). */
static void pack_a_kmajor(float *restrict ap, const gemm_t *g, int ic, int mc, int pc, int kc) {
    for (int o = 0, mr; o < mc; o += mr) {
        mr = panel_rows(mc - o);
        const float *src = g->a + (ptrdiff_t)pc * g->lda + ic + o;
        float *dst = ap + (ptrdiff_t)o * kc;
        for (int p = 0; p < kc; p++, src += g->lda, dst += mr)
            mm_copy_short(dst, src, mr);
    }
}

/* The same panels from a row-major A whose rows alias in L1: rows a multiple of 4 KB apart
 * (dout's in the backward input for OC = 1024, 2048, 4096) all map to one L1 set, and the
 * 14 rows of an AVX-512 panel read in place are more than its 12 ways, so the panel's
 * lines evict each other while the micro-kernel walks k. Packed, each row is read once, in
 * order, and written across the panel (a small transpose). Measured on AMD Zen 5 (AVX-512,
 * 2 threads): 1.2x-1.5x on those shapes. */
static void pack_a_rows(float *restrict ap, const gemm_t *g, int ic, int mc, int pc, int kc) {
    for (int o = 0, mr; o < mc; o += mr) {
        mr = panel_rows(mc - o);
        float *dst = ap + (ptrdiff_t)o * kc;
        for (int r = 0; r < mr; r++) {
            const float *src = g->a + (ptrdiff_t)(ic + o + r) * g->lda + pc;
            for (int p = 0; p < kc; p++) dst[p * mr + r] = src[p];
        }
    }
}

/* Whether gemm_block reads A from packed panels: always when k-major; row-major A when its
 * rows alias (above) and a panel has more rows than an L1 set has ways (AVX-512's 14; the
 * AVX2 panel's 6 rows fit). */
static int packs_a(const gemm_t *g) {
    return g->a_kmajor || (MM_MR > 8 && g->lda % 1024 == 0);
}

/* One thread's rectangle: rows [i0, i1) x columns [j0, j1) of Cm, all of k.
 * bp holds KC x (NC + NR) floats; ap holds MC x KC floats (used when A is packed). */
static void gemm_block(const gemm_t *g, int i0, int i1, int j0, int j1, float *bp, float *ap) {
    const int packed = packs_a(g);
    for (int jc = j0; jc < j1; jc += NC) {
        int nc = imin(NC, j1 - jc);
        for (int pc = 0; pc < g->k; pc += KC) {
            int kc = imin(KC, g->k - pc);
            int acc = g->accumulate || pc > 0;
            pack_b(bp, g, pc, kc, jc, nc);
            for (int ic = i0, mc; ic < i1; ic += mc) {
                mc = i1 - ic < MC + MM_MR ? i1 - ic : MC;   /* no sliver of a block at the end */
                if (g->a_kmajor) pack_a_kmajor(ap, g, ic, mc, pc, kc);
                else if (packed) pack_a_rows(ap, g, ic, mc, pc, kc);
                for (int ir = ic, mr; ir < ic + mc; ir += mr) {
                    mr = panel_rows(ic + mc - ir);
                    const float *a = packed ? ap + (ptrdiff_t)(ir - ic) * kc : a_at(g, ir, pc);
                    ptrdiff_t lda = packed ? mr : g->lda;
                    for (int jr = 0; jr < nc; jr += MM_NR)
                        mm_tile(mr, imin(MM_NR, nc - jr), kc, a, lda, packed,
                                bp + (ptrdiff_t)(jr / MM_NR) * kc * MM_NR, MM_NR,
                                g->c + (ptrdiff_t)ir * g->ldc + jc + jr, g->ldc, acc);
                }
            }
        }
    }
}

/* Few rows and a row-major B: no packing, the micro-kernel reads B in place over all of k. */
static void gemm_block_unpacked(const gemm_t *g, int i0, int i1, int j0, int j1) {
    for (int jr = j0; jr < j1; jr += MM_NR)
        for (int ir = i0, mr; ir < i1; ir += mr) {
            mr = panel_rows(i1 - ir);
            mm_tile(mr, imin(MM_NR, j1 - jr), g->k, a_at(g, ir, 0), g->lda, g->a_kmajor,
                    g->b + jr, g->ldb, g->c + (ptrdiff_t)ir * g->ldc + jr, g->ldc, g->accumulate);
        }
}

/* Few rows, row-major A and column-major B (the forward while decoding): every output is
 * the dot product of a row of A and a row of B^T = W, both contiguous (mm_dot_block).
 * Overwrites: only the forward, which overwrites, has this layout. */
static void gemm_block_dot(const gemm_t *g, int i0, int i1, int j0, int j1) {
    mm_dot_block(i1 - i0, j1 - j0, g->k, a_at(g, i0, 0), g->lda, g->b + (ptrdiff_t)j0 * g->ldb,
                 g->ldb, g->c + (ptrdiff_t)i0 * g->ldc + j0, g->ldc);
}

/* Without packing: the right in-place variant for the operands' layouts. */
static void gemm_block_in_place(const gemm_t *g, int i0, int i1, int j0, int j1) {
    if (g->b_kmajor) gemm_block_unpacked(g, i0, i1, j0, j1);
    else gemm_block_dot(g, i0, i1, j0, j1);    /* B^T rows with A rows (the forward) */
}

/* Split [0, units) into `parts` nearly equal ranges; return range `which` scaled by `unit`. */
static void split(int units, int parts, int which, int unit, int limit, int *lo, int *hi) {
    *lo = imin(limit, (int)((int64_t)units * which / parts) * unit);
    *hi = imin(limit, (int)((int64_t)units * (which + 1) / parts) * unit);
}

/* Thread tid's rectangle [i0, i1) x [j0, j1) of Cm out of nt = tm x tn (point 5 above). */
static void thread_rectangle(const gemm_t *g, int tid, int nt, int *i0, int *i1, int *j0, int *j1) {
    int slivers = (g->n + MM_NR - 1) / MM_NR, panels = (g->m + MM_MR - 1) / MM_MR;
    int tn = g->m > g->n ? 1 : nt;                  /* column groups */
    while (tn > 1 && (nt % tn || tn > slivers)) tn--;
    int tm = nt / tn;
    split(panels, tm, tid / tn, MM_MR, g->m, i0, i1);
    split(slivers, tn, tid % tn, MM_NR, g->n, j0, j1);
}

/* Compute one rectangle of Cm, with packing buffers of its own. */
static void gemm_rectangle(const gemm_t *g, int i0, int i1, int j0, int j1, int packed) {
    if (!packed) {
        gemm_block_in_place(g, i0, i1, j0, j1);
        return;
    }
    size_t kc = (size_t)imin(KC, g->k);
    size_t ncols = (size_t)imin(NC, j1 - j0) + MM_NR;     /* + the last sliver's padding */
    char *raw = malloc(sizeof(float) * kc * (ncols + MC + MM_MR) + 64);
    if (!raw) {                  /* out of memory: slower, still correct */
        gemm_block_in_place(g, i0, i1, j0, j1);
        return;
    }
    float *bp = (float *)(raw + (64 - (uintptr_t)raw % 64) % 64);   /* 64-byte aligned */
    gemm_block(g, i0, i1, j0, j1, bp, bp + kc * ncols);
    free(raw);
}

static void gemm(const gemm_t *g) {
    if (g->m <= 0 || g->n <= 0) return;
    if (g->k <= 0) {             /* empty sum: overwrite with zeros, or add nothing */
        if (!g->accumulate)
            for (int i = 0; i < g->m; i++) memset(g->c + (ptrdiff_t)i * g->ldc, 0, sizeof(float) * g->n);
        return;
    }
    int packed = g->b_kmajor ? g->m > UNPACKED_MAX_M : g->m > DOT_MAX_N;
#ifdef _OPENMP
    int64_t work = (int64_t)g->m * g->n * g->k;
    #pragma omp parallel if (work >= (packed || g->b_kmajor ? PARALLEL_MIN_WORK : DOT_PARALLEL_MIN_WORK))
#endif
    {
        int tid = 0, nt = 1, i0, i1, j0, j1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        nt = omp_get_num_threads();
#endif
        thread_rectangle(g, tid, nt, &i0, &i1, &j0, &j1);
        if (i0 < i1 && j0 < j1) gemm_rectangle(g, i0, i1, j0, j1, packed);
    }
}

/* ---- the three products of a linear layer ------------------------------------------- */

/* out (N, OC) = inp (N, C) @ weight (OC, C)^T.  Overwrites out. */
void matmul_forward(float *restrict out, const float *restrict inp,
                    const float *restrict weight, int N, int C, int OC) {
    gemm_t g = {N, OC, C, inp, C, 0, weight, C, 0, out, OC, 0};
    gemm(&g);
}

/* dinp (N, C) = dout (N, OC) @ weight (OC, C).  Overwrites dinp. */
void matmul_backward_input(float *restrict dinp, const float *restrict dout,
                           const float *restrict weight, int N, int C, int OC) {
    gemm_t g = {N, C, OC, dout, OC, 0, weight, C, 1, dinp, C, 0};
    gemm(&g);
}

/* dweight (OC, C) += dout (N, OC)^T @ inp (N, C).  Accumulates into dweight.
 * The reduction runs over N, so threads split OC x C (never N): no two threads write
 * the same element, and no partial sums need combining. */
void matmul_backward_weight(float *restrict dweight, const float *restrict dout,
                            const float *restrict inp, int N, int C, int OC) {
    gemm_t g = {OC, C, N, dout, OC, 1, inp, C, 1, dweight, C, 1};
    gemm(&g);
}
