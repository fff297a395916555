"""The persistent near-duplicate index shared by runs: what every backend stores and promises.

A run asks the index for the articles it already holds that resemble the run's kept articles,
verifies the candidates with the same rule as in-run links, writes its outputs, and only then
adds its kept articles and the cluster merges its articles justified (ingest/index_merges.py)
-- all while holding the index's writer lock, so two jobs on overlapping dumps serialise on
"query -> write -> add" and never both keep one story.

Backends (``index_sqlite``: one local file; ``index_redis``: a shared server) store, per
article, its id, the run that ingested it, its 128 x uint32 signature and its shingle count,
plus the LSH band keys needed to find candidates, and each merge (absorbed original ->
surviving original), which ``follow_merges`` applies to every candidate.  Verification is done
here, once, from signatures and shingle counts, exactly as ``dedupe.clusters`` verifies in-run
pairs.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Protocol

import numpy as np
import xxhash

from dedupe.clusters import containment_from_jaccard
from dedupe.config import DedupeConfig
from dedupe.index import band_keys, lsh_params
from dedupe.minhash import jaccard_estimate, signatures
from dedupe.shingles import shingle_hashes_many
from ingest.index_errors import DEFAULT_WAIT, IndexStoreError  # (the CLI imports them alone)

FAILPOINT_ENV = "THRESHER_FAILPOINT"
# A fixed text whose signature is stored in the index: if a later thresher normalises, shingles
# or hashes differently, its signature differs and the run stops instead of silently missing
# every earlier article.
_PROBE = ("Fares on the harbour ferry will rise by ten percent in April, the port board said "
          "on Thursday. Die Fähre kostet mehr; le bac coûtera plus cher. 港のフェリー運賃が上がる。")


class IncompatibleIndex(IndexStoreError):
    """The index was built with signatures this run cannot compare with."""


@dataclass(frozen=True)
class IndexParams:
    """What makes two signatures comparable; stored in the index when it is created."""

    num_perm: int
    seed: int
    scheme: str
    shingle: str
    ngram: int
    bands: int
    rows: int
    fingerprint: str  # signature of _PROBE under this code and these options

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> IndexParams:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})  # type: ignore[arg-type]


def params_for(config: DedupeConfig) -> IndexParams:
    bands, rows = lsh_params(config.candidate_threshold, config.num_perm)
    probe = signatures(shingle_hashes_many([_PROBE], config), config)
    # the SQLite index stores band keys: a change in how they are computed must show too
    keys = [band_keys(probe, b, rows).tobytes() for b in range(bands)]
    return IndexParams(
        num_perm=config.num_perm, seed=config.seed, scheme="affine32", shingle=config.shingle,
        ngram=config.ngram, bands=bands, rows=rows,
        fingerprint=xxhash.xxh64_hexdigest(probe.tobytes() + b"".join(keys)),
    )


def check_compatible(location: str, stored: IndexParams, wanted: IndexParams) -> None:
    """One line naming every differing parameter, or nothing."""
    if stored == wanted:
        return
    names = [k for k in IndexParams.__dataclass_fields__ if k != "fingerprint"]
    diffs = [f"{k}={getattr(stored, k)} (this run: {getattr(wanted, k)})"
             for k in names if getattr(stored, k) != getattr(wanted, k)]
    if not diffs:
        diffs = ["the same options but different signatures (a thresher with other shingling or "
                 "hashing built it)"]
    raise IncompatibleIndex(f"index {location} was built with {'; '.join(diffs)}: run with the "
                            "index's options, or use another --index")


def new_run_id() -> str:
    """UTC time to the second, sortable, plus a random suffix so two jobs started in the same
    second still get different ids."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(2)


# An original (an article its run kept) is named by its run's sequence number and its id: ids
# are unique within a run, not across runs.
OriginalKey = tuple[int, str]


@dataclass(frozen=True)
class Candidates:
    """Indexed articles sharing a band with a query signature, one row per (query, article)."""

    query: np.ndarray  # (m,) int64: row of the query signature
    ids: list[str]  # (m,) article ids
    originals: list[str]  # (m,) id of each one's cluster's original (see follow_merges)
    runs: list[str]  # (m,) run ids
    seqs: np.ndarray  # (m,) int64: the run's sequence number (commit order)
    sigs: np.ndarray  # (m, num_perm) uint32
    sizes: np.ndarray  # (m,) int64 shingle counts
    original_seqs: np.ndarray  # (m,) int64: sequence number of the run that kept the original
    original_runs: list[str]  # (m,) that run's id

    @classmethod
    def empty(cls, num_perm: int) -> Candidates:
        return cls(np.empty(0, np.int64), [], [], [], np.empty(0, np.int64),
                   np.empty((0, num_perm), np.uint32), np.empty(0, np.int64), np.empty(0, np.int64), [])

    def is_original(self) -> np.ndarray:
        """(m,) bool: the candidate is its cluster's current original itself (not one of its
        duplicates, and not an original since absorbed by a merge)."""
        return np.array([a == o for a, o in zip(self.ids, self.originals)], dtype=bool) & (
            self.seqs == self.original_seqs)


@dataclass(frozen=True)
class ClusterMerge:
    """An indexed cluster absorbed into another because one article of a later run verified
    directly against both originals (ingest/index_merges.py)."""

    absorbed: OriginalKey  # the original whose cluster now belongs to ``into``
    into: OriginalKey  # the surviving original
    size: int  # the absorbed original's shingle count and signature, kept with the merge so a
    signature: np.ndarray = field(repr=False, compare=False)  # later merge's guard can check it


@dataclass(frozen=True)
class Match:
    """An indexed article a query article duplicates."""

    id: str  # the original: the article its run kept (in that run's corpus), after merges
    run: str  # the run that kept it
    via: str  # the indexed article that verified: the original or an article of its cluster
    similarity: float
    containment: float
    signature: np.ndarray = field(repr=False, compare=False)  # of ``via``
    size: int = 0  # of ``via``
    seq: int = 0  # sequence number of ``run``

    @property
    def key(self) -> OriginalKey:
        return (self.seq, self.id)


@dataclass
class RunInfo:
    run_id: str
    seq: int
    articles: int
    created: str


@dataclass
class IndexStats:
    location: str
    backend: str
    articles: int
    runs: list[RunInfo]
    params: IndexParams | None
    bytes: int  # on disk (SQLite) or Redis memory used by the index's keys
    pending_runs: int = 0  # additions of runs that died before committing (cleaned by the next run)
    clusters: int = 0  # distinct clusters: originals, less those absorbed by merges
    merged_clusters: int = 0  # clusters absorbed into another by a later run's article

    def to_json(self) -> dict[str, object]:
        return {
            "location": self.location,
            "backend": self.backend,
            "articles": self.articles,
            "runs": [asdict(r) for r in self.runs],
            "params": self.params.to_json() if self.params else None,
            "bytes": self.bytes,
            "bytes_per_article": round(self.bytes / self.articles, 1) if self.articles else None,
            "pending_runs": self.pending_runs,
            "clusters": self.clusters,
            "merged_clusters": self.merged_clusters,
        }


class StoredParams:
    """Shared by the backends: the parameters the index was built with, read once."""

    location: str
    params: IndexParams | None

    def stored_params(self) -> IndexParams | None:
        raise NotImplementedError

    def _params(self) -> IndexParams:
        if self.params is None:
            self.params = self.stored_params()
        if self.params is None:
            raise IndexStoreError(f"index {self.location} is empty (no parameters stored yet)")
        return self.params


class IndexBackend(Protocol):
    """A persistent index.  ``lock`` starts the writer section that ``commit`` or ``rollback``
    ends; ``candidates``, ``add`` and then ``record_merges`` are called inside it, and
    ``commit`` makes the addition and the merges visible together.  ``merged_into`` gives, for
    originals, the original each was merged into (one step; ``follow_merges`` follows them),
    ``merged_members`` the merges into one original, oldest first."""

    location: str

    def ensure_params(self, params: IndexParams) -> None: ...
    def has_run(self, run_id: str) -> bool: ...
    def lock(self) -> None: ...
    def candidates(self, sigs: np.ndarray, max_bucket: int) -> Candidates: ...
    def add(self, run_id: str, ids: list[str], originals: list[str | None], sigs: np.ndarray,
            sizes: np.ndarray) -> None: ...
    def merged_into(self, keys: list[OriginalKey]) -> dict[OriginalKey, OriginalKey]: ...
    def merged_members(self, key: OriginalKey) -> list[ClusterMerge]: ...
    def record_merges(self, merges: list[ClusterMerge]) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def stats(self) -> IndexStats: ...
    def forget(self, run_id: str) -> int: ...
    def close(self) -> None: ...


def open_index(location: str, wait: float = DEFAULT_WAIT) -> IndexBackend:
    """A backend for a path (SQLite file) or a ``redis://HOST:PORT/DB`` URL."""
    if location.startswith(("redis://", "rediss://", "unix://")):
        from ingest.index_redis import RedisIndex  # redis is imported only when used

        return RedisIndex(location, wait)
    from ingest.index_sqlite import SqliteIndex

    return SqliteIndex(location, wait)


MergedInto = Callable[[list[OriginalKey]], dict[OriginalKey, OriginalKey]]


def follow_merges(cands: Candidates, merged_into: MergedInto, run_ids: Mapping[int, str]) -> Candidates:
    """Name every candidate's cluster by its surviving original.

    Backends store each article's original as its own run kept it; a later run may since have
    merged that cluster into another (and that one into a third), so the chain of recorded
    merges is followed to its end.  Merges never form a cycle (only current originals are
    merged, each into another current one), but a corrupt index must not hang a run.
    """
    keys = sorted(set(zip(cands.original_seqs.tolist(), cands.originals)))
    into: dict[OriginalKey, OriginalKey] = {}
    asked: set[OriginalKey] = set()
    frontier = keys
    while frontier:
        asked.update(frontier)
        step = merged_into(frontier)
        into.update(step)
        frontier = sorted({k for k in step.values() if k not in asked})
    if not into:
        return cands
    root: dict[OriginalKey, OriginalKey] = {}
    for key in keys:
        seen, k = {key}, key
        while k in into:
            k = into[k]
            if k in seen:
                raise IndexStoreError(f"index: the merges of original {key!r} form a cycle")
            seen.add(k)
        root[key] = k
    resolved = [root[k] for k in zip(cands.original_seqs.tolist(), cands.originals)]
    return replace(cands, originals=[k[1] for k in resolved],
                   original_seqs=np.array([k[0] for k in resolved], dtype=np.int64),
                   original_runs=[run_ids[k[0]] for k in resolved])


def verified_matches(query_sigs: np.ndarray, query_sizes: np.ndarray, cands: Candidates,
                     config: DedupeConfig) -> tuple[dict[int, Match], dict[int, list[Match]]]:
    """Verify candidates as in-run links are verified: the best original per query row, and
    per query row every verified candidate that is itself its cluster's current original.

    A pair links when the MinHash Jaccard estimate reaches ``jaccard_threshold``, or when the
    containment implied by it and the shingle counts reaches ``containment_threshold`` and the
    smaller article has ``min_containment_shingles``.  Among several verified originals the
    choice mirrors the in-run clustering: best max(Jaccard, containment), then best Jaccard,
    then the earliest run, then the smallest id -- deterministic whatever order the backend
    returned them in.  The direct matches (ordered by original) are what a cross-run merge
    needs: in-run, every member verifies directly against its representative, not via another
    member.
    """
    if cands.query.size == 0:
        return {}, {}
    qs = query_sigs[cands.query]
    jac = np.asarray(jaccard_estimate(qs, cands.sigs), dtype=np.float64)
    qsize = query_sizes[cands.query]
    con = containment_from_jaccard(jac, qsize, cands.sizes)
    small = np.minimum(qsize, cands.sizes)
    ok = (jac >= config.jaccard_threshold) | (
        (con >= config.containment_threshold) & (small >= config.min_containment_shingles))
    is_original = cands.is_original()

    def match(k: int) -> Match:
        return Match(cands.originals[k], cands.original_runs[k], cands.ids[k], float(jac[k]), float(con[k]),
                     cands.sigs[k], int(cands.sizes[k]), int(cands.original_seqs[k]))

    best: dict[int, tuple[tuple[float, float, int, str], int]] = {}
    direct: dict[int, list[Match]] = {}
    for k in np.flatnonzero(ok).tolist():
        q = int(cands.query[k])
        key = (-max(jac[k], con[k]), -jac[k], int(cands.seqs[k]), cands.ids[k])
        if q not in best or key < best[q][0]:
            best[q] = (key, k)
        if is_original[k]:
            direct.setdefault(q, []).append(match(k))
    for found in direct.values():
        found.sort(key=lambda m: m.key)
    return {q: match(k) for q, (_, k) in best.items()}, direct


def best_matches(query_sigs: np.ndarray, query_sizes: np.ndarray, cands: Candidates,
                 config: DedupeConfig) -> dict[int, Match]:
    """The best verified original per query row (see ``verified_matches``)."""
    return verified_matches(query_sigs, query_sizes, cands, config)[0]


def similarity_to(sig: np.ndarray, size: int, match: Match) -> tuple[float, float]:
    """(Jaccard estimate, containment) of one article against a match's ``via`` article (the
    signature a Match carries)."""
    j = float(jaccard_estimate(sig, match.signature))
    c = float(containment_from_jaccard(np.array([j]), np.array([size]), np.array([match.size]))[0])
    return j, c


def failpoint(name: str) -> None:
    """Test hook at a named point: THRESHER_FAILPOINT=NAME SIGKILLs this process there (an
    interrupted addition must leave the index as it was); NAME:sleep=SECONDS pauses there (two
    jobs must overlap while one holds the lock)."""
    wanted = os.environ.get(FAILPOINT_ENV, "")
    point, _, action = wanted.partition(":")
    if point != name:
        return
    if action.startswith("sleep="):
        time.sleep(float(action[len("sleep="):]))
    else:
        os.kill(os.getpid(), signal.SIGKILL)
