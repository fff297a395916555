"""Output files that are either complete or absent.

Every output is written to a temporary file beside its final name and renamed into place
only when the run succeeds, so a crash, Ctrl-C or full disk never leaves a half-written
corpus under the name a downstream job is waiting for. A killed run leaves at most a
`.NAME.thresher-tmp-PID` file, which nothing reads.
"""

from __future__ import annotations

import errno
import io
import os
import queue
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import orjson

TMP_MARKER = ".thresher-tmp-"
SYNC_BEHIND = 32 << 20  # bytes written between background flushes to disk (write_pieces)
_IOV_MAX = 1024  # buffers one writev takes (Linux, macOS)
Piece = bytes | bytearray | memoryview


class OutputError(Exception):
    """An output cannot be written (permissions, missing folder, full disk)."""


class AtomicOutput:
    """A binary JSONL sink for one output path ("-" means stdout, written as it goes)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.count = 0
        self._tmp: Path | None = None
        self._fh: BinaryIO
        self._unsynced = 0
        self._syncer: threading.Thread | None = None
        self._sync_error: OSError | None = None
        self._fd: int | None = None  # for write_pieces; None: a file object without one
        if path == "-":
            self._fh = sys.stdout.buffer
            try:
                self._fd = self._fh.fileno()
            except (io.UnsupportedOperation, AttributeError):  # e.g. a test runner's captured stdout
                pass
            return
        final = Path(path)
        if final.is_dir():
            raise OutputError(f"{path}: is a folder; give a file name")
        parent = final.parent
        if not parent.is_dir():
            raise OutputError(f"{path}: folder {str(parent)!r} does not exist; create it first")
        self._tmp = parent / f".{final.name}{TMP_MARKER}{os.getpid()}"
        try:
            self._fh = open(self._tmp, "wb", buffering=1 << 20)
        except OSError as exc:
            raise OutputError(f"{path}: cannot write ({exc.strerror}); choose a writable location") from exc
        self._fd = self._fh.fileno()

    def write(self, record: dict[str, object]) -> None:
        self.write_line(orjson.dumps(record))

    def write_lines(self, lines: list[bytes]) -> None:
        """`write_line` for many lines in one call (the corpus pass writes in batches)."""
        if not lines:
            return
        try:
            self._fh.write(b"\n".join(lines))
            self._fh.write(b"\n")
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError(self._failed(exc)) from exc
        self.count += len(lines)

    def write_pieces(self, pieces: Sequence[Piece], lines: int) -> None:
        """Write `lines` lines, each ending in a newline, given as consecutive pieces (the corpus
        pass: runs of spilled lines and the spliced lists of duplicates). They go from the
        pieces to the file in `os.writev` calls: not joined into one block first, nor copied
        into the file object's buffer (each was a copy of the whole corpus)."""
        try:
            if self._fd is None:
                size = self._fh.write(b"".join(pieces)) or 0
            else:
                self._fh.flush()  # what went through the buffer first, in order
                size = _writev_all(self._fd, pieces)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError(self._failed(exc)) from exc
        self.count += lines
        self._unsynced += size
        if self._unsynced >= SYNC_BEHIND and self._tmp is not None:
            self._sync_behind()

    def _sync_behind(self) -> None:
        """Have the bytes written so far go to disk in the background, so that `commit`'s
        fsync has little left to wait for (it flushed the whole ~170 MB corpus of a 50k run
        at the end, ~0.15 s of serial time). At most one flush at a time."""
        if self._syncer is not None and self._syncer.is_alive():
            return
        try:
            self._fh.flush()
        except OSError as exc:
            raise OutputError(self._failed(exc)) from exc
        self._unsynced = 0
        self._syncer = threading.Thread(target=self._fdatasync, args=(self._fh.fileno(),),
                                        name="thresher-sync", daemon=True)
        self._syncer.start()

    def _fdatasync(self, fd: int) -> None:
        # Linux reports a failed write-back once per open file: keep it for commit to raise.
        try:
            os.fdatasync(fd)
        except OSError as exc:
            self._sync_error = exc

    def _join_syncer(self) -> None:
        if self._syncer is not None:
            self._syncer.join()
            self._syncer = None
        error, self._sync_error = self._sync_error, None
        if error is not None:
            raise error

    def write_line(self, line: bytes) -> None:
        try:
            self._fh.write(line)
            self._fh.write(b"\n")
        except BrokenPipeError:
            raise  # the reader of stdout went away (e.g. `| head`): not a disk problem
        except OSError as exc:
            raise OutputError(self._failed(exc)) from exc
        self.count += 1

    def commit(self) -> None:
        """Flush, fsync and rename into place; after this the output is complete."""
        try:
            self._fh.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            self.abort()
            raise OutputError(self._failed(exc)) from exc
        try:
            if self._tmp is not None:
                self._join_syncer()
                os.fsync(self._fh.fileno())
                self._fh.close()
                os.replace(self._tmp, self.path)
                self._tmp = None
        except OSError as exc:
            self.abort()
            raise OutputError(self._failed(exc)) from exc

    def _failed(self, exc: OSError) -> str:
        where = "stdout" if self.path == "-" else self.path
        return f"{where}: write failed ({exc.strerror or exc}); free some space or choose another location"

    def abort(self) -> None:
        """Throw the partial output away (the final name is never touched)."""
        if self._tmp is None:
            return
        try:
            self._join_syncer()
        except OSError:
            pass  # thrown away anyway
        try:
            self._fh.close()
        except OSError:
            pass
        try:
            self._tmp.unlink()
        except FileNotFoundError:
            pass
        self._tmp = None


def _writev_all(fd: int, pieces: Sequence[Piece]) -> int:
    """Write every byte of `pieces` to `fd`, in order, however the writes fall; returns the bytes."""
    views = [memoryview(p) for p in pieces if len(p)]
    total = sum(v.nbytes for v in views)
    k = 0
    while k < len(views):
        written = os.writev(fd, views[k:k + _IOV_MAX])
        if written == 0:
            raise OSError(errno.EIO, "the output took no bytes")
        while written:
            if written >= views[k].nbytes:
                written -= views[k].nbytes
                k += 1
            else:
                views[k] = views[k][written:]
                written = 0
    return total


class BackgroundWriter:
    """`AtomicOutput.write_pieces` on a thread of its own, in order: the kernel's copy of one block
    into the page cache overlaps the reading and splicing of the next (pass 2, when the worker
    processes are done, or a one-worker run's idle cores). A write error is raised by the next
    `write_pieces` or by `close`; leaving the block on an exception drops what is still queued."""

    def __init__(self, out: AtomicOutput, depth: int = 4) -> None:
        self.out = out
        self._queue: queue.Queue[tuple[Sequence[Piece], int] | None] = queue.Queue(depth)
        self._error: BaseException | None = None
        self._dropping = False  # the caller left on an exception: skip what is queued
        self._thread = threading.Thread(target=self._run, name="thresher-write", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None and not self._dropping:
                try:
                    self.out.write_pieces(*item)
                except BaseException as exc:  # raised in the caller's thread
                    self._error = exc

    def write_pieces(self, pieces: Sequence[Piece], lines: int) -> None:
        """Queue `AtomicOutput.write_pieces(pieces, lines)`; the pieces must not change until written."""
        if self._error is not None:
            raise self._error
        self._queue.put((pieces, lines))

    def close(self) -> None:
        """Wait for every queued block to be written; raise the first write error."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
            return
        self._dropping = True
        self._queue.put(None)
        self._thread.join()


def write_json_atomically(path: str, obj: object) -> None:
    """A whole JSON document (the report), written complete or not at all."""
    out = AtomicOutput(path)
    try:
        out.write_line(orjson.dumps(obj, option=orjson.OPT_INDENT_2))
        out.commit()
    except BaseException:
        out.abort()
        raise
