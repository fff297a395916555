"""Fast paths added to dedupe/_kernels.c for speed, against their Python/numpy references."""

from __future__ import annotations

import random

import numpy as np
import pytest

from dedupe import shingles
from dedupe.config import DedupeConfig
from tests.conftest import word_pairs_reference

pytestmark = pytest.mark.skipif(shingles._kernels is None, reason="C kernels not built")

_VOCAB = "storm river police court budget school market rain train fire vote team café 日本 ΩΣ".split()


def _paragraphs(rng: random.Random, sep: str) -> list[str]:
    base = [rng.choice(_VOCAB) for _ in range(rng.randint(1, 30))]
    paras = []
    for _ in range(rng.randint(2, 8)):
        p = list(base) if rng.random() < 0.5 else [rng.choice(_VOCAB) for _ in range(len(base))]
        for _ in range(rng.randint(0, 4)):
            p[rng.randrange(len(p))] = rng.choice(_VOCAB + ["typo", "x" * rng.randint(1, 20)])
        paras.append(sep.join(p))
    return paras


@pytest.mark.parametrize("sep", [" ", "  "], ids=["normalised", "double-spaced"])
def test_word_pairs_any_spacing_and_script(sep):
    """The branch-free ASCII word hashing and the skipping of paragraphs without a partner of
    comparable length give the exact-set pairs, also for runs of spaces and non-ASCII text."""
    rng = random.Random(7)
    for _ in range(400):
        paras = _paragraphs(rng, sep)
        if rng.random() < 0.3:
            paras = [" " + p + " " for p in paras]
        assert shingles._kernels.word_pairs(paras, 0.8, 0.5) == word_pairs_reference(paras, 0.8, 0.5)


def test_word_pairs_words_longer_than_power_table():
    a = "y" * 5000
    paras = [f"{a} b c", f"{a} b d", f"{'y' * 4999}z b c", "q " * 2000 + "r"]
    assert shingles._kernels.word_pairs(paras, 0.8, 0.5) == word_pairs_reference(paras, 0.8, 0.5)


@pytest.mark.parametrize("cfg", [DedupeConfig(), DedupeConfig(ngram=2)])
def test_word_shingles_long_words_equal_numpy(cfg):
    """Word hashes take X**k from a table of 4096 powers; longer words compute the rest."""
    texts = ["a " + "b" * 4095 + " c", "b" * 4096, "b" * 4097 + " d e f g h", "Z" * 9000 + "'s x",
             "日" * 5000 + " y"]
    got = shingles.shingle_hashes_many(texts, cfg)
    want = shingles._shingle_hashes_many_numpy(texts, cfg)
    assert all(np.array_equal(g, w) for g, w in zip(got, want))
