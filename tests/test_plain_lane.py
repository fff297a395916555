"""The plain lane (`clean._plain_items`): a JSONL range cleaned with nothing to strip (no
boilerplate, no collapsing, no recurring detector, no --explain) gives exactly what the general
path (`clean._article_items`, through `clean_record` and an Article) gives: the same columns,
the same rejects, the same spilled corpus lines."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from dedupe.config import DedupeConfig
from ingest import clean, parallel
from ingest.clean import CleanSettings, sign_chunk_packed
from ingest.ranges import LineRange
from ingest.readers import ReaderOptions
from ingest.spill import SpillReader, close_spills

WRAPPED = "\n".join(["The council met on Tuesday to discuss the new budget for the coming"] * 6)
LINES = [
    b'{"id": "a1", "text": "First paragraph.\\n\\nSecond one here."}',
    b'{"id": "a2", "title": "T", "url": "https://www.example.com/x", "date": "5 March 2024", '
    b'"source": "Src", "text": "Body of a2."}',
    b'{"text": "LONDON (Reuters) - Something happened on March 3, 2021.\\n\\nMore of it."}',
    b'{"id": null, "text": "Home \xe2\x80\xba World \xe2\x80\xba Politics\\n\\nBody text of 2019."}',
    b'{"id": 7, "text": "x y z"}',
    b'{"id": "", "text": "a"}',
    b'{"id": "e1", "text": ""}',
    b'{"id": "e2", "text": "   \\n  "}',
    b'{"id": "e3", "text": "\\u200b"}',
    b'{"id": "m1"}',
    b'not json at all',
    b'[1, 2]',
    b'   ',
    b'{"id": "x1", "text": "Caf\\u00e9 au lait \\u2013 ok.", "lang": "fr", "file": "spoof", "record": 99, '
    b'"n": {"k": [1, 2]}, "title": null, "url": ""}',
    b'{"id": "w1", "text": ' + f'"{WRAPPED}"'.replace("\n", "\\n").encode() + b'}',
    b'{"id": "u1", "text": "bad \xff byte"}',
    b'{"id": "d1", "text": "Nov. 20, 2019 \\u2014 The day began.\\n\\nThen more."}',
    b'{"id": "s1", "text": "March 3, 2020\\n\\nSmith News\\n\\nThe body, at last."}',
    b'{"id": "big", "text": "' + b"y" * 1000 + b'"}',
]


def _packed(tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch, plain: bool) -> tuple[dict, bytes]:
    data = b"\n".join(LINES) + b"\n"
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)
    records = sum(1 for line in LINES if line.strip())
    spill = tmp_path / name
    spill.mkdir()
    ctx = {"reader": ReaderOptions(max_record_bytes=1000), "dedupe": DedupeConfig(), "recurring": None,
           "explain": frozenset(), "spill_dir": str(spill),
           "clean": CleanSettings(rules=None, boilerplate=False, collapse_paragraphs=False)}  # type: ignore[arg-type]
    parallel._set_context(ctx)
    with monkeypatch.context() as patch:
        if not plain:
            patch.setattr(clean, "_nothing_to_strip", lambda ctx: False)
        taken = []
        patch.setattr(clean, "_plain_items", lambda *a, _f=clean._plain_items: taken.append(1) or _f(*a))
        packed = sign_chunk_packed(LineRange("in.jsonl", str(path), "in", 0, len(data), 0, records), None)
    assert bool(taken) == plain
    close_spills(parallel.worker_context())
    with SpillReader() as reader:
        blob = reader.read(packed.spill)  # type: ignore[arg-type]
    fields = dataclasses.asdict(packed)
    fields.pop("spill")
    fields["signatures"] = packed.signatures.tolist()  # type: ignore[union-attr]
    return fields, blob


def test_the_plain_lane_gives_what_the_general_path_gives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lane, lane_blob = _packed(tmp_path, "plain", monkeypatch, plain=True)
    general, general_blob = _packed(tmp_path, "general", monkeypatch, plain=False)
    assert lane == general
    assert lane_blob == general_blob
    # and the cases it covers are the ones meant
    assert lane["ids"] == ["a1", "a2", "in:3", "in:4", "7", "in:6", "x1", "w1", "u1", "d1", "s1"]
    assert lane["dates"] == [None, "2024-03-05", "2021-03-03", None, None, None, None, None, None,
                             "2019-11-20", "2020-03-03"]
    assert [(k, r["reason"], r["record"]) for k, r in lane["rejects"]] == [
        (6, "empty_article", 7), (6, "empty_article", 8), (6, "empty_after_cleaning", 9),
        (6, "missing_text", 10), (6, "bad_json", 11), (6, "bad_json", 12), (11, "too_large", 18)]
    corpus = [json.loads(line) for line in lane_blob.decode().splitlines()]
    assert [r["source"] for r in corpus] == [None, "Src", "Reuters", "World", None, None, None, None, None,
                                             None, "Smith News"]
    assert corpus[1]["meta"] == {"url": "https://www.example.com/x", "file": "in.jsonl", "record": 2}
    assert corpus[6]["meta"] == {"file": "in.jsonl", "record": 13, "lang": "fr", "n": {"k": [1, 2]}}
    assert corpus[8]["meta"] == {"file": "in.jsonl", "record": 15, "encoding_errors": 1}
    assert corpus[7]["text"] == " ".join(WRAPPED.split("\n"))  # unwrapped into one paragraph
    assert corpus[0]["text"] == "First paragraph.\n\nSecond one here."
