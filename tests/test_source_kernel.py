"""`parse.find_source` with the C kernel `head_marks` against its Python reference."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import parse
from ingest.parse import BREADCRUMB_CHARS, _find_source_py, find_source

pytestmark = pytest.mark.skipif(parse._kernels is None, reason="THRESHER_NO_KERNELS: no kernel to compare")

# Pieces of the shapes find_source looks for, and near misses of them.
PIECES = [
    "ERBIL (Rudaw) - ", "BAGHDAD, Iraq (AP) — ", "A (B) -", "AB(CD)-", "O’HARE (Wire) : ", "Rome (Agency) - ",
    "ERBIL (Rudaw ", "2019-09-09", "2019/09/09 | 21:40", "19-07-2018", "November 20, 2019", "Rudaw",
    "Kurdistan 24", "The Outlet", "rudaw", "Home › News › ", "Home » Politics » ", "Home > a > ",
    "Home", "Hom", "home › x › ", "HOME › x › ", "Homepage", " ", ".", "(", ")", "-", "’", "é", "ß", "中文",
    "word ", "Some sentence that goes on. ", "x" * 37, "y" * 190, "z" * 196, "w" * 41,
]

paragraph = st.lists(st.sampled_from(PIECES), min_size=1, max_size=8).map("".join)
head = st.lists(paragraph, min_size=0, max_size=14)
url = st.sampled_from([None, "", "https://www.rudaw.net/english/x", "http://example.org", "not a url"])


@settings(max_examples=3000, deadline=None)
@given(head, url)
def test_find_source_equals_the_reference(paragraphs: list[str], link: str | None) -> None:
    assert find_source(paragraphs, link) == _find_source_py(paragraphs, link)


@pytest.mark.parametrize("offset", [190, 195, 196, 197, 200])
def test_home_near_the_end_of_the_window(offset: int) -> None:
    text = "a" * (offset - 1) + " Home › Politics › story"  # "Home" at `offset`
    want = "Politics" if offset + 4 <= BREADCRUMB_CHARS else None
    assert find_source([text]) == _find_source_py([text]) == want


def test_each_shape_is_found() -> None:
    assert find_source(["ERBIL (Rudaw) - The story begins."]) == "Rudaw"
    assert find_source(["2019-09-09", "Rudaw", "The story."]) == "Rudaw"
    assert find_source(["Home › Politics › Story", "The story."]) == "Politics"
    assert find_source(["The story."], "https://www.rudaw.net/x") == "rudaw.net"
    assert find_source(["The story."]) is None


def test_head_marks_lists_only_the_candidates() -> None:
    marks = parse._kernels.head_marks(["ERBIL (R) - x", "2019-09-09", "Rudaw", "x" * 197 + "Home", "Home x"], 200)
    assert marks == ([0], [0, 1], [(4, 0)])  # (paragraph 3 is too long for a pair, its "Home" too late)
    with pytest.raises(TypeError, match="paragraphs must be str"):
        parse._kernels.head_marks(["a", 1], 200)
