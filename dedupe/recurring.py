"""Corpus-level boilerplate: paragraphs that recur, verbatim or nearly, in many articles.

Outlet headers, footers, newsletter pitches and copyright lines repeat across an outlet's
articles, sometimes with a changing date or number.  They inflate the similarity of unrelated
articles from one outlet and hide the real overlap of copies from different outlets, so they are
dropped before shingling.  A paragraph is *recurring* when it, or a near-identical variant
(MinHash Jaccard of character 5-grams of the normalised text >= ``threshold``), occurs in at
least ``min_articles`` distinct articles of the learning sample.

``min_articles`` must exceed the size of the largest real near-duplicate cluster in the
sample, or the shared text of one story's copies is dropped as "boilerplate" and the copies can
no longer be matched (FINDINGS).  The default 10 is above the largest cluster of the evaluation
set (9) and above what a news dump usually repeats of one story, while an outlet template
recurs in hundreds of articles; raise it for corpora with heavy syndication.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import xxhash

from .config import DedupeConfig
from .index import band_keys, candidate_pairs, lsh_params
from .minhash import text_signatures
from .shingles import normalise_many


_SIGN_BATCH = 2048  # paragraphs signed per batch while observing
# Near-variant grouping (MinHash) is for furniture: headers, footers, prompts, captions, whose
# variants differ by a name or a date. Longer paragraphs are counted by their exact normalised
# text only (digits are already unified), which keeps observing cheap on body text: signing
# every body paragraph of the sample was ~80 us an article, most of the learning cost.
SIGN_MAX_CHARS = 400


def _key(norm: str) -> int:
    return xxhash.xxh64_intdigest(norm.encode("utf-8"))


def prepare_observation(paragraphs: Iterable[str]) -> list[tuple[int, int, str | None]]:
    """One article's distinct normalised paragraphs as (key, length, text when short enough to
    be signed for near-variant grouping, else None), in order. Pure: runs in worker processes."""
    seen: set[int] = set()
    out: list[tuple[int, int, str | None]] = []
    for norm in normalise_many(list(paragraphs)):
        if not norm:
            continue
        k = _key(norm)
        if k in seen:
            continue
        seen.add(k)
        out.append((k, len(norm), norm if len(norm) <= SIGN_MAX_CHARS else None))
    return out


class RecurringParagraphs:
    """Learns recurring paragraphs from a bounded sample (``observe`` per article, ``freeze``),
    then answers ``is_recurring`` for any paragraph.

    Memory is bounded by ``max_distinct`` distinct normalised paragraphs (a 64-bit key, a count
    and a ``num_perm`` x 4 byte signature each); once full, only already known paragraphs are
    still counted.  The count of a near-identical group is the sum of its variants' article
    counts (an article holding two variants of one footer counts twice; rare and harmless).
    """

    def __init__(
        self,
        min_articles: int = 20,
        threshold: float = 0.8,
        num_perm: int = 64,
        max_distinct: int = 200_000,
    ) -> None:
        if min_articles < 2:
            raise ValueError("min_articles must be >= 2")
        self.min_articles = min_articles
        self.threshold = threshold
        self.config = DedupeConfig(shingle="char", ngram=5, num_perm=num_perm)
        self.max_distinct = max_distinct
        self._slot: dict[int, int] = {}  # key -> slot
        self._counts: list[int] = []
        self._sigs: list[np.ndarray] = []  # blocks of rows, in slot order
        self._pending: list[str] = []  # normalised texts of slots not yet signed
        self._signed_slots: list[int] = []  # slot of each signature row, in row order
        self._lens: list[int] = []
        self._frozen = False
        self._recurring_keys: set[int] = set()
        self._band_index: list[dict[int, list[int]]] = []
        self._rec_sigs = np.empty((0, num_perm), np.uint32)
        self._len_range = (1, 0)

    # -- learning -----------------------------------------------------------------------------

    def observe(self, paragraphs: Iterable[str]) -> None:
        """Count one article's paragraphs (each distinct normalised paragraph once)."""
        self.observe_prepared(prepare_observation(paragraphs))

    def observe_prepared(self, prepared: list[tuple[int, int, str | None]]) -> None:
        """`observe` for an article already passed through `prepare_observation` (which worker
        processes can do: it is the costly, per-paragraph part)."""
        if self._frozen:
            raise RuntimeError("observe() after freeze()")
        slots = self._slot
        counts = self._counts
        for k, length, norm in prepared:
            slot = slots.get(k)
            if slot is not None:
                counts[slot] += 1
            elif len(slots) < self.max_distinct:
                # signatures are computed later in batches (``_flush``): far less overhead
                slots[k] = len(counts)
                if norm is not None:
                    self._signed_slots.append(len(counts))
                    self._pending.append(norm)
                counts.append(1)
                self._lens.append(length)
        if len(self._pending) >= _SIGN_BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._sigs.append(text_signatures(self._pending, self.config))
            self._pending = []

    def freeze(self) -> None:
        """Group near-identical variants and fix the set of recurring paragraphs."""
        if self._frozen:
            return
        self._flush()
        self._frozen = True
        n = len(self._counts)
        if n == 0:
            return
        counts = np.asarray(self._counts, dtype=np.int64)
        num_perm = self.config.num_perm
        sigs = np.concatenate(self._sigs) if self._sigs else np.empty((0, num_perm), np.uint32)
        signed = np.asarray(self._signed_slots, dtype=np.int64)
        lens = np.asarray(self._lens, dtype=np.int64)
        parent = np.arange(n)
        bands, rows = lsh_params(self.threshold, num_perm)
        pairs = (
            candidate_pairs([band_keys(sigs, b, rows) for b in range(bands)], max_bucket=64)
            if sigs.shape[0] > 1
            else np.empty((0, 2), np.int64)
        )
        if pairs.size:
            sim = np.count_nonzero(sigs[pairs[:, 0]] == sigs[pairs[:, 1]], axis=1)
            pairs = signed[pairs[sim >= self.threshold * num_perm]]  # signature rows -> slots

            def find(x: int) -> int:
                while parent[x] != x:
                    parent[x] = parent[parent[x]]
                    x = parent[x]
                return x

            for a, b in pairs.tolist():  # sorted: deterministic
                ra, rb = find(a), find(b)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
            roots = np.array([find(x) for x in range(n)])
        else:
            roots = parent
        group_count = np.bincount(roots, weights=counts, minlength=n)
        rec = group_count[roots] >= self.min_articles
        slot_to_key = np.empty(n, dtype=np.uint64)
        for k, s in self._slot.items():
            slot_to_key[s] = k
        self._recurring_keys = set(slot_to_key[rec].tolist())
        rec_rows = rec[signed] if signed.size else np.zeros(0, dtype=bool)
        self._rec_sigs = sigs[rec_rows]
        if self._rec_sigs.shape[0]:
            rec_lens = lens[signed[rec_rows]]
            self._len_range = (int(rec_lens.min()), int(rec_lens.max()))
            self._band_index = []
            for b in range(bands):
                table: dict[int, list[int]] = {}
                for r, key in enumerate(band_keys(self._rec_sigs, b, rows).tolist()):
                    table.setdefault(key, []).append(r)
                self._band_index.append(table)
        self._bands_rows = (bands, rows)
        # learning state is no longer needed
        self._slot, self._counts, self._sigs, self._lens, self._signed_slots = {}, [], [], [], []

    # -- queries ------------------------------------------------------------------------------

    @property
    def recurring_count(self) -> int:
        """Number of distinct normalised paragraphs learned as recurring."""
        return len(self._recurring_keys)

    def is_recurring(self, paragraph: str) -> bool:
        """True when the paragraph (or a near-identical variant) recurs in the sample."""
        return self.recurring_mask([paragraph])[0]

    def recurring_mask(self, paragraphs: list[str]) -> list[bool]:
        """``is_recurring`` for each paragraph of a list (one article), in one numpy batch."""
        if not self._frozen:
            raise RuntimeError("is_recurring() before freeze()")
        out = [False] * len(paragraphs)
        if not self._recurring_keys:
            return out
        lo, hi = self._len_range
        t = self.threshold
        todo: list[int] = []
        norms: list[str] = []
        for i, norm in enumerate(normalise_many(paragraphs)):
            if not norm:
                continue
            if _key(norm) in self._recurring_keys:
                out[i] = True
            elif lo * t <= len(norm) and len(norm) * t <= hi:
                # Jaccard >= t between strings needs a length ratio of at least about t
                todo.append(i)
                norms.append(norm)
        if not todo:
            return out
        sigs = text_signatures(norms, self.config)
        bands, rows = self._bands_rows
        keys = [band_keys(sigs, b, rows).tolist() for b in range(bands)]
        need = self.threshold * self.config.num_perm
        for k, i in enumerate(todo):
            cand: set[int] = set()
            for b in range(bands):
                hit = self._band_index[b].get(keys[b][k])
                if hit:
                    cand.update(hit)
            if cand:
                rows_ = np.fromiter(sorted(cand), dtype=np.int64, count=len(cand))
                sim = np.count_nonzero(self._rec_sigs[rows_] == sigs[k], axis=1)
                out[i] = bool((sim >= need).any())
        return out
