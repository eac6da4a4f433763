/*
 * bpe_split.c — the GPT-4 / GPT-2 pre-split of byte-level BPE, matched by hand.
 *
 * The Python twin is the `regex` package running minillm.tokenizer's GPT4_PATTERN and
 * GPT2_PATTERN; tests/tokenizer/test_fast.py checks both give identical chunks on real
 * text and on generated tricky text. Instead of a regex engine, each pattern's
 * alternatives are tried one after another in the regex's own order (alternation in
 * these engines is ordered: the first alternative that matches wins, not the longest):
 *
 *   GPT-4: '(?i:[sdmt]|ll|ve|re) | [^\r\n\p{L}\p{N}]?+\p{L}+ | \p{N}{1,3}
 *          | ' '?[^\s\p{L}\p{N}]++[\r\n]* | \s*[\r\n] | \s+(?!\S) | \s+
 *   GPT-2: 's|'t|'re|'ve|'m|'ll|'d | ' '?\p{L}+ | ' '?\p{N}+ | ' '?[^\s\p{L}\p{N}]+ | \s+(?!\S) | \s+
 *
 * Every character is a letter (L), a number (N), whitespace (S) or "other"; cp_class[cp]
 * holds those bits for each code point. Python builds the table with the regex package
 * itself, so "letter" means exactly what \p{L} means to the Python path. The possessive
 * quantifiers (?+ ++) never change a match here: nothing after them could backtrack into
 * them (a letter run cannot start with the optional non-letter; [\r\n] is not [^\s...]).
 */
#include <stdint.h>

#include "kernels.h"

enum { CL_L = 1, CL_N = 2, CL_S = 4 };      /* cp_class bits */
enum { PAT_GPT4 = 1, PAT_GPT2 = 2 };

/* ---- UTF-8 text and character classes ------------------------------------------- */

typedef struct {
    const unsigned char *s;
    long long n;
    const unsigned char *cls;   /* cp_class */
    int ncls;
} text_t;

typedef struct { uint32_t cp; int len; int cls; } ch_t;

/* The code point at s[i]: its byte length (1..4). Invalid UTF-8 reads as one byte, U+FFFD. */
static inline int utf8_at(const unsigned char *s, long long i, long long n, uint32_t *cp) {
    unsigned c = s[i];
    if (c < 0x80) { *cp = c; return 1; }
    int len;
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; v = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; v = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; v = c & 0x07; }
    else { *cp = 0xFFFD; return 1; }
    if (i + len > n) { *cp = 0xFFFD; return 1; }
    for (int k = 1; k < len; k++) {
        unsigned b = s[i + k];
        if ((b & 0xC0) != 0x80) { *cp = 0xFFFD; return 1; }
        v = (v << 6) | (b & 0x3F);
    }
    if ((len == 3 && (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF))) ||
        (len == 4 && (v < 0x10000 || v > 0x10FFFF))) { *cp = 0xFFFD; return 1; }
    *cp = v;
    return len;
}

static inline ch_t char_at(const text_t *t, long long i) {
    ch_t c;
    c.len = utf8_at(t->s, i, t->n, &c.cp);
    c.cls = c.cp < (uint32_t)t->ncls ? t->cls[c.cp] : 0;
    return c;
}

/* End of the run from i of characters whose (class & mask) == want. */
static long long run_class(const text_t *t, long long i, int mask, int want) {
    while (i < t->n) {
        ch_t c = char_at(t, i);
        if ((c.cls & mask) != want) break;
        i += c.len;
    }
    return i;
}

static inline long long run_newlines(const text_t *t, long long i) {
    while (i < t->n && (t->s[i] == '\r' || t->s[i] == '\n')) i++;
    return i;
}

/* \s+(?!\S) | \s+ over the whitespace run at i (GPT-2's tail; GPT-4 adds \s*[\r\n] first). */
static long long whitespace_tail(const text_t *t, long long i, int newline_first) {
    long long k = i, last_start = i, last_nl = -1;
    while (k < t->n) {
        ch_t c = char_at(t, k);
        if (!(c.cls & CL_S)) break;
        last_start = k;
        k += c.len;
        if (c.cp == '\r' || c.cp == '\n') last_nl = k;
    }
    if (newline_first && last_nl > i) return last_nl;    /* \s*[\r\n]: up to the last newline */
    if (k == t->n) return k;                             /* \s+(?!\S) at the end of the text */
    if (last_start > i) return last_start;               /* \s+(?!\S): leave the last space */
    return k;                                            /* \s+ */
}

/* subtle: (?i) folds U+017F LATIN SMALL LETTER LONG S to 's'; no other non-ASCII code
 * point folds into [sdmtlver] (tests/tokenizer/test_fast.py checks this against regex). */
static inline uint32_t fold(uint32_t cp) {
    if (cp >= 'A' && cp <= 'Z') return cp + 32;
    return cp == 0x17F ? 's' : cp;
}

static long long gpt4_next(const text_t *t, long long i) {
    ch_t c = char_at(t, i);
    long long j = i + c.len;
    if (c.cp == '\'' && j < t->n) {                            /* '(?i:[sdmt]|ll|ve|re) */
        ch_t d = char_at(t, j);
        uint32_t x = fold(d.cp);
        if (x == 's' || x == 'd' || x == 'm' || x == 't') return j + d.len;
        if (j + d.len < t->n) {
            ch_t e = char_at(t, j + d.len);
            uint32_t y = fold(e.cp);
            if ((x == 'l' && y == 'l') || (x == 'v' && y == 'e') || (x == 'r' && y == 'e'))
                return j + d.len + e.len;
        }
    }
    if (c.cls & CL_L) return run_class(t, j, CL_L, CL_L);      /* \p{L}+ */
    if (!(c.cls & (CL_L | CL_N)) && c.cp != '\r' && c.cp != '\n' && j < t->n) {
        ch_t d = char_at(t, j);                                 /* [^\r\n\p{L}\p{N}]\p{L}+ */
        if (d.cls & CL_L) return run_class(t, j + d.len, CL_L, CL_L);
    }
    if (c.cls & CL_N) {                                         /* \p{N}{1,3} */
        for (int m = 1; m < 3 && j < t->n; m++) {
            ch_t d = char_at(t, j);
            if (!(d.cls & CL_N)) break;
            j += d.len;
        }
        return j;
    }
    const int LNS = CL_L | CL_N | CL_S;
    if (c.cp == ' ' && j < t->n) {                              /* ' '[^\s\p{L}\p{N}]++[\r\n]* */
        ch_t d = char_at(t, j);
        if (!(d.cls & LNS)) return run_newlines(t, run_class(t, j + d.len, LNS, 0));
    }
    if (!(c.cls & LNS)) return run_newlines(t, run_class(t, j, LNS, 0));
    return whitespace_tail(t, i, 1);
}

static long long gpt2_next(const text_t *t, long long i) {
    ch_t c = char_at(t, i);
    long long j = i + c.len;
    if (c.cp == '\'' && j < t->n) {                  /* 's|'t|'re|'ve|'m|'ll|'d (ASCII bytes) */
        unsigned x = t->s[j], y = j + 1 < t->n ? t->s[j + 1] : 0;
        if (x == 's' || x == 't' || x == 'm' || x == 'd') return j + 1;
        if ((x == 'r' && y == 'e') || (x == 'v' && y == 'e') || (x == 'l' && y == 'l')) return j + 2;
    }
    const int LNS = CL_L | CL_N | CL_S;
    long long start = i;
    if (c.cp == ' ' && j < t->n) {                   /* ' ?' then a run of the next class */
        ch_t d = char_at(t, j);
        if (!(d.cls & CL_S)) { c = d; start = j; }
    }
    if (!(c.cls & CL_S) || start != i) {
        long long k = start + c.len;
        if (c.cls & CL_L) return run_class(t, k, CL_L, CL_L);
        if (c.cls & CL_N) return run_class(t, k, CL_N, CL_N);
        return run_class(t, k, LNS, 0);
    }
    return whitespace_tail(t, i, 0);
}

long long bpe_chunk_end(const unsigned char *text, long long i, long long n, int pattern,
                        const unsigned char *cp_class, int n_class) {
    text_t t = {text, n, cp_class, n_class};
    return pattern == PAT_GPT2 ? gpt2_next(&t, i) : gpt4_next(&t, i);
}

long long bpe_split(long long *ends, const unsigned char *text, long long n, int pattern,
                    const unsigned char *cp_class, int n_class) {
    text_t t = {text, n, cp_class, n_class};
    long long count = 0, i = 0;
    while (i < n) {
        i = pattern == PAT_GPT2 ? gpt2_next(&t, i) : gpt4_next(&t, i);
        ends[count++] = i;
    }
    return count;
}
