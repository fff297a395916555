"""The persistent index (`ingest --index`, `thresher index`): batches, reruns, kills, concurrency.

Every backend test runs twice: on an SQLite file and on a real `redis-server` that the
`redis_server` fixture starts on a free loopback port (skipped only when the binary is absent
and THRESHER_REQUIRE_REDIS is not set; CI sets it).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, needs_shared, read_jsonl, run

FAST = ("--no-boilerplate", "--workers", "1", "--quiet")
THRESHER = [sys.executable, "-c", "from cli.main import cli; cli()"]


# -- a real redis-server ------------------------------------------------------------------------


class RedisServer:
    def __init__(self, port: int, proc: subprocess.Popen) -> None:
        self.port = port
        self.proc = proc

    def url(self, prefix: str | None = None, lock_ttl: float = 2) -> str:
        prefix = prefix or "t" + uuid.uuid4().hex[:10]
        return f"redis://127.0.0.1:{self.port}/0?prefix={prefix}&lock_ttl={lock_ttl:g}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("THRESHER_REQUIRE_REDIS"):
            pytest.fail("redis-server is not installed but THRESHER_REQUIRE_REDIS is set (.ci/run installs it)")
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    folder = tmp_path_factory.mktemp("redis")
    port = _free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"redis-server did not start on port {port}")
            time.sleep(0.05)
    yield RedisServer(port, proc)
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(params=["sqlite", "redis"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "index.db")
    return request.getfixturevalue("redis_server").url()


# -- generated stories with near-duplicate variants ------------------------------------------------

_RNG_WORDS = random.Random(7)
WORDS = ["".join(_RNG_WORDS.choice("bcdfghklmnprstvz") + _RNG_WORDS.choice("aeiou")
                 for _ in range(_RNG_WORDS.randint(1, 4))) for _ in range(3000)]


def story_text(rng: random.Random, paragraphs: int = 5) -> list[str]:
    out = []
    for _ in range(paragraphs):
        sentences = []
        for _ in range(rng.randint(3, 4)):
            words = [rng.choice(WORDS) for _ in range(rng.randint(10, 16))]
            sentences.append(" ".join(words).capitalize() + ".")
        out.append(" ".join(sentences))
    return out


def variant(rng: random.Random, paragraphs: list[str], kind: str) -> str:
    if kind == "prefix":  # a shorter version: contained in the original
        return "\n\n".join(paragraphs[:4])
    if kind == "edit":  # a few words changed
        words = "\n\n".join(paragraphs).split(" ")
        for k in rng.sample(range(len(words)), len(words) // 40):
            words[k] = rng.choice(WORDS)
        return " ".join(words)
    return "\n\n".join(paragraphs)


def make_records(stories: int, seed: int = 1, start: int = 0) -> list[dict[str, str]]:
    """Articles of `stories` stories, 1-4 copies each (original, edits, prefixes), shuffled;
    the id says the story: s0007-2 is the third copy of story 7."""
    rng = random.Random(seed)
    records = []
    for s in range(start, start + stories):
        paragraphs = story_text(rng)
        kinds = ["original"] + rng.sample(["edit", "prefix", "edit"], rng.randint(0, 3))
        for k, kind in enumerate(kinds):
            records.append({"id": f"s{s:04d}-{k}", "text": variant(rng, paragraphs, kind)})
    rng.shuffle(records)
    return records


def write_jsonl(path: Path, records: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def story(aid: str) -> str:
    return aid.split("-")[0]


def ingest(tmp: Path, name: str, records: list[dict[str, str]], location: str | None, *extra: str):
    """Run `thresher ingest` in-process; returns (result, corpus rows, duplicates rows, report)."""
    src = write_jsonl(tmp / f"{name}.in.jsonl", records)
    out, dups, report = tmp / f"{name}.jsonl", tmp / f"{name}.dups.jsonl", tmp / f"{name}.report.json"
    args = ["ingest", str(src), "-o", str(out), "--duplicates", str(dups), "--report", str(report), *FAST]
    if location is not None:
        args += ["--index", location]
    result = run(*args, *extra)
    if result.exit_code != 0:
        return result, None, None, None
    return result, read_jsonl(out), read_jsonl(dups), json.loads(report.read_text())


def partition(corpora: list[list[dict]], duplicate_records: list[list[dict]]) -> set[frozenset[str]]:
    """Clusters as sets of ids, following in-run `duplicates` lists, cross-run `duplicate_of`
    and the clusters a record `merged`."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for corpus in corpora:
        for row in corpus:
            for d in [row["id"], *row["duplicates"]]:
                parent[find(d)] = find(row["id"])
    for records in duplicate_records:
        for row in records:
            for d in [row["id"], *(m["id"] for m in row.get("merged", []))]:
                parent[find(d)] = find(row["duplicate_of"])
    groups: dict[str, set[str]] = {}
    for x in list(parent):
        groups.setdefault(find(x), set()).add(x)
    return {frozenset(g) for g in groups.values()}


# -- behaviour on both backends -------------------------------------------------------------------


def test_three_batches_give_the_clusters_of_one_run(location: str, tmp_path: Path) -> None:
    records = make_records(60)
    _, one, one_dups, _ = ingest(tmp_path, "one", records, None)
    corpora, dups = [], []
    for b in range(3):
        result, corpus, d, report = ingest(tmp_path, f"b{b}", records[b::3], location, "--run-id", f"day{b}")
        assert result.exit_code == 0, result.output
        assert report["index"]["run_id"] == f"day{b}"
        corpora.append(corpus)
        dups.append(d)
    kept = [row["id"] for corpus in corpora for row in corpus]
    assert len(kept) == len(one) == 60
    assert sorted(map(story, kept)) == sorted({story(r["id"]) for r in records})
    assert partition(corpora, dups) == partition([one], [one_dups])
    cross = [row for d in dups for row in d if "duplicate_of_run" in row]
    assert cross and all(row["duplicate_of_run"] in {"day0", "day1"} for row in cross)
    assert all(story(row["id"]) == story(row["duplicate_of"]) for row in cross)


def test_yesterdays_article_returns_as_a_duplicate(location: str, tmp_path: Path) -> None:
    rng = random.Random(3)
    ferry, library = story_text(rng), story_text(rng)
    _, corpus, _, report = ingest(tmp_path, "mon", [{"id": "ferry", "text": variant(rng, ferry, "original")}],
                                  location, "--run-id", "monday")
    assert [r["id"] for r in corpus] == ["ferry"]
    assert report["index"] == {"location": location.replace("***", "***"), "run_id": "monday", "matched": 0,
                               "duplicates_of_earlier_runs": 0, "merged_clusters": 0, "added": 1}
    today = [{"id": "ferry-again", "text": variant(rng, ferry, "edit")},
             {"id": "ferry-short", "text": variant(rng, ferry, "prefix")},
             {"id": "library", "text": variant(rng, library, "original")}]
    result, corpus, dups, report = ingest(tmp_path, "tue", today, location, "--run-id", "tuesday")
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in corpus] == ["library"]
    assert {(d["id"], d["duplicate_of"], d["duplicate_of_run"]) for d in dups} == {
        ("ferry-again", "ferry", "monday"), ("ferry-short", "ferry", "monday")}
    assert all(d["similarity"] > 0.5 or d["containment"] > 0.9 for d in dups)
    assert report["counts"] == {"read": 3, "kept": 1, "duplicates": 2, "rejected": 0}
    assert report["index"]["matched"] == 1 and report["index"]["added"] == 1


def test_incompatible_options_and_reused_run_id_fail_in_one_line(location: str, tmp_path: Path) -> None:
    records = make_records(3)
    assert ingest(tmp_path, "a", records, location, "--run-id", "r1")[0].exit_code == 0
    result, *_ = ingest(tmp_path, "b", records, location, "--num-perm", "64")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "num_perm=128 (this run: 64)" in result.stderr
    assert not (tmp_path / "b.jsonl").exists() and not list(tmp_path.glob(".b.jsonl*"))
    result, *_ = ingest(tmp_path, "c", records, location, "--ngram", "3")
    assert result.exit_code == 1 and "ngram=5 (this run: 3)" in result.stderr
    result, *_ = ingest(tmp_path, "d", records, location, "--run-id", "r1")
    assert result.exit_code == 1 and "run 'r1' is already there" in result.stderr
    result, *_ = ingest(tmp_path, "e", records, location, "--no-dedupe")
    assert result.exit_code == 1 and "--no-dedupe" in result.stderr


def test_stats_and_forget(location: str, tmp_path: Path) -> None:
    first, second = make_records(10, seed=1), make_records(5, seed=2, start=100)
    ingest(tmp_path, "a", first, location, "--run-id", "a")
    ingest(tmp_path, "b", second, location, "--run-id", "b")
    stats = json.loads(run("index", "stats", location, "--json").stdout)
    assert [(r["run_id"], r["articles"]) for r in stats["runs"]] == [("a", len(first)), ("b", len(second))]
    assert stats["articles"] == len(first) + len(second)
    assert stats["params"]["num_perm"] == 128 and stats["params"]["bands"] == 28
    assert stats["bytes"] > 0 and stats["pending_runs"] == 0
    table = run("index", "stats", location)
    assert table.exit_code == 0 and "articles" in table.stdout and "a" in table.stdout

    # a forgotten run's stories come back as new; the other run's do not
    result = run("index", "forget", "--run", "a", location)
    assert result.exit_code == 0 and f"{len(first)} article(s) removed" in result.stderr
    _, corpus, dups, _ = ingest(tmp_path, "again", first + second, location)
    assert {story(r["id"]) for r in corpus} == {story(r["id"]) for r in first}
    assert {d["duplicate_of_run"] for d in dups if "duplicate_of_run" in d} == {"b"}
    result = run("index", "forget", "--run", "a", location)
    assert result.exit_code == 1 and "no run 'a'" in result.stderr


def test_killed_while_adding_leaves_the_index_as_it_was(location: str, tmp_path: Path) -> None:
    """SIGKILL between 'outputs written' and 'index committed' (the failpoint sits halfway
    through the addition): the next run works, and the killed run's articles are not there."""
    monday, tuesday = make_records(8, seed=1), make_records(8, seed=2, start=100)
    ingest(tmp_path, "mon", monday, location, "--run-id", "mon")
    src = write_jsonl(tmp_path / "tue.in.jsonl", tuesday)
    env = dict(os.environ, THRESHER_FAILPOINT="index-add")
    proc = subprocess.run([*THRESHER, "ingest", str(src), "-o", str(tmp_path / "killed.jsonl"),
                           "--index", location, "--run-id", "tue", *FAST], env=env, cwd=ROOT,
                          capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    result, corpus, dups, report = ingest(tmp_path, "tue2", tuesday, location, "--run-id", "tue")
    assert result.exit_code == 0, result.output
    assert {story(r["id"]) for r in corpus} == {story(r["id"]) for r in tuesday}
    assert all("duplicate_of_run" not in d for d in dups)
    stats = json.loads(run("index", "stats", location, "--json").stdout)
    assert [r["run_id"] for r in stats["runs"]] == ["mon", "tue"]
    assert stats["articles"] == len(monday) + len(tuesday) and stats["pending_runs"] == 0


def test_killed_mid_run_leaves_the_index_unchanged(location: str, tmp_path: Path) -> None:
    """SIGKILL from outside a second into a run (reading, signing, or already querying the
    index): nothing of it is in the index afterwards. The run pauses once it has queried the index,
    so the kill always lands before anything could be committed. (On a fast machine it had once
    finished the 4,000 records and committed within the second.)"""
    ingest(tmp_path, "mon", make_records(5), location, "--run-id", "mon")
    before = json.loads(run("index", "stats", location, "--json").stdout)
    src = write_jsonl(tmp_path / "big.jsonl", make_records(4000, seed=5, start=1000))
    env = dict(os.environ, THRESHER_FAILPOINT="index-query:sleep=60")
    proc = subprocess.Popen([*THRESHER, "ingest", str(src), "-o", str(tmp_path / "big.out.jsonl"),
                             "--index", location, "--run-id", "big", *FAST], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the run finished before it could be killed"
    after = json.loads(run("index", "stats", location, "--json").stdout)
    assert after["runs"] == before["runs"] and after["articles"] == before["articles"]
    result, *_ = ingest(tmp_path, "next", make_records(5, seed=9, start=50), location)
    assert result.exit_code == 0, result.output


def _concurrent_halves(location: str, tmp_path: Path) -> None:
    records = make_records(120, seed=11)
    cut = len(records) * 2 // 5
    halves = [records[: len(records) - cut], records[cut:]]  # overlapping by a fifth
    procs = []
    # Each job pauses right after querying the index: without the lock both would query before
    # either had added, and keep the overlap twice.
    env = dict(os.environ, THRESHER_FAILPOINT="index-query:sleep=1.5")
    for k, half in enumerate(halves):
        src = write_jsonl(tmp_path / f"half{k}.jsonl", half)
        procs.append(subprocess.Popen(
            [*THRESHER, "ingest", str(src), "-o", str(tmp_path / f"half{k}.out.jsonl"),
             "--duplicates", str(tmp_path / f"half{k}.dups.jsonl"), "--index", location, *FAST],
            cwd=ROOT, env=env, stderr=subprocess.PIPE))
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    kept = [r["id"] for k in range(2) for r in read_jsonl(tmp_path / f"half{k}.out.jsonl")]
    stories = [story(aid) for aid in kept]
    assert len(stories) == len(set(stories)), "a story was kept by both jobs"
    assert set(stories) == {story(r["id"]) for r in records}


def test_two_concurrent_jobs_on_overlapping_halves_keep_each_story_once(location: str, tmp_path: Path) -> None:
    _concurrent_halves(location, tmp_path)


# -- cross-run cluster merges (hand-written stories) -----------------------------------------------

TRAM = [
    "The harbour council of Wenlow voted on Tuesday to extend the old tram line from the ferry "
    "terminal to the hospital on Carrick Hill.",
    "Councillors approved the plan by eleven votes to four after a debate that lasted well into "
    "the evening.",
    "The extension will add three kilometres of track and five new stops, including one outside "
    "the covered market.",
    "Work is expected to begin in early spring and to take about eighteen months, the council's "
    "transport officer said.",
    "Shopkeepers on Bridge Street have complained that the construction will keep customers away "
    "for most of next year.",
    "The council has promised a compensation fund for businesses that can show a fall in trade "
    "during the works.",
    "Opponents argued that the money would be better spent on buses, which can reach the new "
    "housing estates on the ridge.",
    "Supporters said the tram was cheaper to run over thirty years and would cut traffic on the "
    "coast road.",
    "The regional government has agreed to pay half of the cost, estimated at forty-two million "
    "pounds.",
    "A public meeting on the route through the old town will be held at the library on the first "
    "Monday of next month.",
]
SEALS = [
    "A colony of grey seals has returned to the sandbanks off Morrow Point for the first time in "
    "twenty years, wildlife wardens said.",
    "Volunteers counted sixty-one adults and at least nine pups during a survey from the lifeboat "
    "station on Sunday morning.",
    "The wardens believe the seals left after a fuel spill in the nineties and came back as fish "
    "stocks in the estuary recovered.",
    "Visitors are asked to keep dogs on a lead and to stay at least fifty metres from the animals "
    "during the pupping season.",
    "The county trust will put up signs on the coastal path and run guided walks from the car "
    "park at weekends.",
]


def text_of(sentences: list[str]) -> str:
    """Two sentences a paragraph."""
    return "\n\n".join(" ".join(sentences[k : k + 2]) for k in range(0, len(sentences), 2))


TRAM_LEAD = text_of(TRAM[:6])  # A': the first six sentences
TRAM_TAIL = text_of(TRAM[4:])  # A'': the last six; shares two sentences with A', too few to verify
TRAM_WHOLE = text_of(TRAM)  # A: contains both
# A's MinHash estimates against A' and A'' (deterministic: fixed permutations)
LEAD_SIMILARITY = 0.6172  # 79 of 128 values; containment 1.0 (A' is inside A)
MERGED_SIMILARITY, MERGED_CONTAINMENT = 0.5547, 0.963  # 71 of 128




def _stats(location: str) -> dict:
    result = run("index", "stats", location, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _lead_then_tail(tmp_path: Path, location: str) -> None:
    """Day 1 keeps A', day 2 keeps A'' (they do not verify against each other)."""
    for day, aid, text in (("day1", "tram-lead", TRAM_LEAD), ("day2", "tram-tail", TRAM_TAIL)):
        result, corpus, dups, _ = ingest(tmp_path, day, [{"id": aid, "text": text}], location,
                                         "--run-id", day)
        assert result.exit_code == 0, result.output
        assert [r["id"] for r in corpus] == [aid] and dups == []


def _merge_record(tmp_path: Path, name: str) -> dict:
    """Day 3's duplicates record for A: A' survives (earliest run), A'' is merged into it."""
    return {"id": "tram", "duplicate_of": "tram-lead", "duplicate_of_run": "day1", "via": "tram-lead",
            "merged": [{"id": "tram-tail", "run": "day2", "similarity": MERGED_SIMILARITY,
                        "containment": MERGED_CONTAINMENT}],
            "similarity": LEAD_SIMILARITY, "containment": 1.0, "cluster": "tram-lead", "cluster_size": 1,
            "file": str(tmp_path / f"{name}.in.jsonl"), "record": 1}


def test_an_original_arriving_last_merges_the_clusters_of_its_variants(location: str, tmp_path: Path) -> None:
    _lead_then_tail(tmp_path, location)
    assert _stats(location)["clusters"] == 2
    result, corpus, dups, report = ingest(tmp_path, "day3", [{"id": "tram", "text": TRAM_WHOLE}], location,
                                          "--run-id", "day3")
    assert result.exit_code == 0, result.output
    assert corpus == []
    assert dups == [_merge_record(tmp_path, "day3")]
    assert report["counts"] == {"read": 1, "kept": 0, "duplicates": 1, "rejected": 0}
    assert report["index"]["merged_clusters"] == 1 and report["index"]["matched"] == 1
    stats = _stats(location)
    assert (stats["clusters"], stats["merged_clusters"], stats["articles"]) == (1, 1, 2)

    # Later runs see one cluster: an article like A'' only is a duplicate of the survivor A'.
    result, corpus, dups, report = ingest(tmp_path, "day4", [{"id": "tram-end", "text": text_of(TRAM[6:])}],
                                          location, "--run-id", "day4")
    assert result.exit_code == 0, result.output
    assert [(d["id"], d["duplicate_of"], d["duplicate_of_run"], d["via"]) for d in dups] == [
        ("tram-end", "tram-lead", "day1", "tram-tail")]
    assert "merged" not in dups[0] and report["index"]["merged_clusters"] == 0


def test_two_stories_are_not_merged_through_an_article_quoting_both(location: str, tmp_path: Path) -> None:
    """The in-run chaining guard across runs: A' and B each verify against the glued A'+B, but
    are unrelated to each other (max(J, C) < cluster_floor), so their clusters stay apart."""
    ingest(tmp_path, "day1", [{"id": "tram-lead", "text": TRAM_LEAD}], location, "--run-id", "day1")
    ingest(tmp_path, "day2", [{"id": "seals", "text": text_of(SEALS)}], location, "--run-id", "day2")
    glued = text_of(TRAM[:6] + SEALS)
    result, corpus, dups, report = ingest(tmp_path, "day3", [{"id": "roundup", "text": glued}], location,
                                          "--run-id", "day3")
    assert result.exit_code == 0, result.output
    assert [(d["id"], d["duplicate_of"]) for d in dups] == [("roundup", "seals")]  # the better match
    assert "merged" not in dups[0] and report["index"]["merged_clusters"] == 0
    assert _stats(location)["clusters"] == 2


def test_a_merge_is_committed_with_its_run_or_not_at_all(location: str, tmp_path: Path) -> None:
    """SIGKILL after the merge is recorded but before the commit: the index is as it was, the
    re-run makes the same merge, and forgetting that run undoes it."""
    _lead_then_tail(tmp_path, location)
    before = _stats(location)
    src = write_jsonl(tmp_path / "day3.in.jsonl", [{"id": "tram", "text": TRAM_WHOLE}])
    env = dict(os.environ, THRESHER_FAILPOINT="index-merge")
    proc = subprocess.run([*THRESHER, "ingest", str(src), "-o", str(tmp_path / "killed.jsonl"),
                           "--index", location, "--run-id", "day3", *FAST], env=env, cwd=ROOT,
                          capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    after = _stats(location)
    for key in ("runs", "articles", "clusters", "merged_clusters"):
        assert after[key] == before[key], key
    result, _, dups, _ = ingest(tmp_path, "day3", [{"id": "tram", "text": TRAM_WHOLE}], location,
                                "--run-id", "day3")
    assert result.exit_code == 0, result.output
    assert dups == [_merge_record(tmp_path, "day3")]
    assert _stats(location)["merged_clusters"] == 1

    assert run("index", "forget", "--run", "day3", location).exit_code == 0
    stats = _stats(location)
    assert (stats["clusters"], stats["merged_clusters"]) == (2, 0)
    _, _, dups, _ = ingest(tmp_path, "day4", [{"id": "tram-end", "text": text_of(TRAM[6:])}], location)
    assert [(d["duplicate_of"], d["duplicate_of_run"]) for d in dups] == [("tram-tail", "day2")]


def test_an_index_written_before_merges_existed_is_upgraded(tmp_path: Path) -> None:
    """An SQLite index without the `merges` table and `runs.originals` (as earlier versions
    wrote it) gets them on open; its old runs' clusters are counted from their articles."""
    import sqlite3

    location = str(tmp_path / "old.db")
    ingest(tmp_path, "day1", [{"id": "tram-lead", "text": TRAM_LEAD}], location, "--run-id", "day1")
    with sqlite3.connect(location) as db:
        db.execute("DROP TABLE merges")
        db.execute("ALTER TABLE runs DROP COLUMN originals")
    ingest(tmp_path, "day2", [{"id": "tram-tail", "text": TRAM_TAIL}], location, "--run-id", "day2")
    assert _stats(location)["clusters"] == 2
    _, _, dups, _ = ingest(tmp_path, "day3", [{"id": "tram", "text": TRAM_WHOLE}], location, "--run-id", "day3")
    assert dups == [_merge_record(tmp_path, "day3")]
    assert (_stats(location)["clusters"], _stats(location)["merged_clusters"]) == (1, 1)


# -- backend details ------------------------------------------------------------------------------


def test_redis_band_keys_are_datasketchs(redis_server: RedisServer, tmp_path: Path) -> None:
    """The batched candidate search finds exactly what MinHashLSH.query finds."""
    from dedupe.config import DedupeConfig
    from dedupe.minhash import signatures, to_lean_minhash
    from dedupe.shingles import shingle_hashes_many
    from ingest.index_redis import RedisIndex
    from ingest.index_store import params_for

    config = DedupeConfig()
    records = make_records(30, seed=4)
    sigs = signatures(shingle_hashes_many([r["text"] for r in records], config), config)
    sizes = np.full(len(records), 100)
    store = RedisIndex(redis_server.url(), 10)
    store.ensure_params(params_for(config))
    store.lock()
    store.add("r", [r["id"] for r in records[:20]], [None] * 20, sigs[:20], sizes[:20])
    store.commit()
    store.lock()
    cands = store.candidates(sigs[20:], max_bucket=100)
    store.rollback()
    for q in range(10):
        via_datasketch = {key.decode().split(":", 1)[1] for key in store.lsh.query(to_lean_minhash(sigs[20 + q], config))}
        assert {cands.ids[k] for k in np.flatnonzero(cands.query == q)} == via_datasketch
    store.close()


def test_a_new_sqlite_index_opened_while_another_connection_reads_it_waits(tmp_path: Path) -> None:
    """Turning WAL on needs the file to itself, and SQLite does not wait for that with its busy
    timeout: a job opening a new index while another was still creating it failed at once with
    "not a thresher index (database is locked)". It now waits (up to --index-wait), and says
    it is locked when that runs out."""
    import sqlite3
    import threading

    from ingest.index_sqlite import SqliteIndex
    from ingest.index_store import IndexStoreError

    location = str(tmp_path / "new.db")
    reader = sqlite3.connect(location, isolation_level=None, check_same_thread=False)
    reader.execute("CREATE TABLE other(x)")
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM other").fetchall()  # a read transaction: the file is shared
    with pytest.raises(IndexStoreError, match=r"new\.db: still locked by another run"):
        SqliteIndex(location, 0.2)
    timer = threading.Timer(0.3, lambda: reader.execute("COMMIT"))
    timer.start()
    index = SqliteIndex(location, 10.0)  # waits for the reader, then opens
    timer.join()
    assert index.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    index.db.close()
    reader.close()


def test_sqlite_index_is_one_file_without_leftovers(tmp_path: Path) -> None:
    location = tmp_path / "news.index"
    ingest(tmp_path, "a", make_records(5), str(location))
    assert location.is_file()
    assert run("index", "stats", str(tmp_path / "missing.db")).exit_code == 1
    assert not (tmp_path / "missing.db").exists()
    result, *_ = ingest(tmp_path, "b", make_records(2), str(tmp_path / "no" / "such" / "x.db"))
    assert result.exit_code == 1 and "does not exist" in result.stderr


def test_default_run_id_is_in_the_report(tmp_path: Path) -> None:
    _, _, _, report = ingest(tmp_path, "a", make_records(3), str(tmp_path / "i.db"))
    run_id = report["index"]["run_id"]
    assert len(run_id) == len("20250101T000000Z-abcd") and run_id[8] == "T"
    stats = json.loads(run("index", "stats", str(tmp_path / "i.db"), "--json").stdout)
    assert stats["runs"][0]["run_id"] == run_id


# -- acceptance on the evaluation set (skips without ../shared) -----------------------------------


def _score(gold: Path, pred: Path) -> str:
    out = subprocess.run([sys.executable, str(gold.parent / "score.py"), str(gold), str(pred), "--quiet"],
                         capture_output=True, text=True, check=True).stdout
    return out.strip().splitlines()[-1]


def _scored_lines(tmp: Path, name: str, corpora: list[list[dict]], dups: list[list[dict]]) -> Path:
    """Corpora plus one {"id": original, "duplicates": [dropped, merged originals...]} line per
    duplicate record, in score.py's format (b)."""
    path = tmp / f"{name}.pred.jsonl"
    lines = [json.dumps(r) for c in corpora for r in c]
    for d in (d for ds in dups for d in ds):
        absorbed = [m["id"] for m in d.get("merged", [])]
        lines.append(json.dumps({"id": d["duplicate_of"], "duplicates": [d["id"], *absorbed]}))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_neardup_three_batches_score_like_one_run(tmp_path: Path) -> None:
    docs = needs_shared("eval", "neardup", "docs.jsonl")
    gold = docs.parent / "clusters.jsonl"
    records = read_jsonl(docs)
    third = -(-len(records) // 3)

    def go(name: str, recs: list[dict], location: str | None):
        src = write_jsonl(tmp_path / f"{name}.in.jsonl", recs)
        args = ["ingest", str(src), "-o", str(tmp_path / f"{name}.jsonl"),
                "--duplicates", str(tmp_path / f"{name}.d.jsonl"), "--quiet"]
        assert run(*args, *(["--index", location] if location else [])).exit_code == 0
        return read_jsonl(tmp_path / f"{name}.jsonl"), read_jsonl(tmp_path / f"{name}.d.jsonl")

    one = go("one", records, None)
    batches = [go(f"b{k}", records[k * third : (k + 1) * third], str(tmp_path / "ix.db")) for k in range(3)]
    one_line = _score(gold, _scored_lines(tmp_path, "one", [one[0]], [one[1]]))
    three_line = _score(gold, _scored_lines(tmp_path, "three", [b[0] for b in batches], [b[1] for b in batches]))
    assert three_line == one_line
    # Published articles stay published: each merge leaves one more kept article than one run.
    merges = sum(len(d.get("merged", [])) for b in batches for d in b[1])
    assert sum(len(b[0]) for b in batches) == len(one[0]) + merges
    stats = json.loads(run("index", "stats", str(tmp_path / "ix.db"), "--json").stdout)
    assert (stats["clusters"], stats["merged_clusters"]) == (len(one[0]), merges)
