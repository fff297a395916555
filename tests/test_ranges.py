"""JSONL byte ranges read by the workers (ingest/ranges.py) give exactly what the stream reader gives."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ingest import ranges
from ingest.ranges import LineRange, range_records, read_ranges
from ingest.readers import ReaderOptions, parse_raw_line, read_source
from ingest.records import RawLine, Reject
from ingest.sources import InputError, Source

LINES = [
    b'{"id": "a", "text": "one two three"}\n',
    b'{"text": "no id here"}\n',
    b"\n",
    b"   \t \r\n",
    b'  {"id": "indented", "text": "x"}\n',
    b"not json at all\n",
    b'{"id": "bad\xff", "text": "bytes that are not UTF-8 \xfe"}\n',
    b"\xef\xbb\xbf{\"id\": \"bom\", \"text\": \"after a BOM\"}\n",
    b'["a list"]\n',
    b'{"id": "no-text"}\n',
    b'{"id": "big", "text": "' + b"w " * 400 + b'"}\n',
    b'{"id": "crlf", "text": "windows"}\r\n',
    b"\x0b\x0c\n",
]


def _records(path: Path, options: ReaderOptions, size: int) -> list[object]:
    source = Source(path.name, path, "jsonl")
    out: list[object] = []
    files: dict[str, int] = {}
    for item in read_ranges(source, options, size):
        if isinstance(item, LineRange):
            assert 0 < item.count <= size
            out.extend(range_records(item, options, files))
        else:
            out.append(parse_raw_line(item, options) if isinstance(item, RawLine) else item)
    return out


def _expected(path: Path, options: ReaderOptions) -> list[object]:
    return list(read_source(Source(path.name, path, "jsonl"), options))


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("size", [1, 2, 3, 128])
def test_ranges_read_what_the_stream_reader_reads(tmp_path: Path, seed: int, size: int,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    monkeypatch.setattr(ranges, "_BLOCK", rng.choice([7, 64, 1000, 4 << 20]))  # lines straddle blocks
    body = b"".join(rng.choice(LINES) for _ in range(rng.randint(1, 60)))
    if rng.random() < 0.5:
        body = body.rstrip(b"\n")  # no newline after the last line
    path = tmp_path / "dump.jsonl"
    path.write_bytes(body)
    options = ReaderOptions(max_record_bytes=300)
    assert _records(path, options, size) == _expected(path, options)


@pytest.mark.parametrize("seed", range(40))
def test_the_line_scanning_kernel_matches_its_reference(seed: int) -> None:
    """`_kernels.line_ends` (C) returns exactly what `_line_ends_py` does: range ends, count and
    where the unfinished line starts, from any starting byte, final or not."""
    from ingest.content import _kernels

    if _kernels is None:
        pytest.skip("THRESHER_NO_KERNELS: the reference runs alone")
    rng = random.Random(seed)
    data = b"".join(rng.choice(LINES + [b"{}", b" ", b"\t", b"x"]) for _ in range(rng.randint(0, 80)))
    for _ in range(10):
        i = rng.randint(0, len(data))
        args = (data, i, rng.choice([1, 2, 3, 7, 128]), rng.random() < 0.5, rng.randint(0, 5))
        if args[4] >= args[2]:
            args = args[:4] + (0,)
        assert _kernels.line_ends(*args) == ranges._line_ends_py(*args), args


def test_the_python_reference_reads_what_the_kernel_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(99)
    path = tmp_path / "dump.jsonl"
    path.write_bytes(b"".join(rng.choice(LINES) for _ in range(300)))
    options = ReaderOptions(max_record_bytes=300)
    with_kernel = _records(path, options, 7)
    monkeypatch.setattr(ranges, "_kernels", None)
    assert _records(path, options, 7) == with_kernel == _expected(path, options)


def test_only_blank_lines_is_the_same_empty_file_reject(tmp_path: Path) -> None:
    path = tmp_path / "blank.jsonl"
    path.write_bytes(b"\n  \n\t\n")
    assert _records(path, ReaderOptions(), 128) == _expected(path, ReaderOptions()) == [
        Reject("blank.jsonl", 0, 0, "empty_file", "input holds only blank lines", "")]


def test_compressed_empty_and_binary_files_take_the_stream_reader(tmp_path: Path) -> None:
    import gzip

    gz = tmp_path / "a.jsonl"
    gz.write_bytes(gzip.compress(LINES[0] + LINES[1]))
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(bytes(range(32)) * 100)
    for path in (gz, empty, binary):
        items = list(read_ranges(Source(path.name, path, "jsonl"), ReaderOptions(), 128))
        assert not any(isinstance(i, LineRange) for i in items)
        assert _records(path, ReaderOptions(), 128) == _expected(path, ReaderOptions())


def test_a_file_changed_under_the_run_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "grows.jsonl"
    path.write_bytes(LINES[0] * 4)
    (first,) = [r for r in read_ranges(Source("grows.jsonl", path, "jsonl"), ReaderOptions(), 128)]
    path.write_bytes(b"\n" + LINES[0] * 4)  # same records, shifted by a blank line
    with pytest.raises(InputError, match=r"grows.jsonl: the file changed while it was read"):
        list(range_records(first, ReaderOptions(), {}))


def test_a_pipe_is_read_once_by_the_stream_reader(tmp_path: Path) -> None:
    """`thresher ingest --format jsonl <(zcat dump.jsonl.gz)`: a named pipe is no file to split
    (sniffing its head would eat it); every record arrives."""
    import os
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    body = b"".join(LINES[:2] * 50)

    def feed() -> None:
        with open(fifo, "wb") as fh:
            fh.write(body)

    items: list[object] = []
    threads = [threading.Thread(target=feed, daemon=True),
               threading.Thread(target=lambda: items.extend(read_ranges(Source("pipe", fifo, "jsonl"),
                                                                        ReaderOptions(), 128)), daemon=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not any(t.is_alive() for t in threads), "reading the pipe hung (its head was eaten by a sniff)"
    assert not any(isinstance(i, LineRange) for i in items)
    ids = [parse_raw_line(i, ReaderOptions()).fields["id"] for i in items]  # type: ignore[arg-type]
    assert ids == [x for k in range(50) for x in ("a", f"pipe:{2 * k + 2}")]
