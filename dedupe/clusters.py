"""Near-duplicate clusters: LSH candidates, verification, and chaining-safe clustering.

Pipeline: signatures are banded (``index``) to find candidate pairs at a deliberately low
Jaccard threshold (``index.bucket_pairs`` under ``bucket_policy``: the one candidate rule, which
an engine that shuffles band keys between machines applies per part and hands to ``finish``);
every candidate is verified (Jaccard, or containment of the smaller article
in the larger); verified links are then turned into clusters *without* transitive chaining:
articles are visited in a fixed priority order and each one either joins the most similar
already-chosen representative it is directly linked to, or becomes a representative itself.
Every member therefore verifies against its cluster's representative, so two reports that each
resemble a third (A~B, B~C, A!~C) never end up together through it.

Everything is decided from sorted arrays, so the result does not depend on the order in which
LSH buckets yield candidates.  Memory: the finder keeps each article's signature (4 bytes per
permutation), its shingle count, length and date -- not its shingles, unless a
``shingle_store`` is given for exact verification.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .config import DedupeConfig
from .index import PairSet, all_band_keys, bucket_pairs, lsh_params, pair_codes, split_codes
from .shingles import _kernels

KEEP_POLICIES = ("first", "longest", "earliest-date")


class ShingleStore(Protocol):
    def __getitem__(self, index: int) -> np.ndarray: ...


@dataclass(frozen=True)
class Link:
    """One dropped article and the kept article it duplicates."""

    index: int  # the dropped article (add order)
    kept: int  # the article kept in its place
    cluster: int  # cluster id (smallest index in the cluster)
    cluster_size: int
    similarity: float  # Jaccard of the two shingle sets (exact, or the MinHash estimate)
    containment: float  # share of the smaller article's shingles found in the larger one


@dataclass(frozen=True)
class Clusters:
    """Outcome of ``NearDuplicateFinder.finish`` for every added article."""

    cluster: np.ndarray  # (n,) int64: cluster id = smallest index in the cluster
    kept: np.ndarray  # (n,) bool
    links: dict[int, Link]  # dropped index -> its Link

    def __len__(self) -> int:
        return int(self.cluster.size)

    def is_kept(self, index: int) -> bool:
        return bool(self.kept[index])

    def link(self, index: int) -> Link | None:
        return self.links.get(index)

    def groups(self) -> list[list[int]]:
        """Clusters of two or more articles, members ascending, ordered by cluster id."""
        order = np.lexsort((np.arange(self.cluster.size), self.cluster))
        c = self.cluster[order]
        bounds = np.flatnonzero(np.diff(c)) + 1
        return [g.tolist() for g in np.split(order, bounds) if g.size > 1]


class _Column:
    """Append-only numpy column stored in fixed-size blocks (no doubling copies)."""

    BLOCK = 1 << 16

    def __init__(self, dtype, width: int | None = None) -> None:
        self.dtype = dtype
        self.width = width
        self.blocks: list[np.ndarray] = []
        self.n = 0

    def append(self, value) -> None:
        i = self.n & (self.BLOCK - 1)
        if i == 0:
            shape = (self.BLOCK,) if self.width is None else (self.BLOCK, self.width)
            self.blocks.append(np.empty(shape, dtype=self.dtype))
        self.blocks[-1][i] = value
        self.n += 1

    def extend(self, values: np.ndarray) -> None:
        """Append the rows of ``values`` (block by block: one copy each, no per-row work)."""
        done, total = 0, len(values)
        while done < total:
            i = self.n & (self.BLOCK - 1)
            if i == 0:
                shape = (self.BLOCK,) if self.width is None else (self.BLOCK, self.width)
                self.blocks.append(np.empty(shape, dtype=self.dtype))
            take = min(self.BLOCK - i, total - done)
            self.blocks[-1][i : i + take] = values[done : done + take]
            self.n += take
            done += take

    def filled(self):
        """(block, rows used) for every block."""
        last = len(self.blocks) - 1
        for k, b in enumerate(self.blocks):
            yield b, (self.n - last * self.BLOCK if k == last else self.BLOCK)

    def column_slice(self, lo: int, hi: int) -> np.ndarray:
        """Columns [lo, hi) of all rows (2-D columns), concatenated."""
        parts = [b[:, lo:hi] for b in self.blocks]
        parts[-1] = parts[-1][: self.n - (len(self.blocks) - 1) * self.BLOCK]
        return np.concatenate(parts)

    def all(self) -> np.ndarray:
        parts = list(self.blocks)
        parts[-1] = parts[-1][: self.n - (len(self.blocks) - 1) * self.BLOCK]
        return np.concatenate(parts)

    def take(self, idx: np.ndarray) -> np.ndarray:
        shape = (idx.size,) if self.width is None else (idx.size, self.width)
        out = np.empty(shape, dtype=self.dtype)
        if len(self.blocks) == 1:
            return np.take(self.blocks[0], idx, axis=0)  # (fancy indexing of rows is ~10x slower)
        blk = idx >> 16
        off = idx & (self.BLOCK - 1)
        for b in range(int(blk.min()), int(blk.max()) + 1):
            m = blk == b
            if m.any():
                out[m] = np.take(self.blocks[b], off[m], axis=0)
        return out


def containment_from_jaccard(j: np.ndarray, size_a: np.ndarray, size_b: np.ndarray) -> np.ndarray:
    """Containment of the smaller set in the larger implied by Jaccard j and the set sizes:
    |A and B| = j (|A| + |B|) / (1 + j), divided by min(|A|, |B|), clipped to [0, 1]."""
    small = np.minimum(size_a, size_b).astype(np.float64)
    inter = j * (size_a + size_b) / (1.0 + j)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(small > 0, inter / np.maximum(small, 1), 0.0)
    return np.clip(c, 0.0, 1.0)


def exact_similarity(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(Jaccard, containment of the smaller in the larger) of two sorted unique hash arrays."""
    if a.size == 0 or b.size == 0:
        return 0.0, 0.0
    inter = np.intersect1d(a, b, assume_unique=True).size
    return inter / (a.size + b.size - inter), inter / min(a.size, b.size)


_FP_MULT = np.uint32(0x9E3779B1)
_NIBBLES = np.uint64(0x1111111111111111)
_BYTE_LO = np.uint64(0x0F0F0F0F0F0F0F0F)
_BYTES = np.uint64(0x0101010101010101)
_ONE = np.uint64(1)
_TWO = np.uint64(2)
_FOUR = np.uint64(4)
_FIFTY_SIX = np.uint64(56)
_CHUNK = 1 << 13  # pairs (or rows) per vectorised block: temporaries stay in cache


def _fingerprint_rows(v: np.ndarray, words: int) -> np.ndarray:
    """4 bits per signature value (top bits of a multiplicative hash), packed 16 to a uint64:
    equal values give equal nibbles, so equal nibbles bound equal values from above."""
    h = v * _FP_MULT
    h >>= np.uint32(28)
    if h.shape[1] & 1:
        h = np.concatenate([h, np.zeros((h.shape[0], 1), np.uint32)], axis=1)
    b = (h[:, 0::2] | (h[:, 1::2] << np.uint32(4))).astype(np.uint8)
    out = np.zeros((v.shape[0], words * 8), np.uint8)
    out[:, : b.shape[1]] = b
    return out.view(np.uint64)


def _unequal_nibbles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, the number of nibbles that differ between a and b ((m, w) uint64 each)."""
    x = a ^ b
    np.bitwise_or(x, x >> _ONE, out=x)
    np.bitwise_or(x, x >> _TWO, out=x)
    np.bitwise_and(x, _NIBBLES, out=x)
    w = x.shape[1]
    if w > 15:  # a nibble would overflow while summing words
        return np.bitwise_count(x).sum(axis=1, dtype=np.int64)
    s = x[:, 0].copy()
    for k in range(1, w):
        s += x[:, k]
    s = (s & _BYTE_LO) + ((s >> _FOUR) & _BYTE_LO)
    s *= _BYTES
    s >>= _FIFTY_SIX
    return s.astype(np.int64)


# Candidate policy of the in-run finder.  A band value shared by many articles is mostly a
# common phrase, not evidence: on the 50k bench corpus (sentences recombined from a small pool)
# most bands' buckets beyond a handful of members are such, and their pairs grow with the corpus
# (42 candidate pairs per article at 50k, 159 at 500k with all pairs of buckets up to 100).
# Buckets of up to FULL_BUCKET members give all their pairs (the eval set's largest bucket has
# 9, so its results are unchanged); a larger bucket pairs each member with its first
# LARGE_BUCKET_LINKS members (by add order): a flood of copies still links to one article, and
# true duplicates share many bands, nearly always also a small bucket.  Measured: identical
# clusters on the eval set and the 50k bench; at 500k 1 of 50,000 true copies (edit rate 0.05)
# is missed (all bands it shared with its original were common ones); 12.5 pairs per article at
# 50k, 36 at 500k.
FULL_BUCKET = 16
LARGE_BUCKET_LINKS = 1
_POLICY: tuple[int, int] | None = None  # (full, links) override, for experiments and tests
STATS = [0, 0, 0]  # candidate pairs, pairs passing the fingerprint bound, verified (diagnostics)


def bucket_policy(config: DedupeConfig) -> tuple[int, int]:
    """(full, links) for ``index.bucket_pairs``: buckets of up to ``full`` members give all
    their pairs; in a larger bucket each member is paired with the bucket's first ``links``
    members only.  One function, so every engine applies the same policy."""
    if _POLICY is not None:
        return _POLICY
    cap = config.max_bucket
    return min(cap, FULL_BUCKET), min(cap, LARGE_BUCKET_LINKS)


def in_buckets(sizes: np.ndarray) -> np.ndarray:
    """Which articles take part in LSH buckets: those with shingles (an empty article never
    links, and must not take a crowded bucket's first places from one that can)."""
    return np.asarray(sizes) > 0


class NearDuplicateFinder:
    """Collects articles (signature, shingle count, length, date) and clusters them on finish.

    ``shingle_store``: ``None`` (default) verifies with the MinHash Jaccard estimate and the
    containment implied by it and the set sizes, keeping ~0.5 KB per article; any object with
    ``__getitem__(index) -> sorted unique uint32 array`` (e.g. backed by a temporary file)
    verifies exactly; the string ``"memory"`` keeps the shingle sets in RAM (tests, small runs).
    """

    def __init__(self, config: DedupeConfig, shingle_store: ShingleStore | str | None = None):
        self.config = config
        self._sigs = _Column(np.uint32, config.num_perm)
        self._sizes = _Column(np.int64)
        self._lengths = _Column(np.int64)
        self._dates: list[str | None] = []
        self._any_date = False
        if shingle_store == "memory":
            self._memory: list[np.ndarray] | None = []
            self._store: ShingleStore | None = self._memory  # type: ignore[assignment]
        else:
            self._memory = None
            self._store = shingle_store  # type: ignore[assignment]

    def __len__(self) -> int:
        return self._sigs.n

    def nbytes(self) -> int:
        """Memory held for the added articles (signatures, sizes, lengths, dates), in bytes."""
        columns = sum(b.nbytes for col in (self._sigs, self._sizes, self._lengths) for b in col.blocks)
        # the list's slots, not its over-allocation (which depends on how it grew)
        dates = sys.getsizeof([]) + 8 * len(self._dates) + sum(sys.getsizeof(d) for d in self._dates if d is not None)
        shingles = sum(a.nbytes for a in self._memory) if self._memory is not None else 0
        return columns + dates + shingles

    def add(
        self, signature: np.ndarray, shingles: np.ndarray, *, length: int, date: str | None = None
    ) -> int:
        """Add one article; returns its index (add order).  ``length`` (e.g. characters) is
        what ``keep="longest"`` compares; ``date`` is an ISO-8601-like sortable string."""
        if signature.shape != (self.config.num_perm,):
            raise ValueError(f"signature must have shape ({self.config.num_perm},)")
        index = self._sigs.n
        self._sigs.append(signature)
        self._sizes.append(len(shingles))
        self._lengths.append(length)
        self._dates.append(date)
        if self._memory is not None:
            self._memory.append(np.asarray(shingles, dtype=np.uint32))
        return index

    def add_many(self, signatures: np.ndarray, sizes: np.ndarray, lengths: np.ndarray,
                 dates: list[str | None]) -> None:
        """``add`` for many articles at once, in order, by their columns: (n, num_perm)
        signatures, shingle counts, lengths and dates. Keeps no shingle sets, so it is for
        finders verifying with the signatures (the default ``shingle_store=None``)."""
        n = len(dates)
        if signatures.shape != (n, self.config.num_perm) or len(sizes) != n or len(lengths) != n:
            raise ValueError(f"add_many needs {n} rows of ({self.config.num_perm},) signatures, sizes and lengths")
        if self._store is not None:
            raise ValueError("add_many keeps no shingle sets: use add() with a shingle store")
        self._sigs.extend(signatures)
        self._sizes.extend(sizes)
        self._lengths.extend(lengths)
        self._dates.extend(dates)

    # -- verification -------------------------------------------------------------------------

    def _similarity(self, i: np.ndarray, j: np.ndarray, sizes: np.ndarray):
        """(Jaccard, containment) arrays for pairs (i, j)."""
        if i.size == 0:
            return np.empty(0), np.empty(0)
        if self._store is not None:
            jac = np.empty(i.size)
            con = np.empty(i.size)
            for k, (a, b) in enumerate(zip(i.tolist(), j.tolist())):
                jac[k], con[k] = exact_similarity(self._store[a], self._store[b])
            return jac, con
        jac = np.empty(i.size)
        step = 1 << 15
        for lo in range(0, i.size, step):
            sa = self._sigs.take(i[lo : lo + step])
            sb = self._sigs.take(j[lo : lo + step])
            jac[lo : lo + step] = np.count_nonzero(sa == sb, axis=1) / self.config.num_perm
        return jac, containment_from_jaccard(jac, sizes[i], sizes[j])

    def _passes(self, jac: np.ndarray, si: np.ndarray, sj: np.ndarray):
        """(links?, containment) of pairs with Jaccard ``jac`` and shingle counts si, sj."""
        cfg = self.config
        con = containment_from_jaccard(jac, si, sj)
        ok = (jac >= cfg.jaccard_threshold) | (
            (con >= cfg.containment_threshold)
            & (np.minimum(si, sj) >= cfg.min_containment_shingles)
        )
        return ok, con

    def _count_needed(self, sa: np.ndarray, sb: np.ndarray) -> np.ndarray:
        """A lower bound (float) on the number of equal signature values a pair with shingle
        counts sa, sb (float arrays) needs to link: ``_passes`` is monotone in the count, and
        this solves it for the count with a safety margin far above rounding error, so every
        pair that passes has at least this many equal values."""
        cfg = self.config
        m = cfg.num_perm
        jac_need = cfg.jaccard_threshold * m
        if cfg.containment_threshold <= 0.0 or jac_need <= 0.0:
            return np.zeros(sa.shape)
        small = np.minimum(sa, sb)
        t = cfg.containment_threshold * small
        # containment c >= t/small  <=>  j (sa + sb) / (1 + j) >= t  <=>  j >= t / (sa + sb - t)
        need = t * m / (sa + sb - t)
        need[small < max(cfg.min_containment_shingles, 1)] = np.inf
        np.minimum(need, jac_need, out=need)
        need -= 1e-6 * m
        return need

    def _all_band_keys(self, bands: int, rows: int, live: np.ndarray | None) -> list[np.ndarray]:
        """One uint64 key array per band (``index.all_band_keys``), computed a block of
        signatures at a time: a band at a time would read every signature's cache line once
        per band."""
        n = self._sigs.n
        out = [np.empty(n, np.uint64) for _ in range(bands)]
        pos = 0
        step = 1 << 11
        for blk, m in self._sigs.filled():
            for lo in range(0, m, step):
                hi = min(m, lo + step)
                keys = all_band_keys(blk[lo:hi], bands, rows)
                for b in range(bands):
                    out[b][pos + lo : pos + hi] = keys[b]
            pos += m
        if live is not None:
            out = [k[live] for k in out]
        return out

    def _fingerprints(self) -> np.ndarray:
        words = (self.config.num_perm + 15) // 16
        out = np.empty((self._sigs.n, words), np.uint64)
        pos = 0
        if _kernels is not None:  # (numpy's temporaries, on fresh pages, cost 3x the work)
            for b, m in self._sigs.filled():
                _kernels.fingerprints(np.ascontiguousarray(b[:m]), self.config.num_perm, words, out[pos : pos + m])
                pos += m
            return out
        for b, m in self._sigs.filled():
            for lo in range(0, m, _CHUNK):
                hi = min(m, lo + _CHUNK)
                out[pos + lo : pos + hi] = _fingerprint_rows(b[lo:hi], words)
            pos += m
        return out

    def _may_link(
        self, fp: np.ndarray, i: np.ndarray, j: np.ndarray, sizes: np.ndarray
    ) -> np.ndarray:
        """Pairs that could pass ``_passes``, by the fingerprint bound on their count of equal
        signature values (sound: a pair it drops would fail verification)."""
        if _kernels is not None:  # the same test, a pair at a time, without temporaries
            cfg = self.config
            out = np.empty(i.size, np.bool_)
            _kernels.may_link(fp, fp.shape[1], np.ascontiguousarray(i, np.int64), np.ascontiguousarray(j, np.int64),
                              np.ascontiguousarray(sizes, np.int64), cfg.num_perm, cfg.jaccard_threshold * cfg.num_perm,
                              cfg.containment_threshold, cfg.min_containment_shingles, out.view(np.uint8))
            return out
        return self._may_link_reference(fp, i, j, sizes)

    def _may_link_reference(
        self, fp: np.ndarray, i: np.ndarray, j: np.ndarray, sizes: np.ndarray
    ) -> np.ndarray:
        """``_may_link`` in numpy: the reference of ``_kernels.may_link``."""
        unequal = _unequal_nibbles(np.take(fp, i, axis=0), np.take(fp, j, axis=0))
        bound = self.config.num_perm - unequal
        return bound >= self._count_needed(sizes[i].astype(np.float64), sizes[j].astype(np.float64))

    def candidate_codes(
        self, sizes: np.ndarray | None = None, *, prefilter: bool = True, threads: int = 1
    ) -> np.ndarray:
        """Sorted distinct ``pair_codes`` of every LSH candidate pair: the articles in buckets
        (``in_buckets``), every band's ``index.bucket_pairs`` under ``bucket_policy``.

        Bands are processed one at a time, so the (pair, band) collisions are never all held
        together.  With ``prefilter`` (no shingle store) pairs the fingerprint bound rules out
        are dropped as they come: they could not verify, and most candidates are such.
        ``threads`` > 1: the compiled band kernel (which releases the GIL) runs on that many
        threads, a band each at a time; the codes are the same."""
        cfg = self.config
        if sizes is None:
            sizes = self._sizes.all()
        live_mask = in_buckets(sizes)
        live = None if live_mask.all() else np.flatnonzero(live_mask)
        indices = np.arange(sizes.size) if live is None else live
        bands, rows = lsh_params(cfg.candidate_threshold, cfg.num_perm)
        full, links = bucket_policy(cfg)
        if _kernels is not None:
            return self._kernel_codes(sizes, indices, live, prefilter, threads, bands, rows, full, links)
        fp = self._fingerprints() if prefilter else None
        acc = PairSet()
        keys = self._all_band_keys(bands, rows, live)
        for band in range(bands):
            i, j = bucket_pairs(keys[band], indices, full, links)
            keys[band] = None  # free as we go
            STATS[0] += i.size
            if fp is None:
                acc.add(pair_codes(i, j))
                continue
            for lo in range(0, i.size, _CHUNK):
                a, b = i[lo : lo + _CHUNK], j[lo : lo + _CHUNK]
                maybe = self._may_link(fp, a, b, sizes)
                if maybe.any():
                    STATS[1] += int(maybe.sum())
                    acc.add(pair_codes(a[maybe], b[maybe]))
        return acc.codes()

    def _kernel_codes(self, sizes: np.ndarray, indices: np.ndarray, live: np.ndarray | None,
                      prefilter: bool, threads: int, bands: int, rows: int, full: int, links: int) -> np.ndarray:
        """``candidate_codes`` with ``_kernels.band_candidates``: a band's bucket policy and
        fingerprint bound in one call (the numpy code of ``candidate_codes`` is its reference)."""
        cfg = self.config
        sizes64 = np.ascontiguousarray(sizes, np.int64)
        indices64 = np.ascontiguousarray(indices, np.int64)
        pool = None
        if threads > 1:
            from concurrent.futures import ThreadPoolExecutor  # (on demand: ~5 ms to import)

            pool = ThreadPoolExecutor(min(threads, bands))
        try:
            if pool is None:
                fp = self._fingerprints() if prefilter else None
                keys = self._all_band_keys(bands, rows, live)
            else:  # (both release the GIL for most of their work)
                fp_job = pool.submit(self._fingerprints) if prefilter else None
                keys = self._all_band_keys(bands, rows, live)
                fp = fp_job.result() if fp_job is not None else None
            words = fp.shape[1] if fp is not None else 0

            def band(b: int) -> tuple[bytes, int, int]:
                return _kernels.band_candidates(
                    np.ascontiguousarray(keys[b]), indices64, full, links, fp, words, sizes64,
                    cfg.num_perm, cfg.jaccard_threshold * cfg.num_perm, cfg.containment_threshold,
                    cfg.min_containment_shingles)

            acc = PairSet()
            results = map(band, range(bands)) if pool is None else pool.map(band, range(bands))
            for b, (blob, collided, passed) in enumerate(results):  # (in band order)
                keys[b] = None
                STATS[0] += collided
                STATS[1] += passed if fp is not None else 0
                acc.add(np.frombuffer(blob, np.uint64))
            return acc.codes()
        finally:
            if pool is not None:
                pool.shutdown()

    def _bounded(self, codes: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The pairs of ``codes`` the fingerprint bound lets through, as (i, j), a block at a
        time: only the survivors are ever held as index arrays (16 bytes a pair)."""
        fp = self._fingerprints()
        kept_i: list[np.ndarray] = []
        kept_j: list[np.ndarray] = []
        for lo in range(0, codes.size, _CHUNK):
            i, j = split_codes(codes[lo : lo + _CHUNK])
            maybe = self._may_link(fp, i, j, sizes)
            kept_i.append(i[maybe])
            kept_j.append(j[maybe])
        if not kept_i:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        return np.concatenate(kept_i), np.concatenate(kept_j)

    def _verified_links(self, sizes: np.ndarray, candidates: np.ndarray | None = None, threads: int = 1):
        """Every candidate pair that verifies: (i, j, Jaccard, containment), i < j, sorted.

        ``candidates``: sorted distinct pair codes found elsewhere (e.g. by a distributed
        shuffle over the same ``index.bucket_pairs``); None finds them here.  Without a shingle
        store a pair is first bounded with 4-bit fingerprints of the signatures (equal values
        give equal nibbles, so the count of equal nibbles bounds the count of equal values from
        above, and the link test is monotone in it); only pairs that could pass are compared on
        the full signatures.
        """
        cfg = self.config
        exact = self._store is not None
        if candidates is None:
            i, j = split_codes(self.candidate_codes(sizes, prefilter=not exact, threads=threads))
        elif exact:
            i, j = split_codes(candidates)
        else:
            i, j = self._bounded(candidates, sizes)
        if exact:
            jac, con = self._similarity(i, j, sizes)
            ok = (jac >= cfg.jaccard_threshold) | (
                (con >= cfg.containment_threshold)
                & (np.minimum(sizes[i], sizes[j]) >= cfg.min_containment_shingles)
            )
            return i[ok], j[ok], jac[ok], con[ok]
        # pairs that may link (true duplicates collide in many bands: verified once each)
        num_perm = cfg.num_perm
        jac = np.empty(i.size)
        for lo in range(0, i.size, _CHUNK):
            sa = self._sigs.take(i[lo : lo + _CHUNK])
            sb = self._sigs.take(j[lo : lo + _CHUNK])
            jac[lo : lo + _CHUNK] = np.count_nonzero(sa == sb, axis=1) / num_perm
        ok, con = self._passes(jac, sizes[i], sizes[j])
        STATS[2] += int(ok.sum())
        return i[ok], j[ok], jac[ok], con[ok]

    def bucket_policy(self) -> tuple[int, int]:
        """This finder's ``bucket_policy`` (full, links)."""
        return bucket_policy(self.config)

    # -- clustering ---------------------------------------------------------------------------

    def _keep_order(self, keep: str, n: int, lengths: np.ndarray) -> np.ndarray:
        """rank[i]: position of article i in the keep policy's preference order."""
        idx = np.arange(n)
        if keep == "first":
            order = idx
        elif keep == "longest":
            order = np.lexsort((idx, -lengths))
        elif keep == "earliest-date":
            missing = np.array([d is None for d in self._dates], dtype=bool)
            # rank dates by sorting the distinct strings once
            distinct = sorted({d for d in self._dates if d is not None})
            pos = {d: k for k, d in enumerate(distinct)}
            drank = np.array([pos.get(d, 0) if d is not None else 0 for d in self._dates])
            order = np.lexsort((idx, drank, missing))
        else:
            raise ValueError(f"keep must be one of {KEEP_POLICIES}, got {keep!r}")
        rank = np.empty(n, dtype=np.int64)
        rank[order] = idx
        return rank

    def finish(self, keep: str = "first", candidates: np.ndarray | None = None, threads: int = 1) -> Clusters:
        """Cluster everything added so far; ``keep`` picks the article kept per cluster:
        ``"first"`` added, ``"longest"`` (by ``length``), or ``"earliest-date"`` (undated
        last); ties go to the first added.  ``candidates``: the sorted distinct pair codes of
        ``candidate_codes(prefilter=False)`` when they were computed elsewhere (the Ray
        engine's shuffle); the result is the same as without.  ``threads``: see
        ``candidate_codes`` (the result does not depend on it)."""
        if keep not in KEEP_POLICIES:
            raise ValueError(f"keep must be one of {KEEP_POLICIES}, got {keep!r}")
        cfg = self.config
        n = self._sigs.n
        if n == 0:
            return Clusters(np.empty(0, np.int64), np.empty(0, bool), {})
        sizes = self._sizes.all()
        lengths = self._lengths.all()
        keep_rank = self._keep_order(keep, n, lengths)

        # 1.-2. LSH candidates, verified band by band (articles without shingles never link)
        i, j, jac, con = self._verified_links(sizes, candidates, threads)

        # 3. chaining-safe star clustering in representative priority order
        if cfg.representative == "largest":
            order = np.lexsort((keep_rank, -sizes))
            rank = np.empty(n, dtype=np.int64)
            rank[order] = np.arange(n)
        elif cfg.representative == "degree":
            degree = np.bincount(np.concatenate([i, j]), minlength=n)
            order = np.lexsort((keep_rank, -degree))
            rank = np.empty(n, dtype=np.int64)
            rank[order] = np.arange(n)
        else:
            rank = keep_rank
        hub = np.arange(n)  # representative of each article
        if i.size:
            # orient each edge from the earlier-ranked (possible hub) to the later one
            first_is_i = rank[i] < rank[j]
            early = np.where(first_is_i, i, j)
            late = np.where(first_is_i, j, i)
            score = np.maximum(jac, con)
            # group edges by the later article, visited in rank order
            eorder = np.lexsort((rank[early], -jac, -score, rank[late]))
            early, late = early[eorder], late[eorder]
            is_hub = np.ones(n, dtype=bool)
            bounds = np.flatnonzero(np.diff(rank[late])) + 1
            starts = np.concatenate(([0], bounds)).tolist()
            ends = np.concatenate((bounds, [late.size])).tolist()
            early_l = early.tolist()
            late_l = late.tolist()
            members: dict[int, list[int]] = {}
            floor = cfg.cluster_floor
            for s, e in zip(starts, ends):
                u = late_l[s]
                # candidates are sorted best-first: join the first representative whose
                # cluster holds nothing unrelated to u (no bridging of two stories)
                for k in range(s, e):
                    v = early_l[k]
                    if not is_hub[v]:
                        continue
                    others = members.get(v)
                    if others and floor > 0:
                        chk = np.asarray(others[: cfg.max_check], dtype=np.int64)
                        cj, cc = self._similarity(np.full(chk.size, u), chk, sizes)
                        if (np.maximum(cj, cc) < floor).any():
                            continue
                    hub[u] = v
                    is_hub[u] = False
                    members.setdefault(v, []).append(u)
                    break
        # edge lookup for links to kept articles
        edge_sim: dict[tuple[int, int], tuple[float, float]] = dict(
            zip(zip(np.minimum(i, j).tolist(), np.maximum(i, j).tolist()), zip(jac.tolist(), con.tolist())))

        # 4. cluster ids, kept article per cluster, links
        cluster = np.empty(n, dtype=np.int64)
        members_of_hub_min = np.full(n, n, dtype=np.int64)
        np.minimum.at(members_of_hub_min, hub, np.arange(n))
        cluster[:] = members_of_hub_min[hub]
        kept_of = np.full(n, -1, dtype=np.int64)  # by cluster id
        best_rank = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(best_rank, cluster, keep_rank)
        kept_mask = keep_rank == best_rank[cluster]
        kept_of[cluster[kept_mask]] = np.flatnonzero(kept_mask)
        csize = np.bincount(cluster, minlength=n)
        dropped = np.flatnonzero(~kept_mask)
        links: dict[int, Link] = {}
        if dropped.size:
            kept_for = kept_of[cluster[dropped]]
            keys = list(zip(np.minimum(dropped, kept_for).tolist(), np.maximum(dropped, kept_for).tolist()))
            need = [k for k, key in enumerate(keys) if key not in edge_sim]
            extra: dict[tuple[int, int], tuple[float, float]] = {}
            if need:
                xj, xc = self._similarity(dropped[need], kept_for[need], sizes)
                extra = dict(zip([keys[k] for k in need], zip(xj.tolist(), xc.tolist())))
            of = cluster[dropped]
            for a, b, key, c, size in zip(dropped.tolist(), kept_for.tolist(), keys, of.tolist(), csize[of].tolist()):
                x, y = edge_sim.get(key) or extra[key]
                links[a] = Link(a, b, c, size, x, y)
        return Clusters(cluster, kept_mask, links)
