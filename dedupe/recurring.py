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
from dataclasses import dataclass

import numpy as np
import xxhash

from .config import DedupeConfig
from .index import band_keys, candidate_pairs, lsh_params, unique_sorted
from .minhash import text_signatures
from .shingles import normalise_many

# Near-variant grouping (MinHash) is for furniture: headers, footers, prompts, captions, whose
# variants differ by a name or a date. Longer paragraphs are counted by their exact normalised
# text only (digits are already unified), which keeps observing cheap on body text: signing
# every body paragraph of the sample was ~80 us an article, most of the learning cost.
SIGN_MAX_CHARS = 400


def _key(norm: str) -> int:
    return xxhash.xxh64_intdigest(norm.encode("utf-8"))


Observation = list[tuple[int, int, str | None]]  # (key, length, text to sign or None)


def prepare_observation(paragraphs: Iterable[str]) -> Observation:
    """One article's distinct normalised paragraphs as (key, length, text when short enough to
    be signed for near-variant grouping, else None), in order. Pure: runs in worker processes."""
    seen: set[int] = set()
    out: Observation = []
    for norm in normalise_many(list(paragraphs)):
        if not norm:
            continue
        k = _key(norm)
        if k in seen:
            continue
        seen.add(k)
        out.append((k, len(norm), norm if len(norm) <= SIGN_MAX_CHARS else None))
    return out


@dataclass
class PreparedChunk:
    """The observations of a chunk of articles, prepared (and signed) in a worker, in columns:
    every article's distinct paragraphs in order, and the signatures of the short ones."""

    keys: np.ndarray  # (n,) uint64
    lengths: np.ndarray  # (n,) int64
    signed: np.ndarray  # (m,) int64: the positions in `keys` whose signature is in `sigs`
    sigs: np.ndarray  # (m, num_perm) uint32


def prepare_chunk(articles: Iterable[Iterable[str]], config: DedupeConfig,
                  sent: set[int] | None = None) -> PreparedChunk:
    """`prepare_observation` for several articles, with the short paragraphs signed here, so
    that the signing and the per-paragraph bookkeeping of learning run in the worker processes
    and the parent only appends columns.

    ``sent``: keys this process already sent a signature for, left unsigned now. Only for a
    caller whose chunks reach the parent in input order and come to each process in increasing
    order (the local engine's pool): then the first chunk to hold a key is also the first its
    process saw it in, and carries the signature -- all the parent needs. Recurring paragraphs
    are by definition the ones seen again and again, so this saves most of the signing."""
    return signed_columns([prepare_observation(paragraphs) for paragraphs in articles], config, sent)


def signed_columns(observations: Iterable[Observation], config: DedupeConfig,
                   sent: set[int] | None = None) -> PreparedChunk:
    """Prepared observations of several articles (`prepare_observation`) as one `PreparedChunk`,
    their short paragraphs signed in one batch (``sent``: as in `prepare_chunk`)."""
    keys: list[int] = []
    lengths: list[int] = []
    signed: list[int] = []
    texts: list[str] = []
    for observation in observations:
        for k, length, norm in observation:
            if norm is not None and (sent is None or k not in sent):
                if sent is not None:
                    sent.add(k)
                signed.append(len(keys))
                texts.append(norm)
            keys.append(k)
            lengths.append(length)
    sigs = text_signatures(texts, config) if texts else np.empty((0, config.num_perm), np.uint32)
    return PreparedChunk(np.array(keys, dtype=np.uint64), np.array(lengths, dtype=np.int64),
                         np.array(signed, dtype=np.int64), sigs)


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
        # Learning state, in columns: what observations brought, not yet merged, and (after a
        # compaction) the distinct paragraphs so far in order of first appearance with their
        # counts. A paragraph gets a slot at its first appearance while fewer than
        # max_distinct have one; only paragraphs with a slot are counted.
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # keys, lengths, counts, sig row (-1: none)
        self._sig_blocks: list[np.ndarray] = []
        self._sig_rows = 0
        self._part_rows = 0
        self._frozen = False
        self._recurring_keys: set[int] = set()
        self._band_index: list[dict[int, list[int]]] = []
        self._rec_sigs = np.empty((0, num_perm), np.uint32)
        self._len_range = (1, 0)

    # -- learning -----------------------------------------------------------------------------

    def observe(self, paragraphs: Iterable[str]) -> None:
        """Count one article's paragraphs (each distinct normalised paragraph once)."""
        self.observe_many([prepare_observation(paragraphs)])

    def observe_many(self, prepared: Iterable[Observation]) -> None:
        """`observe` for articles already passed through `prepare_observation` (which worker
        processes can do: it is the costly, per-paragraph part), signed here in one batch."""
        self.observe_chunk(signed_columns(prepared, self.config))

    def observe_chunk(self, chunk: PreparedChunk) -> None:
        """Count the observations of a chunk of articles (`prepare_chunk`), in input order."""
        if self._frozen:
            raise RuntimeError("observe() after freeze()")
        n = chunk.keys.size
        rows = np.full(n, -1, dtype=np.int64)
        if chunk.signed.size:
            rows[chunk.signed] = np.arange(self._sig_rows, self._sig_rows + chunk.signed.size)
            self._sig_blocks.append(chunk.sigs)
            self._sig_rows += chunk.signed.size
        self._parts.append((chunk.keys, chunk.lengths, np.ones(n, dtype=np.int64), rows))
        self._part_rows += n
        if self._part_rows > 4 * self.max_distinct:
            self._compact()

    def _compact(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Merge the observations into the distinct paragraphs with a slot, in slot order
        (first appearance): keys, lengths, counts and signature rows. Exact: the first
        max_distinct distinct paragraphs get slots, as if they were counted one by one."""
        if not self._parts:
            return (np.empty(0, np.uint64), np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64))
        keys, lengths, counts, rows = (np.concatenate(col) for col in zip(*self._parts))
        uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        by_first = np.argsort(first, kind="stable")[: self.max_distinct]  # unique index, slot order
        slot_of_unique = np.full(uniq.size, -1, dtype=np.int64)
        slot_of_unique[by_first] = np.arange(by_first.size)
        slot = slot_of_unique[inverse.reshape(-1)]
        counted = slot >= 0
        slot_counts = np.bincount(slot[counted], weights=counts[counted], minlength=by_first.size).astype(np.int64)
        # a slot's signature: from any observation that carries one (all are equal)
        slot_rows = np.full(by_first.size, -1, dtype=np.int64)
        has = counted & (rows >= 0)
        slot_rows[slot[has]] = rows[has]
        # keep only the signatures still in use, renumbered
        used = slot_rows >= 0
        if self._sig_blocks:
            sigs = np.concatenate(self._sig_blocks)[slot_rows[used]]
            self._sig_blocks = [sigs]
            self._sig_rows = sigs.shape[0]
            slot_rows[used] = np.arange(sigs.shape[0])
        at = first[by_first]
        merged = (keys[at], lengths[at], slot_counts, slot_rows)
        self._parts = [merged]
        self._part_rows = by_first.size
        return merged

    def freeze(self) -> None:
        """Group near-identical variants and fix the set of recurring paragraphs."""
        if self._frozen:
            return
        self._frozen = True
        keys, lens, counts, slot_rows = self._compact()
        n = keys.size
        if n == 0:
            return
        num_perm = self.config.num_perm
        signed = np.flatnonzero(lens <= SIGN_MAX_CHARS)  # the slots signed for near-variant grouping
        if (slot_rows[signed] < 0).any():
            raise RuntimeError("a short paragraph was observed without its signature")
        all_sigs = np.concatenate(self._sig_blocks) if self._sig_blocks else np.empty((0, num_perm), np.uint32)
        sigs = all_sigs[slot_rows[signed]]
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
            roots = parent.copy()  # a slot in no pair is its own root: only the paired need finding
            for x in unique_sorted(pairs.ravel()).tolist():
                roots[x] = find(x)
        else:
            roots = parent
        group_count = np.bincount(roots, weights=counts, minlength=n)
        rec = group_count[roots] >= self.min_articles
        self._recurring_keys = set(keys[rec].tolist())
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
        self._parts, self._sig_blocks = [], []

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
