"""The persistent near-duplicate index shared by runs: what every backend stores and promises.

A run asks the index for the articles it already holds that resemble the run's kept articles,
verifies the candidates with the same rule as in-run links, writes its outputs, and only then
adds its kept articles -- all while holding the index's writer lock, so two jobs on
overlapping dumps serialise on "query -> write -> add" and never both keep one story.

Backends (``index_sqlite``: one local file; ``index_redis``: a shared server) store, per
article, its id, the run that ingested it, its 128 x uint32 signature and its shingle count,
plus the LSH band keys needed to find candidates.  Verification is done here, once, from
signatures and shingle counts, exactly as ``dedupe.clusters`` verifies in-run pairs.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np
import xxhash

from dedupe.clusters import containment_from_jaccard
from dedupe.config import DedupeConfig
from dedupe.index import band_keys, lsh_params
from dedupe.minhash import jaccard_estimate, signatures
from dedupe.shingles import shingle_hashes_many

DEFAULT_WAIT = 3600.0  # seconds a run waits for another run's writer lock before giving up
FAILPOINT_ENV = "THRESHER_FAILPOINT"
# A fixed text whose signature is stored in the index: if a later thresher normalises, shingles
# or hashes differently, its signature differs and the run stops instead of silently missing
# every earlier article.
_PROBE = ("Fares on the harbour ferry will rise by ten percent in April, the port board said "
          "on Thursday. Die Fähre kostet mehr; le bac coûtera plus cher. 港のフェリー運賃が上がる。")


class IndexStoreError(Exception):
    """The index cannot be used as asked (unreachable, locked too long, unknown run, ...)."""


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


@dataclass(frozen=True)
class Candidates:
    """Indexed articles sharing a band with a query signature, one row per (query, article)."""

    query: np.ndarray  # (m,) int64: row of the query signature
    ids: list[str]  # (m,) article ids
    originals: list[str]  # (m,) id of the article kept for each (itself, or its run's kept one)
    runs: list[str]  # (m,) run ids
    seqs: np.ndarray  # (m,) int64: the run's sequence number (commit order)
    sigs: np.ndarray  # (m, num_perm) uint32
    sizes: np.ndarray  # (m,) int64 shingle counts

    @classmethod
    def empty(cls, num_perm: int) -> Candidates:
        return cls(np.empty(0, np.int64), [], [], [], np.empty(0, np.int64),
                   np.empty((0, num_perm), np.uint32), np.empty(0, np.int64))


@dataclass(frozen=True)
class Match:
    """An indexed article a query article duplicates."""

    id: str  # the original: the article its run kept (in that run's corpus)
    run: str
    via: str  # the indexed article that verified: the original or one of its duplicates
    similarity: float
    containment: float
    signature: np.ndarray = field(repr=False, compare=False)
    size: int = 0


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
    ends; ``candidates`` and ``add`` are called inside it."""

    location: str

    def ensure_params(self, params: IndexParams) -> None: ...
    def has_run(self, run_id: str) -> bool: ...
    def lock(self) -> None: ...
    def candidates(self, sigs: np.ndarray, max_bucket: int) -> Candidates: ...
    def add(self, run_id: str, ids: list[str], originals: list[str | None], sigs: np.ndarray,
            sizes: np.ndarray) -> None: ...
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


def best_matches(query_sigs: np.ndarray, query_sizes: np.ndarray, cands: Candidates,
                 config: DedupeConfig) -> dict[int, Match]:
    """Verify candidates as in-run links are verified and pick one original per query row.

    A pair links when the MinHash Jaccard estimate reaches ``jaccard_threshold``, or when the
    containment implied by it and the shingle counts reaches ``containment_threshold`` and the
    smaller article has ``min_containment_shingles``.  Among several verified originals the
    choice mirrors the in-run clustering: best max(Jaccard, containment), then best Jaccard,
    then the earliest run, then the smallest id -- deterministic whatever order the backend
    returned them in.
    """
    if cands.query.size == 0:
        return {}
    qs = query_sigs[cands.query]
    jac = np.asarray(jaccard_estimate(qs, cands.sigs), dtype=np.float64)
    qsize = query_sizes[cands.query]
    con = containment_from_jaccard(jac, qsize, cands.sizes)
    small = np.minimum(qsize, cands.sizes)
    ok = (jac >= config.jaccard_threshold) | (
        (con >= config.containment_threshold) & (small >= config.min_containment_shingles))
    best: dict[int, tuple[tuple[float, float, int, str], int]] = {}
    for k in np.flatnonzero(ok).tolist():
        q = int(cands.query[k])
        key = (-max(jac[k], con[k]), -jac[k], int(cands.seqs[k]), cands.ids[k])
        if q not in best or key < best[q][0]:
            best[q] = (key, k)
    return {
        q: Match(cands.originals[k], cands.runs[k], cands.ids[k], float(jac[k]), float(con[k]), cands.sigs[k],
                 int(cands.sizes[k]))
        for q, (_, k) in best.items()
    }


def similarity_to(sig: np.ndarray, size: int, match: Match) -> tuple[float, float]:
    """(Jaccard estimate, containment) of one article against a matched original."""
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
