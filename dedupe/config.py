"""Configuration of near-duplicate detection.

Every default below is chosen from a principle or a measurement recorded in the docstring of
the field (measured on ``/work/shared/eval/neardup`` and ``/work/shared/bench``); none is fitted
to individual clusters.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DedupeConfig:
    """Parameters of shingling, MinHash signatures, the LSH candidate index and verification.

    shingle: ``"word"`` n-grams of normalised words (default) or ``"char"`` n-grams of the
        normalised text.  Word 5-grams: 3- and 4-grams merged articles that share only an
        outlet template (FINDINGS), 5-grams did not.
    ngram: n-gram size (5, see above).
    num_perm: MinHash permutations.  128 gives a Jaccard estimate with standard error
        sqrt(J(1-J)/128) <= 0.044 and costs 512 bytes per article as uint32.
    seed: permutation seed; the same as datasketch's ``MinHash(seed=...)``.
    candidate_threshold: Jaccard threshold the LSH bands/rows are optimised for, with
        datasketch's ``_optimal_param`` (equal false-positive/negative weights).  It is low
        (0.2 -> 28 bands x 2 rows) because short versions of an article (prefix, trimmed) have a
        Jaccard of about their length ratio; containment, not Jaccard, is what links them, and
        the LSH has to surface them first.  Candidates are always verified, so a low threshold
        costs only verification time.
    jaccard_threshold: a verified pair links when its Jaccard reaches this.  0.3 = the largest
        Jaccard measured between different reports of one topic/outlet after boilerplate
        removal (0.19) plus 3 standard errors of the 128-permutation estimate (~0.035 each).
        On the eval set F1 is flat for 0.25-0.3 (0.998/0.995) and falls at 0.5 (0.97).
    containment_threshold: ... or when the smaller article's shingles are contained in the
        larger one's at least this much.  0.7: above the ~0.6 that different reports sharing a
        couple of inserted sentences reach (FINDINGS; measured max 0.48 here).
    min_containment_shingles: containment is only trusted when the smaller article has at
        least this many shingles; a one-sentence text is "contained" in every article that
        quotes it.
    representative: which article every cluster member must verify against directly (the
        chaining guard).  ``"degree"`` (default): the article with the most verified links,
        ties by keep order -- the medoid-like original that every variant resembles, whatever
        the add order (eval F1 0.995 vs 0.978 for ``"kept"`` and 0.968 for ``"largest"``,
        prefix recall 0.97 vs 0.87/0.78).  ``"kept"``: the keep policy's article;
        ``"largest"``: most shingles.
    cluster_floor: a member joins a representative's cluster only if it is not unrelated to
        any member already there: max(Jaccard, containment) >= this with each of them.  A
        representative similar to two different stories (A + B glued, or a round-up quoting
        both) would otherwise pull both into one cluster (A~AB, AB~B, A!~B).  0.2 is the
        candidate threshold, i.e. "possibly related"; on the evaluation set every pair of one
        gold cluster scores >= 0.23 (estimates), different stories typically ~0.
    max_check: members a joining article is checked against (the earliest joined, i.e. the
        most central); bounds the guard at O(max_check) per article in huge clusters.
    max_bucket: an upper bound on the in-run finder's bucket rule (see ``FULL_BUCKET`` and
        ``LARGE_BUCKET_LINKS`` in clusters.py): buckets of up to min(max_bucket, 16) members give
        all their pairs; a larger bucket pairs each member only with its first member (by add
        order). Crowded buckets come from sentences shared by ~1% of a corpus; pairing them
        fully grew candidates per article linearly with the corpus (159/article at 500k, of
        which 0.2% verify). Measured cost of the cap: 1 of 50,000 true copies missed at 500k.
    """

    shingle: str = "word"
    ngram: int = 5
    num_perm: int = 128
    seed: int = 1
    candidate_threshold: float = 0.2
    jaccard_threshold: float = 0.3
    containment_threshold: float = 0.7
    min_containment_shingles: int = 20
    representative: str = "degree"
    cluster_floor: float = 0.2
    max_check: int = 64
    max_bucket: int = 100

    def __post_init__(self) -> None:
        if self.shingle not in ("word", "char"):
            raise ValueError(f"shingle must be 'word' or 'char', got {self.shingle!r}")
        if self.ngram < 1:
            raise ValueError("ngram must be >= 1")
        if self.num_perm < 2:
            raise ValueError("num_perm must be >= 2")
        for name in ("candidate_threshold", "jaccard_threshold", "containment_threshold"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        if self.representative not in ("largest", "kept", "degree"):
            raise ValueError("representative must be 'largest' or 'kept'")
        if self.max_bucket < 1:
            raise ValueError("max_bucket must be >= 1")
