"""Per-article stages that run in worker processes.

`parse_and_clean` (pass 1): raw record → paragraphs → boilerplate stripped → repeats collapsed.
`finish_and_sign` (pass 2): corpus-recurring paragraphs dropped → shingles and MinHash signature.
Both are pure functions of their input and the worker context, so any worker count gives the
same results.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from dedupe.config import DedupeConfig
from dedupe.minhash import signatures
from dedupe.paragraphs import collapse_repeated_paragraphs
from dedupe.recurring import RecurringParagraphs
from dedupe.shingles import shingle_hashes_many
from ingest.parallel import worker_context
from ingest.parse import find_date, find_source, normalise_date
from ingest.records import Article, RawRecord, Reject
from ingest.rules import RuleSet
from ingest.segment import split_paragraphs
from ingest.strip import strip_boilerplate

REPEATED = "repeated_paragraph"
RECURRING = "recurring"
EMPTY_AFTER_CLEANING = "empty_after_cleaning"


@dataclass(frozen=True)
class CleanSettings:
    rules: RuleSet
    boilerplate: bool = True
    collapse_paragraphs: bool = True
    paragraph_threshold: float = 0.8
    keep_removed_lines: bool = False


def clean_record(raw: RawRecord, settings: CleanSettings) -> Article | Reject:
    fields = raw.fields
    rid = str(fields["id"])
    if not raw.text.strip():
        return Reject(raw.file, raw.record, raw.offset, "empty_article", "the record has no text", raw.text, rid)
    paragraphs = split_paragraphs(raw.text)
    url = fields.get("url") or None
    given_title = fields.get("title") or None
    given_date = fields.get("date")
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
    header = _header(paragraphs, body)
    date = normalise_date(str(given_date)) if given_date else find_date(header, body[0] if body else None)
    head = header + body[:3]  # datelines open the body, sometimes under a standfirst
    source = fields.get("source") or find_source(head, url)  # type: ignore[arg-type]
    if settings.collapse_paragraphs and len(body) > 1:
        body, dropped = collapse_repeated_paragraphs(body, settings.paragraph_threshold)
        removed_lines.extend((REPEATED, "") for _ in dropped)
    removed = Counter(reason for reason, _ in removed_lines)
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
        meta.update(fields["extra"])  # type: ignore[arg-type]
    if not body:
        return Reject(raw.file, raw.record, raw.offset, EMPTY_AFTER_CLEANING,
                      "every paragraph was boilerplate", raw.text, rid)
    return Article(
        id=rid,
        title=title,  # type: ignore[arg-type]
        date=date,
        source=source,  # type: ignore[arg-type]
        paragraphs=body,
        removed=dict(sorted(removed.items())),
        removed_lines=[(r, t) for r, t in removed_lines if t] if settings.keep_removed_lines else [],
        meta=meta,
    )


def _header(paragraphs: list[str], body: list[str]) -> list[str]:
    """The paragraphs above the first body paragraph: where dates and outlets are named."""
    if not body:
        return paragraphs
    try:
        return paragraphs[: paragraphs.index(body[0])]
    except ValueError:
        return paragraphs[:1]


def parse_and_clean_chunk(chunk: list[RawRecord | Reject]) -> list[Article | Reject]:
    settings: CleanSettings = worker_context()["clean"]
    return [item if isinstance(item, Reject) else clean_record(item, settings) for item in chunk]


def article_to_spill(article: Article) -> bytes:
    return orjson.dumps([article.id, article.title, article.date, article.source, article.paragraphs,
                         article.removed, article.removed_lines, article.meta])


def article_from_spill(line: bytes) -> Article:
    aid, title, date, source, paragraphs, removed, removed_lines, meta = orjson.loads(line)
    return Article(aid, title, date, source, paragraphs, removed, [tuple(x) for x in removed_lines], meta)


@dataclass
class Signed:
    """Pass-2 output for one article: its final spill line and what the index needs."""

    line: bytes
    shingles: np.ndarray
    signature: np.ndarray
    length: int
    date: str | None


def drop_recurring(article: Article, detector: RecurringParagraphs | None) -> Article:
    if detector is None:
        return article
    mask = detector.recurring_mask(article.paragraphs)
    if any(mask):
        kept = [p for p, recurring in zip(article.paragraphs, mask) if not recurring]
        removed = dict(article.removed)
        removed[RECURRING] = removed.get(RECURRING, 0) + len(article.paragraphs) - len(kept)
        lines = article.removed_lines + [(RECURRING, p) for p, recurring in zip(article.paragraphs, mask) if recurring]
        article = Article(article.id, article.title, article.date, article.source, kept,
                          dict(sorted(removed.items())), lines, article.meta)
    return article


def finish_and_sign_chunk(chunk: list[bytes]) -> list[Signed | Reject]:
    ctx: dict[str, Any] = worker_context()
    detector: RecurringParagraphs | None = ctx.get("recurring")
    config: DedupeConfig | None = ctx.get("dedupe")
    out: list[Signed | Reject] = []
    articles: list[Article] = []
    for line in chunk:
        article = drop_recurring(article_from_spill(line), detector)
        if not article.paragraphs:
            meta = article.meta
            out.append(Reject(str(meta["file"]), int(meta["record"]), None, EMPTY_AFTER_CLEANING,  # type: ignore[call-overload]
                              "every paragraph was boilerplate recurring across the corpus", "", article.id))
            continue
        articles.append(article)
        out.append(Signed(article_to_spill(article), np.empty(0, np.uint32), np.empty(0, np.uint32),
                          sum(len(p) for p in article.paragraphs), article.date))
    if config is not None and articles:
        shingle_sets = shingle_hashes_many([a.text for a in articles], config)
        sigs = signatures(shingle_sets, config)
        signed = (s for s in out if isinstance(s, Signed))
        for item, shingles, sig in zip(signed, shingle_sets, sigs):
            item.shingles = shingles
            item.signature = sig
    return out
