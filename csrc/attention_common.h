/*
 * attention_common.h — what the attention files share (not exported through cffi;
 * csrc/kernels.h is the public contract).
 *
 * The files call each other only through this header, in one direction:
 *   attention.c (forward, prefill, decode)  and  attention_backward.c (gradients)
 *       call  attention_gemm.c (att_gemm, the one tile product)
 *       and   attention_common.c (K^T packing, the workspace, row softmax, the row kernel);
 *   the last two call nothing but simd.h's inline vocabulary.
 *
 * Layout conventions used by every helper here:
 *   - a "tile" of keys is KT consecutive key positions; score tiles are (rows, KT) with the
 *     keys in the SIMD lanes;
 *   - a packed K^T (or V^T) of one head is a sequence of tiles, each (HD, KT) row-major and
 *     zero-padded past the last key: packed[t][d][j] = k[t*KT + j][d].  Tile-contiguous so
 *     that walking d inside one tile never strides by the whole sequence (which aliases the
 *     L1 cache sets when T*4 bytes is a multiple of 4 KiB).
 */
#ifndef MINILLM_ATTENTION_COMMON_H
#define MINILLM_ATTENTION_COMMON_H

#include <stddef.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Tile sizes (-DKT=... -DQT=... to experiment; KT a multiple of 16). 64 x 64 keeps a tile
 * pair's blocks (Q rows, K^T, V, S: 16 KiB each at HD = 64) near L1. */
#ifndef KT
#define KT 64   /* keys per tile: the columns (SIMD lanes) of a score tile */
#endif
#ifndef QT
#define QT 64   /* query rows per tile: the unit of parallel work */
#endif
#define CHUNK 16   /* rows (or keys) per chunk on a diagonal tile */

/* The calling thread's index inside a parallel region (0 without OpenMP): which per-thread
 * scratch block it uses.  The thread count is minillm_get_num_threads() (runtime.c). */
static inline int att_thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* ---- attention_gemm.c ---- */

/* C (R, N) = [C +] A' B where A'[r][k] = A[k*sak + r*sar] and B (K, N) has row stride ldb.
 * Row stride of C is ldc.  accumulate = 0 overwrites C, 1 adds to it.  Any R, N, K >= 0.
 * The one matmul of the file: every product in attention is an instance of it (the
 * strides let A be read transposed without copying it). */
void att_gemm(float *C, ptrdiff_t ldc, const float *A, ptrdiff_t sak, ptrdiff_t sar,
              const float *B, ptrdiff_t ldb, int R, int N, int K, int accumulate);

/* ---- attention_common.c ---- */

/* packed (ceil(n/KT) tiles of (HD, KT)) = x (n, HD) transposed per tile, zero-padded. */
void att_pack_transposed(float *packed, const float *x, int n, int HD);

/* Number of floats att_pack_transposed writes for n rows. */
size_t att_packed_size(int n, int HD);

/* A call's scratch: nfloats floats, 64-byte aligned, or NULL when out of memory; give it
 * back with att_workspace_done (which keeps it for the next call). att_round(n) rounds a
 * part's size up so that the next part stays 64-byte aligned. */
float *att_workspace(size_t nfloats);
void att_workspace_done(float *ws);
size_t att_round(size_t nfloats);

/* Softmax numerators of one score row, in place: s[0..n) -> exp(s * scale - shift), and 0
 * in s[n..ncols).  Returns the sum of the n exponentials. */
float att_exp_row(float *s, int n, int ncols, float scale, float shift);

/* Scaled max of s[0..n): scale * max_j s[j] (n >= 1). */
float att_max_row(const float *s, int n, float scale);

/* Rows [i0, nq) of a query tile whose row i sits at position p0 + i meet the key tile
 * [j0, j0 + nk): row i sees n_i = min(nk, p0 + i + 1 - j0) of its keys.  Splits the rows into
 * chunks: those seeing all nk keys form one chunk, the diagonal rows before them chunks of
 * CHUNK rows.  Chunk c is rows [start[c], start[c+1]) and cols[c] = keys seen by its last
 * row (all its products need).  Returns the number of chunks, at most QT / CHUNK + 1; start
 * and cols need QT / CHUNK + 2 entries. */
int att_split_rows(int *start, int *cols, int i0, int nq, int p0, int j0, int nk);

/* x (n) *= a. */
void att_scale_row(float *x, int n, float a);

/* One query q (HD) against keys/values 0..n-1 (rows of k, v with stride HD), n >= 1:
 * writes out (HD) and returns the row's lse: decode, short prefills, and the forward when
 * the tiles' scratch cannot be allocated. */
float att_attend_row(float *out, const float *q, const float *k, const float *v, int n, int HD);

/* Test hook (not in kernels.h; the tests reach it with ffi.dlopen): out[i] = vexp(x[i]). */
void minillm_attention_exp(float *out, const float *x, int n);

#endif
