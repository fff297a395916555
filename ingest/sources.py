"""Open inputs: files, folders and stdin, with transparent decompression.

Compression is detected from the first bytes, not the file name, so a `.gz` renamed to
`.txt` (or stdin carrying zstd) still reads; the name only decides the *format*.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import zstandard

MAGIC = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bz2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
}
COMPRESSED_SUFFIXES = {".gz", ".bz2", ".xz", ".zst", ".zstd"}
FORMATS = ("text", "jsonl", "csv", "tsv")
_FORMAT_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
}


class InputError(Exception):
    """A whole input cannot be read (missing, unreadable, not a supported layout)."""


# What reading a (possibly compressed) stream can raise when its bytes end early or are
# corrupt: readers turn these into a `truncated_input` / `corrupt_input` reject.
READ_ERRORS: tuple[type[BaseException], ...] = (EOFError, OSError, zlib.error, lzma.LZMAError, zstandard.ZstdError)


@dataclass(frozen=True)
class Source:
    """One input to read: a path (or "-") and the format it holds."""

    name: str  # as shown to the user and written to meta.file / rejects
    path: Path | None  # None for stdin
    format: str
    single_article: bool = False  # a file from a folder: the whole file is one article


def format_from_name(name: str) -> str | None:
    suffixes = [s.lower() for s in Path(name).suffixes]
    while suffixes and suffixes[-1] in COMPRESSED_SUFFIXES:
        suffixes.pop()
    return _FORMAT_SUFFIXES.get(suffixes[-1]) if suffixes else None


def _is_txt(path: Path) -> bool:
    suffixes = [s.lower() for s in path.suffixes]
    while suffixes and suffixes[-1] in COMPRESSED_SUFFIXES:
        suffixes.pop()
    return bool(suffixes) and suffixes[-1] == ".txt"


def expand_inputs(inputs: list[str], forced_format: str | None) -> Iterator[Source]:
    """Turn the user's INPUT arguments into sources, in the order given (folders sorted)."""
    for name in inputs:
        if name == "-":
            yield Source("-", None, forced_format or "sniff")
            continue
        path = Path(name)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and _is_txt(p))
            if not files:
                raise InputError(f"{name}: folder holds no .txt files; give other files by name")
            for p in files:
                yield Source(str(p), p, forced_format or "text", single_article=True)
        elif path.is_file():
            yield Source(name, path, forced_format or format_from_name(name) or "text")
        elif path.exists():
            raise InputError(f"{name}: not a regular file or folder")
        else:
            raise InputError(f"{name}: no such file or folder; check the path")


# Read buffer: articles are kilobytes long, and the default 8 KB made a read() system call every
# line or two (~4.6 µs a JSONL line of the reference corpus, 1.5 µs with 1 MB).
_BUFFER = 1 << 20


def open_binary(source: Source) -> BinaryIO:
    """Open a source for reading bytes, decompressing if its first bytes say so."""
    raw: BinaryIO
    if source.path is None:
        raw = sys.stdin.buffer
    else:
        try:
            raw = open(source.path, "rb", buffering=_BUFFER)
        except OSError as exc:
            raise InputError(f"{source.name}: cannot open ({exc.strerror})") from exc
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw, _BUFFER)  # type: ignore[arg-type]
    head = buffered.peek(6)[:6]
    kind = next((k for magic, k in MAGIC.items() if head.startswith(magic)), None)
    if kind == "gzip":
        return gzip.GzipFile(fileobj=buffered)  # type: ignore[return-value]
    if kind == "bz2":
        return bz2.BZ2File(buffered)  # type: ignore[return-value]
    if kind == "xz":
        return lzma.LZMAFile(buffered)  # type: ignore[return-value]
    if kind == "zstd":
        return io.BufferedReader(_ZstdReader(buffered), 1 << 20)  # type: ignore[return-value]
    return buffered


class _ZstdReader(io.RawIOBase):
    """zstd frames, one after another, raising EOFError when the input stops mid-frame.

    (`zstandard`'s own stream reader ends quietly on a truncated frame, which would lose the
    end of the input without a word.)
    """

    _FEED = 1 << 16

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()
        self._in_frame = False  # bytes of the current frame have been fed
        self._out = b""
        self._pos = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while self._pos >= len(self._out) and not self._done:
            self._out, self._pos = self._next_output(), 0
        n = min(len(buffer), len(self._out) - self._pos)
        buffer[:n] = self._out[self._pos:self._pos + n]
        self._pos += n
        return n

    def _next_output(self) -> bytes:
        if self._obj.eof:
            rest = self._obj.unused_data
            self._obj = self._dctx.decompressobj()
            self._in_frame = False
            if rest:
                return self._feed(rest)
        data = self._source.read(self._FEED)
        if not data:
            self._done = True
            if self._in_frame and not self._obj.eof:
                raise EOFError("Compressed file ended before the end-of-stream marker was reached")
            return b""
        return self._feed(data)

    def _feed(self, data: bytes) -> bytes:
        self._in_frame = True
        return self._obj.decompress(data)
