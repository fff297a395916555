#!/usr/bin/env python3
"""Benchmark `thresher ingest` end to end (not part of the test suite).

    python scripts/benchmark.py --docs 50000                  # generate the reference corpus, run
    python scripts/benchmark.py --corpus path/to/corpus.jsonl -- --workers 2
    python scripts/benchmark.py --docs 50000 --runs 3 -- --no-boilerplate --no-paragraphs --workers 1

Everything after `--` is passed to `thresher ingest`. Prints, per run and as the median of the
runs: articles/s, MB/s, peak RSS of the whole run (parent and workers, summed), and the index bytes per
article the run reported. The corpus generator is ../shared/bench/gen_corpus.py (outside the repo).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = ROOT.parent / "shared" / "bench" / "gen_corpus.py"


def corpus_for(docs: int, cache: Path) -> Path:
    out = cache / f"bench{docs}"
    corpus = out / "corpus.jsonl"
    if not corpus.exists():
        if not GENERATOR.exists():
            sys.exit(f"{GENERATOR} not found: pass --corpus PATH instead")
        subprocess.run([sys.executable, str(GENERATOR), "--docs", str(docs), "--out", str(out)], check=True)
    return corpus


def _tree_rss_kb(root: int) -> int:
    """Resident set of a process and all its descendants, summed (Linux /proc). Summing counts
    pages the processes share once per process: an upper bound on what the run holds."""
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            for children in Path(f"/proc/{pid}/task").glob("*/children"):
                todo.extend(int(c) for c in children.read_text().split())
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total


def run_once(corpus: Path, extra: list[str], workdir: Path) -> dict[str, float]:
    out, report = workdir / "out.jsonl", workdir / "report.json"
    thresher = Path(sys.executable).with_name("thresher")
    cmd = [str(thresher), "ingest", str(corpus), "-o", str(out), "--report", str(report), "--quiet", *extra]
    # Peak RSS of the run: the parent, its fork server and the pool workers (grandchildren,
    # which no rusage of ours would count), sampled every 50 ms and summed.
    # The end is taken when the process exits (`wait`), not at the next 50 ms sample: polling
    # added 25 ms a run on average, ~1% of a 3 s run.
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    peak_kb = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_kb
        while not done.wait(0.05):
            peak_kb = max(peak_kb, _tree_rss_kb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stderr = proc.stderr.read() if proc.stderr else ""  # (until thresher closes it, at exit)
    proc.wait()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if proc.returncode != 0:
        sys.exit(f"thresher failed ({proc.returncode}): {stderr}")
    summary = json.loads(report.read_text())
    articles = summary["counts"]["read"]
    return {
        "seconds": seconds,
        "articles_per_s": articles / seconds,
        "mb_per_s": corpus.stat().st_size / 1e6 / seconds,
        "peak_rss_mb": peak_kb / 1024,
        "index_bytes_per_article": summary.get("index_bytes_per_article") or 0.0,
        "kept": summary["counts"]["kept"],
        "duplicates": summary["counts"]["duplicates"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=50_000, help="generate a reference corpus of this size")
    parser.add_argument("--corpus", type=Path, help="use this JSONL corpus instead of generating one")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "thresher-bench")
    parser.add_argument("extra", nargs="*", help="options for thresher ingest (after --)")
    args = parser.parse_args()
    corpus = args.corpus or corpus_for(args.docs, args.cache)
    # Bytecode for the project's own modules, as any Python writes it on a first run; where
    # PYTHONDONTWRITEBYTECODE is set (as on this project's machines) every run would otherwise
    # recompile them (~0.1 s of each run's start-up).
    import compileall

    for package in ("cli", "ingest", "dedupe"):
        compileall.compile_dir(str(ROOT / package), quiet=1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="thresher-bench-") as tmp:
        for i in range(args.runs):
            row = run_once(corpus, args.extra, Path(tmp))
            rows.append(row)
            print(f"run {i + 1}: " + "  ".join(f"{k} {v:,.1f}" for k, v in row.items()), flush=True)
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(f"median of {args.runs}: corpus {corpus} options {' '.join(args.extra) or '(defaults)'} cpus {os.cpu_count()}")
    print("  ".join(f"{k} {v:,.1f}" for k, v in med.items()))


if __name__ == "__main__":
    main()
