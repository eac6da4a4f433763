/*
 * attention_backward.c — gradients of causal attention: dq, dk, dv from dout and the
 * forward's q, k, v, out, lse.  The scheme (two passes, or one fused pass) is explained at
 * the top of attention.c; the products are att_gemm (attention_gemm.c), the helpers
 * attention_common.c's.
 *
 * Per (query tile, key tile) pair, with keys in the SIMD lanes of every (rows, KT) block:
 *     S  = Q K^T            (needs the packed K^T)      P  = e^(S / sqrt(HD) - lse)
 *     dP = dO V^T           (needs the packed V^T)      dS = P (dP - D) / sqrt(HD)
 *     dV += P^T dO,  dK += dS^T Q   (into per-thread (KT, HD) accumulators)
 *     dQ += dS K                    (straight into the dq rows the item owns)
 * P and dS never exist beyond the (QT, KT) block of one pair.
 */
#include <string.h>
#include "kernels.h"
#include "attention_common.h"
#include "simd.h"

/* Everything one call shares: inputs, outputs, the packed K^T and V^T, D = rowsum(dO * O). */
struct bwd {
    float *dq, *dk, *dv;
    const float *dout, *q, *k, *lse, *D, *kt, *vt;
    int NH, NKV, T, HD, group, ntiles;
    size_t psize;   /* floats of one head's packed K^T */
};

/* p (rows, KT) <- P and ds (rows, KT) <- dS for the rows of the chunks (row i at position
 * p0 + i) against the key tile at j0 (nk keys); both are zero past each row's last key, up
 * to nk.  On entry p holds S and ds holds dP for the columns each chunk computed.  lse, D:
 * the tile's rows of the saved logsumexp and of rowsum(dO * O). */
static void probabilities_and_dscores(float *restrict p, float *restrict ds,
                                      const float *restrict lse, const float *restrict D,
                                      const int *start, const int *cols, int nchunks,
                                      int p0, int j0, int nk, int HD) {
    const float scale = 1.0f / sqrtf((float)HD);
    vec vscale = vset1(scale);
    for (int c = 0; c < nchunks; c++) {
        for (int i = start[c]; i < start[c + 1]; i++) {
            int n = imin(cols[c], p0 + i + 1 - j0);
            float *pr = p + i * KT, *dsr = ds + i * KT;
            att_exp_row(pr, n, nk, scale, lse[i]);   /* P = e^(S*scale - lse), 0 past n */
            vec d = vset1(D[i]);
            for (int j = 0; j < nk; j += VW) {
                vmask m = vfirst(n - j), inside = vfirst(nk - j);
                vec dp = vload_m(dsr + j, m);         /* dP lanes past n may be stale */
                vec g = vkeep(vmul(vmul(vload_m(pr + j, m), vsub(dp, d)), vscale), m);
                vstore_m(dsr + j, g, inside);
            }
        }
    }
}

/* One (query tile qt, key tile kt) pair of head h of batch row b: recomputes P and dS, then
 * adds dS^T Q and P^T dO into dkacc, dvacc (KT, HD) when they are not NULL and dS K into
 * the tile's dq rows when want_dq.  s: (2 QT KT) scratch. */
static void backward_pair(const struct bwd *a, int b, int h, int qt, int ktile, float *s,
                          float *dkacc, float *dvacc, int want_dq) {
    const int HD = a->HD, p0 = qt * QT, nq = imin(QT, a->T - p0);
    const int j0 = ktile * KT, nk = imin(KT, a->T - j0), i0 = imax(0, j0 - p0);
    size_t row = ((size_t)b * a->NH + h) * a->T + p0, kv = (size_t)b * a->NKV + h / a->group;
    const float *q = a->q + row * HD, *dO = a->dout + row * HD;
    const float *kt = a->kt + kv * a->psize + (size_t)ktile * HD * KT;
    const float *vt = a->vt + kv * a->psize + (size_t)ktile * HD * KT;
    float *p = s, *ds = s + QT * KT;
    int start[QT / CHUNK + 2], cols[QT / CHUNK + 2];
    int nc = att_split_rows(start, cols, i0, nq, p0, j0, nk);
    for (int c = 0; c < nc; c++) {
        int r0 = start[c], rows = start[c + 1] - r0;
        att_gemm(p + r0 * KT, KT, q + (size_t)r0 * HD, 1, HD, kt, KT, rows, cols[c], HD, 0);
        att_gemm(ds + r0 * KT, KT, dO + (size_t)r0 * HD, 1, HD, vt, KT, rows, cols[c], HD, 0);
    }
    probabilities_and_dscores(p, ds, a->lse + row, a->D + row, start, cols, nc, p0, j0, nk, HD);
    if (dkacc) {
        /* key chunk [ja, jb) is seen by rows >= j0 + ja - p0 only: skip the zero rows */
        int diagonal = j0 + nk - 1 - p0 > i0;
        for (int ja = 0, jb; ja < nk; ja = jb) {
            jb = diagonal ? imin(nk, ja + CHUNK) : nk;
            int r0 = imax(i0, j0 + ja - p0);
            if (r0 >= nq) break;                     /* keys past the tile's last query */
            att_gemm(dvacc + (size_t)ja * HD, HD, p + r0 * KT + ja, KT, 1, dO + (size_t)r0 * HD,
                     HD, jb - ja, HD, nq - r0, 1);
            att_gemm(dkacc + (size_t)ja * HD, HD, ds + r0 * KT + ja, KT, 1, q + (size_t)r0 * HD,
                     HD, jb - ja, HD, nq - r0, 1);
        }
    }
    if (want_dq) {
        const float *k = a->k + (kv * a->T + j0) * HD;
        for (int c = 0; c < nc; c++)
            att_gemm(a->dq + (row + start[c]) * HD, HD, ds + start[c] * KT, 1, KT, k, HD,
                     start[c + 1] - start[c], HD, cols[c], 1);
    }
}

/* dk, dv rows of key tile `ktile` of (b, kvh): the sum over the group's query heads and the
 * query tiles at or after the key tile.  With fused, also the dq contributions of those
 * pairs (the caller owns the group's dq rows).  s: per-thread scratch. */
static void backward_key_tile(const struct bwd *a, int b, int kvh, int ktile, float *s,
                              int fused) {
    const int HD = a->HD, j0 = ktile * KT, nk = imin(KT, a->T - j0);
    float *dkacc = s + 2 * QT * KT, *dvacc = dkacc + (size_t)KT * HD;
    memset(dkacc, 0, sizeof(float) * 2 * KT * HD);
    for (int h = kvh * a->group; h < (kvh + 1) * a->group; h++)
        for (int qt = j0 / QT; qt < a->ntiles; qt++)
            backward_pair(a, b, h, qt, ktile, s, dkacc, dvacc, fused);
    size_t off = (((size_t)b * a->NKV + kvh) * a->T + j0) * HD;
    memcpy(a->dk + off, dkacc, sizeof(float) * nk * HD);
    memcpy(a->dv + off, dvacc, sizeof(float) * nk * HD);
}

/* dq rows of query tile qt of head h of batch row b: the key tiles up to the diagonal. */
static void backward_query_tile(const struct bwd *a, int b, int h, int qt, float *s) {
    int p0 = qt * QT, nq = imin(QT, a->T - p0);
    memset(a->dq + (((size_t)b * a->NH + h) * a->T + p0) * a->HD, 0,
           sizeof(float) * nq * a->HD);
    for (int ktile = 0; ktile * KT < p0 + nq; ktile++)
        backward_pair(a, b, h, qt, ktile, s, NULL, NULL, 1);
}

/* Both passes over the shared state a; s: one scratch block of `per` floats per thread. */
static void backward_passes(const struct bwd *a, int B, float *s, size_t per) {
    const int nkv = B * a->NKV, nqt = a->ntiles, nkt = (a->T + KT - 1) / KT;
    const int th = minillm_get_num_threads();
    /* Fused costs 5 products per pair against 7 for two passes, but only has B*NKV items:
     * take it when its less balanced split still wins, ceil(n/th)*5 <= n*7/th. */
    if (5L * th * ((nkv + th - 1) / th) <= 7L * nkv) {
        #pragma omp parallel for schedule(dynamic, 1)
        for (int item = 0; item < nkv; item++) {
            int b = item / a->NKV, kvh = item % a->NKV;
            size_t dq0 = ((size_t)b * a->NH + (size_t)kvh * a->group) * a->T * a->HD;
            memset(a->dq + dq0, 0, sizeof(float) * a->group * a->T * a->HD);
            for (int ktile = 0; ktile < nkt; ktile++)
                backward_key_tile(a, b, kvh, ktile, s + att_thread_id() * per, 1);
        }
        return;
    }
    #pragma omp parallel for schedule(dynamic, 1)
    for (int item = 0; item < nkv * nkt; item++)     /* pass 1: dk, dv */
        backward_key_tile(a, item / nkt / a->NKV, item / nkt % a->NKV, item % nkt,
                          s + att_thread_id() * per, 0);
    #pragma omp parallel for schedule(dynamic, 1)
    for (int item = 0; item < B * a->NH * nqt; item++) {  /* pass 2: dq, heaviest first */
        int bh = item / nqt, qt = nqt - 1 - item % nqt;
        backward_query_tile(a, bh / a->NH, bh % a->NH, qt, s + att_thread_id() * per);
    }
}

/* dq (B, NH, T, HD), dk, dv (B, NKV, T, HD) from dout (B, NH, T, HD) and the forward's q, k,
 * v, out, lse.  Overwrites dq, dk, dv.  (Out of memory for the scratch: all three are NaN.) */
void attention_backward(float *restrict dq, float *restrict dk, float *restrict dv,
                        const float *restrict dout, const float *restrict q,
                        const float *restrict k, const float *restrict v,
                        const float *restrict out, const float *restrict lse,
                        int B, int NH, int NKV, int T, int HD) {
    if (B <= 0 || NH <= 0 || T <= 0 || HD <= 0) return;    /* empty: nothing to write */
    size_t psize = att_packed_size(T, HD), nkv = (size_t)B * NKV, rows = (size_t)B * NH * T;
    size_t per = att_round(2 * (size_t)QT * KT + 2 * (size_t)KT * HD);   /* p, ds, dk, dv */
    size_t pk = att_round(nkv * psize), pd = att_round(rows);
    float *kt = att_workspace(2 * pk + pd + per * minillm_get_num_threads());
    if (kt) {
        float *vt = kt + pk, *D = vt + pk, *s = D + pd;
        size_t group_rows = (size_t)(NH / NKV) * T;        /* query rows per KV head */
        #pragma omp parallel for schedule(static)
        for (size_t bk = 0; bk < nkv; bk++) {
            att_pack_transposed(kt + bk * psize, k + bk * T * HD, T, HD);
            att_pack_transposed(vt + bk * psize, v + bk * T * HD, T, HD);
            for (size_t r = bk * group_rows; r < (bk + 1) * group_rows; r++) {
                vec acc = vzero();                            /* D = rowsum(dout * out) */
                for (int d = 0; d < HD; d += VW) {
                    vmask m = vfirst(HD - d);
                    acc = vfma(vload_m(dout + r * HD + d, m), vload_m(out + r * HD + d, m), acc);
                }
                D[r] = vhsum(acc);
            }
        }
        struct bwd a = {.dq = dq, .dk = dk, .dv = dv, .dout = dout, .q = q, .k = k, .lse = lse,
                        .D = D, .kt = kt, .vt = vt, .NH = NH, .NKV = NKV, .T = T, .HD = HD,
                        .group = NH / NKV, .ntiles = (T + QT - 1) / QT, .psize = psize};
        backward_passes(&a, B, s, per);
    } else {
        for (size_t i = 0; i < rows * HD; i++) dq[i] = NAN;
        for (size_t i = 0; i < nkv * T * HD; i++) dk[i] = dv[i] = NAN;
    }
    att_workspace_done(kt);
}
