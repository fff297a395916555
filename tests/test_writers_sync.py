"""The corpus goes to disk in the background while it is written (writers.AtomicOutput.write_raw):
the bytes are the same, and a write-back error found in the background still fails the run."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from ingest import writers
from ingest.writers import AtomicOutput, OutputError


def test_background_flushes_leave_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writers, "SYNC_BEHIND", 100)
    out = AtomicOutput(str(tmp_path / "corpus.jsonl"))
    lines = [f'{{"id": "a{k}", "text": "{"x" * k}"}}\n'.encode() for k in range(200)]
    for k in range(0, 200, 7):
        out.write_raw(b"".join(lines[k:k + 7]), len(lines[k:k + 7]))
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
    out.write_raw(b'{"id": "a"}\n' * 5, 5)
    with pytest.raises(OutputError, match=r"corpus.jsonl: write failed \(No space left on device\)"):
        out.commit()
    assert list(tmp_path.iterdir()) == []  # nothing under the final name, no temporary file
