/*
 * bpe.c — byte-level BPE encoding: the per-chunk merge loop, its rank table and cache.
 *
 * minillm/tokenizer/fast.py wraps these; minillm/tokenizer/bpe.py holds the Python twin
 * (Tokenizer._encode_chunk) and the tests check that both give identical ids. Chunks come
 * from bpe_split.c; training lives in bpe_train.c.
 *
 * A chunk starts as one token per byte (byte_ids[b]); then, repeatedly, the adjacent pair
 * with the lowest merge rank is replaced by the token that merge made (on equal ranks the
 * leftmost pair). Ranks come from an open-addressing hash table keyed by the pair. Short
 * chunks use a flat array (a scan per merge); long ones (a 10,000-space run) a heap over a
 * linked list, so a pathological chunk costs n log n, not n^2. A per-thread cache maps
 * recently seen short chunks straight to their ids (it doubles throughput on English).
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "bpe_hash.h"

/* ---- the merge table: pair (a, b) -> rank ------------------------------------------ */

#define EMPTY_KEY UINT64_MAX

struct bpe_model {
    int byte_ids[256];
    int n_merges;
    int *new_ids;          /* (n_merges,) the token merge r makes */
    uint64_t *keys;        /* (cap,) pair key a << 32 | b, EMPTY_KEY when free */
    int *ranks;            /* (cap,) */
    uint64_t mask;         /* cap - 1, cap a power of two >= 2 * n_merges */
};

static inline uint64_t pair_key(int a, int b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

static inline int rank_of(const bpe_model *m, int a, int b) {
    uint64_t key = pair_key(a, b);
    for (uint64_t h = mix64(key) & m->mask;; h = (h + 1) & m->mask) {
        if (m->keys[h] == key) return m->ranks[h];
        if (m->keys[h] == EMPTY_KEY) return INT_MAX;
    }
}

bpe_model *bpe_model_new(const int *byte_ids, const int *pairs, const int *new_ids, int n_merges) {
    bpe_model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    uint64_t cap = 16;
    while (cap < 2 * (uint64_t)n_merges) cap <<= 1;
    m->mask = cap - 1;
    m->n_merges = n_merges;
    m->keys = malloc(cap * sizeof *m->keys);
    m->ranks = malloc(cap * sizeof *m->ranks);
    m->new_ids = malloc((n_merges + 1) * sizeof *m->new_ids);
    if (!m->keys || !m->ranks || !m->new_ids) { bpe_model_free(m); return NULL; }
    memcpy(m->byte_ids, byte_ids, sizeof m->byte_ids);
    if (n_merges > 0) memcpy(m->new_ids, new_ids, n_merges * sizeof *new_ids);  /* new_ids may be NULL */
    memset(m->keys, 0xFF, cap * sizeof *m->keys);
    for (int r = 0; r < n_merges; r++) {
        uint64_t key = pair_key(pairs[2 * r], pairs[2 * r + 1]);
        uint64_t h = mix64(key) & m->mask;
        while (m->keys[h] != EMPTY_KEY && m->keys[h] != key) h = (h + 1) & m->mask;
        if (m->keys[h] == EMPTY_KEY) { m->keys[h] = key; m->ranks[h] = r; }  /* first rank wins */
    }
    return m;
}

void bpe_model_free(bpe_model *m) {
    if (!m) return;
    free(m->keys); free(m->ranks); free(m->new_ids); free(m);
}

/* ---- merging one chunk ----------------------------------------------------------- */

#define SMALL_CHUNK 96

/* ids (n) -> merged ids in place; returns the new length. Flat arrays: one scan per merge. */
static int merge_small(const bpe_model *m, int *ids, int n) {
    int ranks[SMALL_CHUNK];                    /* ranks[k]: rank of pair (ids[k], ids[k+1]) */
    for (int k = 0; k + 1 < n; k++) ranks[k] = rank_of(m, ids[k], ids[k + 1]);
    while (n > 1) {
        int best = INT_MAX, at = -1;
        for (int k = 0; k + 1 < n; k++)
            if (ranks[k] < best) { best = ranks[k]; at = k; }
        if (at < 0) break;
        ids[at] = m->new_ids[best];
        memmove(ids + at + 1, ids + at + 2, (size_t)(n - at - 2) * sizeof *ids);
        if (n - at - 3 > 0) memmove(ranks + at + 1, ranks + at + 2, (size_t)(n - at - 3) * sizeof *ranks);
        n--;
        if (at > 0) ranks[at - 1] = rank_of(m, ids[at - 1], ids[at]);
        if (at + 1 < n) ranks[at] = rank_of(m, ids[at], ids[at + 1]);
    }
    return n;
}

typedef struct { int rank; int pos; } hentry;    /* min-heap by (rank, pos) */

static inline int hless(hentry x, hentry y) { return x.rank < y.rank || (x.rank == y.rank && x.pos < y.pos); }

static void hpush(hentry *h, int *n, hentry e) {
    int i = (*n)++;
    while (i > 0 && hless(e, h[(i - 1) / 2])) { h[i] = h[(i - 1) / 2]; i = (i - 1) / 2; }
    h[i] = e;
}

static hentry hpop(hentry *h, int *n) {
    hentry top = h[0], last = h[--(*n)];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && hless(h[c + 1], h[c])) c++;
        if (!hless(h[c], last)) break;
        h[i] = h[c]; i = c;
    }
    h[i] = last;
    return top;
}

/* Same result as merge_small for any n: a linked list of positions and a heap of
 * (rank, left position) entries; an entry is stale when its pair has changed since. */
static int merge_large(const bpe_model *m, int *ids, int n) {
    int *next = malloc((size_t)n * sizeof *next), *prev = malloc((size_t)n * sizeof *prev);
    hentry *heap = malloc((size_t)(3 * n) * sizeof *heap);   /* n initial + 2 per merge */
    if (!next || !prev || !heap) { free(next); free(prev); free(heap); return -1; }
    int hn = 0;
    for (int k = 0; k < n; k++) {
        next[k] = k + 1 < n ? k + 1 : -1;
        prev[k] = k - 1;
        if (k + 1 < n) {
            hentry e = {rank_of(m, ids[k], ids[k + 1]), k};
            if (e.rank != INT_MAX) hpush(heap, &hn, e);
        }
    }
    while (hn > 0) {
        hentry e = hpop(heap, &hn);
        int a = e.pos, b = next[a];
        if (ids[a] < 0 || b < 0 || rank_of(m, ids[a], ids[b]) != e.rank) continue;   /* stale */
        ids[a] = m->new_ids[e.rank];
        ids[b] = -1;                                   /* b is gone */
        next[a] = next[b];
        if (next[b] >= 0) prev[next[b]] = a;
        if (prev[a] >= 0) {
            hentry l = {rank_of(m, ids[prev[a]], ids[a]), prev[a]};
            if (l.rank != INT_MAX) hpush(heap, &hn, l);
        }
        if (next[a] >= 0) {
            hentry r = {rank_of(m, ids[a], ids[next[a]]), a};
            if (r.rank != INT_MAX) hpush(heap, &hn, r);
        }
    }
    int len = 0;
    for (int k = 0; k >= 0; k = next[k]) ids[len++] = ids[k];
    free(next); free(prev); free(heap);
    return len;
}

/* ---- the chunk cache: recent short chunks -> ids (one per thread) ------------------ */

#define CACHE_BITS 14
#define CACHE_MAXLEN 15

typedef struct {
    uint32_t tag;                 /* high hash bits; 0 = empty */
    unsigned char len, nids;
    unsigned char bytes[CACHE_MAXLEN];
    int ids[CACHE_MAXLEN];
} cache_entry;

struct bpe_cache {
    const bpe_model *owner;       /* entries are valid for this model only */
    cache_entry e[1 << CACHE_BITS];
};

bpe_cache *bpe_cache_new(void) { return calloc(1, sizeof(bpe_cache)); }

void bpe_cache_free(bpe_cache *c) { free(c); }

/* ids for text[0..n) written to out (capacity n); returns how many, or -1 out of memory. */
static int encode_chunk(int *out, const bpe_model *m, bpe_cache *cache, const unsigned char *s, int n) {
    if (n == 1) { out[0] = m->byte_ids[s[0]]; return 1; }
    cache_entry *e = NULL;
    uint32_t tag = 0;
    if (cache && n <= CACHE_MAXLEN) {
        uint64_t h = hash_bytes(s, n);
        e = &cache->e[h & ((1 << CACHE_BITS) - 1)];
        tag = (uint32_t)(h >> 32) | 1;
        if (e->tag == tag && e->len == n && memcmp(e->bytes, s, (size_t)n) == 0) {
            memcpy(out, e->ids, e->nids * sizeof *out);
            return e->nids;
        }
    }
    for (int k = 0; k < n; k++) out[k] = m->byte_ids[s[k]];
    int len = n <= SMALL_CHUNK ? merge_small(m, out, n) : merge_large(m, out, n);
    if (e && len > 0) {
        e->tag = tag; e->len = (unsigned char)n; e->nids = (unsigned char)len;
        memcpy(e->bytes, s, (size_t)n);
        memcpy(e->ids, out, (size_t)len * sizeof *out);
    }
    return len;
}

static void cache_bind(bpe_cache *cache, const bpe_model *m) {
    if (cache && cache->owner != m) {
        memset(cache->e, 0, sizeof cache->e);
        cache->owner = m;
    }
}

long long bpe_encode_chunks(int *out, const bpe_model *m, bpe_cache *cache,
                            const unsigned char *text, const long long *ends, long long n_chunks) {
    cache_bind(cache, m);
    long long n_out = 0, start = 0;
    for (long long c = 0; c < n_chunks; c++) {
        long long len = ends[c] - start;
        if (len > INT_MAX) return -1;
        if (len > 0) {
            int k = encode_chunk(out + n_out, m, cache, text + start, (int)len);
            if (k < 0) return -1;
            n_out += k;
        }
        start = ends[c];
    }
    return n_out;
}

long long bpe_encode(int *out, long long *out_ends, const bpe_model *m, bpe_cache *cache,
                     const unsigned char *text, const long long *doc_ends, int n_docs,
                     int pattern, const unsigned char *cp_class, int n_class) {
    cache_bind(cache, m);
    long long n_out = 0, start = 0;
    for (int d = 0; d < n_docs; d++) {
        for (long long i = start; i < doc_ends[d];) {
            long long end = bpe_chunk_end(text, i, doc_ends[d], pattern, cp_class, n_class);
            if (end - i > INT_MAX) return -1;
            int k = encode_chunk(out + n_out, m, cache, text + i, (int)(end - i));
            if (k < 0) return -1;
            n_out += k;
            i = end;
        }
        out_ends[d] = n_out;
        start = doc_ends[d];
    }
    return n_out;
}
