"""Repeated paragraphs inside one article (a page scraped twice, a caption repeated)."""

from __future__ import annotations

import numpy as np

from .config import DedupeConfig
from .shingles import normalise, shingle_hashes_many

_CHAR5 = DedupeConfig(shingle="char", ngram=5)
SHORT_CHARS = 40  # normalised paragraphs shorter than this are compared exactly


def collapse_repeated_paragraphs(
    paragraphs: list[str], threshold: float = 0.8
) -> tuple[list[str], list[int]]:
    """Keep the first occurrence of each paragraph; drop later exact and near-identical repeats.

    Paragraphs are compared on their normalised text: exactly when shorter than
    ``SHORT_CHARS`` (a few words carry too few shingles for a meaningful Jaccard), otherwise
    by the exact Jaccard of character 5-gram sets (robust to typos and re-punctuation) against
    every kept paragraph of comparable length (a Jaccard >= t needs a size ratio >= t).
    Articles have few paragraphs, so exact sets are cheaper than MinHash here; the common case,
    no repeat at all, costs one normalisation per paragraph and a set lookup when no two
    paragraphs have comparable lengths.

    Returns (kept paragraphs, indices of the dropped ones).
    """
    norms = [normalise(p) for p in paragraphs]
    seen: set[str] = set()
    dropped: list[int] = []
    long_idx: list[int] = []
    for i, n in enumerate(norms):
        if not n:
            continue
        if n in seen:
            dropped.append(i)
            continue
        seen.add(n)
        if len(n) >= SHORT_CHARS:
            long_idx.append(i)
    if len(long_idx) > 1:
        lens = np.array([len(norms[i]) for i in long_idx], dtype=np.float64)
        srt = np.sort(lens)
        # any pair of comparable length at all?  (adjacent in sorted order suffices)
        if (srt[:-1] >= threshold * srt[1:]).any():
            sets = shingle_hashes_many([norms[i] for i in long_idx], _CHAR5)
            kept_sets: list[tuple[int, np.ndarray]] = []
            for k, i in enumerate(long_idx):
                s = sets[k]
                dup = False
                for _, t in kept_sets:
                    small, big = min(s.size, t.size), max(s.size, t.size)
                    if small < threshold * big:
                        continue
                    inter = np.intersect1d(s, t, assume_unique=True).size
                    if inter >= threshold * (s.size + t.size - inter):
                        dup = True
                        break
                if dup:
                    dropped.append(i)
                else:
                    kept_sets.append((i, s))
    dropped.sort()
    drop = set(dropped)
    return [p for i, p in enumerate(paragraphs) if i not in drop], dropped
