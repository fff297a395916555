"""Workers that read their own JSONL byte ranges and spill their own lines (ingest/ranges.py,
ingest/spill.py) write exactly what the parent-read path writes, with one worker or two."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest

from ingest import parallel, ranges
from tests.conftest import read_jsonl, run

WORDS = ("river council flood barrier harbour minister budget vote school teacher strike rail line "
         "storm power grid hospital doctor election ballot court judge appeal fishery quota port").split()
FOOTER = "Velmora harbour tide tables for the week ahead are printed on page eleven of every edition."


def _article(rng: random.Random) -> str:
    paragraphs = [" ".join(rng.choices(WORDS, k=rng.randint(25, 60))) + "." for _ in range(rng.randint(2, 5))]
    if rng.random() < 0.6:
        paragraphs.append(FOOTER)  # recurs in most articles: dropped as corpus boilerplate
    return "\n\n".join(paragraphs)


def _corpus(tmp_path: Path) -> list[Path]:
    """~700 records over a plain JSONL file (blank lines, bad lines, reused ids, near-copies),
    a gzipped JSONL file and a text dump: both reading paths (ranges, stream) in one run."""
    rng = random.Random(7)
    texts = [_article(rng) for _ in range(420)]
    lines: list[str] = []
    for k, text in enumerate(texts):
        if k % 9 == 4:  # a republished copy with a small edit
            text = texts[k - 3].replace("river", "riverside", 1)
        lines.append(json.dumps({"id": f"j{k}", "title": f"Story {k}", "text": text, "section": k % 4}))
        if k % 50 == 7:
            lines += ["", "   ", "{not json", json.dumps({"id": "j3", "text": "a reused id"}),
                      json.dumps({"id": f"nt{k}"})]
    plain = tmp_path / "a.jsonl"
    plain.write_text("\n".join(lines), encoding="utf-8")  # no newline after the last line
    packed = tmp_path / "b.jsonl.gz"
    packed.write_bytes(gzip.compress("\n".join(
        json.dumps({"id": f"g{k}", "text": _article(rng) if k % 5 else texts[k]}) for k in range(150)).encode()))
    dump = tmp_path / "c.txt"
    dump.write_text("".join(f"===== t{k}\n{_article(rng)}\n" for k in range(130)), encoding="utf-8")
    return [plain, packed, dump]


def _ingest(tmp_path: Path, inputs: list[Path], name: str, *extra: str) -> dict[str, bytes]:
    out = {k: tmp_path / f"{name}.{k}" for k in ("corpus", "dups", "rejects", "report")}
    result = run("ingest", *map(str, inputs), "-o", str(out["corpus"]), "--duplicates", str(out["dups"]),
                 "--rejects", str(out["rejects"]), "--report", str(out["report"]), "-q",
                 "--recurring-sample", "300", "--recurring-min", "10", *extra)
    assert result.exit_code == 0, result.output
    report = json.loads(out["report"].read_bytes())
    report.pop("seconds"), report.pop("stages")
    return {k: p.read_bytes() for k, p in out.items() if k != "report"} | {"report": json.dumps(report).encode()}


def test_ranges_and_spills_change_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = _corpus(tmp_path)
    one = _ingest(tmp_path, inputs, "one", "--workers", "1")
    two = _ingest(tmp_path, inputs, "two", "--workers", "2")  # workers forked from this process
    with monkeypatch.context() as patch:
        # as when a progress bar's thread runs: the workers come from a fork server
        patch.setattr(parallel, "_start_method", lambda: "forkserver")
        served = _ingest(tmp_path, inputs, "served", "--workers", "2")
    monkeypatch.setattr(ranges, "splittable", lambda source, fmt="jsonl": False)  # the parent reads every line
    streamed = _ingest(tmp_path, inputs, "streamed", "--workers", "1")
    assert two == one
    assert served == one
    assert streamed == one

    corpus, dups, rejects = (read_jsonl(tmp_path / f"one.{k}") for k in ("corpus", "dups", "rejects"))
    report = json.loads(one["report"])
    assert report["counts"]["read"] == len(corpus) + len(dups) + len(rejects) == 420 + 9 * 3 + 150 + 130
    assert report["removed"]["recurring"] > 300  # the footer was learnt from the sample and dropped
    assert not any(FOOTER in r["text"] for r in corpus)
    assert sorted((r["reason"], r["record"]) for r in rejects if r["file"].endswith("a.jsonl")) == sorted(
        [(reason, 8 + 53 * (k // 50) + d) for k in range(7, 420, 50)
         for reason, d in (("bad_json", 1), ("duplicate_id", 2), ("missing_text", 3))])
    assert {d["id"]: d["duplicate_of"] for d in dups if d["id"].startswith("j")} == {
        f"j{k}": f"j{k - 3}" for k in range(4, 420, 9)}
    copies = {r["id"]: r["duplicates"] for r in corpus if r["duplicates"]}
    assert copies["j1"] == ["j4"] and copies["j0"] == ["g0"]


def _ident(job: tuple[str, list[int], bool]) -> tuple[str, list[int], bool]:
    return job


@pytest.mark.parametrize("workers", [1, 2])
def test_the_sample_jobs_know_the_sample_before_its_last_result(workers: int) -> None:
    """Pass 1a: the sample's chunks (observed) then `lookahead` more (only cleaned), numbered on;
    the count of sample chunks is known by the time its last result comes back from the pool,
    so the detector freezes while the workers clean the chunks past it."""
    from ingest.pipeline import _SampleJobs

    chunks = iter([[1] * 128] * 10)
    jobs = _SampleJobs(chunks, 300, "/tmp/x", 4 if workers > 1 else 0)  # type: ignore[arg-type]
    seen = []
    with parallel.Workers(workers, {}) as pool:
        for k, (path, chunk, learn) in enumerate(pool.map(_ident, jobs, tail=jobs.lookahead)):
            seen.append((path, learn))
            if learn and k == 2 and workers > 1:
                assert jobs.sample_chunks == 3  # the pool asked for the next job before this result
    expected = [(f"/tmp/x/sample-{k}.pickle", k < 3) for k in range(7 if workers > 1 else 3)]
    assert seen == expected and jobs.sample_chunks == 3
    assert len(list(chunks)) == (3 if workers > 1 else 7)  # the rest is pass 1b's
