"""Near-duplicate clusters: LSH candidates, verification, and chaining-safe clustering.

Pipeline: signatures are banded (``index``) to find candidate pairs at a deliberately low
Jaccard threshold; every candidate is verified (Jaccard, or containment of the smaller article
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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .config import DedupeConfig
from .index import band_keys, candidate_pairs, lsh_params

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
            return self.blocks[0][idx]
        blk = idx >> 16
        off = idx & (self.BLOCK - 1)
        for b in range(int(blk.min()), int(blk.max()) + 1):
            m = blk == b
            if m.any():
                out[m] = self.blocks[b][off[m]]
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

    def finish(self, keep: str = "first") -> Clusters:
        """Cluster everything added so far; ``keep`` picks the article kept per cluster:
        ``"first"`` added, ``"longest"`` (by ``length``), or ``"earliest-date"`` (undated
        last); ties go to the first added."""
        if keep not in KEEP_POLICIES:
            raise ValueError(f"keep must be one of {KEEP_POLICIES}, got {keep!r}")
        cfg = self.config
        n = self._sigs.n
        if n == 0:
            return Clusters(np.empty(0, np.int64), np.empty(0, bool), {})
        sizes = self._sizes.all()
        lengths = self._lengths.all()
        keep_rank = self._keep_order(keep, n, lengths)

        # 1. candidates (articles without shingles never link)
        live = np.flatnonzero(sizes > 0)
        bands, rows = lsh_params(cfg.candidate_threshold, cfg.num_perm)

        cols = []
        for b in range(bands):
            sl = self._sigs.column_slice(b * rows, (b + 1) * rows)[live]
            cols.append(band_keys(sl, 0, rows))
        pairs = candidate_pairs(cols, cfg.max_bucket)
        del cols
        i = live[pairs[:, 0]]
        j = live[pairs[:, 1]]

        # 2. verification
        jac, con = self._similarity(i, j, sizes)
        small = np.minimum(sizes[i], sizes[j])
        ok = (jac >= cfg.jaccard_threshold) | (
            (con >= cfg.containment_threshold) & (small >= cfg.min_containment_shingles)
        )
        i, j, jac, con = i[ok], j[ok], jac[ok], con[ok]

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
            score_s, jac_s = score[eorder], jac[eorder]
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
            del score_s, jac_s
        # edge lookup for links to kept articles
        edge_sim: dict[tuple[int, int], tuple[float, float]] = {}
        for a, b, x, y in zip(i.tolist(), j.tolist(), jac.tolist(), con.tolist()):
            edge_sim[(min(a, b), max(a, b))] = (x, y)

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
            need = [
                k
                for k, (a, b) in enumerate(zip(dropped.tolist(), kept_for.tolist()))
                if (min(a, b), max(a, b)) not in edge_sim
            ]
            extra: dict[tuple[int, int], tuple[float, float]] = {}
            if need:
                na = dropped[need]
                nb = kept_for[need]
                xj, xc = self._similarity(na, nb, sizes)
                for a, b, x, y in zip(na.tolist(), nb.tolist(), xj.tolist(), xc.tolist()):
                    extra[(min(a, b), max(a, b))] = (x, y)
            for a, b in zip(dropped.tolist(), kept_for.tolist()):
                key = (min(a, b), max(a, b))
                x, y = edge_sim.get(key) or extra[key]
                c = int(cluster[a])
                links[a] = Link(a, b, c, int(csize[c]), float(x), float(y))
        return Clusters(cluster, kept_mask, links)
