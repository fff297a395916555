"""``minhash.shingle_signatures`` (one C call: shingle counts and signatures) against the two-step
path (``shingle_hashes_many`` + ``signatures``) and the numpy reference, with the AVX-512 MinHash
loop, the AVX2 one and the portable one."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dedupe import minhash, shingles
from dedupe.config import DedupeConfig

_K = shingles._kernels
needs_kernels = pytest.mark.skipif(_K is None, reason="C kernels not built / THRESHER_NO_KERNELS")
ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path("/tmp/bench/c50k/corpus.jsonl")

_PIECES = [
    "The", "QUICK", "brown", "fox's", "don't", "it’s", "café", "Straße", "ＡＢＣ", "naïve", "x_y",
    "3.5%", "2001", "—", "“quoted”", "l'été", "Ǆemal", "ﬁne", "Ωmega", "日本語", "テキスト", "😀",
    "e\u0301", "a`b", "c´d", "\u00a0", "\t", "\n\n", "  ", ",", ".", "-", "'", "",
    "word", "another", "more", "words", "here", "and", "there",
]

_SPECIAL = [
    "",                                 # empty
    "  ,,, -- \n\t ... ''' ",           # separators (and deleted apostrophes) only
    "a",                                # one unit
    "two words",                        # shorter than most ngrams
    "four little words here",
    "déjà vu",                          # Latin-1 (1-byte kind, not ASCII)
    "Straße ＡＢＣ naïve ﬁne",          # 2-byte kind, NFKC / casefold changes
    "日本語 テキスト 😀 e\u0301 Ωmega",  # 4-byte kind
    "x" * 5000,                         # one long word
]


def _texts(seed: int, n: int = 40) -> list[str]:
    rng = random.Random(seed)
    out = list(_SPECIAL)
    seps = [" ", " ", " ", "\n", ", ", "", "  "]
    for _ in range(n):
        k = rng.randint(0, 120)
        out.append("".join(rng.choice(_PIECES) + rng.choice(seps) for _ in range(k)))
    rng.shuffle(out)
    return out


def _two_step(texts, cfg):
    sets = shingles.shingle_hashes_many(texts, cfg)
    return np.array([len(s) for s in sets], dtype=np.int64), minhash.signatures(sets, cfg)


def _numpy_ref(texts, cfg):
    sets = shingles._shingle_hashes_many_numpy(texts, cfg)
    return np.array([len(s) for s in sets], dtype=np.int64), minhash._signatures_numpy(sets, cfg)


@pytest.fixture(params=["avx512", "avx2", "portable"])
def simd(request):
    """Run the test with each MinHash loop (the AVX-512 and AVX2 ones only on a CPU that has them)."""
    if _K is None:
        yield None
        return
    prev = _K.set_avx512(), _K.set_avx2()
    want512, want2 = {"avx512": (1, 0), "avx2": (0, 1), "portable": (0, 0)}[request.param]
    got = _K.set_avx512(want512), _K.set_avx2(want2)
    try:
        if got != (want512, want2):
            pytest.skip(f"this CPU has no {'AVX-512F' if want512 else 'AVX2'}")
        yield request.param
    finally:
        _K.set_avx512(prev[0])
        _K.set_avx2(prev[1])


def _check(texts, cfg):
    sizes, sigs = minhash.shingle_signatures(texts, cfg)
    assert sizes.dtype == np.int64 and sizes.shape == (len(texts),)
    assert sigs.dtype == np.uint32 and sigs.shape == (len(texts), cfg.num_perm)
    ref_sizes, ref_sigs = _numpy_ref(texts, cfg)
    assert np.array_equal(sizes, ref_sizes)
    assert sigs.tobytes() == ref_sigs.tobytes()
    if _K is not None:
        two_sizes, two_sigs = _two_step(texts, cfg)
        assert np.array_equal(sizes, two_sizes)
        assert sigs.tobytes() == two_sigs.tobytes()
    return sizes, sigs


_CONFIGS = [
    DedupeConfig(shingle=mode, ngram=ngram, num_perm=num_perm, seed=seed)
    for mode in ("word", "char")
    for ngram in (1, 3, 5)
    for num_perm, seed in ((128, 1), (64, 7), (3, 12345))
]


@needs_kernels
@pytest.mark.parametrize("cfg", _CONFIGS, ids=lambda c: f"{c.shingle}{c.ngram}-p{c.num_perm}-s{c.seed}")
def test_mixed_batch_equals_two_step_and_numpy(cfg, simd):
    _check(_texts(cfg.seed + cfg.ngram), cfg)


@needs_kernels
@pytest.mark.parametrize("num_perm", [2, 15, 16, 17, 127, 129, 200, 256, 300])
def test_odd_permutation_counts(num_perm, simd):
    """Partial vectors of 16 permutations and more than one register block of 128."""
    cfg = DedupeConfig(num_perm=num_perm, seed=num_perm)
    _check(_texts(num_perm, 15), cfg)


@needs_kernels
@pytest.mark.parametrize("shingle", ["word", "char"])
@pytest.mark.parametrize("text", _SPECIAL, ids=range(len(_SPECIAL)))
def test_single_special_texts(text, shingle, simd):
    for ngram in (1, 3, 5):
        cfg = DedupeConfig(shingle=shingle, ngram=ngram)
        sizes, sigs = _check([text], cfg)
        if sizes[0] == 0:
            assert (sigs == 0xFFFFFFFF).all()


@needs_kernels
@pytest.mark.parametrize("shingle", ["word", "char"])
def test_counts_across_the_set_size_limit_and_with_many_repeats(shingle, simd):
    """The distinct count's hash set takes texts of fewer than 8,192 grams (the kernel's
    COUNT_MAX), longer ones are sort-uniqued: texts on both sides of that size, and texts made
    of one paragraph repeated (most grams seen before, in their own slot)."""
    rng = random.Random(8192)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6)) for _ in range(20_000)]
    texts = [" ".join(words[:n]) for n in (8_000, 8_190, 8_191, 8_192, 8_196, 8_300, 20_000)]
    paragraph = " ".join(words[:300])
    texts += ["\n\n".join([paragraph] * reps) for reps in (2, 30, 80)]
    for ngram in (1, 5):
        sizes, _ = _check(texts, DedupeConfig(shingle=shingle, ngram=ngram))
        if ngram == 5:
            assert sizes.max() > 8_192 and sizes.min() < 8_192


@needs_kernels
def test_empty_and_separator_only_give_empty_signature(simd):
    cfg = DedupeConfig()
    sizes, sigs = _check(["", "  ,;: -- \n", "'"], cfg)
    assert sizes.tolist() == [0, 0, 0]
    assert (sigs == 0xFFFFFFFF).all()


def test_no_texts():
    cfg = DedupeConfig(num_perm=64)
    sizes, sigs = minhash.shingle_signatures([], cfg)
    assert sizes.shape == (0,) and sizes.dtype == np.int64
    assert sigs.shape == (0, 64) and sigs.dtype == np.uint32


@needs_kernels
@pytest.mark.parametrize("shingle", ["word", "char"])
def test_large_batch(shingle, simd):
    """Many texts, some long enough for the radix-sort path (>= 4096 grams) and for the numpy
    reference to split its work into several chunks."""
    rng = random.Random(5)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(3000)]
    words += _PIECES
    texts = _texts(9, 300)
    for k in (5000, 9000, 40000):
        texts.insert(rng.randrange(len(texts)), " ".join(rng.choice(words) for _ in range(k)))
    cfg = DedupeConfig(shingle=shingle, ngram=5 if shingle == "word" else 4)
    sizes, _ = _check(texts, cfg)
    assert sizes.max() >= 4096


@needs_kernels
def test_tuple_input(simd):
    texts = _texts(3, 10)
    cfg = DedupeConfig()
    a = minhash.shingle_signatures(tuple(texts), cfg)
    b = minhash.shingle_signatures(texts, cfg)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@needs_kernels
@pytest.mark.parametrize("num_perm,seed", [(128, 1), (64, 7), (3, 2), (200, 9), (8, 4), (33, 5)])
def test_signatures_all_loops_equal(num_perm, seed):
    """``minhash`` (k_minhash) gives the same bits with the AVX-512 loop, the AVX2 one and the
    portable one (on a CPU without one of them the switch stays off and the case repeats another)."""
    cfg = DedupeConfig(num_perm=num_perm, seed=seed)
    rng = np.random.default_rng(seed)
    sets = [np.unique(rng.integers(0, 2**32, size=k, dtype=np.uint64).astype(np.uint32))
            for k in (0, 1, 5, 7, 8, 9, 15, 16, 17, 300, 0, 2000, 9000)]
    ref = minhash._signatures_numpy(sets, cfg)
    prev = _K.set_avx512(), _K.set_avx2()
    try:
        for m512, m2 in ((0, 0), (0, 1), (1, 0)):
            _K.set_avx512(m512)
            _K.set_avx2(m2)
            assert minhash._signatures_kernel(sets, cfg).tobytes() == ref.tobytes()
    finally:
        _K.set_avx512(prev[0])
        _K.set_avx2(prev[1])


def test_without_kernels_composes_numpy(monkeypatch):
    texts = _texts(4, 20)
    cfg = DedupeConfig(ngram=3, num_perm=32, seed=3)
    monkeypatch.setattr(minhash, "_kernels", None)
    sizes, sigs = minhash.shingle_signatures(texts, cfg)
    ref_sizes, ref_sigs = _numpy_ref(texts, cfg)
    assert sizes.dtype == np.int64 and np.array_equal(sizes, ref_sizes)
    assert sigs.tobytes() == ref_sigs.tobytes()


@pytest.mark.parametrize("env", ["THRESHER_NO_KERNELS", "THRESHER_NO_AVX512", "THRESHER_NO_AVX2"])
def test_env_switches_in_a_fresh_process(env, tmp_path):
    """THRESHER_NO_KERNELS=1 (numpy), THRESHER_NO_AVX512=1 and THRESHER_NO_AVX2=1 (those loops
    off) give the same bits as this process."""
    if env != "THRESHER_NO_KERNELS" and _K is None:
        pytest.skip("no kernels in this process (THRESHER_NO_KERNELS)")
    texts = _texts(6, 30)
    cfg = DedupeConfig(ngram=4, num_perm=80, seed=11)
    (tmp_path / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
    code = (
        "import json, sys, numpy as np\n"
        "from dedupe import minhash, shingles\n"
        "from dedupe.config import DedupeConfig\n"
        f"texts = json.load(open({str(tmp_path / 'texts.json')!r}, encoding='utf-8'))\n"
        "cfg = DedupeConfig(ngram=4, num_perm=80, seed=11)\n"
        f"if {env == 'THRESHER_NO_KERNELS'}: assert shingles._kernels is None\n"
        f"elif {env == 'THRESHER_NO_AVX512'}: assert shingles._kernels.set_avx512() == 0\n"
        "else: assert shingles._kernels.set_avx2() == 0\n"
        "s, g = minhash.shingle_signatures(texts, cfg)\n"
        f"np.save({str(tmp_path / 's.npy')!r}, s); np.save({str(tmp_path / 'g.npy')!r}, g)\n"
    )
    envs = dict(os.environ, **{env: "1"})
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=envs)
    sizes, sigs = (_numpy_ref if _K is None else _two_step)(texts, cfg)
    assert np.array_equal(np.load(tmp_path / "s.npy"), sizes)
    assert np.load(tmp_path / "g.npy").tobytes() == sigs.tobytes()


@needs_kernels
@pytest.mark.skipif(not CORPUS.exists(), reason=f"{CORPUS} is not present")
def test_corpus_prefix_equals_two_step(simd):
    texts = []
    with CORPUS.open("rb") as f:
        for line in f:
            texts.append(json.loads(line)["text"])
            if len(texts) >= 2000:
                break
    cfg = DedupeConfig()
    for i in range(0, len(texts), 128):
        chunk = texts[i : i + 128]
        sizes, sigs = minhash.shingle_signatures(chunk, cfg)
        ref_sizes, ref_sigs = _two_step(chunk, cfg)
        assert np.array_equal(sizes, ref_sizes)
        assert sigs.tobytes() == ref_sigs.tobytes()
