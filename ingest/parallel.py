"""Ordered parallel map over chunks, for the CPU-bound stages.

Results come back in input order whatever the worker count, which is what keeps the output
byte-identical between `--workers 1` and `--workers N`. At most a few chunks per worker are in
flight, so memory stays bounded however long the input is. The pool starts only when a second
chunk arrives: spawning workers costs more than small inputs take.
"""

from __future__ import annotations

import ctypes
import fcntl
import multiprocessing
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import chain, islice
from typing import Any, TypeVar

T = TypeVar("T")
_WARMING_MAX = 256  # chunks finished by the parent while the pool starts, at most
R = TypeVar("R")

_CONTEXT: dict[str, Any] = {}
# What the fork server imports once for every worker: the worker code (ingest.clean), and with
# boilerplate stripping on, the built-in rules compiled too (ingest.preload).
PRELOAD = ("ingest.clean",)
PRELOAD_STRIPPING = ("ingest.preload",)


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
    tune_malloc()
    _set_context(context)


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _widen_pipes(pool: ProcessPoolExecutor) -> None:
    """Give the pool's task and result pipes 1 MB buffers (Linux; the default 64 KB makes a
    ~1 MB chunk cross in 16 pieces, each a context switch). Only a speed setting: where the
    pipes cannot be resized, they keep their size."""
    size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if size is None:
        return
    for queue in (getattr(pool, "_call_queue", None), getattr(pool, "_result_queue", None)):
        for end in (getattr(queue, "_reader", None), getattr(queue, "_writer", None)):
            try:
                fcntl.fcntl(end.fileno(), size, 1 << 20)  # type: ignore[union-attr]
            except (AttributeError, OSError):
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
    """A lazily started process pool sharing one context; use as a context manager."""

    def __init__(self, workers: int, context: dict[str, Any]) -> None:
        self.workers = workers
        self.context = context
        self._pool: ProcessPoolExecutor | None = None
        _set_context(context)  # in-process runs (one worker, or one chunk) use it too

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            if exc[0] is not None:
                self._stop_workers()
            self._pool.shutdown(wait=exc[0] is None, cancel_futures=True)
            self._pool = None

    def _stop_workers(self) -> None:
        """On an error or a signal, end the workers now and wait until they are gone. Workers
        write into the run's temporary folder (sample chunks, spills); one still finishing its
        chunk while the parent removes that folder made the removal fail ("Directory not
        empty") and turned a clean Ctrl-C into a traceback."""
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        for proc in processes:
            proc.terminate()
        for proc in processes:
            proc.join(timeout=10)

    def _start(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = multiprocessing.get_context(_start_method())
            if ctx.get_start_method() == "forkserver":
                settings = self.context.get("clean")
                ctx.set_forkserver_preload(list(PRELOAD_STRIPPING if getattr(settings, "boilerplate", False)
                                                else PRELOAD))
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                             initargs=(self.context,))
            # Workers ignore SIGINT only once initialised; a Ctrl-C while they start would
            # make them print tracebacks. Start them with SIGINT blocked (they inherit the
            # mask; SIG_IGN then discards it) and let the parent receive it afterwards.
            _widen_pipes(self._pool)
            old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                getattr(self._pool, "_adjust_process_count", lambda: None)()  # start workers now
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
        return self._pool

    def map(self, fn: Callable[..., list[R]], chunks: Iterable[list[Any]], *args: Any,
            window: int = 0) -> Iterator[list[R]]:
        """Apply `fn(chunk, *args)` to each chunk; yields results in chunk order. Up to three
        chunks a worker are in flight, and `window` more: a chunk handed out before the
        previous result is yielded keeps the workers busy while the caller works on it."""
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
        starting = self._pool is None
        pool = self._start()
        # Workers from a fork server take ~0.5 s to start (imports): the parent works meanwhile.
        # Forked ones are ready at once, and a parent doing chunks too would only compete with them.
        warming = starting and pool._mp_context.get_start_method() != "fork"  # type: ignore[attr-defined]
        pending: deque[Future[list[R]]] = deque()
        limit = self.workers * 3 + window
        first_jobs: list[Future[list[R]]] = []
        for chunk in chain((first,) if second is None else (first, second), it):
            if warming:
                if len(first_jobs) < limit:
                    first_jobs.append(pool.submit(fn, chunk, *args))
                    pending.append(first_jobs[-1])
                    continue
                if not any(job.done() for job in first_jobs) and len(pending) < _WARMING_MAX:
                    # Until a worker answers, the parent does the work itself rather than wait
                    # idle (results stay in chunk order: they queue behind the pool's).
                    done: Future[list[R]] = Future()
                    done.set_result(fn(chunk, *args))
                    pending.append(done)
                    continue
                warming = False
            while len(pending) >= limit:
                yield pending.popleft().result()
            pending.append(pool.submit(fn, chunk, *args))
        while pending:
            yield pending.popleft().result()
