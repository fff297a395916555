"""The ingest pipeline on Ray: same inputs, same options, same outputs as `ingest.pipeline`.

`run_ingest_ray` gives the same kept ids, duplicates, clusters, rejects and report counts as
`run_ingest`, and a byte-identical corpus. The plan (Ray tasks; every result is consumed in
*unit order*, so nothing depends on which task finishes first):

0. plan (driver): the inputs become ordered *units*. A big uncompressed JSONL file is cut into
   byte ranges at line boundaries; one task per range counts its records, so every range knows
   the record number it starts at (record numbers and fallback ids `STEM:N` stay global).
   Other inputs (text dumps, CSV/TSV, compressed files, folders of .txt files, grouped) are one
   unit per file or group: a text dump's records may straddle any byte range, so it is read
   whole by one task. stdin is read by the driver.
1a. recurring sample: units are read and cleaned by tasks (`clean_record`); the driver feeds the
   paragraphs of the first ceil(recurring_sample / CHUNK) * CHUNK records to
   `RecurringParagraphs` in input order, exactly as the local engine does, and freezes it.
   The cleaned units stay in Ray's object store.
1b. sign + map: every unit is (read and cleaned, unless sampled) recurring-dropped, shingled and
   signed by a task (`sign_chunk`). A task returns the small per-article facts (id, file,
   record, signature, sizes, date, removals), the pre-encoded corpus lines, and its band keys
   split into PARTITIONS pieces by a hash of (band, key) (`ray_shuffle.band_key_pieces`); lines
   and pieces stay in the object store. The driver takes the facts in unit order: rejects,
   duplicate ids, `NearDuplicateFinder.add` -- the same finder as the local engine -- and
   notes which unit position became which article (`ray_shuffle.KeyTable`).
2a. candidates (the shuffle's reduce): one task per part gets that part's piece of every unit
   (Ray moves the objects) and the driver's table, and runs `dedupe.index.bucket_pairs` -- the
   local engine's own candidate rule -- on its buckets; the driver gathers the parts' pair
   codes (8 bytes a candidate pair) and merges them. A bucket never spans two parts, so the
   candidates, and everything after, do not depend on the number of parts.
2b. verify + cluster: `finder.finish(keep, candidates)` in the driver, as the local engine.
3. write: the duplicates and cluster records are written by the driver (they need no text);
   corpus lines are assembled per unit by tasks (with each kept article's `duplicates`) and
   either streamed by the driver into the single `-o` file, or written by the tasks as
   `part-00000.jsonl`, ... when `-o` is a folder (ends with `/` or exists as a folder; on a
   cluster it must be a filesystem every node sees). Concatenated parts equal the single file.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from dedupe.clusters import NearDuplicateFinder
from dedupe.config import DedupeConfig
from dedupe.index import lsh_params, unique_sorted
from dedupe.recurring import RecurringParagraphs
from ingest import parallel
from ingest.clean import Signed, clean_and_prepare_chunk, sign_chunk
from ingest.pipeline import (
    CHUNK,
    IngestOptions,
    OpenedOutputs,
    Outputs,
    ProgressFn,
    Summary,
    _Rejects,
    _RunIndex,
    accept,
    decide_clusters,
    duplicate_record,
    run_setup,
    summarise,
)
from ingest.ranges import LineRange, range_records, splittable
from ingest.readers import ReaderOptions, _stem, read_source
from ingest.ray_shuffle import KeyTable, band_key_pieces, part_candidates
from ingest.records import Article, RawRecord, Reject
from ingest.sources import Source
from ingest.writers import TMP_MARKER, AtomicOutput, OutputError

INSTALL_HINT = "ray is not installed: pip install 'thresher[ray]'"
SPLIT_MIN_BYTES = 4 << 20  # JSONL files smaller than this are one unit
RANGE_MIN_BYTES = 1 << 20
RANGE_MAX_BYTES = 64 << 20
GROUP_BYTES = 8 << 20  # small files (folders of .txt) are grouped into units of about this size
GROUP_FILES = 512
PART_RE = re.compile(r"^part-\d{5}\.jsonl$")
# Parts of the candidate shuffle (reduce tasks); None: `shuffle_parts` decides. The result does
# not depend on it (a bucket never spans two parts).
PARTITIONS: int | None = None
# Ray returns objects under 100 KB inline to the caller: map pieces that small would all pass
# through the driver. Pieces are sized to stay above this, assuming articles of at most
# ARTICLE_BYTES of input (shorter ones only make the pieces larger).
PIECE_MIN_BYTES = 128 << 10
ARTICLE_BYTES = 8 << 10
ENTRY_BYTES = 14  # a map entry: band (2 bytes), position (4), key (8)


def shuffle_parts(cpus: int, input_bytes: int, units: int, config: DedupeConfig) -> int:
    """Parts of the candidate shuffle: one per CPU, but no more than keep each unit's map pieces
    above PIECE_MIN_BYTES (so they go through Ray's object store, not the driver); at least 1."""
    if PARTITIONS:
        return PARTITIONS
    bands, _ = lsh_params(config.candidate_threshold, config.num_perm)
    piece_bytes = input_bytes / max(units, 1) / ARTICLE_BYTES * bands * ENTRY_BYTES
    return max(1, min(cpus, int(piece_bytes // PIECE_MIN_BYTES)))


@dataclass
class RaySummary(Summary):
    """The local engine's summary, plus how the Ray run went: its report has everything the
    local report has and a "ray" key (parts of the shuffle, candidate pairs, seconds per stage)."""

    ray: dict[str, Any] = field(default_factory=dict)

    def to_report(self) -> dict[str, Any]:
        return super().to_report() | {"ray": self.ray}


class RayNotInstalled(Exception):
    """`--engine ray` without the optional dependency; the message says how to install it."""

    def __init__(self) -> None:
        super().__init__(INSTALL_HINT)


def require_ray() -> Any:
    """The `ray` module, or RayNotInstalled (message: "ray is not installed: pip install 'thresher[ray]'")."""
    try:
        import ray
    except ImportError as exc:
        raise RayNotInstalled() from exc
    return ray


# -- units ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    """A slice of the input, in input order: a JSONL byte range, whole sources, or records the
    driver already read (stdin)."""

    kind: str  # "range" | "sources" | "records"
    sources: tuple[Source, ...] = ()
    start: int = 0
    end: int = 0
    first_number: int = 0  # records before this range in its file
    count: int = 0  # records in this range
    records: tuple[RawRecord | Reject, ...] = ()


def _unit_items(unit: Unit, reader: ReaderOptions) -> Iterator[RawRecord | Reject]:
    if unit.kind == "range":
        # the local engine's byte-range reader (ingest/ranges.py), which checks the count too
        source, fds = unit.sources[0], {}
        rng = LineRange(source.name, str(source.path), _stem(source.name), unit.start, unit.end,
                        unit.first_number, unit.count)
        try:
            yield from range_records(rng, reader, fds)
        finally:
            for fd in fds.values():
                os.close(fd)
    elif unit.kind == "sources":
        for source in unit.sources:
            yield from read_source(source, reader)
    else:
        yield from unit.records


def _range_lines(path: Path, start: int, end: int) -> Iterator[bytes]:
    with open(path, "rb", buffering=1 << 20) as fh:
        fh.seek(start)
        pos = start
        while pos < end:
            raw = fh.readline()
            if not raw:
                return
            pos += len(raw)
            yield raw


def _count_records(path: str, start: int, end: int) -> int:
    return sum(1 for raw in _range_lines(Path(path), start, end) if raw.strip())


def _splittable(source: Source) -> bool:
    """A plain JSONL file (`ranges.splittable`) large enough to be worth several units."""
    if not splittable(source):
        return False
    try:
        return source.path.stat().st_size >= SPLIT_MIN_BYTES  # type: ignore[union-attr]
    except OSError:
        return False  # read_source reports it


def _boundaries(path: Path, size: int, step: int) -> list[int]:
    cuts = [0]
    with open(path, "rb") as fh:
        pos = step
        while pos < size:
            fh.seek(pos)
            fh.readline()  # to the end of the line holding `pos`
            cut = fh.tell()
            if cut >= size:
                break
            if cut > cuts[-1]:
                cuts.append(cut)
            pos = cut + step
    cuts.append(size)
    return cuts


# -- task bodies (run in Ray workers; plain functions, so they are testable without Ray) -------


def _install(context: dict[str, Any]) -> None:
    parallel._set_context(context)


def clean_unit(unit: Unit, context: dict[str, Any]) -> tuple[list[Article | Reject], list[Any]]:
    """Read and clean one unit; also each article's prepared recurring-detector observation
    (the same worker-side preparation as the local engine's)."""
    _install(context)
    return clean_and_prepare_chunk(list(_unit_items(unit, context["reader"])))


def sign_items(items: list[Any], context: dict[str, Any], detector: RecurringParagraphs | None,
               parts: int = 0) -> tuple[Any, ...]:
    """`sign_chunk` over a unit's items: (facts, corpus lines, *key pieces). The corpus lines
    (head + tail, framed) are split off so the driver never has to fetch them; with `parts`
    the unit's band keys are mapped into that many shuffle pieces (`ray_shuffle`) here, while
    its signatures are at hand."""
    _install(context)
    out: list[Signed | Reject] = []
    lines: list[bytes] = []
    signatures: list[Any] = []
    for lo in range(0, len(items), CHUNK):
        for item in sign_chunk(items[lo:lo + CHUNK], detector):
            if isinstance(item, Signed):
                lines.append(item.head)
                lines.append(item.tail)
                item.line = b""
                signatures.append(item.signature)
            out.append(item)
    if not parts:
        return out, lines
    config = context["dedupe"]
    block = np.stack(signatures) if signatures else np.empty((0, config.num_perm), np.uint32)
    return (out, lines, *band_key_pieces(block, config, parts))


def read_sign_unit(unit: Unit, context: dict[str, Any], detector: RecurringParagraphs | None,
                   parts: int = 0) -> tuple[Any, ...]:
    _install(context)
    return sign_items(list(_unit_items(unit, context["reader"])), context, detector, parts)


def assemble(lines: list[bytes], picks: list[tuple[int, bytes]], path: str | None) -> bytes | int:
    """The corpus lines of one unit's kept articles: (position, encoded duplicates) each.
    Returns the bytes, or writes them to `path` and returns how many lines it wrote."""
    blob = b"".join(
        b"".join((lines[2 * k], b',"duplicates":', dups, b",", lines[2 * k + 1], b"\n")) for k, dups in picks
    )
    if path is None:
        return blob
    with open(path, "wb") as fh:
        fh.write(blob)
        fh.flush()
        os.fsync(fh.fileno())
    return len(picks)


# -- the driver -------------------------------------------------------------------------------


class _Remote:
    """The task bodies as Ray remote functions (made once ray is imported)."""

    def __init__(self, ray: Any) -> None:
        self.count = ray.remote(_count_records)
        self.clean = ray.remote(num_returns=2)(clean_unit)
        self.sign = ray.remote(num_returns=2)(sign_items)
        self.read_sign = ray.remote(num_returns=2)(read_sign_unit)
        self.candidates = ray.remote(part_candidates)
        self.assemble = ray.remote(assemble)


@dataclass
class _Shards:
    """`-o FOLDER/`: part files written by tasks under temporary names, renamed on commit."""

    folder: Path
    tmp: list[Path] = field(default_factory=list)
    final: list[Path] = field(default_factory=list)

    def next_path(self) -> str:
        name = f"part-{len(self.final):05d}.jsonl"
        self.final.append(self.folder / name)
        self.tmp.append(self.folder / f".{name}{TMP_MARKER}{os.getpid()}")
        return str(self.tmp[-1])

    def commit(self) -> None:
        for tmp, final in zip(self.tmp, self.final):
            os.replace(tmp, final)
        self.tmp = []

    def abort(self) -> None:
        for tmp in self.tmp:
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass
        self.tmp = []


def is_folder_target(path: str | None) -> bool:
    return bool(path) and path != "-" and (path.endswith(("/", os.sep)) or Path(path).is_dir())  # type: ignore[union-attr]


def _open_shards(path: str) -> _Shards:
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    stale = sorted(p.name for p in folder.iterdir() if PART_RE.match(p.name))
    if stale:
        raise OutputError(f"{path}: already holds {stale[0]} (and maybe more parts); give an empty folder")
    return _Shards(folder)


def run_ingest_ray(
    sources: list[Source],
    options: IngestOptions,
    outputs: Outputs,
    progress: ProgressFn = lambda stage, n: None,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
) -> Summary:
    """`ingest.pipeline.run_ingest` on Ray: the same outputs. `address`: an existing cluster
    (e.g. "ray://head:10001" or "auto"); None starts a local Ray on this machine (`num_cpus`
    CPUs, default all), unless Ray is already initialised in this process."""
    ray = require_ray()
    if options.index is not None:
        raise ValueError("--index is not supported with --engine ray yet; use the local engine")
    started = time.perf_counter()
    owns_ray = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "configure_logging": False}
        if address is None:
            kwargs["num_cpus"] = num_cpus
        ray.init(address=address, **kwargs)
        owns_ray = True
    ray_start = time.perf_counter() - started
    opened = OpenedOutputs()
    shards: _Shards | None = None

    try:
        with opened.aborting_on_error():
            rejects = _Rejects(opened.open(outputs.rejects), options.on_error)
            if is_folder_target(outputs.corpus):
                shards = _open_shards(outputs.corpus)  # type: ignore[arg-type]
                corpus = None
            else:
                corpus = opened.open(outputs.corpus)
            duplicates = opened.open(outputs.duplicates)
            clusters_out = opened.open(outputs.clusters)
        try:
            engine = _RayRun(ray, sources, options, progress)
            summary = engine.run(rejects, corpus, shards, duplicates, clusters_out)
            opened.commit()
            if shards is not None:
                shards.commit()
        except BaseException:
            opened.abort()
            if shards is not None:
                shards.abort()
            raise
        summary.seconds = time.perf_counter() - started
        summary.ray = {
            "partitions": engine.partitions,
            "candidate_pairs": engine.candidate_pairs,
            "stages": {"ray_start": round(ray_start, 3), **engine.stages},  # seconds
        }
        return summary
    finally:
        if owns_ray:
            ray.shutdown()


def _unwrap(ray: Any, refs: Any) -> Any:
    """ray.get, raising the task's own exception (InputError, BadInput, ...) rather than Ray's
    wrapper, so the CLI's one-line messages and exit codes stay the same."""
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, Exception):
            raise cause from None
        raise


@dataclass(frozen=True)
class _Accepted:
    """A unit's accepted articles: their positions among its signed articles (= its corpus
    lines), and the index of the first (the others follow it: indices are given in order).
    4 bytes an article, where a list of (position, index) tuples took about 100."""

    first: int
    positions: np.ndarray  # int32

    def pairs(self) -> Iterator[tuple[int, int]]:
        return zip(self.positions.tolist(), range(self.first, self.first + self.positions.size))


class _RayRun:
    def __init__(self, ray: Any, sources: list[Source], options: IngestOptions, progress: ProgressFn) -> None:
        self.ray = ray
        self.sources = sources
        self.options = options
        self.progress = progress
        self.remote = _Remote(ray)
        self.cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.window = 3 * self.cpus  # tasks in flight
        self.partitions = 0  # decided once the plan is known
        self.input_bytes = 0
        self.candidate_pairs = 0
        self.stages: dict[str, float] = {}

    def _stage(self, name: str, since: float) -> float:
        now = time.perf_counter()
        self.stages[name] = round(self.stages.get(name, 0.0) + now - since, 3)
        return now

    def _candidates(self, shuffle: KeyTable, finder: NearDuplicateFinder) -> np.ndarray:
        """Every LSH candidate pair's code, sorted and distinct: the reduce tasks' pairs (one
        task per part, handed every unit's piece of it), gathered and merged here."""
        ray = self.ray
        full, links = finder.bucket_policy()
        table_ref = ray.put(shuffle.table())
        refs = [self.remote.candidates.remote(table_ref, full, links, *shuffle.pieces_of(p))
                for p in range(shuffle.parts)]
        shuffle.release()  # the pieces' objects are freed as the reducers finish
        found = _unwrap(ray, refs)
        return unique_sorted(np.concatenate(found)) if found else np.empty(0, np.uint64)

    # -- plan ---------------------------------------------------------------------------------

    def plan(self) -> list[Unit]:
        ray, units = self.ray, []
        total = sum(s.path.stat().st_size for s in self.sources if s.path is not None and s.path.is_file())
        self.input_bytes = total
        step = min(RANGE_MAX_BYTES, max(RANGE_MIN_BYTES, total // (4 * self.cpus) + 1))
        counting: list[tuple[int, Source, list[int], list[Any]]] = []
        group: list[Source] = []
        group_bytes = 0

        def flush() -> None:
            nonlocal group, group_bytes
            if group:
                units.append(Unit("sources", tuple(group)))
            group, group_bytes = [], 0

        for source in self.sources:
            if source.path is None:
                flush()
                items = list(read_source(source, self.options.reader))  # stdin: only the driver sees it
                for lo in range(0, len(items), 4 * CHUNK):
                    units.append(Unit("records", records=tuple(items[lo:lo + 4 * CHUNK])))
                continue
            if _splittable(source):
                flush()
                size = source.path.stat().st_size
                cuts = _boundaries(source.path, size, step)
                refs = [self.remote.count.remote(str(source.path), a, b) for a, b in zip(cuts, cuts[1:])]
                counting.append((len(units), source, cuts, refs))
                units.append(Unit("sources", (source,)))  # placeholder, replaced below
                continue
            try:
                size = source.path.stat().st_size
            except OSError:
                size = 0
            if not source.single_article or group_bytes + size > GROUP_BYTES or len(group) >= GROUP_FILES:
                flush()
            group.append(source)
            group_bytes += size
            if not source.single_article:
                flush()
        flush()
        # replace each split file's placeholder by its ranges (last first: positions stay valid)
        for at, source, cuts, refs in reversed(counting):
            counts = _unwrap(ray, refs)
            if sum(counts) == 0:
                continue  # no record at all: the whole-file reader says so (empty_file)
            ranges, before = [], 0
            for (a, b), n in zip(zip(cuts, cuts[1:]), counts):
                if n:
                    ranges.append(Unit("range", (source,), a, b, before, n))
                before += n
            units[at:at + 1] = ranges
        return units

    # -- run ----------------------------------------------------------------------------------

    def run(self, rejects: _Rejects, corpus: AtomicOutput | None, shards: _Shards | None,
            duplicates: AtomicOutput | None, clusters_out: AtomicOutput | None) -> RaySummary:
        ray, options, remote = self.ray, self.options, self.remote
        t = time.perf_counter()
        learner, finder, context = run_setup(options)
        units = self.plan()
        self.partitions = shuffle_parts(self.cpus, self.input_bytes, len(units), options.dedupe)
        context_ref = ray.put(context)
        t = self._stage("plan", t)

        # 1a. recurring sample: the first ceil(sample / CHUNK) * CHUNK records, in input order.
        cleaned: dict[int, Any] = {}  # unit -> ref of its cleaned items
        detector = learner
        if detector is not None:
            want = -(-options.recurring_sample // CHUNK) * CHUNK
            seen = 0
            learning = 0.0
            pending: list[tuple[int, Any, Any]] = []
            nxt = 0
            while seen < want and (pending or nxt < len(units)):
                while nxt < len(units) and len(pending) < self.window:
                    items_ref, observe_ref = remote.clean.remote(units[nxt], context_ref)
                    pending.append((nxt, items_ref, observe_ref))
                    nxt += 1
                u, items_ref, observe_ref = pending.pop(0)
                cleaned[u] = items_ref
                observe = _unwrap(ray, observe_ref)
                w = time.perf_counter()
                detector.observe_many(p for p in observe[: want - seen] if p is not None)
                learning += time.perf_counter() - w
                seen += len(observe)
                self.progress("clean", len(observe))
            for u, items_ref, _ in pending:  # cleaned beyond the sample: used as they are
                cleaned[u] = items_ref
            w = time.perf_counter()
            detector.freeze()
            self.stages["sample_driver"] = round(learning + time.perf_counter() - w, 3)  # observe + freeze
        detector_ref = ray.put(detector)
        t = self._stage("sample", t)

        # 1b. sign every unit (and map its band keys); the driver takes the facts in unit order.
        parts = self.partitions if finder is not None else 0
        index = _RunIndex()
        seen_ids: set[str] = set()
        read = 0
        lines_refs: list[Any] = []
        accepted: list[_Accepted] = []
        shuffle = KeyTable(parts)
        wait = 0.0
        pending2: list[list[Any]] = []
        nxt = 0
        for _ in range(len(units)):
            while nxt < len(units) and len(pending2) < self.window:
                if nxt in cleaned:
                    refs = remote.sign.options(num_returns=2 + parts).remote(
                        cleaned.pop(nxt), context_ref, detector_ref, parts)
                else:
                    refs = remote.read_sign.options(num_returns=2 + parts).remote(
                        units[nxt], context_ref, detector_ref, parts)
                pending2.append(refs)
                nxt += 1
            facts_ref, lines_ref, *piece_refs = pending2.pop(0)
            w = time.perf_counter()
            facts = _unwrap(ray, facts_ref)
            wait += time.perf_counter() - w
            del facts_ref
            lines_refs.append(lines_ref)
            first = len(index.ids)
            positions: list[int] = []
            sizes: list[int] = []
            for item in facts:
                read += 1
                if isinstance(item, Reject):
                    rejects.add(item)
                    continue
                k = len(sizes)
                sizes.append(item.size)
                if accept(item, rejects, seen_ids, index, finder):
                    positions.append(k)
            mine = _Accepted(first, np.array(positions, np.int32))
            accepted.append(mine)
            shuffle.add_unit(mine.first, mine.positions, sizes, piece_refs)
            self.progress("dedupe", len(facts))
        del seen_ids
        self.stages["sign_wait"] = round(wait, 3)  # of "sign": the driver idle, waiting for workers
        t = self._stage("sign", t)

        # 2. candidates: one reduce task per part over every unit's piece of it
        candidates = self._candidates(shuffle, finder) if parts else None
        self.candidate_pairs = 0 if candidates is None else int(candidates.size)
        t = self._stage("candidates", t)
        # 3. verify and cluster in the driver, as the local engine does
        index_bytes, result, members = decide_clusters(finder, options.keep, candidates)
        del candidates
        t = self._stage("verify_cluster", t)

        # 4. write: records from the driver, corpus lines assembled by tasks per unit
        kept = dups = clusters_count = 0
        n = len(index.ids)
        for i in range(n):
            aid = index.ids[i]
            link = result.link(i) if result is not None else None
            cluster = index.ids[link.kept] if link is not None else aid
            if clusters_out is not None:
                clusters_out.write({"id": aid, "cluster": cluster})
            if link is not None:
                dups += 1
                if duplicates is not None:
                    duplicates.write(duplicate_record(index, i, cluster, link))
                continue
            clusters_count += 1
            kept += 1
        if corpus is not None or shards is not None:
            pending3: list[tuple[Any, int]] = []

            def drain(limit: int) -> None:
                while len(pending3) > limit:
                    ref, count = pending3.pop(0)
                    out = _unwrap(ray, ref)
                    if corpus is not None and out:
                        corpus.write_line(out[:-1])  # type: ignore[index]
                    self.progress("write", count)

            for mine, lines_ref in zip(accepted, lines_refs):
                picks = [(k, orjson.dumps([index.ids[j] for j in members.get(i, ())]))
                         for k, i in mine.pairs() if result is None or result.link(i) is None]
                if not picks:
                    continue
                path = shards.next_path() if shards is not None else None
                pending3.append((remote.assemble.remote(lines_ref, picks, path), len(picks)))
                drain(self.window)
            drain(0)
        self._stage("write", t)

        counts = {"read": read, "kept": kept, "duplicates": dups}
        return summarise(RaySummary, counts, rejects, index, clusters_count, self.sources, options, index_bytes)
