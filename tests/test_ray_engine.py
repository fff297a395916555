"""`run_ingest_ray` gives the local engine's outputs: kept ids, duplicates, clusters, rejects,
report counts, and a byte-identical corpus (also as concatenated `part-*.jsonl` shards).

One local Ray session (2 CPUs) for the whole module: Ray starts in several seconds.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from ingest.pipeline import IngestOptions, Outputs, run_ingest
from ingest.sources import expand_inputs
from tests.conftest import needs_shared

if os.environ.get("THRESHER_REQUIRE_RAY"):
    import ray  # CI installs the [ray] extra: a missing Ray is a failure there, not a skip
else:
    ray = pytest.importorskip("ray", reason="the [ray] extra is not installed: pip install -e '.[ray]'")
import ingest.ray_engine as ray_engine  # noqa: E402
from ingest.ray_engine import INSTALL_HINT, RayNotInstalled, require_ray, run_ingest_ray  # noqa: E402

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _both(inputs: list[str], tmp: Path, options: IngestOptions, *, clusters: bool = False):
    sources = list(expand_inputs(inputs, None))
    results = {}
    for engine, run in (("local", run_ingest), ("ray", run_ingest_ray)):
        d = tmp / engine
        d.mkdir()
        if clusters:
            outputs = Outputs(corpus=None, clusters=str(d / "clusters.jsonl"), rejects=str(d / "rejects.jsonl"))
        else:
            outputs = Outputs(corpus=str(d / "corpus.jsonl"), duplicates=str(d / "duplicates.jsonl"),
                              rejects=str(d / "rejects.jsonl"))
        summary = run(sources, options, outputs)
        report = summary.to_report()
        report.pop("seconds")
        report.pop("stages")  # timings, engine-specific
        if engine == "ray":
            results["ray_part"] = report.pop("ray")
            _check_ray_report(results["ray_part"])
        results[engine] = (d, report)
    return results


def _check_ray_report(ray_part: dict) -> None:
    """The Ray report's own key: the shuffle's parts, its candidate pairs, seconds per stage."""
    if ray_engine.PARTITIONS:
        assert ray_part["partitions"] == ray_engine.PARTITIONS
    else:
        assert 1 <= ray_part["partitions"] <= 2  # at most one per CPU of the test session
    assert ray_part["candidate_pairs"] >= 0
    stages = ray_part["stages"]
    assert {"ray_start", "plan", "sign", "candidates", "verify_cluster", "write"} <= set(stages)
    assert all(isinstance(v, float) and v >= 0 for v in stages.values())


def _assert_same(results, names=("corpus.jsonl", "duplicates.jsonl", "rejects.jsonl")) -> None:
    (local, local_report), (ray_dir, ray_report) = results["local"], results["ray"]
    assert ray_report == local_report
    for name in names:
        assert (ray_dir / name).read_bytes() == (local / name).read_bytes(), name


def _fixture(tmp: Path) -> Path:
    """JSONL with near-duplicate copies, a shared outlet footer (recurring), rejects of several
    kinds, a duplicate id, blank lines and records without ids."""
    rng = random.Random(7)
    words = ("council river barrier water city mayor report police school market bridge storm "
             "farmers price train road budget hospital doctors union strike court judge minister "
             "election voters party harbour ship fishermen festival museum library students "
             "teachers company workers factory energy power plant village valley mountain snow "
             "flood rain summer winter officials residents plan project money families children").split()

    def sentence() -> str:
        body = " ".join(rng.choice(words) for _ in range(14))
        return f"The {body} said on {rng.choice(['Monday', 'Tuesday', 'Friday'])}."

    def paragraph() -> str:
        return " ".join(sentence() for _ in range(3))
    footer = "The Velmora harbour ferry timetable changes in spring and the old bridge stays closed to trucks."
    lines: list[str] = []
    for story in range(60):
        base = [paragraph() for _ in range(4)]
        for copy in range(1 + story % 4):
            paras = list(base)
            if copy:
                paras[rng.randrange(4)] = paragraph()
            if copy == 3:
                paras = paras[:2]  # a short version: linked by containment
            obj = {"id": f"s{story}-{copy}", "title": f"Story {story}", "text": "\n\n".join(paras + [footer])}
            if story % 9 == 0 and copy == 0:
                del obj["id"]  # fallback id FILE-STEM:RECORD
            if story % 11 == 0:
                obj["date"] = f"2023-0{1 + copy}-1{story % 10}"
            lines.append(json.dumps(obj))
        if story % 10 == 0:
            lines.append("")
            lines.append("{not json")
            lines.append(json.dumps({"id": f"nt{story}", "body": "no text field"}))
            lines.append(json.dumps({"id": f"e{story}", "text": "   "}))
    lines.append(json.dumps({"id": "s1-0", "text": "a second record reusing an id " * 5}))
    path = tmp / "dump.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_generated_fixture_split_into_byte_ranges(tmp_path, monkeypatch):
    # small ranges: the file is split, and the recurring sample ends inside a range
    monkeypatch.setattr(ray_engine, "SPLIT_MIN_BYTES", 1)
    monkeypatch.setattr(ray_engine, "RANGE_MIN_BYTES", 4096)
    path = _fixture(tmp_path)
    options = IngestOptions(workers=1, recurring_min_articles=5, recurring_sample=100)
    results = _both([str(path)], tmp_path, options)
    _assert_same(results)
    report = results["ray"][1]
    assert report["counts"]["duplicates"] > 20
    assert report["removed"].get("recurring", 0) > 0
    assert {"bad_json", "missing_text", "empty_article", "duplicate_id"} <= set(report["rejected_by_reason"])


@pytest.mark.parametrize("keep", ["first", "longest"])
def test_several_shuffle_parts_give_the_local_output(tmp_path, monkeypatch, keep):
    # 5 reduce tasks over many small units: buckets are spread over parts and units
    monkeypatch.setattr(ray_engine, "PARTITIONS", 5)
    monkeypatch.setattr(ray_engine, "SPLIT_MIN_BYTES", 1)
    monkeypatch.setattr(ray_engine, "RANGE_MIN_BYTES", 4096)
    path = _fixture(tmp_path)
    options = IngestOptions(workers=1, keep=keep, recurring_min_articles=5)
    # the 2nd copy: its reused ids are rejected and must take no place in a bucket
    results = _both([str(path), str(path)], tmp_path, options)
    _assert_same(results)
    assert results["ray"][1]["counts"]["duplicates"] > 20
    assert results["ray_part"]["candidate_pairs"] > 20


def test_eval_neardup_with_three_parts(tmp_path, monkeypatch):
    docs = needs_shared("eval", "neardup", "docs.jsonl")
    monkeypatch.setattr(ray_engine, "PARTITIONS", 3)
    _assert_same(_both([str(docs)], tmp_path, IngestOptions(workers=2, keep="earliest-date")))


def test_without_near_duplicates_there_is_no_shuffle(tmp_path):
    path = _fixture(tmp_path)
    sources = list(expand_inputs([str(path)], None))
    options = IngestOptions(workers=1, near_duplicates=False, recurring_min_articles=5)
    run_ingest(sources, options, Outputs(corpus=str(tmp_path / "local.jsonl")))
    summary = run_ingest_ray(sources, options, Outputs(corpus=str(tmp_path / "ray.jsonl")))
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    assert summary.to_report()["ray"]["candidate_pairs"] == 0


@pytest.mark.parametrize("keep", ["longest", "earliest-date"])
def test_generated_fixture_keep_policies_and_clusters(tmp_path, keep):
    path = _fixture(tmp_path)
    options = IngestOptions(workers=1, keep=keep, recurring_min_articles=5)
    _assert_same(_both([str(path)], tmp_path, options, clusters=True), names=("clusters.jsonl", "rejects.jsonl"))


def test_sharded_output_concatenates_to_the_single_file(tmp_path, monkeypatch):
    monkeypatch.setattr(ray_engine, "SPLIT_MIN_BYTES", 1)
    monkeypatch.setattr(ray_engine, "RANGE_MIN_BYTES", 4096)
    path = _fixture(tmp_path)
    sources = list(expand_inputs([str(path)], None))
    options = IngestOptions(workers=1, recurring_min_articles=5)
    run_ingest(sources, options, Outputs(corpus=str(tmp_path / "local.jsonl")))
    run_ingest_ray(sources, options, Outputs(corpus=str(tmp_path / "parts") + "/"))
    parts = sorted((tmp_path / "parts").glob("part-*.jsonl"))
    assert len(parts) > 1
    assert [p.name for p in parts] == [f"part-{k:05d}.jsonl" for k in range(len(parts))]
    assert b"".join(p.read_bytes() for p in parts) == (tmp_path / "local.jsonl").read_bytes()
    assert not [p for p in (tmp_path / "parts").iterdir() if p.name.startswith(".")]  # no temporaries left


def test_several_inputs_and_text_dumps(tmp_path):
    sample = Path(__file__).resolve().parents[1] / "data" / "sample_dump.txt"
    path = _fixture(tmp_path)
    options = IngestOptions(workers=1, recurring_min_articles=5)
    _assert_same(_both([str(path), str(sample), str(path)], tmp_path, options))  # 2nd copy: duplicate ids


def test_eval_neardup(tmp_path):
    docs = needs_shared("eval", "neardup", "docs.jsonl")
    _assert_same(_both([str(docs)], tmp_path, IngestOptions(workers=2)))


def test_seeds(tmp_path):
    seeds = needs_shared("seeds")
    _assert_same(_both([str(seeds)], tmp_path, IngestOptions(workers=2)))


def test_shuffle_parts_keep_map_pieces_out_of_the_driver(monkeypatch):
    from dedupe.config import DedupeConfig

    monkeypatch.setattr(ray_engine, "PARTITIONS", None)
    config = DedupeConfig()  # 28 bands: 392 bytes of map entries an article
    parts = ray_engine.shuffle_parts
    assert parts(2, 187_000_000, 8, config) == 2  # the 50k bench on this machine: one per CPU
    assert parts(64, 187_000_000, 8, config) == 8  # 23 MB units: pieces stay >= 128 KB
    assert parts(160, 1_870_000_000, 640, config) == 1  # many small units: no tiny pieces
    assert parts(4, 0, 0, config) == 1
    monkeypatch.setattr(ray_engine, "PARTITIONS", 5)
    assert parts(2, 0, 1, config) == 5


def test_require_ray_message(monkeypatch):
    assert require_ray() is ray
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(RayNotInstalled) as err:
        require_ray()
    assert str(err.value) == INSTALL_HINT == "ray is not installed: pip install 'thresher[ray]'"


def test_cli_engine_ray_writes_what_the_local_engine_writes(tmp_path):
    from tests.conftest import DATA, run

    outs = {}
    for engine in ("local", "ray"):
        out, dups = tmp_path / f"{engine}.jsonl", tmp_path / f"{engine}.dups.jsonl"
        result = run("ingest", str(DATA / "sample_dump.txt"), "-q", "--engine", engine, "-o", str(out),
                     "--duplicates", str(dups))
        assert result.exit_code == 0, result.output
        outs[engine] = (out.read_bytes(), dups.read_bytes())
    assert outs["ray"] == outs["local"]
