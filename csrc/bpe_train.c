/*
 * bpe_train.c — byte-level BPE training: count unique chunks, then merge with incremental
 * pair counts. The Python twin is train_merges_py in minillm/tokenizer/train.py; the tests
 * check that both learn identical merges.
 *
 * Phase 1 (count): documents are pre-split (bpe_split's patterns) and each distinct chunk
 * is stored once with its number of occurrences, so memory grows with the vocabulary of
 * chunks, not with the corpus.
 * Phase 2 (merge): every distinct chunk becomes a "word", a list of token ids with a
 * weight (its count). We keep
 *     count[p]  = sum over words of weight * (occurrences of adjacent pair p in the word)
 *     words[p]  = the words that contain (or once contained) pair p
 *     a max-heap of (count, pair), lazily updated
 * Each merge pops the best pair, rewrites only the words in words[p] (subtract their pair
 * counts, merge, add them back), and pushes the pairs that contain the new token. Counts
 * of other pairs only ever decrease, so a popped entry whose count is out of date is
 * re-pushed with the current count; an entry that is up to date is the true best.
 * Order: highest count first; on a tie the smallest pair (a, b), comparing a then b.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "bpe_hash.h"

static int grow(void **p, long long *cap, long long need, size_t elem) {
    if (need <= *cap) return 0;
    long long c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *q = realloc(*p, (size_t)c * elem);
    if (!q) return -1;
    *p = q; *cap = c;
    return 0;
}

typedef struct { uint64_t hash; long long off, count; int len; } chunk_slot;   /* off < 0: empty */
typedef struct { long long count; uint64_t key; int pair; } hitem;                /* heap entry */

struct bpe_trainer {
    /* phase 1: distinct chunks, bytes in one arena */
    unsigned char *arena; long long arena_len, arena_cap;
    chunk_slot *slots; long long slot_cap, n_chunks;
    /* phase 2: words */
    int frozen, n_merged, step;
    int *tok; long long *wstart; int *wlen; long long *wcount; int *wstamp; long long n_words;
    /* pairs: hash key -> index, then per-pair arrays */
    uint64_t *hkeys; int *hidx; uint64_t hmask; long long n_pairs, pair_cap;
    uint64_t *key; long long *count; int **words; int *nwords, *capwords; int *touched_at;
    int *touched; long long touched_cap;
    hitem *heap; long long heap_n, heap_cap;
};

bpe_trainer *bpe_trainer_new(void) { return calloc(1, sizeof(bpe_trainer)); }

void bpe_trainer_free(bpe_trainer *t) {
    if (!t) return;
    free(t->arena); free(t->slots);
    free(t->tok); free(t->wstart); free(t->wlen); free(t->wcount); free(t->wstamp);
    free(t->hkeys); free(t->hidx); free(t->key); free(t->count); free(t->nwords);
    free(t->capwords); free(t->touched_at); free(t->touched); free(t->heap);
    if (t->words) for (long long p = 0; p < t->n_pairs; p++) free(t->words[p]);
    free(t->words);
    free(t);
}

/* ---- phase 1: distinct chunks ----------------------------------------------------- */

static int slots_rehash(bpe_trainer *t, long long cap) {
    chunk_slot *s = malloc((size_t)cap * sizeof *s);
    if (!s) return -1;
    for (long long i = 0; i < cap; i++) s[i].off = -1;
    for (long long i = 0; i < t->slot_cap; i++) {
        if (t->slots[i].off < 0) continue;
        long long h = (long long)(t->slots[i].hash & (uint64_t)(cap - 1));
        while (s[h].off >= 0) h = (h + 1) & (cap - 1);
        s[h] = t->slots[i];
    }
    free(t->slots);
    t->slots = s; t->slot_cap = cap;
    return 0;
}

static int add_chunk(bpe_trainer *t, const unsigned char *s, long long len, long long count) {
    if (2 * (t->n_chunks + 1) > t->slot_cap && slots_rehash(t, t->slot_cap ? 2 * t->slot_cap : 1024)) return -1;
    uint64_t hash = hash_bytes(s, len);
    long long h = (long long)(hash & (uint64_t)(t->slot_cap - 1));
    for (;; h = (h + 1) & (t->slot_cap - 1)) {
        chunk_slot *e = &t->slots[h];
        if (e->off < 0) break;
        if (e->hash == hash && e->len == len && memcmp(t->arena + e->off, s, (size_t)len) == 0) {
            e->count += count;
            return 0;
        }
    }
    if (grow((void **)&t->arena, &t->arena_cap, t->arena_len + len, 1)) return -1;
    memcpy(t->arena + t->arena_len, s, (size_t)len);
    t->slots[h] = (chunk_slot){hash, t->arena_len, count, (int)len};
    t->arena_len += len;
    t->n_chunks++;
    return 0;
}

int bpe_trainer_count(bpe_trainer *t, const unsigned char *text, const long long *doc_ends, int n_docs,
                      int pattern, const unsigned char *cp_class, int n_class) {
    if (t->frozen) return -2;
    long long start = 0;
    for (int d = 0; d < n_docs; d++) {
        for (long long i = start; i < doc_ends[d];) {
            long long end = bpe_chunk_end(text, i, doc_ends[d], pattern, cp_class, n_class);
            if (end - i > INT32_MAX) return -3;
            if (add_chunk(t, text + i, end - i, 1)) return -1;
            i = end;
        }
        start = doc_ends[d];
    }
    return 0;
}

int bpe_trainer_add(bpe_trainer *t, const unsigned char *data, const long long *ends,
                    const long long *counts, long long n) {
    if (t->frozen) return -2;
    long long prev = 0;
    for (long long c = 0; c < n; c++) {
        if (ends[c] - prev > INT32_MAX) return -3;
        if (ends[c] > prev && add_chunk(t, data + prev, ends[c] - prev, counts[c])) return -1;
        prev = ends[c];
    }
    return 0;
}

long long bpe_trainer_num_chunks(const bpe_trainer *t) { return t->frozen ? t->n_words : t->n_chunks; }

/* ---- phase 2: pairs, heap, merges ------------------------------------------------- */

static int pairs_rehash(bpe_trainer *t, uint64_t cap) {
    uint64_t *k = malloc(cap * sizeof *k);
    int *v = malloc(cap * sizeof *v);
    if (!k || !v) { free(k); free(v); return -1; }
    memset(k, 0xFF, cap * sizeof *k);
    for (long long p = 0; p < t->n_pairs; p++) {
        uint64_t h = mix64(t->key[p]) & (cap - 1);
        while (k[h] != UINT64_MAX) h = (h + 1) & (cap - 1);
        k[h] = t->key[p]; v[h] = (int)p;
    }
    free(t->hkeys); free(t->hidx);
    t->hkeys = k; t->hidx = v; t->hmask = cap - 1;
    return 0;
}

/* Index of pair key (created with count 0 when new), or -1 out of memory. */
static int pair_index(bpe_trainer *t, uint64_t key) {
    uint64_t h = mix64(key) & t->hmask;
    for (; t->hkeys[h] != UINT64_MAX; h = (h + 1) & t->hmask)
        if (t->hkeys[h] == key) return t->hidx[h];
    long long p = t->n_pairs;
    if (p + 1 > t->pair_cap) {
        long long cap = t->pair_cap, c2 = cap, c3 = cap, c4 = cap, c5 = cap, c6 = cap;
        if (grow((void **)&t->key, &cap, p + 1, sizeof *t->key) ||
            grow((void **)&t->count, &c2, p + 1, sizeof *t->count) ||
            grow((void **)&t->words, &c3, p + 1, sizeof *t->words) ||
            grow((void **)&t->nwords, &c4, p + 1, sizeof *t->nwords) ||
            grow((void **)&t->capwords, &c5, p + 1, sizeof *t->capwords) ||
            grow((void **)&t->touched_at, &c6, p + 1, sizeof *t->touched_at)) return -1;
        t->pair_cap = cap;
    }
    t->key[p] = key; t->count[p] = 0; t->words[p] = NULL;
    t->nwords[p] = 0; t->capwords[p] = 0; t->touched_at[p] = -1;
    t->hkeys[h] = key; t->hidx[h] = (int)p;
    t->n_pairs++;
    if ((uint64_t)(2 * t->n_pairs) > t->hmask && pairs_rehash(t, 2 * (t->hmask + 1))) return -1;
    return (int)p;
}

static int add_word_to_pair(bpe_trainer *t, int p, int w) {
    if (t->nwords[p] && t->words[p][t->nwords[p] - 1] == w) return 0;   /* already listed */
    if (t->nwords[p] == t->capwords[p]) {
        int cap = t->capwords[p] ? 2 * t->capwords[p] : 4;
        int *q = realloc(t->words[p], (size_t)cap * sizeof *q);
        if (!q) return -1;
        t->words[p] = q; t->capwords[p] = cap;
    }
    t->words[p][t->nwords[p]++] = w;
    return 0;
}

static inline int hbetter(hitem x, hitem y) { return x.count > y.count || (x.count == y.count && x.key < y.key); }

static int heap_push(bpe_trainer *t, hitem e) {
    if (grow((void **)&t->heap, &t->heap_cap, t->heap_n + 1, sizeof *t->heap)) return -1;
    long long i = t->heap_n++;
    while (i > 0 && hbetter(e, t->heap[(i - 1) / 2])) { t->heap[i] = t->heap[(i - 1) / 2]; i = (i - 1) / 2; }
    t->heap[i] = e;
    return 0;
}

static hitem heap_pop(bpe_trainer *t) {
    hitem top = t->heap[0], last = t->heap[--t->heap_n];
    long long i = 0, n = t->heap_n;
    for (;;) {
        long long c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && hbetter(t->heap[c + 1], t->heap[c])) c++;
        if (!hbetter(t->heap[c], last)) break;
        t->heap[i] = t->heap[c]; i = c;
    }
    t->heap[i] = last;
    return top;
}

/* Turn the distinct chunks into words and count their pairs. */
static int freeze(bpe_trainer *t) {
    long long nw = t->n_chunks;
    t->tok = malloc((size_t)(t->arena_len + 1) * sizeof *t->tok);
    t->wstart = malloc((size_t)(nw + 1) * sizeof *t->wstart);
    t->wlen = malloc((size_t)(nw + 1) * sizeof *t->wlen);
    t->wcount = malloc((size_t)(nw + 1) * sizeof *t->wcount);
    t->wstamp = malloc((size_t)(nw + 1) * sizeof *t->wstamp);
    if (!t->tok || !t->wstart || !t->wlen || !t->wcount || !t->wstamp || pairs_rehash(t, 1 << 16)) return -1;
    long long w = 0, pos = 0;
    for (long long i = 0; i < t->slot_cap; i++) {     /* slot order: deterministic, and irrelevant */
        chunk_slot *e = &t->slots[i];
        if (e->off < 0) continue;
        t->wstart[w] = pos; t->wlen[w] = e->len; t->wcount[w] = e->count; t->wstamp[w] = -1;
        for (int k = 0; k < e->len; k++) t->tok[pos + k] = t->arena[e->off + k];
        pos += e->len;
        w++;
    }
    t->n_words = w;
    free(t->arena); t->arena = NULL; free(t->slots); t->slots = NULL;
    for (w = 0; w < t->n_words; w++) {
        const int *s = t->tok + t->wstart[w];
        for (int k = 0; k + 1 < t->wlen[w]; k++) {
            int p = pair_index(t, ((uint64_t)s[k] << 32) | (uint32_t)s[k + 1]);
            if (p < 0 || add_word_to_pair(t, p, (int)w)) return -1;
            t->count[p] += t->wcount[w];
        }
    }
    for (long long p = 0; p < t->n_pairs; p++)
        if (t->count[p] > 0 && heap_push(t, (hitem){t->count[p], t->key[p], (int)p})) return -1;
    t->frozen = 1;
    return 0;
}

/* Rewrite word w, merging (a, b) -> x; keeps pair counts and the pair -> words index. */
static int merge_word(bpe_trainer *t, int w, int a, int b, int x, long long *n_touched) {
    int *s = t->tok + t->wstart[w];
    int n = t->wlen[w], found = 0;
    for (int k = 0; k + 1 < n && !found; k++) found = s[k] == a && s[k + 1] == b;
    if (!found) return 0;                                   /* stale entry: merged away */
    long long c = t->wcount[w];
    for (int k = 0; k + 1 < n; k++) t->count[pair_index(t, ((uint64_t)s[k] << 32) | (uint32_t)s[k + 1])] -= c;
    int m = 0;
    for (int k = 0; k < n;) {
        if (k + 1 < n && s[k] == a && s[k + 1] == b) { s[m++] = x; k += 2; }
        else s[m++] = s[k++];
    }
    t->wlen[w] = m;
    for (int k = 0; k + 1 < m; k++) {
        int p = pair_index(t, ((uint64_t)s[k] << 32) | (uint32_t)s[k + 1]);
        if (p < 0) return -1;
        t->count[p] += c;
        if (s[k] != x && s[k + 1] != x) continue;
        if (add_word_to_pair(t, p, w)) return -1;
        if (t->touched_at[p] != t->step) {
            t->touched_at[p] = t->step;
            if (grow((void **)&t->touched, &t->touched_cap, *n_touched + 1, sizeof *t->touched)) return -1;
            t->touched[(*n_touched)++] = p;
        }
    }
    return 0;
}

int bpe_trainer_merge(bpe_trainer *t, int *pairs, long long *counts, int n) {
    if (!t->frozen && freeze(t)) return -1;
    int done = 0;
    while (done < n && t->heap_n > 0) {
        hitem top = heap_pop(t);
        long long cur = t->count[top.pair];
        if (cur != top.count) {                               /* out of date: re-queue */
            if (cur > 0 && heap_push(t, (hitem){cur, top.key, top.pair})) return -1;
            continue;
        }
        int p = top.pair, a = (int)(top.key >> 32), b = (int)(uint32_t)top.key;
        int x = 256 + t->n_merged;
        int *ws = t->words[p], nw = t->nwords[p];
        t->words[p] = NULL; t->nwords[p] = 0; t->capwords[p] = 0;
        long long n_touched = 0;
        t->step++;
        for (int i = 0; i < nw; i++) {
            int w = ws[i];
            if (t->wstamp[w] == t->step) continue;
            t->wstamp[w] = t->step;
            if (merge_word(t, w, a, b, x, &n_touched)) { free(ws); return -1; }
        }
        free(ws);
        for (long long i = 0; i < n_touched; i++) {
            int q = t->touched[i];
            if (t->count[q] > 0 && heap_push(t, (hitem){t->count[q], t->key[q], q})) return -1;
        }
        pairs[2 * done] = a; pairs[2 * done + 1] = b; counts[done] = cur;
        t->n_merged++;
        done++;
    }
    return done;
}
