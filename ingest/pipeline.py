"""The ingest pipeline: read → parse → clean → dedupe → write.

Three streaming passes, so memory is bounded by the near-duplicate index, not the input:

1. read and clean every record (worker processes) and spill the cleaned articles to a
   temporary file; the first `recurring_sample` articles also teach the corpus-level
   recurring-paragraph detector;
2. re-read the spill, drop recurring paragraphs, shingle and sign (worker processes), and add
   each signature to the near-duplicate finder (parent, in input order);
3. decide clusters, then stream the spill once more and write the corpus, the duplicates
   record and the rejects record.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from dedupe.clusters import NearDuplicateFinder
from dedupe.config import DedupeConfig
from dedupe.recurring import RecurringParagraphs
from ingest.clean import (
    EMPTY_AFTER_CLEANING,
    CleanSettings,
    Signed,
    article_from_spill,
    article_to_spill,
    finish_and_sign_chunk,
    parse_and_clean_chunk,
)
from ingest.parallel import chunked, map_chunks
from ingest.readers import ReaderOptions, read_source
from ingest.records import Article, RawRecord, Reject
from ingest.rules import load_rules
from ingest.sources import Source
from ingest.writers import AtomicOutput

CHUNK = 128
KEEP_POLICIES = ("first", "longest", "earliest-date")
# Outcomes of cleaning, not faults of the input: --on-error fail does not stop on these.
NOT_ERRORS = frozenset({EMPTY_AFTER_CLEANING})

ProgressFn = Callable[[str, int], None]


class BadInput(Exception):
    """--on-error fail met a bad record; the message names the file and record."""


class AccountingError(Exception):
    """read != kept + duplicates + rejected: a bug, reported loudly rather than shipped."""


@dataclass(frozen=True)
class IngestOptions:
    reader: ReaderOptions = field(default_factory=ReaderOptions)
    rules_files: tuple[str, ...] = ()
    boilerplate: bool = True
    collapse_paragraphs: bool = True
    recurring: bool = True
    recurring_min_articles: int = 20
    recurring_sample: int = 20_000
    near_duplicates: bool = True
    dedupe: DedupeConfig = field(default_factory=DedupeConfig)
    keep: str = "first"
    workers: int = 1
    on_error: str = "skip"
    explain_ids: frozenset[str] = frozenset()
    tmp_dir: str | None = None


@dataclass(frozen=True)
class Outputs:
    corpus: str | None = "-"  # None: clusters-only mode writes no corpus
    duplicates: str | None = None
    rejects: str | None = None
    clusters: str | None = None


@dataclass
class Summary:
    counts: dict[str, int]
    rejected_by_reason: dict[str, int]
    removed: dict[str, int]
    paragraphs_collapsed: int
    clusters: int
    inputs: list[str]
    seconds: float
    options: dict[str, Any]
    explained: list[Article]

    def to_report(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "rejected_by_reason": self.rejected_by_reason,
            "paragraphs_collapsed": self.paragraphs_collapsed,
            "removed": self.removed,
            "clusters": self.clusters,
            "inputs": self.inputs,
            "seconds": round(self.seconds, 3),
            "options": self.options,
        }


def _options_for_report(options: IngestOptions) -> dict[str, Any]:
    reader = options.reader
    return {
        "delimiter": reader.delimiter.pattern if reader.delimiter else None,
        "text_field": reader.text_field,
        "id_field": reader.id_field,
        "max_record_bytes": reader.max_record_bytes,
        "rules": list(options.rules_files),
        "boilerplate": options.boilerplate,
        "collapse_paragraphs": options.collapse_paragraphs,
        "recurring": options.recurring,
        "recurring_min_articles": options.recurring_min_articles,
        "recurring_sample": options.recurring_sample,
        "near_duplicates": options.near_duplicates,
        "dedupe": asdict(options.dedupe),
        "keep": options.keep,
        "on_error": options.on_error,
    }


class _Rejects:
    """Counts every reject and writes it when the user asked for a rejects file."""

    def __init__(self, path: str | None, on_error: str) -> None:
        self.out = AtomicOutput(path) if path else None
        self.on_error = on_error
        self.by_reason: Counter[str] = Counter()

    def add(self, reject: Reject) -> None:
        if self.on_error == "fail" and reject.reason not in NOT_ERRORS:
            where = f"record {reject.record}" if reject.record else "input"
            if reject.offset is not None and reject.record:
                where += f" (byte {reject.offset})"
            raise BadInput(f"{reject.file}: {where}: {reject.reason}: {reject.detail}")
        self.by_reason[reject.reason] += 1
        if self.out is not None:
            self.out.write(reject.to_json())

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())


def _read_all(sources: Iterable[Source], reader: ReaderOptions, counter: Counter[str]) -> Iterator[RawRecord | Reject]:
    for source in sources:
        for item in read_source(source, reader):
            counter["read"] += 1
            yield item


def run_ingest(
    sources: list[Source],
    options: IngestOptions,
    outputs: Outputs,
    progress: ProgressFn = lambda stage, n: None,
) -> Summary:
    started = time.perf_counter()
    counter: Counter[str] = Counter()
    rejects = _Rejects(outputs.rejects, options.on_error)
    corpus = AtomicOutput(outputs.corpus) if outputs.corpus else None
    duplicates = AtomicOutput(outputs.duplicates) if outputs.duplicates else None
    clusters_out = AtomicOutput(outputs.clusters) if outputs.clusters else None
    sinks = [s for s in (rejects.out, corpus, duplicates, clusters_out) if s is not None]
    spill_dir = tempfile.TemporaryDirectory(prefix="thresher-", dir=options.tmp_dir)
    try:
        summary = _run(sources, options, counter, rejects, corpus, duplicates, clusters_out,
                       spill_dir.name, progress)
        summary.seconds = time.perf_counter() - started
        for sink in sinks:
            sink.commit()
        return summary
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    finally:
        spill_dir.cleanup()


def _run(
    sources: list[Source],
    options: IngestOptions,
    counter: Counter[str],
    rejects: _Rejects,
    corpus: AtomicOutput | None,
    duplicates: AtomicOutput | None,
    clusters_out: AtomicOutput | None,
    spill_dir: str,
    progress: ProgressFn,
) -> Summary:
    settings = CleanSettings(
        rules=load_rules(options.rules_files),
        boilerplate=options.boilerplate,
        collapse_paragraphs=options.collapse_paragraphs,
        keep_removed_lines=bool(options.explain_ids),
    )
    detector = (
        RecurringParagraphs(min_articles=options.recurring_min_articles)
        if options.recurring and options.boilerplate
        else None
    )

    # Pass 1: read, parse, clean; spill; learn recurring paragraphs from a bounded sample.
    spill1 = os.path.join(spill_dir, "cleaned.jsonl")
    seen_ids: set[str] = set()
    observed = 0
    with open(spill1, "wb", buffering=1 << 20) as spill:
        records = chunked(_read_all(sources, options.reader, counter), CHUNK)
        for results in map_chunks(parse_and_clean_chunk, records, workers=options.workers,
                                  context={"clean": settings}):
            for item in results:
                if isinstance(item, Reject):
                    rejects.add(item)
                    continue
                if item.id in seen_ids:
                    meta = item.meta
                    rejects.add(Reject(str(meta["file"]), int(meta["record"]), None, "duplicate_id",  # type: ignore[call-overload]
                                       f"id {item.id!r} was already used by an earlier record",
                                       item.text, item.id))
                    continue
                seen_ids.add(item.id)
                if detector is not None and observed < options.recurring_sample:
                    detector.observe(item.paragraphs)
                    observed += 1
                spill.write(article_to_spill(item))
                spill.write(b"\n")
            progress("clean", len(results))
    del seen_ids
    if detector is not None:
        detector.freeze()

    # Pass 2: drop recurring paragraphs, shingle and sign; index in input order.
    spill2 = os.path.join(spill_dir, "final.jsonl")
    finder = NearDuplicateFinder(options.dedupe) if options.near_duplicates else None
    context = {"recurring": detector, "dedupe": options.dedupe if finder is not None else None}
    with open(spill1, "rb") as src, open(spill2, "wb", buffering=1 << 20) as dst:
        for results in map_chunks(finish_and_sign_chunk, chunked(src, CHUNK), workers=options.workers,
                                  context=context):
            for item in results:
                if isinstance(item, Reject):
                    rejects.add(item)
                    continue
                if finder is not None:
                    _add(finder, item)
                dst.write(item.line)
                dst.write(b"\n")
            progress("dedupe", len(results))
    os.unlink(spill1)

    # Pass 3: clusters decided; write everything in input order.
    result = finder.finish(options.keep) if finder is not None else None
    dup_members: dict[int, list[int]] = {}
    if result is not None:
        for link in result.links.values():
            dup_members.setdefault(link.kept, []).append(link.index)
    kept_ids: dict[int, str] = {}
    # First sweep: learn the ids of kept articles that have duplicates (needed by the dropped
    # ones, which may come before their kept copy under --keep longest/earliest-date).
    needed = set(dup_members)
    member_ids: dict[int, str] = {}
    if needed:
        wanted = needed | {i for members in dup_members.values() for i in members}
        with open(spill2, "rb") as src:
            for index, line in enumerate(src):
                if index in wanted:
                    member_ids[index] = orjson.loads(line)[0]
        kept_ids = {i: member_ids[i] for i in needed}

    removed_total: Counter[str] = Counter()
    explained: list[Article] = []
    clusters_count = 0
    with open(spill2, "rb") as src:
        for index, line in enumerate(src):
            article = article_from_spill(line)
            removed_total.update(article.removed)
            if article.id in options.explain_ids:
                explained.append(article)
            link = result.link(index) if result is not None else None
            cluster = kept_ids[link.kept] if link is not None else article.id
            if link is None:
                clusters_count += 1
            if clusters_out is not None:
                clusters_out.write({"id": article.id, "cluster": cluster})
            if link is not None:
                counter["duplicates"] += 1
                if duplicates is not None:
                    duplicates.write({
                        "id": article.id,
                        "duplicate_of": cluster,
                        "similarity": round(link.similarity, 4),
                        "containment": round(link.containment, 4),
                        "cluster": cluster,
                        "cluster_size": link.cluster_size,
                        "file": article.meta.get("file"),
                        "record": article.meta.get("record"),
                    })
                continue
            counter["kept"] += 1
            if corpus is not None:
                corpus.write({
                    "id": article.id,
                    "title": article.title,
                    "date": article.date,
                    "source": article.source,
                    "text": article.text,
                    "duplicates": [member_ids[i] for i in dup_members.get(index, ())],
                    "removed": article.removed,
                    "meta": article.meta,
                })
            progress("write", 1)

    counts = {
        "read": counter["read"],
        "kept": counter["kept"],
        "duplicates": counter["duplicates"],
        "rejected": rejects.total,
    }
    if counts["read"] != counts["kept"] + counts["duplicates"] + counts["rejected"]:
        raise AccountingError(f"accounting does not hold: {counts}")
    return Summary(
        counts=counts,
        rejected_by_reason=dict(sorted(rejects.by_reason.items())),
        removed=dict(sorted(removed_total.items())),
        paragraphs_collapsed=removed_total.get("repeated_paragraph", 0),
        clusters=clusters_count,
        inputs=[s.name for s in sources],
        seconds=0.0,
        options=_options_for_report(options),
        explained=explained,
    )


def _add(finder: NearDuplicateFinder, item: Signed) -> None:
    finder.add(item.signature, item.shingles, length=item.length, date=item.date)
