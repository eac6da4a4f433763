/*
 * attention.c — causal self-attention: the forward, the prefill against a KV cache, and the
 * one-query decode (csrc/kernels.h: attention_forward, attention_prefill, attention_decode).
 *
 * The files: attention.c (tiles; the three entry points that read keys forward),
 * attention_backward.c (gradients), attention_gemm.c (att_gemm, the one tile product),
 * attention_common.c (K^T packing, the workspace, row softmax helpers, the row kernel),
 * simd.h (vectors, exp). The first two call the last three through attention_common.h.
 *
 * Shapes: B batch, NH query heads, NKV key/value heads (query head h reads KV head
 * h / (NH/NKV)), T time, HD head dim; scores s = q.k / sqrt(HD), query i sees keys 0..i.
 *
 * Tiling. A work item is one query tile: QT consecutive query rows of one (b, h). It walks
 * the key tiles (KT keys each) up to its diagonal; per tile it computes the score block
 * S = Q K^T (QT, KT) into a per-thread buffer, turns it into probabilities, and adds P V to
 * its output rows. Keys sit in the SIMD lanes of S, so S comes from a broadcast-FMA
 * product with K^T, which is packed once per call (attention_internal.h), tile by tile.
 * Only that (QT, KT) block per thread ever exists: never a (T, T) matrix. OpenMP splits the
 * (b, h, query tile) items (each writes only its own rows of out and lse), heaviest first.
 * On the diagonal tile, rows see a growing number of keys: those rows go in chunks of 16
 * whose products stop at the last key the chunk can see.
 *
 * Online softmax. Each row keeps a running max m and sum l of e^(s - m), and an output
 * accumulator o = sum_j e^(s_j - m) v_j. A new key tile with row max m' > m rescales the
 * old state by alpha = e^(m - m'):  l = alpha l + sum_tile e^(s - m'),  o = alpha o + P V.
 * At the end out = o / l and lse = m + log l (saved for the backward).
 *
 * Backward (attention_backward.c). With P = e^(S - lse) recomputed per tile from the saved
 * lse and D = rowsum(dout * out):  dV = P^T dO,  dP = dO V^T,  dS = P (dP - D) / sqrt(HD),
 * dQ = dS K,  dK = dS^T Q.  Two passes so that every write has one owner, no atomics:
 *   pass 1, parallel over (b, kv head, key tile): dK, dV of that tile, summing over the
 *           query heads of the group and the query tiles at or after the key tile;
 *   pass 2, parallel over (b, head, query tile): dQ of that tile, over the key tiles up
 *           to the diagonal.
 * When there are enough (b, kv head) items for the threads, one fused pass per (b, kv head)
 * does both (it owns the dQ rows of its group too) and skips recomputing S and dP.
 *
 * Decode (one query per sequence) uses a row kernel instead (attention_common.c): a lone
 * query cannot fill the key lanes of a tile. Prefill with very few queries takes it too.
 */
#include <string.h>
#include "kernels.h"
#include "attention_common.h"
#include "simd.h"

#define PREFILL_ROWS_MIN 4 /* fewer new queries than this: row kernel instead of tiles */
#define PREFILL_PARALLEL_MIN (1L << 17)  /* multiply-adds worth waking the threads for */
#ifndef DECODE_PARALLEL_MIN
#define DECODE_PARALLEL_MIN (1L << 14)  /* multiply-adds worth waking the threads for: in a
                                         * decode step K and V come from L3 (the weights
                                         * flushed L2), and two cores read them faster */
#endif

/* The online-softmax step of forward_tile for rows [i0, nq) and one key tile: s (rows, KT)
 * holds raw scores; turns them into p = e^(s*scale - m') (0 past each row's keys) and
 * updates m, l and rescales the out rows by alpha = e^(m - m'). */
static void online_softmax(float *restrict out, float *restrict s, float *restrict m,
                           float *restrict l, const int *start, const int *cols, int nchunks,
                           int p0, int j0, int HD) {
    const float scale = 1.0f / sqrtf((float)HD);
    int i0 = start[0], nq = start[nchunks];
    float alpha[QT], mnew[QT];
    for (int c = 0; c < nchunks; c++) {
        for (int i = start[c]; i < start[c + 1]; i++) {
            float mt = att_max_row(s + i * KT, imin(cols[c], p0 + i + 1 - j0), scale);
            mnew[i] = mt > m[i] ? mt : m[i];
            alpha[i] = m[i] - mnew[i];
        }
    }
    for (int i = i0; i < nq; i += VW) {                /* alpha = e^(m - m'), VW rows at once */
        vmask mk = vfirst(nq - i);
        vstore_m(alpha + i, vexp(vload_m(alpha + i, mk)), mk);
    }
    for (int c = 0; c < nchunks; c++) {
        for (int i = start[c]; i < start[c + 1]; i++) {
            int n = imin(cols[c], p0 + i + 1 - j0);
            l[i] = l[i] * alpha[i] + att_exp_row(s + i * KT, n, cols[c], scale, mnew[i]);
            if (alpha[i] != 1.0f) att_scale_row(out + (size_t)i * HD, HD, alpha[i]);
            m[i] = mnew[i];
        }
    }
}

/* One query tile of one head: q (nq, HD) holds positions p0 .. p0+nq-1 and row i attends to
 * keys 0 .. p0+i; kt is the head's packed K^T, v its values (>= p0+nq rows of HD).
 * Writes out (nq, HD) and, unless lse is NULL, lse (nq).  s: (QT, KT) scratch. */
static void forward_tile(float *restrict out, float *restrict lse, const float *restrict q,
                         const float *restrict kt, const float *restrict v, int nq, int p0,
                         int HD, float *restrict s) {
    float m[QT], l[QT];
    int start[QT / CHUNK + 2], cols[QT / CHUNK + 2];
    for (int i = 0; i < nq; i++) { m[i] = -INFINITY; l[i] = 0.0f; }
    memset(out, 0, sizeof(float) * nq * HD);
    for (int j0 = 0; j0 < p0 + nq; j0 += KT) {
        int nk = imin(KT, p0 + nq - j0), i0 = imax(0, j0 - p0);  /* rows < i0: no key here */
        int nc = att_split_rows(start, cols, i0, nq, p0, j0, nk);
        const float *ktile = kt + (size_t)(j0 / KT) * HD * KT;
        for (int c = 0; c < nc; c++)                     /* S = Q K^T   (rows, cols) */
            att_gemm(s + start[c] * KT, KT, q + (size_t)start[c] * HD, 1, HD, ktile, KT,
                     start[c + 1] - start[c], cols[c], HD, 0);
        online_softmax(out, s, m, l, start, cols, nc, p0, j0, HD);
        for (int c = 0; c < nc; c++)                     /* out += P V  (rows, HD) */
            att_gemm(out + (size_t)start[c] * HD, HD, s + start[c] * KT, 1, KT,
                     v + (size_t)j0 * HD, HD, start[c + 1] - start[c], HD, cols[c], 1);
    }
    for (int i = 0; i < nq; i++) {
        att_scale_row(out + (size_t)i * HD, HD, 1.0f / l[i]);
        if (lse) lse[i] = m[i] + logf(l[i]);
    }
}

/* Attention of q (B, NH, Tq, HD) at positions pos0.. against k, v (B, NKV, S, HD) holding
 * positions 0 .. pos0+Tq-1: the forward (pos0 = 0, S = T, lse) and the prefill (lse NULL). */
static void attention_tiled(float *restrict out, float *restrict lse, const float *restrict q,
                            const float *restrict k, const float *restrict v, int B, int NH,
                            int NKV, int Tq, int pos0, int S, int HD) {
    int group = NH / NKV, L = pos0 + Tq, ntiles = (Tq + QT - 1) / QT;
    size_t psize = att_packed_size(L, HD), nitems = (size_t)B * NH * ntiles;
    size_t kt_size = att_round((size_t)B * NKV * psize);
    float *kt = att_workspace(kt_size + (size_t)minillm_get_num_threads() * QT * KT);
    if (!kt) {   /* out of memory: the row kernel needs no scratch */
        #pragma omp parallel for collapse(3) schedule(dynamic, 16)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++)
                for (int i = 0; i < Tq; i++) {
                    size_t row = ((size_t)b * NH + h) * Tq + i;
                    size_t kv = ((size_t)b * NKV + h / group) * S * HD;
                    float r = att_attend_row(out + row * HD, q + row * HD, k + kv, v + kv,
                                             pos0 + i + 1, HD);
                    if (lse) lse[row] = r;
                }
        return;
    }
    float *scratch = kt + kt_size;                      /* (threads, QT, KT) */
    #pragma omp parallel for schedule(static)
    for (int bk = 0; bk < B * NKV; bk++)
        att_pack_transposed(kt + (size_t)bk * psize, k + (size_t)bk * S * HD, L, HD);
    #pragma omp parallel for schedule(dynamic, 1)
    for (size_t item = 0; item < nitems; item++) {
        /* heaviest (last) query tiles first */
        int t = ntiles - 1 - (int)(item % ntiles), bh = (int)(item / ntiles);
        int b = bh / NH, kvh = bh % NH / group, i0 = t * QT, nq = imin(QT, Tq - i0);
        size_t row = (size_t)bh * Tq + i0, kv = (size_t)b * NKV + kvh;
        forward_tile(out + row * HD, lse ? lse + row : NULL, q + row * HD, kt + kv * psize,
                     v + kv * S * HD, nq, pos0 + i0, HD,
                     scratch + (size_t)att_thread_id() * QT * KT);
    }
    att_workspace_done(kt);
}

/* out (B, NH, T, HD), lse (B, NH, T) = causal attention of q (B, NH, T, HD) over
 * k, v (B, NKV, T, HD).  Overwrites both. */
void attention_forward(float *restrict out, float *restrict lse, const float *restrict q,
                       const float *restrict k, const float *restrict v,
                       int B, int NH, int NKV, int T, int HD) {
    if (B <= 0 || NH <= 0 || T <= 0) return;                 /* empty: nothing to write */
    if (HD <= 0) {                                           /* 0/0 scores, as NumPy's */
        for (size_t i = 0; i < (size_t)B * NH * T; i++) lse[i] = NAN;
        return;
    }
    attention_tiled(out, lse, q, k, v, B, NH, NKV, T, 0, T, HD);
}

/* out (B, NH, Tq, HD): q at positions pos0 .. pos0+Tq-1 against kcache, vcache
 * (B, NKV, S, HD) holding positions 0 .. pos0+Tq-1.  Overwrites out. */
void attention_prefill(float *restrict out, const float *restrict q,
                       const float *restrict kcache, const float *restrict vcache,
                       int B, int NH, int NKV, int Tq, int pos0, int S, int HD) {
    if (B <= 0 || NH <= 0 || Tq <= 0 || HD <= 0) return;    /* empty: nothing to write */
    if (Tq >= PREFILL_ROWS_MIN) {
        attention_tiled(out, NULL, q, kcache, vcache, B, NH, NKV, Tq, pos0, S, HD);
        return;
    }
    int group = NH / NKV;
    long work = (long)B * NH * Tq * (pos0 + Tq) * HD;
    #pragma omp parallel for collapse(3) if (work > PREFILL_PARALLEL_MIN)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < Tq; i++) {
                size_t row = ((size_t)b * NH + h) * Tq + i;
                size_t kv = ((size_t)b * NKV + h / group) * S * HD;
                att_attend_row(out + row * HD, q + row * HD, kcache + kv, vcache + kv,
                               pos0 + i + 1, HD);
            }
}

/* out (B, NH, HD): q (B, NH, HD), row b against the first lengths[b] positions of kcache,
 * vcache (B, NKV, S, HD).  Overwrites out. */
void attention_decode(float *restrict out, const float *restrict q,
                      const float *restrict kcache, const float *restrict vcache,
                      const int *restrict lengths, int B, int NH, int NKV, int S, int HD) {
    if (B <= 0 || NH <= 0 || HD <= 0) return;               /* empty: nothing to write */
    int group = NH / NKV;
    long work = 0;
    for (int b = 0; b < B; b++) work += (long)lengths[b] * NH * HD;
    #pragma omp parallel for collapse(2) schedule(dynamic, 1) if (work > DECODE_PARALLEL_MIN)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            size_t row = (size_t)b * NH + h, kv = ((size_t)b * NKV + h / group) * S * HD;
            att_attend_row(out + row * HD, q + row * HD, kcache + kv, vcache + kv, lengths[b],
                           HD);
        }
}
