/* Inner loops of ingest/ in C.  The Python code in content.py is the reference: every function
 * here returns exactly what it computes (tests/test_content_kernels.py compares them).
 *
 * stop_counts: the function-word share that content detection scores paragraphs by.  In Python
 * it split a prefix of every paragraph into str tokens and looked each up in a frozenset --
 * about a third of the cost of stripping a clean article.  Here tokens are hashed in place and
 * looked up in a table built once from the stopword set.
 *
 * split_unwrapped: segment.split_paragraphs' common case (see below); segment.py is its reference.
 *
 * word_counts, scores: strip.py's word counts and content._score (see below).
 *
 * line_ends: where ranges.read_ranges cuts a JSONL file into ranges of records (its
 * _line_ends_py is the reference).
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE /* memmem */
#include <Python.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define WORD_MAX 31 /* longer tokens are never stopwords (checked when the table is built) */

typedef struct {
    uint64_t hash;
    uint32_t len; /* 0: empty slot */
    char word[WORD_MAX + 1];
} word_slot;

typedef struct {
    size_t cap; /* power of two */
    word_slot *slots;
} word_table;

static const char *CAPSULE = "thresher.word_table";

static inline uint64_t step_hash(uint64_t h, uint32_t c)
{
    return (h ^ c) * 0x100000001B3ULL;
}

static void table_free(PyObject *capsule)
{
    word_table *t = (word_table *)PyCapsule_GetPointer(capsule, CAPSULE);
    if (t) {
        PyMem_Free(t->slots);
        PyMem_Free(t);
    }
}

/* word_table(words) -> capsule.  Words must be ASCII and at most WORD_MAX characters. */
static PyObject *k_word_table(PyObject *self, PyObject *args)
{
    PyObject *words;
    if (!PyArg_ParseTuple(args, "O!", &PyList_Type, &words))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(words);
    size_t cap = 16;
    while (cap < (size_t)(4 * n))
        cap <<= 1;
    word_table *t = (word_table *)PyMem_Malloc(sizeof(word_table));
    if (!t)
        return PyErr_NoMemory();
    t->cap = cap;
    t->slots = (word_slot *)PyMem_Calloc(cap, sizeof(word_slot));
    if (!t->slots) {
        PyMem_Free(t);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *w = PyList_GET_ITEM(words, i);
        if (!PyUnicode_Check(w) || PyUnicode_READY(w) < 0 || !PyUnicode_IS_ASCII(w)
            || PyUnicode_GET_LENGTH(w) == 0 || PyUnicode_GET_LENGTH(w) > WORD_MAX) {
            PyErr_SetString(PyExc_ValueError, "table words must be non-empty ASCII str of at most 31 characters");
            goto fail;
        }
        const char *s = (const char *)PyUnicode_1BYTE_DATA(w);
        uint32_t len = (uint32_t)PyUnicode_GET_LENGTH(w);
        uint64_t h = 0;
        for (uint32_t k = 0; k < len; k++)
            h = step_hash(h, (unsigned char)s[k]);
        size_t at = (size_t)h & (cap - 1);
        while (t->slots[at].len && !(t->slots[at].hash == h && t->slots[at].len == len
                                     && memcmp(t->slots[at].word, s, len) == 0))
            at = (at + 1) & (cap - 1);
        t->slots[at].hash = h;
        t->slots[at].len = len;
        memcpy(t->slots[at].word, s, len);
    }
    PyObject *capsule = PyCapsule_New(t, CAPSULE, table_free);
    if (capsule)
        return capsule;
fail:
    PyMem_Free(t->slots);
    PyMem_Free(t);
    return NULL;
}

static inline int in_table(const word_table *t, uint64_t h, int kind, const void *data,
                           Py_ssize_t start, Py_ssize_t len)
{
    size_t at = (size_t)h & (t->cap - 1);
    while (t->slots[at].len) {
        const word_slot *e = &t->slots[at];
        if (e->hash == h && e->len == (uint32_t)len) {
            Py_ssize_t k = 0;
            for (; k < len; k++)
                if (PyUnicode_READ(kind, data, start + k) != (Py_UCS4)(unsigned char)e->word[k])
                    break;
            if (k == len)
                return 1;
        }
        at = (at + 1) & (t->cap - 1);
    }
    return 0;
}

/* Tokens of p[:size] as str.split() makes them, and how many are in the table.  When p is
 * longer than size and p[size] is not a plain space, the last token is dropped (it may be a
 * cut word), unless it is the only one -- content._sample's rule. */
static void count_sample(const word_table *t, PyObject *p, Py_ssize_t size, Py_ssize_t *ntok,
                         Py_ssize_t *hits)
{
    int kind = PyUnicode_KIND(p);
    const void *data = PyUnicode_DATA(p);
    Py_ssize_t len = PyUnicode_GET_LENGTH(p);
    Py_ssize_t end = len <= size ? len : size;
    Py_ssize_t n = 0, h = 0, i = 0;
    int last_hit = 0;
    while (i < end) {
        while (i < end && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i)))
            i++;
        if (i >= end)
            break;
        Py_ssize_t s = i;
        uint64_t hash = 0;
        int ascii = 1;
        while (i < end) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);
            if (Py_UNICODE_ISSPACE(c))
                break;
            ascii &= c < 128;
            hash = step_hash(hash, c);
            i++;
        }
        n++;
        last_hit = ascii && i - s <= WORD_MAX && in_table(t, hash, kind, data, s, i - s);
        h += last_hit;
    }
    if (len > size && PyUnicode_READ(kind, data, size) != ' ' && n > 1) {
        n--;
        h -= last_hit;
    }
    *ntok = n;
    *hits = h;
}

/* stop_counts(paragraphs, table, prefix, long_prefix, clear, min_tokens)
 *   -> (ntoks, hits, long_tok, long_hit)
 * Per paragraph, content.score_page's English sample: the tokens of the first `prefix`
 * characters, or of the first `long_prefix` when fewer than `clear` of those are stopwords;
 * long_tok/long_hit sum over paragraphs with at least `min_tokens` tokens. */
static PyObject *k_stop_counts(PyObject *self, PyObject *args)
{
    PyObject *paras, *capsule;
    Py_ssize_t prefix, long_prefix, min_tokens;
    double clear;
    if (!PyArg_ParseTuple(args, "O!Onndn", &PyList_Type, &paras, &capsule, &prefix, &long_prefix,
                          &clear, &min_tokens))
        return NULL;
    const word_table *t = (const word_table *)PyCapsule_GetPointer(capsule, CAPSULE);
    if (!t)
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(paras);
    PyObject *ntoks = PyList_New(n), *hits = PyList_New(n);
    if (!ntoks || !hits)
        goto fail;
    Py_ssize_t long_tok = 0, long_hit = 0;
    for (Py_ssize_t d = 0; d < n; d++) {
        PyObject *p = PyList_GET_ITEM(paras, d);
        if (!PyUnicode_Check(p) || PyUnicode_READY(p) < 0) {
            PyErr_SetString(PyExc_TypeError, "paragraphs must be str");
            goto fail;
        }
        Py_ssize_t nt, h;
        count_sample(t, p, prefix, &nt, &h);
        if (PyUnicode_GET_LENGTH(p) > prefix && (double)h < clear * (double)nt)
            count_sample(t, p, long_prefix, &nt, &h);
        if (nt >= min_tokens) {
            long_tok += nt;
            long_hit += h;
        }
        PyObject *a = PyLong_FromSsize_t(nt), *b = PyLong_FromSsize_t(h);
        if (!a || !b) {
            Py_XDECREF(a);
            Py_XDECREF(b);
            goto fail;
        }
        PyList_SET_ITEM(ntoks, d, a);
        PyList_SET_ITEM(hits, d, b);
    }
    return Py_BuildValue("(NNnn)", ntoks, hits, long_tok, long_hit);
fail:
    Py_XDECREF(ntoks);
    Py_XDECREF(hits);
    return NULL;
}

/* split_unwrapped: segment.split_paragraphs for the common case, ASCII text that is not
 * hard-wrapped.  Returns None whenever the Python code must decide (non-ASCII text, or text
 * whose line lengths do not rule wrapping out at once); otherwise exactly the list Python
 * returns.  Python's own code spent most of its time splitting, stripping and measuring lines
 * it then kept as they were. */

#define MAX_WRAP 200

static inline int is_ws(unsigned char c) /* str.isspace() on ASCII */
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

typedef struct {
    Py_ssize_t start, end; /* [start, end) of the line, without its break */
} line_span;

static int cmp_ssize(const void *a, const void *b)
{
    Py_ssize_t x = *(const Py_ssize_t *)a, y = *(const Py_ssize_t *)b;
    return (x > y) - (x < y);
}

/* Whether two spaces follow each other in s[0:n]. glibc's memmem is not vectorised for a
 * two-byte needle (~8 instructions a byte: most of split_unwrapped's time); SSE2 compares 16
 * positions against ' ' and the next 16 (one byte further) at once. */
static int has_double_space(const unsigned char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
#ifdef __SSE2__
    const __m128i sp = _mm_set1_epi8(' ');
    for (; i + 17 <= n; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(s + i));
        __m128i y = _mm_loadu_si128((const __m128i *)(s + i + 1));
        if (_mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(x, sp), _mm_cmpeq_epi8(y, sp))))
            return 1;
    }
#endif
    for (; i + 1 < n; i++)
        if (s[i] == ' ' && s[i + 1] == ' ')
            return 1;
    return 0;
}

static PyObject *k_split_unwrapped(PyObject *self, PyObject *args)
{
    PyObject *text;
    if (!PyArg_ParseTuple(args, "U", &text))
        return NULL;
    if (!PyUnicode_IS_ASCII(text))
        Py_RETURN_NONE;
    const unsigned char *d = (const unsigned char *)PyUnicode_1BYTE_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);

    Py_ssize_t cap = 16, nlines = 0;
    line_span *lines = PyMem_Malloc(cap * sizeof(line_span));
    if (!lines)
        return PyErr_NoMemory();
    /* memchr/memmem (vectorised in libc) do the scanning: a byte loop was slower than Python's
     * own str methods, which use them too. */
    int has_cr = memchr(d, '\r', n) != NULL, has_tab = memchr(d, '\t', n) != NULL;
    Py_ssize_t start = 0;
    for (;;) {
        Py_ssize_t i;
        if (has_cr) {
            i = start;
            while (i < n && d[i] != '\n' && d[i] != '\r')
                i++;
        } else {
            const unsigned char *nl = memchr(d + start, '\n', n - start);
            i = nl ? nl - d : n;
        }
        if (nlines == cap) {
            cap *= 2;
            line_span *grown = PyMem_Realloc(lines, cap * sizeof(line_span));
            if (!grown) {
                PyMem_Free(lines);
                return PyErr_NoMemory();
            }
            lines = grown;
        }
        lines[nlines].start = start;
        lines[nlines].end = i;
        nlines++;
        if (i >= n)
            break;
        if (d[i] == '\r' && i + 1 < n && d[i + 1] == '\n')
            i++; /* "\r\n" is one break */
        start = i + 1;
    }

    /* detect_wrap_width's first tests: fewer than 3 lines with a space inside their stripped
     * text, or enough of them longer than any wrap width, mean "not wrapped". */
    Py_ssize_t *lens = PyMem_Malloc(nlines * sizeof(Py_ssize_t));
    if (!lens) {
        PyMem_Free(lines);
        return PyErr_NoMemory();
    }
    Py_ssize_t nlens = 0;
    for (Py_ssize_t k = 0; k < nlines; k++) {
        Py_ssize_t a = lines[k].start, b = lines[k].end;
        while (b > a && is_ws(d[b - 1]))
            b--; /* rstrip: len(ln) counts leading blanks */
        Py_ssize_t rlen = b - a;
        while (a < b && is_ws(d[a]))
            a++;
        if (a < b && (memchr(d + a, ' ', b - a) || (has_tab && memchr(d + a, '\t', b - a))))
            lens[nlens++] = rlen; /* tabs were spaces by then */
    }
    int unwrapped = nlens < 3;
    if (!unwrapped) {
        qsort(lens, nlens, sizeof(Py_ssize_t), cmp_ssize);
        Py_ssize_t k = 3 + nlens / 50;
        if (k > nlens)
            k = nlens;
        unwrapped = lens[nlens - k] > MAX_WRAP;
    }
    PyMem_Free(lens);
    if (!unwrapped) {
        PyMem_Free(lines);
        Py_RETURN_NONE;
    }

    PyObject *out = PyList_New(0);
    if (!out) {
        PyMem_Free(lines);
        return NULL;
    }
    for (Py_ssize_t k = 0; k < nlines; k++) {
        Py_ssize_t a = lines[k].start, b = lines[k].end;
        while (b > a && is_ws(d[b - 1]))
            b--;
        while (a < b && is_ws(d[a]))
            a++;
        if (a == b)
            continue;
        if (!has_tab && !has_double_space(d + a, b - a)) {
            PyObject *para = PyUnicode_New(b - a, 127);
            if (!para) {
                Py_DECREF(out);
                PyMem_Free(lines);
                return NULL;
            }
            memcpy(PyUnicode_1BYTE_DATA(para), d + a, b - a);
            int err = PyList_Append(out, para);
            Py_DECREF(para);
            if (err < 0) {
                Py_DECREF(out);
                PyMem_Free(lines);
                return NULL;
            }
            continue;
        }
        /* runs of spaces (tabs included) become one space */
        Py_ssize_t len = 0;
        for (Py_ssize_t j = a; j < b; j++) {
            int sp = d[j] == ' ' || d[j] == '\t';
            if (!(sp && j > a && (d[j - 1] == ' ' || d[j - 1] == '\t')))
                len++;
        }
        PyObject *para = PyUnicode_New(len, 127);
        if (!para) {
            Py_DECREF(out);
            PyMem_Free(lines);
            return NULL;
        }
        unsigned char *o = PyUnicode_1BYTE_DATA(para);
        for (Py_ssize_t j = a; j < b; j++) {
            int sp = d[j] == ' ' || d[j] == '\t';
            if (sp && j > a && (d[j - 1] == ' ' || d[j - 1] == '\t'))
                continue;
            *o++ = sp ? ' ' : d[j];
        }
        if (PyList_Append(out, para) < 0) {
            Py_DECREF(para);
            Py_DECREF(out);
            PyMem_Free(lines);
            return NULL;
        }
        Py_DECREF(para);
    }
    PyMem_Free(lines);
    return out;
}

/* word_counts / scores: strip.py's per-paragraph word counts and content._score for the
 * English fast path.  Each was a handful of str methods per paragraph (count, isupper,
 * substring tests), every one a full pass over the paragraph; here it is one pass.
 * content.word_counts and content._score are the references (tests/test_strip_kernels.py). */

/* word_counts(paragraphs, exact_chars, count_prefix) -> list[int]: content.word_count each */
static PyObject *k_word_counts(PyObject *self, PyObject *args)
{
    PyObject *paras;
    Py_ssize_t exact, prefix;
    if (!PyArg_ParseTuple(args, "O!nn", &PyList_Type, &paras, &exact, &prefix))
        return NULL;
    if (prefix <= 0) {
        PyErr_SetString(PyExc_ValueError, "count_prefix must be positive");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(paras);
    PyObject *out = PyList_New(n);
    if (!out)
        return NULL;
    for (Py_ssize_t d = 0; d < n; d++) {
        PyObject *p = PyList_GET_ITEM(paras, d);
        if (!PyUnicode_Check(p) || PyUnicode_READY(p) < 0) {
            Py_DECREF(out);
            PyErr_SetString(PyExc_TypeError, "paragraphs must be str");
            return NULL;
        }
        Py_ssize_t len = PyUnicode_GET_LENGTH(p), end = len <= exact ? len : (prefix < len ? prefix : len);
        int kind = PyUnicode_KIND(p);
        const void *data = PyUnicode_DATA(p);
        Py_ssize_t spaces = 0;
        if (kind == PyUnicode_1BYTE_KIND) {
            const unsigned char *s = (const unsigned char *)data;
            for (Py_ssize_t i = 0; i < end; i++)
                spaces += s[i] == ' ';
        } else {
            for (Py_ssize_t i = 0; i < end; i++)
                spaces += PyUnicode_READ(kind, data, i) == ' ';
        }
        Py_ssize_t words = len <= exact ? spaces + 1 : (spaces * len) / prefix + 1;
        PyObject *w = PyLong_FromSsize_t(words);
        if (!w) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, d, w);
    }
    return out;
}

static inline int is_sent_end(unsigned char c) { return c == '.' || c == '!' || c == '?'; }

/* "http" in s or "www." in s.  glibc's memmem took ~0.35 us per paragraph per needle; with
 * SSE2 both needles are tested 16 positions at a time. */
static int has_url_marker(const unsigned char *s, Py_ssize_t len)
{
    Py_ssize_t i = 0;
#ifdef __SSE2__
    const __m128i h = _mm_set1_epi8('h'), t = _mm_set1_epi8('t'), p = _mm_set1_epi8('p'),
                  w = _mm_set1_epi8('w'), dot = _mm_set1_epi8('.');
    for (; i + 19 <= len; i += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(s + i)),
                b = _mm_loadu_si128((const __m128i *)(s + i + 1)),
                c = _mm_loadu_si128((const __m128i *)(s + i + 2)),
                d = _mm_loadu_si128((const __m128i *)(s + i + 3));
        __m128i http = _mm_and_si128(_mm_and_si128(_mm_cmpeq_epi8(a, h), _mm_cmpeq_epi8(b, t)),
                                     _mm_and_si128(_mm_cmpeq_epi8(c, t), _mm_cmpeq_epi8(d, p)));
        __m128i www = _mm_and_si128(_mm_and_si128(_mm_cmpeq_epi8(a, w), _mm_cmpeq_epi8(b, w)),
                                    _mm_and_si128(_mm_cmpeq_epi8(c, w), _mm_cmpeq_epi8(d, dot)));
        if (_mm_movemask_epi8(_mm_or_si128(http, www)))
            return 1;
    }
#endif
    for (; i + 4 <= len; i++)
        if ((s[i] == 'h' && s[i + 1] == 't' && s[i + 2] == 't' && s[i + 3] == 'p')
            || (s[i] == 'w' && s[i + 1] == 'w' && s[i + 2] == 'w' && s[i + 3] == '.'))
            return 1;
    return 0;
}

/* content._score of an ASCII paragraph (len >= 1, words >= 1, stops >= 0, ntoks >= 1), where
 * the regexes reduce to: _NUMERIC_RE.fullmatch <=> no ASCII letter; _BULLET_RE.match <=>
 * [*+] | \d{1,2}[.)]\s | -\s at the start; and the non-ASCII characters of _SENT_END,
 * _CLOSERS, "•", " · " and "。" cannot occur. */
static double score_ascii(const unsigned char *s, Py_ssize_t len, Py_ssize_t ntoks,
                          Py_ssize_t words, Py_ssize_t stops, double scale)
{
    /* memchr/memmem and early-exit scans: a byte-by-byte loop over every paragraph cost as
     * much as the str methods it replaces */
    Py_ssize_t lo = 0, up = 0;
    while (lo < len && !(s[lo] >= 'a' && s[lo] <= 'z'))
        lo++;
    while (up < len && !(s[up] >= 'A' && s[up] <= 'Z'))
        up++;
    int lower = lo < len, upper = up < len;
    int alpha0 = (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z');
    if (!alpha0 && !lower && !upper)
        return -1.5;
    double stop_ratio = (double)stops / (double)ntoks * scale;
    int sentence;
    if (is_sent_end(s[len - 1]))
        sentence = 1;
    else {
        Py_ssize_t e = len;
        while (e > 0 && (s[e - 1] == '"' || s[e - 1] == '\'' || s[e - 1] == ')' || s[e - 1] == ']'))
            e--;
        sentence = (e > 0 && is_sent_end(s[e - 1])) || memmem(s, len, ". ", 2) != NULL;
    }
    double score;
    if (words >= 12 && stop_ratio >= 0.15) {
        double share = 0.4 < stop_ratio ? 0.4 : stop_ratio;
        score = (double)(words < 90 ? words : 90) / 10.0 * (0.6 + share);
        if (!sentence)
            score *= 0.5;
    } else if (words >= 6 && sentence && stop_ratio >= 0.15)
        score = 0.5;
    else if (sentence && stops && words >= 3)
        score = 0.1;
    else
        score = words <= 3 ? -1.5 : -1.0;
    if (!alpha0) {
        unsigned char c0 = s[0], c1 = len > 1 ? s[1] : 0, c2 = len > 2 ? s[2] : 0,
                      c3 = len > 3 ? s[3] : 0;
        int d0 = c0 >= '0' && c0 <= '9', d1 = c1 >= '0' && c1 <= '9';
        int bullet = c0 == '*' || c0 == '+' || (c0 == '-' && len > 1 && is_ws(c1))
                     || (d0 && (c1 == '.' || c1 == ')') && len > 2 && is_ws(c2))
                     || (d0 && d1 && (c2 == '.' || c2 == ')') && len > 3 && is_ws(c3));
        if (bullet)
            score -= 1.5;
    }
    if (words >= 2 && upper && !lower)
        score -= 1.0;
    const unsigned char *bar = memchr(s, '|', len);
    if (bar) {
        Py_ssize_t bars = 0;
        for (; bar; bar = memchr(bar + 1, '|', len - (bar + 1 - s)))
            bars++;
        score -= (double)(bars < 4 ? bars : 4) * 0.75;
    }
    if (has_url_marker(s, len))
        score -= 1.5;
    if (s[0] == '[' && s[len - 1] == ']')
        score -= 1.0;
    return score;
}

/* scores(paragraphs, ntoks, words, hits, scale, fallback) -> list[float]
 * content._scored for a page with a stopword list: ASCII paragraphs are scored here, any other
 * (or unusual input: empty, no tokens, no hits count) by fallback(p, ntoks, words, hits, scale),
 * i.e. content._score itself. */
static PyObject *k_scores(PyObject *self, PyObject *args)
{
    PyObject *paras, *ntoks, *words, *hits, *fallback;
    double scale;
    if (!PyArg_ParseTuple(args, "O!O!O!O!dO", &PyList_Type, &paras, &PyList_Type, &ntoks,
                          &PyList_Type, &words, &PyList_Type, &hits, &scale, &fallback))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(paras);
    if (PyList_GET_SIZE(ntoks) != n || PyList_GET_SIZE(words) != n || PyList_GET_SIZE(hits) != n) {
        PyErr_SetString(PyExc_ValueError, "lists must have the same length");
        return NULL;
    }
    PyObject *out = PyList_New(n);
    if (!out)
        return NULL;
    for (Py_ssize_t d = 0; d < n; d++) {
        PyObject *p = PyList_GET_ITEM(paras, d), *nt = PyList_GET_ITEM(ntoks, d),
                 *w = PyList_GET_ITEM(words, d), *h = PyList_GET_ITEM(hits, d), *v = NULL;
        Py_ssize_t cnt = -1, wn = -1, hn = -1;
        if (PyLong_CheckExact(nt) && PyLong_CheckExact(w) && PyLong_CheckExact(h)) {
            cnt = PyLong_AsSsize_t(nt);
            wn = PyLong_AsSsize_t(w);
            hn = PyLong_AsSsize_t(h);
            if (PyErr_Occurred()) { /* too large for C: let Python do it */
                PyErr_Clear();
                cnt = -1;
            }
        }
        if (PyUnicode_CheckExact(p) && PyUnicode_READY(p) == 0 && PyUnicode_IS_ASCII(p)
            && PyUnicode_GET_LENGTH(p) > 0 && cnt > 0 && wn > 0 && hn >= 0)
            v = PyFloat_FromDouble(score_ascii(PyUnicode_1BYTE_DATA(p), PyUnicode_GET_LENGTH(p),
                                               cnt, wn, hn, scale));
        else {
            PyObject *sc = PyFloat_FromDouble(scale);
            if (sc)
                v = PyObject_CallFunctionObjArgs(fallback, p, nt, w, h, sc, NULL);
            Py_XDECREF(sc);
        }
        if (!v) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, d, v);
    }
    return out;
}

static inline int blank_byte(unsigned char c)
{
    /* what bytes.strip() removes */
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0x0b || c == 0x0c;
}

/* line_ends(data, i, size, final, count) -> (ends, count, next): scan the lines of `data` from
 * byte i, counting those that are not blank (a blank line holds only whitespace); each time
 * `count` reaches `size`, the byte after that line goes into `ends` and the count restarts.
 * `next`: the first byte of the first line not scanned (an unfinished last line, unless
 * `final`: then the data ends the file and its last line needs no newline).  The parent of a
 * run calls it on every 4 MB of its JSONL inputs: one Python `find` per line cost ~0.15 s of
 * the parent's CPU on the 50k reference corpus, taken from the workers. */
static PyObject *k_line_ends(PyObject *self, PyObject *args)
{
    Py_buffer buf;
    Py_ssize_t i, size, count;
    int final;
    if (!PyArg_ParseTuple(args, "y*nnpn", &buf, &i, &size, &final, &count))
        return NULL;
    if (size < 1 || i < 0 || i > buf.len) {
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_ValueError, "line_ends: size must be >= 1 and i within the data");
        return NULL;
    }
    const unsigned char *d = (const unsigned char *)buf.buf;
    Py_ssize_t n = buf.len;
    PyObject *ends = PyList_New(0);
    if (!ends) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    while (i < n) {
        const unsigned char *nl = memchr(d + i, '\n', (size_t)(n - i));
        Py_ssize_t j;
        if (nl)
            j = nl - d;
        else if (final)
            j = n - 1;
        else
            break;
        int counts = !blank_byte(d[i]);
        for (Py_ssize_t k = i + 1; !counts && k <= j; k++)
            counts = !blank_byte(d[k]);
        count += counts;
        i = j + 1;
        if (count == size) {
            PyObject *at = PyLong_FromSsize_t(i);
            if (!at || PyList_Append(ends, at) < 0) {
                Py_XDECREF(at);
                Py_DECREF(ends);
                PyBuffer_Release(&buf);
                return NULL;
            }
            Py_DECREF(at);
            count = 0;
        }
    }
    PyBuffer_Release(&buf);
    return Py_BuildValue("(Nnn)", ends, count, i);
}

/* head_marks(paragraphs, breadcrumb_chars) -> (datelines, pairs, homes)
 * What parse.find_source looks at more closely, found in one pass over an article's head (a
 * Python step per paragraph and pattern was ~4% of a near-duplicate-only run):
 *   datelines: the k whose paragraph may open a dateline (_DATELINE_SOURCE starts with an ASCII
 *              capital and then a capital, a space or one of . , ' U+2019 -);
 *   pairs:     the k where paragraphs k and k + 1 are both at most 40 characters long (a date
 *              line and a name line: _find_source_py's length tests);
 *   homes:     (k, at): "Home" lies wholly in paragraph k's first breadcrumb_chars characters,
 *              first at `at` (str.find("Home", 0, breadcrumb_chars)).
 * Each a list, usually empty: necessary conditions only, find_source runs the patterns. */
static PyObject *k_head_marks(PyObject *self, PyObject *args)
{
    PyObject *paras;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "O!n", &PyList_Type, &paras, &limit))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(paras);
    for (Py_ssize_t k = 0; k < n; k++) {
        if (!PyUnicode_Check(PyList_GET_ITEM(paras, k))) {
            PyErr_SetString(PyExc_TypeError, "head_marks: paragraphs must be str");
            return NULL;
        }
    }
    PyObject *dl = PyList_New(0), *pr = PyList_New(0), *hm = PyList_New(0);
    if (!dl || !pr || !hm)
        goto fail;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *p = PyList_GET_ITEM(paras, k);
        Py_ssize_t len = PyUnicode_GET_LENGTH(p);
        int kind = PyUnicode_KIND(p);
        const void *data = PyUnicode_DATA(p);
        if (len >= 2) {
            Py_UCS4 c0 = PyUnicode_READ(kind, data, 0), c1 = PyUnicode_READ(kind, data, 1);
            if (c0 >= 'A' && c0 <= 'Z'
                && ((c1 >= 'A' && c1 <= 'Z') || c1 == ' ' || c1 == '.' || c1 == ',' || c1 == '\''
                    || c1 == 0x2019 || c1 == '-')) {
                PyObject *v = PyLong_FromSsize_t(k);
                if (!v || PyList_Append(dl, v) < 0) {
                    Py_XDECREF(v);
                    goto fail;
                }
                Py_DECREF(v);
            }
        }
        if (k + 1 < n && len <= 40 && PyUnicode_GET_LENGTH(PyList_GET_ITEM(paras, k + 1)) <= 40) {
            PyObject *v = PyLong_FromSsize_t(k);
            if (!v || PyList_Append(pr, v) < 0) {
                Py_XDECREF(v);
                goto fail;
            }
            Py_DECREF(v);
        }
        Py_ssize_t end = len < limit ? len : limit;
        Py_ssize_t i = 0;
        if (kind == PyUnicode_1BYTE_KIND) {
            /* (nearly every paragraph) straight to the first "Home", if any: a memchr per 'H'
               instead of a read and compare per character (~5.6k instructions an article) */
            const Py_UCS1 *b = (const Py_UCS1 *)data, *h;
            while (i + 4 <= end && (h = memchr(b + i, 'H', (size_t)(end - 3 - i))) != NULL) {
                i = h - b;
                if (b[i + 1] == 'o' && b[i + 2] == 'm' && b[i + 3] == 'e')
                    break;
                i++;
            }
            if (i + 4 > end || memcmp(b + i, "Home", 4) != 0)
                continue;
        }
        for (; i + 4 <= end; i++) {
            if (PyUnicode_READ(kind, data, i) == 'H' && PyUnicode_READ(kind, data, i + 1) == 'o'
                && PyUnicode_READ(kind, data, i + 2) == 'm' && PyUnicode_READ(kind, data, i + 3) == 'e') {
                PyObject *v = Py_BuildValue("(nn)", k, i);
                if (!v || PyList_Append(hm, v) < 0) {
                    Py_XDECREF(v);
                    goto fail;
                }
                Py_DECREF(v);
                break;
            }
        }
    }
    return Py_BuildValue("(NNN)", dl, pr, hm);
fail:
    Py_XDECREF(dl);
    Py_XDECREF(pr);
    Py_XDECREF(hm);
    return NULL;
}

static PyMethodDef methods[] = {
    {"word_table", k_word_table, METH_VARARGS, "A lookup table of ASCII words (a capsule)."},
    {"stop_counts", k_stop_counts, METH_VARARGS, "Token and stopword counts of paragraph samples."},
    {"split_unwrapped", k_split_unwrapped, METH_VARARGS, "split_paragraphs for ASCII text that is not wrapped, else None."},
    {"word_counts", k_word_counts, METH_VARARGS, "content.word_count of every paragraph."},
    {"scores", k_scores, METH_VARARGS, "content._score of every paragraph (ASCII in C, others by a fallback)."},
    {"line_ends", k_line_ends, METH_VARARGS, "ranges._line_ends_py: where ranges of JSONL records end."},
    {"head_marks", k_head_marks, METH_VARARGS, "What parse.find_source must look at in an article's head."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", NULL, -1, methods};

PyMODINIT_FUNC PyInit__kernels(void)
{
    return PyModule_Create(&module);
}
