"""One ingest run's use of the persistent index (``--index``).

The order is what makes batches safe:

1. ``IndexRun(...)`` before reading: the index's parameters must match this run's options and
   the run id must be new -- a mismatch fails in a second, not after an hour of cleaning.
2. ``match`` after in-run clustering: takes the index's writer lock, then queries every article
   the run would keep.  A kept article that verifies against an indexed one becomes a
   duplicate of that original, and so do its in-run duplicates.
3. The pipeline writes and commits its outputs (the lock is still held).
4. ``commit``: adds the articles the run kept, then releases the lock.  A run that fails or is
   killed before this leaves the index as it was; one killed between 3 and 4 has written its
   corpus but not indexed it, so re-running it is harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dedupe.clusters import Clusters, NearDuplicateFinder
from dedupe.config import DedupeConfig
from ingest.index_store import (
    DEFAULT_WAIT,
    IndexStoreError,
    Match,
    best_matches,
    new_run_id,
    open_index,
    params_for,
    similarity_to,
)


@dataclass(frozen=True)
class Earlier:
    """Why an article of this run is dropped in favour of one from an earlier run."""

    original: Match  # the indexed article (id, run) the run's kept article matched
    similarity: float  # this article vs the original (Jaccard estimate)
    containment: float


def finder_rows(finder: NearDuplicateFinder, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(signatures, shingle counts) of articles ``rows`` of a finished finder.

    Reads the finder's private columns: NearDuplicateFinder has no public accessor yet, and
    copying every signature in the pipeline would double the run's largest memory cost.
    """
    sizes = finder._sizes.all()[rows] if len(finder) else np.empty(0, np.int64)
    if rows.size == 0:
        return np.empty((0, finder.config.num_perm), np.uint32), sizes
    return finder._sigs.take(rows), sizes


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
        self.matched = 0  # kept articles that matched the index
        self.dropped = 0  # articles dropped because of those matches (them and their in-run duplicates)
        self.added = 0

    def match(self, finder: NearDuplicateFinder, result: Clusters, ids: Sequence[str]) -> dict[int, Earlier]:
        """Lock the index and find which of this run's articles an earlier run already has."""
        self.store.lock()
        self._finder, self._ids = finder, ids
        kept = np.flatnonzero(result.kept) if len(result) else np.empty(0, np.int64)
        sigs, sizes = finder_rows(finder, kept)
        live = np.flatnonzero(sizes > 0)  # articles without shingles never link, nor get indexed
        cands = self.store.candidates(sigs[live], self.config.max_bucket)
        found = best_matches(sigs[live], sizes[live], cands, self.config)
        out: dict[int, Earlier] = {}
        for q, m in found.items():
            out[int(kept[live[q]])] = Earlier(m, m.similarity, m.containment)
        self.matched = len(out)
        members = [link.index for link in result.links.values() if link.kept in out]
        if members:
            rows = np.array(sorted(members), dtype=np.int64)
            msigs, msizes = finder_rows(finder, rows)
            for i, sig, size in zip(rows.tolist(), msigs, msizes.tolist()):
                m = out[result.links[i].kept].original
                out[i] = Earlier(m, *similarity_to(sig, size, m))
        self.dropped = len(out)
        matched = np.fromiter(out, dtype=np.int64, count=len(out))
        self._to_add = np.setdiff1d(kept[live], matched)
        return out

    def commit(self) -> dict[str, object]:
        """Add this run's kept articles (call after the outputs are committed) and unlock."""
        if self._finder is not None:  # a run that kept nothing new is still recorded
            sigs, sizes = finder_rows(self._finder, self._to_add)
            self.store.add(self.run_id, [self._ids[i] for i in self._to_add.tolist()], sigs, sizes)
            self.added = int(self._to_add.size)
        self.store.commit()
        return self.report()

    def report(self) -> dict[str, object]:
        return {"location": self.location, "run_id": self.run_id, "matched": self.matched,
                "duplicates_of_earlier_runs": self.dropped, "added": self.added}

    def abort(self) -> None:
        self.store.rollback()

    def close(self) -> None:
        self.store.close()
