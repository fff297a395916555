"""The Ray engine's candidate shuffle: LSH band keys grouped by key across tasks.

Map (inside each unit's signing task, while its signatures are at hand): every article's band
keys, as (band, key, position) entries, are split by a hash of (band, key) into `parts` pieces,
one Ray object each. Reduce (one task per part): the pieces of part p from every unit are
joined, positions become article indices, and `dedupe.index.bucket_pairs` -- the local
engine's own candidate rule -- gives the part's candidate pairs. A bucket lives wholly in one
part, so the union of the parts' pairs is exactly the local engine's candidate set, whatever
the number of parts.

Why positions, not article indices: an article's index (add order) is fixed only when the
driver takes the units' results in input order and drops reused ids, after the map ran. The
driver then hands the reducers one table, `unit_base[u] + position -> article index` (-1 for an
article that takes no part in buckets), so crowded buckets keep their first members by add
order, as locally.

Plain numpy functions: Ray only carries the objects between them (tested without Ray).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dedupe.clusters import in_buckets
from dedupe.config import DedupeConfig
from dedupe.index import PairSet, all_band_keys, bucket_pairs, lsh_params, pair_codes

_SALT = 0x9E3779B97F4A7C15
_MULT = np.uint64(0xD6E8FEB86659FD93)
_SHIFT = np.uint64(32)


@dataclass(frozen=True)
class KeyPiece:
    """One unit's entries of one part: entry e says article `position[e]` of the unit (among
    its signed articles, in order) has key `key[e]` in band `band[e]`. Entries come band by
    band, positions ascending within a band."""

    band: np.ndarray  # uint16
    position: np.ndarray  # uint32
    key: np.ndarray  # uint64

    def __len__(self) -> int:
        return int(self.key.size)


def partition_of(keys: np.ndarray, band: int, parts: int) -> np.ndarray:
    """The part (0..parts-1) owning each (band, key): a multiplicative hash of the key salted
    by the band, so one band's buckets spread over all parts and a bucket never splits."""
    salt = np.uint64((_SALT * (band + 1)) & 0xFFFFFFFFFFFFFFFF)
    h = (keys ^ salt) * _MULT
    return ((h >> _SHIFT) % np.uint64(parts)).astype(np.int64)


def band_key_pieces(signatures: np.ndarray, config: DedupeConfig, parts: int) -> list[KeyPiece]:
    """Map: the `parts` pieces of one unit's band keys (signatures: (m, num_perm) uint32, one
    row per signed article in unit order)."""
    bands, rows = lsh_params(config.candidate_threshold, config.num_perm)
    m = signatures.shape[0]
    keys = all_band_keys(signatures, bands, rows) if m else np.empty((bands, 0), np.uint64)
    owner = np.empty(keys.shape, np.int64)
    for b in range(bands):
        owner[b] = partition_of(keys[b], b, parts)
    pieces = []
    for p in range(parts):
        band, position = np.nonzero(owner == p)  # row-major: band by band, positions ascending
        piece = KeyPiece(band.astype(np.uint16), position.astype(np.uint32), keys[band, position])
        pieces.append(piece)
    return pieces


def part_candidates(
    table: tuple[np.ndarray, np.ndarray], full: int, links: int, *pieces: KeyPiece
) -> np.ndarray:
    """Reduce: the sorted distinct pair codes (`index.pair_codes`) of one part's buckets.
    `table` is (article index per unit position, -1 for none; each unit's first row in it);
    `pieces` are the part's pieces of every unit, in unit order."""
    index_of, unit_base = table
    bands: list[np.ndarray] = []
    keys: list[np.ndarray] = []
    articles: list[np.ndarray] = []
    for base, piece in zip(unit_base.tolist(), pieces):
        article = index_of[base + piece.position.astype(np.int64)]
        take = article >= 0
        bands.append(piece.band[take])
        keys.append(piece.key[take])
        articles.append(article[take])
    acc = PairSet()
    if not bands:
        return acc.codes()
    band = np.concatenate(bands)
    key = np.concatenate(keys)
    article = np.concatenate(articles)
    order = np.argsort(band, kind="stable")  # within a band: unit order, then position = add order
    band, key, article = band[order], key[order], article[order]
    cuts = np.flatnonzero(np.diff(band)) + 1
    for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), band.size]):
        i, j = bucket_pairs(key[lo:hi], article[lo:hi], full, links)
        acc.add(pair_codes(i, j))
    return acc.codes()


class KeyTable:
    """What the reducers need from the driver, gathered as it takes the units in order: per
    unit, the article index of each signed position (-1 when the article takes no part in
    buckets: its id was reused, or it has no shingles), and the unit's pieces (Ray refs in the
    engine), one per part. 8 bytes an article."""

    def __init__(self, parts: int) -> None:
        self.parts = parts
        self.rows: list[np.ndarray] = []
        self.pieces: list[list[Any]] = []

    def add_unit(self, first: int, accepted: np.ndarray, sizes: list[int], pieces: list[Any]) -> None:
        """One unit: its accepted positions (ascending) became articles first, first + 1, ...;
        `sizes` are the shingle counts of all its signed articles."""
        if not self.parts:
            return
        row = np.full(len(sizes), -1, np.int64)
        row[accepted] = np.arange(first, first + len(accepted), dtype=np.int64)
        row[~in_buckets(np.asarray(sizes, dtype=np.int64))] = -1
        self.rows.append(row)
        self.pieces.append(pieces)

    def table(self) -> tuple[np.ndarray, np.ndarray]:
        """(article index by table row, each unit's first row): `part_candidates`' table."""
        lengths = np.array([r.size for r in self.rows], np.int64)
        base = np.concatenate(([0], np.cumsum(lengths)[:-1])) if lengths.size else lengths
        rows = np.concatenate(self.rows) if self.rows else np.empty(0, np.int64)
        return rows, base.astype(np.int64)

    def pieces_of(self, part: int) -> list[Any]:
        return [unit[part] for unit in self.pieces]

    def release(self) -> None:
        self.rows = []
        self.pieces = []
