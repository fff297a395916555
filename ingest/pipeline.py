"""The ingest pipeline: read → parse → clean → dedupe → write.

Memory is bounded by the near-duplicate index, not the input:

1a. the first `recurring_sample` records are read and cleaned (worker processes) and held
    back while they teach the corpus-level recurring-paragraph detector (a bounded sample);
    with worker processes a few chunks past the sample are cleaned and held back too, so the
    workers are busy while the parent freezes the detector;
1b. then every article — the sample first, then the rest of the input — has its recurring
    paragraphs dropped, is shingled and signed (worker processes), and is added to the
    near-duplicate finder in input order (parent); its corpus line, pre-encoded, goes to a
    temporary spill file;
2.  clusters are decided, and the spill is streamed once into the corpus, the duplicates
    record and the clusters file. Rejects are written as they happen.
"""

from __future__ import annotations

import itertools
import os
import pickle
import tempfile
import time
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import orjson

from dedupe.clusters import Clusters, Link, NearDuplicateFinder
from dedupe.config import DedupeConfig
from dedupe.recurring import RecurringParagraphs
from ingest.clean import (
    EMPTY_AFTER_CLEANING,
    REPEATED,
    Chunk,
    CleanSettings,
    Signed,
    SignedChunk,
    clean_sample_chunk,
    sign_chunk_packed,
)
from ingest.index_errors import DEFAULT_WAIT
from ingest.parallel import Workers, tune_malloc, worker_context
from ingest.ranges import LineRange, TextRange, read_ranges
from ingest.readers import ReaderOptions
from ingest.records import Article, RawLine, RawRecord, Reject
from ingest.rules import LazyRules, RuleSet, check_rule_files, load_rules
from ingest.sources import Source
from ingest.spill import SpillAt, SpillReader, close_spills
from ingest.writers import AtomicOutput, BackgroundWriter

if TYPE_CHECKING:  # the index stores are imported only by runs that use one (--index)
    from ingest.incremental import Earlier, IndexRun

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
    index: str | None = None  # persistent index (SQLite path or redis:// URL), see ingest/incremental.py
    run_id: str | None = None  # this run's name in the index; default: UTC time + random suffix
    index_wait: float = DEFAULT_WAIT  # seconds to wait for another run's index lock


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
    index: dict[str, Any] | None = None  # IndexRun.report(): run id, matched, added
    index_bytes_per_article: float = 0.0  # the near-duplicate finder's memory, per article
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage of the run

    def to_report(self) -> dict[str, Any]:
        extra = {"index": self.index} if self.index is not None else {}
        return {
            "counts": self.counts,
            "rejected_by_reason": self.rejected_by_reason,
            "paragraphs_collapsed": self.paragraphs_collapsed,
            "removed": self.removed,
            "clusters": self.clusters,
            "inputs": self.inputs,
            "seconds": round(self.seconds, 3),
            "index_bytes_per_article": round(self.index_bytes_per_article, 1),
            "stages": {name: round(sec, 3) for name, sec in self.stages.items()},
            "options": self.options,
        } | extra


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

    def __init__(self, out: AtomicOutput | None, on_error: str) -> None:
        self.out = out
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


def _read_chunks(sources: Iterable[Source], reader: ReaderOptions, counter: Counter[str]) -> Iterator[Chunk]:
    """The input in chunks of up to CHUNK records, in order. JSONL is parsed in the workers
    (clean.sign_chunk), not here: a plain JSONL file or text dump goes out as byte ranges the
    workers read themselves (`ranges.LineRange`, `ranges.TextRange`), other inputs as lists of
    records and deferred lines."""
    pending: list[RawRecord | RawLine | Reject] = []
    for source in sources:
        for item in read_ranges(source, reader, CHUNK):
            if isinstance(item, (LineRange, TextRange)):
                if pending:
                    yield pending
                    pending = []
                counter["read"] += item.count
                yield item
                continue
            counter["read"] += 1
            pending.append(item)
            if len(pending) == CHUNK:
                yield pending
                pending = []
    if pending:
        yield pending


def _records_in(chunk: Chunk) -> int:
    return chunk.count if isinstance(chunk, (LineRange, TextRange)) else len(chunk)


def _head(chunks: Iterator[Chunk], records: int) -> Iterator[Chunk]:
    """The first chunks of `chunks`, until they hold at least `records` records."""
    taken = 0
    while taken < records:
        chunk = next(chunks, None)
        if chunk is None:
            return
        taken += _records_in(chunk)
        yield chunk


# Chunks per worker process cleaned past the sample while the parent freezes the detector
# (~70-100 ms; a chunk takes ~7 ms): its last results come back as it is done.
LOOKAHEAD = 8


class _SampleJobs:
    """The jobs of pass 1a: the chunks of the recurring sample (cleaned and observed), then up to
    `lookahead` more (only cleaned), each parked in a file of the run's temporary folder.
    ``sample_chunks``: how many chunks the sample had, known once they have all been handed out
    (before the last one's result comes back); -1 until then."""

    def __init__(self, chunks: Iterator[Chunk], sample: int, folder: str, lookahead: int) -> None:
        self.chunks, self.sample, self.folder, self.lookahead = chunks, sample, folder, lookahead
        self.sample_chunks = -1

    def __iter__(self) -> Iterator[tuple[str, Chunk, bool]]:
        count = 0
        for chunk in _head(self.chunks, self.sample):
            yield os.path.join(self.folder, f"sample-{count}.pickle"), chunk, True
            count += 1
        self.sample_chunks = count
        for chunk in itertools.islice(self.chunks, self.lookahead):
            yield os.path.join(self.folder, f"sample-{count}.pickle"), chunk, False
            count += 1


def run_ingest(
    sources: list[Source],
    options: IngestOptions,
    outputs: Outputs,
    progress: ProgressFn = lambda stage, n: None,
) -> Summary:
    started = time.perf_counter()
    tune_malloc()
    counter: Counter[str] = Counter()
    index_run = _open_index(options)  # before any output exists: a mismatch leaves nothing behind
    sinks = OpenedOutputs()
    with sinks.aborting_on_error():
        rejects = _Rejects(sinks.open(outputs.rejects), options.on_error)
        corpus = sinks.open(outputs.corpus)
        duplicates = sinks.open(outputs.duplicates)
        clusters_out = sinks.open(outputs.clusters)
    spill_dir = tempfile.TemporaryDirectory(prefix="thresher-", dir=options.tmp_dir)
    try:
        summary = _run(sources, options, counter, rejects, corpus, duplicates, clusters_out,
                       spill_dir.name, progress, index_run)
        sinks.commit()
        if index_run is not None:
            summary.index = index_run.commit()  # only now: the outputs are safely written
        summary.seconds = time.perf_counter() - started
        return summary
    except BaseException:
        sinks.abort()
        if index_run is not None:
            index_run.abort()
        raise
    finally:
        spill_dir.cleanup()
        if index_run is not None:
            index_run.close()


def _open_index(options: IngestOptions) -> IndexRun | None:
    """The run's index, checked (parameters, run id) before any input is read."""
    if options.index is None:
        return None
    if not options.near_duplicates:
        raise ValueError("--index needs near-duplicate detection; drop --no-dedupe")
    from ingest.incremental import IndexRun

    return IndexRun(options.index, options.run_id, options.dedupe, options.index_wait)


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
    index_run: IndexRun | None = None,
) -> Summary:
    detector, finder, context = run_setup(options)
    context["spill_dir"] = spill_dir  # where workers spill their finished lines (ingest/spill.py)
    records = _read_chunks(sources, options.reader, counter)
    seen_ids: set[str] = set()
    index = _RunIndex()
    stages: dict[str, float] = {}
    since = time.perf_counter()

    def stage(name: str) -> None:
        nonlocal since
        now = time.perf_counter()
        stages[name] = now - since
        since = now

    with Workers(options.workers, context) as workers:
        # Pass 1a: the first `recurring_sample` records teach the recurring-paragraph detector;
        # they wait, cleaned, in temporary files (one a chunk, written by the workers) until
        # it has learnt.
        sample_paths: list[str] = []
        if detector is not None:
            jobs = _SampleJobs(records, options.recurring_sample, spill_dir,
                               LOOKAHEAD * (options.workers - 1))
            for k, (path, prepared, size) in enumerate(workers.map(clean_sample_chunk, jobs, tail=jobs.lookahead)):
                if prepared is not None:
                    detector.observe_chunk(prepared)
                if k + 1 == jobs.sample_chunks:  # the last of the sample: learn now, the workers
                    detector.freeze()            # still cleaning the chunks just past it
                sample_paths.append(path)
                progress("clean", size)
            detector.freeze()  # (a sample that ended the input)
            stage("recurring_sample")
        detector_ref: RecurringParagraphs | str | None = detector
        if detector is not None and options.workers > 1:
            detector_ref = os.path.join(spill_dir, "recurring.pickle")
            with open(detector_ref, "wb") as fh:
                pickle.dump(detector, fh, protocol=pickle.HIGHEST_PROTOCOL)

        # Pass 1b: finish the sample, then clean + finish the rest; index in input order.
        def rest() -> Iterator[Chunk | str]:
            yield from sample_paths
            yield from records

        for packed in workers.map(sign_chunk_packed, rest(), detector_ref):
            accept_chunk(packed, rejects, seen_ids, index, finder)
            progress("dedupe", len(packed))
        close_spills(worker_context())  # the lines this process spilled itself (one worker)
        stage("clean_and_sign")
    del seen_ids

    # Pass 2: clusters decided; write everything in input order from the spill.
    index_bytes, result, members = decide_clusters(finder, options.keep, threads=options.workers)
    # Articles an earlier run already kept (the index's writer lock is held from here on).
    earlier = index_run.match(finder, result, index.ids) if index_run is not None and result is not None else {}
    stage("clusters")
    clusters_count = _write_outputs(index, result, members, earlier, counter, corpus,
                                    duplicates, clusters_out, progress)
    stage("write")

    counts = {"read": counter["read"], "kept": counter["kept"], "duplicates": counter["duplicates"]}
    return summarise(Summary, counts, rejects, index, clusters_count, sources, options, index_bytes,
                     stages=stages)


def _write_outputs(index: _RunIndex, result: Clusters | None, members: dict[int, list[int]],
                   earlier: dict[int, Earlier], counter: Counter[str], corpus: AtomicOutput | None,
                   duplicates: AtomicOutput | None, clusters_out: AtomicOutput | None,
                   progress: ProgressFn) -> int:
    """Pass 2: read the spilled chunks once, in input order, into the corpus (kept articles,
    their `duplicates` filled in), the duplicates record and the clusters file. Returns the
    number of clusters kept. This loop is serial, after all the workers: the corpus gets one
    `writev` a chunk, of runs of spilled lines as they were read (not joined first), and only
    the line of an article that has duplicates is spliced. The corpus blocks are written by a thread of
    their own (`writers.BackgroundWriter`), which overlaps the kernel's copy of one block with
    the splicing of the next: the worker processes are done by now, and a one-worker run left
    the other cores idle all along."""
    links = result.links if result is not None else {}
    ids = index.ids
    kept = 0
    i = 0  # accepted articles so far: the index of the next one
    # The articles a chunk's lines are not copied whole for (dropped, or with duplicates), in
    # order: a chunk of wholly accepted articles visits only those, not each article.
    special = sorted(links.keys() | members.keys()) if clusters_out is None and not earlier else None
    with ExitStack() as stack:
        spill = stack.enter_context(SpillReader())
        sink = stack.enter_context(BackgroundWriter(corpus)) if corpus is not None else None
        for at, bounds, splices, keep in index.chunks:
            view = memoryview(spill.read(at)) if corpus is not None else None
            if special is not None and keep is None:
                n = len(bounds) - 1
                lo_at, hi_at = bisect_left(special, i), bisect_left(special, i + n)
                pieces, dropped = _chunk_pieces(special[lo_at:hi_at], i, view, bounds, splices,
                                                links, members, ids)
                for d in dropped:
                    counter["duplicates"] += 1
                    if duplicates is not None:
                        link = links[d]
                        duplicates.write(duplicate_record(index, d, ids[link.kept], link))
                kept_here = n - len(dropped)
                i += n
            else:
                pieces = []
                run_lo = run_hi = -1  # the run of plain kept lines not yet in `pieces`
                kept_here = 0
                for k in range(len(bounds) - 1) if keep is None else keep:
                    aid = ids[i]
                    if i in earlier:
                        counter["duplicates"] += 1
                        in_run = links.get(i)
                        group = in_run.cluster_size if in_run is not None else len(members.get(i, ())) + 1
                        _write_earlier(i, earlier[i], index, clusters_out, duplicates, group)
                        i += 1
                        continue
                    link = links.get(i)
                    cluster = ids[link.kept] if link is not None else aid
                    if clusters_out is not None:
                        clusters_out.write({"id": aid, "cluster": cluster})
                    if link is not None:
                        counter["duplicates"] += 1
                        if duplicates is not None:
                            duplicates.write(duplicate_record(index, i, cluster, link))
                        i += 1
                        continue
                    kept_here += 1
                    if view is not None:
                        lo, hi = bounds[k], bounds[k + 1]
                        dups = members.get(i)
                        if dups is None and lo == run_hi:
                            run_hi = hi
                        else:
                            if run_hi > run_lo:
                                pieces.append(view[run_lo:run_hi])
                            if dups is None:
                                run_lo, run_hi = lo, hi
                            else:
                                cut = lo + splices[k]  # the line's `[]`
                                pieces += (view[lo:cut], orjson.dumps([ids[j] for j in dups]), view[cut + 2:hi])
                                run_lo = run_hi = -1
                    i += 1
                if view is not None and run_hi > run_lo:
                    pieces.append(view[run_lo:run_hi])
            if view is not None:
                sink.write_pieces(pieces, kept_here)  # type: ignore[union-attr, arg-type]
            kept += kept_here
            progress("write", kept_here)
    counter["kept"] += kept
    return kept


def _chunk_pieces(special: list[int], first: int, view: memoryview | None, bounds: array,
                  splices: array, links: dict[int, Link], members: dict[int, list[int]],
                  ids: list[str]) -> tuple[list[object], list[int]]:
    """One wholly accepted chunk's corpus bytes as pieces, and its dropped articles: ``special``
    holds (ascending) the chunk's articles that are dropped or have duplicates, ``first`` is
    the index of its first article. Runs of lines between them are copied whole."""
    pieces: list[object] = []
    dropped: list[int] = []
    start = 0  # the start of the run of lines not yet in `pieces`
    for i in special:
        k = i - first
        if i in links:
            dropped.append(i)
            if view is not None:
                if bounds[k] > start:
                    pieces.append(view[start:bounds[k]])
                start = bounds[k + 1]
        elif view is not None:
            cut = bounds[k] + splices[k]  # the line's `[]`
            pieces += (view[start:cut], orjson.dumps([ids[j] for j in members[i]]))
            start = cut + 2
    if view is not None and bounds[-1] > start:
        pieces.append(view[start:bounds[-1]])
    return pieces, dropped


S = TypeVar("S", bound="Summary")


def summarise(cls: type[S], counts: dict[str, int], rejects: _Rejects, index: _RunIndex, clusters: int,
              sources: list[Source], options: IngestOptions, index_bytes: float, **extra: Any) -> S:
    """The run's summary (shared by both engines), once every record read is accounted for:
    kept, a duplicate or rejected. ``extra``: fields of ``cls`` beyond Summary's own."""
    counts = counts | {"rejected": rejects.total}
    if counts["read"] != counts["kept"] + counts["duplicates"] + counts["rejected"]:
        raise AccountingError(f"accounting does not hold: {counts}")
    return cls(
        counts=counts,
        rejected_by_reason=dict(sorted(rejects.by_reason.items())),
        removed=dict(sorted(index.removed.items())),
        paragraphs_collapsed=index.removed.get(REPEATED, 0),
        clusters=clusters,
        inputs=[s.name for s in sources],
        seconds=0.0,
        options=_options_for_report(options),
        explained=index.explained,
        index_bytes_per_article=index_bytes,
        **extra,
    )


class OpenedOutputs:
    """The run's output files, opened one by one; all committed together or all thrown away."""

    def __init__(self) -> None:
        self.outputs: list[AtomicOutput] = []

    def open(self, path: str | None) -> AtomicOutput | None:
        if not path:
            return None
        out = AtomicOutput(path)
        self.outputs.append(out)
        return out

    @contextmanager
    def aborting_on_error(self) -> Iterator[None]:
        """If opening a later output fails, the earlier ones leave no temporary file behind."""
        try:
            yield
        except BaseException:
            self.abort()
            raise

    def commit(self) -> None:
        for out in self.outputs:
            out.commit()

    def abort(self) -> None:
        for out in self.outputs:
            out.abort()


def _rules(options: IngestOptions) -> RuleSet | LazyRules:
    """The run's boilerplate rules. Without stripping no rule runs: skip compiling the built-in
    ones, but still check the user's files, so a broken one is reported either way. With
    worker processes the parent only checks the user's files and hands the workers the recipe."""
    if not (options.boilerplate or options.rules_files):
        return RuleSet()
    if options.workers > 1:
        check_rule_files(options.rules_files)
        return LazyRules(options.rules_files)
    return load_rules(options.rules_files)


def run_setup(options: IngestOptions) -> tuple[RecurringParagraphs | None, NearDuplicateFinder | None, dict[str, Any]]:
    """What both engines build before reading: the recurring-paragraph detector (when it is to
    learn), the near-duplicate finder, and the context every worker gets."""
    settings = CleanSettings(
        rules=_rules(options),  # type: ignore[arg-type]
        boilerplate=options.boilerplate,
        collapse_paragraphs=options.collapse_paragraphs,
        keep_removed_lines=bool(options.explain_ids),
    )
    learn = options.recurring and options.boilerplate and options.recurring_sample > 0
    detector = RecurringParagraphs(min_articles=options.recurring_min_articles) if learn else None
    finder = NearDuplicateFinder(options.dedupe) if options.near_duplicates else None
    context = {
        "reader": options.reader,
        "clean": settings,
        "dedupe": options.dedupe if finder is not None else None,
        "recurring": detector.config if detector is not None else None,  # how samples are signed
        "explain": options.explain_ids,
    }
    return detector, finder, context


def _reused_id(file: str, record: int, aid: str) -> Reject:
    """The reject of a record whose id an earlier record already used (both engines)."""
    return Reject(file, record, None, "duplicate_id", f"id {aid!r} was already used by an earlier record", "", aid)


def accept(item: Signed | Reject, rejects: _Rejects, seen_ids: set[str], index: _RunIndex,
           finder: NearDuplicateFinder | None) -> bool:
    """Take one finished item in input order: a reject or a reused id goes to the rejects record;
    an article is remembered and added to the finder. True when it was accepted."""
    if isinstance(item, Reject):
        rejects.add(item)
        return False
    if item.id in seen_ids:
        rejects.add(_reused_id(item.file, item.record, item.id))
        return False
    seen_ids.add(item.id)
    index.add(item)
    if finder is not None:
        # The finder needs only the shingle count; range() carries it without memory.
        finder.add(item.signature, range(item.size), length=item.length, date=item.date)  # type: ignore[arg-type]
    return True


def accept_chunk(packed: SignedChunk, rejects: _Rejects, seen_ids: set[str], index: _RunIndex,
                 finder: NearDuplicateFinder | None) -> None:
    """`accept` for a packed chunk, in input order: rejects and reused ids go to the rejects
    record; the accepted articles are remembered (with where their lines were spilled) and
    added to the finder in one call. A chunk of fresh ids without rejects (nearly every
    chunk) takes the columns whole."""
    ids = packed.ids
    if not packed.rejects and seen_ids.isdisjoint(ids) and len(set(ids)) == len(ids):
        seen_ids.update(ids)
        keep: list[int] | None = None
    else:
        keep = []
        places = iter(packed.rejects)
        pending = next(places, None)
        for k, aid in enumerate(ids + [None]):  # type: ignore[operator]
            while pending is not None and pending[0] == k:
                rejects.add(pending[1])
                pending = next(places, None)
            if aid is None:
                break
            if aid in seen_ids:
                rejects.add(_reused_id(packed.files[k], packed.records[k], aid))
                continue
            seen_ids.add(aid)
            keep.append(k)
    index.add_chunk(packed, keep)
    if finder is not None and packed.signatures is not None:
        rows = slice(None) if keep is None else keep
        finder.add_many(packed.signatures[rows], np.asarray(packed.sizes, np.int64)[rows],
                        np.asarray(packed.lengths, np.int64)[rows],
                        packed.dates if keep is None else [packed.dates[k] for k in keep])


def decide_clusters(finder: NearDuplicateFinder | None, keep: str, candidates: Any = None,
                    threads: int = 1) -> tuple[float, Clusters | None, dict[int, list[int]]]:
    """Finish the near-duplicate finder (shared by both engines): the index's bytes per article
    (measured before `finish`), the clusters, and each kept article's dropped members in order.
    `candidates`: the LSH candidate pair codes when the Ray engine's shuffle found them.
    `threads`: for the candidate search (the run's worker count: its workers are done by now)."""
    if finder is None:
        return 0.0, None, {}
    index_bytes = finder.nbytes() / len(finder) if len(finder) else 0.0
    result = finder.finish(keep, candidates, threads)
    members: dict[int, list[int]] = {}
    for link in sorted(result.links.values(), key=lambda link: link.index):
        members.setdefault(link.kept, []).append(link.index)
    return index_bytes, result, members


def duplicate_record(index: _RunIndex, i: int, cluster: str, link: Link) -> dict[str, object]:
    """The duplicates-record line of dropped article `i`."""
    return {
        "id": index.ids[i],
        "duplicate_of": cluster,
        "similarity": round(link.similarity, 4),
        "containment": round(link.containment, 4),
        "cluster": cluster,
        "cluster_size": link.cluster_size,
        "file": index.file_of(i),
        "record": int(index.records[i]),
    }


def _write_earlier(i: int, earlier: Earlier, index: _RunIndex, clusters_out: AtomicOutput | None,
                   duplicates: AtomicOutput | None, group_size: int) -> None:
    """An article that duplicates one an earlier run kept: its cluster is named by that
    original, and the record says which run ingested it."""
    original = earlier.original
    if clusters_out is not None:
        clusters_out.write({"id": index.ids[i], "cluster": original.id})
    if duplicates is not None:
        duplicates.write({
            "id": index.ids[i],
            "duplicate_of": original.id,
            "duplicate_of_run": original.run,
            "via": original.via,  # the indexed article that verified (the original or its duplicate)
            **earlier.merged_fields(),  # the other clusters' originals it merged, if any
            "similarity": round(earlier.similarity, 4),
            "containment": round(earlier.containment, 4),
            "cluster": original.id,
            "cluster_size": group_size,  # this run's articles in the cluster
            "file": index.file_of(i),
            "record": int(index.records[i]),
        })


class _RunIndex:
    """What the parent remembers per article between the passes: its id, where it came from,
    and the run's removal totals. A few dozen bytes an article; the text stays in the spill."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.files: list[str] = []
        self.file_idx = array("I")
        self.records = array("Q")
        self.removed: Counter[str] = Counter()
        self.explained: list[Article] = []
        # per accepted chunk: where its lines are, their bounds and `[]` places, which were accepted
        self.chunks: list[tuple[SpillAt, array, array, list[int] | None]] = []

    def add(self, item: Signed) -> None:
        self.ids.append(item.id)
        if not self.files or self.files[-1] != item.file:
            self.files.append(item.file)
        self.file_idx.append(len(self.files) - 1)
        self.records.append(item.record)
        self.removed.update(item.removed)
        if item.explained is not None:
            self.explained.append(item.explained)

    def add_chunk(self, packed: SignedChunk, keep: list[int] | None) -> None:
        """`add` for the articles ``keep`` of a packed chunk (all of them when None)."""
        rows = range(len(packed.ids)) if keep is None else keep
        if packed.spill is not None and rows:
            self.chunks.append((packed.spill, array("I", packed.bounds), array("I", packed.splices), keep))
        files, removed = packed.files, self.removed
        if keep is None and files and files[0] == files[-1] and files.count(files[0]) == len(files):
            # one file (nearly every chunk): the columns whole
            if not self.files or self.files[-1] != files[0]:
                self.files.append(files[0])
            self.ids.extend(packed.ids)
            self.file_idx.extend([len(self.files) - 1] * len(files))
            self.records.extend(packed.records)
            for counts in packed.removed:
                if counts:
                    removed.update(counts)
            self.explained.extend(packed.explained[k] for k in sorted(packed.explained))
            return
        for k in rows:
            self.ids.append(packed.ids[k])
            if not self.files or self.files[-1] != files[k]:
                self.files.append(files[k])
            self.file_idx.append(len(self.files) - 1)
            self.records.append(packed.records[k])
            if packed.removed[k]:
                removed.update(packed.removed[k])
            if k in packed.explained:
                self.explained.append(packed.explained[k])

    def file_of(self, i: int) -> str:
        return self.files[self.file_idx[i]]
