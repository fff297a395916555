"""Exact-behaviour tests of NearDuplicateFinder on small invented texts."""

from __future__ import annotations

import random

import numpy as np
import pytest

from dedupe.clusters import NearDuplicateFinder
from dedupe.config import DedupeConfig
from dedupe.minhash import signatures
from dedupe.shingles import shingle_hashes_many

CFG = DedupeConfig()
_VOCAB = (
    "council mayor river bridge storm police court minister school budget harbour ferry "
    "union strike market price farmers rain drought hospital nurses train station fire crew "
    "election vote senator report museum festival coach team season injury league club "
    "tax bank rates housing airport flight delay power outage water plan road crash"
).split()


def sentence(rng: random.Random, n: int = 14) -> str:
    return " ".join(rng.choice(_VOCAB) for _ in range(n)).capitalize() + "."


def story(seed: int, sentences: int = 12) -> list[str]:
    rng = random.Random(seed)
    return [sentence(rng) for _ in range(sentences)]


def run(texts, keep="first", lengths=None, dates=None, store=None):
    sh = shingle_hashes_many(texts, CFG)
    sig = signatures(sh, CFG)
    f = NearDuplicateFinder(CFG, shingle_store=store)
    for k, (t, s, g) in enumerate(zip(texts, sh, sig)):
        f.add(g, s, length=len(t) if lengths is None else lengths[k],
              date=None if dates is None else dates[k])
    return f.finish(keep=keep)


@pytest.mark.parametrize("store", [None, "memory"])
def test_light_edit_links_with_similarity(store):
    a = story(1)
    b = list(a)
    b[3] = sentence(random.Random(99))  # one sentence replaced
    b[7] = b[7].replace(".", ", officials said.")
    res = run([" ".join(a), " ".join(b), " ".join(story(2))], store=store)
    assert res.cluster.tolist() == [0, 0, 2]
    assert res.kept.tolist() == [True, False, True]
    link = res.link(1)
    assert (link.index, link.kept, link.cluster, link.cluster_size) == (1, 0, 0, 2)
    assert 0.6 < link.similarity < 0.95
    assert link.containment >= link.similarity


@pytest.mark.parametrize("store", [None, "memory"])
def test_prefix_links_via_containment(store):
    a = story(3, sentences=20)
    short = " ".join(a[:4])  # first fifth of the article
    res = run([" ".join(a), short], store=store)
    assert res.cluster.tolist() == [0, 0]
    link = res.link(1)
    assert link.similarity < CFG.jaccard_threshold  # Jaccard alone would miss it
    assert link.containment >= 0.9


def test_shared_quote_does_not_link():
    quote = sentence(random.Random(5), n=30)
    a = story(6)
    b = story(7)
    res = run([" ".join(a[:6] + [quote] + a[6:]), " ".join(b[:3] + [quote] + b[3:])])
    assert res.cluster.tolist() == [0, 1]
    assert res.kept.all()


def test_chaining_guard():
    a, b = story(10), story(11)
    # A ~ AB and AB ~ B, but A !~ B: three articles, no cluster may hold both A and B
    ab = a[:6] + b[:6]
    res = run([" ".join(a), " ".join(ab), " ".join(b)], store="memory")
    assert res.cluster[0] != res.cluster[2]
    assert len(set(res.cluster.tolist())) >= 2


def _variants():
    base = story(20, sentences=16)
    v1 = list(base)
    v1[2] = sentence(random.Random(21))
    v2 = base[:10]
    return [" ".join(v2), " ".join(base), " ".join(v1)]


def test_keep_first_longest_earliest():
    texts = _variants()
    res = run(texts, keep="first")
    assert res.cluster.tolist() == [0, 0, 0]
    assert res.kept.tolist() == [True, False, False]
    res = run(texts, keep="longest", lengths=[100, 300, 200])
    assert res.kept.tolist() == [False, True, False]
    assert res.link(0).kept == 1 and res.link(2).kept == 1
    res = run(texts, keep="earliest-date", dates=["2020-05-02", None, "2020-05-01"])
    assert res.kept.tolist() == [False, False, True]
    res = run(texts, keep="earliest-date", dates=[None, None, None])
    assert res.kept.tolist() == [True, False, False]  # no dates: first added
    with pytest.raises(ValueError):
        run(texts, keep="newest")


def test_deterministic_under_shuffled_add_order():
    texts = []
    for s in range(6):
        base = story(100 + s, sentences=14)
        texts.append(" ".join(base))
        texts.append(" ".join(base[:8]))
        edited = list(base)
        edited[s] = sentence(random.Random(200 + s))
        texts.append(" ".join(edited))
    texts += [" ".join(story(300 + k)) for k in range(5)]

    def groups(order):
        res = run([texts[k] for k in order])
        by = {}
        for pos, c in enumerate(res.cluster.tolist()):
            by.setdefault(c, set()).add(order[pos])
        return sorted(sorted(g) for g in by.values())

    ref = groups(list(range(len(texts))))
    assert sum(len(g) > 1 for g in ref) == 6
    for seed in range(4):
        order = list(range(len(texts)))
        random.Random(seed).shuffle(order)
        assert groups(order) == ref


def test_empty_articles_stay_apart():
    res = run(["", "", " ".join(story(1))])
    assert res.cluster.tolist() == [0, 1, 2]


def test_groups_helper():
    res = run(_variants() + [" ".join(story(50))])
    assert res.groups() == [[0, 1, 2]]
    assert len(res) == 4 and res.is_kept(3)
