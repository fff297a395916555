"""Readers: every layout and compression gives the same records, and nothing is dropped silently."""

from __future__ import annotations

import bz2
import gzip
import lzma
import re
from pathlib import Path

import pytest
import zstandard

from ingest.readers import ReaderOptions, read_source
from ingest.records import RawRecord, Reject
from ingest.sources import InputError, Source, expand_inputs

DUMP = (
    "===== a-1\n"
    "First headline\n"
    "First body line.\n"
    "===== a-2\n"
    "Second headline\n"
    "Second body line.\n"
)


def read(path: Path, fmt: str = "text", **kw: object) -> list[RawRecord | Reject]:
    return list(read_source(Source(str(path), path, fmt), ReaderOptions(**kw)))  # type: ignore[arg-type]


def summary(items: list[RawRecord | Reject]) -> list[tuple]:
    return [
        (i.fields.get("id"), i.record, i.offset, i.text) if isinstance(i, RawRecord) else ("REJECT", i.reason, i.record)
        for i in items
    ]


def test_default_delimiter_splits_and_names_articles(tmp_path: Path) -> None:
    p = tmp_path / "dump.txt"
    p.write_text(DUMP)
    assert summary(read(p)) == [
        ("a-1", 1, 0, "First headline\nFirst body line."),
        ("a-2", 2, DUMP.index("===== a-2"), "Second headline\nSecond body line."),
    ]


@pytest.mark.parametrize(
    "suffix,compress",
    [
        (".gz", gzip.compress),
        (".bz2", bz2.compress),
        (".xz", lzma.compress),
        (".zst", lambda b: zstandard.ZstdCompressor().compress(b)),
    ],
)
def test_compressed_dumps_read_like_plain_ones(tmp_path: Path, suffix: str, compress) -> None:
    p = tmp_path / f"dump.txt{suffix}"
    p.write_bytes(compress(DUMP.encode()))
    assert [(i.fields["id"], i.text) for i in read(p)] == [
        ("a-1", "First headline\nFirst body line."),
        ("a-2", "Second headline\nSecond body line."),
    ]


def test_unlabelled_delimiters_get_file_and_record_ids(tmp_path: Path) -> None:
    p = tmp_path / "news.txt"
    p.write_text("=====\none\n=======\ntwo\n")
    assert [(i.fields["id"], i.text) for i in read(p)] == [("news:1", "one"), ("news:2", "two")]


def test_wikiextractor_doc_blocks(tmp_path: Path) -> None:
    p = tmp_path / "wiki.txt"
    p.write_text('<doc id="7" url="http://x/7" title="Seven">\nSeven\nBody seven.\n</doc>\n\n'
                 '<doc id="8" url="http://x/8" title="Eight">\nBody eight.\n</doc>\n')
    items = read(p)
    assert [(i.fields, i.text) for i in items] == [
        ({"id": "7", "url": "http://x/7", "title": "Seven"}, "Seven\nBody seven."),
        ({"id": "8", "url": "http://x/8", "title": "Eight"}, "Body eight."),
    ]


def test_custom_delimiter_named_groups_become_fields(tmp_path: Path) -> None:
    p = tmp_path / "dump.txt"
    p.write_text("<<<DOC id=p1 url=https://a.example/x>>>\nText one\n<<<DOC id=p2 url=>>>\nText two\n")
    items = read(p, delimiter=re.compile(r"^<<<DOC id=(?P<id>\S+) url=(?P<url>\S*)>>>$"))
    assert [(i.fields, i.text) for i in items] == [
        ({"id": "p1", "url": "https://a.example/x"}, "Text one"),
        ({"id": "p2", "url": ""}, "Text two"),
    ]


def test_custom_delimiter_that_never_matches_is_a_reject(tmp_path: Path) -> None:
    p = tmp_path / "dump.txt"
    p.write_text("just text\n")
    assert summary(read(p, delimiter=re.compile(r"^#### "))) == [("REJECT", "delimiter_never_matched", 1)]


def test_text_before_first_delimiter_is_rejected_not_lost(tmp_path: Path) -> None:
    p = tmp_path / "dump.txt"
    p.write_text("stray header\n" + DUMP)
    assert [s[:2] for s in summary(read(p))] == [("a-1", 1), ("a-2", 2), ("REJECT", "before_first_delimiter")]


def test_text_file_without_delimiter_is_one_article(tmp_path: Path) -> None:
    p = tmp_path / "story.txt"
    p.write_text("Headline\n\nBody.\n")
    assert [(i.fields["id"], i.text) for i in read(p)] == [("story", "Headline\n\nBody.")]


def test_bom_crlf_nul_and_bad_utf8_are_normalised_and_counted(tmp_path: Path) -> None:
    p = tmp_path / "dump.txt"
    p.write_bytes(b"\xef\xbb\xbf===== x\r\nCaf\xe9 line\x00\r\n")
    (item,) = read(p)
    assert item.fields == {"id": "x", "encoding_errors": 1}
    assert item.text == "Caf\ufffd line"


def test_folder_gives_one_article_per_txt_file_sorted(tmp_path: Path) -> None:
    (tmp_path / "b_two.txt").write_text("Two\n")
    (tmp_path / "a_one.txt").write_text("One\n===== not a delimiter inside a file article\n")
    (tmp_path / "notes.md").write_text("ignored")
    sources = list(expand_inputs([str(tmp_path)], None))
    assert [Path(s.name).name for s in sources] == ["a_one.txt", "b_two.txt"]
    items = [i for s in sources for i in read_source(s, ReaderOptions())]
    assert [(i.fields["id"], i.text) for i in items] == [
        ("a_one", "One\n===== not a delimiter inside a file article"),
        ("b_two", "Two"),
    ]


def test_missing_input_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or folder"):
        list(expand_inputs([str(tmp_path / "nope.txt")], None))


def test_jsonl_fields_and_bad_lines(tmp_path: Path) -> None:
    p = tmp_path / "docs.jsonl"
    content = (
        '{"id": "j1", "text": "Body one", "url": "u1", "lang": "en"}\n'
        "\n"
        "{not json\n"
        '{"id": "j3", "body": "no text field"}\n'
        '{"text": "no id"}\n'
    )
    p.write_text(content)
    assert summary(read(p, "jsonl")) == [
        ("j1", 1, 0, "Body one"),
        ("REJECT", "bad_json", 2),
        ("REJECT", "missing_text", 3),
        ("docs:4", 4, content.index('{"text": "no id"}'), "no id"),
    ]
    assert read(p, "jsonl")[0].fields == {"id": "j1", "url": "u1", "extra": {"lang": "en"}}


def test_a_jsonl_line_that_is_not_an_object_is_rejected_with_its_text(tmp_path: Path) -> None:
    p = tmp_path / "docs.jsonl"
    p.write_bytes(b'[1, 2]\n"just a string"\n[1, "\xff"]\n')
    got = [(r.record, r.reason, r.detail, r.raw) for r in read(p, "jsonl")]
    assert got == [
        (1, "bad_json", "a JSON object was expected", "[1, 2]"),
        (2, "bad_json", "a JSON object was expected", '"just a string"'),
        (3, "bad_json", "a JSON object was expected", '[1, "\ufffd"]'),  # decoded, bad byte replaced
    ]


def test_csv_and_tsv_with_ragged_rows(tmp_path: Path) -> None:
    c = tmp_path / "docs.csv"
    c.write_text('id,text,section\nc1,"Body, with comma",world\nc2,too,many,fields\n')
    assert summary(read(c, "csv")) == [("c1", 1, None, "Body, with comma"), ("REJECT", "ragged_row", 2)]
    t = tmp_path / "docs.tsv"
    t.write_text("id\ttext\nt1\tTab body\n")
    assert [(i.fields["id"], i.text) for i in read(t, "tsv")] == [("t1", "Tab body")]


def test_record_over_the_size_limit_is_rejected(tmp_path: Path) -> None:
    p = tmp_path / "dump.txt"
    p.write_text("===== big\n" + "x" * 200 + "\n===== small\nok\n")
    assert [s[:2] for s in summary(read(p, max_record_bytes=100))] == [("REJECT", "too_large"), ("small", 2)]


def test_binary_file_is_rejected_whole(tmp_path: Path) -> None:
    p = tmp_path / "photo.txt"
    p.write_bytes(bytes(range(256)) * 40)
    assert summary(read(p)) == [("REJECT", "binary_file", 1)]


def test_truncated_gzip_keeps_what_was_read_and_rejects_the_rest(tmp_path: Path) -> None:
    p = tmp_path / "dump.txt.gz"
    import random

    rng = random.Random(5)
    body = "".join(f"===== r{i}\n" + " ".join(str(rng.random()) for _ in range(20)) + "\n" for i in range(300))
    data = gzip.compress(body.encode())
    p.write_bytes(data[: len(data) // 2])
    items = read(p)
    assert isinstance(items[-1], Reject) and items[-1].reason == "truncated_input"
    assert all(isinstance(i, RawRecord) for i in items[:-1]) and len(items) > 2
