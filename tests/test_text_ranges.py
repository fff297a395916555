"""Text-dump byte ranges read by the workers (`ranges.TextRange`) give exactly what the stream
reader gives: the same records, numbers, offsets, fields, encoding-error counts and rejects, in
the same order -- or the dump is left to the stream reader whole."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ingest import ranges
from ingest.ranges import TextRange, read_ranges, text_range_records
from ingest.readers import ReaderOptions, read_source
from ingest.records import RawRecord
from ingest.sources import InputError, Source

# Pieces of dumps: delimiter lines (with and without ids, <doc> blocks), body lines of every
# awkward kind, and lines that only look like delimiters.
DELIMITERS = [
    b"===== a1\n", b"=====\n", b"========== spaced id  \n", b"=====\t tabbed\n", b"=====x\n",
    b"===== crlf\r\n", b"\x00===== after a NUL\n", b'<doc id="7" url="http://x/y" title="T">\n',
    b"<doc>\n",
]
BODY = [
    b"Plain prose, one paragraph a line.\n", b"\n", b"   \n", b"caf\xc3\xa9 and na\xc3\xafve\n",
    b"bad bytes \xff\xfe here\n", b"a NUL\x00inside\n", b"windows line\r\n", b"==== four is not one\n",
    b" ===== indented is not one\n", b"</doc>\n", b"a = b <doc> inside\n", b"<document>\n",
    b"x" * 300 + b"\n", b"\xe2\x80\x99quoted\xe2\x80\x99\n", b"\x0b\x0c\n", b"tail without newline",
]


def _records(path: Path, options: ReaderOptions, size: int) -> list[object]:
    out: list[object] = []
    files: dict[str, int] = {}
    for item in read_ranges(Source(path.name, path, "text"), options, size):
        if isinstance(item, TextRange):
            assert 0 < item.count <= size
            out.extend(text_range_records(item, options, files))
        else:
            out.append(item)
    return out


def _expected(path: Path, options: ReaderOptions) -> list[object]:
    return list(read_source(Source(path.name, path, "text"), options))


def _dump(rng: random.Random) -> bytes:
    parts = [rng.choice([b"", b"\n", b"  \n\n", b"\xef\xbb\xbf"])]  # (a blank start, or a BOM)
    for _ in range(rng.randint(1, 25)):
        parts.append(rng.choice(DELIMITERS))
        parts += [rng.choice(BODY[:-1]) for _ in range(rng.randint(0, 6))]
    body = b"".join(parts)
    return body + BODY[-1] if rng.random() < 0.3 else body


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("size", [1, 3, 128])
def test_text_ranges_read_what_the_stream_reader_reads(tmp_path: Path, seed: int, size: int,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    monkeypatch.setattr(ranges, "_BLOCK", rng.choice([7, 64, 1000, 4 << 20]))  # lines straddle blocks
    path = tmp_path / "dump.txt"
    path.write_bytes(_dump(rng))
    options = ReaderOptions(max_record_bytes=rng.choice([40, 1 << 20]))  # records over the cap too
    got = _records(path, options, size)
    assert got == _expected(path, options)


def test_a_plain_dump_goes_out_as_ranges_of_the_chunk_size(tmp_path: Path) -> None:
    path = tmp_path / "dump.txt"
    path.write_bytes(b"".join(b"===== d%d\nline one\n\nline two\n" % k for k in range(10)))
    items = list(read_ranges(Source(path.name, path, "text"), ReaderOptions(), 4))
    assert [type(i) for i in items] == [TextRange] * 3
    assert [(i.first_record, i.count) for i in items] == [(0, 4), (4, 4), (8, 2)]
    assert items[0].start == 0 and items[-1].end == path.stat().st_size
    records = [r for i in items for r in text_range_records(i, ReaderOptions(), {})]
    assert records[3] == RawRecord("dump.txt", 4, 3 * 28, "line one\n\nline two", {"id": "d3"})


@pytest.mark.parametrize("content", [
    b"a preamble line\n===== a\ntext\n",  # text before the first delimiter: its reject comes last
    b"no delimiter at all\njust one article\n",  # one article
    b"",  # empty
    b"\n\n  \n",  # only blank lines
])
def test_dumps_that_ranges_cannot_keep_in_order_take_the_stream_reader(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "dump.txt"
    path.write_bytes(content)
    items = list(read_ranges(Source(path.name, path, "text"), ReaderOptions(), 128))
    assert not any(isinstance(i, TextRange) for i in items)
    assert items == _expected(path, ReaderOptions())


def test_a_custom_delimiter_takes_the_stream_reader(tmp_path: Path) -> None:
    import re

    path = tmp_path / "dump.txt"
    path.write_bytes(b"### one\ntext\n### two\nmore\n")
    options = ReaderOptions(delimiter=re.compile(r"^### (?P<id>\S+)$"))
    items = list(read_ranges(Source(path.name, path, "text"), options, 128))
    assert not any(isinstance(i, TextRange) for i in items)
    assert [i.fields["id"] for i in items] == ["one", "two"]  # type: ignore[union-attr]


def test_a_dump_changed_under_the_run_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "grows.txt"
    path.write_bytes(b"===== a\none\n===== b\ntwo\n")
    (first,) = list(read_ranges(Source(path.name, path, "text"), ReaderOptions(), 128))
    path.write_bytes(b"x" * 6 + b"===== b\ntwo\n===== c\n")  # the delimiters moved
    with pytest.raises(InputError, match=r"grows\.txt: the file changed while it was read"):
        list(text_range_records(first, ReaderOptions(), {}))


def test_a_compressed_dump_takes_the_stream_reader(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "dump.txt.gz"
    path.write_bytes(gzip.compress(b"===== a\none\n===== b\ntwo\n"))
    source = Source(path.name, path, "text")
    items = list(read_ranges(source, ReaderOptions(), 128))
    assert not any(isinstance(i, TextRange) for i in items)
    assert [(i.fields["id"], i.text) for i in items] == [("a", "one"), ("b", "two")]  # type: ignore[union-attr]
