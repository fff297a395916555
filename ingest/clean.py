"""Per-article stages that run in worker processes.

`clean_record`: raw record → paragraphs → boilerplate stripped → repeats collapsed.
`sign_chunk`: corpus-recurring paragraphs dropped → shingles and MinHash signature, and the
article's corpus line pre-encoded. Both are pure functions of their input and the worker
context, so any worker count gives the same results.
"""

from __future__ import annotations

import os
import pickle
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import orjson

from dedupe.config import DedupeConfig
from dedupe.minhash import shingle_signatures
from dedupe.paragraphs import collapse_repeated_paragraphs
from dedupe.recurring import PreparedChunk, RecurringParagraphs, prepare_chunk, prepare_observation
from ingest.parallel import worker_context
from ingest.parse import find_date, find_source, normalise_date
from ingest.ranges import LineRange, TextRange, range_records, text_range_records
from ingest.readers import ReaderOptions, parse_raw_line
from ingest.records import Article, RawLine, RawRecord, Reject
from ingest.rules import LazyRules, RuleSet
from ingest.segment import split_paragraphs
from ingest.spill import NO_DUPLICATES, SPLICE, SpillAt, append_lines
from ingest.strip import strip_boilerplate

REPEATED = "repeated_paragraph"
RECURRING = "recurring"
EMPTY_AFTER_CLEANING = "empty_after_cleaning"


@dataclass(frozen=True)
class CleanSettings:
    rules: RuleSet | LazyRules  # a recipe only in a run's context, until `context_settings`
    boilerplate: bool = True
    collapse_paragraphs: bool = True
    paragraph_threshold: float = 0.8
    keep_removed_lines: bool = False


def clean_record(raw: RawRecord, settings: CleanSettings) -> Article | Reject:
    fields = raw.fields
    rid = str(fields["id"])
    if not raw.text or raw.text.isspace():  # (no stripped copy of the whole text)
        return Reject(raw.file, raw.record, raw.offset, "empty_article", "the record has no text", raw.text, rid)
    paragraphs = split_paragraphs(raw.text)
    url = fields.get("url") or None
    given_title = fields.get("title") or None
    removed_lines: list[tuple[str, str]] = []
    tags: list[str] = []
    title = given_title
    if settings.boilerplate:
        stripped = strip_boilerplate(paragraphs, settings.rules, title=given_title, url=url)  # type: ignore[arg-type]
        body = stripped.paragraphs
        title = stripped.title or given_title
        removed_lines = list(stripped.removed)
        tags = stripped.tags
    else:
        body = paragraphs
    date, source = _date_and_source(fields, _header(paragraphs, body), body, url)
    if settings.collapse_paragraphs and len(body) > 1:
        body, dropped = collapse_repeated_paragraphs(body, settings.paragraph_threshold)
        removed_lines.extend((REPEATED, "") for _ in dropped)
    removed = Counter(reason for reason, _ in removed_lines) if removed_lines else {}
    meta = _meta(raw, url, tags)
    if not body:
        return Reject(raw.file, raw.record, raw.offset, EMPTY_AFTER_CLEANING,
                      "every paragraph was boilerplate", raw.text, rid)
    return Article(
        rid, title, date, source, body,  # type: ignore[arg-type]
        dict(sorted(removed.items())) if removed else {},
        [(r, t) for r, t in removed_lines if t] if settings.keep_removed_lines else [],
        meta,
    )


def _date_and_source(fields: dict[str, object], header: list[str], body: list[str],
                     url: str | None) -> tuple[str | None, str | None]:
    """The publication date and the outlet: the record's own fields, else what the article's
    head names (`header`: the paragraphs above the body)."""
    given_date = fields.get("date")
    date = normalise_date(str(given_date)) if given_date else find_date(header, body[0] if body else None)
    head = header + body[:3]  # datelines open the body, sometimes under a standfirst
    source = fields.get("source") or find_source(head, url)
    return date, source  # type: ignore[return-value]


def _meta(raw: RawRecord, url: str | None, tags: list[str]) -> dict[str, object]:
    """The corpus line's ``meta``: the URL and tags, where the record came from, the input's
    other fields."""
    fields = raw.fields
    meta: dict[str, object] = {}
    if url:
        meta["url"] = url
    if tags:
        meta["tags"] = tags
    meta["file"] = raw.file
    meta["record"] = raw.record
    if "encoding_errors" in fields:
        meta["encoding_errors"] = fields["encoding_errors"]
    if "extra" in fields:
        # Input fields ride along, but never overwrite where the record came from.
        for key, value in fields["extra"].items():  # type: ignore[attr-defined]
            meta.setdefault(key, value)
    return meta


def _header(paragraphs: list[str], body: list[str]) -> list[str]:
    """The paragraphs above the first body paragraph: where dates and outlets are named."""
    if not body:
        return paragraphs
    try:
        return paragraphs[: paragraphs.index(body[0])]
    except ValueError:
        return paragraphs[:1]


def _cleaned(item: RawRecord | RawLine | Reject, settings: CleanSettings,
             reader: ReaderOptions | None) -> Article | Reject:
    if isinstance(item, RawLine):
        item = parse_raw_line(item, reader)  # type: ignore[arg-type]
    return item if isinstance(item, Reject) else clean_record(item, settings)


Chunk = list[RawRecord | RawLine | Reject] | LineRange | TextRange  # what the reader hands the workers


def chunk_items(chunk: Chunk, ctx: dict[str, Any]) -> Iterable[RawRecord | RawLine | Reject]:
    """The records of a chunk: its list, or a JSONL or text-dump byte range read here in the
    worker."""
    if isinstance(chunk, LineRange):
        return range_records(chunk, ctx["reader"], ctx.setdefault("_range_fds", {}))
    if isinstance(chunk, TextRange):
        return text_range_records(chunk, ctx["reader"], ctx.setdefault("_range_fds", {}))
    return chunk


def context_settings(ctx: dict[str, Any]) -> CleanSettings:
    """The worker context's clean settings, their rules built (once a process) when the
    context holds only the recipe (`rules.LazyRules`)."""
    settings: CleanSettings = ctx["clean"]
    if isinstance(settings.rules, LazyRules):
        settings = ctx["clean"] = replace(settings, rules=settings.rules.build())
    return settings


def clean_chunk(chunk: Chunk) -> list[Article | Reject]:
    """Pass-1 work for one chunk: parse deferred lines, clean every record (rejects pass through)."""
    ctx = worker_context()
    settings = context_settings(ctx)
    reader: ReaderOptions | None = ctx.get("reader")
    return [_cleaned(item, settings, reader) for item in chunk_items(chunk, ctx)]


def clean_and_prepare_chunk(chunk: Chunk) -> tuple[list[Article | Reject], list[Any]]:
    """`clean_chunk` for the recurring sample, plus each article's prepared observation, so the
    parent only merges counts (learning the sample is otherwise serial work in the parent)."""
    cleaned = clean_chunk(chunk)
    return cleaned, [prepare_observation(a.paragraphs) if isinstance(a, Article) else None for a in cleaned]


def clean_sample_chunk(job: tuple[str, Chunk, bool]) -> tuple[str, PreparedChunk | None, int]:
    """The local engine's recurring sample, one chunk: cleaned, its observations prepared and
    signed (`dedupe.recurring.prepare_chunk`). The cleaned chunk waits in the file ``job[0]``
    (written here, in the worker) for pass 2, and only that path and the observations go back
    to the parent. Sending the articles to the parent and spilling them there, and signing
    and counting paragraph by paragraph there, was most of the parent's serial work while the
    sample was learnt. ``job[2]`` False: a chunk just past the sample, only cleaned and parked
    the same way (no observations), which keeps the workers busy while the parent freezes the
    detector."""
    path, chunk, learn = job
    ctx = worker_context()
    cleaned = clean_chunk(chunk)
    # The pool hands each process its chunks in input order: a signature goes once a process.
    prepared = prepare_chunk((a.paragraphs for a in cleaned if isinstance(a, Article)), ctx["recurring"],
                             ctx.setdefault("_sent_signatures", set())) if learn else None
    with open(path, "wb") as fh:
        pickle.dump(cleaned, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return path, prepared, len(cleaned)


@dataclass
class Signed:
    """A finished article: its corpus line, written as if it had no duplicates (they are known
    only once every article has been seen), and what the near-duplicate index needs."""

    id: str
    file: str
    record: int
    line: bytes  # {"id":…,"title":…,"date":…,"source":…,"text":…,"duplicates":[],"removed":{…},"meta":{…}}\n
    splice: int  # where in `line` the `[]` of duplicates is
    signature: np.ndarray | None
    size: int  # shingles
    length: int  # characters of text
    date: str | None
    removed: dict[str, int]
    explained: Article | None = None  # kept only for --explain ids

    @property
    def head(self) -> bytes:
        """The line up to its duplicates: ``{"id":…,"text":…`` (no closing brace)."""
        return self.line[:self.splice - SPLICE]

    @property
    def tail(self) -> bytes:
        """The line after its duplicates: ``"removed":{…},"meta":{…}}`` (no newline)."""
        return self.line[self.splice + 3:-1]


def drop_recurring(article: Article, detector: RecurringParagraphs | None) -> Article:
    if detector is None:
        return article
    mask = detector.recurring_mask(article.paragraphs)
    if not any(mask):
        return article
    kept = [p for p, recurring in zip(article.paragraphs, mask) if not recurring]
    removed = dict(article.removed)
    removed[RECURRING] = removed.get(RECURRING, 0) + len(article.paragraphs) - len(kept)
    lines = article.removed_lines + [(RECURRING, p) for p, recurring in zip(article.paragraphs, mask) if recurring]
    return Article(article.id, article.title, article.date, article.source, kept,
                   dict(sorted(removed.items())), lines, article.meta)


def _encoded(article: Article, text: str) -> tuple[bytes, int]:
    """`_line` of a cleaned article (``text`` is ``article.text``, joined once by the caller)."""
    return _line(article.id, article.title, article.date, article.source, text, article.removed, article.meta)


def _line(aid: str, title: str | None, date: str | None, source: str | None, text: str,
          removed: dict[str, int], meta: dict[str, object]) -> tuple[bytes, int]:
    """An article's corpus line and where its ``[]`` of duplicates is. The line is encoded in
    one go, its newline included; cutting it in two and joining it again copied the text twice
    more. Its ``[]`` is the first ``,"duplicates":[]`` at or after byte ``len(text)``: the
    text's encoding is at least that long and ends before it, and the values before it (id,
    title, date, source, text) are JSON strings or null, in which a bare ``"`` cannot occur.
    (Finding it so, instead of encoding the small ``removed``/``meta`` part again to count back
    from the end, saved a second `orjson.dumps` an article.)"""
    line = orjson.dumps({"id": aid, "title": title, "date": date, "source": source, "text": text,
                         "duplicates": [], "removed": removed, "meta": meta}, option=orjson.OPT_APPEND_NEWLINE)
    return line, line.index(NO_DUPLICATES, len(text)) + SPLICE


def _finished(article: Article, explain: frozenset[str], text: str) -> Signed:
    """The article's Signed record; ``text`` is ``article.text`` (joined once by the caller)."""
    meta = article.meta
    line, splice = _encoded(article, text)
    return Signed(article.id, str(meta["file"]), int(meta["record"]), line, splice,  # type: ignore[call-overload]
                  None, 0, len(text), article.date, article.removed,
                  article if article.id in explain else None)


def _detector(ref: RecurringParagraphs | str | None, ctx: dict[str, Any]) -> RecurringParagraphs | None:
    """The frozen detector, given itself or as the path of its pickle. Sending the object with
    every chunk cost more CPU than the work it enabled; a path is read once per worker."""
    if not isinstance(ref, str):
        return ref
    cached = ctx.get("_detector")
    if cached is None or cached[0] != ref:
        with open(ref, "rb") as fh:
            cached = ctx["_detector"] = (ref, pickle.load(fh))
    return cached[1]


def sign_chunk(chunk: Chunk | list[Article] | str,
               detector: RecurringParagraphs | str | None) -> list[Signed | Reject]:
    """Pass-2 work for one chunk: clean what is still raw, drop corpus-recurring paragraphs,
    shingle and sign (batched over the chunk). `detector` may be the path of its pickle;
    `chunk` may be the path of a cleaned sample chunk (`clean_sample_chunk`), removed once read."""
    ctx = worker_context()
    explain: frozenset[str] = ctx.get("explain", frozenset())
    out: list[Signed | Reject] = []
    texts: list[str] = []
    for item in _finished_items(chunk, detector, ctx):
        if isinstance(item, Reject):
            out.append(item)
        else:
            out.append(_finished(item[0], explain, item[1]))
            texts.append(item[1])
    signed = _signatures(texts, ctx)
    if signed is not None:
        for item, size, sig in zip((s for s in out if isinstance(s, Signed)), *signed):
            item.size, item.signature = size, sig
    return out


def _signatures(texts: list[str], ctx: dict[str, Any]) -> tuple[list[int], np.ndarray] | None:
    """The shingle counts and (texts, num_perm) signatures of a chunk's texts; None without
    near-duplicate detection."""
    config: DedupeConfig | None = ctx.get("dedupe")
    if config is None:
        return None
    if not texts:
        return [], np.empty((0, config.num_perm), dtype=np.uint32)
    sizes, sigs = shingle_signatures(texts, config)
    return sizes.tolist(), sigs


def _finished_items(chunk: Chunk | list[Article] | str, detector: RecurringParagraphs | str | None,
                    ctx: dict[str, Any]) -> Iterator[tuple[Article, str] | Reject]:
    """A chunk's items in order, finished: each article cleaned (if still raw), its
    corpus-recurring paragraphs dropped, with its text joined; or a reject."""
    if isinstance(chunk, str):
        with open(chunk, "rb") as fh:
            loaded = pickle.load(fh)
        os.unlink(chunk)
        chunk = loaded
    detector = _detector(detector, ctx)
    settings = context_settings(ctx)
    reader: ReaderOptions | None = ctx.get("reader")
    for item in chunk_items(chunk, ctx):  # type: ignore[arg-type]
        if isinstance(item, (RawRecord, RawLine)):
            item = _cleaned(item, settings, reader)
        if isinstance(item, Reject):
            yield item
            continue
        finished = drop_recurring(item, detector)
        if not finished.paragraphs:
            meta = item.meta
            yield Reject(str(meta["file"]), int(meta["record"]), None, EMPTY_AFTER_CLEANING,  # type: ignore[call-overload]
                         "every paragraph was boilerplate recurring across the corpus", item.text, item.id)
            continue
        yield finished, finished.text


# What `sign_chunk_packed` makes a corpus line of: id, title, date, source, text, removed, meta,
# and the cleaned Article when there is one (for --explain); or a reject.
Finished = tuple[str, str | None, str | None, str | None, str, dict[str, int], dict[str, object], Article | None]


def _article_items(chunk: Chunk | str, detector: RecurringParagraphs | str | None,
                   ctx: dict[str, Any]) -> Iterator[Finished | Reject]:
    for item in _finished_items(chunk, detector, ctx):
        if isinstance(item, Reject):
            yield item
        else:
            a, text = item
            yield a.id, a.title, a.date, a.source, text, a.removed, a.meta, a


def _nothing_to_strip(ctx: dict[str, Any]) -> bool:
    """The run's cleaning only splits and joins paragraphs (what `_plain_items` needs)."""
    settings = context_settings(ctx)
    return not settings.boilerplate and not settings.collapse_paragraphs


def _plain_items(rng: LineRange, ctx: dict[str, Any]) -> Iterator[Finished | Reject]:
    """`_article_items` of a JSONL range whose cleaning only splits and joins paragraphs (no
    boilerplate stripping, no collapsing, no recurring detector, no --explain): each record's
    values as `clean_record` finds them (its own helpers: `_date_and_source`, `_meta`), with no
    Article, no recurring pass and one generator between. ~4% of a near-duplicate-only run's
    worker instructions (callgrind: ~245k -> ~235k an article). tests/test_plain_lane.py holds
    its items equal to `_article_items` ones."""
    settings = context_settings(ctx)
    for raw in range_records(rng, ctx["reader"], ctx.setdefault("_range_fds", {})):
        if isinstance(raw, Reject):
            yield raw
            continue
        body = split_paragraphs(raw.text) if raw.text and not raw.text.isspace() else None
        if not body:  # no text, or none left once normalised
            yield clean_record(raw, settings)  # (its reject)
            continue
        fields = raw.fields
        url = fields.get("url") or None
        date, source = _date_and_source(fields, [], body, url)  # (the header: above body[0], none)
        yield (str(fields["id"]), fields.get("title") or None, date, source,  # type: ignore[misc]
               "\n\n".join(body), {}, _meta(raw, url, []), None)


@dataclass
class SignedChunk:
    """A chunk's finished items packed for the trip to the parent: where the worker spilled the
    articles' corpus lines, their index facts in columns, the rejects with their places.
    Pickling a Signed object (and a numpy row) per article and taking them one by one was
    most of the parent's work per article, which is serial and limits worker scaling."""

    ids: list[str]
    files: list[str]
    records: list[int]
    dates: list[str | None]
    lengths: list[int]
    sizes: list[int]
    removed: list[dict[str, int]]
    signatures: np.ndarray | None  # (articles, num_perm); None without near-duplicate detection
    spill: SpillAt | None  # every article's corpus line, in order (None: no article); see ingest/spill.py
    bounds: list[int]  # article k's line is bytes [bounds[k], bounds[k + 1]) of the spilled blob
    splices: list[int]  # where in its line article k's `[]` of duplicates is
    rejects: list[tuple[int, Reject]]  # (articles before it in the chunk, the reject)
    explained: dict[int, Article]  # --explain ids: article position -> the cleaned article

    def __len__(self) -> int:
        return len(self.ids) + len(self.rejects)


def sign_chunk_packed(chunk: Chunk | str, detector: RecurringParagraphs | str | None) -> SignedChunk:
    """`sign_chunk`, packed as a `SignedChunk` for the local engine's parent (the columns built
    as the articles are finished, no `Signed` object each); the lines go to this process's
    spill file in the context's ``spill_dir``."""
    ctx = worker_context()
    explain: frozenset[str] = ctx.get("explain", frozenset())
    packed = SignedChunk([], [], [], [], [], [], [], None, None, [0], [], [], {})
    ids, files, records, dates, lengths = packed.ids, packed.files, packed.records, packed.dates, packed.lengths
    removed, bounds, splices = packed.removed, packed.bounds, packed.splices
    lines: list[bytes] = []
    texts: list[str] = []
    end = 0
    plain = isinstance(chunk, LineRange) and detector is None and not explain and _nothing_to_strip(ctx)
    for item in _plain_items(chunk, ctx) if plain else _article_items(chunk, detector, ctx):  # type: ignore[arg-type]
        if isinstance(item, Reject):
            packed.rejects.append((len(ids), item))
            continue
        aid, title, date, source, text, counts, meta, article = item
        if article is not None and aid in explain:
            packed.explained[len(ids)] = article
        line, splice = _line(aid, title, date, source, text, counts, meta)
        ids.append(aid)
        files.append(str(meta["file"]))
        records.append(int(meta["record"]))  # type: ignore[call-overload]
        dates.append(date)
        lengths.append(len(text))
        removed.append(counts)
        lines.append(line)
        splices.append(splice)
        end += len(line)
        bounds.append(end)
        texts.append(text)
    signed = _signatures(texts, ctx)
    if signed is not None:
        packed.sizes, packed.signatures = signed
    else:
        packed.sizes = [0] * len(ids)
    if lines:
        packed.spill = append_lines(ctx["spill_dir"], b"".join(lines), ctx)
    return packed
