"""The Ray engine's candidate shuffle as plain functions (no Ray needed): whatever the number of
parts and however the articles fall into units, the parts' pairs together are the local
finder's candidate pairs."""

from __future__ import annotations

import numpy as np
import pytest

from dedupe.clusters import NearDuplicateFinder
from dedupe.config import DedupeConfig
from dedupe.index import lsh_params, unique_sorted
from ingest.ray_shuffle import KeyTable, band_key_pieces, part_candidates, partition_of
from tests.test_dedupe_clusters_scale import synthetic

CFG = DedupeConfig()


def shuffled_candidates(sigs, sizes, reused, cuts, parts):
    """The engine's plan over units cut at `cuts`: map per unit; the driver adds the articles
    in order (one with a reused id is rejected, not added) and fills the `KeyTable`; reduce per
    part; merge."""
    finder = NearDuplicateFinder(CFG)
    table = KeyTable(parts)
    bounds = [0, *cuts, len(sizes)]
    for lo, hi in zip(bounds, bounds[1:]):
        pieces = band_key_pieces(sigs[lo:hi], CFG, parts)
        first = len(finder)
        accepted = [k for k in range(hi - lo) if lo + k not in reused]
        for k in accepted:
            finder.add(sigs[lo + k], range(int(sizes[lo + k])), length=int(sizes[lo + k]))
        table.add_unit(first, np.array(accepted, np.int32), sizes[lo:hi].tolist(), pieces)
    full, links = finder.bucket_policy()
    found = [part_candidates(table.table(), full, links, *table.pieces_of(p)) for p in range(parts)]
    return finder, unique_sorted(np.concatenate(found))


@pytest.mark.parametrize("parts", [1, 2, 5, 16])
def test_parts_together_give_the_finder_candidates(parts):
    sigs, sizes = synthetic(n=900, seed=parts, flood=60)  # crowded buckets, an empty article
    reused = {3, 17, 400}
    finder, codes = shuffled_candidates(sigs, sizes, reused, [1, 250, 251, 700], parts)
    expected = finder.candidate_codes(prefilter=False)
    assert expected.size > 1000
    assert codes.tolist() == expected.tolist()


def test_finish_with_shuffled_candidates_is_finish():
    sigs, sizes = synthetic(n=900, seed=4, flood=60)
    finder, codes = shuffled_candidates(sigs, sizes, {10}, [300, 600], 3)
    here, there = finder.finish("longest"), finder.finish("longest", codes)
    assert here.cluster.tolist() == there.cluster.tolist()
    assert here.kept.tolist() == there.kept.tolist()
    assert here.links == there.links
    assert len(here.links) > 50


def test_pieces_split_every_band_by_key():
    sigs, _ = synthetic(n=300, seed=1)
    bands, _ = lsh_params(CFG.candidate_threshold, CFG.num_perm)
    pieces = band_key_pieces(sigs, CFG, 4)
    assert sum(len(p) for p in pieces) == 300 * bands  # every (article, band) once
    owners: dict[tuple[int, int], set[int]] = {}
    for p, piece in enumerate(pieces):
        for b in range(bands):
            mine = piece.band == b
            assert (partition_of(piece.key[mine], b, 4) == p).all()
        for band, key in zip(piece.band.tolist(), piece.key.tolist()):
            owners.setdefault((band, key), set()).add(p)
        order = np.lexsort((piece.position, piece.band))
        assert (order == np.arange(len(piece))).all()  # band by band, positions ascending
    assert all(len(o) == 1 for o in owners.values())  # one (band, key) never spans parts
    assert len({p for o in owners.values() for p in o}) == 4


def test_an_empty_unit_gives_empty_pieces():
    pieces = band_key_pieces(np.empty((0, CFG.num_perm), np.uint32), CFG, 3)
    assert [len(p) for p in pieces] == [0, 0, 0]
