/*
 * bpe_hash.h — the hashes bpe.c (merge table, chunk cache) and bpe_train.c (distinct
 * chunks, pair index) share. Not exported through cffi (csrc/kernels.h is the contract).
 */
#ifndef MINILLM_BPE_HASH_H
#define MINILLM_BPE_HASH_H

#include <stdint.h>

/* murmur3's 64-bit finalizer: spreads every input bit over the whole word. */
static inline uint64_t mix64(uint64_t k) {
    k ^= k >> 33; k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33; k *= 0xc4ceb9fe1a85ec53ULL;
    return k ^ (k >> 33);
}

/* Hash of the bytes s[0 .. n): FNV-1a, then mixed. */
static inline uint64_t hash_bytes(const unsigned char *s, long long n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (long long i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ULL;
    return mix64(h);
}

#endif
