"""Plain JSONL files and text dumps read by the workers themselves, a byte range at a time.

The parent of a local run only finds where each range of `size` records starts and ends and
sends the worker those coordinates; the worker reads the bytes with `pread` and parses them
exactly as the serial reader would (same record numbers, offsets, rules and rejects). Sending
every record through a pipe to a worker was most of the parent's serial work per article, and
serial work is what stops a second worker from doubling the speed.

JSONL (`LineRange`): the parent counts lines (a C scan of 4 MB blocks, `_kernels.line_ends`;
`_line_ends_py` is its reference); `readers._read_jsonl` is what the workers match.
Text dumps (`TextRange`, the built-in delimiters): the parent finds the delimiter lines -- a
record starts at one and depends on nothing before it -- by searching the blocks for the few
ways such a line can begin and checking each find with the reader's own test; the workers run
`readers.dump_records` over their ranges. A dump whose first delimiter comes after text, or that
has none, is read serially (its rejects come in an order ranges cannot keep).

Only plain (uncompressed) files are split; compressed files, stdin, folders of articles, CSV
and custom delimiters are read by `readers.read_source` as before. The Ray engine's tasks read
their JSONL byte ranges with `range_records` too (it plans the ranges itself, by bytes).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from ingest.content import _kernels
from ingest.readers import (
    ReaderOptions,
    _decode,
    _delimiter_fields,
    _looks_binary,
    _parse_line,
    _stem,
    dump_records,
    read_source,
)
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


@dataclass(frozen=True)
class TextRange:
    """Bytes [start, end) of a text dump: records numbered from `first_record` + 1, each from
    the delimiter line at its `starts` on; the first range also holds the (blank) lines before
    the first delimiter."""

    file: str
    path: str
    stem: str
    start: int
    end: int
    first_record: int
    starts: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.starts)


def splittable(source: Source, fmt: str = "jsonl") -> bool:
    """A plain file of format `fmt`, not empty, not binary, not compressed: its ranges can be
    read apart."""
    if source.path is None or source.format != fmt or source.single_article:
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


def read_ranges(source: Source, options: ReaderOptions,
                size: int) -> Iterator[LineRange | TextRange | RawRecord | RawLine | Reject]:
    """The records of one input, in order: `LineRange`s or `TextRange`s of `size` records for a
    splittable file (the last one may be shorter), else whatever `read_source` yields
    (records, deferred JSON lines)."""
    if options.delimiter is None and splittable(source, "text"):
        yield from _text_ranges(source, options, size)
        return
    if not splittable(source):
        yield from read_source(source, options, defer_json=True)
        return
    path, name, stem = str(source.path), source.name, _stem(source.name)
    total = 0  # records before the current range
    start = pos = 0  # the current range's first byte; the next line's first byte
    count = 0
    with _Blocks(path, name) as blocks:
        done = 0
        while True:
            try:
                got = blocks.fill(done)
            except READ_ERRORS as exc:
                if count:
                    yield LineRange(name, path, stem, start, blocks.pos, total, count)
                yield Reject(name, total + count + 1, blocks.pos, "corrupt_input",
                             f"input cannot be read from here on ({exc})", "")
                return
            base = blocks.pos  # buf[0] is the file's byte `pos`
            ends, count, done = _line_ends(blocks.buf, blocks.n, size, not got, count)
            for end in ends:
                yield LineRange(name, path, stem, start, base + end, total, size)
                total += size
                start = base + end
            pos = base + done
            if not got:
                break
    if count:
        yield LineRange(name, path, stem, start, pos, total, count)
    elif total == 0:
        yield Reject(name, 0, 0, "empty_file", "input holds only blank lines", "")


class _Blocks:
    """A plain file read block by block into one reused buffer (a fresh 4 MB object a block,
    and the unfinished line joined to the next block, cost the parent more than finding the
    lines): `fill` moves the bytes not yet checked to the buffer's front and reads the next
    block in after them, doubling the buffer when one line fills it. ``buf[:n]`` then holds
    the file from byte ``pos`` on."""

    def __init__(self, path: str, name: str) -> None:
        try:
            self._fh = open(path, "rb", buffering=0)  # noqa: SIM115 -- closed by __exit__
        except OSError as exc:
            raise InputError(f"{name}: cannot open ({exc.strerror})") from exc
        self.buf = bytearray(_BLOCK)
        self.pos = self.n = 0

    def fill(self, done: int) -> int:
        """Drop the first `done` bytes of ``buf[:n]`` (checked) and read after the rest; returns
        the bytes read (0: the file has ended). A read error propagates (``pos`` is then the
        first byte not checked)."""
        buf, have = self.buf, self.n - done
        buf[:have] = buf[done:self.n]
        self.pos += done
        self.n = have
        if have == len(buf):  # one line longer than the buffer: double it
            buf += bytes(len(buf))
        with memoryview(buf) as view:
            got = self._fh.readinto(view[have:])
        self.n = have + got
        return got

    def __enter__(self) -> _Blocks:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()


def _range_fd(files: dict[str, int], path: str) -> int:
    """A worker's descriptor of `path`, opened once and reused from range to range."""
    fd = files.get(path)
    if fd is None:
        fd = files[path] = os.open(path, os.O_RDONLY)
    return fd


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
    `files`: the worker's open descriptors by path, reused from range to range. Each line is
    parsed from a view of the range's bytes, not a copy of them (orjson reads a memoryview)."""
    fd = _range_fd(files, rng.path)
    data = os.pread(fd, rng.end - rng.start, rng.start)
    number, i, n = rng.first_record, 0, len(data)
    if n != rng.end - rng.start or (data[-1:] != b"\n" and os.fstat(fd).st_size != rng.end):
        raise InputError(f"{rng.file}: the file changed while it was read (bytes {rng.start}-{rng.end})")
    file, stem, start, find = rng.file, rng.stem, rng.start, data.find
    with memoryview(data) as view:
        while i < n:
            j = find(b"\n", i)
            j = n if j < 0 else j + 1
            if data[i] in _BLANK and not data[i:j].strip():
                i = j
                continue
            number += 1
            yield _parse_line(file, view[i:j], number, start + i, stem, options)
            i = j
    if number - rng.first_record != rng.count:
        raise InputError(f"{rng.file}: the file changed while it was read (records {rng.first_record + 1}-"
                         f"{rng.first_record + rng.count})")


# How a line that `readers._delimiter_fields` takes for a built-in delimiter can begin, in the
# file's bytes: "=====" or "<doc", after any NULs (the reader drops them); a BOM can precede the
# first line's, which is always checked. Each is looked for alone (a one-byte search is a
# memchr, ~10x faster than searching for the longer marks).
_DELIMITER_FIRST = (b"=", b"<", b"\x00")


def _delimiter_line(line: bytes, at_start: bool) -> dict[str, object] | None:
    """The reader's own test of one line (its bytes, newline included) of a text dump: the
    delimiter's fields, or None. `at_start`: the file's first line (its BOM is dropped)."""
    text = _decode(line)[0]
    if at_start:
        text = text.lstrip("\ufeff")
    return _delimiter_fields(text.rstrip("\r\n"), None)


def _delimiters(buf: bytearray, base: int, n: int, final: bool) -> tuple[list[int], int]:
    """The file positions (``base`` + i) of the delimiter lines that start in ``buf[:n]`` (whose
    first byte starts a line) and end there too (or at its end, when ``final``), ascending; and
    where the first line not checked yet starts (``n`` when ``final``)."""
    limit = n if final else buf.rfind(b"\n", 0, n) + 1  # (lines that end in this block)
    starts = {0} if limit else set()  # (buf[0]: no newline in buf precedes it)
    for first in _DELIMITER_FIRST:
        i = buf.find(first, 0, limit)
        while i >= 0:
            if i and buf[i - 1] == 10:  # a line starts with it
                starts.add(i)
                i = buf.find(b"\n", i, limit)  # (its other bytes: no other line starts there)
                if i < 0:
                    break
            i = buf.find(first, i + 1, limit)
    out = []
    for start in sorted(starts):
        end = buf.find(b"\n", start, n)
        end = n if end < 0 else end + 1
        if _delimiter_line(bytes(buf[start:end]), base + start == 0) is not None:
            out.append(base + start)
    return out, limit


def _blank_preamble(head: bytes, cap: int) -> bool:
    """The bytes before a dump's first delimiter are blank, as the reader judges its
    preamble (no reject then, and no record)."""
    if len(head) > cap:
        return False
    return not _decode(head)[0].lstrip("\ufeff").strip()


def _text_ranges(source: Source, options: ReaderOptions, size: int) -> Iterator[TextRange | RawRecord | Reject]:
    """`read_ranges` of a splittable text dump: the delimiter lines found a block at a time;
    a range ends where the record after its last one starts."""
    path, name, stem = str(source.path), source.name, _stem(source.name)
    starts: list[int] = []  # delimiter lines not yet in a range (the next range's records)
    total = 0  # records in the ranges yielded
    first_seen = False
    with _Blocks(path, name) as blocks:
        done = 0
        while True:
            try:
                got = blocks.fill(done)
            except READ_ERRORS as exc:
                if not first_seen:
                    break  # nothing yielded yet: the serial reader says what it can
                # (a range always leaves the start of the record after it in `starts`)
                if len(starts) > 1:
                    yield TextRange(name, path, stem, 0 if total == 0 else starts[0], starts[-1], total,
                                    tuple(starts[:-1]))
                yield Reject(name, total + len(starts), starts[-1], "corrupt_input",
                             f"input cannot be read from here on ({exc})", "")
                return
            pos, n = blocks.pos, blocks.n
            found, done = _delimiters(blocks.buf, pos, n, not got)
            if found and not first_seen:
                first_seen = True
                if pos > 0 or not _blank_preamble(bytes(blocks.buf[:found[0]]), options.max_record_bytes):
                    break  # text before the first delimiter (or more than a block of it): serially
            starts += found
            while len(starts) > size:
                yield TextRange(name, path, stem, 0 if total == 0 else starts[0], starts[size], total,
                                tuple(starts[:size]))
                total += size
                del starts[:size]
            if not got:
                if not first_seen:
                    break  # no delimiter line at all: serially
                yield TextRange(name, path, stem, 0 if total == 0 else starts[0], pos + n, total, tuple(starts))
                return
    # Not split after all (nothing was yielded): no delimiter line, or text before the first.
    yield from read_source(source, options, defer_json=True)


def _lines(data: bytes) -> Iterator[bytes]:
    """The lines of `data`, each with its newline (the last one may have none)."""
    i, n = 0, len(data)
    while i < n:
        j = data.find(b"\n", i)
        j = n if j < 0 else j + 1
        yield data[i:j]
        i = j


def text_range_records(rng: TextRange, options: ReaderOptions, files: dict[str, int]) -> Iterator[RawRecord | Reject]:
    """The records of one text range, parsed (in a worker) as `readers._read_text` parses them.
    A record depends on nothing before its delimiter line, so each is parsed alone: one of
    `=====` lines whose text is valid UTF-8 with no NUL or CR and within the size cap -- nearly
    every one -- is its text decoded whole (what joining its lines, each decoded, gives);
    any other goes line by line through `readers.dump_records`.
    `files`: the worker's open descriptors by path, reused from range to range."""
    data = os.pread(_range_fd(files, rng.path), rng.end - rng.start, rng.start)
    base, starts = rng.start, rng.starts
    if len(data) != rng.end - base or not starts or (
            starts[0] > base and not _blank_preamble(data[:starts[0] - base], options.max_record_bytes)):
        raise InputError(f"{rng.file}: the file changed while it was read (bytes {rng.start}-{rng.end})")
    cap = options.max_record_bytes
    view = memoryview(data)
    for k, at in enumerate(starts):
        number = rng.first_record + k + 1
        lo = at - base
        hi = (starts[k + 1] if k + 1 < len(starts) else rng.end) - base
        cut = data.find(b"\n", lo, hi) + 1 or hi  # the delimiter line is [lo, cut), its body the rest
        fields = _delimiter_line(data[lo:cut], at == 0)
        if fields is None:
            raise InputError(f"{rng.file}: the file changed while it was read (record {number})")
        if "_doc" not in fields and hi - cut <= cap and data.find(b"\x00", cut, hi) < 0 and data.find(b"\r", cut, hi) < 0:
            try:  # (the body's last newline is not the text's)
                text = str(view[cut:hi - 1 if hi > cut and data[hi - 1] == 10 else hi], "utf-8")
            except UnicodeDecodeError:
                pass
            else:
                fields["id"] = str(fields.get("id") or f"{rng.stem}:{number}")
                yield RawRecord(rng.file, number, at, text, fields)
                continue
        end = yield from dump_records(rng.file, rng.stem, _lines(data[lo:hi]), options, number - 1, at, first=at == 0)
        if end.current is None or end.number != number:
            raise InputError(f"{rng.file}: the file changed while it was read (record {number})")
        yield end.current.finish(rng.file, f"{rng.stem}:{end.current.number}")
