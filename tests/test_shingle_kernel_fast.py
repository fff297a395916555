"""The shingle kernel's fast paths (dedupe/_kernels.c) against the numpy reference, bit for bit:
the branch-free word loop of 1-byte (ASCII / Latin-1) texts with its chunks of NPOW / 2 = 2048
characters and its plain loop for words longer than that, and the bucket sort of the gram
hashes with its LSD radix fallback (skewed buckets, or 4096 grams and more)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from dedupe import minhash, shingles
from dedupe.config import DedupeConfig

pytestmark = pytest.mark.skipif(shingles._kernels is None, reason="C kernels not built")

_CONFIGS = [DedupeConfig(), DedupeConfig(ngram=1), DedupeConfig(ngram=3), DedupeConfig(ngram=7),
            DedupeConfig(shingle="char", ngram=5), DedupeConfig(shingle="char", ngram=2)]
_IDS = ["word5", "word1", "word3", "word7", "char5", "char2"]


def _assert_equal_numpy(texts: list[str], cfg: DedupeConfig) -> None:
    fast = shingles._shingle_hashes_many_kernel(texts, cfg)
    ref = shingles._shingle_hashes_many_numpy(texts, cfg)
    assert len(fast) == len(ref)
    for i, (f, r) in enumerate(zip(fast, ref)):
        assert f.dtype == r.dtype == np.uint32
        assert np.array_equal(f, r), (i, texts[i][:80])


def _long_word_texts() -> list[str]:
    """Words around the chunk (2048) and table (4096) sizes, at offsets that put chunk
    boundaries inside them, with apostrophes inside, and texts that end inside them."""
    out = []
    for n in (2047, 2048, 2049, 4095, 4096, 4097, 6200, 10000):
        for lead in ("", "a ", "x" * 1000 + " ", "b" * 2047 + " ", "c" * 2050 + " "):
            w = "".join(random.Random(n).choice("abcdefgh") for _ in range(n))
            out.append(lead + w)
            out.append(lead + w + " tail words here")
            out.append(lead + w[:n // 2] + "'" + w[n // 2:] + "` and more")
            out.append(lead + "'" * 3000 + w + " end")
    out.append("w" * 9000 + "'" + "v" * 9000)
    out.append(" ".join("q" * 2100 for _ in range(5)))
    return out


def _edge_texts() -> list[str]:
    return [
        "", " ", "   \n\t  ", ",.;:!?-()[]{}", "'", "''''", "`", "``''``", "' ` ' `",
        "a", "ab", "two words", "one two three", "one two three four",  # shorter than ngram
        "don't", "it's 'quoted' `back`ticks` o'clock ''start end''", "'a", "a'", "a' b", "a 'b",
        "a''b `c` d'e'f'g h", "'''word''' x", "rock'n'roll isn't `code` rock n roll",
        "1 22 333 4444 2001: a space odyssey 3.14159 x1y2z3 0", "007", "99 bottles",
        "MiXeD CaSe WORDS Words words", "tab\tseparated\nnew\r\nline\x0bvt\x0cff",
        "\x00nul\x01ctl\x7fdel", "under_score hy-phen sl/ash back\\slash",
        " leading and trailing ", "  multiple   spaces\n\nand\n\n\nlines  ",
        "café naïve façade déjà vu", "Ø ß ÿ ¡hola! ¿qué? «guillemets» µ ª º ¹²³ ¼",  # Latin-1
        "l'été c´est", "straße ＡＢＣ ﬁne", "日本語 テキスト 中文", "emoji 😀 here 🎉 x",  # 2/4-byte
        "Ωmega Ǆemal e\u0301 it’s", "mixed ascii then ü then 😀 then plain",
    ]


@pytest.mark.parametrize("cfg", _CONFIGS, ids=_IDS)
def test_edge_cases(cfg):
    _assert_equal_numpy(_edge_texts(), cfg)
    for t in _edge_texts():  # one text a batch too (the kernel's buffers sized to it)
        _assert_equal_numpy([t], cfg)


@pytest.mark.parametrize("cfg", _CONFIGS, ids=_IDS)
def test_long_words(cfg):
    _assert_equal_numpy(_long_word_texts(), cfg)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("cfg", _CONFIGS, ids=_IDS)
def test_random_mixed_batches(seed, cfg):
    """ASCII, Latin-1, 2-byte and 4-byte texts interleaved in one batch."""
    rng = random.Random(seed)
    pieces = ["the", "Quick", "fox's", "don't", "`x`", "'", "a'b'c", "2024", "3.5", "café",
              "Ñandú", "straße", "日本", "😀", "it’s", "x" * rng.randint(1, 60), "", "Ω"]
    seps = [" ", "  ", "\n", ", ", ". ", "", "'", " ' ", "-", "\t"]
    texts = []
    for _ in range(120):
        k = rng.randint(0, 300)
        texts.append("".join(rng.choice(pieces) + rng.choice(seps) for _ in range(k)))
    _assert_equal_numpy(texts, cfg)


@pytest.mark.parametrize("cfg", _CONFIGS, ids=_IDS)
def test_sort_sizes(cfg):
    """Gram counts around the sort's thresholds (32: insertion only; 4096: the bucket sort's
    limit, radix above) and many repeated grams."""
    rng = random.Random(7)
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 9)))
             for _ in range(3000)]
    texts = []
    for n in (30, 31, 32, 33, 34, 36, 37, 100, 4090, 4095, 4096, 4097, 4100, 9000):
        texts.append(" ".join(rng.choice(vocab) for _ in range(n)))
    texts.append("a b c d e " * 3000)  # 5 distinct grams, many times
    texts.append("same " * 5000)
    texts.append("x" * 20000)  # char mode: one gram 20000 times
    _assert_equal_numpy(texts, cfg)


def _skewed_text() -> str:
    """4-letter words whose ngram=1 hashes share their top 11 bits: one bucket of the bucket
    sort gets all of them, in random order, so its insertion sort runs out of its budget of
    moves and the radix sort finishes (the word hash of the kernel docs, computed here)."""
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8).astype(np.uint64)
    c = np.stack(np.meshgrid(letters, letters, letters, letters, indexing="ij"), -1).reshape(-1, 4)
    x, h, p = shingles._X, np.zeros(len(c), dtype=np.uint64), np.uint64(1)
    with np.errstate(over="ignore"):
        for k in range(4):
            h += c[:, k] * p
            p = p * x
        g = shingles.fmix64(shingles.fmix64(h) * shingles._GRAM_WEIGHTS[0]) >> np.uint64(32)
    top = g >> np.uint64(21)
    pick = np.flatnonzero(top == np.bincount(top.astype(np.int64)).argmax())
    words = [bytes(c[i].astype(np.uint8)).decode() for i in pick]
    random.Random(3).shuffle(words)
    return " ".join(words)


def test_skewed_buckets_fall_back_to_radix():
    text = _skewed_text()
    cfg = DedupeConfig(ngram=1)
    ref = shingles._shingle_hashes_many_numpy([text], cfg)[0]
    assert ref.size > 150 and np.unique(ref >> np.uint32(21)).size == 1  # the skew is real
    _assert_equal_numpy([text, "plain text between", text[::-1], text], cfg)


@pytest.mark.parametrize("cfg", [DedupeConfig(), DedupeConfig(shingle="char", ngram=5, num_perm=64)],
                         ids=["word", "char"])
def test_text_signatures_share_the_fast_units(cfg):
    texts = _edge_texts() + _long_word_texts()[:12]
    ref = minhash._signatures_numpy(shingles._shingle_hashes_many_numpy(texts, cfg), cfg)
    assert np.array_equal(minhash.text_signatures(texts, cfg), ref)
