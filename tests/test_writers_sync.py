"""The corpus goes to disk in the background while it is written (writers.AtomicOutput.write_pieces):
the bytes are the same, and a write-back error found in the background still fails the run."""

from __future__ import annotations

import errno
import os
from itertools import pairwise
from pathlib import Path

import pytest

from ingest import writers
from ingest.writers import AtomicOutput, OutputError


def test_background_flushes_leave_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writers, "SYNC_BEHIND", 100)
    out = AtomicOutput(str(tmp_path / "corpus.jsonl"))
    lines = [f'{{"id": "a{k}", "text": "{"x" * k}"}}\n'.encode() for k in range(200)]
    for k in range(0, 200, 7):
        out.write_pieces([b"".join(lines[k:k + 7])], len(lines[k:k + 7]))
    out.commit()
    assert (tmp_path / "corpus.jsonl").read_bytes() == b"".join(lines)
    assert out.count == 200
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl"]


def test_a_write_back_error_in_the_background_fails_the_commit(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writers, "SYNC_BEHIND", 10)

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(writers.os, "fdatasync", full_disk)
    out = AtomicOutput(str(tmp_path / "corpus.jsonl"))
    out.write_pieces([b'{"id": "a"}\n' * 5], 5)
    with pytest.raises(OutputError, match=r"corpus.jsonl: write failed \(No space left on device\)"):
        out.commit()
    assert list(tmp_path.iterdir()) == []  # nothing under the final name, no temporary file


def test_a_background_writer_writes_every_block_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writers, "SYNC_BEHIND", 1000)  # the flusher starts from the writer's thread too
    out = AtomicOutput(str(tmp_path / "corpus.jsonl"))
    blocks = [f'{{"id": "b{k}", "text": "{"y" * (k % 50)}"}}\n'.encode() * (k % 4 + 1) for k in range(300)]
    with writers.BackgroundWriter(out, depth=2) as sink:
        for block in blocks:
            sink.write_pieces([block], block.count(b"\n"))
    out.commit()
    assert (tmp_path / "corpus.jsonl").read_bytes() == b"".join(blocks)
    assert out.count == sum(k % 4 + 1 for k in range(300))


def test_a_background_write_error_reaches_the_caller_and_stops_the_writes(tmp_path: Path) -> None:
    out = AtomicOutput(str(tmp_path / "corpus.jsonl"))
    written: list[bytes] = []

    def write_pieces(pieces: list[bytes], lines: int) -> None:
        if len(written) == 3:
            raise OutputError(f"{out.path}: write failed (No space left on device); free some space or choose another location")
        written.append(b"".join(pieces))

    out.write_pieces = write_pieces  # type: ignore[method-assign]
    with pytest.raises(OutputError, match=r"corpus\.jsonl: write failed \(No space left on device\)"):
        with writers.BackgroundWriter(out, depth=1) as sink:
            for k in range(50):
                sink.write_pieces([b"%d\n" % k], 1)
    assert written == [b"0\n", b"1\n", b"2\n"]  # nothing after the failed block
    out.abort()
    assert list(tmp_path.iterdir()) == []


def test_leaving_a_background_writer_on_an_error_drops_the_queued_blocks(tmp_path: Path) -> None:
    out = AtomicOutput(str(tmp_path / "corpus.jsonl"))
    with pytest.raises(KeyboardInterrupt):
        with writers.BackgroundWriter(out) as sink:
            sink.write_pieces([b"a\n"], 1)
            raise KeyboardInterrupt
    assert not sink._thread.is_alive()
    out.abort()
    assert list(tmp_path.iterdir()) == []


def _pieces(count: int) -> list[bytes | memoryview]:
    """`count` lines cut into pieces at odd places, some of them views, some empty."""
    blob = b"".join(f'{{"id": "p{k}", "text": "{"z" * (k % 37)}"}}\n'.encode() for k in range(count))
    view, cuts = memoryview(blob), sorted({(k * 7919) % len(blob) for k in range(count * 2)} | {0, len(blob)})
    return [view[a:b] if k % 2 else bytes(view[a:b]) for k, (a, b) in enumerate(pairwise(cuts))] + [b""]


def test_pieces_are_written_whole_however_the_writes_fall(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`write_pieces` writes with `os.writev`, which may take only part of what it is given
    (a pipe, a signal) and at most 1024 buffers a call: every byte still goes out once, in order."""
    real = os.writev
    calls: list[int] = []

    def short_writev(fd: int, buffers: list[memoryview]) -> int:
        calls.append(len(buffers))
        return real(fd, buffers[:3]) if len(calls) % 2 else real(fd, [bytes(buffers[0])[:5]])

    monkeypatch.setattr(writers.os, "writev", short_writev)
    pieces = _pieces(1500)
    out = AtomicOutput(str(tmp_path / "corpus.jsonl"))
    out.write_line(b'{"id": "first"}')  # through the file object's buffer: it must come first
    out.write_pieces(pieces, 1500)
    out.commit()
    assert (tmp_path / "corpus.jsonl").read_bytes() == b'{"id": "first"}\n' + b"".join(pieces)
    assert out.count == 1501
    assert max(calls) == 1024


def test_pieces_reach_a_stdout_without_a_descriptor(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    pieces = _pieces(40)
    out = AtomicOutput("-")
    out.write_pieces(pieces, 40)
    out.commit()
    assert capsysbinary.readouterr().out == b"".join(pieces)
