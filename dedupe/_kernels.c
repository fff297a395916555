/* Inner loops of dedupe/ in C.  The numpy code in shingles.py / minhash.py is the reference:
 * every function here returns bit-identical results (tests/test_dedupe_kernels.py).
 *
 * Texts are read straight from the str objects (no encode): ASCII texts go through a 128-entry
 * map that folds case, drops apostrophes and applies the code-point table; any other text must
 * already be prepared (NFKC, casefold, apostrophes removed) by the caller and goes through the
 * full code-point table.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SEP 0u
#define DELETE 0xFFFFFFFFu

static const uint64_t WORD_X = 0x9E3779B97F4A7C15ULL; /* odd; the polynomial base */
static const uint64_t CHAR_ADD = 0x9E3779B97F4A7C15ULL;

static inline uint64_t fmix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDULL;
    x ^= x >> 33;
    x *= 0xC4CEB9FE1A85EC53ULL;
    x ^= x >> 33;
    return x;
}

static inline uint32_t fmix32(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return h;
}

/* ---- buffers ------------------------------------------------------------------------------ */

typedef struct {
    Py_buffer view;
    int ok;
} Buf;

static int get_buf(PyObject *obj, Buf *b, Py_ssize_t itemsize, Py_ssize_t min_items, int writable,
                   const char *name)
{
    b->ok = 0;
    if (PyObject_GetBuffer(obj, &b->view, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    b->ok = 1;
    if (b->view.len < itemsize * min_items) {
        PyErr_Format(PyExc_ValueError, "%s: buffer too small", name);
        return -1;
    }
    return 0;
}

static void rel_buf(Buf *b)
{
    if (b->ok)
        PyBuffer_Release(&b->view);
    b->ok = 0;
}

/* ---- the code-point map ------------------------------------------------------------------- */

typedef struct {
    const uint32_t *table;  /* 0x110000 entries: mapped code point or SEP */
    const uint32_t *ascii;  /* 128 entries: mapped code point, SEP or DELETE */
    uint32_t latin1[256];   /* ascii, then table[128:256] */
    /* latin1 split for the branch-free word loop of 1-byte texts (words_1byte: ASCII, and
       Latin-1 texts, prepared like any non-ASCII text), one 64-bit table per quantity
       so that the loop spends loads (cheap) rather than compare/set/extend instructions:
       wval: the value the character adds to its word (0 for separators and deleted ones);
       wsep: 1 for a separator; wkeep: wsep - 1 (all ones unless a separator); winc: 1 for a
       character that advances the position in the word (not a separator, not deleted). */
    uint64_t wval[256], wsep[256], wkeep[256], winc[256];
} Map;

static void map_init(Map *m, const uint32_t *table, const uint32_t *ascii)
{
    m->table = table;
    m->ascii = ascii;
    for (int c = 0; c < 256; c++) {
        uint32_t v = c < 128 ? ascii[c] : table[c];
        m->latin1[c] = v;
        int word = v != SEP && v != DELETE;
        m->wval[c] = word ? v : 0;
        m->wsep[c] = v == SEP;
        m->wkeep[c] = m->wsep[c] - 1;
        m->winc[c] = word;
    }
}

static inline uint32_t map_cp(const Map *m, Py_UCS4 c)
{
    return c < 128 ? m->ascii[c] : m->table[c];
}

/* ---- sorting ------------------------------------------------------------------------------ */

/* Sort n uint32 values in place (tmp: n scratch values), LSD radix on 8-bit digits. */
static void radix_u32(uint32_t *v, uint32_t *tmp, Py_ssize_t n)
{
    uint32_t cnt[4][256];
    memset(cnt, 0, sizeof(cnt));
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t x = v[i];
        cnt[0][x & 255]++;
        cnt[1][(x >> 8) & 255]++;
        cnt[2][(x >> 16) & 255]++;
        cnt[3][x >> 24]++;
    }
    uint32_t *src = v, *dst = tmp;
    for (int p = 0; p < 4; p++) {
        uint32_t *c = cnt[p];
        uint32_t sum = 0;
        for (int k = 0; k < 256; k++) {
            uint32_t t = c[k];
            c[k] = sum;
            sum += t;
        }
        int shift = 8 * p;
        for (Py_ssize_t i = 0; i < n; i++) {
            uint32_t x = src[i];
            dst[c[(x >> shift) & 255]++] = x;
        }
        uint32_t *t = src;
        src = dst;
        dst = t;
    }
    /* four passes: the result is back in v */
}

/* src sorted -> its unique values in dst (which may be src); returns their count (n >= 1).
 * Branch-free: a repeated gram is rare but unpredictable. */
static inline Py_ssize_t unique_u32(const uint32_t *src, uint32_t *dst, Py_ssize_t n)
{
    Py_ssize_t u = 1;
    uint32_t last = src[0];
    dst[0] = last;
    for (Py_ssize_t i = 1; i < n; i++) {
        uint32_t x = src[i];
        dst[u] = x;
        u += x != last;
        last = x;
    }
    return u;
}

/* Buckets by the top bits for sort_unique_u32: 2n to 4n buckets (SORT_EXTRA_BITS = 1; 0 and 2
 * measured no better), at most 1 << SORT_MAX_BITS counters (the caller's cnt buffer, not the
 * stack), so the bucket sort takes n < (1 << (SORT_MAX_BITS - SORT_EXTRA_BITS)) = 4096. */
#define SORT_MAX_BITS 13
#define SORT_EXTRA_BITS 1

/* Sort n uint32 values (tmp, cnt: n and 1 << SORT_MAX_BITS scratch values); returns the number
 * of unique values, compacted at the front of v, ascending.
 *
 * The values are hashes, uniformly spread: one counting pass and one scatter on the top bits,
 * then an insertion sort that only ever moves a value within its (tiny) bucket, took ~3.1 us
 * for 610 random values against ~4.5 us for the four LSD radix passes (standalone loop; 610 is
 * the corpus's mean grams an article).  Skewed input (many distinct values in few buckets,
 * which hashes do not give by chance) would make the insertion sort quadratic: past a budget
 * of moves it stops and the radix sort finishes the job (the array is a permutation of the
 * values after every insertion). */
static Py_ssize_t sort_unique_u32(uint32_t *v, uint32_t *tmp, uint32_t *cnt, Py_ssize_t n)
{
    if (n <= 1)
        return n;
    if (n <= 32) {
        for (Py_ssize_t i = 1; i < n; i++) {
            uint32_t x = v[i];
            Py_ssize_t j = i;
            while (j > 0 && v[j - 1] > x) {
                v[j] = v[j - 1];
                j--;
            }
            v[j] = x;
        }
        return unique_u32(v, v, n);
    }
    if (n >= ((Py_ssize_t)1 << (SORT_MAX_BITS - SORT_EXTRA_BITS))) {
        radix_u32(v, tmp, n);
        return unique_u32(v, v, n);
    }
    int bits = 32 - __builtin_clz((uint32_t)n) + SORT_EXTRA_BITS; /* 2**bits > 2n */
    int shift = 32 - bits;
    size_t nb = (size_t)1 << bits;
    memset(cnt, 0, nb * sizeof(uint32_t));
    for (Py_ssize_t i = 0; i < n; i++)
        cnt[v[i] >> shift]++;
    /* inclusive prefix sums, four buckets a step (nb >= 128, a power of two): the running sum
       takes one add per four buckets instead of one per bucket (the serial loop had a quarter
       of k_shingle's perf samples) */
    uint32_t sum = 0;
    for (size_t b = 0; b < nb; b += 4) {
        uint32_t a0 = cnt[b], a1 = a0 + cnt[b + 1], a2 = a1 + cnt[b + 2], a3 = a2 + cnt[b + 3];
        cnt[b] = sum + a0;
        cnt[b + 1] = sum + a1;
        cnt[b + 2] = sum + a2;
        cnt[b + 3] = sum + a3;
        sum += a3;
    }
    /* scatter from the end (inclusive sums: each bucket fills from its top), stable */
    for (Py_ssize_t i = n - 1; i >= 0; i--) {
        uint32_t x = v[i];
        tmp[--cnt[x >> shift]] = x;
    }
    Py_ssize_t budget = 8 * n; /* moves: far more than uniform hashes need (< n) */
    for (Py_ssize_t i = 1; i < n; i++) {
        uint32_t x = tmp[i];
        Py_ssize_t j = i;
        while (j > 0 && tmp[j - 1] > x) {
            tmp[j] = tmp[j - 1];
            j--;
        }
        tmp[j] = x;
        budget -= i - j;
        if (__builtin_expect(budget < 0, 0)) {
            radix_u32(tmp, v, n);
            break;
        }
    }
    return unique_u32(tmp, v, n);
}

/* The number of distinct values among v[0..n) (v unchanged), for n < COUNT_MAX: an
 * open-addressed set of 4n to 8n slots (tab: 1 << COUNT_BITS scratch values; 0 marks an empty
 * slot, so a zero value is counted apart). The values are hashes, uniformly spread: a
 * value's first slot (its top bits) is nearly always empty or its own, a branch the CPU
 * predicts, which made this ~2.1 us for 610 values against ~4 us for `sort_unique_u32`
 * (standalone loop, interleaved). The signature needs no distinct values: a minimum does not
 * change with repeats. */
#define COUNT_BITS 15
#define COUNT_MAX ((Py_ssize_t)1 << (COUNT_BITS - 2)) /* then 2**bits <= 1 << COUNT_BITS */

static Py_ssize_t count_distinct_u32(const uint32_t *v, uint32_t *tab, Py_ssize_t n)
{
    if (n <= 1)
        return n;
    int bits = 32 - __builtin_clz((uint32_t)n) + 2; /* 2**bits > 4n */
    size_t mask = ((size_t)1 << bits) - 1;
    int shift = 32 - bits;
    memset(tab, 0, (mask + 1) * sizeof(uint32_t));
    Py_ssize_t u = 0;
    int zero = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t x = v[i];
        size_t h = x >> shift;
        uint32_t t = tab[h];
        zero |= x == 0;
        if (__builtin_expect(t == 0 || t == x, 1)) {
            u += (t == 0) & (x != 0);
            tab[h] = x;
            continue;
        }
        if (x == 0)
            continue;
        for (;;) {
            h = (h + 1) & mask;
            t = tab[h];
            if (t == 0) {
                tab[h] = x;
                u++;
                break;
            }
            if (t == x)
                break;
        }
    }
    return u + zero;
}

/* ---- units of one text -------------------------------------------------------------------- */

#define NPOW 4096
static uint64_t POW[NPOW]; /* WORD_X ** i */

static inline __attribute__((always_inline)) uint32_t read_cp(int kind, const void *data, Py_ssize_t i)
{
    if (kind == PyUnicode_1BYTE_KIND)
        return ((const Py_UCS1 *)data)[i];
    if (kind == PyUnicode_2BYTE_KIND)
        return ((const Py_UCS2 *)data)[i];
    return ((const Py_UCS4 *)data)[i];
}

/* WORD_X ** k for k beyond the table (words of NPOW characters or more: never in prose) */
static uint64_t pow_slow(Py_ssize_t k)
{
    uint64_t p = POW[NPOW - 1];
    for (Py_ssize_t i = NPOW - 1; i < k; i++)
        p *= WORD_X;
    return p;
}

/* Element-wise 64-bit multiplies are one instruction only with AVX-512DQ (vpmullq, in
 * x86-64-v4); the avx2 clone builds each from three 32-bit vpmuludq, and other CPUs run the scalar
 * clone.  Integer arithmetic: every clone gives the same bits.  Measured ~8% of the kernel's time
 * an article on an AVX-512 machine (fmix64_all and grams5); on an AMD EPYC with AVX2 only, the
 * avx2 clone took the fused kernel from a median 19.2 to 17.5 us an article (8 alternated
 * process pairs, each the best of 3 passes over 20,000 bench articles; faster in all 8). */
#ifndef VEC64_CLONES /* -DVEC64_CLONES= builds the scalar code only (to test it on any CPU) */
#define VEC64_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#endif

VEC64_CLONES static void fmix64_all(uint64_t *u, Py_ssize_t n)
{
    for (Py_ssize_t j = 0; j < n; j++)
        u[j] = fmix64(u[j]);
}

/* g[i] = top half of fmix64(sum_j u[i + j] w_j) for the k windows of 5 units */
VEC64_CLONES static void grams5(const uint64_t *restrict u, Py_ssize_t k, const uint64_t *restrict w,
                                uint32_t *restrict g)
{
    uint64_t w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4];
    for (Py_ssize_t i = 0; i < k; i++) {
        uint64_t x = u[i] * w0 + u[i + 1] * w1 + u[i + 2] * w2 + u[i + 3] * w3 + u[i + 4] * w4;
        g[i] = (uint32_t)(fmix64(x) >> 32);
    }
}

/* Word units of a 1-byte (Latin-1, usually ASCII) text, as units_impl's word mode.
 *
 * Branch-free per character: the generic loop's word-start / word-end branches mispredict at
 * word ends (word lengths are unpredictable); this loop took the kernel from ~19 to ~12 us an
 * article on ASCII news text (interleaved A/B, the rest unchanged).  Every
 * character stores the running hash at units[nu], only a separator ending a non-empty word
 * advances nu, and X**k comes from the POW table indexed by the position k in the word, so the
 * loop-carried chains are an add and a mask (no serial pw *= X multiply).  Deleted characters
 * (apostrophes) add 0 and do not advance k, exactly as the generic loop skips them; a word of
 * deleted characters only has k == 0 and is not emitted, as the generic loop skips it.
 *
 * POW has NPOW entries: the text is walked in chunks of NPOW / 2 characters, each entered with
 * k < NPOW / 2, so k stays below NPOW inside a chunk.  A word already NPOW / 2 characters long
 * at a chunk start (never in prose) finishes in a plain loop with the multiply chain.
 * units needs len + 1 slots. */
static Py_ssize_t words_1byte(const Py_UCS1 *p, Py_ssize_t len, const Map *m, uint64_t *units)
{
    const uint64_t *wval = m->wval, *wsep = m->wsep, *wkeep = m->wkeep, *winc = m->winc;
    uint64_t h = 0;
    uint64_t k = 0;
    Py_ssize_t nu = 0, i = 0;
    while (i < len) {
        if (__builtin_expect(k >= NPOW / 2, 0)) {
            /* the rest of a very long word: h += c X**k with X**k by multiplication */
            uint64_t pw = POW[k]; /* k < NPOW: the chunk that got here started below NPOW / 2 */
            for (; i < len; i++) {
                if (wsep[p[i]])
                    break;
                if (winc[p[i]]) {
                    h += wval[p[i]] * pw;
                    pw *= WORD_X;
                }
            }
            if (i < len) { /* the separator that ended it */
                units[nu++] = h;
                h = 0;
                k = 0;
                i++;
            }
            continue;
        }
        Py_ssize_t end = len - i > NPOW / 2 ? i + NPOW / 2 : len;
        /* Unrolled: the loop is bound by instructions, not by its two short chains (two
           interleaved halves of a text ran no faster); four characters a turn spare three
           counter updates and branches, ~12% of the loop (a C copy of it, 2,000 bench texts). */
#pragma GCC unroll 4
        for (; i < end; i++) {
            uint32_t b = p[i];
            units[nu] = h;
            nu += wsep[b] & (k != 0);
            h = (h + wval[b] * POW[k]) & wkeep[b];
            k = (k + winc[b]) & wkeep[b];
        }
    }
    if (k)
        units[nu++] = h;
    fmix64_all(units, nu);
    return nu;
}

/* The normalised text as code points into out (len + 1 slots); returns its length. */
static inline __attribute__((always_inline)) Py_ssize_t
norm_impl(int kind, const void *data, Py_ssize_t len, const Map *m, Py_UCS4 *out)
{
    Py_ssize_t n = 0;
    int last_space = 1;
    for (Py_ssize_t i = 0; i < len; i++) {
        uint32_t c = kind == PyUnicode_1BYTE_KIND ? m->latin1[((const Py_UCS1 *)data)[i]]
                                                  : map_cp(m, read_cp(kind, data, i));
        if (__builtin_expect(c == DELETE, 0))
            continue;
        int sep = c == SEP;
        out[n] = sep ? 32u : c;
        n += !(sep & last_space);
        last_space = sep;
    }
    if (n > 0 && out[n - 1] == 32u)
        n--;
    return n;
}

/* Word units (fmix64 of the polynomial hash sum c_i X**i of each word) or char units (separator
 * runs collapsed to one space, none at either end); returns their count.  Branch-free per
 * character: word boundaries are unpredictable. */
static inline __attribute__((always_inline)) Py_ssize_t
units_impl(int kind, const void *data, Py_ssize_t len, const Map *m, int char_mode, uint64_t *units)
{
    Py_ssize_t nu = 0;
    if (kind == PyUnicode_1BYTE_KIND && !char_mode)
        return words_1byte((const Py_UCS1 *)data, len, m, units);
    if (!char_mode) {
        Py_ssize_t i = 0;
        while (i < len) {
            /* skip separators (and deleted characters) */
            uint32_t c;
            for (;;) {
                c = kind == PyUnicode_1BYTE_KIND ? m->latin1[((const Py_UCS1 *)data)[i]]
                                                 : map_cp(m, read_cp(kind, data, i));
                if (c != SEP && c != DELETE)
                    break;
                if (++i >= len)
                    goto words_done;
            }
            /* one word: hash sum c_k X**k over its characters */
            uint64_t h = 0, pw = 1;
            for (;;) {
                if (__builtin_expect(c != DELETE, 1)) {
                    h += (uint64_t)c * pw;
                    pw *= WORD_X;
                }
                if (++i >= len)
                    break;
                c = kind == PyUnicode_1BYTE_KIND ? m->latin1[((const Py_UCS1 *)data)[i]]
                                                 : map_cp(m, read_cp(kind, data, i));
                if (c == SEP)
                    break;
            }
            units[nu++] = fmix64(h);
        }
words_done:;
    } else {
        /* The normalised text (norm_impl) written as 32-bit code points into the front of the
           (allocated, untyped) 64-bit buffer, then widened in place from the end: units[k]
           overwrites 32-bit slots 2k and 2k+1, which (for k > 0) were already read. The 32-bit
           reads go through memcpy so no pointer of another type aliases the buffer. */
        nu = norm_impl(kind, data, len, m, (Py_UCS4 *)(void *)units);
        for (Py_ssize_t k = nu - 1; k >= 0; k--) {
            uint32_t c;
            memcpy(&c, (const char *)units + 4 * k, sizeof c);
            units[k] = fmix64((uint64_t)c + CHAR_ADD);
        }
    }
    return nu;
}

/* Not inlined into text_grams: inlined there it compiled to ~6% more instructions (callgrind). */
__attribute__((noinline)) static Py_ssize_t text_units(PyObject *s, const Map *m, int char_mode, uint64_t *units)
{
    const void *data = PyUnicode_DATA(s);
    Py_ssize_t len = PyUnicode_GET_LENGTH(s);
    switch (PyUnicode_KIND(s)) {
    case PyUnicode_1BYTE_KIND:
        return units_impl(PyUnicode_1BYTE_KIND, data, len, m, char_mode, units);
    case PyUnicode_2BYTE_KIND:
        return units_impl(PyUnicode_2BYTE_KIND, data, len, m, char_mode, units);
    default:
        return units_impl(PyUnicode_4BYTE_KIND, data, len, m, char_mode, units);
    }
}

/* The n-gram hashes of one text into g (unsorted, repeats kept; n = min(ngram, units)); returns
 * their count. units: scratch for len(s) + 1 units. Shared by shingle and shingle_sign. */
static Py_ssize_t text_grams(PyObject *s, const Map *m, int char_mode, int ngram, const uint64_t *w,
                             uint64_t *units, uint32_t *g)
{
    Py_ssize_t nu = text_units(s, m, char_mode, units);
    if (nu <= 0)
        return 0;
    int n = ngram < nu ? ngram : (int)nu;
    Py_ssize_t k = nu - n + 1;
    if (n == 5) {
        grams5(units, k, w, g);
    } else {
        for (Py_ssize_t i = 0; i < k; i++) {
            uint64_t x = 0;
            for (int j = 0; j < n; j++)
                x += units[i + j] * w[j & 63];
            g[i] = (uint32_t)(fmix64(x) >> 32);
        }
    }
    return k;
}

static int check_str(PyObject *s)
{
    if (!PyUnicode_Check(s)) {
        PyErr_SetString(PyExc_TypeError, "texts must be str");
        return -1;
    }
    if (PyUnicode_READY(s) < 0)
        return -1;
    return 0;
}

/* shingle(texts, table, ascii, weights, ngram, char_mode, out_hashes, out_counts) -> total
 * out_hashes: uint32 buffer of at least sum(len(t)) + len(texts) values; out_counts: int64[n]. */
static PyObject *k_shingle(PyObject *self, PyObject *args)
{
    PyObject *texts, *otable, *oascii, *oweights, *ohash, *ocounts;
    int ngram, char_mode;
    if (!PyArg_ParseTuple(args, "O!OOOiiOO", &PyList_Type, &texts, &otable, &oascii, &oweights,
                          &ngram, &char_mode, &ohash, &ocounts))
        return NULL;
    if (ngram < 1) {
        PyErr_SetString(PyExc_ValueError, "ngram must be >= 1");
        return NULL;
    }
    Py_ssize_t nd = PyList_GET_SIZE(texts);
    Buf bt = {0}, ba = {0}, bw = {0}, bh = {0}, bc = {0};
    uint64_t *units = NULL;
    uint32_t *tmp = NULL, *cnt = NULL;
    PyObject *result = NULL;
    Py_ssize_t maxlen = 0, total_cap = 0;
    for (Py_ssize_t d = 0; d < nd; d++) {
        PyObject *s = PyList_GET_ITEM(texts, d);
        if (check_str(s) < 0)
            return NULL;
        Py_ssize_t l = PyUnicode_GET_LENGTH(s);
        if (l > maxlen)
            maxlen = l;
        total_cap += l + 1;
    }
    if (get_buf(otable, &bt, 4, 0x110000, 0, "table") < 0 || get_buf(oascii, &ba, 4, 128, 0, "ascii") < 0
        || get_buf(oweights, &bw, 8, 64, 0, "weights") < 0
        || get_buf(ohash, &bh, 4, total_cap, 1, "out_hashes") < 0
        || get_buf(ocounts, &bc, 8, nd, 1, "out_counts") < 0)
        goto done;
    Map m;
    map_init(&m, (const uint32_t *)bt.view.buf, (const uint32_t *)ba.view.buf);
    const uint64_t *w = (const uint64_t *)bw.view.buf;
    uint32_t *out = (uint32_t *)bh.view.buf;
    int64_t *counts = (int64_t *)bc.view.buf;
    units = (uint64_t *)PyMem_Malloc(sizeof(uint64_t) * (maxlen + 1));
    tmp = (uint32_t *)PyMem_Malloc(sizeof(uint32_t) * (maxlen + 1));
    cnt = (uint32_t *)PyMem_Malloc(sizeof(uint32_t) << SORT_MAX_BITS);
    if (!units || !tmp || !cnt) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t pos = 0;
    for (Py_ssize_t d = 0; d < nd; d++) {
        uint32_t *g = out + pos;
        Py_ssize_t k = text_grams(PyList_GET_ITEM(texts, d), &m, char_mode, ngram, w, units, g);
        k = sort_unique_u32(g, tmp, cnt, k);
        counts[d] = k;
        pos += k;
    }
    result = PyLong_FromSsize_t(pos);
done:
    PyMem_Free(units);
    PyMem_Free(tmp);
    PyMem_Free(cnt);
    rel_buf(&bt);
    rel_buf(&ba);
    rel_buf(&bw);
    rel_buf(&bh);
    rel_buf(&bc);
    return result;
}

/* The ASCII fast path of normalise: the ascii map as bytes (' ' for SEP, 0xFF for DELETE),
 * built once per distinct map (cached by content: a memcmp of 512 bytes a call instead of
 * map_init's 256 entries of four tables).  Valid only when every other entry is a non-space
 * ASCII code point (then the output of ASCII input is ASCII and a space in it only ever comes
 * from a separator, as in norm_impl); otherwise normalise takes the generic loop. */
#define NORM_DEL 0xFFu
static uint32_t norm_ascii_key[128];
static uint8_t norm_bval[256];
static int norm_ascii_state; /* 0: no map cached, 1: cached and fast, 2: cached, not fast */

static int norm_fast_ok(const uint32_t *ascii)
{
    if (norm_ascii_state && memcmp(norm_ascii_key, ascii, sizeof norm_ascii_key) == 0)
        return norm_ascii_state == 1;
    int ok = 1;
    for (int c = 0; c < 128; c++) {
        uint32_t v = ascii[c];
        if (v == SEP)
            norm_bval[c] = ' ';
        else if (v == DELETE)
            norm_bval[c] = NORM_DEL;
        else if (v >= 1 && v < 128 && v != ' ')
            norm_bval[c] = (uint8_t)v;
        else
            ok = 0;
    }
    for (int c = 128; c < 256; c++)
        norm_bval[c] = NORM_DEL; /* never read: the fast path only takes ASCII strings */
    memcpy(norm_ascii_key, ascii, sizeof norm_ascii_key);
    norm_ascii_state = ok ? 1 : 2;
    return ok;
}

/* norm_ascii_scalar, 64 characters at a time with AVX-512 (BW, VBMI, VBMI2): the byte map is
 * one vpermi2b, deleted characters are squeezed out with vpcompressb (only in blocks that have
 * some), and a separator is dropped when the character before it (the last one not deleted)
 * is one too: a mask shift; the kept bytes are compressed and stored with a mask (never past
 * dst + len).  The scalar loop's carried chain (n, and the store address it gives) costs
 * about a cycle a character; this ~12 instructions a block.  Same bytes out (tested). */
static int use_norm512 = 0; /* set with use_avx512, when the CPU also has AVX512BW/VBMI/VBMI2 */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_NORM512 1

static __attribute__((target("avx512f,avx512bw,avx512vbmi,avx512vbmi2"))) Py_ssize_t
norm_ascii_512(const Py_UCS1 *restrict p, Py_ssize_t len, uint8_t *restrict dst)
{
    const __m512i t0 = _mm512_loadu_si512((const void *)norm_bval), t1 = _mm512_loadu_si512((const void *)(norm_bval + 64));
    const __m512i del = _mm512_set1_epi8((char)NORM_DEL), space = _mm512_set1_epi8(' ');
    Py_ssize_t n = 0;
    uint64_t last = 1; /* the previous character not deleted was a separator (or none yet) */
    for (Py_ssize_t i = 0; i < len; i += 64) {
        Py_ssize_t left = len - i;
        __mmask64 valid = left >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << left) - 1);
        __m512i v = _mm512_maskz_permutex2var_epi8(valid, t0, _mm512_maskz_loadu_epi8(valid, p + i), t1);
        __mmask64 dm = _mm512_mask_cmpeq_epi8_mask(valid, v, del);
        if (__builtin_expect(dm != 0, 0)) {
            valid &= ~dm;
            v = _mm512_maskz_compress_epi8(valid, v);
            int cnt = __builtin_popcountll(valid);
            if (cnt == 0)
                continue;
            valid = cnt == 64 ? ~(__mmask64)0 : (((__mmask64)1 << cnt) - 1);
        }
        uint64_t sep = (uint64_t)_mm512_mask_cmpeq_epi8_mask(valid, v, space);
        uint64_t keep = (uint64_t)valid & ~(sep & ((sep << 1) | last));
        int kept = __builtin_popcountll(keep);
        __mmask64 out = kept == 64 ? ~(__mmask64)0 : (((__mmask64)1 << kept) - 1);
        _mm512_mask_storeu_epi8(dst + n, out, _mm512_maskz_compress_epi8((__mmask64)keep, v));
        n += kept;
        last = (sep >> (63 - __builtin_clzll((uint64_t)valid))) & 1; /* the last valid byte's */
    }
    if (n > 0 && dst[n - 1] == ' ')
        n--;
    return n;
}
#endif

/* norm_impl for ASCII text with the byte map: writes the normalised text to dst (len bytes),
 * returns its length.  Deleted characters (apostrophes: rare) take a branch. */
static inline Py_ssize_t norm_ascii_scalar(const Py_UCS1 *restrict p, Py_ssize_t len, uint8_t *restrict dst)
{
    const uint8_t *bval = norm_bval;
    Py_ssize_t n = 0;
    size_t last = 1; /* the previous kept character was a separator (or none yet) */
    for (Py_ssize_t i = 0; i < len; i++) {
        uint8_t v = bval[p[i]];
        if (__builtin_expect(v == NORM_DEL, 0))
            continue;
        size_t sep = v == ' ';
        dst[n] = v;
        n += (sep & last) ^ 1;
        last = sep;
    }
    if (n > 0 && dst[n - 1] == ' ')
        n--;
    return n;
}

static inline Py_ssize_t norm_ascii(const Py_UCS1 *restrict p, Py_ssize_t len, uint8_t *restrict dst)
{
#ifdef HAVE_NORM512
    if (use_norm512)
        return norm_ascii_512(p, len, dst);
#endif
    return norm_ascii_scalar(p, len, dst);
}

/* normalise(texts, table, ascii) -> list[str]: mapped, separator runs -> one space, stripped. */
static PyObject *k_normalise(PyObject *self, PyObject *args)
{
    PyObject *texts, *otable, *oascii;
    if (!PyArg_ParseTuple(args, "O!OO", &PyList_Type, &texts, &otable, &oascii))
        return NULL;
    Buf bt = {0}, ba = {0};
    PyObject *out = NULL;
    Py_UCS4 *buf = NULL;
    Py_ssize_t cap = 0;
    if (get_buf(otable, &bt, 4, 0x110000, 0, "table") < 0 || get_buf(oascii, &ba, 4, 128, 0, "ascii") < 0)
        goto fail;
    Map m;
    int have_map = 0; /* map_init only for a text the ASCII fast path does not take */
    int fast = norm_fast_ok((const uint32_t *)ba.view.buf);
    Py_ssize_t nd = PyList_GET_SIZE(texts);
    out = PyList_New(nd);
    if (!out)
        goto fail;
    for (Py_ssize_t d = 0; d < nd; d++) {
        PyObject *s = PyList_GET_ITEM(texts, d);
        if (check_str(s) < 0)
            goto fail;
        int kind = PyUnicode_KIND(s);
        const void *data = PyUnicode_DATA(s);
        Py_ssize_t len = PyUnicode_GET_LENGTH(s);
        PyObject *r;
        if (fast && PyUnicode_IS_ASCII(s)) {
            /* straight into the str: never longer than the input, shrunk when shorter */
            r = PyUnicode_New(len, 127);
            if (!r)
                goto fail;
            Py_ssize_t n = norm_ascii((const Py_UCS1 *)data, len, PyUnicode_1BYTE_DATA(r));
            if (n < len) {
                if (n == 0) {
                    Py_DECREF(r);
                    r = PyUnicode_New(0, 0); /* the empty-string singleton */
                    if (!r)
                        goto fail;
                } else {
                    PyUnicode_1BYTE_DATA(r)[n] = 0;
                    if (PyUnicode_Resize(&r, n) < 0)
                        goto fail;
                }
            }
            PyList_SET_ITEM(out, d, r);
            continue;
        }
        if (!have_map) {
            map_init(&m, (const uint32_t *)bt.view.buf, (const uint32_t *)ba.view.buf);
            have_map = 1;
        }
        if (len > cap) {
            PyMem_Free(buf);
            cap = len;
            buf = (Py_UCS4 *)PyMem_Malloc(sizeof(Py_UCS4) * (cap + 1));
            if (!buf) {
                PyErr_NoMemory();
                goto fail;
            }
        }
        Py_ssize_t n;
        if (kind == PyUnicode_1BYTE_KIND)
            n = norm_impl(PyUnicode_1BYTE_KIND, data, len, &m, buf);
        else if (kind == PyUnicode_2BYTE_KIND)
            n = norm_impl(PyUnicode_2BYTE_KIND, data, len, &m, buf);
        else
            n = norm_impl(PyUnicode_4BYTE_KIND, data, len, &m, buf);
        if (PyUnicode_IS_ASCII(s)) { /* ASCII in, ASCII out */
            r = PyUnicode_New(n, 127);
            if (!r)
                goto fail;
            Py_UCS1 *dst = PyUnicode_1BYTE_DATA(r);
            for (Py_ssize_t i = 0; i < n; i++)
                dst[i] = (Py_UCS1)buf[i];
        } else {
            r = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, buf, n);
            if (!r)
                goto fail;
        }
        PyList_SET_ITEM(out, d, r);
    }
    PyMem_Free(buf);
    rel_buf(&bt);
    rel_buf(&ba);
    return out;
fail:
    Py_XDECREF(out);
    PyMem_Free(buf);
    rel_buf(&bt);
    rel_buf(&ba);
    return NULL;
}

/* ---- MinHash ------------------------------------------------------------------------------ */

/* The portable loop (used without AVX-512, or when forced): min over k of a*h_k + b for one
 * permutation, vectorised over the shingles by the compiler. */
__attribute__((target_clones("avx512f", "avx2", "default")))
static void minhash_doc_portable(const uint32_t *restrict h, Py_ssize_t n, const uint32_t *restrict a,
                                 const uint32_t *restrict b, int np_, uint32_t *restrict sig)
{
    for (int p = 0; p < np_; p++) {
        uint32_t ap = a[p], bp = b[p];
        uint32_t m0 = 0xFFFFFFFFu;
        for (Py_ssize_t i = 0; i < n; i++) {
            uint32_t v = ap * h[i] + bp;
            m0 = v < m0 ? v : m0;
        }
        sig[p] = m0;
    }
}

/* 0: the portable loop; 1: explicit AVX-512 (chosen at import when the CPU has AVX-512F and
 * THRESHER_NO_AVX512 is unset; set_avx512() switches it, for the tests). */
static int use_avx512 = 0;

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_X86_SIMD 1

/* Up to 8 vectors of 16 permutations (128) held in registers, the (mixed) shingles streamed once
 * and broadcast: no tail loop, no horizontal reductions, 8 independent min chains.  Each
 * 16 (permutation, shingle) pairs cost vpmulld (2 uops) + vpaddd + vpminud on the two 512-bit
 * ports, i.e. ~2 cycles, which is what it measures (~4.2 us an article of ~600 shingles against
 * ~5.3 us for the portable loop's avx512f clone, interleaved, same process).  The other order,
 * 16 shingles a vector with 8 permutation accumulators (masked tail, one horizontal min per
 * permutation), measured ~9% slower than this one.
 * Lanes past np_ (a partial last vector) compute garbage and are never stored. */
static inline __attribute__((always_inline, target("avx512f"))) void
mh512_block(const uint32_t *restrict h, Py_ssize_t n, const uint32_t *restrict a,
            const uint32_t *restrict b, int np_, uint32_t *restrict sig, const int G)
{
    __m512i A[8], B[8], M[8];
    for (int g = 0; g < G; g++) {
        int left = np_ - 16 * g;
        __mmask16 k = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        A[g] = _mm512_maskz_loadu_epi32(k, a + 16 * g);
        B[g] = _mm512_maskz_loadu_epi32(k, b + 16 * g);
        M[g] = _mm512_set1_epi32(-1);
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        __m512i x = _mm512_set1_epi32((int)h[i]);
        for (int g = 0; g < G; g++)
            M[g] = _mm512_min_epu32(M[g], _mm512_add_epi32(_mm512_mullo_epi32(A[g], x), B[g]));
    }
    for (int g = 0; g < G; g++) {
        int left = np_ - 16 * g;
        __mmask16 k = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        _mm512_mask_storeu_epi32(sig + 16 * g, k, M[g]);
    }
}

__attribute__((target("avx512f")))
static void minhash_doc_avx512(const uint32_t *restrict h, Py_ssize_t n, const uint32_t *restrict a,
                               const uint32_t *restrict b, int np_, uint32_t *restrict sig)
{
    for (int p0 = 0; p0 < np_; p0 += 128) {
        int np = np_ - p0 < 128 ? np_ - p0 : 128;
        switch ((np + 15) / 16) {
        case 1: mh512_block(h, n, a + p0, b + p0, np, sig + p0, 1); break;
        case 2: mh512_block(h, n, a + p0, b + p0, np, sig + p0, 2); break;
        case 3: mh512_block(h, n, a + p0, b + p0, np, sig + p0, 3); break;
        case 4: mh512_block(h, n, a + p0, b + p0, np, sig + p0, 4); break;
        case 5: mh512_block(h, n, a + p0, b + p0, np, sig + p0, 5); break;
        case 6: mh512_block(h, n, a + p0, b + p0, np, sig + p0, 6); break;
        case 7: mh512_block(h, n, a + p0, b + p0, np, sig + p0, 7); break;
        default: mh512_block(h, n, a + p0, b + p0, np, sig + p0, 8); break;
        }
    }
}

/* dst[i] = fmix32(src[i]) (dst may be src) */
__attribute__((target("avx512f")))
static void fmix32_avx512(const uint32_t *src, uint32_t *dst, Py_ssize_t n)
{
    const __m512i c1 = _mm512_set1_epi32((int)0x85EBCA6Bu), c2 = _mm512_set1_epi32((int)0xC2B2AE35u);
    Py_ssize_t i = 0;
    for (; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512i x = _mm512_maskz_loadu_epi32(k, src + i);
        x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));
        x = _mm512_mullo_epi32(x, c1);
        x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 13));
        x = _mm512_mullo_epi32(x, c2);
        x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));
        _mm512_mask_storeu_epi32(dst + i, k, x);
    }
}

/* 1: the explicit AVX2 MinHash loop (chosen at import when the CPU has AVX2 and THRESHER_NO_AVX2
 * is unset; set_avx2() switches it, for the tests).  Used only when the AVX-512 path is off. */
static int use_avx2 = 0;

/* mh512_block's layout in 256-bit registers: 4 vectors of 8 permutations (32) in registers,
 * the shingles streamed once per 32 and broadcast (16 ymm registers hold 4 A, 4 B, 4 minima,
 * the shingle and a temporary; 8 vectors would spill).  On an AMD EPYC (Zen 3, no AVX-512)
 * this measured ~2x faster than the portable loop's avx2 clone, whose per-permutation
 * horizontal min and single accumulator it avoids. */
static inline __attribute__((always_inline, target("avx2"))) void
mh256_block(const uint32_t *restrict h, Py_ssize_t n, const uint32_t *restrict a,
            const uint32_t *restrict b, int np_, uint32_t *restrict sig, const int G)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i A[4], B[4], M[4], K[4];
    for (int g = 0; g < G; g++) {
        K[g] = _mm256_cmpgt_epi32(_mm256_set1_epi32(np_ - 8 * g), lane); /* lanes below np_ */
        A[g] = _mm256_maskload_epi32((const int *)(a + 8 * g), K[g]);
        B[g] = _mm256_maskload_epi32((const int *)(b + 8 * g), K[g]);
        M[g] = _mm256_set1_epi32(-1);
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        __m256i x = _mm256_set1_epi32((int)h[i]);
        for (int g = 0; g < G; g++)
            M[g] = _mm256_min_epu32(M[g], _mm256_add_epi32(_mm256_mullo_epi32(A[g], x), B[g]));
    }
    for (int g = 0; g < G; g++)
        _mm256_maskstore_epi32((int *)(sig + 8 * g), K[g], M[g]);
}

__attribute__((target("avx2")))
static void minhash_doc_avx2(const uint32_t *restrict h, Py_ssize_t n, const uint32_t *restrict a,
                             const uint32_t *restrict b, int np_, uint32_t *restrict sig)
{
    for (int p0 = 0; p0 < np_; p0 += 32) {
        int np = np_ - p0 < 32 ? np_ - p0 : 32;
        switch ((np + 7) / 8) {
        case 1: mh256_block(h, n, a + p0, b + p0, np, sig + p0, 1); break;
        case 2: mh256_block(h, n, a + p0, b + p0, np, sig + p0, 2); break;
        case 3: mh256_block(h, n, a + p0, b + p0, np, sig + p0, 3); break;
        default: mh256_block(h, n, a + p0, b + p0, np, sig + p0, 4); break;
        }
    }
}

#endif

/* dst[i] = fmix32(src[i]) (dst may be src): the avx2 clone is vectorised by the compiler
 * (32-bit multiplies are one vpmulld), as fast as an explicit loop needs to be. */
__attribute__((target_clones("avx2", "default")))
static void fmix32_loop(const uint32_t *src, uint32_t *dst, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        dst[i] = fmix32(src[i]);
}

/* The signature of n pre-mixed hashes */
static void minhash_doc(const uint32_t *restrict h, Py_ssize_t n, const uint32_t *restrict a,
                        const uint32_t *restrict b, int np_, uint32_t *restrict sig)
{
#ifdef HAVE_X86_SIMD
    if (use_avx512) {
        minhash_doc_avx512(h, n, a, b, np_, sig);
        return;
    }
    if (use_avx2) {
        minhash_doc_avx2(h, n, a, b, np_, sig);
        return;
    }
#endif
    minhash_doc_portable(h, n, a, b, np_, sig);
}

/* mixed[i] = fmix32(h[i]) for i < n (mixed may be h) */
static void fmix32_many(const uint32_t *h, uint32_t *mixed, Py_ssize_t n)
{
#ifdef HAVE_X86_SIMD
    if (use_avx512) {
        fmix32_avx512(h, mixed, n);
        return;
    }
#endif
    fmix32_loop(h, mixed, n);
}

static int norm512_cpu(void)
{
#ifdef HAVE_NORM512
    return __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vbmi")
           && __builtin_cpu_supports("avx512vbmi2");
#else
    return 0;
#endif
}

/* set_norm512([mode]) -> whether ASCII normalisation takes norm_ascii_512 now; mode 0: the
 * scalar loop (for the tests and measurements).  On only with AVX-512 on (set_avx512) and a
 * CPU with AVX512BW/VBMI/VBMI2. */
static PyObject *k_set_norm512(PyObject *self, PyObject *args)
{
    int mode = -1;
    if (!PyArg_ParseTuple(args, "|i", &mode))
        return NULL;
    if (mode >= 0)
        use_norm512 = mode && use_avx512 && norm512_cpu();
    return PyLong_FromLong(use_norm512);
}

/* set_avx512([mode]) -> the mode now in use (0 portable, 1 AVX-512); without mode it only
 * reports it.  A CPU without AVX-512F always stays on 0. */
static PyObject *k_set_avx512(PyObject *self, PyObject *args)
{
    int mode = -1;
    if (!PyArg_ParseTuple(args, "|i", &mode))
        return NULL;
    if (mode >= 0) {
#ifdef HAVE_X86_SIMD
        __builtin_cpu_init();
        use_avx512 = mode && __builtin_cpu_supports("avx512f");
        use_norm512 = use_avx512 && norm512_cpu();
#else
        use_avx512 = 0;
#endif
    }
    return PyLong_FromLong(use_avx512);
}

/* set_avx2([mode]) -> the mode now in use (0 portable, 1 AVX2), as set_avx512; the AVX2 loop
 * runs only while the AVX-512 one is off.  A CPU without AVX2 always stays on 0. */
static PyObject *k_set_avx2(PyObject *self, PyObject *args)
{
    int mode = -1;
    if (!PyArg_ParseTuple(args, "|i", &mode))
        return NULL;
    if (mode >= 0) {
#ifdef HAVE_X86_SIMD
        __builtin_cpu_init();
        use_avx2 = mode && __builtin_cpu_supports("avx2");
#else
        use_avx2 = 0;
#endif
    }
    return PyLong_FromLong(use_avx2);
}

/* minhash(flat, offsets, a, b, out): out[d] = signature of flat[offsets[d]:offsets[d+1]] */
static PyObject *k_minhash(PyObject *self, PyObject *args)
{
    PyObject *oflat, *ooff, *oa, *ob, *oout;
    if (!PyArg_ParseTuple(args, "OOOOO", &oflat, &ooff, &oa, &ob, &oout))
        return NULL;
    Buf bf = {0}, bo = {0}, ba = {0}, bb = {0}, bs = {0};
    uint32_t *mixed = NULL;
    PyObject *result = NULL;
    if (get_buf(oflat, &bf, 4, 0, 0, "flat") < 0 || get_buf(ooff, &bo, 8, 1, 0, "offsets") < 0
        || get_buf(oa, &ba, 4, 1, 0, "a") < 0)
        goto done;
    Py_ssize_t nperm = ba.view.len / 4;
    Py_ssize_t nd = bo.view.len / 8 - 1;
    Py_ssize_t nflat = bf.view.len / 4;
    if (get_buf(ob, &bb, 4, nperm, 0, "b") < 0 || get_buf(oout, &bs, 4, nd * nperm, 1, "out") < 0)
        goto done;
    const int64_t *off = (const int64_t *)bo.view.buf;
    const uint32_t *flat = (const uint32_t *)bf.view.buf;
    uint32_t *sig = (uint32_t *)bs.view.buf;
    Py_ssize_t maxn = 0;
    for (Py_ssize_t d = 0; d < nd; d++) {
        if (off[d] < 0 || off[d + 1] < off[d] || off[d + 1] > nflat) {
            PyErr_SetString(PyExc_ValueError, "bad offsets");
            goto done;
        }
        if (off[d + 1] - off[d] > maxn)
            maxn = off[d + 1] - off[d];
    }
    mixed = (uint32_t *)PyMem_Malloc(sizeof(uint32_t) * (maxn + 1));
    if (!mixed) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t d = 0; d < nd; d++) {
        Py_ssize_t n = off[d + 1] - off[d];
        const uint32_t *h = flat + off[d];
        fmix32_many(h, mixed, n);
        minhash_doc(mixed, n, (const uint32_t *)ba.view.buf, (const uint32_t *)bb.view.buf,
                    (int)nperm, sig + d * nperm);
    }
    Py_END_ALLOW_THREADS
    Py_INCREF(Py_None);
    result = Py_None;
done:
    PyMem_Free(mixed);
    rel_buf(&bf);
    rel_buf(&bo);
    rel_buf(&ba);
    rel_buf(&bb);
    rel_buf(&bs);
    return result;
}

/* ---- texts straight to signatures -------------------------------------------------------- */

/* ---- texts straight to sizes and signatures ------------------------------------------------ */

/* shingle_sign(texts, table, ascii, weights, ngram, char_mode, a, b, out_sizes, out_sigs):
 * out_sizes[d] = the number of distinct n-gram hashes of text d (``shingle``'s count) and
 * out_sigs[d] = the MinHash signature of them (``minhash``), one text at a time: its grams are
 * hashed, counted (distinct ones), mixed and signed while they are in L1, with no
 * flat array of all the hashes in between (texts of COUNT_MAX grams or more are sort-uniqued
 * for the count instead). out_sizes None: signatures only, the grams not counted (a MinHash
 * does not depend on repeats or order). */
static PyObject *k_shingle_sign(PyObject *self, PyObject *args)
{
    PyObject *texts, *otable, *oascii, *oweights, *oa, *ob, *osizes, *osigs;
    int ngram, char_mode;
    if (!PyArg_ParseTuple(args, "O!OOOiiOOOO", &PyList_Type, &texts, &otable, &oascii, &oweights,
                          &ngram, &char_mode, &oa, &ob, &osizes, &osigs))
        return NULL;
    if (ngram < 1) {
        PyErr_SetString(PyExc_ValueError, "ngram must be >= 1");
        return NULL;
    }
    Py_ssize_t nd = PyList_GET_SIZE(texts);
    Buf bt = {0}, bas = {0}, bw = {0}, ba = {0}, bb = {0}, bz = {0}, bs = {0};
    uint64_t *units = NULL;
    uint32_t *g = NULL, *tmp = NULL, *cnt = NULL;
    PyObject *result = NULL;
    Py_ssize_t maxlen = 0;
    for (Py_ssize_t d = 0; d < nd; d++) {
        PyObject *s = PyList_GET_ITEM(texts, d);
        if (check_str(s) < 0)
            return NULL;
        if (PyUnicode_GET_LENGTH(s) > maxlen)
            maxlen = PyUnicode_GET_LENGTH(s);
    }
    if (get_buf(otable, &bt, 4, 0x110000, 0, "table") < 0 || get_buf(oascii, &bas, 4, 128, 0, "ascii") < 0
        || get_buf(oweights, &bw, 8, 64, 0, "weights") < 0 || get_buf(oa, &ba, 4, 1, 0, "a") < 0)
        goto done;
    Py_ssize_t nperm = ba.view.len / 4;
    int counting = osizes != Py_None;
    if (get_buf(ob, &bb, 4, nperm, 0, "b") < 0
        || (counting && get_buf(osizes, &bz, 8, nd, 1, "out_sizes") < 0)
        || get_buf(osigs, &bs, 4, nd * nperm, 1, "out_sigs") < 0)
        goto done;
    Map m;
    map_init(&m, (const uint32_t *)bt.view.buf, (const uint32_t *)bas.view.buf);
    const uint64_t *w = (const uint64_t *)bw.view.buf;
    const uint32_t *pa = (const uint32_t *)ba.view.buf, *pb = (const uint32_t *)bb.view.buf;
    int64_t *sizes = (int64_t *)bz.view.buf;
    uint32_t *sigs = (uint32_t *)bs.view.buf;
    units = (uint64_t *)PyMem_Malloc(sizeof(uint64_t) * (maxlen + 1));
    g = (uint32_t *)PyMem_Malloc(sizeof(uint32_t) * (maxlen + 1));
    if (counting) {
        tmp = (uint32_t *)PyMem_Malloc(sizeof(uint32_t) * (maxlen + 1));
        cnt = (uint32_t *)PyMem_Malloc(sizeof(uint32_t) << (COUNT_BITS > SORT_MAX_BITS ? COUNT_BITS : SORT_MAX_BITS));
    }
    if (!units || !g || (counting && (!tmp || !cnt))) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t d = 0; d < nd; d++) {
        Py_ssize_t k = text_grams(PyList_GET_ITEM(texts, d), &m, char_mode, ngram, w, units, g);
        if (counting) {
            if (k < COUNT_MAX) {
                sizes[d] = count_distinct_u32(g, cnt, k);
            } else {
                k = sort_unique_u32(g, tmp, cnt, k);
                sizes[d] = k;
            }
        }
        fmix32_many(g, g, k);
        minhash_doc(g, k, pa, pb, (int)nperm, sigs + d * nperm);
    }
    Py_INCREF(Py_None);
    result = Py_None;
done:
    PyMem_Free(units);
    PyMem_Free(g);
    PyMem_Free(tmp);
    PyMem_Free(cnt);
    rel_buf(&bt);
    rel_buf(&bas);
    rel_buf(&bw);
    rel_buf(&ba);
    rel_buf(&bb);
    rel_buf(&bz);
    rel_buf(&bs);
    return result;
}

/* ---- word-set similarity of paragraphs ---------------------------------------------------- */

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

/* word_pairs(norms, threshold, pre) -> [(k, m), ...] with m < k, both lengths comparable
 * (min >= threshold * max) and word-set Jaccard >= pre (inter >= pre * union), for normalised
 * texts (words separated by single spaces).  Words are compared by a 64-bit hash.
 *
 * Intersections come from one pass over the words with a hash table of postings (the
 * paragraphs each word was seen in): sorting every paragraph's word hashes with qsort cost
 * ~65 us an article, most of the paragraph-repeat stage, while the usual answer is "no pair".
 * Articles with very many paragraphs would make the n*n counts large; they use the
 * sort-and-merge path, which gives the same pairs. */

#define WP_TABLE_MAX_PARAS 256
#define WP_BITMAP_LOG2 10 /* the prefilter's bitmap of a paragraph's words: 1024 bits */
#define WP_BITMAP_WORDS (1 << (WP_BITMAP_LOG2 - 6))

typedef struct {
    uint64_t key;
    uint32_t last; /* base + paragraph that last added this word + 1; <= base = empty slot */
    int32_t head;  /* newest posting node */
} wp_slot;

/* The hash table is kept between calls (zeroing ~32 KB a call, with calloc, was ~26k
 * instructions an article): each call takes a fresh range of stamps above wp_base, so slots
 * written by earlier calls (last <= base) read as empty.  Zeroed again only when the stamps
 * would wrap or the table grows.  Tables above WP_KEEP_SLOTS are a per-call calloc as
 * before, and so is a call made while the kept table is in use (wp_busy: cannot happen
 * under the GIL today, as nothing in the table pass calls back into Python). */
#define WP_KEEP_SLOTS ((size_t)1 << 16)
static wp_slot *wp_keep;
static size_t wp_keep_cap;
static uint32_t wp_base;
static int wp_busy;

/* Word hashes: only their equality matters (the pairs depend on which words are equal), so
 * any function of the word's code points that does not collide gives the same pairs.  A word
 * of code points all below 256 (every word of a 1-byte text) hashes its bytes: up to 16 bytes
 * as two zero-padded little-endian 64-bit loads and the length, folded by one 64x64->128-bit
 * multiply; longer words chain 8-byte chunks.  Other words keep the polynomial hash
 * sum (c_k + 1) X**k (cannot equal a byte word: different code points).  The byte form in
 * the 1-byte loop and in wp_bytes_hash (used for the words of 2- and 4-byte texts) is the
 * same function: a word hashes the same in a 1-byte text and in a wider one. */
static const uint64_t WP_K0 = 0xA0761D6478BD642FULL, WP_K1 = 0xE7037ED1A0B428DBULL,
                      WP_K2 = 0x8EBC6AF09C88C6E3ULL, WP_K3 = 0x589965CC75374CC3ULL;

static inline uint64_t wp_fold(uint64_t a, uint64_t b)
{
    unsigned __int128 p = (unsigned __int128)a * b;
    return (uint64_t)p ^ (uint64_t)(p >> 64);
}

static inline uint64_t wp_short(uint64_t lo, uint64_t hi, uint64_t len)
{
    return wp_fold(lo ^ WP_K0, hi ^ (len * WP_K2) ^ WP_K1);
}

static inline uint64_t wp_load_pad(const uint8_t *p, size_t n) /* n <= 8 bytes, zero-padded */
{
    uint64_t x = 0;
    memcpy(&x, p, n);
    return x;
}

/* any length >= 17: 8-byte chunks, the last zero-padded */
static uint64_t wp_long(const uint8_t *p, size_t len)
{
    uint64_t h = wp_fold(len ^ WP_K3, WP_K2);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t x;
        memcpy(&x, p + i, 8);
        h = wp_fold(h ^ x ^ WP_K0, WP_K1) + i;
    }
    if (i < len)
        h = wp_fold(h ^ wp_load_pad(p + i, len - i) ^ WP_K0, WP_K1) + i;
    return wp_fold(h ^ WP_K3, WP_K2 ^ len);
}

static inline uint64_t wp_bytes_hash(const uint8_t *p, size_t len)
{
    if (len > 16)
        return wp_long(p, len);
    uint64_t lo = wp_load_pad(p, len < 8 ? len : 8);
    uint64_t hi = len > 8 ? wp_load_pad(p + 8, len - 8) : 0;
    return wp_short(lo, hi, len);
}

/* byte masks of the first n bytes of a 64-bit word, n = 0..8 */
static const uint64_t WP_MASK[9] = {0, 0xFFULL, 0xFFFFULL, 0xFFFFFFULL, 0xFFFFFFFFULL,
                                    0xFFFFFFFFFFULL, 0xFFFFFFFFFFFFULL, 0xFFFFFFFFFFFFFFULL,
                                    0xFFFFFFFFFFFFFFFFULL};

/* Scratch of wp_hash_words (the text copied with padding); grown as needed, GIL held. */
static uint8_t *wp_pad_buf;
static size_t wp_pad_cap;

/* Words of a 1-byte text: a bit mask of its spaces, 64 bytes at a time (SSE2 compares), and
 * one hash a space (the word before it, skipped if empty: runs of spaces, which normalised
 * text does not have, give no empty words).  The text is copied into a buffer with a space
 * after it (ending the last word) and zero bytes beyond, so the 16-byte loads of a word and
 * the 64-byte mask loads stay inside it.  No branch on a word's length below 17 bytes. */
static Py_ssize_t wp_words_1byte(const uint8_t *src, Py_ssize_t len, uint64_t *out)
{
    size_t need = (size_t)len + 1 + 64 + 16;
    if (need > wp_pad_cap) {
        size_t cap = need < 4096 ? 4096 : need * 2;
        uint8_t *nb = (uint8_t *)PyMem_Realloc(wp_pad_buf, cap);
        if (!nb)
            return -1;
        wp_pad_buf = nb;
        wp_pad_cap = cap;
    }
    uint8_t *p = wp_pad_buf;
    memcpy(p, src, (size_t)len);
    p[len] = ' ';
    memset(p + len + 1, 0, 64 + 16);
    Py_ssize_t pos = 0;
    size_t s = 0; /* start of the current word */
    const __m128i sp = _mm_set1_epi8(' ');
    for (size_t base = 0; base <= (size_t)len; base += 64) {
        const __m128i *q = (const __m128i *)(const void *)(p + base);
        uint64_t m = (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128(q), sp))
                     | (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128(q + 1), sp)) << 16
                     | (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128(q + 2), sp)) << 32
                     | (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128(q + 3), sp)) << 48;
        while (m) {
            size_t e = base + (size_t)__builtin_ctzll(m);
            m &= m - 1;
            size_t wl = e - s;
            uint64_t h;
            if (__builtin_expect(wl <= 16, 1)) {
                uint64_t lo, hi;
                memcpy(&lo, p + s, 8);
                memcpy(&hi, p + s + 8, 8);
                size_t nlo = wl < 8 ? wl : 8;
                lo &= WP_MASK[nlo];
                hi &= WP_MASK[wl - nlo];
                h = wp_short(lo, hi, wl);
            } else {
                h = wp_long(p + s, wl);
            }
            out[pos] = h;
            pos += wl != 0;
            s = e + 1;
        }
    }
    return pos;
}

/* Words of a 2- or 4-byte text (generic loop); returns their count. */
static Py_ssize_t wp_words_wide(int kind, const void *data, Py_ssize_t len, uint64_t *out)
{
    Py_ssize_t pos = 0, i = 0;
    uint8_t small[64];
    while (i < len) {
        while (i < len && read_cp(kind, data, i) == ' ')
            i++;
        if (i >= len)
            break;
        Py_ssize_t j = i;
        uint32_t mx = 0;
        while (j < len) {
            uint32_t c = read_cp(kind, data, j);
            if (c == ' ')
                break;
            mx |= c;
            j++;
        }
        Py_ssize_t wl = j - i;
        uint64_t h;
        if (mx < 256) {
            uint8_t *b = small;
            if (wl > (Py_ssize_t)sizeof small) {
                b = (uint8_t *)PyMem_Malloc((size_t)wl);
                if (!b)
                    return -1;
            }
            for (Py_ssize_t k = 0; k < wl; k++)
                b[k] = (uint8_t)read_cp(kind, data, i + k);
            h = wp_bytes_hash(b, (size_t)wl);
            if (b != small)
                PyMem_Free(b);
        } else {
            uint64_t ph = 0;
            for (Py_ssize_t k = 0; k < wl; k++)
                ph += ((uint64_t)read_cp(kind, data, i + k) + 1) * (k < NPOW ? POW[k] : pow_slow(k));
            h = fmix64(ph);
        }
        out[pos++] = h;
        i = j;
    }
    return pos;
}

/* a text word_pairs reads: a str's or a normalised buffer's characters */
typedef struct {
    int kind;
    const void *data;
    Py_ssize_t len;
} wp_text;

/* the words of one text as hashes into out (at most len / 2 + 1 of them, and out has one slot
   more); -1 when out of memory */
static Py_ssize_t wp_hash_words(const wp_text *t, uint64_t *out)
{
    if (t->kind == PyUnicode_1BYTE_KIND)
        return wp_words_1byte((const uint8_t *)t->data, t->len, out);
    return wp_words_wide(t->kind, t->data, t->len, out);
}

static int wp_emit(PyObject *out, Py_ssize_t k, Py_ssize_t m)
{
    PyObject *t = Py_BuildValue("(nn)", k, m);
    if (!t || PyList_Append(out, t) < 0) {
        Py_XDECREF(t);
        return -1;
    }
    Py_DECREF(t);
    return 0;
}

static inline int wp_lengths_ok(const wp_text *norms, Py_ssize_t k, Py_ssize_t m, double threshold)
{
    double lk = (double)norms[k].len, lm = (double)norms[m].len;
    return (lk < lm ? lk : lm) >= threshold * (lk > lm ? lk : lm);
}

static PyObject *wp_pairs(const wp_text *norms, Py_ssize_t n, double threshold, double pre);

static PyObject *k_word_pairs(PyObject *self, PyObject *args)
{
    PyObject *list;
    double threshold, pre;
    if (!PyArg_ParseTuple(args, "O!dd", &PyList_Type, &list, &threshold, &pre))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(list);
    wp_text *norms = (wp_text *)PyMem_Malloc(sizeof(wp_text) * (size_t)(n + 1));
    if (!norms)
        return PyErr_NoMemory();
    for (Py_ssize_t d = 0; d < n; d++) {
        PyObject *s = PyList_GET_ITEM(list, d);
        if (check_str(s) < 0) {
            PyMem_Free(norms);
            return NULL;
        }
        norms[d] = (wp_text){PyUnicode_KIND(s), PyUnicode_DATA(s), PyUnicode_GET_LENGTH(s)};
    }
    PyObject *out = wp_pairs(norms, n, threshold, pre);
    PyMem_Free(norms);
    return out;
}

/* word_pairs over n texts */
static PyObject *wp_pairs(const wp_text *norms, Py_ssize_t n, double threshold, double pre)
{
    Py_ssize_t total = 0;
    for (Py_ssize_t d = 0; d < n; d++)
        total += norms[d].len / 2 + 1;
    PyObject *out = PyList_New(0);
    if (!out)
        return NULL;
    /* Only paragraphs with a partner of comparable length can be in a pair: the others are
       neither hashed nor counted (usually most of an article's words). */
    char *need = (char *)PyMem_Calloc((size_t)n + 1, 1);
    if (!need) {
        Py_DECREF(out);
        return PyErr_NoMemory();
    }
    int any = 0;
    for (Py_ssize_t k = 1; k < n; k++)
        for (Py_ssize_t m = 0; m < k; m++)
            if (wp_lengths_ok(norms, k, m, threshold))
                any = need[k] = need[m] = 1;
    if (!any) {
        PyMem_Free(need);
        return out;
    }
    uint64_t *words = (uint64_t *)PyMem_Malloc(sizeof(uint64_t) * (total + 1));
    Py_ssize_t *start = (Py_ssize_t *)PyMem_Malloc(sizeof(Py_ssize_t) * (n + 1));
    wp_slot *table = NULL, *ktable = NULL; /* ktable: the table in use (table or wp_keep) */
    int32_t *node_para = NULL, *node_next = NULL, *inter = NULL, *distinct = NULL;
    if (!words || !start) {
        PyErr_NoMemory();
        goto fail;
    }
    Py_ssize_t pos = 0;
    for (Py_ssize_t d = 0; d < n; d++) {
        start[d] = pos;
        if (need[d]) {
            Py_ssize_t nw = wp_hash_words(&norms[d], words + pos);
            if (nw < 0) {
                PyErr_NoMemory();
                goto fail;
            }
            pos += nw;
        }
    }
    start[n] = pos;
    /* Most articles have no pair: a bitmap of each paragraph's words usually shows it before
       the postings table is built.  Bits set in one bitmap and not the other come from words
       in one word set and not the other, so popcount(a ^ b) <= |A ^ B|; and word-set Jaccard
       >= pre needs |A ^ B| <= (1 - pre) / (1 + pre) * (|A| + |B|), with word counts (repeats
       included) as upper bounds of |A| and |B|.  A pair failing that cannot pass the exact
       test below, so dropping it (and the paragraphs left without a pair) changes nothing.
       The slack covers the rounding of the exact test's doubles. */
    if (pre > 0.0) {
        uint64_t *bits = (uint64_t *)PyMem_Calloc((size_t)n * WP_BITMAP_WORDS, sizeof(uint64_t));
        if (!bits) {
            PyErr_NoMemory();
            goto fail;
        }
        for (Py_ssize_t d = 0; d < n; d++) {
            uint64_t *b = bits + d * WP_BITMAP_WORDS;
            for (Py_ssize_t i = start[d]; i < start[d + 1]; i++) {
                unsigned at = (unsigned)(words[i] >> (64 - WP_BITMAP_LOG2));
                b[at >> 6] |= (uint64_t)1 << (at & 63);
            }
        }
        memset(need, 0, (size_t)n);
        any = 0;
        for (Py_ssize_t k = 1; k < n; k++)
            for (Py_ssize_t m = 0; m < k; m++) {
                if (!wp_lengths_ok(norms, k, m, threshold))
                    continue;
                const uint64_t *bk = bits + k * WP_BITMAP_WORDS, *bm = bits + m * WP_BITMAP_WORDS;
                int x = 0;
                for (int w = 0; w < WP_BITMAP_WORDS; w++)
                    x += __builtin_popcountll(bk[w] ^ bm[w]);
                double sum = (double)(start[k + 1] - start[k] + start[m + 1] - start[m]);
                if ((1.0 + pre) * (double)x > (1.0 - pre) * sum + 1e-9 * (sum + 1.0))
                    continue;
                any = need[k] = need[m] = 1;
            }
        PyMem_Free(bits);
        if (!any)
            goto done;
    }
    if (n <= WP_TABLE_MAX_PARAS) {
        size_t cap = 16;
        while (cap < (size_t)(2 * pos + 2))
            cap <<= 1;
        uint32_t base = 0;
        if (cap <= WP_KEEP_SLOTS && !wp_busy) {
            if (cap > wp_keep_cap) {
                PyMem_Free(wp_keep);
                wp_keep_cap = 0;
                wp_keep = (wp_slot *)PyMem_Calloc(cap, sizeof(wp_slot));
                if (!wp_keep) {
                    PyErr_NoMemory();
                    goto fail;
                }
                wp_keep_cap = cap;
                wp_base = 0;
            } else if (wp_base > UINT32_MAX - (uint32_t)n - 2) {
                memset(wp_keep, 0, wp_keep_cap * sizeof(wp_slot));
                wp_base = 0;
            }
            base = wp_base;
            wp_base += (uint32_t)n + 1;
            ktable = wp_keep;
            wp_busy = 1;
        } else {
            table = (wp_slot *)PyMem_Calloc(cap, sizeof(wp_slot));
            if (!table) {
                PyErr_NoMemory();
                goto fail;
            }
            ktable = table;
        }
        node_para = (int32_t *)PyMem_Malloc(sizeof(int32_t) * (pos + 1));
        node_next = (int32_t *)PyMem_Malloc(sizeof(int32_t) * (pos + 1));
        inter = (int32_t *)PyMem_Calloc((size_t)(n * n), sizeof(int32_t));
        distinct = (int32_t *)PyMem_Calloc((size_t)n, sizeof(int32_t));
        if (!node_para || !node_next || !inter || !distinct) {
            PyErr_NoMemory();
            goto fail;
        }
        int32_t nodes = 0;
        for (Py_ssize_t d = 0; d < n; d++) {
            if (!need[d])
                continue;
            for (Py_ssize_t i = start[d]; i < start[d + 1]; i++) {
                uint64_t w = words[i];
                size_t at = (size_t)w & (cap - 1);
                while (ktable[at].last > base && ktable[at].key != w)
                    at = (at + 1) & (cap - 1);
                wp_slot *e = &ktable[at];
                if (e->last == base + (uint32_t)d + 1)
                    continue;  /* repeated inside this paragraph */
                if (e->last > base) {
                    for (int32_t nd = e->head; nd >= 0; nd = node_next[nd])
                        inter[d * n + node_para[nd]]++;
                    node_next[nodes] = e->head;
                } else {
                    e->key = w;
                    node_next[nodes] = -1;
                }
                node_para[nodes] = (int32_t)d;
                e->head = nodes++;
                e->last = base + (uint32_t)d + 1;
                distinct[d]++;
            }
        }
        if (ktable == wp_keep)
            wp_busy = 0;
        ktable = NULL;
        for (Py_ssize_t k = 1; k < n; k++)
            for (Py_ssize_t m = 0; m < k; m++) {
                if (!need[k] || !need[m] || !wp_lengths_ok(norms, k, m, threshold))
                    continue;
                double in = (double)inter[k * n + m];
                if (in < pre * ((double)distinct[k] + (double)distinct[m] - in))
                    continue;
                if (wp_emit(out, k, m) < 0)
                    goto fail;
            }
    } else {
        /* unique sorted words of paragraph d: words[start[d] .. start[d] + distinct[d]) */
        distinct = (int32_t *)PyMem_Calloc((size_t)n, sizeof(int32_t));
        if (!distinct) {
            PyErr_NoMemory();
            goto fail;
        }
        for (Py_ssize_t d = 0; d < n; d++) {
            if (!need[d])
                continue;
            Py_ssize_t cnt = start[d + 1] - start[d];
            uint64_t *wd = words + start[d];
            qsort(wd, cnt, sizeof(uint64_t), cmp_u64);
            Py_ssize_t u = cnt ? 1 : 0;
            for (Py_ssize_t i = 1; i < cnt; i++)
                if (wd[i] != wd[u - 1])
                    wd[u++] = wd[i];
            distinct[d] = (int32_t)u;
        }
        for (Py_ssize_t k = 1; k < n; k++)
            for (Py_ssize_t m = 0; m < k; m++) {
                if (!need[k] || !need[m] || !wp_lengths_ok(norms, k, m, threshold))
                    continue;
                const uint64_t *a = words + start[k], *ae = a + distinct[k];
                const uint64_t *b = words + start[m], *be = b + distinct[m];
                Py_ssize_t na = ae - a, nb = be - b, inter_n = 0;
                while (a < ae && b < be) {
                    if (*a < *b)
                        a++;
                    else if (*b < *a)
                        b++;
                    else {
                        inter_n++;
                        a++;
                        b++;
                    }
                }
                if ((double)inter_n < pre * (double)(na + nb - inter_n))
                    continue;
                if (wp_emit(out, k, m) < 0)
                    goto fail;
            }
    }
    goto done;
fail:
    Py_CLEAR(out);
done:
    if (ktable && ktable == wp_keep)
        wp_busy = 0;
    PyMem_Free(words);
    PyMem_Free(start);
    PyMem_Free(table);
    PyMem_Free(node_para);
    PyMem_Free(node_next);
    PyMem_Free(inter);
    PyMem_Free(distinct);
    PyMem_Free(need);
    return out;
}

static int append_index(PyObject *list, Py_ssize_t d)
{
    PyObject *num = PyLong_FromSsize_t(d);
    if (!num || PyList_Append(list, num) < 0) {
        Py_XDECREF(num);
        return -1;
    }
    Py_DECREF(num);
    return 0;
}

/* repeat_scan(paragraphs, ascii, short_chars, threshold, pre) -> (exact, long, pairs) or None:
 * the scan of paragraphs.collapse_repeated_paragraphs (first_seen, then word_pairs over the
 * long ones) in one call, for paragraphs that are all ASCII (None otherwise, and when the
 * ASCII map has no byte form: the caller then runs its own code).  exact: the paragraphs whose normalised text equals an earlier non-empty one;
 * long: the others whose normalised text is non-empty and at least short_chars long; pairs:
 * word_pairs over the normalised texts of long.  The normalised texts stay in one buffer (no
 * str each): the usual answer is ([], long, []) and the caller needs none of them. */
static PyObject *k_repeat_scan(PyObject *self, PyObject *args)
{
    PyObject *paras, *oascii;
    Py_ssize_t short_chars;
    double threshold, pre;
    if (!PyArg_ParseTuple(args, "O!Ondd", &PyList_Type, &paras, &oascii, &short_chars, &threshold, &pre))
        return NULL;
    Buf ba = {0};
    if (get_buf(oascii, &ba, 4, 128, 0, "ascii") < 0)
        return NULL;
    int fast = norm_fast_ok((const uint32_t *)ba.view.buf);
    rel_buf(&ba);
    Py_ssize_t n = PyList_GET_SIZE(paras), total = 0;
    for (Py_ssize_t d = 0; d < n; d++) {
        PyObject *p = PyList_GET_ITEM(paras, d);
        if (check_str(p) < 0)
            return NULL;
        if (!PyUnicode_IS_ASCII(p))
            fast = 0;
        total += PyUnicode_GET_LENGTH(p);
    }
    if (!fast)
        Py_RETURN_NONE;
    PyObject *result = NULL, *exact = PyList_New(0), *longs = PyList_New(0), *pairs = NULL;
    size_t cap = 16;
    while (cap < (size_t)(2 * n + 2))
        cap <<= 1;
    uint8_t *buf = (uint8_t *)PyMem_Malloc((size_t)total + 1);
    wp_text *norms = (wp_text *)PyMem_Malloc(sizeof(wp_text) * (size_t)(n + 1)); /* first-seen ones */
    wp_text *lt = (wp_text *)PyMem_Malloc(sizeof(wp_text) * (size_t)(n + 1));    /* the long ones */
    uint64_t *hashes = (uint64_t *)PyMem_Malloc(sizeof(uint64_t) * (size_t)(n + 1));
    Py_ssize_t *slots = (Py_ssize_t *)PyMem_Calloc(cap, sizeof(Py_ssize_t)); /* first-seen + 1; 0: empty */
    if (!exact || !longs || !buf || !norms || !lt || !hashes || !slots) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t at = 0, nlong = 0;
    for (Py_ssize_t d = 0; d < n; d++) {
        PyObject *p = PyList_GET_ITEM(paras, d);
        uint8_t *dst = buf + at;
        Py_ssize_t len = norm_ascii(PyUnicode_1BYTE_DATA(p), PyUnicode_GET_LENGTH(p), dst);
        if (len == 0)
            continue; /* normalises to nothing: neither dropped nor compared */
        uint64_t h = wp_bytes_hash(dst, (size_t)len);
        size_t i = (size_t)h & (cap - 1);
        int seen = 0;
        for (; slots[i]; i = (i + 1) & (cap - 1)) {
            Py_ssize_t e = slots[i] - 1;
            if (hashes[e] == h && norms[e].len == len && memcmp(norms[e].data, dst, (size_t)len) == 0) {
                seen = 1;
                break;
            }
        }
        if (seen) {
            if (append_index(exact, d) < 0)
                goto done;
            continue;
        }
        slots[i] = d + 1;
        hashes[d] = h;
        norms[d] = (wp_text){PyUnicode_1BYTE_KIND, dst, len};
        at += len;
        if (len >= short_chars) {
            lt[nlong++] = norms[d];
            if (append_index(longs, d) < 0)
                goto done;
        }
    }
    pairs = nlong > 1 ? wp_pairs(lt, nlong, threshold, pre) : PyList_New(0);
    if (pairs)
        result = PyTuple_Pack(3, exact, longs, pairs);
done:
    Py_XDECREF(exact);
    Py_XDECREF(longs);
    Py_XDECREF(pairs);
    PyMem_Free(buf);
    PyMem_Free(norms);
    PyMem_Free(lt);
    PyMem_Free(hashes);
    PyMem_Free(slots);
    return result;
}

/* ---- the candidate prefilter (dedupe/clusters.py) ---------------------------------------- */

/* fingerprints(sigs, nperm, words, out): row r of out ((n, words) uint64) packs 4 bits of each
 * of signature r's nperm uint32 values, 16 to a word: the top 4 bits of value * 0x9E3779B1
 * (mod 2**32), value p at bits 4 * (p % 16) of word p / 16 -- `_fingerprint_rows`' layout. */
static PyObject *k_fingerprints(PyObject *self, PyObject *args)
{
    PyObject *osig, *oout;
    Py_ssize_t nperm, words;
    if (!PyArg_ParseTuple(args, "OnnO", &osig, &nperm, &words, &oout))
        return NULL;
    if (nperm <= 0 || words * 16 < nperm) {
        PyErr_SetString(PyExc_ValueError, "fingerprints: need 0 < nperm <= 16 * words");
        return NULL;
    }
    Buf bs = {0}, bo = {0};
    PyObject *result = NULL;
    if (get_buf(osig, &bs, 4, 0, 0, "sigs") < 0)
        goto done;
    Py_ssize_t n = bs.view.len / 4 / nperm;
    if (get_buf(oout, &bo, 8, n * words, 1, "out") < 0)
        goto done;
    const uint32_t *v = (const uint32_t *)bs.view.buf;
    uint64_t *out = (uint64_t *)bo.view.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < n; r++) {
        const uint32_t *row = v + r * nperm;
        for (Py_ssize_t w = 0; w < words; w++) {
            uint64_t acc = 0;
            Py_ssize_t lo = w * 16, hi = lo + 16 < nperm ? lo + 16 : nperm;
            for (Py_ssize_t q = lo; q < hi; q++)
                acc |= (uint64_t)((uint32_t)(row[q] * 0x9E3779B1u) >> 28) << (4 * (q - lo));
            out[r * words + w] = acc;
        }
    }
    Py_END_ALLOW_THREADS
    Py_INCREF(Py_None);
    result = Py_None;
done:
    rel_buf(&bs);
    rel_buf(&bo);
    return result;
}

/* The fingerprint bound of one pair (see k_may_link), its constants computed once a call. */
typedef struct {
    Py_ssize_t words, nperm;
    double jac_need, cthr, floor_sh, margin;
    int no_need;
} LinkTest;

static LinkTest link_test(Py_ssize_t words, Py_ssize_t nperm, double jac_need, double cthr, Py_ssize_t min_sh)
{
    LinkTest lt = {words, nperm, jac_need, cthr, min_sh > 1 ? (double)min_sh : 1.0, 1e-6 * (double)nperm,
                   cthr <= 0.0 || jac_need <= 0.0};
    return lt;
}

static inline int pair_may_link(const LinkTest *lt, const uint64_t *fp, const int64_t *sizes, int64_t a, int64_t b)
{
    const Py_ssize_t words = lt->words;
    const uint64_t *fa = fp + a * words, *fb = fp + b * words;
    int64_t unequal = 0;
    if (words <= 15) {  /* a nibble of the sum cannot overflow: fold its bytes once */
        uint64_t sum = 0;
        for (Py_ssize_t w = 0; w < words; w++) {
            uint64_t x = fa[w] ^ fb[w];
            x |= x >> 1;
            x |= x >> 2;
            sum += x & 0x1111111111111111ULL;
        }
        sum = (sum & 0x0F0F0F0F0F0F0F0FULL) + ((sum >> 4) & 0x0F0F0F0F0F0F0F0FULL);
        unequal = (int64_t)((sum * 0x0101010101010101ULL) >> 56);
    } else {
        for (Py_ssize_t w = 0; w < words; w++) {
            uint64_t x = fa[w] ^ fb[w];
            x |= x >> 1;
            x |= x >> 2;
            unequal += __builtin_popcountll(x & 0x1111111111111111ULL);
        }
    }
    double bound = (double)(lt->nperm - unequal), need;
    if (lt->no_need) {
        need = 0.0;
    } else {
        double sa = (double)sizes[a], sb = (double)sizes[b];
        double small = sa < sb ? sa : sb;
        double t = lt->cthr * small;
        need = t * (double)lt->nperm / (sa + sb - t);
        if (small < lt->floor_sh)
            need = INFINITY;
        if (need > lt->jac_need)
            need = lt->jac_need;
        need -= lt->margin;
    }
    return bound >= need;
}

/* may_link(fp, words, i, j, sizes, nperm, jac_need, cthr, min_shingles, out): out[k] = 1 when
 * pair (i[k], j[k]) could link: nperm minus the count of unequal fingerprint nibbles (an upper
 * bound on its equal signature values) reaches the count it needs -- the float arithmetic of
 * NearDuplicateFinder._count_needed, operation for operation (its safety margin is far above
 * any rounding difference, so the bound stays sound either way). */
static PyObject *k_may_link(PyObject *self, PyObject *args)
{
    PyObject *ofp, *oi, *oj, *osz, *oout;
    Py_ssize_t words, nperm, min_sh;
    double jac_need, cthr;
    if (!PyArg_ParseTuple(args, "OnOOOnddnO", &ofp, &words, &oi, &oj, &osz, &nperm, &jac_need, &cthr,
                          &min_sh, &oout))
        return NULL;
    if (words <= 0) {
        PyErr_SetString(PyExc_ValueError, "may_link: words must be positive");
        return NULL;
    }
    Buf bf = {0}, bi = {0}, bj = {0}, bz = {0}, bo = {0};
    PyObject *result = NULL;
    if (get_buf(ofp, &bf, 8, 0, 0, "fp") < 0 || get_buf(oi, &bi, 8, 0, 0, "i") < 0
        || get_buf(oj, &bj, 8, bi.view.len / 8, 0, "j") < 0 || get_buf(osz, &bz, 8, 0, 0, "sizes") < 0
        || get_buf(oout, &bo, 1, bi.view.len / 8, 1, "out") < 0)
        goto done;
    Py_ssize_t m = bi.view.len / 8, rows = bf.view.len / 8 / words, nsz = bz.view.len / 8;
    const uint64_t *fp = (const uint64_t *)bf.view.buf;
    const int64_t *ii = (const int64_t *)bi.view.buf, *jj = (const int64_t *)bj.view.buf;
    const int64_t *sizes = (const int64_t *)bz.view.buf;
    uint8_t *out = (uint8_t *)bo.view.buf;
    for (Py_ssize_t k = 0; k < m; k++) {
        if (ii[k] < 0 || jj[k] < 0 || ii[k] >= rows || jj[k] >= rows || ii[k] >= nsz || jj[k] >= nsz) {
            PyErr_SetString(PyExc_IndexError, "may_link: pair index out of range");
            goto done;
        }
    }
    const LinkTest lt = link_test(words, nperm, jac_need, cthr, min_sh);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t k = 0; k < m; k++)
        out[k] = pair_may_link(&lt, fp, sizes, ii[k], jj[k]);
    Py_END_ALLOW_THREADS
    Py_INCREF(Py_None);
    result = Py_None;
done:
    rel_buf(&bf);
    rel_buf(&bi);
    rel_buf(&bj);
    rel_buf(&bz);
    rel_buf(&bo);
    return result;
}


/* band_candidates(keys, indices, full, links, fp, words, sizes, nperm, jac_need, cthr, min_shingles)
 * -> (codes, collisions, passed): one band's candidate pairs, the whole of index.bucket_pairs
 * (its reference) in one pass, and, when fp is not None, only those may_link lets through.
 * A bucket is the entries with equal keys, members in entry order (indices ascending: article
 * order); a bucket of up to `full` members gives all its pairs, a larger one pairs each member
 * with each of its first `links` members. codes: bytes of uint64 min << 32 | max, one per pair
 * kept, in no particular order (callers sort); collisions: the pairs before the bound. Buckets
 * are found with a hash table on the full keys (exact), not a sort: a band costs one pass. */
static PyObject *k_band_candidates(PyObject *self, PyObject *args)
{
    PyObject *okeys, *oidx, *ofp, *osz;
    Py_ssize_t full, links, words, nperm, min_sh;
    double jac_need, cthr;
    if (!PyArg_ParseTuple(args, "OOnnOnOnddn", &okeys, &oidx, &full, &links, &ofp, &words, &osz, &nperm,
                          &jac_need, &cthr, &min_sh))
        return NULL;
    const int filter = ofp != Py_None;
    if (filter && words <= 0) {
        PyErr_SetString(PyExc_ValueError, "band_candidates: words must be positive");
        return NULL;
    }
    if (full < 1 || links < 0) {
        PyErr_SetString(PyExc_ValueError, "band_candidates: full must be positive, links not negative");
        return NULL;
    }
    Buf bk = {0}, bi = {0}, bf = {0}, bz = {0};
    PyObject *result = NULL;
    int32_t *table = NULL, *next = NULL, *tail = NULL, *count = NULL;
    int64_t *mem = NULL;
    uint64_t *codes = NULL;
    if (get_buf(okeys, &bk, 8, 0, 0, "keys") < 0 || get_buf(oidx, &bi, 8, bk.view.len / 8, 0, "indices") < 0
        || get_buf(osz, &bz, 8, 0, 0, "sizes") < 0 || (filter && get_buf(ofp, &bf, 8, 0, 0, "fp") < 0))
        goto done;
    const Py_ssize_t n = bk.view.len / 8, nsz = bz.view.len / 8;
    const Py_ssize_t rows = filter ? bf.view.len / 8 / words : nsz;
    if (n >= INT32_MAX / 2) {
        PyErr_SetString(PyExc_ValueError, "band_candidates: too many entries");
        goto done;
    }
    const uint64_t *keys = (const uint64_t *)bk.view.buf;
    const int64_t *idx = (const int64_t *)bi.view.buf, *sizes = (const int64_t *)bz.view.buf;
    for (Py_ssize_t k = 0; k < n; k++) {
        if (idx[k] < 0 || idx[k] >= rows || idx[k] >= nsz || idx[k] > 0xFFFFFFFFLL) {
            PyErr_SetString(PyExc_IndexError, "band_candidates: index out of range");
            goto done;
        }
        if (k && idx[k] <= idx[k - 1]) {
            PyErr_SetString(PyExc_ValueError, "band_candidates: indices must ascend");
            goto done;
        }
    }
    Py_ssize_t cap = 16;
    while (cap < 2 * n)
        cap <<= 1;
    const uint64_t mask = (uint64_t)cap - 1;
    const size_t nn = (size_t)(n ? n : 1);
    Py_ssize_t ncodes = 0, codes_cap = 1024, collisions = 0, biggest = 0;
    /* the table holds each bucket's first entry (-1: empty); next/tail/count are by entry, so
     * the working set is ~16 bytes an entry (it stays in cache) */
    table = PyMem_RawMalloc((size_t)cap * sizeof(int32_t));
    next = PyMem_RawMalloc(nn * sizeof(int32_t));
    tail = PyMem_RawMalloc(nn * sizeof(int32_t));
    count = PyMem_RawMalloc(nn * sizeof(int32_t));
    codes = PyMem_RawMalloc((size_t)codes_cap * sizeof(uint64_t));
    if (!table || !next || !tail || !count || !codes) {
        PyErr_NoMemory();
        goto done;
    }
    const LinkTest lt = link_test(words, nperm, jac_need, cthr, min_sh);
    const uint64_t *fp = filter ? (const uint64_t *)bf.view.buf : NULL;
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    memset(table, 0xFF, (size_t)cap * sizeof(int32_t));
    for (Py_ssize_t k = 0; k < n; k++)  /* slots first (a loop the compiler vectorises) */
        next[k] = (int32_t)(fmix64(keys[k]) & mask);
    for (Py_ssize_t k = 0; k < n; k++) {
        const uint64_t key = keys[k];
        uint64_t h = (uint64_t)next[k];
        if (k + 16 < n)
            __builtin_prefetch(&table[next[k + 16]]);
        int32_t e;
        while ((e = table[h]) >= 0 && keys[e] != key)
            h = (h + 1) & mask;
        next[k] = -1;
        count[k] = 0;
        if (e < 0) {
            table[h] = (int32_t)k;
            tail[k] = (int32_t)k;
            count[k] = 1;
        } else {
            next[tail[e]] = (int32_t)k;
            tail[e] = (int32_t)k;
            if (++count[e] > biggest)
                biggest = count[e];
        }
    }
    mem = biggest > 1 ? PyMem_RawMalloc((size_t)biggest * sizeof(int64_t)) : NULL;
    if (biggest > 1 && !mem)
        failed = 1;
    for (Py_ssize_t h = 0; h < n && !failed; h++) {  /* buckets by first entry: deterministic */
        const Py_ssize_t c = count[h];
        if (c < 2)
            continue;
        Py_ssize_t m = 0;
        for (int32_t e = (int32_t)h; e >= 0; e = next[e])
            mem[m++] = idx[e];
        /* pairs (mem[a], mem[b]), a < b: all of them, or b with each of the first `links` */
        const Py_ssize_t lim_a = c <= full ? c - 1 : (links < c - 1 ? links : c - 1);
        for (Py_ssize_t a = 0; a < lim_a && !failed; a++) {
            const int64_t ia = mem[a];
            for (Py_ssize_t b = a + 1; b < c; b++) {
                const int64_t ib = mem[b];
                collisions++;
                if (filter && !pair_may_link(&lt, fp, sizes, ia, ib))
                    continue;
                if (ncodes == codes_cap) {
                    uint64_t *grown = PyMem_RawRealloc(codes, (size_t)codes_cap * 2 * sizeof(uint64_t));
                    if (!grown) {
                        failed = 1;
                        break;
                    }
                    codes = grown;
                    codes_cap *= 2;
                }
                codes[ncodes++] = ((uint64_t)ia << 32) | (uint64_t)ib;  /* ia < ib: members ascend */
            }
        }
    }
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    PyObject *blob = PyBytes_FromStringAndSize((const char *)codes, ncodes * (Py_ssize_t)sizeof(uint64_t));
    if (blob)
        result = Py_BuildValue("Nnn", blob, collisions, (Py_ssize_t)(filter ? ncodes : collisions));
done:
    PyMem_RawFree(table);
    PyMem_RawFree(next);
    PyMem_RawFree(tail);
    PyMem_RawFree(count);
    PyMem_RawFree(mem);
    PyMem_RawFree(codes);
    rel_buf(&bk);
    rel_buf(&bi);
    rel_buf(&bf);
    rel_buf(&bz);
    return result;
}

static PyMethodDef methods[] = {
    {"shingle", k_shingle, METH_VARARGS, "Sorted unique uint32 n-gram hashes of many texts."},
    {"normalise", k_normalise, METH_VARARGS, "Normalised strings of many texts."},
    {"word_pairs", k_word_pairs, METH_VARARGS, "Paragraph pairs of similar length and word sets."},
    {"repeat_scan", k_repeat_scan, METH_VARARGS,
     "Exact repeats, long paragraphs and their word_pairs, for all-ASCII paragraphs (else None)."},
    {"minhash", k_minhash, METH_VARARGS, "affine32 MinHash signatures of many hash sets."},
    {"shingle_sign", k_shingle_sign, METH_VARARGS,
     "Distinct n-gram counts (unless out_sizes is None) and MinHash signatures of many texts."},
    {"fingerprints", k_fingerprints, METH_VARARGS, "4-bit fingerprints of MinHash signatures."},
    {"may_link", k_may_link, METH_VARARGS, "Pairs the fingerprint bound lets through to verification."},
    {"band_candidates", k_band_candidates, METH_VARARGS,
     "One band's LSH candidate pair codes (bucket policy and fingerprint bound applied)."},
    {"set_norm512", k_set_norm512, METH_VARARGS,
     "Switch the AVX-512 VBMI2 normalisation of ASCII texts on or off; returns whether it is on."},
    {"set_avx512", k_set_avx512, METH_VARARGS,
     "Select the MinHash loop (0 portable, 1 AVX-512); returns the one in use."},
    {"set_avx2", k_set_avx2, METH_VARARGS,
     "Select the AVX2 MinHash loop while AVX-512 is off (0 portable, 1 AVX2); returns the one in use."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", NULL, -1, methods};

/* An environment switch is on when set to anything but "" or "0". */
static int env_set(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

PyMODINIT_FUNC PyInit__kernels(void)
{
    POW[0] = 1;
    for (int i = 1; i < NPOW; i++)
        POW[i] = POW[i - 1] * WORD_X;
#ifdef HAVE_X86_SIMD
    __builtin_cpu_init();
    use_avx512 = __builtin_cpu_supports("avx512f") && !env_set("THRESHER_NO_AVX512");
    use_norm512 = use_avx512 && norm512_cpu();
    use_avx2 = __builtin_cpu_supports("avx2") && !env_set("THRESHER_NO_AVX2");
#endif
    return PyModule_Create(&module);
}
