"""Readers: turn one input into a stream of raw records (or rejects), nothing more.

A reader never drops anything silently: each record it finds is yielded either as a
`RawRecord` or as a `Reject` that names the file, the record number and the reason.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from ingest.records import RawLine, RawRecord, Reject
from ingest.sources import COMPRESSED_SUFFIXES, READ_ERRORS, InputError, Source, open_binary

DEFAULT_DELIMITER = re.compile(r"^={5,}[ \t]*(?P<id>\S.*?)?[ \t]*$")
DOC_OPEN = re.compile(r"^<doc(?P<attrs>(?:\s+\w+=\"[^\"]*\")*)\s*>\s*$")
DOC_CLOSE = "</doc>"
_DOC_ATTR = re.compile(r"(\w+)=\"([^\"]*)\"")
KNOWN_FIELDS = ("title", "date", "url", "source")
_BINARY_SNIFF = 8192


@dataclass(frozen=True)
class ReaderOptions:
    delimiter: re.Pattern[str] | None = None  # None: the built-in delimiters
    text_field: str = "text"
    id_field: str = "id"
    max_record_bytes: int = 8 * 1024 * 1024


def read_source(source: Source, options: ReaderOptions,
                defer_json: bool = False) -> Iterator[RawRecord | RawLine | Reject]:
    """Yield every record of one input, in order. With ``defer_json``, JSONL lines come as
    `RawLine`s for the caller to parse (with `parse_raw_line`) where it likes."""
    stream = open_binary(source)
    try:
        try:
            head = stream.peek(_BINARY_SNIFF)[:_BINARY_SNIFF] if hasattr(stream, "peek") else b""
        except READ_ERRORS as exc:
            yield _unreadable(source, 1, 0, "", exc, None)
            return
        if not head and not source.single_article:  # an empty file in a folder is an empty article
            yield Reject(source.name, 0, 0, "empty_file", "input is empty", "")
            return
        if _looks_binary(head):
            yield Reject(source.name, 1, 0, "binary_file", "input looks binary (NUL or control bytes)", "")
            return
        fmt = source.format
        if fmt == "sniff":
            fmt = "jsonl" if head.lstrip().startswith(b"{") else "text"
        if fmt == "jsonl":
            yield from _read_jsonl(source, stream, options, defer_json)
        elif fmt in ("csv", "tsv"):
            yield from _read_table(source, stream, options, "\t" if fmt == "tsv" else ",")
        else:
            yield from _read_text(source, stream, options)
    finally:
        if source.path is not None:
            stream.close()


_CONTROL = bytes([0, 1, 2, 3, 4, 5, 6, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 28, 29, 30, 31])


def _looks_binary(head: bytes) -> bool:
    """Mostly-text files with a stray NUL are text (NULs are dropped); images and archives
    have control bytes everywhere."""
    odd = len(head) - len(head.translate(None, _CONTROL))
    return odd >= 4 and odd * 20 > len(head)


class _Lines:
    """Iterate the lines of a stream; a truncated or corrupt (compressed) stream ends the
    iteration and sets `truncated` instead of raising, so the reader can reject the partial
    record."""

    def __init__(self, stream: io.BufferedIOBase) -> None:
        self.stream = stream
        self.truncated: BaseException | None = None

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self.stream
        except READ_ERRORS as exc:
            self.truncated = exc


def _decode(line: bytes) -> tuple[str, int]:
    """Decode one line as UTF-8; bad bytes become U+FFFD and are counted, NULs are dropped."""
    if b"\x00" in line:
        line = line.replace(b"\x00", b"")
    try:
        return line.decode("utf-8"), 0
    except UnicodeDecodeError:
        text = line.decode("utf-8", errors="replace")
        return text, text.count("\ufffd")


def _stem(name: str) -> str:
    path = Path(name)
    while path.suffix.lower() in COMPRESSED_SUFFIXES:
        path = path.with_suffix("")
    return path.stem if path.suffix else path.name


class _Record:
    """Accumulates the lines of one text record, capped at max bytes."""

    def __init__(self, number: int, offset: int, fields: dict[str, object], cap: int) -> None:
        self.number, self.offset, self.fields, self.cap = number, offset, fields, cap
        self.lines: list[str] = []
        self.size = 0
        self.bad_chars = 0
        self.overflow = False

    def add(self, text: str, size: int, bad: int) -> None:
        self.size += size
        self.bad_chars += bad
        if self.size > self.cap:
            self.overflow = True
        if not self.overflow:
            self.lines.append(text)

    def finish(self, name: str, fallback_id: str) -> RawRecord | Reject:
        text = "\n".join(self.lines)
        rid = str(self.fields.get("id") or fallback_id)
        if self.overflow:
            return Reject(name, self.number, self.offset, "too_large",
                          f"record is {self.size} bytes, over --max-record-bytes {self.cap}",
                          text, rid)
        fields = dict(self.fields)
        fields["id"] = rid
        if self.bad_chars:
            fields["encoding_errors"] = self.bad_chars
        return RawRecord(name, self.number, self.offset, text, fields)


def _read_text(source: Source, stream: io.BufferedIOBase, options: ReaderOptions) -> Iterator[RawRecord | Reject]:
    stem = _stem(source.name)
    cap = options.max_record_bytes
    if source.single_article:
        record = _Record(1, 0, {"id": stem}, cap)
        first = True
        lines = _Lines(stream)
        for raw in lines:
            text, bad = _decode(raw)
            if first:
                text, first = text.lstrip("\ufeff"), False
            record.add(text.rstrip("\r\n"), len(raw), bad)
        if lines.truncated:
            yield _unreadable(source, record.number, 0, "\n".join(record.lines), lines.truncated, stem)
        else:
            yield record.finish(source.name, stem)
        return

    lines = _Lines(stream)
    end = yield from dump_records(source.name, stem, lines, options)
    current, preamble, number = end.current, end.preamble, end.number
    if lines.truncated:
        if current is not None:
            yield _unreadable(source, current.number, current.offset, "\n".join(current.lines),
                              lines.truncated, str(current.fields.get("id") or f"{stem}:{current.number}"))
        else:
            yield _unreadable(source, 1, 0, "\n".join(preamble.lines), lines.truncated, None)
        return
    if current is not None:
        yield current.finish(source.name, f"{stem}:{current.number}")

    custom = options.delimiter
    leftover = "\n".join(preamble.lines).strip()
    has_preamble = bool(leftover) or preamble.overflow
    if number == 0 and not has_preamble:
        yield Reject(source.name, 0, 0, "empty_file", "input holds only blank lines", "")
    elif number == 0:
        if custom is not None:
            yield Reject(source.name, 1, 0, "delimiter_never_matched",
                         f"--delimiter {custom.pattern!r} matched no line", leftover)
        else:
            # A plain text file with no delimiter line is one article.
            preamble.number = 1
            preamble.fields = {"id": stem}
            yield preamble.finish(source.name, stem)
    elif has_preamble:
        yield Reject(source.name, 0, 0, "before_first_delimiter",
                     "text before the first delimiter line", leftover)


@dataclass
class DumpEnd:
    """Where `dump_records` stopped: the record still open (not yet finished), the text before
    the first delimiter, and the count of delimiter lines seen."""

    current: _Record | None
    preamble: _Record
    number: int


def dump_records(name: str, stem: str, lines: Iterable[bytes], options: ReaderOptions, number: int = 0,
                 offset: int = 0, first: bool = True) -> Generator[RawRecord | Reject, None, DumpEnd]:
    """The records of a delimited text dump's `lines` (each with its newline): every record
    the next delimiter line closes, then (returned) the open one. `number` delimiter lines and
    `offset` bytes come before `lines`; `first`: they start the file (its BOM is dropped).
    Shared by the serial reader and the workers' byte ranges (`ranges.text_range_records`),
    which start at a delimiter line: a record depends on nothing before its own."""
    custom = options.delimiter
    cap = options.max_record_bytes
    current: _Record | None = None
    preamble = _Record(0, 0, {}, cap)
    in_doc = wiki = False
    for raw in lines:
        size = len(raw)
        text, bad = _decode(raw)
        if first:
            text, first = text.lstrip("\ufeff"), False
        line = text.rstrip("\r\n")
        fields = _delimiter_fields(line, custom)
        if fields is not None:
            if current is not None:
                yield current.finish(name, f"{stem}:{current.number}")
            number += 1
            in_doc = wiki = bool(fields.pop("_doc", False))
            current = _Record(number, offset, fields, cap)
        elif custom is None and in_doc and line.strip() == DOC_CLOSE:
            in_doc = False
        elif current is None:
            preamble.add(line, size, bad)
        elif wiki and not in_doc and not line.strip():
            pass  # blank lines between </doc> and the next <doc>
        else:
            current.add(line, size, bad)
        offset += size
    return DumpEnd(current, preamble, number)


def _unreadable(source: Source, number: int, offset: int | None, partial: str, exc: BaseException,
                rid: str | None) -> Reject:
    """The record during which the stream broke: ended early (truncated) or corrupt bytes."""
    why = str(exc) or type(exc).__name__
    if isinstance(exc, EOFError):
        return Reject(source.name, number, offset, "truncated_input", f"input ends early ({why})", partial, rid)
    return Reject(source.name, number, offset, "corrupt_input", f"input cannot be read from here on ({why})",
                  partial, rid)


def _delimiter_fields(line: str, custom: re.Pattern[str] | None) -> dict[str, object] | None:
    if custom is not None:
        m = custom.match(line)
        return None if m is None else {k: v for k, v in m.groupdict().items() if v is not None}
    if line.startswith("====="):
        m = DEFAULT_DELIMITER.match(line)
        if m:
            return {"id": m.group("id")} if m.group("id") else {}
    elif line.startswith("<doc"):
        m = DOC_OPEN.match(line)
        if m:
            fields: dict[str, object] = dict(_DOC_ATTR.findall(m.group("attrs")))
            fields["_doc"] = True
            return fields
    return None


def _split_fields(obj: dict[str, object], options: ReaderOptions) -> dict[str, object]:
    fields: dict[str, object] = {}
    extra: dict[str, object] = {}
    for key, value in obj.items():
        if key == options.text_field:
            continue
        if key == options.id_field:
            fields["id"] = value if isinstance(value, str) else orjson.dumps(value).decode()
        elif key in KNOWN_FIELDS and (value is None or isinstance(value, str)):
            fields[key] = value
        else:
            extra[key] = value
    if extra:
        fields["extra"] = extra
    return fields


def _line_text(raw: bytes | memoryview) -> tuple[str, int]:
    text, bad = _decode(bytes(raw))  # (a bytes object is not copied)
    return text.lstrip("\ufeff").rstrip("\r\n"), bad


def parse_raw_line(line: RawLine, options: ReaderOptions) -> RawRecord | Reject:
    """A deferred JSONL line (see `read_source`) → a record or a reject."""
    return _parse_line(line.file, line.raw, line.record, line.offset, line.stem, options)


def _parse_line(name: str, raw: bytes | memoryview, number: int, start: int, stem: str,
                options: ReaderOptions) -> RawRecord | Reject:
    if len(raw) > options.max_record_bytes:
        return Reject(name, number, start, "too_large",
                      f"record is {len(raw)} bytes, over --max-record-bytes {options.max_record_bytes}",
                      _line_text(raw)[0])
    try:
        # Valid UTF-8 JSON (nearly every line) parses straight from bytes; the rest is decoded
        # first (bad bytes replaced and counted, NULs and a BOM dropped), as it always was.
        obj, bad, text = orjson.loads(raw), 0, None
    except orjson.JSONDecodeError:
        text, bad = _line_text(raw)
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return Reject(name, number, start, "bad_json", f"not JSON: {exc}", text)
    if not isinstance(obj, dict):
        text = _line_text(raw)[0] if text is None else text
        return Reject(name, number, start, "bad_json", "a JSON object was expected", text)
    body = obj.get(options.text_field)
    if not isinstance(body, str):
        return Reject(name, number, start, "missing_text",
                      f"no string field {options.text_field!r} (see --text-field)",
                      _line_text(raw)[0] if text is None else text)
    fields = _split_fields(obj, options)
    if not fields.get("id") or obj.get(options.id_field) is None:
        fields["id"] = f"{stem}:{number}"
    if bad:
        fields["encoding_errors"] = bad
    return RawRecord(name, number, start, body, fields)


def _read_jsonl(source: Source, stream: io.BufferedIOBase, options: ReaderOptions,
                defer: bool = False) -> Iterator[RawRecord | RawLine | Reject]:
    stem = _stem(source.name)
    offset = 0
    number = 0
    lines = _Lines(stream)
    for raw in lines:
        start, offset = offset, offset + len(raw)
        if not raw.strip():
            continue
        number += 1
        if defer:
            yield RawLine(source.name, number, start, raw, stem)
        else:
            yield _parse_line(source.name, raw, number, start, stem, options)
    if lines.truncated:
        yield _unreadable(source, number + 1, offset, "", lines.truncated, None)
    elif number == 0:
        yield Reject(source.name, 0, 0, "empty_file", "input holds only blank lines", "")


class _RowTooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class _TableLines:
    """The decoded lines of a CSV/TSV stream, fed to `csv.reader` one at a time.

    Decoding here (not in a TextIOWrapper) lets the reader count the bad bytes of each row,
    drop NULs like the other formats, and measure each row in bytes: a row over the limit
    is skipped to its end (where its quotes balance) without being held in memory, and
    `_RowTooLarge` is raised through `csv.reader`, which starts afresh on the next call.
    """

    def __init__(self, lines: _Lines, cap: int) -> None:
        self.lines = iter(lines)
        self.cap = cap
        self.pending: list[bytes] = []
        self.first = True
        self.start_row()

    def start_row(self) -> None:
        self.size = 0
        self.quotes = 0
        self.bad = 0

    def _next_raw(self) -> bytes:
        if self.pending:
            return self.pending.pop()
        raw = next(self.lines)
        if b"\r" in raw[:-2]:  # bare CR line ends (old Mac files): one line each, as csv expects
            parts = raw.splitlines(keepends=True)
            raw, self.pending = parts[0], parts[:0:-1]
        return raw

    def __iter__(self) -> _TableLines:
        return self

    def __next__(self) -> str:
        raw = self._next_raw()
        self.size += len(raw)
        self.quotes += raw.count(b'"')
        if self.size > self.cap:
            while self.quotes % 2:  # inside a quoted field: skip to where it closes
                try:
                    raw = self._next_raw()
                except StopIteration:
                    break
                self.size += len(raw)
                self.quotes += raw.count(b'"')
            raise _RowTooLarge(self.size)
        text, bad = _decode(raw)
        if self.first:
            text, self.first = text.lstrip("\ufeff"), False
        self.bad += bad
        return text


def _read_table(source: Source, stream: io.BufferedIOBase, options: ReaderOptions, sep: str) -> Iterator[RawRecord | Reject]:
    stem = _stem(source.name)
    cap = options.max_record_bytes
    csv.field_size_limit(max(cap, 1))
    stream_lines = _Lines(stream)
    lines = _TableLines(stream_lines, cap)
    reader = csv.reader(lines, delimiter=sep, strict=True)
    header: list[str] = []
    while not header:  # blank lines before the header are skipped
        lines.start_row()
        try:
            header = next(reader)
        except StopIteration:
            if stream_lines.truncated:
                yield _unreadable(source, 1, 0, "", stream_lines.truncated, None)
            else:
                yield Reject(source.name, 0, 0, "empty_file", "input holds no header row", "")
            return
        except (csv.Error, _RowTooLarge) as exc:
            yield Reject(source.name, 0, 0, "bad_header", f"header row unreadable: {exc}", "")
            return
    if options.text_field not in header:
        raise InputError(f"{source.name}: no column {options.text_field!r} in the header (see --text-field)")
    number = 0
    while True:
        line_before = reader.line_num
        lines.start_row()
        try:
            row = next(reader)
        except StopIteration:
            break
        except _RowTooLarge as exc:
            number += 1
            yield Reject(source.name, number, None, "too_large",
                         f"line {line_before + 1}: record is {exc.size} bytes, "
                         f"over --max-record-bytes {cap}",
                         "")
            continue
        except csv.Error as exc:
            if stream_lines.truncated:
                break  # the row the stream broke in: rejected below as truncated/corrupt
            number += 1
            reason = "too_large" if "field larger" in str(exc) else "bad_row"
            yield Reject(source.name, number, None, reason, f"line {line_before + 1}: {exc}", "")
            continue
        if not row:
            continue
        number += 1
        if len(row) != len(header):
            yield Reject(source.name, number, None, "ragged_row",
                         f"line {reader.line_num}: {len(row)} fields, header has {len(header)}",
                         sep.join(row))
            continue
        obj = dict(zip(header, row))
        fields = _split_fields(obj, options)
        if not fields.get("id"):
            fields["id"] = f"{stem}:{number}"
        if lines.bad:
            fields["encoding_errors"] = lines.bad
        yield RawRecord(source.name, number, None, obj[options.text_field], fields)
    if stream_lines.truncated:
        yield _unreadable(source, number + 1, None, "", stream_lines.truncated, None)
    elif number == 0:
        yield Reject(source.name, 0, 0, "empty_file", "input holds a header row but no records", "")
