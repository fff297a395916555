"""The ingest command as users see it: records, files, exit codes, messages."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tests.conftest import DATA, parse_stdout, read_jsonl, run

ARTICLE_A = """Harbour ferry fares to rise in spring
2024-02-01
The Bay Herald
PORTSMERE (The Bay Herald) - Fares on the harbour ferry will rise by ten percent in April, the port board said on Thursday, the first increase since the service was taken over by the city.
The board said fuel and maintenance costs had doubled in three years and that the old vessels needed new engines before the summer season.
Season tickets for residents of the islands will keep their current price until the end of the year, after a petition signed by more than two thousand people.
Editing by Lise Marrow"""

ARTICLE_B = """New library opens in the old customs house
The converted building on Dock Road opened its doors to readers on Saturday after a two-year renovation paid for by a local foundation.
Its reading rooms keep the original oak counters where merchants once declared their cargo, and the top floor holds a children's section with a view over the water.
Librarians said more than a thousand people signed up for cards on the first day."""


def write_dump(path: Path, articles: dict[str, str]) -> Path:
    path.write_text("".join(f"===== {aid}\n{text}\n" for aid, text in articles.items()), encoding="utf-8")
    return path


def test_exact_records_on_stdout_and_nothing_else(tmp_path: Path) -> None:
    dump = write_dump(tmp_path / "dump.txt", {"ferry-1": ARTICLE_A, "library-2": ARTICLE_B})
    result = run("ingest", str(dump), "--quiet")
    assert result.exit_code == 0
    assert result.stderr == ""
    assert parse_stdout(result) == [
        {
            "id": "ferry-1",
            "title": "Harbour ferry fares to rise in spring",
            "date": "2024-02-01",
            "source": "The Bay Herald",
            "text": "\n\n".join(ARTICLE_A.splitlines()[3:6]),
            "duplicates": [],
            "removed": {"credit": 1, "low_content": 1, "timestamp": 1, "title": 1},
            "meta": {"file": str(dump), "record": 1},
        },
        {
            "id": "library-2",
            "title": "New library opens in the old customs house",
            "date": None,
            "source": None,
            "text": "\n\n".join(ARTICLE_B.splitlines()[1:]),
            "duplicates": [],
            "removed": {"title": 1},
            "meta": {"file": str(dump), "record": 2},
        },
    ]


def test_sample_dump_corpus_duplicates_rejects_and_report(tmp_path: Path) -> None:
    out, dups, rejects, report = (tmp_path / n for n in ("out.jsonl", "d.jsonl", "r.jsonl", "report.json"))
    result = run("ingest", str(DATA / "sample_dump.txt"), "-o", str(out), "--duplicates", str(dups),
                 "--rejects", str(rejects), "--report", str(report), "--quiet")
    assert result.exit_code == 0, result.output
    corpus = read_jsonl(out)
    assert [(r["id"], r["duplicates"]) for r in corpus] == [
        ("river-001", ["river-002"]),
        ("bridge-003", []),
        ("council-004", []),
        ("market-005", []),
    ]
    bridge = corpus[1]
    assert bridge["removed"]["repeated_paragraph"] == 3
    assert bridge["removed"]["comments"] >= 2
    assert "moderates" not in bridge["text"] and "Required" not in bridge["text"]
    (dup,) = read_jsonl(dups)
    assert {k: dup[k] for k in ("id", "duplicate_of", "cluster", "cluster_size", "file", "record")} == {
        "id": "river-002", "duplicate_of": "river-001", "cluster": "river-001", "cluster_size": 2,
        "file": str(DATA / "sample_dump.txt"), "record": 2,
    }
    assert 0.8 < dup["similarity"] <= 1.0 and 0.8 < dup["containment"] <= 1.0
    (rej,) = read_jsonl(rejects)
    assert (rej["id"], rej["record"], rej["reason"]) == ("empty-006", 6, "empty_after_cleaning")
    assert rej["raw"].startswith("Home › Valley Courier › Subscribe")
    summary = json.loads(report.read_text())
    assert summary["counts"] == {"read": 6, "kept": 4, "duplicates": 1, "rejected": 1}
    assert summary["rejected_by_reason"] == {"empty_after_cleaning": 1}
    assert summary["paragraphs_collapsed"] == 3
    assert summary["inputs"] == [str(DATA / "sample_dump.txt")]
    assert summary["options"]["keep"] == "first"
    assert set(summary) == {"counts", "rejected_by_reason", "paragraphs_collapsed", "removed", "clusters",
                            "inputs", "seconds", "index_bytes_per_article", "stages", "options"}
    assert list(summary["stages"]) == ["recurring_sample", "clean_and_sign", "clusters", "write"]


def test_same_input_gives_byte_identical_output(tmp_path: Path) -> None:
    outs = []
    for n in range(2):
        out = tmp_path / f"out{n}.jsonl"
        assert run("ingest", str(DATA / "sample_dump.txt"), "-o", str(out), "-q").exit_code == 0
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_stdin_gzip_and_jsonl_inputs(tmp_path: Path) -> None:
    dump = "===== ferry-1\n" + ARTICLE_A + "\n"
    gz = tmp_path / "dump.txt.gz"
    gz.write_bytes(gzip.compress(dump.encode()))
    from_gz = parse_stdout(run("ingest", str(gz), "-q"))
    from_stdin = parse_stdout(run("ingest", "-", "-q", input=dump))
    assert [r["text"] for r in from_gz] == [r["text"] for r in from_stdin]
    assert from_stdin[0]["meta"]["file"] == "-"
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text(json.dumps({"doc": "j1", "body": ARTICLE_B, "lang": "en"}) + "\n")
    (record,) = parse_stdout(run("ingest", str(jsonl), "-q", "--text-field", "body", "--id-field", "doc"))
    assert record["id"] == "j1"
    assert record["meta"] == {"file": str(jsonl), "record": 1, "lang": "en"}


def test_missing_input_is_a_usage_error(tmp_path: Path) -> None:
    result = run("ingest", str(tmp_path / "nope.txt"))
    assert result.exit_code == 2
    assert f"{tmp_path / 'nope.txt'}: no such file or folder" in result.stderr


def test_bad_delimiter_regex_is_a_usage_error(tmp_path: Path) -> None:
    result = run("ingest", str(DATA / "sample_dump.txt"), "--delimiter", "(unclosed")
    assert result.exit_code == 2
    assert "--delimiter" in result.stderr and "not a valid regex" in result.stderr


def test_on_error_fail_names_file_and_record_and_leaves_no_output(tmp_path: Path) -> None:
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"id": "a", "text": "fine"}\n{broken\n')
    out = tmp_path / "out.jsonl"
    result = run("ingest", str(docs), "-o", str(out), "--on-error", "fail", "-q")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {docs}: record 2 (byte 28): bad_json: not JSON:")
    assert list(tmp_path.iterdir()) == [docs]


def test_unwritable_output_is_exit_1_with_advice(tmp_path: Path) -> None:
    result = run("ingest", str(DATA / "sample_dump.txt"), "-o", str(tmp_path / "no" / "out.jsonl"), "-q")
    assert result.exit_code == 1
    assert result.stderr == f"Error: {tmp_path / 'no' / 'out.jsonl'}: folder {str(tmp_path / 'no')!r} does not exist; create it first\n"


def test_clusters_command_lists_every_article(tmp_path: Path) -> None:
    result = run("clusters", str(DATA / "sample_dump.txt"), "-q")
    assert result.exit_code == 0
    assert parse_stdout(result) == [
        {"id": "river-001", "cluster": "river-001"},
        {"id": "river-002", "cluster": "river-001"},
        {"id": "bridge-003", "cluster": "bridge-003"},
        {"id": "council-004", "cluster": "council-004"},
        {"id": "market-005", "cluster": "market-005"},
    ]


@pytest.mark.parametrize("keep,kept", [("first", "river-001"), ("longest", "river-001")])
def test_keep_policy_decides_the_kept_copy(keep: str, kept: str) -> None:
    result = run("clusters", str(DATA / "sample_dump.txt"), "-q", "--keep", keep)
    clusters = {r["id"]: r["cluster"] for r in parse_stdout(result)}
    assert clusters["river-001"] == clusters["river-002"] == kept


def test_summary_goes_to_stderr_unless_quiet() -> None:
    result = run("ingest", str(DATA / "sample_dump.txt"))
    assert result.exit_code == 0
    assert "kept" in result.stderr and "duplicates" in result.stderr
    assert all(json.loads(line) for line in result.stdout.splitlines())


def test_explain_shows_removed_lines_with_reasons() -> None:
    result = run("ingest", str(DATA / "sample_dump.txt"), "-q", "--explain", "bridge-003")
    assert result.exit_code == 0
    assert "comments" in result.stderr and "Post a comment" in result.stderr
    assert "Post a comment" not in result.stdout
    assert [r["id"] for r in parse_stdout(result)] == ["river-001", "bridge-003", "council-004", "market-005"]


def test_user_rules_file_adds_rules(tmp_path: Path) -> None:
    dump = write_dump(tmp_path / "dump.txt", {"library-2": ARTICLE_B + "\nLibrary Weekly is printed on recycled paper."})
    rules = tmp_path / "mine.toml"
    rules.write_text("[[rule]]\npattern = '''Library Weekly is printed on .*'''\nzone = \"foot\"\nsize = 2\n"
                     "reason = \"footer\"\n")
    without = parse_stdout(run("ingest", str(dump), "-q"))
    with_rules = parse_stdout(run("ingest", str(dump), "-q", "--rules", str(rules)))
    assert "recycled paper" in without[0]["text"]
    assert with_rules[0]["text"] == "\n\n".join(ARTICLE_B.splitlines()[1:])
    assert with_rules[0]["removed"] == {"footer": 1, "title": 1}


def test_bad_rules_file_is_one_line_exit_1(tmp_path: Path) -> None:
    rules = tmp_path / "bad.toml"
    rules.write_text("[[rule]]\npattern = '''(unclosed'''\nreason = \"x\"\n")
    result = run("ingest", str(DATA / "sample_dump.txt"), "-q", "--rules", str(rules))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {rules}: rule #1")
    assert len(result.stderr.splitlines()) == 1


def test_ray_address_needs_the_ray_engine() -> None:
    result = run("ingest", str(DATA / "sample_dump.txt"), "-q", "--ray-address", "auto")
    assert result.exit_code == 2
    assert result.stderr == "Error: --ray-address needs --engine ray\n"


def _partition(lines: list[dict]) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for r in lines:
        groups.setdefault(r["cluster"], set()).add(r["id"])
    return {frozenset(g) for g in groups.values()}


def test_clusters_do_not_depend_on_input_order(tmp_path: Path) -> None:
    from tests.conftest import SHARED

    source = SHARED / "eval" / "neardup" / "docs.jsonl"
    lines = source.read_text(encoding="utf-8").splitlines() if source.exists() else [
        json.dumps({"id": r, "text": t}) for r, t in
        [("a", ARTICLE_A), ("b", ARTICLE_B), ("a2", ARTICLE_A.replace("ten percent", "12 percent"))]]
    import random

    partitions = []
    for seed in (0, 1, 2):
        shuffled = lines[:]
        random.Random(seed).shuffle(shuffled)
        docs = tmp_path / f"docs{seed}.jsonl"
        docs.write_text("\n".join(shuffled) + "\n", encoding="utf-8")
        result = run("clusters", str(docs), "-q", "--workers", "1")
        assert result.exit_code == 0
        partitions.append(_partition(parse_stdout(result)))
    assert partitions[0] == partitions[1] == partitions[2]
    assert any(len(g) > 1 for g in partitions[0])


def test_user_rules_reach_the_worker_processes(tmp_path: Path) -> None:
    """Workers build the rules from the user's files themselves (the parent sends the recipe):
    over 128 records, so --workers 2 runs a pool, and the output is that of one worker."""
    articles = {f"lib-{k}": ARTICLE_B.replace("library", f"library {k}") + "\nLibrary Weekly is printed on recycled paper."
                for k in range(300)}
    dump = write_dump(tmp_path / "dump.txt", articles)
    rules = tmp_path / "mine.toml"
    rules.write_text("[[rule]]\npattern = '''Library Weekly is printed on .*'''\nzone = \"foot\"\nsize = 2\n"
                     "reason = \"footer\"\n")
    outs = {}
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}.jsonl"
        result = run("ingest", str(dump), "-o", str(out), "-q", "--no-recurring", "--no-dedupe",
                     "--rules", str(rules), "--workers", workers)
        assert result.exit_code == 0, result.output
        outs[workers] = out.read_bytes()
    assert outs["1"] == outs["2"]
    records = [json.loads(line) for line in outs["2"].splitlines()]
    assert len(records) == 300
    assert all(r["removed"].get("footer") == 1 and "recycled paper" not in r["text"] for r in records)
