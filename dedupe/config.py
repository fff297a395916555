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
    jaccard_threshold: a verified pair links when its Jaccard reaches this.
    containment_threshold: ... or when the smaller article's shingles are contained in the
        larger one's at least this much.  Must stay well above the ~0.6 containment reached by
        different reports that share a couple of inserted sentences (FINDINGS).
    min_containment_shingles: containment is only trusted when the smaller article has at
        least this many shingles; a one-sentence text is "contained" in every article that
        quotes it.
    representative: which article every cluster member must verify against (the chaining
        guard).  ``"largest"`` (most shingles, then smallest index) makes the fullest version
        the hub, which every short or edited variant is directly similar to; ``"kept"`` uses
        the article the keep policy keeps.
    max_bucket: an LSH bucket with more members than this pairs each member only with the
        bucket's first ``max_bucket`` members (by add order) instead of with all of them, so a
        flood of identical articles costs O(n * max_bucket) candidate pairs, not O(n^2).
    """

    shingle: str = "word"
    ngram: int = 5
    num_perm: int = 128
    seed: int = 1
    candidate_threshold: float = 0.2
    jaccard_threshold: float = 0.5
    containment_threshold: float = 0.8
    min_containment_shingles: int = 20
    representative: str = "degree"
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
