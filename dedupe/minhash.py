"""MinHash signatures computed in bulk with numpy, bit-identical to datasketch's ``affine32``.

datasketch 2.0's default scheme pre-mixes each 32-bit input hash with the MurmurHash3 32-bit
finaliser, then applies ``a_k * h + b_k`` modulo 2**32 (odd ``a_k``) and keeps the minimum per
permutation.  Doing that per article costs Python overhead per shingle; here all permutations
are applied to the shingles of many articles at once as one ``(num_perm, total)`` uint32
matrix and reduced per article with ``numpy.minimum.reduceat(axis=1)`` (along axis 0 it is ~48x
slower, FINDINGS).  Signatures can be wrapped back into datasketch objects with
``to_lean_minhash`` (e.g. for ``MinHashLSH``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import lru_cache

from typing import TYPE_CHECKING

import numpy as np

from .config import DedupeConfig
from .shingles import _kernels, _shingle_hashes_many_numpy, shingle_hashes_many

if TYPE_CHECKING:  # datasketch costs ~0.75 s to import (scipy); only the wrappers need it
    from datasketch import LeanMinHash, MinHash

_EMPTY = np.uint32(0xFFFFFFFF)  # datasketch's initial value: the signature of an empty set
_CHUNK = 1 << 13  # shingles per matrix block: (128, 8192) uint32 = 4 MB stays in cache


@lru_cache(maxsize=16)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) uint32 permutation parameters exactly as datasketch's ``affine32`` draws them
    (``MinHash._init_permutations``: odd multipliers, then offsets, from one RandomState). Drawn
    here rather than by building a datasketch MinHash so that start-up, in the parent and in
    every worker, does not pay for importing datasketch; a test compares with datasketch.

    ``RandomState(seed).randint(0, 2**31 or 2**32, n, dtype=uint32)`` is one MT19937 output
    word a value (masked to 31 bits for the multipliers: a power-of-two range never rejects);
    the words come from the standard library's MT19937, given the state numpy's seeding makes,
    so that numpy.random (~20 ms to import) stays unimported."""
    words = _mt19937_words(seed, 2 * num_perm)
    a = np.array(words[:num_perm], dtype=np.uint32) & np.uint32(0x7FFFFFFF)
    a = a * np.uint32(2) + np.uint32(1)
    b = np.array(words[num_perm:], dtype=np.uint32)
    a.setflags(write=False)
    b.setflags(write=False)
    return a, b


def _mt19937_words(seed: int, n: int) -> list[int]:
    """The first n 32-bit outputs of MT19937 seeded as numpy's ``RandomState(seed)`` seeds it
    (the reference ``init_genrand``), drawn by ``random.Random`` (whose ``getrandbits(32)`` is
    one output word of the same generator)."""
    if not 0 <= seed < 1 << 32:
        raise ValueError("Seed must be between 0 and 2**32 - 1")  # (numpy's message)
    state = [seed]
    for i in range(1, 624):
        prev = state[-1]
        state.append((1812433253 * (prev ^ (prev >> 30)) + i) & 0xFFFFFFFF)
    gen = random.Random()
    gen.setstate((3, (*state, 624), None))
    return [gen.getrandbits(32) for _ in range(n)]


def fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finaliser, element-wise (datasketch's affine pre-mix)."""
    h = h.astype(np.uint32, copy=True)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


def signatures(shingle_sets: Sequence[np.ndarray], config: DedupeConfig) -> np.ndarray:
    """(n, num_perm) uint32 MinHash signatures of n shingle-hash sets, batched.

    Equal to ``MinHash(num_perm, seed, scheme="affine32")`` updated with the same 32-bit hash
    values (hashfunc = identity).  An empty set gives all 0xFFFFFFFF, as in datasketch.
    """
    if _kernels is not None:
        return _signatures_kernel(shingle_sets, config)
    return _signatures_numpy(shingle_sets, config)


def _signatures_kernel(shingle_sets: Sequence[np.ndarray], config: DedupeConfig) -> np.ndarray:
    a, b = permutations(config.num_perm, config.seed)
    n = len(shingle_sets)
    out = np.empty((n, config.num_perm), dtype=np.uint32)
    if n == 0:
        return out
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(s) for s in shingle_sets], out=offsets[1:])
    flat = np.ascontiguousarray(np.concatenate(shingle_sets), dtype=np.uint32)
    _kernels.minhash(flat, offsets, a, b, out)
    return out


def _signatures_numpy(shingle_sets: Sequence[np.ndarray], config: DedupeConfig) -> np.ndarray:
    """The numpy reference of ``signatures``."""
    a, b = permutations(config.num_perm, config.seed)
    n = len(shingle_sets)
    out = np.full((n, config.num_perm), _EMPTY, dtype=np.uint32)
    sizes = np.fromiter((len(s) for s in shingle_sets), dtype=np.int64, count=n)
    nonempty = np.flatnonzero(sizes)
    if nonempty.size == 0:
        return out
    flat = fmix32(np.concatenate([shingle_sets[i] for i in nonempty.tolist()]))
    offsets = np.zeros(nonempty.size + 1, dtype=np.int64)
    np.cumsum(sizes[nonempty], out=offsets[1:])
    a_col = a[:, None]
    b_col = b[:, None]
    buf = np.empty((config.num_perm, 2 * _CHUNK), dtype=np.uint32)  # reused, no allocations
    # group whole articles into blocks of about _CHUNK shingles
    lo = 0
    while lo < nonempty.size:
        hi = int(np.searchsorted(offsets, offsets[lo] + _CHUNK, side="right")) - 1
        hi = min(max(hi, lo + 1), nonempty.size)
        s0, s1 = offsets[lo], offsets[hi]
        if s1 - s0 > buf.shape[1]:
            buf = np.empty((config.num_perm, s1 - s0), dtype=np.uint32)
        m = buf[:, : s1 - s0]
        np.multiply(a_col, flat[None, s0:s1], out=m)
        np.add(m, b_col, out=m)
        out[nonempty[lo:hi]] = np.minimum.reduceat(m, offsets[lo:hi] - s0, axis=1).T
        lo = hi
    return out


def to_lean_minhash(signature: np.ndarray, config: DedupeConfig) -> LeanMinHash:
    """Wrap a signature as a datasketch ``LeanMinHash`` (scheme ``affine32``)."""
    from datasketch import LeanMinHash

    return LeanMinHash(
        seed=config.seed,
        hashvalues=np.asarray(signature, dtype=np.uint32),
        scheme="affine32",
    )


def to_minhash(signature: np.ndarray, config: DedupeConfig) -> MinHash:
    """Wrap a signature as a datasketch ``MinHash`` (scheme ``affine32``)."""
    from datasketch import MinHash

    return MinHash(
        num_perm=config.num_perm,
        seed=config.seed,
        hashvalues=np.asarray(signature, dtype=np.uint32),
        scheme="affine32",
    )


def jaccard_estimate(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray | float:
    """Share of equal signature positions (rows broadcast): the MinHash Jaccard estimate."""
    return np.count_nonzero(sig_a == sig_b, axis=-1) / sig_a.shape[-1]


def text_signatures(texts: Sequence[str], config: DedupeConfig) -> np.ndarray:
    """``signatures(shingle_hashes_many(texts, config), config)`` in one step (with the C
    kernels the shingles are never sorted or materialised: a MinHash ignores order and repeats)."""
    if _kernels is None or not texts:
        return signatures(shingle_hashes_many(texts, config), config)
    from .shingles import _GRAM_WEIGHTS, _ascii_map, _prepared_for_kernel, _table

    a, b = permutations(config.num_perm, config.seed)
    out = np.empty((len(texts), config.num_perm), dtype=np.uint32)
    _kernels.shingle_sign(_prepared_for_kernel(texts), _table(), _ascii_map(),
                          _GRAM_WEIGHTS, config.ngram, config.shingle == "char", a, b, None, out)
    return out


def shingle_signatures(texts: Sequence[str], config: DedupeConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(sizes, sigs)``: int64 (n,) distinct shingles per text (``len`` of each
    ``shingle_hashes_many(texts, config)`` set) and uint32 (n, num_perm) ``signatures`` of them.

    With the C kernels this is one call for the whole batch: each text is tokenised, its grams
    hashed and sort-uniqued (for the count) and signed while they are in cache, with no per-text
    arrays and no flat copy of all the hashes in between.
    """
    n = len(texts)
    if _kernels is None:
        sets = _shingle_hashes_many_numpy(texts, config)
        sizes = np.fromiter((len(s) for s in sets), dtype=np.int64, count=n)
        return sizes, _signatures_numpy(sets, config)
    from .shingles import _GRAM_WEIGHTS, _ascii_map, _prepared_for_kernel, _table

    a, b = permutations(config.num_perm, config.seed)
    sizes = np.empty(n, dtype=np.int64)
    sigs = np.empty((n, config.num_perm), dtype=np.uint32)
    if n:
        _kernels.shingle_sign(_prepared_for_kernel(texts), _table(), _ascii_map(),
                              _GRAM_WEIGHTS, config.ngram, config.shingle == "char", a, b,
                              sizes, sigs)
    return sizes, sigs
