"""The scalable candidate search of NearDuplicateFinder.finish against brute force."""

from __future__ import annotations

import numpy as np
import pytest

import dedupe.clusters as C
from dedupe.clusters import NearDuplicateFinder, _fingerprint_rows, _unequal_nibbles
from dedupe.config import DedupeConfig
from dedupe.index import band_keys, candidate_pairs, lsh_params

CFG = DedupeConfig()


def synthetic(n=1500, seed=0, flood=0):
    """Signatures with planted near-copies, prefixes (small sets) and a flood of copies."""
    rng = np.random.default_rng(seed)
    sigs = rng.integers(0, 2**32, size=(n, 128), dtype=np.uint64).astype(np.uint32)
    sizes = rng.integers(200, 900, size=n)
    common = rng.integers(0, 2**32, size=(6, 2), dtype=np.uint64).astype(np.uint32)
    for r in range(n):  # common band values: buckets of many unrelated articles
        for b in rng.choice(28, size=3, replace=False):
            if rng.random() < 0.5:
                sigs[r, 2 * b : 2 * b + 2] = common[rng.integers(6)]
    for r in range(0, n - 1, 7):  # a copy sharing a random fraction of values
        share = rng.random(128) < rng.uniform(0.15, 0.95)
        sigs[r + 1, share] = sigs[r, share]
        if rng.random() < 0.3:
            sizes[r + 1] = max(20, int(sizes[r] * rng.uniform(0.1, 0.4)))
    for r in range(n - flood, n):
        sigs[r] = sigs[n - flood]
    sizes[5] = 0  # an empty article
    return sigs, sizes


def finder(sigs, sizes):
    f = NearDuplicateFinder(CFG)
    for g, s in zip(sigs, sizes.tolist()):
        f.add(g, range(s), length=s)
    return f


def brute_edges(sigs, sizes, max_bucket):
    """The old finish: all candidate pairs, every one verified on the full signatures."""
    live = np.flatnonzero(sizes > 0)
    b, r = lsh_params(CFG.candidate_threshold, CFG.num_perm)
    p = candidate_pairs([band_keys(sigs[live], k, r) for k in range(b)], max_bucket)
    i, j = live[p[:, 0]], live[p[:, 1]]
    jac = np.count_nonzero(sigs[i] == sigs[j], axis=1) / CFG.num_perm
    con = C.containment_from_jaccard(jac, sizes[i], sizes[j])
    ok = (jac >= CFG.jaccard_threshold) | (
        (con >= CFG.containment_threshold) & (np.minimum(sizes[i], sizes[j]) >= CFG.min_containment_shingles)
    )
    return i[ok], j[ok], jac[ok], con[ok]


@pytest.mark.parametrize("num_perm", [128, 37, 300])
def test_fingerprint_count_bounds_equal_values(num_perm):
    rng = np.random.default_rng(num_perm)
    a = rng.integers(0, 2**32, size=(500, num_perm), dtype=np.uint64).astype(np.uint32)
    b = rng.integers(0, 2**32, size=(500, num_perm), dtype=np.uint64).astype(np.uint32)
    for k in range(500):
        share = rng.random(num_perm) < k / 500
        b[k, share] = a[k, share]
    words = (num_perm + 15) // 16
    bound = num_perm - _unequal_nibbles(_fingerprint_rows(a, words), _fingerprint_rows(b, words))
    exact = np.count_nonzero(a == b, axis=1)
    assert (bound >= exact).all()
    assert (bound - exact).mean() < num_perm / 8  # and it is a useful bound


def test_count_needed_is_below_every_passing_count():
    f = NearDuplicateFinder(CFG)
    rng = np.random.default_rng(3)
    sa = rng.integers(1, 3000, size=4000).astype(np.float64)
    sb = np.where(rng.random(4000) < 0.5, sa, rng.integers(1, 3000, size=4000)).astype(np.float64)
    need = f._count_needed(sa, sb)
    for c in range(CFG.num_perm + 1):
        ok, _ = f._passes(np.full(sa.size, c / CFG.num_perm), sa, sb)
        assert (c >= need[ok]).all()
    # monotone: once a count passes, every larger count passes
    prev = np.zeros(sa.size, dtype=bool)
    for c in range(CFG.num_perm + 1):
        ok, _ = f._passes(np.full(sa.size, c / CFG.num_perm), sa, sb)
        assert (ok | ~prev).all()
        prev = ok


@pytest.mark.parametrize("seed", range(3))
def test_verified_links_equal_brute_force_with_the_old_policy(seed, monkeypatch):
    sigs, sizes = synthetic(seed=seed, flood=150)
    monkeypatch.setattr(C, "_POLICY", (CFG.max_bucket, CFG.max_bucket))
    i, j, jac, con = finder(sigs, sizes)._verified_links(sizes)
    bi, bj, bjac, bcon = brute_edges(sigs, sizes, CFG.max_bucket)
    assert i.tolist() == bi.tolist() and j.tolist() == bj.tolist()
    assert jac.tolist() == bjac.tolist() and con.tolist() == bcon.tolist()


@pytest.mark.parametrize("seed", range(3))
def test_default_policy_links_are_verified_pairs(seed):
    sigs, sizes = synthetic(seed=seed, flood=150)
    i, j, jac, con = finder(sigs, sizes)._verified_links(sizes)
    brute = set(zip(*[x.tolist() for x in brute_edges(sigs, sizes, 10**9)]))
    got = set(zip(i.tolist(), j.tolist(), jac.tolist(), con.tolist()))
    assert got <= brute
    n = sizes.size
    outside = {e for e in brute if e[0] < n - 150}  # the flood's O(n^2) pairs are not wanted
    assert len(got & outside) >= 0.95 * len(outside)
    assert (i < j).all() and (np.diff(i * 10**6 + j) > 0).all()


def test_flood_of_copies_is_one_cluster_and_bounded():
    sigs, sizes = synthetic(n=1200, seed=7, flood=400)
    C.STATS[:] = [0, 0, 0]
    res = finder(sigs, sizes).finish()
    flood = res.cluster[800:]
    assert (flood == flood[0]).all() and res.kept[800:].sum() == 1
    assert C.STATS[0] < 1200 * 28 * 2  # candidates stay O(articles), not O(flood^2)


def test_exact_store_path_matches_brute_force_on_small_data():
    sigs, sizes = synthetic(n=400, seed=11)
    f = NearDuplicateFinder(CFG, shingle_store="memory")
    rng = np.random.default_rng(0)
    for g, s in zip(sigs, sizes.tolist()):
        f.add(g, np.unique(rng.integers(0, 2**32, size=s, dtype=np.uint64).astype(np.uint32)), length=s)
    res = f.finish()  # random shingle sets: nothing verifies exactly
    assert res.kept.all()


@pytest.mark.skipif(C._kernels is None, reason="THRESHER_NO_KERNELS: no compiled kernels to compare")
@pytest.mark.parametrize("num_perm", [128, 37, 16, 300])
def test_the_prefilter_kernels_equal_their_numpy_reference(num_perm):
    """`_kernels.fingerprints` and `_kernels.may_link` against `_fingerprint_rows` and
    `_may_link_reference`, value for value: near-copies, small and empty sets, and configs
    whose containment or Jaccard test is off."""
    rng = np.random.default_rng(num_perm)
    n = 700
    sigs = rng.integers(0, 2**32, size=(n, num_perm), dtype=np.uint64).astype(np.uint32)
    for k in range(1, n):
        share = rng.random(num_perm) < k / n
        sigs[k, share] = sigs[k - 1, share]
    sizes = rng.integers(0, 60, size=n) * rng.integers(1, 50, size=n)
    words = (num_perm + 15) // 16
    out = np.full((n, words), 7, np.uint64)
    C._kernels.fingerprints(sigs, num_perm, words, out)
    assert out.tolist() == _fingerprint_rows(sigs, words).tolist()
    i = rng.integers(0, n, size=20_000)
    j = np.clip(i + rng.integers(-3, 4, size=i.size), 0, n - 1)
    configs = [DedupeConfig(num_perm=num_perm), DedupeConfig(num_perm=num_perm, containment_threshold=0.0),
               DedupeConfig(num_perm=num_perm, jaccard_threshold=0.0), DedupeConfig(num_perm=num_perm, min_containment_shingles=0)]
    for cfg in configs:
        f = NearDuplicateFinder(cfg)
        f.add_many(sigs, sizes, sizes, [None] * n)
        fp = f._fingerprints()
        assert fp.tolist() == out.tolist()
        got = f._may_link(fp, i, j, sizes)
        with np.errstate(invalid="ignore"):  # (two empty sets: 0 / 0, as in the reference)
            want = f._may_link_reference(fp, i, j, sizes)
        assert got.dtype == want.dtype == np.bool_
        assert got.tolist() == want.tolist()
        if cfg == configs[0]:  # (the others let through everything, or all but the small sets)
            assert 0 < got.sum() < got.size


@pytest.mark.skipif(C._kernels is None, reason="THRESHER_NO_KERNELS: no compiled kernels to compare")
@pytest.mark.parametrize("flood", [0, 40, 300])
@pytest.mark.parametrize("policy", [{}, {"max_bucket": 3}, {"max_bucket": 1}, {"candidate_threshold": 0.5}])
def test_the_band_candidates_kernel_equals_the_numpy_candidates(monkeypatch, flood, policy):
    """`_kernels.band_candidates` (bucket policy and fingerprint bound fused) gives exactly the
    pair codes and counts of `index.bucket_pairs` + `_may_link_reference`: small and crowded
    buckets, buckets of unrelated articles sharing a band value, an empty article (not in any
    bucket), with and without the prefilter, on one thread or several."""
    sigs, sizes = synthetic(n=900, seed=flood, flood=flood)
    f = NearDuplicateFinder(DedupeConfig(**policy))
    f.add_many(sigs, sizes, sizes, [None] * sizes.size)
    for prefilter in (True, False):
        C.STATS[:] = [0, 0, 0]
        got = f.candidate_codes(prefilter=prefilter)
        got_stats = list(C.STATS)
        C.STATS[:] = [0, 0, 0]
        threaded = f.candidate_codes(prefilter=prefilter, threads=3)  # bands on threads: the same
        assert threaded.tolist() == got.tolist() and list(C.STATS) == got_stats
        monkeypatch.setattr(C, "_kernels", None)
        C.STATS[:] = [0, 0, 0]
        want = f.candidate_codes(prefilter=prefilter)
        monkeypatch.undo()
        assert got.dtype == want.dtype == np.uint64
        assert got.tolist() == want.tolist()
        assert got_stats == list(C.STATS)
        assert want.size > 0 and got_stats[0] > 0
