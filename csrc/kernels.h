/*
 * kernels.h — every function the C kernel library exports.
 *
 * This header is the single source of truth: csrc/build.py feeds it to cffi's cdef,
 * and every .c file includes it. Conventions:
 *   - outputs first, then inputs, then sizes;
 *   - all tensors are float32, C-contiguous, row-major, and never alias one another
 *     (the wrappers in minillm/nn/kernels/ check this before C sees a pointer);
 *   - each kernel's comment says whether it overwrites or accumulates its outputs.
 * Preprocessor lines are not allowed here (cffi's cdef cannot parse them), so the
 * header guard lives in the .c files' include order instead: include it once.
 */

/* ---- runtime ------------------------------------------------------------------ */
int minillm_get_num_threads(void);          /* OpenMP threads the kernels use (1 without OpenMP) */
void minillm_set_num_threads(int n);        /* n >= 1 */
int minillm_has_openmp(void);               /* 1 if compiled with OpenMP */
const char *minillm_simd_level(void);       /* "avx512", "avx2" or "scalar": chosen at build time */
int minillm_simd_width(void);               /* floats per vector: 16, 8 or 1 */
float minillm_fma_probe(long n);            /* n rounds of 12 register-only vector FMAs */

/* ---- matmul (csrc/matmul.c): a linear layer y = x W^T with weight W (OC, C) ---- */

/* out (N, OC) = inp (N, C) @ weight(OC, C)^T.  Overwrites out. */
void matmul_forward(float *out, const float *inp, const float *weight, int N, int C, int OC);

/* dinp (N, C) = dout (N, OC) @ weight (OC, C).  Overwrites dinp. */
void matmul_backward_input(float *dinp, const float *dout, const float *weight,
                           int N, int C, int OC);

/* dweight (OC, C) += dout (N, OC)^T @ inp (N, C).  Accumulates into dweight. */
void matmul_backward_weight(float *dweight, const float *dout, const float *inp,
                            int N, int C, int OC);

/* ---- causal self-attention (csrc/attention*.c) ------------------------------------
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

/* ==== byte-level BPE tokenizer (csrc/bpe_split.c, bpe.c, bpe_train.c; owner: minillm/tokenizer/fast.py) ====
 * Text is UTF-8 bytes; ids are int. pattern 1 = GPT-4's split regex, 2 = GPT-2's, matched
 * by hand; cp_class (n_class entries) holds each code point's class bits: 1 \p{L}, 2 \p{N},
 * 4 \s (built with the regex package, so both paths agree). Documents are packed in one
 * buffer: document d is text[doc_ends[d-1] .. doc_ends[d]) with doc_ends[-1] = 0.
 * Functions returning a count return -1 when out of memory. */
typedef struct bpe_model bpe_model;       /* merge table: pair (a, b) -> rank, rank -> new id */
typedef struct bpe_cache bpe_cache;       /* chunk -> ids cache; one per thread */
typedef struct bpe_trainer bpe_trainer;   /* distinct chunks + incremental pair counts */

/* ends (one per chunk, capacity n) = end offset of each pre-split chunk of text (n bytes). Returns the chunk count. */
long long bpe_split(long long *ends, const unsigned char *text, long long n, int pattern,
                    const unsigned char *cp_class, int n_class);

/* The end offset of the pre-split chunk that starts at offset i of text (n bytes), i < n. */
long long bpe_chunk_end(const unsigned char *text, long long i, long long n, int pattern,
                        const unsigned char *cp_class, int n_class);

/* byte_ids (256): token of each byte; merge r turns pairs (2r, 2r+1) into new_ids[r]. NULL when out of memory. */
bpe_model *bpe_model_new(const int *byte_ids, const int *pairs, const int *new_ids, int n_merges);
void bpe_model_free(bpe_model *m);
bpe_cache *bpe_cache_new(void);
void bpe_cache_free(bpe_cache *c);

/* Split and encode documents: out (capacity = total bytes) gets the ids, out_ends (n_docs)
 * the end of each document's ids. cache may be NULL. Returns the number of ids. */
long long bpe_encode(int *out, long long *out_ends, const bpe_model *m, bpe_cache *cache,
                     const unsigned char *text, const long long *doc_ends, int n_docs,
                     int pattern, const unsigned char *cp_class, int n_class);

/* Encode chunks already split elsewhere (custom patterns): chunk c is text[ends[c-1] .. ends[c]). */
long long bpe_encode_chunks(int *out, const bpe_model *m, bpe_cache *cache,
                            const unsigned char *text, const long long *ends, long long n_chunks);

bpe_trainer *bpe_trainer_new(void);
void bpe_trainer_free(bpe_trainer *t);
/* Split documents and count their distinct chunks. 0 ok, -1 out of memory, -2 after merging began, -3 chunk over 2 GB. */
int bpe_trainer_count(bpe_trainer *t, const unsigned char *text, const long long *doc_ends, int n_docs,
                      int pattern, const unsigned char *cp_class, int n_class);
/* Add n distinct chunks split elsewhere: chunk c is data[ends[c-1] .. ends[c]), seen counts[c] times. Codes as above. */
int bpe_trainer_add(bpe_trainer *t, const unsigned char *data, const long long *ends,
                    const long long *counts, long long n);
long long bpe_trainer_num_chunks(const bpe_trainer *t);
/* Learn up to n more merges (ids 256, 257, ... in order): pairs (n, 2), counts (n) = the
 * pair's count when merged. Highest count first, ties to the smallest (a, b). Returns how
 * many were learned (fewer when no pair is left), -1 when out of memory. */
int bpe_trainer_merge(bpe_trainer *t, int *pairs, long long *counts, int n);

/* ==== elementwise layers (csrc/layers.c; owner: minillm/nn/kernels/layers.py) ====
 * Row-parallel; results do not depend on the thread count. N rows (tokens), C channels,
 * H SwiGLU hidden size, V vocab; B batch, T time, NH query heads, NKV key/value heads,
 * HD head dim (even). Functions returning int return 0, or -1 when out of memory. */

/* RMSNorm: out (N, C) = inp * rstd * weight (C), rstd (N) = 1 / sqrt(mean(inp^2) + eps)
 * over each row.  Overwrites out and rstd. */
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight,
                     int N, int C, float eps);

/* RMSNorm backward from dout (N, C) and the forward's inp, weight, rstd:
 * dinp (N, C) = rstd * dout * weight - inp * rstd^3 * rowsum(dout * weight * inp) / C,
 * dweight (C) = colsum(dout * inp * rstd).  Overwrites dinp and dweight. */
int rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                     const float *weight, const float *rstd, int N, int C);

/* SwiGLU: out (N, H) = silu(g) * u where each row of gu (N, 2H) is [g | u].  Overwrites out. */
void swiglu_forward(float *out, const float *gu, int N, int H);

/* SwiGLU backward: dgu (N, 2H) = [dout * u * silu'(g) | dout * silu(g)] from dout (N, H)
 * and the forward's gu (the sigmoid is recomputed).  Overwrites dgu. */
void swiglu_backward(float *dgu, const float *dout, const float *gu, int N, int H);

/* Split the fused projection qkv (B, T, (NH + 2 NKV) * HD) into heads q (B, NH, T, HD),
 * k and v (B, NKV, T, HD), rotating q and k by RoPE (interleaved pairs): freqs (T, HD) holds
 * (cos, sin) of pair i's angle at position t in freqs[t, 2i], freqs[t, 2i + 1].
 * Overwrites q, k, v. */
void rope_split_qkv(float *q, float *k, float *v, const float *qkv, const float *freqs,
                    int B, int T, int NH, int NKV, int HD);

/* Backward of rope_split_qkv: dqkv (B, T, (NH + 2 NKV) * HD) from dq (B, NH, T, HD), dk and
 * dv (B, NKV, T, HD), q and k rotated back.  Overwrites dqkv. */
void rope_split_qkv_backward(float *dqkv, const float *dq, const float *dk, const float *dv,
                             const float *freqs, int B, int T, int NH, int NKV, int HD);

/* out (B, T, NH * HD) = inp (B, NH, T, HD) with the head and time axes swapped.  Overwrites out. */
void merge_heads(float *out, const float *inp, int B, int NH, int T, int HD);

/* out (B, NH, T, HD) = inp (B, T, NH * HD) with the time and head axes swapped.  Overwrites out. */
void split_heads(float *out, const float *inp, int B, int NH, int T, int HD);

/* Softmax cross-entropy, in place: row n of logits (N, V) becomes
 * (softmax(logits_n) - onehot(targets_n)) * coef_n, and losses (N) gets
 * logsumexp(logits_n) - logits_n[targets_n].  Rows with coef_n == 0 become 0 with loss 0
 * (their target is not read); others need 0 <= targets_n < V.  Overwrites losses and logits. */
void cross_entropy_forward(float *losses, float *logits, const int *targets, const float *coef,
                           int N, int V);

/* Embedding backward: dweight[idx[n]] (rows of (V, C)) += dout[n] (N, C), rows in order;
 * 0 <= idx[n] < V.  Accumulates into dweight. */
void embedding_backward(float *dweight, const float *dout, const int *idx, int N, int C);

/* ==== AdamW and the gradient's passes (csrc/optim.c; owner: minillm/nn/kernels/optim.py) ====
 * Flat float32 buffers of n values (minillm/nn/optim.py keeps all parameters in one).
 * Results do not depend on the thread count. */

/* One AdamW step, in place on p, m, v (n) from g (n): for every i
 *     m = b1 m + g1 g;  v = b2 v + g2 g^2;  p = p * d - step_size * m / (sqrt(v) + eps_hat)
 * with d = decay for i < n_decay and 1 otherwise, each operation rounded to float32 in
 * this order (no FMA), exactly as the NumPy twin.  Overwrites p, m, v (read and written). */
void adamw_update(float *p, float *m, float *v, const float *g, long long n, long long n_decay,
                  float b1, float b2, float g1, float g2, float eps_hat, float step_size,
                  float decay);

/* Sum of x (n) squared, in double, added in fixed blocks and lanes (a function of n only). */
double sum_squares(const float *x, long long n);

/* dst (n) = src (accumulate == 0; overwrites dst) or dst + src (accumulate == 1; accumulates
 * into dst); returns sum_squares of the new dst, bit-identical to calling it afterwards. */
double grad_store(float *dst, const float *src, long long n, int accumulate);

/* ==== one decode step of the whole model (csrc/decode.c; wrapper: minillm/nn/kernels/decode.py) ====
 * The weights as minillm/generate/ lays them out for inference (run.c's
 * TransformerWeights): per layer, pointers to fused matrices with the RMSNorm weights
 * folded into their columns, so the step's RMSNorms multiply by `ones`. QD = NH * HD,
 * KD = NKV * HD. */
typedef struct decode_weights {
    int n_layer, C, NH, NKV, HD, H, V;  /* layers, channels, query / KV heads, head dim (even),
                                           SwiGLU hidden size, vocab */
    int P;                              /* positions in the RoPE table */
    float eps;                          /* RMSNorm epsilon */
    const float *const *wqkv;           /* n_layer pointers to (QD + 2KD, C): [wq; wk; wv] */
    const float *const *wo;             /* n_layer pointers to (C, QD) */
    const float *const *w_gu;           /* n_layer pointers to (2H, C): [w_gate; w_up] */
    const float *const *w_down;         /* n_layer pointers to (C, H) */
    const float *head;                  /* (V, C), the final norm folded in */
    const float *rope;                  /* (P, HD/2, 2): (cos, sin) of pair i's angle at position p */
    const float *ones;                  /* (C) all 1: the RMSNorm weight */
} decode_weights;

/* The step's buffers for up to B rows (run.c's RunState); all are overwritten except x. */
typedef struct decode_buffers {
    float *x;                           /* (B, C) residual stream: in, the token embeddings */
    float *h;                           /* (B, C) x * rstd, a matmul's input */
    float *rstd;                        /* (B) RMSNorm's 1 / rms */
    float *qkv;                         /* (B, QD + 2KD) queries | keys | values, before RoPE */
    float *q;                           /* (B, NH, HD) rotated queries */
    float *att;                         /* (B, NH, HD) attention output */
    float *o;                           /* (B, C) a block's residual update */
    float *gu;                          /* (B, 2H) gate | up */
    float *a;                           /* (B, H) silu(gate) * up */
    float *logits;                      /* (B, V) out */
} decode_buffers;

/* Feed one token per row through every layer and the head: row b's new token is at position
 * lengths[b] - 1; its rotated key and its value are written to kcache[i], vcache[i]
 * (Bmax >= B rows, (Bmax, NKV, S, HD) each, layer i) at that position, and its query attends
 * to positions 0 .. lengths[b] - 1 of row b. buf->logits (B, V) gets the logits.
 * Returns 0, or -1 with nothing written when some lengths[b] is outside 1 .. min(S, P). */
int decode_step(const decode_buffers *buf, float *const *kcache, float *const *vcache,
                const decode_weights *w, const int *lengths, int B, int S);
