"""The LSH candidate rule both engines share (``index.bucket_pairs`` under ``bucket_policy``), on
hand-made signatures whose buckets are known, pair by pair."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dedupe.clusters import FULL_BUCKET, LARGE_BUCKET_LINKS, NearDuplicateFinder, bucket_policy
from dedupe.config import DedupeConfig
from dedupe.index import all_band_keys, band_keys, bucket_pairs, lsh_params, split_codes

CFG = DedupeConfig()
BANDS, ROWS = lsh_params(CFG.candidate_threshold, CFG.num_perm)


def signatures(n: int, band0_groups: dict[int, list[int]], seed: int = 0) -> np.ndarray:
    """n random signatures (no two share a band, but for chance at 2**-64) in which the articles
    of each group share band 0's values."""
    rng = np.random.default_rng(seed)
    sigs = rng.integers(0, 2**32, size=(n, CFG.num_perm), dtype=np.uint64).astype(np.uint32)
    for value, members in band0_groups.items():
        sigs[members, :ROWS] = value
    return sigs


def pairs(i: np.ndarray, j: np.ndarray) -> list[tuple[int, int]]:
    return sorted(zip(i.tolist(), j.tolist()))


CROWDED = list(range(2, 2 + FULL_BUCKET + 4))  # 20 articles: more than FULL_BUCKET
SMALL = [0, 23, 30]
EXACTLY_FULL = list(range(40, 40 + FULL_BUCKET))


def test_the_policy_is_sixteen_then_one_link():
    assert (FULL_BUCKET, LARGE_BUCKET_LINKS) == (16, 1)
    assert bucket_policy(CFG) == (16, 1)
    assert bucket_policy(DedupeConfig(max_bucket=5)) == (5, 1)


def test_bucket_pairs_crowded_small_and_exactly_full_buckets():
    sigs = signatures(60, {7: CROWDED, 8: SMALL, 9: EXACTLY_FULL})
    keys = all_band_keys(sigs, BANDS, ROWS)[0]
    rng = np.random.default_rng(1)
    order = rng.permutation(60)  # entries in any order: members are ranked by article index
    i, j = bucket_pairs(keys[order], order, FULL_BUCKET, LARGE_BUCKET_LINKS)
    expected = [(2, m) for m in CROWDED[1:]]  # crowded: each member with the first one only
    expected += [(0, 23), (0, 30), (23, 30)]  # small: every pair
    expected += list(itertools.combinations(EXACTLY_FULL, 2))  # 16 members is not crowded
    assert pairs(i, j) == sorted(expected)
    assert (i < j).all()


def test_crowded_bucket_with_two_links_and_sparse_indices():
    sigs = signatures(len(CROWDED), {7: list(range(len(CROWDED)))})
    keys = all_band_keys(sigs, BANDS, ROWS)[0]
    indices = np.array([100 + 3 * k for k in range(len(CROWDED))])[::-1].copy()  # descending
    i, j = bucket_pairs(keys, indices, FULL_BUCKET, 2)
    ranked = sorted(indices.tolist())
    expected = [(ranked[0], m) for m in ranked[1:]] + [(ranked[1], m) for m in ranked[2:]]
    assert pairs(i, j) == sorted(expected)


def test_only_the_given_entries_take_part():
    # a crowded bucket split in two halves (as a shuffle never does): each half is its own bucket
    sigs = signatures(len(CROWDED), {7: list(range(len(CROWDED)))})
    keys = all_band_keys(sigs, BANDS, ROWS)[0]
    half = np.arange(10)
    i, j = bucket_pairs(keys[half], half, FULL_BUCKET, 1)
    assert pairs(i, j) == list(itertools.combinations(range(10), 2))


def test_all_band_keys_group_like_band_keys():
    sigs = signatures(60, {7: CROWDED, 8: SMALL})
    sigs[5:9, 2 * ROWS : 3 * ROWS] = 11  # a bucket in band 2 as well
    keys = all_band_keys(sigs, BANDS, ROWS)
    assert keys.shape == (BANDS, 60)
    for b in range(BANDS):
        ours = pairs(*bucket_pairs(keys[b], np.arange(60), 10**6, 10**6))
        theirs = pairs(*bucket_pairs(band_keys(sigs, b, ROWS), np.arange(60), 10**6, 10**6))
        assert ours == theirs


@pytest.mark.parametrize("empty_first", [False, True])
def test_finder_candidates_are_bucket_pairs_of_the_articles_with_shingles(empty_first):
    sigs = signatures(60, {7: CROWDED, 8: SMALL, 9: EXACTLY_FULL})
    finder = NearDuplicateFinder(CFG)
    for k, sig in enumerate(sigs):
        size = 0 if (empty_first and k == CROWDED[0]) else 50
        finder.add(sig, range(size), length=size)
    got = pairs(*split_codes(finder.candidate_codes(prefilter=False)))
    crowded = CROWDED[1:] if empty_first else CROWDED  # an empty article takes no place in a bucket
    expected = [(crowded[0], m) for m in crowded[1:]] if len(crowded) > FULL_BUCKET else list(
        itertools.combinations(crowded, 2))
    expected += [(0, 23), (0, 30), (23, 30)] + list(itertools.combinations(EXACTLY_FULL, 2))
    assert got == sorted(expected)
