"""Fast paths of the paragraph-collapse kernels (dedupe/_kernels.c) against the references.

normalise: the ASCII byte-map loop (writes straight into the str) against the numpy reference,
also in lists mixing ASCII and non-ASCII texts and with a non-standard ascii map (generic loop).
word_pairs: the byte-word hash, the SSE2 space scan and the kept hash table against a set-based
reference, with words of every length around the 8/16-byte cut-offs, repeated words, mixed
1-, 2- and 4-byte texts (a word must hash the same in each), and paragraph counts either side
of WP_TABLE_MAX_PARAS (256).
repeat_scan: collapse_repeated_paragraphs' whole scan in one call, against the same scan in
Python on normalised strings; and the AVX-512 normalisation loop against the scalar one."""

from __future__ import annotations

import random

import numpy as np
import pytest

from dedupe import paragraphs, shingles
from tests.conftest import word_pairs_reference

pytestmark = pytest.mark.skipif(shingles._kernels is None, reason="C kernels not built")
K = shingles._kernels


_EDGE = [
    "", " ", "   ", ",.;:!?", " - ", "'", "''''", "a'b", "'a'", "it's", "don't stop",
    "Rock 'n' roll", "1999", "12,345.67", "room 101, floor 3", "A", "ABC DEF", "  lead", "trail  ",
    "x" * 5000, ("word " * 3000).strip(), "a" + " " * 1000 + "b", "\t\n\r\x0b\x0c", "\x00a\x00",
    "tab\there", "UPPER lower MiXeD", "e.g. U.S.A.", "x_y-z/w", "~`@#$%^&*()_+={}[]|\\<>",
    "".join(chr(c) for c in range(128)), "'" + " " * 10 + "'",
]


@pytest.mark.parametrize("text", _EDGE)
def test_normalise_edge_cases(text):
    assert shingles.normalise_many([text]) == shingles._normalise_many_numpy([text])


def test_normalise_random_ascii_and_mixed_lists():
    rng = random.Random(3)
    alphabet = "abcXYZ09 '',.-\t\n!?" + "".join(chr(c) for c in range(32, 127))
    texts = []
    for _ in range(3000):
        n = rng.choice([0, 1, 2, 3, 5, 15, 16, 17, 40, 200, 2000])
        texts.append("".join(rng.choice(alphabet) for _ in range(n)))
    wide = ["café au lait", "naïve 'x'", "Straße", "日本語 テキスト", "😀 smile", "l'été 2001"]
    mixed = list(texts)
    for w in wide:
        mixed.insert(rng.randrange(len(mixed) + 1), w)
    for batch in (texts, mixed, mixed[::-1]):
        got = shingles.normalise_many(batch)
        assert got == shingles._normalise_many_numpy(batch)
        assert all(type(g) is str for g in got)
        assert all(g.isascii() for g, t in zip(got, batch) if t.isascii())


def test_normalise_other_ascii_map_takes_generic_loop():
    # a map sending a letter to a space or a non-ASCII code point disables the fast path; the
    # fast path's cached map must not leak into (or out of) such a call
    table, amap = shingles._table(), shingles._ascii_map()
    texts = ["quick brown fox", "a'b q", "Q q", "   "]
    base = K.normalise(texts, table, amap)
    odd = amap.copy()
    odd[ord("q")] = 32
    # the generic loop: 'q' -> a literal (non-separator) space, not collapsed, one stripped at the end as before
    # ('Q' folds to the table's 'q', not through the ascii map's entry for 'q')
    assert K.normalise(texts, table, odd) == [" uick brown fox", "ab ", "q ", ""]
    odd2 = amap.copy()
    odd2[ord("x")] = ord("y")  # still a fast map, but another one
    assert K.normalise(["fox x"], table, odd2) == ["foy y"]
    assert K.normalise(texts, table, amap) == base


def _vocab(rng):
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = set()
    for n in list(range(1, 40)) + [63, 64, 65, 100, 300]:
        for _ in range(3):
            words.add("".join(rng.choice(letters) for _ in range(n)))
    # words equal in their first 8 or 16 bytes, differing later, and prefixes of each other
    words |= {"abcdefgh", "abcdefghi", "abcdefghij", "abcdefghijklmnop", "abcdefghijklmnopq",
              "abcdefghijklmnopr", "abcdefghijklmnopqrstuvwx", "abcdefghijklmnopqrstuvwy"}
    return sorted(words)


def _paragraphs(rng, vocab, n, wide=False):
    base = [rng.choice(vocab) for _ in range(rng.randint(3, 40))]
    paras = []
    for _ in range(n):
        p = list(base) if rng.random() < 0.5 else [rng.choice(vocab) for _ in range(len(base))]
        for _ in range(rng.randint(0, 4)):
            p[rng.randrange(len(p))] = rng.choice(vocab)
        if rng.random() < 0.3:
            p += p[: rng.randint(1, len(p))]  # repeated words
        if wide and rng.random() < 0.5:
            p.append(rng.choice(["café", "naïve", "日本語", "😀", "straße"]))
        paras.append(" ".join(p))
    return paras


@pytest.mark.parametrize("many", [False, True])
def test_word_pairs_against_reference(many):
    rng = random.Random(17 + many)
    vocab = _vocab(rng)
    for _ in range(6 if many else 300):
        n = rng.randint(250, 300) if many else rng.randint(0, 9)
        paras = _paragraphs(rng, vocab, n, wide=rng.random() < 0.3)
        for thr, pre in ((0.8, 0.5), (0.5, 0.2), (0.0, 0.0)):
            assert K.word_pairs(paras, thr, pre) == word_pairs_reference(paras, thr, pre)


def _pair_at(rng, shared, only_a, only_b, repeats=0):
    """Two paragraphs with exactly `shared` common words and `only_a` / `only_b` of their own
    (distinct words, shuffled), plus `repeats` repeated words in the first."""
    words = [f"w{rng.randrange(10**9)}x{i}" for i in range(shared + only_a + only_b)]
    a = words[:shared] + words[shared:shared + only_a]
    b = words[:shared] + words[shared + only_a:]
    a += [rng.choice(a) for _ in range(repeats)] if a else []
    rng.shuffle(a)
    rng.shuffle(b)
    return " ".join(a), " ".join(b)


def test_word_pairs_bitmap_prefilter_boundary():
    # The kernel skips pairs whose word bitmaps already show a Jaccard under `pre`; pairs at,
    # just over and just under `pre`, with repeated words (counted in the bound, not in the
    # sets), small and bitmap-saturating sizes, must come out as the exact sets say.
    rng = random.Random(23)
    cases = 0
    for pre in (0.1, 0.2, 0.5, 0.51, 0.7, 1.0):
        for size in (2, 5, 40, 300, 1500):
            for delta in (-2, -1, 0, 1, 2):
                # Jaccard shared / (shared + own) = pre at own = shared * (1 - pre) / pre
                shared = size
                own = max(0, round(shared * (1 - pre) / pre) + delta)
                a, b = _pair_at(rng, shared, own // 2, own - own // 2, repeats=rng.choice((0, 0, 7)))
                for paras in ([a, b], [b, a], [a, "z " * 3, b]):
                    assert K.word_pairs(paras, 0.0, pre) == word_pairs_reference(paras, 0.0, pre)
                    cases += 1
    assert cases == 6 * 5 * 5 * 3
    # equal word sets always pair, even when every bit of the bitmaps is set
    a, b = _pair_at(rng, 3000, 0, 0)
    assert K.word_pairs([a, b], 0.0, 1.0) == [(1, 0)]


def test_word_pairs_same_word_in_narrow_and_wide_texts():
    # the same words in a 1-byte, a 2-byte and a 4-byte text are the same words
    words = "alpha beta gammadeltaepsilon café abcdefghijklmnopqrstuvwxyz0123 x"
    texts = [words, words + " ā", words + " 😀", words + " é"]
    assert {type(t) for t in texts} == {str}
    for pre in (0.7, 0.8):
        assert K.word_pairs(texts, 0.0, pre) == word_pairs_reference(texts, 0.0, pre)
    assert len(K.word_pairs(texts, 0.0, 0.7)) == 6


def test_word_pairs_unnormalised_spacing_and_edges():
    paras = ["", " ", "a", "a  b", " a b ", "a b", "b   a   ", "x" * 5000, "x" * 5000 + " y",
             ("w " * 2000).strip(), "w", "\x00 a", "a \x00", "a\x00 b", "a b\x00"]
    for thr, pre in ((0.0, 0.0), (0.0, 0.5), (0.8, 0.5), (0.0, 1.0)):
        assert K.word_pairs(paras, thr, pre) == word_pairs_reference(paras, thr, pre)


def test_word_pairs_table_reuse_across_sizes():
    # the kept hash table across calls of growing and shrinking size gives the same answers
    rng = random.Random(5)
    vocab = _vocab(rng)
    cases = [_paragraphs(rng, vocab, rng.choice([2, 5, 40, 120, 256, 257])) for _ in range(40)]
    want = [word_pairs_reference(c, 0.8, 0.5) for c in cases]
    for _ in range(2):
        assert [K.word_pairs(c, 0.8, 0.5) for c in cases] == want
    big = [" ".join(rng.choice(vocab) + str(i) for i in range(20000)) for _ in range(3)]
    big.append(big[0])
    assert K.word_pairs(big, 0.8, 0.5) == word_pairs_reference(big, 0.8, 0.5)
    assert [K.word_pairs(c, 0.8, 0.5) for c in cases] == want


@pytest.fixture(params=[1, 0], ids=["norm512", "scalar"])
def norm_loop(request):
    """Each ASCII normalisation loop (the AVX-512 one only on a CPU that has AVX512-VBMI2)."""
    prev = K.set_norm512()
    try:
        if K.set_norm512(request.param) != request.param:
            pytest.skip("this CPU has no AVX512-VBMI2 (or AVX-512 is switched off)")
        yield request.param
    finally:
        K.set_norm512(prev)


def _ascii_texts(rng, count):
    shapes = ("abcXYZ09 .,'`\t\n-!", "' .", "abcdefgh    ")
    out = []
    for _ in range(count):
        n = rng.choice([0, 1, 2, 3, 63, 64, 65, 127, 128, 129, 500, 3000, rng.randint(0, 300)])
        out.append("".join(rng.choice(rng.choice(shapes)) for _ in range(n)))
    return out


def test_normalise_ascii_loops_agree(norm_loop):
    # block edges at 64 characters, runs of separators and of apostrophes across them
    texts = _ascii_texts(random.Random(31), 4000) + _EDGE[:-1]
    texts = [t for t in texts if t.isascii()]
    assert shingles.normalise_many(texts) == shingles._normalise_many_numpy(texts)


def _scan_reference(paras, threshold, pre):
    norms = shingles._normalise_many_numpy(paras)
    exact, longs = paragraphs.first_seen(norms)
    return exact, longs, word_pairs_reference([norms[i] for i in longs], threshold, pre)


def test_repeat_scan_against_python(norm_loop):
    rng = random.Random(41)
    vocab = _vocab(rng)
    amap = shingles._ascii_map()
    for _ in range(300):
        paras = _paragraphs(rng, vocab, rng.randint(0, 12))
        # exact repeats after normalisation (case, punctuation, apostrophes, spacing), short
        # ones, and paragraphs that normalise to nothing
        for _ in range(rng.randint(0, 3)):
            if paras:
                p = rng.choice(paras)
                paras.insert(rng.randrange(len(paras) + 1), rng.choice([p.upper(), f"  {p}!", p.replace("a", "'a")]))
        paras += rng.sample(["...", "''", "", "A b.", "a B", "Short one"], rng.randint(0, 3))
        rng.shuffle(paras)
        for thr, pre in ((0.8, 0.5), (0.5, 0.2)):
            exact, longs, pairs = K.repeat_scan(paras, amap, paragraphs.SHORT_CHARS, thr, pre)
            assert (exact, longs, pairs) == _scan_reference(paras, thr, pre)


def test_repeat_scan_leaves_non_ascii_to_python():
    amap = shingles._ascii_map()
    assert K.repeat_scan(["plain text here", "café au lait"], amap, 40, 0.8, 0.5) is None
    paras = ["Le café est ouvert tous les jours de la semaine.", "Le CAFÉ est ouvert tous les jours de la semaine!"]
    assert paragraphs.collapse_repeated_paragraphs(paras) == ([paras[0]], [1])
    ascii_paras = ["The cafe is open every day of the week, said its owner.",
                   "THE CAFE IS OPEN EVERY DAY OF THE WEEK, SAID ITS OWNER!", "Short."]
    assert paragraphs.collapse_repeated_paragraphs(ascii_paras) == ([ascii_paras[0], "Short."], [1])
