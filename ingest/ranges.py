"""JSONL files read by the workers themselves, a byte range at a time.

The parent of a local run only finds where each range of `size` records starts and ends (a C
scan of 4 MB blocks, `_kernels.line_ends`; `_line_ends_py` is its reference) and sends the
worker those coordinates; the worker reads the bytes with `pread` and parses them exactly as
`readers._read_jsonl` would (same record numbers, offsets, blank-line rule and rejects). Sending every line through a pipe to a worker
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

from ingest.content import _kernels
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
        # One buffer for the whole file (a fresh 4 MB object a block, and the unfinished line
        # joined to the next block, cost the parent more than finding the lines): the
        # unfinished last line moves to its front and the next block is read in after it.
        buf = bytearray(_BLOCK)
        have = 0  # bytes of the unfinished line at the front of buf
        while True:
            if have == len(buf):  # one line longer than the buffer: double it
                buf += bytes(len(buf))
            try:
                with memoryview(buf) as view:
                    got = fh.readinto(view[have:])
            except READ_ERRORS as exc:
                if count:
                    yield LineRange(name, path, stem, start, pos, total, count)
                yield Reject(name, total + count + 1, pos, "corrupt_input",
                             f"input cannot be read from here on ({exc})", "")
                return
            n = have + got
            base = pos  # buf[0] is the file's byte `pos`
            ends, count, i = _line_ends(buf, n, size, not got, count)
            for end in ends:
                yield LineRange(name, path, stem, start, base + end, total, size)
                total += size
                start = base + end
            pos = base + i
            if not got:
                break
            buf[: n - i] = buf[i:n]
            have = n - i
    if count:
        yield LineRange(name, path, stem, start, pos, total, count)
    elif total == 0:
        yield Reject(name, 0, 0, "empty_file", "input holds only blank lines", "")


def _line_ends(buf: bytearray, n: int, size: int, final: bool, count: int) -> tuple[list[int], int, int]:
    """`_line_ends_py` of the first `n` bytes of `buf`, by the C kernel where it is built."""
    if _kernels is None:
        return _line_ends_py(bytes(buf[:n]), 0, size, final, count)
    with memoryview(buf) as view, view[:n] as data:
        return _kernels.line_ends(data, 0, size, final, count)  # type: ignore[no-any-return]


def _line_ends_py(data: bytes, i: int, size: int, final: bool, count: int) -> tuple[list[int], int, int]:
    """The lines of `data` from byte `i`: the bytes after which each range of `size` counted
    (not blank) records ends, starting with `count` already counted; the count after the
    last line; and the first byte of the unfinished last line (`final`: the data ends the
    file, and its last line needs no newline). The reference of `_kernels.line_ends`."""
    ends: list[int] = []
    n = len(data)
    while i < n:
        j = data.find(b"\n", i)
        if j < 0:
            if not final:
                break  # the line goes on in the next block
            j = n - 1
        # blank unless it starts with a non-blank byte (JSON lines start with "{")
        if data[i] not in _BLANK or data[i:j + 1].strip():
            count += 1
        i = j + 1
        if count == size:
            ends.append(i)
            count = 0
    return ends, count, i


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
