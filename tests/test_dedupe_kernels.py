"""The C kernels (dedupe/_kernels.c) against the numpy reference, bit for bit."""

from __future__ import annotations

import random

import numpy as np
import pytest

from dedupe import minhash, paragraphs, shingles
from dedupe.config import DedupeConfig

pytestmark = pytest.mark.skipif(shingles._kernels is None, reason="C kernels not built")

_PIECES = [
    "The", "QUICK", "brown", "fox's", "don't", "it’s", "café", "Straße", "ＡＢＣ", "naïve", "x_y",
    "3.5%", "2001", "—", "“quoted”", "l'été", "Ǆemal", "ﬁne", "Ωmega", "日本語", "テキスト", "😀",
    "e\u0301", "a`b", "c´d", "e\u02bcf", "\u00a0", "\t", "\n\n", "  ", ",", ".", "-", "'", "",
    "word", "another", "more", "words", "here", "and", "there",
]


def _texts(seed: int, n: int = 60) -> list[str]:
    rng = random.Random(seed)
    out = ["", " ", "a", "two words", "'", "''''", "a'b", "x" * 5000]
    for _ in range(n):
        k = rng.randint(0, 80)
        seps = [" ", " ", " ", "\n", ", ", "", "  "]
        out.append("".join(rng.choice(_PIECES) + rng.choice(seps) for _ in range(k)))
    return out


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("cfg", [DedupeConfig(), DedupeConfig(ngram=3), DedupeConfig(ngram=1),
                                 DedupeConfig(shingle="char", ngram=5),
                                 DedupeConfig(shingle="char", ngram=2)])
def test_shingles_equal_numpy(seed, cfg):
    texts = _texts(seed)
    fast = shingles._shingle_hashes_many_kernel(texts, cfg)
    ref = shingles._shingle_hashes_many_numpy(texts, cfg)
    assert len(fast) == len(ref)
    for f, r in zip(fast, ref):
        assert f.dtype == r.dtype == np.uint32
        assert np.array_equal(f, r)


@pytest.mark.parametrize("seed", range(4))
def test_normalise_equal_numpy(seed):
    texts = _texts(seed)
    assert shingles.normalise_many(texts) == shingles._normalise_many_numpy(texts)


@pytest.mark.parametrize("num_perm,seed", [(128, 1), (64, 7), (3, 2)])
def test_signatures_equal_numpy(num_perm, seed):
    cfg = DedupeConfig(num_perm=num_perm, seed=seed)
    rng = np.random.default_rng(seed)
    sets = [np.unique(rng.integers(0, 2**32, size=k, dtype=np.uint64).astype(np.uint32))
            for k in (0, 1, 5, 300, 0, 2000, 17, 9000)]
    assert np.array_equal(minhash._signatures_kernel(sets, cfg), minhash._signatures_numpy(sets, cfg))
    assert np.array_equal(minhash._signatures_kernel(sets[:1], cfg), minhash._signatures_numpy(sets[:1], cfg))


@pytest.mark.parametrize("cfg", [DedupeConfig(), DedupeConfig(shingle="char", ngram=5, num_perm=64)])
def test_text_signatures_equal_two_step(cfg):
    texts = _texts(9)
    ref = minhash._signatures_numpy(shingles._shingle_hashes_many_numpy(texts, cfg), cfg)
    assert np.array_equal(minhash.text_signatures(texts, cfg), ref)


@pytest.mark.parametrize("many", [False, True], ids=["postings", "sort-merge"])
def test_word_pairs_equal_python_prefilter(many):
    """Both kernel paths (postings table up to 256 paragraphs, sort-and-merge above) give the
    pairs of the Python definition, in the same order."""
    rng = random.Random(5)
    vocab = "storm river police court budget school market rain train fire vote team".split()
    for _ in range(8 if many else 200):
        base = [rng.choice(vocab) for _ in range(rng.randint(5, 30))]
        paras = []
        for _ in range(rng.randint(257, 300) if many else rng.randint(2, 7)):
            p = list(base) if rng.random() < 0.5 else [rng.choice(vocab) for _ in range(len(base))]
            for _ in range(rng.randint(0, 6)):
                p[rng.randrange(len(p))] = rng.choice(vocab + ["typo", "extra"])
            paras.append(" ".join(p))
        norms = shingles.normalise_many(paras)
        want = []
        for k in range(len(norms)):
            for m in range(k):
                a, b = len(norms[k]), len(norms[m])
                if min(a, b) < 0.8 * max(a, b):
                    continue
                wk, wm = set(norms[k].split()), set(norms[m].split())
                inter = len(wk & wm)
                if inter < (0.8 - 0.3) * (len(wk) + len(wm) - inter):
                    continue
                want.append((k, m))
        assert shingles._kernels.word_pairs(norms, 0.8, 0.8 - 0.3) == want


def test_collapse_equal_without_kernels(monkeypatch):
    rng = random.Random(11)
    vocab = "storm river police court budget school market rain train fire vote team".split()
    cases = []
    for _ in range(300):
        paras = [" ".join(rng.choice(vocab) for _ in range(rng.randint(3, 25))) for _ in range(5)]
        for _ in range(rng.randint(0, 3)):
            p = rng.choice(paras)
            if rng.random() < 0.5:
                p = p.replace(rng.choice(vocab), rng.choice(vocab).upper(), 1) + "!"
            paras.insert(rng.randrange(len(paras) + 1), p)
        cases.append(paras)
    fast = [paragraphs.collapse_repeated_paragraphs(c) for c in cases]
    monkeypatch.setattr(paragraphs, "_kernels", None)
    monkeypatch.setattr(shingles, "_kernels", None)
    slow = [paragraphs.collapse_repeated_paragraphs(c) for c in cases]
    assert fast == slow
    assert sum(bool(d) for _, d in fast) > 50
