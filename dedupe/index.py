"""LSH candidate search over MinHash signatures, banded exactly like datasketch's MinHashLSH.

Bands and rows come from datasketch's own ``_optimal_param`` for the configured threshold, and
band ``i`` covers signature positions ``[i*r, (i+1)*r)`` as in ``MinHashLSH.hashranges``.  Two
articles are candidates when any band is equal.  Instead of a dict of byte-string keys per band
(~3.5 KB and ~43 us per article in datasketch), a band is reduced to one uint64 key (exact for
r <= 2, a 64-bit hash otherwise) and candidates are found by sorting a band's keys, so the index
itself stores nothing beyond the signatures.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

_U64 = np.uint64
_M1 = _U64(0xFF51AFD7ED558CCD)
_M2 = _U64(0xC4CEB9FE1A85EC53)
_S33 = _U64(33)
_S32 = _U64(32)
_GOLDEN = _U64(0x9E3779B97F4A7C15)


# datasketch's _optimal_param integrates numerically over every (bands, rows) split (~0.05-0.15 s
# per call, i.e. microseconds per article of a 50k run); the thresholds the project uses are
# tabulated (tests check the table against datasketch).
KNOWN_PARAMS: dict[tuple[float, int], tuple[int, int]] = {
    (0.2, 128): (28, 2),  # DedupeConfig.candidate_threshold
    (0.8, 128): (9, 13),
    (0.8, 64): (5, 11),  # RecurringParagraphs: threshold 0.8, 64 permutations
}


@lru_cache(maxsize=64)
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimising equally weighted false positive/negative mass, as datasketch."""
    known = KNOWN_PARAMS.get((threshold, num_perm))
    if known is not None:
        return known
    from datasketch.lsh import _optimal_param  # imported on demand: 0.75-1.5 s (scipy)

    return _optimal_param(threshold, num_perm, 0.5, 0.5)


def _mix(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> _S33)
    x *= _M1
    x ^= x >> _S33
    x *= _M2
    x ^= x >> _S33
    return x


def band_keys(sigs: np.ndarray, band: int, rows: int) -> np.ndarray:
    """One uint64 key per signature for band ``band``; equal bands give equal keys.

    For rows <= 2 the key is the band's values themselves (no collisions); for more rows it is
    a 64-bit hash of them (a false collision only adds a candidate, verification removes it).
    """
    cols = sigs[:, band * rows : (band + 1) * rows].astype(_U64)
    if rows == 1:
        return cols[:, 0].copy()
    if rows == 2:
        return (cols[:, 0] << _S32) | cols[:, 1]
    key = _mix(cols[:, 0] + _U64(0x9E3779B97F4A7C15))
    for j in range(1, rows):
        key = _mix(key ^ (cols[:, j] + _U64((j * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)))
    return key


def all_band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(bands, n) uint64: row b is band b's key of every signature, equal bands giving equal
    keys -- the key every engine buckets by (``band_keys`` is the persistent index's key).

    With two rows a band's key is its two uint32 values viewed as one uint64: a bijection of
    ``band_keys``' key (so the same buckets), made without shifting or copying per band."""
    n = sigs.shape[0]
    if rows == 2 and sigs.dtype == np.uint32:
        pairs = np.ascontiguousarray(sigs[:, : 2 * bands]).view(_U64)  # (n, bands)
        return np.ascontiguousarray(pairs.T)
    out = np.empty((bands, n), _U64)
    for b in range(bands):
        out[b] = band_keys(sigs, b, rows)
    return out


def bucket_runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The buckets of two or more rows with equal keys: ``(members, starts, lengths)``.

    ``members`` holds the row numbers of every such bucket, one bucket after the other, rows
    ascending inside a bucket; bucket ``b`` is ``members[starts[b] : starts[b] + lengths[b]]``.
    Buckets come in an arbitrary but deterministic order (by a hash of the key).

    Grouping sorts one uint64 per row -- the top bits of an invertible multiplicative hash of
    the key with the row number packed into the low bits -- with numpy's (SIMD) ``sort``,
    several times faster than ``argsort(kind="stable")`` on the keys.  Keys whose hashes agree
    only in the kept top bits are detected (full hashes compared within each run) and regrouped
    exactly, so the result is the exact grouping by key whatever the collisions.
    """
    n = keys.size
    empty = np.empty(0, np.int64)
    if n < 2:
        return empty, empty, empty
    bits = max(1, (n - 1).bit_length())
    low = _U64((1 << bits) - 1)
    mixed = keys * _GOLDEN  # odd multiplier: a bijection of uint64, top bits depend on all bits
    packed = mixed & ~low
    packed |= _arange_u64(n)
    packed.sort()
    same = (packed[1:] ^ packed[:-1]) <= low  # equal top bits
    inrun = np.zeros(n, dtype=bool)
    inrun[1:] = same
    inrun[:-1] |= same
    pos = np.flatnonzero(inrun)
    if pos.size == 0:
        return empty, empty, empty
    members = (packed[pos] & low).astype(np.int64)
    del packed, inrun
    first = np.ones(pos.size, dtype=bool)
    first[1:] = ~same[pos[1:] - 1]
    del same, pos
    mk = mixed[members]
    if ((mk[1:] != mk[:-1]) & ~first[1:]).any():  # two keys share the top bits: regroup exactly
        return _bucket_runs_exact(keys)
    starts = np.flatnonzero(first)
    lengths = np.diff(np.append(starts, members.size))
    return members, starts, lengths


def _bucket_runs_exact(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``bucket_runs`` by a stable argsort of the keys themselves (the collision fallback)."""
    n = keys.size
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    same = sk[1:] == sk[:-1]
    inrun = np.zeros(n, dtype=bool)
    inrun[1:] = same
    inrun[:-1] |= same
    pos = np.flatnonzero(inrun)
    members = order[pos].astype(np.int64)
    first = np.ones(pos.size, dtype=bool)
    first[1:] = ~same[pos[1:] - 1]
    starts = np.flatnonzero(first)
    lengths = np.diff(np.append(starts, members.size))
    return members, starts, lengths


_ARANGE = np.empty(0, _U64)


def _arange_u64(n: int) -> np.ndarray:
    global _ARANGE
    if _ARANGE.size < n:
        _ARANGE = np.arange(max(n, 2 * _ARANGE.size), dtype=_U64)
        _ARANGE.setflags(write=False)
    return _ARANGE[:n]


def run_positions(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every member of ``bucket_runs``: (its bucket's first position, its position in it)."""
    total = int(lengths.sum()) if lengths.size else 0
    first = np.repeat(starts, lengths)
    return first, np.arange(total, dtype=np.int64) - first


def position_pairs(
    starts: np.ndarray, lengths: np.ndarray, full: int, links: int
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs of ``bucket_runs`` output as positions (pa, pb) into its ``members``,
    pa earlier in its bucket than pb: a bucket of up to ``full`` members gives all its pairs; a
    larger one pairs every member with each of the bucket's first ``links`` members only, so a
    flood of copies costs O(members * links), not O(members ** 2)."""
    first, pos = run_positions(starts, lengths)
    in_full = np.repeat(lengths <= full, lengths)
    pa: list[np.ndarray] = []
    pb: list[np.ndarray] = []
    # small buckets: every member with the member d positions before it, d = 1, 2, ...
    cand = np.flatnonzero(in_full & (pos >= 1))
    d = 1
    while cand.size:
        pa.append(cand - d)
        pb.append(cand)
        d += 1
        cand = cand[pos[cand] >= d]
    # crowded buckets: every member with each of the bucket's first `links` members
    cand = np.flatnonzero(~in_full)
    for q in range(links):
        cand = cand[pos[cand] > q]
        if not cand.size:
            break
        pa.append(first[cand] + q)
        pb.append(cand)
    if not pa:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(pa), np.concatenate(pb)


def bucket_pairs(
    keys: np.ndarray, indices: np.ndarray, full: int, links: int
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs (i, j) of one band: articles ``indices`` (distinct) with band keys
    ``keys``, in any order; i < j.

    This is the whole candidate rule, shared by every engine so that it cannot drift: a bucket
    is the articles with equal keys, its members ordered by article index (add order); a
    bucket of up to ``full`` members gives all its pairs, a larger one pairs every member with
    its ``links`` lowest-indexed members.  Only the entries given take part, so a caller that
    splits a band's entries by key (a shuffle) gets, per part, exactly the pairs of the
    buckets in it.  Pairs come in a deterministic order (callers that merge parts sort).
    """
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size > 1 and not (indices[1:] > indices[:-1]).all():
        order = np.argsort(indices, kind="stable")
        keys, indices = keys[order], indices[order]
    members, starts, lengths = bucket_runs(keys)
    if not members.size:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    pa, pb = position_pairs(starts, lengths, full, links)
    return indices[members[pa]], indices[members[pb]]


def pair_codes(i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """One uint64 per unordered pair: min << 32 | max (rows below 2**32)."""
    lo = np.minimum(i, j).astype(_U64)
    lo <<= _S32
    lo |= np.maximum(i, j).astype(_U64)
    return lo


def unique_sorted(code: np.ndarray) -> np.ndarray:
    """Sorted distinct values (numpy 2's hash-based ``np.unique`` is several times slower than
    sort + compare)."""
    code = np.sort(code)
    if code.size > 1:
        keep = np.empty(code.size, dtype=bool)
        keep[0] = True
        np.not_equal(code[1:], code[:-1], out=keep[1:])
        code = code[keep]
    return code


class PairSet:
    """Distinct pair codes accumulated band by band: new codes are buffered and merged (sort +
    dedupe) whenever the buffer outgrows the distinct set, so memory stays near the number of
    distinct pairs, not the number of (pair, band) collisions."""

    def __init__(self) -> None:
        self._codes = np.empty(0, _U64)
        self._buffer: list[np.ndarray] = []
        self._buffered = 0

    def add(self, codes: np.ndarray) -> None:
        if codes.size:
            self._buffer.append(codes)
            self._buffered += codes.size
            if self._buffered > max(self._codes.size, 1 << 16):
                self._merge()

    def _merge(self) -> None:
        if self._buffer:
            self._codes = unique_sorted(np.concatenate([self._codes, *self._buffer]))
            self._buffer = []
            self._buffered = 0

    def codes(self) -> np.ndarray:
        self._merge()
        return self._codes


def split_codes(code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (code >> _S32).astype(np.int64), (code & _U64(0xFFFFFFFF)).astype(np.int64)


def candidate_pairs(band_key_columns, max_bucket: int) -> np.ndarray:
    """Unique sorted (i, j), i < j, pairs sharing at least one band, from per-band key arrays
    (row numbers are the indices; buckets of more than ``max_bucket`` rows pair every row with
    their first ``max_bucket`` rows).

    Bands are processed one at a time and their pairs merged into a ``PairSet``, so the
    (pair, band) collisions are never all held at once."""
    acc = PairSet()
    for keys in band_key_columns:
        i, j = bucket_pairs(keys, np.arange(keys.size), max_bucket, max_bucket)
        if i.size:
            acc.add(pair_codes(i, j))
        del i, j
    i, j = split_codes(acc.codes())
    return np.stack([i, j], axis=1)
