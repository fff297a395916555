"""JSONL files read by the workers themselves, a byte range at a time.

The parent of a local run only finds where each range of `size` records starts and ends (one
`find` per line over 4 MB blocks) and sends the worker those coordinates; the worker reads
the bytes with `pread` and parses them exactly as `readers._read_jsonl` would (same record
numbers, offsets, blank-line rule and rejects). Sending every line through a pipe to a worker
was most of the parent's serial work per article, and serial work is what stops a second
worker from doubling the speed.

Only plain (uncompressed) JSONL files are split; compressed files, stdin and the other
formats are read by `readers.read_source` as before. The Ray engine's tasks read their byte
ranges with `range_records` too (it plans the ranges itself, by bytes).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from ingest.readers import ReaderOptions, _looks_binary, _parse_line, _stem, read_source
from ingest.records import RawLine, RawRecord, Reject
from ingest.sources import MAGIC, READ_ERRORS, InputError, Source

_BLOCK = 4 << 20
_SNIFF = 8192
_BLANK = b" \t\n\r\x0b\x0c"  # what bytes.strip() removes: a line of only these is blank


@dataclass(frozen=True)
class LineRange:
    """Bytes [start, end) of a JSONL file: `count` records, numbered from `first_record` + 1."""

    file: str  # the name the user gave (meta.file, rejects)
    path: str
    stem: str  # for the ids of records without one
    start: int
    end: int
    first_record: int
    count: int


def splittable(source: Source) -> bool:
    """A plain JSONL file, not empty, not binary, not compressed: its ranges can be read apart."""
    if source.path is None or source.format != "jsonl" or source.single_article:
        return False
    try:
        # A regular file only: a pipe (`<(zcat dump.jsonl.gz)`) can be read once, and from the start.
        if not stat.S_ISREG(os.stat(source.path).st_mode):
            return False
        with open(source.path, "rb") as fh:
            head = fh.read(_SNIFF)
    except OSError:
        return False  # read_source reports it
    return bool(head) and not any(head.startswith(m) for m in MAGIC) and not _looks_binary(head)


def read_ranges(source: Source, options: ReaderOptions, size: int) -> Iterator[LineRange | RawLine | Reject]:
    """The records of one input, in order: `LineRange`s of `size` records for a splittable file
    (the last one may be shorter), else whatever `read_source` yields (deferred JSON lines)."""
    if not splittable(source):
        yield from read_source(source, options, defer_json=True)
        return
    path, name, stem = str(source.path), source.name, _stem(source.name)
    total = 0  # records before the current range
    start = pos = 0  # the current range's first byte; the next line's first byte
    count = 0
    try:
        fh = open(path, "rb", buffering=0)
    except OSError as exc:
        raise InputError(f"{name}: cannot open ({exc.strerror})") from exc
    with fh:
        carry = b""  # the unfinished last line of the previous block
        while True:
            try:
                block = fh.read(_BLOCK)
            except READ_ERRORS as exc:
                if count:
                    yield LineRange(name, path, stem, start, pos, total, count)
                yield Reject(name, total + count + 1, pos, "corrupt_input",
                             f"input cannot be read from here on ({exc})", "")
                return
            data = carry + block if carry else block
            base, i, n = pos, 0, len(data)  # data[0] is the file's byte `pos`
            while True:
                j = data.find(b"\n", i)
                if j < 0:
                    if block:
                        break  # the line goes on in the next block
                    j = n - 1  # the last line has no newline
                    if i > j:
                        break
                # blank unless it starts with a non-blank byte (JSON lines start with "{")
                if data[i] not in _BLANK or data[i:j + 1].strip():
                    count += 1
                i = j + 1
                if count == size:
                    yield LineRange(name, path, stem, start, base + i, total, count)
                    total += count
                    count = 0
                    start = base + i
            pos = base + i
            carry = data[i:] if block else b""
            if not block:
                break
    if count:
        yield LineRange(name, path, stem, start, pos, total, count)
    elif total == 0:
        yield Reject(name, 0, 0, "empty_file", "input holds only blank lines", "")


def range_records(rng: LineRange, options: ReaderOptions, files: dict[str, int]) -> Iterator[RawRecord | Reject]:
    """The records of one range, parsed (in a worker) as `readers._read_jsonl` parses them.
    `files`: the worker's open descriptors by path, reused from range to range."""
    fd = files.get(rng.path)
    if fd is None:
        fd = files[rng.path] = os.open(rng.path, os.O_RDONLY)
    data = os.pread(fd, rng.end - rng.start, rng.start)
    number, i, n = rng.first_record, 0, len(data)
    if n != rng.end - rng.start or (data[-1:] != b"\n" and os.fstat(fd).st_size != rng.end):
        raise InputError(f"{rng.file}: the file changed while it was read (bytes {rng.start}-{rng.end})")
    while i < n:
        j = data.find(b"\n", i)
        j = n if j < 0 else j + 1
        raw = data[i:j]
        if raw[0] in _BLANK and not raw.strip():
            i = j
            continue
        number += 1
        yield _parse_line(rng.file, raw, number, rng.start + i, rng.stem, options)
        i = j
    if number - rng.first_record != rng.count:
        raise InputError(f"{rng.file}: the file changed while it was read (records {rng.first_record + 1}-"
                         f"{rng.first_record + rng.count})")
