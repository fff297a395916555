"""One ingest run's use of the persistent index (``--index``).

The order is what makes batches safe:

1. ``IndexRun(...)`` before reading: the index's parameters must match this run's options and
   the run id must be new -- a mismatch fails in a second, not after an hour of cleaning.
2. ``match`` after in-run clustering: takes the index's writer lock, then queries the run's
   articles.  An in-run cluster any member of which verifies against an indexed article
   becomes, whole, a duplicate of that article's original (the article its run kept).  When
   one of its articles verifies directly against the originals of several indexed clusters,
   it merges them (ingest/index_merges.py: the in-run chaining guard, across runs).
3. The pipeline writes and commits its outputs (the lock is still held).
4. ``commit``: adds the run's new clusters (kept articles and their in-run duplicates, each
   pointing at its kept one) and records its merges, in one transaction, then releases the
   lock.  A run that fails or is killed before this leaves the index as it was; one killed
   between 3 and 4 has written its corpus but not indexed it, so re-running it is harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dedupe.clusters import Clusters, NearDuplicateFinder
from dedupe.config import DedupeConfig
from ingest.index_merges import MergePlanner
from ingest.index_store import (
    DEFAULT_WAIT,
    ClusterMerge,
    IndexStoreError,
    Match,
    failpoint,
    new_run_id,
    open_index,
    params_for,
    similarity_to,
    verified_matches,
)


_QUERY_BLOCK = 50_000  # signatures copied out of the finder at a time


@dataclass(frozen=True)
class Earlier:
    """Why an article of this run is dropped in favour of one from an earlier run."""

    original: Match  # the cluster's original (id, run) and the indexed article that verified (via)
    similarity: float  # this article vs the cluster (its own best verified match in it, else via)
    containment: float
    merged: tuple[Match, ...] = ()  # other clusters' originals this article merged into ``original``

    def merged_fields(self) -> dict[str, Any]:
        """``{"merged": [{"id", "run", "similarity", "containment"}, ...]}`` for the duplicates
        record of an article that merged clusters (scores: this article vs each absorbed
        original, which it verified directly), else nothing: records of runs without merges
        stay as they were."""
        if not self.merged:
            return {}
        return {"merged": [{"id": m.id, "run": m.run, "similarity": round(m.similarity, 4),
                            "containment": round(m.containment, 4)} for m in self.merged]}


def finder_rows(finder: NearDuplicateFinder, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(signatures, shingle counts) of articles ``rows`` of a finished finder.

    Reads the finder's private columns: NearDuplicateFinder has no public accessor yet, and
    copying every signature in the pipeline would double the run's largest memory cost.
    """
    sizes = finder._sizes.all()[rows] if len(finder) else np.empty(0, np.int64)
    if rows.size == 0:
        return np.empty((0, finder.config.num_perm), np.uint32), sizes
    return finder._sigs.take(rows), sizes


def finder_sizes(finder: NearDuplicateFinder) -> np.ndarray:
    """Shingle counts of every article of a finder (see ``finder_rows``)."""
    return finder._sizes.all() if len(finder) else np.empty(0, np.int64)


class IndexRun:
    def __init__(self, location: str, run_id: str | None, config: DedupeConfig,
                 wait: float = DEFAULT_WAIT) -> None:
        self.run_id = run_id or new_run_id()
        self.config = config
        self.store = open_index(location, wait)
        self.location = self.store.location
        try:
            self.store.ensure_params(params_for(config))
            if self.store.has_run(self.run_id):
                raise IndexStoreError(f"index {self.location}: run {self.run_id!r} is already there; "
                                      "choose another --run-id or forget that run first")
        except BaseException:
            self.store.close()
            raise
        self._finder: NearDuplicateFinder | None = None
        self._ids: Sequence[str] = ()
        self._to_add = np.empty(0, np.int64)
        self._original_of = np.empty(0, np.int64)
        self._merges: list[ClusterMerge] = []
        self.matched = 0  # in-run clusters that matched the index
        self.dropped = 0  # articles dropped because of those matches (whole clusters)
        self.merged = 0  # indexed clusters absorbed into another by this run's articles
        self.added = 0

    def match(self, finder: NearDuplicateFinder, result: Clusters, ids: Sequence[str]) -> dict[int, Earlier]:
        """Lock the index and find which of this run's articles an earlier run already has.

        Every article with shingles is queried, not only the kept ones: the in-run cluster's
        kept article is the first-come copy (often a short or mixed version), while another
        member may be the one that verifies against the earlier run.  When any member of an
        in-run cluster matches, the whole cluster becomes a duplicate of one original -- the
        kept article's match if it has one, else the best-verified member's -- unless one of
        its articles merges that original's cluster with others (``MergePlanner``), in which
        case it joins the merged cluster's surviving original.  In-run clusters are planned in
        input order of their kept articles, so the merges are the same on every run.
        """
        self.store.lock()
        self._finder, self._ids = finder, ids
        n = len(result)
        group_of = np.arange(n, dtype=np.int64)  # in-run kept article of each article
        for link in result.links.values():
            group_of[link.index] = link.kept
        rows = np.arange(n, dtype=np.int64)
        found: dict[int, Match] = {}
        direct: dict[int, list[Match]] = {}
        for lo in range(0, rows.size, _QUERY_BLOCK):
            block = rows[lo : lo + _QUERY_BLOCK]
            sigs, sizes = finder_rows(finder, block)
            live = np.flatnonzero(sizes > 0)  # articles without shingles never link
            cands = self.store.candidates(sigs[live], self.config.max_bucket)
            best, originals = verified_matches(sigs[live], sizes[live], cands, self.config)
            for q, m in best.items():
                found[int(block[live[q]])] = m
            for q, ms in originals.items():
                if len(ms) > 1:  # only an article verifying two originals can merge
                    direct[int(block[live[q]])] = ms
        failpoint("index-query")
        chosen: dict[int, tuple[tuple[object, ...], Match]] = {}
        for row, m in found.items():
            g = int(group_of[row])
            key = (row != g, -max(m.similarity, m.containment), -m.similarity, row)
            if g not in chosen or key < chosen[g][0]:
                chosen[g] = (key, m)
        self.matched = len(chosen)
        dropped = np.flatnonzero(np.isin(group_of, np.fromiter(chosen, np.int64, len(chosen))))
        members: dict[int, list[int]] = {}
        for row in dropped.tolist():
            members.setdefault(int(group_of[row]), []).append(row)
        planner = MergePlanner(self.store, self.config)
        outcomes = {g: planner.plan([g, *(r for r in members[g] if r != g)], chosen[g][1], direct)
                    for g in sorted(chosen)}
        self._merges = planner.merges
        self.merged = len(planner.merges)
        out: dict[int, Earlier] = {}
        if dropped.size:
            sigs, sizes = finder_rows(finder, dropped)
            for row, sig, size in zip(dropped.tolist(), sigs, sizes.tolist()):
                outcome = outcomes[int(group_of[row])]
                m = planner.resolve(outcome.original)
                own = found.get(row)
                if row == outcome.hub:  # it verified the survivor directly: m holds its scores
                    out[row] = Earlier(m, m.similarity, m.containment, outcome.absorbed)
                elif own is not None and planner.resolve(own).key == m.key:
                    out[row] = Earlier(m, own.similarity, own.containment)
                else:
                    out[row] = Earlier(m, *similarity_to(sig, size, m))
        self.dropped = len(out)
        # Index the whole cluster, each member pointing at its kept article: a later variant
        # may resemble a dropped member (the full original) more than the first-come kept copy.
        add = finder_sizes(finder) > 0
        add[dropped] = False
        self._to_add = np.flatnonzero(add)
        self._original_of = group_of
        return out

    def commit(self) -> dict[str, object]:
        """Add this run's kept articles and record its merges (call after the outputs are
        committed), commit both together, and unlock."""
        if self._finder is not None:  # a run that kept nothing new is still recorded
            sigs, sizes = finder_rows(self._finder, self._to_add)
            rows = self._to_add.tolist()
            originals = [None if self._original_of[i] == i else self._ids[self._original_of[i]] for i in rows]
            self.store.add(self.run_id, [self._ids[i] for i in rows], originals, sigs, sizes)
            self.added = int(self._to_add.size)
            if self._merges:
                self.store.record_merges(self._merges)
                failpoint("index-merge")
        self.store.commit()
        return self.report()

    def report(self) -> dict[str, object]:
        return {"location": self.location, "run_id": self.run_id, "matched": self.matched,
                "duplicates_of_earlier_runs": self.dropped, "merged_clusters": self.merged,
                "added": self.added}

    def abort(self) -> None:
        self.store.rollback()

    def close(self) -> None:
        self.store.close()
