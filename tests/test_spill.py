"""The spill (ingest/spill.py): chunks read back exactly as written, while the reader gives
the file's pages back behind itself."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from ingest import spill
from ingest.spill import SpillReader, append_lines, close_spills


def _chunks(rng: random.Random, count: int) -> list[bytes]:
    """Chunks of odd sizes (most not a multiple of a page), so chunk boundaries fall inside
    pages: a punched page holding the next chunk's start would lose it."""
    return [bytes(rng.randrange(97, 123) for _ in range(rng.randint(3_000, 60_000))) + b"\n"
            for _ in range(count)]


def _write(folder: Path, chunks: list[bytes]) -> list[spill.SpillAt]:
    ctx: dict[object, object] = {}
    places = [append_lines(str(folder), blob, ctx) for blob in chunks]  # type: ignore[arg-type]
    close_spills(ctx)  # type: ignore[arg-type]
    return places


def _allocated(path: str) -> int:
    return os.stat(path).st_blocks * 512


def test_chunks_read_back_exactly_while_pages_are_given_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spill, "FREE_EVERY", 64 * 1024)  # punch often: many boundaries tested
    chunks = _chunks(random.Random(3), 160)
    places = _write(tmp_path, chunks)
    path = places[0].path
    os.fsync(fd := os.open(path, os.O_RDONLY))
    os.close(fd)
    before = _allocated(path)
    with SpillReader() as reader:
        got = [reader.read(at) for at in places]
        after = _allocated(path)
    assert got == chunks
    assert os.path.getsize(path) == sum(map(len, chunks))  # holes keep the size
    if reader._fallocate is None:
        pytest.skip("this platform or filesystem cannot punch holes")
    # everything but the last, partly read, stretch was given back
    assert after < before // 10


def test_reading_back_into_what_was_given_back_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader is forward-only: a chunk before what it punched would read as zeros, so
    asking for one is an error, never silently wrong lines."""
    monkeypatch.setattr(spill, "FREE_EVERY", 4096)
    chunks = _chunks(random.Random(5), 40)
    places = _write(tmp_path, chunks)
    with SpillReader() as reader:
        assert [reader.read(at) for at in places[:30]] == chunks[:30]
        if reader._fallocate is None:
            pytest.skip("this platform or filesystem cannot punch holes")
        with pytest.raises(ValueError, match=r"lines-\d+\.bin: byte \d+ was read past and given back"):
            reader.read(places[3])
        assert reader.read(places[30]) == chunks[30]  # the file reads on where it was


def test_holes_keep_to_whole_filesystem_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a filesystem with blocks larger than a page, a block the punched range only partly
    covers would be zeroed: the reader punches whole blocks, so the next chunk's start survives."""
    monkeypatch.setattr(spill, "FREE_EVERY", 4096)
    monkeypatch.setattr(spill, "_punch_unit", lambda fd: 65536)
    chunks = _chunks(random.Random(11), 80)
    places = _write(tmp_path, chunks)
    with SpillReader() as reader:
        assert [reader.read(at) for at in places] == chunks
        freed = reader._freed[places[0].path]
    assert freed % 65536 == 0 and freed > 0


def test_an_article_pickles_whole() -> None:
    """`Article.__reduce__` (the recurring sample's parked chunks) keeps every field."""
    import dataclasses
    import pickle

    from ingest.records import Article

    article = Article("a1", "A title", "2020-01-02", "Outlet", ["one", "two"], {"caption": 1},
                      [("caption", "Photo: x")], {"file": "f.txt", "record": 3, "tags": ["t"]})
    back = pickle.loads(pickle.dumps(article, protocol=pickle.HIGHEST_PROTOCOL))
    assert back == article and type(back) is Article
    assert len(dataclasses.fields(Article)) == len(article.__reduce__()[1])  # a new field is not forgotten
