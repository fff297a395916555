"""Repeated paragraphs inside one article (a page scraped twice, a caption repeated)."""

from __future__ import annotations

import numpy as np

from .config import DedupeConfig
from .shingles import _ascii_map, _kernels, normalise_many, shingle_hashes_many

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
    scan = _kernels.repeat_scan(paragraphs, _ascii_map(), SHORT_CHARS, threshold, threshold - 0.3) \
        if _kernels is not None else None
    if scan is not None:
        # all-ASCII paragraphs: the exact repeats, the long paragraphs and the pairs passing
        # the length and word-set prefilters (usually none) in one C call, no str per norm
        dropped, long_idx, cand = scan
        if cand:
            dropped.extend(_near_repeats(normalise_many([paragraphs[i] for i in long_idx]), long_idx,
                                         threshold, set(cand)))
        return _kept(paragraphs, dropped)
    norms = normalise_many(paragraphs)
    dropped, long_idx = first_seen(norms)
    if len(long_idx) > 1:
        if _kernels is not None:
            # pairs passing the length and word-set prefilters, found in C: usually none
            cand = _kernels.word_pairs([norms[i] for i in long_idx], threshold, threshold - 0.3)
            if cand:
                dropped.extend(_near_repeats([norms[i] for i in long_idx], long_idx, threshold,
                                             set(cand)))
        else:
            lens = np.array([len(norms[i]) for i in long_idx], dtype=np.float64)
            srt = np.sort(lens)
            # any pair of comparable length at all?  (adjacent in sorted order suffices)
            if (srt[:-1] >= threshold * srt[1:]).any():
                dropped.extend(_near_repeats([norms[i] for i in long_idx], long_idx, threshold))
    return _kept(paragraphs, dropped)


def first_seen(norms: list[str]) -> tuple[list[int], list[int]]:
    """(exact, long) over normalised paragraphs: the indices of those equal to an earlier
    non-empty one, and of the other non-empty ones at least ``SHORT_CHARS`` long. The Python
    side of the scan the C kernel ``repeat_scan`` does for all-ASCII paragraphs (tested
    against this)."""
    seen: set[str] = set()
    exact: list[int] = []
    long_idx: list[int] = []
    for i, n in enumerate(norms):
        if not n:
            continue
        if n in seen:
            exact.append(i)
            continue
        seen.add(n)
        if len(n) >= SHORT_CHARS:
            long_idx.append(i)
    return exact, long_idx


def _kept(paragraphs: list[str], dropped: list[int]) -> tuple[list[str], list[int]]:
    if not dropped:
        return list(paragraphs), dropped
    dropped.sort()
    drop = set(dropped)
    return [p for i, p in enumerate(paragraphs) if i not in drop], dropped


def _near_repeats(
    norms: list[str], index: list[int], threshold: float, prefiltered: set | None = None
) -> list[int]:
    """Indices (from ``index``) of paragraphs near-identical to an earlier kept one.

    A cheap word-set Jaccard prefilter (>= threshold - 0.3: one typo changes one word but
    many character 5-grams) selects the pairs that get the exact character 5-gram Jaccard.
    ``prefiltered``: the (k, m) pairs known to pass the length and word-set tests (from the
    C kernel); the others are skipped without testing."""
    words = [set(n.split()) for n in norms] if prefiltered is None else []
    sizes = [len(n) for n in norms]
    sets: dict[int, np.ndarray] = {}
    kept: list[int] = []
    out: list[int] = []
    pre = threshold - 0.3
    for k in range(len(norms)):
        dup = False
        for m in kept:
            if prefiltered is not None:
                if (k, m) not in prefiltered:
                    continue
            else:
                if min(sizes[k], sizes[m]) < threshold * max(sizes[k], sizes[m]):
                    continue
                wk, wm = words[k], words[m]
                inter = len(wk & wm)
                if inter < pre * (len(wk) + len(wm) - inter):
                    continue
            for x in (k, m):
                if x not in sets:
                    sets[x] = shingle_hashes_many([norms[x]], _CHAR5)[0]
            s, t = sets[k], sets[m]
            inter = np.intersect1d(s, t, assume_unique=True).size
            if inter >= threshold * (s.size + t.size - inter):
                dup = True
                break
        if dup:
            out.append(index[k])
        else:
            kept.append(k)
    return out
