"""Pass 2's copy of a wholly accepted chunk (`pipeline._chunk_pieces`): runs of spilled lines
are copied whole, dropped articles' lines are left out, and the `[]` of an article with
duplicates is filled in -- at the chunk's edges, side by side, and not at all."""

from __future__ import annotations

from array import array

import pytest

from dedupe.clusters import Link
from ingest.pipeline import _chunk_pieces
from ingest.spill import NO_DUPLICATES, SPLICE

IDS = [f"a{i}" for i in range(20)]
FIRST = 10  # the chunk's first article is article 10 of the run


def _chunk(n: int) -> tuple[memoryview, array, array]:
    """n spilled lines of articles FIRST.., as the workers write them."""
    lines, bounds, splices = [], array("I", [0]), array("I")
    for k in range(n):
        head = b'{"id":"' + IDS[FIRST + k].encode() + b'"'
        lines.append(head + NO_DUPLICATES + b'"meta":{}}\n')
        splices.append(len(head) + SPLICE)
        bounds.append(bounds[-1] + len(lines[-1]))
    return memoryview(b"".join(lines)), bounds, splices


def _expected(n: int, dropped: set[int], members: dict[int, list[int]]) -> bytes:
    out = []
    for i in range(FIRST, FIRST + n):
        if i in dropped:
            continue
        dups = ",".join(f'"{IDS[j]}"' for j in members.get(i, []))
        out.append(f'{{"id":"{IDS[i]}","duplicates":[{dups}],"meta":{{}}}}\n'.encode())
    return b"".join(out)


@pytest.mark.parametrize("dropped, members", [
    (set(), {}),                                   # nothing special: one piece
    ({10}, {}),                                    # the first line dropped
    ({14}, {}),                                    # the last line dropped
    ({10, 11, 12, 13, 14}, {}),                    # every line dropped
    ({12, 13}, {11: [12, 13]}),                    # duplicates right after their kept article
    ({11}, {10: [11], 14: [2, 11]}),               # spliced lines at both edges
    (set(), {12: [3]}),                            # an earlier chunk's article as the duplicate
])
def test_a_chunk_copies_runs_whole_and_splices_only_special_lines(dropped, members):
    view, bounds, splices = _chunk(5)
    links = {i: Link(i, 0, 0, 2, 0.9, 0.9) for i in dropped}
    special = sorted(dropped | members.keys())
    pieces, out = _chunk_pieces(special, FIRST, view, bounds, splices, links, members, IDS)
    assert b"".join(pieces) == _expected(5, dropped, members)
    assert out == sorted(dropped)
    assert len(pieces) <= 2 * len(special) + 1


def test_without_a_corpus_only_the_dropped_are_named():
    _, bounds, splices = _chunk(3)
    links = {11: Link(11, 10, 10, 2, 1.0, 1.0)}
    pieces, out = _chunk_pieces([10, 11], FIRST, None, bounds, splices, links, {10: [11]}, IDS)
    assert pieces == [] and out == [11]


@pytest.mark.parametrize("text, title, extra", [
    ("plain text", None, {}),
    # the splice mark inside the text and the title, quoted and escaped there
    ('he wrote ,"duplicates":[],"removed": and left', ',"duplicates":[],', {}),
    ("caf\u00e9 \u4e2d\u6587 \U0001F600 " * 40, "\u00e9t\u00e9", {}),  # more bytes than characters
    ("text", None, {"duplicates": [], "removed": 1}),  # input fields of those names, in meta
])
def test_a_corpus_line_knows_where_its_duplicates_go(text, title, extra):
    import orjson

    from ingest.clean import _encoded
    from ingest.records import Article

    meta = {"file": "in.jsonl", "record": 3, **extra}
    article = Article("a1", title, "2020-01-02", "Wire", [text], {}, [], meta)
    line, splice = _encoded(article, text)
    assert line[splice - SPLICE:splice + 2] == b',"duplicates":[]'
    filled = line[:splice] + b'["a7","a9"]' + line[splice + 2:]
    assert orjson.loads(filled) == {"id": "a1", "title": title, "date": "2020-01-02", "source": "Wire",
                                    "text": text, "duplicates": ["a7", "a9"], "removed": {}, "meta": meta}
