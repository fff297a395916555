"""Ordered parallel map over chunks, for the CPU-bound stages.

Results come back in input order whatever the worker count, which is what keeps the output
byte-identical between `--workers 1` and `--workers N`. At most a few chunks per worker are in
flight, so memory stays bounded however long the input is. The pool starts only when a second
chunk arrives: spawning workers costs more than small inputs take.

`Workers(n)` runs on n processes: the parent and n - 1 worker processes. The parent does not
only wait for results in order: whenever the next one is not back yet, it does the next chunk
itself. On the 2-core machine, a parent that only waited shared the two cores with two workers
(~800 involuntary context switches in a 50k run, ~300 now) and every chunk crossed the pipes
as pickles both ways; as one of the two processes it takes ~48% of the chunks itself.

The worker processes each have a task pipe and a result pipe of their own, driven
by the caller's thread alone: it writes tasks without blocking (a full task pipe never stalls it
while a worker waits to hand back a result) and reads each result as it arrives.
concurrent.futures' ProcessPoolExecutor did the same with two threads of the parent (a task
feeder and a result manager) and a Future per chunk: ~0.3 s of the parent's CPU in a 50k run
with 2 workers, taken from the two cores the workers need.
"""

from __future__ import annotations

import ctypes
import fcntl
import gc
import multiprocessing
import os
import pickle
import selectors
import signal
import struct
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

T = TypeVar("T")
_WARMING_MAX = 256  # chunks the parent may get ahead while the pool starts, at most
_AHEAD = 8  # chunks the parent may get ahead of the pool once it runs (with `tail` more)
_QUEUED = 3  # chunks queued in a worker process, at most
R = TypeVar("R")
_FRAME = struct.Struct("<Q")  # a message on a pipe: its length, then its pickle
_PIPE_BYTES = 1 << 20

_CONTEXT: dict[str, Any] = {}
# What the fork server imports once for every worker: the worker code (ingest.clean), and with
# boilerplate stripping on, the built-in rules compiled too (ingest.preload).
PRELOAD = ("ingest.clean",)
PRELOAD_STRIPPING = ("ingest.preload",)


class WorkerDied(RuntimeError):
    """A worker process ended while it still had chunks (killed, out of memory, crashed)."""


class _RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, attached as its ``__cause__``."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


def worker_context() -> dict[str, Any]:
    """The per-process state installed by the pool (rules, configs, settings)."""
    return _CONTEXT


def _set_context(context: dict[str, Any]) -> None:
    _CONTEXT.clear()
    _CONTEXT.update(context)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def tune_malloc() -> None:
    """Keep glibc from mapping and unmapping memory for every chunk. Chunks travel as ~1 MB
    pickles; by default each such buffer is a fresh mmap (or trims the heap when freed), and
    touching it again page-faults: ~190,000 faults for the 50k reference corpus with 2 workers,
    ~45,000 with large allocations kept on the heap. Only a speed setting: where there is no
    glibc ``mallopt`` (musl, macOS) nothing changes."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, 32 << 20)  # glibc's maximum on 64-bit
    mallopt(_M_TRIM_THRESHOLD, 128 << 20)


def _init_worker(context: dict[str, Any]) -> None:
    # Ctrl-C reaches the whole process group; only the parent decides what happens then.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A worker forked from the parent inherits its SIGTERM handler (which raises to clean up
    # the outputs); a worker told to stop by the parent must just stop, without a traceback.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # What a forked worker inherited stays alive: its collections need not walk it (and so
    # write to, and copy, the parent's pages).
    gc.freeze()
    tune_malloc()
    _set_context(context)


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _read_exact(fh: Any, n: int) -> bytearray | None:
    """`n` bytes from the blocking raw file `fh`; None at end of file before the first byte."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = fh.readinto(view[got:])
        if not k:
            if got:
                raise EOFError("the pipe closed in the middle of a message")
            return None
        got += k
    view.release()
    return buf


def _read_frame(fh: Any) -> bytearray | None:
    head = _read_exact(fh, _FRAME.size)
    if head is None:
        return None
    (size,) = _FRAME.unpack(head)
    body = _read_exact(fh, size) if size else bytearray()
    if body is None:
        raise EOFError("the pipe closed in the middle of a message")
    return body


def _write_frame(fd: int, body: bytes) -> int:
    """Write one message (length, then `body`) in one system call where the pipe takes it all;
    returns the bytes written, which on a non-blocking pipe may be fewer."""
    head = _FRAME.pack(len(body))
    return os.writev(fd, (head, body))


def _frame_rest(body: bytes, written: int) -> bytes:
    """What `_write_frame` left unwritten of the message of `body`."""
    if written < _FRAME.size:
        return _FRAME.pack(len(body))[written:] + body
    return body[written - _FRAME.size:]


def _reply(task: bytearray) -> bytes:
    """Run one task (a pickled `(fn, chunk, args)`) and pickle its answer: `(True, result)`, or
    `(False, exception, traceback text)` when unpickling the task, the call or pickling its
    result failed."""
    try:
        fn, chunk, args = pickle.loads(task)
        return pickle.dumps((True, fn(chunk, *args)), protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException as exc:  # noqa: BLE001 -- every failure goes back to the parent
        text = "".join(traceback.format_exception(exc))
        try:
            return pickle.dumps((False, exc, text), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 -- an exception that cannot travel: its words can
            return pickle.dumps((False, RuntimeError(f"{type(exc).__name__}: {exc}"), text),
                                protocol=pickle.HIGHEST_PROTOCOL)


def _serve(tasks: Connection, results: Connection, context: dict[str, Any], inherited: tuple[int, ...]) -> None:
    """A worker process: run each task of the task pipe, in order, and answer on the result
    pipe, until the parent closes the task pipe (or dies: the pipe closes then too)."""
    for fd in inherited:  # a forked worker's copies of the parent's ends of the pipes
        try:
            os.close(fd)
        except OSError:
            pass
    _init_worker(context)
    reader = open(tasks.fileno(), "rb", buffering=0, closefd=False)  # noqa: SIM115
    out = results.fileno()
    while (task := _read_frame(reader)) is not None:
        reply = _reply(task)
        del task
        try:
            written = _write_frame(out, reply)
            if written < _FRAME.size + len(reply):
                rest = memoryview(_frame_rest(reply, written))
                while rest:
                    rest = rest[os.write(out, rest):]
        except BrokenPipeError:
            return  # the parent stopped listening: nothing is waiting for this answer


@dataclass
class _Worker:
    """The parent's side of one worker: its process, its pipes, and the chunks it holds."""

    process: BaseProcess
    task_conn: Connection  # the parent's (non-blocking) write end
    result_conn: Connection  # the parent's read end
    results: Any  # a raw file on result_conn, read blocking
    queued: deque[tuple[int, int]] = field(default_factory=deque)  # (map, chunk number) it holds, oldest first
    outbox: bytearray = field(default_factory=bytearray)  # task bytes not yet written


def _widen(conn: Connection) -> None:
    """Give a pipe a 1 MB buffer (Linux; the default 64 KB makes a ~1 MB chunk cross in 16
    pieces, each a context switch). Only a speed setting: a pipe that cannot be resized keeps
    its size."""
    size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if size is not None:
        try:
            fcntl.fcntl(conn.fileno(), size, _PIPE_BYTES)
        except OSError:
            pass


def _start_method() -> str:
    """How the pool's workers start. A plain fork of the parent is ready at once, with every
    module already imported; but forking a process that runs other threads (the progress
    bar's) can leave a lock held forever in the child, so then the workers fork from a fork
    server that imported the worker code once (ready after ~0.3 s; spawning each worker costs
    ~0.5 s of imports). Only the start-up differs: results do not depend on it."""
    methods = multiprocessing.get_all_start_methods()
    # (Linux only: on macOS a forked child of a process that loaded system frameworks may crash.)
    if sys.platform.startswith("linux") and "fork" in methods and threading.active_count() == 1:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


class Workers:
    """A lazily started pool of `workers` processes (the parent and `workers - 1` worker
    processes) sharing one context; use as a context manager."""

    def __init__(self, workers: int, context: dict[str, Any]) -> None:
        self.workers = workers
        self.context = context
        self._pool: list[_Worker] | None = None
        self._method = ""
        self._selector: selectors.BaseSelector | None = None
        self._answered = False  # a worker has sent back a result
        self._map = 0  # which map call is current: answers to an abandoned one are dropped
        _set_context(context)  # in-process runs (one worker, or one chunk) use it too

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            if exc[0] is not None:
                self._stop_workers()
            self._shutdown()

    def _stop_workers(self) -> None:
        """On an error or a signal, end the workers now and wait until they are gone. Workers
        write into the run's temporary folder (sample chunks, spills); one still finishing its
        chunk while the parent removes that folder made the removal fail ("Directory not
        empty") and turned a clean Ctrl-C into a traceback."""
        for worker in self._pool or ():
            if worker.process.exitcode is None:
                worker.process.terminate()
        for worker in self._pool or ():
            worker.process.join(timeout=10)

    def _shutdown(self) -> None:
        """Close the task pipes (a worker stops at their end) and wait for the workers."""
        pool, self._pool = self._pool or [], None
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        for worker in pool:
            worker.task_conn.close()
            worker.results.close()
            worker.result_conn.close()  # (a worker still answering a chunk nobody waits for stops)
        for worker in pool:
            worker.process.join()

    def _start(self) -> list[_Worker]:
        if self._pool is None:
            ctx = multiprocessing.get_context(_start_method())
            self._method = ctx.get_start_method()
            if self._method == "forkserver":
                settings = self.context.get("clean")
                ctx.set_forkserver_preload(list(PRELOAD_STRIPPING if getattr(settings, "boilerplate", False)
                                                else PRELOAD))
            self._selector = selectors.DefaultSelector()
            self._pool = []
            # Workers ignore SIGINT only once initialised; a Ctrl-C while they start would
            # make them print tracebacks. Start them with SIGINT blocked (they inherit the
            # mask; SIG_IGN then discards it) and let the parent receive it afterwards.
            old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                for _ in range(self.workers - 1):  # the parent is the last one
                    self._pool.append(self._start_worker(ctx))
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
        return self._pool

    def _start_worker(self, ctx: Any) -> _Worker:
        task_r, task_w = ctx.Pipe(duplex=False)
        result_r, result_w = ctx.Pipe(duplex=False)
        _widen(task_w)
        _widen(result_w)
        # A forked worker inherits the parent's ends of every pipe so far, its own included:
        # it closes them, so that each task pipe ends when the parent closes it (or dies).
        inherited: tuple[int, ...] = ()
        if self._method == "fork":
            inherited = tuple(fd for w in self._pool or () for fd in (w.task_conn.fileno(), w.result_conn.fileno()))
            inherited += (task_w.fileno(), result_r.fileno())
        process = ctx.Process(target=_serve, args=(task_r, result_w, self.context, inherited),
                              name="thresher-worker", daemon=True)
        process.start()
        task_r.close()  # the worker's ends: the parent keeps only its own
        result_w.close()
        os.set_blocking(task_w.fileno(), False)
        results = open(result_r.fileno(), "rb", buffering=0, closefd=False)  # noqa: SIM115 -- the pool's lifetime
        worker = _Worker(process, task_w, result_r, results)
        assert self._selector is not None
        self._selector.register(result_r.fileno(), selectors.EVENT_READ, worker)
        return worker

    def _send(self, number: int, task: bytes) -> None:
        """Hand chunk `number` to the worker holding the fewest chunks (the first such). The
        task goes straight to its pipe; only what the pipe does not take yet is buffered."""
        pool = self._pool or []
        worker = min(pool, key=lambda w: len(w.queued))
        worker.queued.append((self._map, number))
        if worker.outbox:  # earlier tasks still wait for the pipe: this one queues behind them
            worker.outbox += _FRAME.pack(len(task))
            worker.outbox += task
            return
        try:
            written = _write_frame(worker.task_conn.fileno(), task)
        except BlockingIOError:
            written = 0
        except BrokenPipeError:
            raise self._died(worker) from None
        if written < _FRAME.size + len(task):
            worker.outbox += _frame_rest(task, written)
            self._watch(worker)

    def _flush(self, worker: _Worker) -> None:
        """Write what the pipe takes of a worker's unsent tasks; the rest waits for the pipe
        to drain (`_collect` watches it)."""
        fd = worker.task_conn.fileno()
        while worker.outbox:
            try:
                written = os.write(fd, worker.outbox)
            except BlockingIOError:
                break
            except BrokenPipeError:
                raise self._died(worker) from None
            del worker.outbox[:written]
        self._watch(worker)

    def _watch(self, worker: _Worker) -> None:
        """Have `_collect` wake up when a worker's task pipe can take more, while it has unsent tasks."""
        assert self._selector is not None
        fd = worker.task_conn.fileno()
        watched = fd in self._selector.get_map()
        if worker.outbox and not watched:
            self._selector.register(fd, selectors.EVENT_WRITE, worker)
        elif not worker.outbox and watched:
            self._selector.unregister(fd)

    def _died(self, worker: _Worker) -> WorkerDied:
        worker.process.join(timeout=5)
        code = worker.process.exitcode
        how = (f"was killed by signal {-code}" if code is not None and code < 0
               else f"exited with code {code}" if code is not None else "stopped answering")
        hint = " (out of memory? try fewer --workers)" if code == -signal.SIGKILL else ""
        return WorkerDied(f"a worker process {how}{hint} with {len(worker.queued)} chunk(s) unfinished")

    def _collect(self, done: dict[int, tuple[Any, ...]], timeout: float | None) -> None:
        """Wait up to `timeout` (None: until something happens) for results, and write what
        the task pipes take meanwhile; each result read goes into `done` by chunk number."""
        assert self._selector is not None
        for key, events in self._selector.select(timeout):
            worker: _Worker = key.data
            if events & selectors.EVENT_WRITE and key.fd == worker.task_conn.fileno():
                self._flush(worker)
                continue
            try:
                frame = _read_frame(worker.results)
            except EOFError:
                frame = None
            if frame is None or not worker.queued:
                raise self._died(worker)
            current, number = worker.queued.popleft()
            self._answered = True
            if current != self._map:
                continue  # the answer to a chunk of a map its caller left early
            try:
                done[number] = pickle.loads(frame)
            except Exception as exc:  # noqa: BLE001 -- e.g. an exception type that cannot be rebuilt
                done[number] = (False, RuntimeError(f"a worker's result could not be read: {exc}"), "")

    def map(self, fn: Callable[..., list[R]], chunks: Iterable[list[Any]], *args: Any,
            tail: int = 0) -> Iterator[list[R]]:
        """Apply `fn(chunk, *args)` to each chunk; yields results in chunk order. Each worker
        process holds up to three chunks; whenever the next result in order is not back, the
        parent does the next chunk itself (with at most `tail` + 8 more chunks out than the
        workers hold). The last `tail`
        chunks all go to the worker processes: a caller that works long once it has the
        result before them (the recurring detector's freeze) leaves the workers busy with them.
        An error in a chunk is raised in its turn, after every result before it.
        One map at a time: a caller that leaves a map early (an error, `close`, or a new map)
        leaves its chunks still out to finish, and their answers are dropped as they come."""
        it = iter(chunks)
        first = next(it, None)
        if first is None:
            return
        second = next(it, None)
        if self.workers <= 1 or (second is None and self._pool is None):
            yield fn(first, *args)
            if second is not None:
                yield fn(second, *args)
                for chunk in it:
                    yield fn(chunk, *args)
            return
        pool = self._start()
        self._map += 1
        this_map = self._map
        queued_max = _QUEUED * len(pool)
        ahead_max = queued_max + tail + _AHEAD
        done: dict[int, tuple[Any, ...]] = {}  # finished chunks not yet yielded, by number
        handed = yielded = 0  # chunks handed out (to the workers or done here), chunks yielded
        source = _ReadAhead(chain((first,) if second is None else (first, second), it), tail)
        while True:
            if self._map != this_map:
                raise RuntimeError("a newer map started on this pool: it runs one map at a time")
            # Until a worker has answered once (a fork server's take ~0.5 s to start: imports),
            # the parent may get far ahead of them, and does the tail too.
            ahead = ahead_max if self._answered else _WARMING_MAX
            while handed - yielded < ahead and (self._queued() < queued_max or (self._answered and source.in_tail())):
                chunk = source.next()
                if chunk is None:
                    break
                self._send(handed, pickle.dumps((fn, chunk, args), protocol=pickle.HIGHEST_PROTOCOL))
                handed += 1
                del chunk
            if yielded in done:
                reply = done.pop(yielded)
                yielded += 1
                if not reply[0]:
                    raise reply[1] from _RemoteTraceback(reply[2]) if reply[2] else None
                yield reply[1]
                continue
            if source.exhausted() and yielded == handed:
                return
            if handed - yielded < ahead and not source.exhausted() and not (self._answered and source.in_tail()):
                self._collect(done, 0)
                if yielded in done:
                    continue
                chunk = source.next()
                if chunk is not None:
                    done[handed] = _here(fn, chunk, args)  # in chunk order: it queues behind the pool's
                    handed += 1
                    del chunk
                continue
            self._collect(done, None)

    def _queued(self) -> int:
        """Chunks the worker processes hold (a map left early's included: they are still work)."""
        return sum(len(w.queued) for w in self._pool or ())


class _ReadAhead:
    """The chunks of a map, read `tail` ahead: so that the map knows when the ones left are the
    last `tail` (the worker processes'), before the input ends."""

    def __init__(self, chunks: Iterator[list[Any]], tail: int) -> None:
        self._chunks = chunks
        self._tail = tail
        self._read: deque[list[Any]] = deque()
        self._ended = False

    def _fill(self) -> None:
        while not self._ended and len(self._read) <= self._tail:
            chunk = next(self._chunks, None)
            if chunk is None:
                self._ended = True
            else:
                self._read.append(chunk)

    def next(self) -> list[Any] | None:
        self._fill()
        return self._read.popleft() if self._read else None

    def in_tail(self) -> bool:
        """The chunks left are the last `tail` (or fewer)."""
        self._fill()
        return self._ended and bool(self._read)

    def exhausted(self) -> bool:
        self._fill()
        return self._ended and not self._read


def _here(fn: Callable[..., Any], chunk: list[Any], args: tuple[Any, ...]) -> tuple[Any, ...]:
    """A chunk done by the parent, answered as a worker answers: its error waits for its turn."""
    try:
        return (True, fn(chunk, *args))
    except Exception as exc:  # noqa: BLE001 -- raised in its turn by `map`
        return (False, exc, "")
