"""The ordered process pool (ingest/parallel.py): order, errors, dead workers, early stops, big
messages, and both ways of starting workers."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from cli.main import cli
from ingest import parallel
from ingest.parallel import WorkerDied, Workers


def _square_slowly(chunk: list[int]) -> list[tuple[int, int]]:
    # uneven work: later chunks often finish before earlier ones
    time.sleep(0.002 * (chunk[0] % 5))
    return [(x, x * x) for x in chunk]


def _fail_on(chunk: list[int], bad: int) -> list[int]:
    if bad in chunk:
        raise ValueError(f"record {bad} is bad")
    return chunk


def _die_past(chunk: list[int], bad: int, parent: int) -> list[int]:
    """A worker process dies on the first chunk it gets from `bad` on. The parent, which takes
    chunks too, does not, and is slow: the worker gets most chunks."""
    if os.getpid() == parent:
        time.sleep(0.02)
    elif chunk[-1] >= bad:
        os.kill(os.getpid(), signal.SIGKILL)
    return chunk


def _echo_big(chunk: list[bytes]) -> list[int]:
    return [len(b) for b in chunk] + [sum(chunk[0][::4096])]


def _cannot_rebuild() -> None:
    raise ValueError("this object cannot be rebuilt here")


class _Unpicklable:
    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (_cannot_rebuild, ())


def _identity(chunk: list[object]) -> list[object]:
    return chunk


def _pid_slowly(chunk: list[int]) -> list[int]:
    time.sleep(0.005)
    return [os.getpid()]


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's reaper may be slow, or absent in a container)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _chunks(n: int, size: int = 3) -> list[list[int]]:
    return [list(range(k * size, (k + 1) * size)) for k in range(n)]


@pytest.fixture(params=["fork", "forkserver"])
def start_method(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(parallel, "_start_method", lambda: request.param)
    return request.param


@pytest.mark.parametrize("workers", [2, 3])
def test_results_come_back_in_input_order(workers: int, start_method: str) -> None:
    chunks = _chunks(60)
    with Workers(workers, {}) as pool:
        got = list(pool.map(_square_slowly, chunks, tail=2))
    assert got == [[(x, x * x) for x in c] for c in chunks]


@pytest.mark.parametrize("workers", [2, 3])
def test_the_parent_and_every_worker_process_take_chunks(workers: int) -> None:
    """`Workers(n)` is n processes: n - 1 worker processes, and the parent, which does the next
    chunk itself while the next result in order is not back."""
    with Workers(workers, {}) as pool:
        pids = [r[0] for r in pool.map(_pid_slowly, [[k] for k in range(60)])]
    assert len(set(pids)) == workers and os.getpid() in pids


def test_the_tail_goes_to_the_worker_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last `tail` chunks are the workers' (the caller works long before their results: the
    detector's freeze); the parent still takes chunks before them."""
    monkeypatch.setattr(parallel, "_start_method", lambda: "fork")
    with Workers(2, {}) as pool:
        pids = [r[0] for r in pool.map(_pid_slowly, [[k] for k in range(40)], tail=6)]
    assert os.getpid() in pids[:34]
    assert os.getpid() not in pids[34:]


def test_an_error_in_a_chunk_the_parent_does_waits_for_its_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent's own chunks fail in order too: every result before the bad chunk comes first,
    as with one worker."""
    monkeypatch.setattr(parallel, "_start_method", lambda: "fork")
    got = []
    with pytest.raises(ValueError, match=r"^record 25 is bad$"), Workers(2, {}) as pool:
        for result in pool.map(_fail_in_the_parent, _chunks(40), 25, os.getpid()):
            got.append(result)  # noqa: PERF402 -- each result as it comes, until the error
    assert got == _chunks(8)  # chunk 8 holds 24-26


def _fail_in_a_worker(chunk: list[int], parent: int) -> list[int]:
    if os.getpid() != parent:
        raise ValueError(f"chunk {chunk[0] // 3} failed in a worker")
    return chunk


def test_an_error_in_a_worker_is_raised_in_the_parent_with_its_traceback(start_method: str) -> None:
    # the first chunks go to the worker process before the parent takes any itself
    with pytest.raises(ValueError, match=r"^chunk 0 failed in a worker$") as info, Workers(2, {}) as pool:
        for _ in pool.map(_fail_in_a_worker, _chunks(40), os.getpid()):
            pass
    assert "_fail_in_a_worker" in str(info.value.__cause__)  # the worker's own traceback


def _fail_in_the_parent(chunk: list[int], bad: int, parent: int) -> list[int]:
    """The worker process is slow: while it holds the first three chunks, the parent does the
    next ones (up to 8), and meets the bad record itself."""
    if os.getpid() != parent:
        time.sleep(0.03)
    return _fail_on(chunk, bad)


def _slowly(chunk: list[object]) -> list[object]:
    time.sleep(0.2)
    return chunk


def test_a_task_the_worker_cannot_unpickle_is_an_error_and_the_pool_goes_on() -> None:
    """The error comes back as the chunk's answer; the chunks still out behind it (slow ones)
    answer later, and the next map must not take their answers for its own."""
    with Workers(2, {}) as pool:
        with pytest.raises(ValueError, match="^this object cannot be rebuilt here$"):
            list(pool.map(_slowly, [[_Unpicklable()], [10], [11], [12], [13]]))
        assert list(pool.map(_identity, [[k] for k in range(6)])) == [[k] for k in range(6)]


def test_results_before_the_error_are_all_delivered() -> None:
    got = []
    with pytest.raises(ValueError, match="record 31 is bad"), Workers(2, {}) as pool:
        for result in pool.map(_fail_on, _chunks(40), 31):
            got.append(result)  # noqa: PERF402 -- each result as it comes, until the error
    assert got == _chunks(10)  # chunk 10 holds 30-32


def test_a_killed_worker_is_an_error_not_a_hang() -> None:
    with pytest.raises(WorkerDied) as info, Workers(2, {}) as pool:
        for _ in pool.map(_die_past, _chunks(40), 31, os.getpid()):
            pass
    assert re.fullmatch(r"a worker process was killed by signal 9 \(out of memory\? try fewer --workers\) "
                        r"with \d+ chunk\(s\) unfinished", str(info.value)), str(info.value)


def test_a_map_left_for_a_new_one_says_so_if_resumed() -> None:
    with Workers(2, {}) as pool:
        first = pool.map(_square_slowly, _chunks(30))
        next(first)
        assert list(pool.map(_identity, [[k] for k in range(5)])) == [[k] for k in range(5)]
        with pytest.raises(RuntimeError, match="^a newer map started on this pool: it runs one map at a time$"):
            list(first)


def test_a_map_stopped_early_leaves_the_pool_ready_for_the_next() -> None:
    with Workers(2, {}) as pool:
        first = pool.map(_square_slowly, _chunks(30))
        assert next(first) == [(x, x * x) for x in range(3)]
        first.close()  # the caller stops after one result
        chunks = _chunks(20, size=2)
        assert list(pool.map(_square_slowly, chunks)) == [[(x, x * x) for x in c] for c in chunks]


def test_messages_larger_than_the_pipes_do_not_block(start_method: str) -> None:
    """Tasks and results of several MB each, more in flight than any pipe holds: the parent
    never blocks writing a task while a worker waits to hand back a result."""
    big = [[bytes([k]) * (3 << 20), b"x" * k] for k in range(12)]
    with Workers(2, {}) as pool:
        got = list(pool.map(_echo_big, big, tail=4))
    assert got == [[3 << 20, k, k * len(range(0, 3 << 20, 4096))] for k in range(12)]


def test_the_workers_are_gone_after_the_pool() -> None:
    with Workers(2, {}) as pool:
        pids = {r[0] for r in pool.map(_pid_slowly, [[k] for k in range(20)])} - {os.getpid()}
    assert len(pids) == 1  # the worker process
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_dead_worker_reaches_the_user_as_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from click.testing import CliRunner

    from cli import main

    def dead(*args: object, **kwargs: object) -> None:
        raise WorkerDied("a worker process was killed by signal 9 (out of memory? try fewer --workers) "
                         "with 3 chunk(s) unfinished")

    monkeypatch.setattr(main, "run_ingest", dead)
    src = tmp_path / "a.jsonl"
    src.write_text('{"id": "a", "text": "Some text."}\n')
    result = CliRunner().invoke(cli, ["ingest", str(src), "-o", str(tmp_path / "out.jsonl"), "--quiet"])
    assert result.exit_code == 1
    assert result.output == ("Error: a worker process was killed by signal 9 (out of memory? try fewer "
                             "--workers) with 3 chunk(s) unfinished\n")


_ORPHAN_SCRIPT = """
import sys, time
from ingest.parallel import Workers

def pid_then_sleep(chunk):
    import os
    os.write(1, b"%d\\n" % os.getpid())  # one write: the processes' lines do not interleave
    time.sleep(1)
    return chunk

if __name__ == "__main__":
    with Workers(2, {}) as pool:
        for _ in pool.map(pid_then_sleep, [[k] for k in range(4)]):
            pass
"""


def test_workers_stop_when_their_parent_is_killed(tmp_path) -> None:
    """`kill -9` of the parent alone: its workers see their task pipes close and exit, instead
    of lingering (a forked worker holding its own pipe's write end would never see the end)."""
    import subprocess
    import sys

    script = tmp_path / "orphans.py"
    script.write_text(_ORPHAN_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert proc.stdout is not None
    # the worker process and the parent are each in a chunk
    pids = {int(proc.stdout.readline()), int(proc.stdout.readline())} - {proc.pid}
    assert len(pids) == 1
    proc.kill()
    proc.wait()
    # the worker finishes the chunks it already holds (a second each), then meets the end of
    # its task pipe
    deadline = time.monotonic() + 60
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if _running(pid)}
        time.sleep(0.1)
    assert not alive, f"workers {sorted(alive)} outlived their parent"


def test_what_a_partial_write_leaves_is_the_rest_of_the_message() -> None:
    body = bytes(range(256)) * 3
    message = parallel._FRAME.pack(len(body)) + body
    for written in (0, 1, 7, 8, 9, 100, len(message) - 1):
        assert parallel._frame_rest(body, written) == message[written:]
