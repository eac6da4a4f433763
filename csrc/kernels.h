/*
 * kernels.h — every function the C kernel library exports.
 *
 * This header is the single source of truth: csrc/build.py feeds it to cffi's cdef,
 * and every .c file includes it. Conventions (STYLE.md):
 *   - outputs first, then inputs, then sizes;
 *   - all tensors are float32, C-contiguous, row-major, and never alias one another
 *     (minillm/nn/kernels.py checks this before C sees a pointer);
 *   - each kernel's comment says whether it overwrites or accumulates its outputs.
 * Preprocessor lines are not allowed here (cffi's cdef cannot parse them), so the
 * header guard lives in the .c files' include order instead: include it once.
 */

/* ---- runtime ------------------------------------------------------------------ */
int minillm_get_num_threads(void);          /* OpenMP threads the kernels use (1 without OpenMP) */
void minillm_set_num_threads(int n);        /* n >= 1 */
int minillm_has_openmp(void);               /* 1 if compiled with OpenMP */
const char *minillm_simd_level(void);       /* "avx512", "avx2" or "scalar": chosen at build time */

/* ---- matmul (csrc/matmul.c): a linear layer y = x W^T with weight W (OC, C) ---- */

/* out (N, OC) = inp (N, C) @ weight(OC, C)^T.  Overwrites out. */
void matmul_forward(float *out, const float *inp, const float *weight, int N, int C, int OC);

/* dinp (N, C) = dout (N, OC) @ weight (OC, C).  Overwrites dinp. */
void matmul_backward_input(float *dinp, const float *dout, const float *weight,
                           int N, int C, int OC);

/* dweight (OC, C) += dout (N, OC)^T @ inp (N, C).  Accumulates into dweight. */
void matmul_backward_weight(float *dweight, const float *dout, const float *inp,
                            int N, int C, int OC);

/* ---- causal self-attention (csrc/attention.c) ------------------------------------
 * q (B, NH, T, HD); k, v (B, NKV, T, HD); NH % NKV == 0 and query head h reads KV head
 * h / (NH / NKV) (grouped-query attention). Scores are scaled by 1/sqrt(HD).
 * lse (B, NH, T) is the natural-log logsumexp of each row of scaled, masked scores.
 */

/* out (B, NH, T, HD), lse (B, NH, T).  Overwrites both. */
void attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                       int B, int NH, int NKV, int T, int HD);

/* dq (B, NH, T, HD), dk, dv (B, NKV, T, HD) from dout (B, NH, T, HD) and the forward's
 * q, k, v, out, lse.  Overwrites dq, dk, dv. */
void attention_backward(float *dq, float *dk, float *dv,
                        const float *dout, const float *q, const float *k, const float *v,
                        const float *out, const float *lse,
                        int B, int NH, int NKV, int T, int HD);

/* Prefill against a KV cache: q (B, NH, Tq, HD) holds positions pos0 .. pos0+Tq-1;
 * kcache, vcache (B, NKV, S, HD) hold keys/values for positions 0 .. pos0+Tq-1 (S is the
 * cache capacity, S >= pos0 + Tq).  Query i attends to cache positions 0 .. pos0+i.
 * out (B, NH, Tq, HD).  Overwrites out. */
void attention_prefill(float *out, const float *q, const float *kcache, const float *vcache,
                       int B, int NH, int NKV, int Tq, int pos0, int S, int HD);

/* Decode one position per sequence: q (B, NH, HD); row b attends to cache positions
 * 0 .. lengths[b]-1 of kcache, vcache (B, NKV, S, HD), 1 <= lengths[b] <= S.
 * out (B, NH, HD).  Overwrites out. */
void attention_decode(float *out, const float *q, const float *kcache, const float *vcache,
                      const int *lengths, int B, int NH, int NKV, int S, int HD);
