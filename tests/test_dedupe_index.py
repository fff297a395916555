"""The LSH bucket grouping and candidate pairs of ``dedupe.index`` against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from datasketch.lsh import _optimal_param

from dedupe import index
from dedupe.index import (
    KNOWN_PARAMS,
    PairSet,
    bucket_pairs,
    bucket_runs,
    candidate_pairs,
    lsh_params,
    pair_codes,
    split_codes,
)


def brute_buckets(keys):
    groups = {}
    for row, k in enumerate(keys.tolist()):
        groups.setdefault(k, []).append(row)
    return sorted(g for g in groups.values() if len(g) > 1)


def runs_as_groups(keys):
    members, starts, lengths = bucket_runs(keys)
    return sorted(members[s : s + n].tolist() for s, n in zip(starts.tolist(), lengths.tolist()))


def brute_pairs(keys, max_bucket):
    out = set()
    for g in brute_buckets(keys):
        for a, b in itertools.combinations(g, 2):  # g ascending: a < b
            if len(g) <= max_bucket or g.index(a) < max_bucket:
                out.add((a, b))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_bucket_runs_is_the_exact_grouping(seed):
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 300, size=2000).astype(np.uint64) * np.uint64(0x1234567)
    members, starts, lengths = bucket_runs(keys)
    for s, n in zip(starts.tolist(), lengths.tolist()):
        g = members[s : s + n]
        assert (np.diff(g) > 0).all()  # rows ascending inside a bucket
    assert runs_as_groups(keys) == brute_buckets(keys)


def test_bucket_runs_survives_hash_collisions_in_the_kept_bits():
    # keys whose multiplicative hashes differ only in the low bits that hold the row number
    inv = pow(int(index._GOLDEN), -1, 1 << 64)
    base = [int(x) << 40 for x in range(1, 6)]
    keys = []
    for b in base:
        for low in (0, 1, 2):  # three distinct keys sharing their top hash bits
            keys.append(((b + low) * inv) % (1 << 64))
    keys = np.array(keys * 3, dtype=np.uint64)  # every key three times
    assert runs_as_groups(keys) == brute_buckets(keys)


def test_bucket_runs_small_inputs():
    for keys in (np.empty(0, np.uint64), np.array([7], np.uint64), np.array([1, 2], np.uint64)):
        members, starts, lengths = bucket_runs(keys)
        assert members.size == starts.size == lengths.size == 0
    assert runs_as_groups(np.array([5, 5], np.uint64)) == [[0, 1]]


@pytest.mark.parametrize("max_bucket", [1, 3, 10, 1000])
def test_bucket_and_candidate_pairs_match_brute_force(max_bucket):
    rng = np.random.default_rng(max_bucket)
    cols = []
    for _ in range(3):
        k = rng.integers(0, 60, size=400).astype(np.uint64)
        k[:40] = 7  # one large bucket per band
        cols.append(k)
    expected = set()
    for k in cols:
        i, j = bucket_pairs(k, np.arange(k.size), max_bucket, max_bucket)
        got = set(zip(i.tolist(), j.tolist()))
        assert len(got) == i.size  # no pair twice within a band
        assert got == brute_pairs(k, max_bucket)
        expected |= got
    pairs = candidate_pairs(cols, max_bucket)
    assert [tuple(p) for p in pairs.tolist()] == sorted(expected)


def test_pair_set_dedupes_across_merges():
    rng = np.random.default_rng(1)
    acc = PairSet()
    seen = set()
    for _ in range(40):
        i = rng.integers(0, 3000, 5000)
        j = rng.integers(0, 3000, 5000)
        keep = i != j
        acc.add(pair_codes(i[keep], j[keep]))
        seen |= {(min(a, b), max(a, b)) for a, b in zip(i[keep].tolist(), j[keep].tolist())}
    a, b = split_codes(acc.codes())
    assert list(zip(a.tolist(), b.tolist())) == sorted(seen)


@pytest.mark.parametrize("key", sorted(KNOWN_PARAMS))
def test_tabulated_lsh_params_are_datasketch_s(key):
    threshold, num_perm = key
    assert KNOWN_PARAMS[key] == _optimal_param(threshold, num_perm, 0.5, 0.5)
    assert lsh_params(threshold, num_perm) == KNOWN_PARAMS[key]


def test_untabulated_lsh_params_fall_back_to_datasketch():
    assert lsh_params(0.5, 64) == _optimal_param(0.5, 64, 0.5, 0.5)
