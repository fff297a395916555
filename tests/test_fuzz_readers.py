"""A small fuzz run of the readers: whatever the bytes, `read_source` yields records and
rejects, or raises the documented `InputError` (a CSV header without the text column) —
never anything else.

Inputs are arbitrary bytes, or byte soup built from the tokens the readers look for
(delimiters, <doc> blocks, quotes, JSON, BOMs, NULs, bad UTF-8), read as every format,
plain, compressed, or compressed and cut short. Example counts are modest: this is a
regression net kept in CI, not a fuzzing campaign.
"""

from __future__ import annotations

import bz2
import gzip
import re
import tempfile
from pathlib import Path

import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.readers import ReaderOptions, read_source
from ingest.records import RawRecord, Reject
from ingest.sources import InputError, Source

TOKENS = [
    b"===== ", b"=====\n", b"===== id-1\n", b'<doc id="1" title="T">\n', b"</doc>\n", b"\n", b"\r\n", b"\r",
    b'"', b'""', b",", b"\t", b"{", b"}", b'{"id": "x", "text": "', b'"}\n', b'"text": null', b"[1, 2]\n",
    b"id,text\n", b"id\ttext\n", b"text\n", b"\xef\xbb\xbf", b"\x00", b"\xff", b"\xe9", b"\xc3", b"\x1f\x8b",
    b"The harbour board said on Monday ", b"fares will rise. ", b"#### ", b"\\u0000", b"\x89PNG\r\n\x1a\n",
]

soup = st.lists(st.sampled_from(TOKENS) | st.binary(max_size=8), max_size=60).map(b"".join)
payloads = st.one_of(st.binary(max_size=3000), soup)


def compress(data: bytes, how: str, cut: int) -> bytes:
    if how == "plain":
        return data
    packed = {"gzip": gzip.compress, "bz2": bz2.compress,
              "zstd": lambda b: zstandard.ZstdCompressor().compress(b)}[how.split("-")[0]](data)
    if how.endswith("-cut"):
        return packed[: cut % max(len(packed), 1)]
    if how.endswith("-flip") and packed:
        i = cut % len(packed)
        return packed[:i] + bytes([packed[i] ^ 0x55]) + packed[i + 1:]
    return packed


FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(
    data=payloads,
    fmt=st.sampled_from(["text", "jsonl", "csv", "tsv", "sniff", "folder"]),
    how=st.sampled_from(["plain", "plain", "gzip", "gzip-cut", "gzip-flip", "zstd", "zstd-cut", "bz2-cut"]),
    cut=st.integers(0, 10**6),
    max_bytes=st.sampled_from([1, 50, 500, 8 * 1024 * 1024]),
    delimiter=st.sampled_from([None, None, r"^#### (?P<id>\S*)", r"^(?P<title>[A-Z].*)$"]),
)
def test_readers_never_crash(data: bytes, fmt: str, how: str, cut: int, max_bytes: int,
                             delimiter: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("input.txt" + ("" if how == "plain" else ".z"))
        path.write_bytes(compress(data, how, cut))
        if fmt == "folder":
            source = Source(str(path), path, "text", single_article=True)
        else:
            source = Source(str(path), path, fmt)
        options = ReaderOptions(delimiter=re.compile(delimiter) if delimiter else None, max_record_bytes=max_bytes)
        try:
            items = list(read_source(source, options))
        except InputError as exc:
            assert fmt in ("csv", "tsv") and "no column 'text'" in str(exc)
            return
    assert items, "every input yields at least one record or reject"
    for item in items:
        assert isinstance(item, (RawRecord, Reject))
        assert item.file == str(path)
        if isinstance(item, RawRecord):
            assert item.record >= 1 and isinstance(item.text, str) and item.fields.get("id")
        else:
            assert item.reason and item.detail and item.record >= 0
    records = [i.record for i in items if i.record]
    if fmt != "folder":
        assert records == sorted(records)  # in input order
