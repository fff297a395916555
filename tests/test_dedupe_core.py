"""Exact-behaviour tests of shingling, signatures and the LSH index."""

from __future__ import annotations

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH

from dedupe.config import DedupeConfig
from dedupe.index import band_keys, candidate_pairs, lsh_params
from dedupe.minhash import signatures, to_lean_minhash, to_minhash
from dedupe.shingles import normalise, shingle_hashes, shingle_hashes_many

CFG = DedupeConfig()


def test_normalise():
    assert normalise("Hello,  World!\n It’s 2001 — “quoted” café") == "hello world its 0000 quoted café"
    assert normalise("ＡＢＣ x_y 3.5%") == "abc x y 0 0"  # NFKC folds full-width letters
    assert normalise("STRASSE Straße") == "strasse strasse"  # casefold, not lower
    assert normalise("  \n\t ") == ""
    assert normalise("don't") == normalise("dont") == "dont"


def test_shingles_ignore_formatting():
    a = shingle_hashes("The quick brown fox jumps over the lazy dog, it said.", CFG)
    b = shingle_hashes("the QUICK brown\nfox — jumps over the lazy dog it said", CFG)
    assert a.dtype == np.uint32 and np.array_equal(a, b)
    assert np.all(np.diff(a.astype(np.int64)) > 0)  # sorted unique
    assert a.size == 11 - 5 + 1


def test_shingles_short_and_empty():
    assert shingle_hashes("", CFG).size == 0
    assert shingle_hashes("two words", CFG).size == 1
    assert not np.array_equal(shingle_hashes("two words", CFG), shingle_hashes("words two", CFG))


def test_shingles_batch_equals_single():
    texts = ["", "a b c d e f g", "x", "", "Some more text here with words, words and words."] * 3
    for cfg in (CFG, DedupeConfig(shingle="char", ngram=4)):
        many = shingle_hashes_many(texts, cfg)
        for t, s in zip(texts, many):
            assert np.array_equal(s, shingle_hashes(t, cfg))


def test_char_shingles():
    cfg = DedupeConfig(shingle="char", ngram=3)
    assert shingle_hashes("ab  c", cfg).size == 2  # "ab ", "b c": the space run is one space
    assert np.array_equal(shingle_hashes("ab  c", cfg), shingle_hashes(" AB c ", cfg))


def _datasketch(hashes: np.ndarray, cfg: DedupeConfig) -> np.ndarray:
    m = MinHash(num_perm=cfg.num_perm, seed=cfg.seed, hashfunc=lambda x: x)
    m.update_batch(hashes.tolist())
    return m.hashvalues


@pytest.mark.parametrize("num_perm,seed", [(128, 1), (64, 7)])
def test_signatures_equal_datasketch(num_perm, seed):
    cfg = DedupeConfig(num_perm=num_perm, seed=seed)
    rng = np.random.default_rng(0)
    sets = [np.unique(rng.integers(0, 2**32, size=k, dtype=np.uint64).astype(np.uint32))
            for k in (1, 5, 300, 0, 2000, 17)]
    sigs = signatures(sets, cfg)
    assert sigs.shape == (len(sets), num_perm) and sigs.dtype == np.uint32
    for s, g in zip(sets, sigs):
        assert np.array_equal(g, _datasketch(s, cfg))
    assert np.all(sigs[3] == 0xFFFFFFFF)  # empty set: datasketch's initial values
    lean = to_lean_minhash(sigs[2], cfg)
    assert lean.scheme == "affine32"
    assert lean.jaccard(to_lean_minhash(sigs[2], cfg)) == 1.0
    assert np.array_equal(to_minhash(sigs[1], cfg).hashvalues, sigs[1])


def test_candidates_match_datasketch_lsh():
    cfg = DedupeConfig()
    rng = np.random.default_rng(1)
    base = rng.integers(0, 2**32, size=400, dtype=np.uint64).astype(np.uint32)
    sets = [np.unique(base)]
    for keep in (0.9, 0.6, 0.4, 0.25, 0.1):
        part = base[rng.random(base.size) < keep]
        extra = rng.integers(0, 2**32, size=50, dtype=np.uint64).astype(np.uint32)
        sets.append(np.unique(np.concatenate([part, extra])))
    sigs = signatures(sets, cfg)
    b, r = lsh_params(cfg.candidate_threshold, cfg.num_perm)
    lsh = MinHashLSH(threshold=cfg.candidate_threshold, num_perm=cfg.num_perm)
    assert (lsh.b, lsh.r) == (b, r)
    expected = set()
    for i, g in enumerate(sigs):
        m = to_lean_minhash(g, cfg)
        for j in lsh.query(m):
            expected.add((j, i))
        lsh.insert(i, m)
    got = {tuple(p) for p in candidate_pairs([band_keys(sigs, k, r) for k in range(b)], 100).tolist()}
    assert got == expected


def test_candidate_pairs_large_bucket_is_bounded():
    keys = np.zeros(50, dtype=np.uint64)
    pairs = candidate_pairs([keys], max_bucket=5)
    assert len(pairs) == sum(min(p, 5) for p in range(50))
    assert {0, 1, 2, 3, 4} >= set(pairs[:, 0].tolist())


def test_long_recurring_paragraph_is_found_by_its_exact_text_only() -> None:
    from dedupe.recurring import SIGN_MAX_CHARS, RecurringParagraphs

    footer = ("This report is distributed by the Northern Wire cooperative to its member papers. " * 6).strip()
    assert len(footer) > SIGN_MAX_CHARS
    detector = RecurringParagraphs(min_articles=3)
    bodies = ["Harvest festival draws record crowds to the valley.", "Council delays vote on bus lanes.",
              "Striker signs three-year deal with city club.", "Museum reopens east wing after repairs."]
    for body in bodies:
        detector.observe([body, footer])
    detector.freeze()
    assert detector.is_recurring(footer)
    assert detector.is_recurring(footer.replace("2024", "2025"))  # digits are unified anyway
    assert not detector.is_recurring(footer.replace("Northern", "Southern"))  # no near-variant grouping
    assert not detector.is_recurring(bodies[0])


def test_permutations_are_numpy_randomstate_draws_without_numpy_random() -> None:
    from dedupe.minhash import permutations

    for num_perm, seed in ((128, 1), (64, 7), (37, 123), (1000, 0), (16, 2**32 - 1)):
        gen = np.random.RandomState(seed)
        a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
        b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
        got_a, got_b = permutations(num_perm, seed)
        assert got_a.dtype == np.uint32 and got_b.dtype == np.uint32
        assert got_a.tolist() == a.tolist() and got_b.tolist() == b.tolist()
    with pytest.raises(ValueError, match="Seed must be between 0 and 2\\*\\*32 - 1"):
        permutations(128, 2**32)


def test_gram_weights_are_the_pcg64_draw_they_were() -> None:
    from dedupe.shingles import _GRAM_WEIGHTS

    gen = np.random.Generator(np.random.PCG64(0x5A1E))
    drawn = gen.integers(0, 2**63, size=64, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    assert _GRAM_WEIGHTS.dtype == np.uint64 and _GRAM_WEIGHTS.tolist() == drawn.tolist()


def test_permutations_are_datasketch_affine32_draws() -> None:
    from datasketch import MinHash

    from dedupe.minhash import permutations

    for num_perm, seed in ((128, 1), (64, 7), (37, 123)):
        a, b = permutations(num_perm, seed)
        expected = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
        assert a.tolist() == expected[0].tolist() and b.tolist() == expected[1].tolist()
