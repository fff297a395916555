"""Ordered parallel map over chunks, for the CPU-bound stages.

Results come back in input order whatever the worker count, which is what keeps the output
byte-identical between `--workers 1` and `--workers N`. At most a few chunks per worker are in
flight, so memory stays bounded however long the input is. Inputs smaller than one chunk
never start a pool: spawning workers costs more than such inputs take.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_CONTEXT: dict[str, Any] = {}


def worker_context() -> dict[str, Any]:
    """The per-process state installed by `set_worker_context` (rules, configs, detectors)."""
    return _CONTEXT


def set_worker_context(context: dict[str, Any]) -> None:
    _CONTEXT.clear()
    _CONTEXT.update(context)


def _init_worker(context: dict[str, Any]) -> None:
    # Ctrl-C reaches the whole process group; only the parent decides what happens then.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_worker_context(context)


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def map_chunks(
    fn: Callable[[list[T]], list[R]],
    chunks: Iterable[list[T]],
    *,
    workers: int,
    context: dict[str, Any],
) -> Iterator[list[R]]:
    """Apply `fn` to each chunk, in worker processes when there is more than one chunk."""
    it = iter(chunks)
    first = next(it, None)
    if first is None:
        return
    second = next(it, None)
    if workers <= 1 or second is None:
        set_worker_context(context)
        yield fn(first)
        if second is not None:
            yield fn(second)
            for chunk in it:
                yield fn(chunk)
        return

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(context,)) as pool:
        pending: deque[Future[list[R]]] = deque()
        pending.append(pool.submit(fn, first))
        pending.append(pool.submit(fn, second))
        limit = workers * 3
        try:
            for chunk in it:
                while len(pending) >= limit:
                    yield pending.popleft().result()
                pending.append(pool.submit(fn, chunk))
            while pending:
                yield pending.popleft().result()
        except BaseException:
            for fut in pending:
                fut.cancel()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
