"""Interruptions: Ctrl-C, SIGTERM and SIGKILL on a real `thresher ingest` process.

A stopped run leaves no corpus under the final name, says so in one line and exits with
130 (SIGINT) or 143 (SIGTERM). A killed run leaves at most a `.NAME.thresher-tmp-PID` file,
which the next run ignores. No times are asserted: each test waits until the run is
demonstrably mid-way (its temporary corpus exists and its pool workers are up) before
signalling it.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

THRESHER = str(Path(sys.executable).with_name("thresher"))
ARTICLES = 60_000

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="POSIX signals, Linux /proc")


@pytest.fixture(scope="module")
def big_dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~28 MB of small invented articles: more than the pipe and the first chunks hold, so the
    run is demonstrably mid-way (its workers up) while the test still holds its input open."""
    rng = random.Random(1)
    words = ["".join(rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou") for _ in range(3)) for _ in range(5000)]
    path = tmp_path_factory.mktemp("dump") / "big.txt"
    with open(path, "w", encoding="utf-8") as f:
        for i in range(ARTICLES):
            body = " ".join(rng.choices(words, k=60))
            f.write(f"===== a{i}\nThe council said on Monday that {body}.\n")
    return path


def start(dump: Path, out: Path, spill: Path, workers: int = 2) -> Running:
    """The run reads ``dump`` from a pipe this test keeps open: however fast it is, it cannot
    reach its end (and exit 0) before the test has signalled it."""
    spill.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [THRESHER, "ingest", "-", "--format", "text", "-o", str(out),
         "--duplicates", str(out.with_suffix(".dups.jsonl")), "--tmp-dir", str(spill),
         "--workers", str(workers), "-q"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    feeder = threading.Thread(target=_feed, args=(proc.stdin, dump), daemon=True)
    feeder.start()
    return Running(proc, feeder)


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    feeder: threading.Thread

    def communicate(self, timeout: float) -> tuple[bytes, bytes]:
        """Once signalled: the feeder stops (the pipe breaks or the dump is all written), the
        pipe is closed and the run's exit awaited."""
        self.feeder.join(timeout)
        return self.proc.communicate(timeout=timeout)


def _feed(pipe: IO[bytes], dump: Path) -> None:
    with open(dump, "rb") as f:
        try:
            shutil.copyfileobj(f, pipe)
            pipe.flush()
        except (BrokenPipeError, ValueError):
            pass  # the run was stopped mid-way


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out.extend(int(c) for c in children.read_text().split())
        except OSError:
            continue
    return out


def _ignores_sigint(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    ignored = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")), 16)
    return bool(ignored & (1 << (signal.SIGINT - 1)))


def _is_resource_tracker(pid: int) -> bool:
    try:
        return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _workers_ignoring_sigint(pid: int) -> int:
    """How many of the run's pool workers already ignore SIGINT (Linux /proc). The workers are
    the run's children (forked from it) or, when it ran threads, its fork server's; the
    resource tracker multiprocessing may start ignores SIGINT too, but is no worker."""
    below = _children(pid)
    below += [grandchild for child in below for grandchild in _children(child)]
    return sum(_ignores_sigint(p) and not _is_resource_tracker(p) for p in below)


def wait_until_midway(proc: subprocess.Popen[bytes], out: Path, workers: int = 2) -> None:
    """Until the temporary corpus exists and every pool worker is up (it ignores SIGINT once
    its initializer ran; `--workers 2` is the parent and one worker process): the run is
    demonstrably mid-way, whatever the pipeline spills when."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"run ended before it could be signalled: {proc.stderr.read()!r}"  # type: ignore[union-attr]
        if any(p.name.startswith(f".{out.name}.thresher-tmp-") for p in out.parent.iterdir()) and (
            _workers_ignoring_sigint(proc.pid) >= workers - 1
        ):
            return
        time.sleep(0.05)
    pytest.fail("the run never got going")


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize(
    "sig,code,message",
    [
        (signal.SIGINT, 130, "thresher: interrupted; no output was written under its final name\n"),
        (signal.SIGTERM, 143, "thresher: terminated; no output was written under its final name\n"),
    ],
)
def test_signal_stops_cleanly(tmp_path: Path, big_dump: Path, sig: signal.Signals, code: int, message: str) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out, spill = out_dir / "corpus.jsonl", tmp_path / "spill"
    run = start(big_dump, out, spill)
    wait_until_midway(run.proc, out)
    if sig == signal.SIGINT:
        os.killpg(run.proc.pid, sig)  # Ctrl-C reaches the whole process group, workers included
    else:
        run.proc.send_signal(sig)  # `kill PID`: the parent alone
    stdout, stderr = run.communicate(timeout=120)
    assert run.proc.returncode == code, stderr.decode()
    assert stderr.decode() == message  # one line, and no worker traceback either
    assert stdout == b""
    assert leftovers(out_dir) == []  # no corpus, no duplicates record, no temporary file
    assert leftovers(spill) == []


def test_killed_run_leaves_only_a_temporary_file_the_next_run_ignores(tmp_path: Path, big_dump: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out, spill = out_dir / "corpus.jsonl", tmp_path / "spill"
    run = start(big_dump, out, spill)
    wait_until_midway(run.proc, out)
    os.killpg(run.proc.pid, signal.SIGKILL)
    run.communicate(timeout=60)
    assert run.proc.returncode == -signal.SIGKILL
    left = leftovers(out_dir)
    assert left and all(n.startswith(".") and n.endswith(f".thresher-tmp-{run.proc.pid}") for n in left), left
    assert not out.exists()

    small = tmp_path / "small.txt"
    small.write_text("===== s1\nThe ferry board said on Monday that fares would rise in the spring.\n"
                     "===== s2\nThe library opened its new reading room to the public on Saturday.\n")
    again = subprocess.run([THRESHER, "ingest", str(small), "-o", str(out), "-q", "--workers", "1"],
                           capture_output=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert [line.split(b'"')[3] for line in out.read_bytes().splitlines()] == [b"s1", b"s2"]
    assert leftovers(out_dir) == sorted([*left, out.name])  # the stale file is left alone, not read
