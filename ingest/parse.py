"""Header metadata: the article's date and its source/outlet, from the text itself.

Dumps carry these in a handful of shapes (`date 2019-09-09`, `2019/09/09 | 21:40`,
`19-07-2018`, `November 20, 2019`, a dateline `ERBIL (Outlet) - …`, a breadcrumb
`Home › outlet › …`). Only the head of the article is searched: a date in the body is
usually about the story, not the publication.
"""

from __future__ import annotations

import re
from datetime import date as _date
from urllib.parse import urlsplit

from ingest.content import _kernels

HEAD_PARAGRAPHS = 12

_MONTHS = {
    m: i
    for i, names in enumerate(
        [
            ("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"),
            ("may",), ("jun", "june"), ("jul", "july"), ("aug", "august"),
            ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for m in names
}
_MONTH = r"(?P<mon>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
_DATE_PATTERNS = [
    # 2019-09-09, 2019/09/09, 2019.09.09 (optionally followed by a time)
    ("ymd", re.compile(r"(?<!\d)(?P<y>(?:19|20)\d\d)[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})(?!\d)")),
    # 19-07-2018, 19.07.2018: day first
    ("dmy", re.compile(r"(?<![\d/])(?P<d>\d{1,2})[-.](?P<m>\d{1,2})[-.](?P<y>(?:19|20)\d\d)(?!\d)")),
    # 07/19/2018: month first (US habit) unless the first number cannot be a month
    ("mdy", re.compile(r"(?<![\d-])(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>(?:19|20)\d\d)(?!\d)")),
    # November 20, 2019 / Nov. 20 2019
    ("text_mdy", re.compile(_MONTH + r"\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<y>(?:19|20)\d\d)(?!\d)", re.I)),
    # 20 November 2019
    ("text_dmy", re.compile(r"(?<!\d)(?P<d>\d{1,2})(?:st|nd|rd|th)?\s+" + _MONTH + r",?\s+(?P<y>(?:19|20)\d\d)(?!\d)", re.I)),
]

_DATELINE_SOURCE = re.compile(r"^[A-Z][A-Z .,'’-]{1,40}\s*\((?P<src>[^()]{2,40})\)\s*[-–—:]")
_BREADCRUMB = re.compile(r"\bHome\s*[›»>|/]\s*(?P<src>[^›»>|/]{2,40}?)\s*[›»>|/]")
_NAME_LINE = re.compile(r"^[A-Z][\w&.'’-]*(?:\s+[A-Z0-9][\w&.'’-]*){0,3}$")


_YEAR = re.compile(r"(?:19|20)\d\d")


def normalise_date(text: str) -> str | None:
    """The first date in `text` as ISO `YYYY-MM-DD`, or None."""
    # Every pattern needs a year, and most paragraphs have none. A year starts "19" or "20":
    # the substring tests rule most paragraphs out ~4x faster than the regex's scan (the first
    # 80 characters of the bench corpus's articles: 250 against 1,040 ns).
    if ("19" not in text and "20" not in text) or not _YEAR.search(text):
        return None
    best: tuple[int, str] | None = None
    for kind, pattern in _DATE_PATTERNS:
        m = pattern.search(text)
        if not m:
            continue
        y = int(m.group("y"))
        mon = m.groupdict().get("mon")
        month = _MONTHS[mon.lower().rstrip(".")] if mon else int(m.group("m"))
        day = int(m.group("d"))
        if kind == "mdy" and month > 12:
            month, day = day, month
        try:
            iso = _date(y, month, day).isoformat()
        except ValueError:
            continue
        if best is None or m.start() < best[0]:
            best = (m.start(), iso)
    return best[1] if best else None


DATELINE_CHARS = 80
BREADCRUMB_CHARS = 200  # a breadcrumb trail's "Home" starts this near the start of its paragraph


def find_date(header: list[str], first_body: str | None = None) -> str | None:
    """The publication date: the first date named in the header (the lines above the body),
    or in a dateline at the very start of the first body paragraph. Dates further into the
    body are about the story, not the publication."""
    for paragraph in header[-HEAD_PARAGRAPHS:]:
        found = normalise_date(paragraph)
        if found:
            return found
    if first_body:
        return normalise_date(first_body[:DATELINE_CHARS])
    return None


def find_source(paragraphs: list[str], url: str | None = None) -> str | None:
    """The outlet the text names: a dateline `CITY (Outlet) -`, a name line right after the
    date line, a breadcrumb's first crumb after Home, and failing those the URL's host.
    The C kernel finds in one call the few paragraphs each test needs to look at (nearly
    always none); `_find_source_py` is the reference it is tested against."""
    if _kernels is None:
        return _find_source_py(paragraphs, url)
    head = paragraphs[:HEAD_PARAGRAPHS]
    datelines, pairs, homes = _kernels.head_marks(head, BREADCRUMB_CHARS)
    for k in datelines:
        m = _DATELINE_SOURCE.match(head[k])
        if m:
            return m.group("src").strip()
    for k in pairs:
        if normalise_date(head[k]) and _NAME_LINE.match(head[k + 1]):
            return head[k + 1]
    for k, at in homes:
        m = _BREADCRUMB.search(head[k], at)
        if m:
            return m.group("src").strip()
    return _url_host(url)


def _url_host(url: str | None) -> str | None:
    if url:
        host = urlsplit(url).hostname or ""
        return host.removeprefix("www.") or None
    return None


def _find_source_py(paragraphs: list[str], url: str | None = None) -> str | None:
    """`find_source` in Python, a pattern at a time over the head."""
    head = paragraphs[:HEAD_PARAGRAPHS]
    for paragraph in head:
        m = _DATELINE_SOURCE.match(paragraph)
        if m:
            return m.group("src").strip()
    for before, line in zip(head, head[1:]):
        if len(before) <= 40 and normalise_date(before) and _NAME_LINE.match(line) and len(line) <= 40:
            return line
    for paragraph in head:
        # A trail opens its line (after a date at most): looking for "Home" in the whole of
        # every long body paragraph was ~3% of a near-duplicate-only run.
        at = paragraph.find("Home", 0, BREADCRUMB_CHARS)
        m = _BREADCRUMB.search(paragraph, at) if at >= 0 else None
        if m:
            return m.group("src").strip()
    return _url_host(url)
