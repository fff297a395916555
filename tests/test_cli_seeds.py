"""Acceptance on the five real seed articles (skipped when ../shared is absent)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import needs_shared, read_jsonl, run


@pytest.fixture(scope="module")
def seeds_out(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    seeds = needs_shared("seeds")
    out = tmp_path_factory.mktemp("seeds") / "out.jsonl"
    result = run("ingest", str(seeds), "-o", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    return {r["id"].split("_")[0]: r for r in read_jsonl(out)}


def seed_lines(prefix: str) -> list[str]:
    (path,) = needs_shared("seeds").glob(f"{prefix}_*.txt")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_five_distinct_reports_none_merged(seeds_out: dict[str, dict]) -> None:
    assert sorted(seeds_out) == ["000", "001", "002", "003", "004"]
    assert all(r["duplicates"] == [] for r in seeds_out.values())
    assert list(seeds_out["000"]) == ["id", "title", "date", "source", "text", "duplicates", "removed", "meta"]


def test_titles_are_the_headlines(seeds_out: dict[str, dict]) -> None:
    for prefix, record in seeds_out.items():
        lines = seed_lines(prefix)
        headline = lines[1] if prefix == "003" else lines[0]
        assert record["title"] == headline
        assert headline not in record["text"].split("\n\n")


def test_scraped_twice_article_has_every_paragraph_once(seeds_out: dict[str, dict]) -> None:
    paragraphs = seeds_out["001"]["text"].split("\n\n")
    assert len(paragraphs) == len(set(paragraphs))
    body = set(seed_lines("001")[1:])
    assert set(paragraphs) == body
    assert seeds_out["001"]["removed"]["repeated_paragraph"] == 9


def test_comment_section_is_gone_and_date_parsed(seeds_out: dict[str, dict]) -> None:
    record = seeds_out["004"]
    for phrase in ("Rudaw moderates", "Post a comment", "Required", "Comments", "A+ A-", "Tags:"):
        assert phrase not in record["text"]
    assert record["date"] == "2018-07-19"
    assert record["source"] == "Rudaw"
    assert "Masrour" in record["meta"]["tags"]
    assert record["text"].split("\n\n")[-1].startswith("“We hear the same rumors")


def test_breadcrumb_and_timestamp_line_removed(seeds_out: dict[str, dict]) -> None:
    record = seeds_out["003"]
    assert record["date"] == "2019-09-09"
    assert "Home ›" not in record["text"] and "›" not in record["text"]
    assert "2019/09/09 | 21:40" not in record["text"]
    assert record["removed"] == {"breadcrumb": 1, "timestamp": 1, "title": 1}


def test_caption_and_credits_removed(seeds_out: dict[str, dict]) -> None:
    assert "(Photo:" not in seeds_out["000"]["text"]
    assert not re.search(r"^Editing by", seeds_out["000"]["text"], re.M)
    assert seeds_out["000"]["source"] == "Kurdistan 24"
    text_002 = seeds_out["002"]["text"]
    assert "Translation by" not in text_002 and "Video editing by" not in text_002


def test_edited_copy_with_other_footer_is_a_duplicate(tmp_path: Path) -> None:
    seeds = needs_shared("seeds")
    folder = tmp_path / "seeds"
    shutil.copytree(seeds, folder)
    (original,) = folder.glob("002_*.txt")
    text = original.read_text(encoding="utf-8")
    edited = text.replace("increased its presence at the foot", "strengthened its presence at the base")
    edited = edited.replace("Translation by Zhelwan Z. Wali", "Republished with permission by The Plains Observer")
    assert edited != text
    (folder / "999_edited_copy.txt").write_text(edited, encoding="utf-8")
    dups = tmp_path / "dups.jsonl"
    out = tmp_path / "out.jsonl"
    result = run("ingest", str(folder), "-o", str(out), "--duplicates", str(dups), "--quiet")
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in read_jsonl(out)] == sorted(p.stem for p in seeds.glob("*.txt"))
    (dup,) = read_jsonl(dups)
    assert dup["id"] == "999_edited_copy"
    assert dup["duplicate_of"] == original.stem
    assert dup["cluster"] == original.stem and dup["cluster_size"] == 2
    assert 0.7 < dup["similarity"] <= 1.0
