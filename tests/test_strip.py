"""strip_boilerplate end to end on seed-shaped fixtures, plus content detection."""

from pathlib import Path

import pytest

from ingest.content import select_body
from ingest.rules import load_rules
from ingest.segment import split_paragraphs
from ingest.strip import strip_boilerplate

FIX = Path(__file__).parent / "fixtures"
RULES = load_rules()


def _run(name: str, **kw):
    paras = split_paragraphs((FIX / name).read_text(encoding="utf-8"))
    return paras, strip_boilerplate(paras, RULES, **kw)


def _accounted(paras, res):
    """Every paragraph is kept or removed exactly once, order preserved within each list."""
    assert sorted(res.paragraphs + [p for _, p in res.removed]) == sorted(paras)


def test_clean_article_with_captions_and_editing_credit():
    paras, res = _run("strip_clean_captions.txt")
    _accounted(paras, res)
    assert res.title == "Harbour council approves new ferry timetable for winter"
    assert res.removed == [
        ("title", "Harbour council approves new ferry timetable for winter"),
        ("caption", "Passengers wait at the north pier on a rainy morning. (Photo: Bay Courier)"),
        ("caption", "Passengers wait at the north pier on a rainy morning. (Photo: Bay Courier)"),
        ("credit", "Editing by Mara Lindqvist"),
    ]
    # the quote standfirst and the short quote paragraph are body
    assert res.paragraphs == [p for p in paras[1:] if "(Photo:" not in p][:-1]
    assert "\"It works,\" one resident said." in res.paragraphs
    assert res.tags == []


def test_comments_tags_and_font_widget():
    paras, res = _run("strip_comments_tags.txt")
    _accounted(paras, res)
    assert res.title == "Volunteers restore the old lighthouse garden"
    assert res.tags == ["lighthouse", "gardens", "volunteers", "Portville"]
    assert [p[:12] for p in res.paragraphs] == ["PORTVILLE – ", "“We wanted p", "The council "]
    reasons = dict((p, r) for r, p in res.removed)
    assert reasons["Tags: lighthouse, gardens, volunteers, Portville"] == "tags"
    assert reasons["A+ A-"] == "widget"
    assert reasons["12-03-2021"] == "timestamp"
    assert reasons["Comments"] == "comments"
    tail = [p for _, p in res.removed][-5:]
    assert tail == paras[-5:]
    assert paras[-5:-3] == ["Comments", paras[-4]] and paras[-4].startswith("Bay Courier moder")


def test_breadcrumb_prefix_title_is_second_line():
    paras, res = _run("strip_breadcrumb.txt")
    _accounted(paras, res)
    assert res.title == "Storm closes coastal road for two days"
    assert res.removed == [
        ("breadcrumb", "date 2021-04-02 Home › bay courier › Storm closes coastal road for two days"),
        ("title", "Storm closes coastal road for two days"),
        ("timestamp", "2021/04/02 | 08:15"),
    ]
    assert res.paragraphs == paras[3:]


@pytest.mark.parametrize("url", [
    None, "https://baycourier.example/news/2021/04/storm-closes-coastal-road-two-days.html"])
def test_full_page_body_inside_nav_and_footer(url):
    paras, res = _run("strip_fullpage.txt", url=url)
    _accounted(paras, res)
    assert res.title == "Storm closes coastal road for two days"
    assert res.paragraphs == [
        "The coastal road between Portville and Eastcliff will stay closed until Sunday after "
        "high waves washed gravel and debris across both lanes on Thursday night, the roads "
        "agency said on Friday morning.",
        "Crews were working in shifts to clear the road and inspect the sea wall for damage "
        "before reopening it to traffic, a spokesperson for the agency told reporters at the "
        "scene.",
        "\"Safety comes first,\" she said.",
        "Drivers are advised to use the inland route, which adds about twenty minutes to the "
        "journey, and to check the agency website for updates before they set out.",
    ]
    reasons = dict((p, r) for r, p in res.removed)
    assert reasons["By Jonas Berg"] == "byline"
    assert reasons["Related Stories"] == "related"
    assert reasons["• Eastcliff school reopens after repairs"] == "related"


def test_given_title_is_removed_with_reason_title():
    paras, res = _run("strip_clean_captions.txt",
                      title="Harbour council approves new ferry timetable for winter")
    assert res.title == "Harbour council approves new ferry timetable for winter"
    assert res.removed[0] == ("title", paras[0])
    assert paras[0] not in res.paragraphs


def test_content_detector_keeps_body_between_junk():
    body = [
        "The coastal road will stay closed until Sunday after high waves washed gravel and "
        "debris across both lanes on Thursday night, the roads agency said.",
        "Officials said the damage was worse than they had expected.",
        "Crews were working in shifts to clear the road and inspect the sea wall for damage "
        "before reopening it to traffic, a spokesperson for the agency told reporters.",
    ]
    nav = ["• Home", "• News", "• Sport", "Weather | Traffic | Jobs", "LOGIN"]
    foot = ["• Ferry timetable changes", "• School reopens", "About | Careers | Advertise"]
    keep = select_body(nav + body + foot)
    assert keep == [False] * len(nav) + [True] * len(body) + [False] * len(foot)


def test_content_detector_never_empties_a_clean_short_article():
    paras = ["Storm closes coastal road", "The road is closed.", "It reopens Sunday."]
    assert select_body(paras) == [True, True, True]
    res = strip_boilerplate(paras, RULES)
    assert res.title == "Storm closes coastal road"
    assert res.paragraphs == paras[1:]


def test_detect_content_off_keeps_unruled_junk():
    junk = ["• Ferry timetable changes", "• School reopens"]
    paras = junk + split_paragraphs((FIX / "strip_breadcrumb.txt").read_text(encoding="utf-8"))[3:]
    assert strip_boilerplate(paras, RULES, detect_content=False).paragraphs[:2] == junk
    assert strip_boilerplate(paras, RULES).removed == [("low_content", p) for p in junk]


def test_empty_input():
    res = strip_boilerplate([], RULES)
    assert (res.title, res.paragraphs, res.removed, res.tags) == (None, [], [], [])
