"""Cross-run cluster merges: one run's article joins clusters that earlier runs kept apart.

Batches see articles in another order than one run would.  Two variants A' and A'' that do not
verify against each other are both kept (days 1 and 2); then the original A arrives (day 3) and
verifies against both.  One run over all three would have made one star cluster around A (every
member verifies against the representative, ``dedupe.clusters``).  Day 3 cannot un-publish A'
or A'', so it records that their clusters are now one: A'' is *absorbed* into A' (the
surviving original), in the index and in A's duplicates record.

The guard is the in-run one, with the run's article as the star's representative:

- a merge needs one run article (the *hub*) that verifies directly against every merged
  cluster's current original -- not via one of its duplicates, not via another article of the
  run (that would be chaining through two representatives);
- a cluster joins only if it holds nothing unrelated to the clusters already joined: every
  original in it (its own and those it absorbed earlier) has max(Jaccard, containment) >=
  ``cluster_floor`` with every original already there (at most ``max_check`` of each, the
  earliest first).

The surviving original is the one from the earliest run (then the smallest id): it was
published first, and naming the cluster by it keeps the name earlier records already use.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from dedupe.clusters import containment_from_jaccard
from dedupe.config import DedupeConfig
from dedupe.minhash import jaccard_estimate
from ingest.index_store import ClusterMerge, IndexBackend, Match, OriginalKey

# A cluster's originals as the guard compares them: (signature, shingle count), earliest first.
Originals = list[tuple[np.ndarray, int]]


@dataclass(frozen=True)
class GroupOutcome:
    """What one in-run cluster that matched the index becomes."""

    original: Match  # the cluster it joins, as its chosen row (or its hub) verified it
    hub: int | None  # the run article that verified every merged original directly
    absorbed: tuple[Match, ...]  # originals the hub merged into ``original``, as it verified them


class MergePlanner:
    """Decides one run's merges, in-run cluster by in-run cluster, in a fixed order.

    A merge made for one in-run cluster holds for the next ones: an original absorbed earlier
    in the run is no longer a current original (a later hub verifying it does not verify the
    cluster's original), and ``resolve`` names every match by its final surviving original.
    """

    def __init__(self, store: IndexBackend, config: DedupeConfig) -> None:
        self.store = store
        self.config = config
        self.merges: list[ClusterMerge] = []  # this run's, for the index
        self._into: dict[OriginalKey, OriginalKey] = {}  # this run's merges: absorbed -> survivor
        self._survivor: dict[OriginalKey, Match] = {}  # each survivor as a hub verified it
        self._originals: dict[OriginalKey, Originals] = {}  # cluster originals, by root

    def root(self, key: OriginalKey) -> OriginalKey:
        """The original a cluster has after this run's merges so far."""
        while key in self._into:
            key = self._into[key]
        return key

    def plan(self, rows: Sequence[int], chosen: Match, direct: Mapping[int, list[Match]]) -> GroupOutcome:
        """Merge what one in-run cluster justifies.

        ``rows``: its members, the kept article first; ``chosen``: the original it duplicates;
        ``direct``: per row, the verified candidates that are their cluster's original.  Hubs
        are tried as in-run articles try representatives, best first (the most originals
        verified, then the kept article, then input order); the first that merges anything
        is the cluster's hub.
        """
        target = self.root(chosen.key)
        hubs = []
        for pos, row in enumerate(rows):
            roots = {m.key: m for m in direct.get(row, ()) if self.root(m.key) == m.key}
            if target in roots and len(roots) > 1:
                hubs.append((-len(roots), pos, row, roots))
        for _, _, hub, roots in sorted(hubs, key=lambda h: h[:2]):
            joined = [target]
            members = list(self._cluster(roots[target]))
            for key in sorted(roots.keys() - {target}):
                theirs = self._cluster(roots[key])
                if self._related(members, theirs):
                    joined.append(key)
                    members += theirs
            if len(joined) == 1:
                continue
            survivor = min(joined)  # (run sequence, id): the earliest run's original
            absorbed = sorted(k for k in joined if k != survivor)
            for key in absorbed:
                self._into[key] = survivor
                self.merges.append(ClusterMerge(key, survivor, roots[key].size, roots[key].signature))
            self._originals[survivor] = [x for k in [survivor, *absorbed] for x in self._cluster(roots[k])]
            self._survivor[survivor] = roots[survivor]
            return GroupOutcome(roots[survivor], hub, tuple(roots[k] for k in absorbed))
        return GroupOutcome(chosen, None, ())

    def resolve(self, match: Match) -> Match:
        """``match`` named by its cluster's final original (the same ``via`` and scores)."""
        root = self.root(match.key)
        if root == match.key:
            return match
        top = self._survivor[root]
        return replace(match, id=top.id, run=top.run, seq=top.seq)

    def _cluster(self, original: Match) -> Originals:
        """The originals of ``original``'s cluster: itself, then those merged into it by earlier
        runs (breadth first, oldest merge first), at most ``max_check``."""
        key = original.key
        if key not in self._originals:
            found: Originals = [(original.signature, original.size)]
            queue, seen = deque([key]), {key}
            while queue and len(found) < self.config.max_check:
                for merge in self.store.merged_members(queue.popleft()):
                    if merge.absorbed not in seen:
                        seen.add(merge.absorbed)
                        found.append((merge.signature, merge.size))
                        queue.append(merge.absorbed)
            self._originals[key] = found
        return self._originals[key]

    def _related(self, ours: Originals, theirs: Originals) -> bool:
        """No pair of originals, one from each side, is unrelated (the in-run floor)."""
        floor = self.config.cluster_floor
        if floor <= 0:
            return True
        n = self.config.max_check
        sa = np.stack([s for s, _ in ours[:n]])
        sb = np.stack([s for s, _ in theirs[:n]])
        za = np.array([z for _, z in ours[:n]], dtype=np.int64)
        zb = np.array([z for _, z in theirs[:n]], dtype=np.int64)
        jac = np.asarray(jaccard_estimate(sa[:, None, :], sb[None, :, :]), dtype=np.float64)
        con = containment_from_jaccard(jac, za[:, None], zb[None, :])
        return bool((np.maximum(jac, con) >= floor).all())
