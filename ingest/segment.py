"""Split raw article text into paragraphs.

Dumps come in three layouts and we must handle all of them without being told which:

* one paragraph per line (no blank lines),
* blank lines between paragraphs,
* hard-wrapped at a fixed width (w3m/lynx style, ~80 columns), possibly with blank lines too.

Hard-wrapped text is re-joined with the "full line" test: a line continues the previous one when
the next line's first word would have fitted on the previous line, i.e. the wrapper had no room
left. The wrap width is detected per article, and rejoining only happens when the article really
looks wrapped; otherwise separate one-per-line paragraphs would be glued together.
"""

from __future__ import annotations

import re

from ingest.content import _kernels

__all__ = ["split_paragraphs", "normalize_text", "detect_wrap_width"]

# Exotic spaces that scrapers leave in text; all become a plain space.
_SPACE_RE = re.compile("[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000\t\f\v]")
# Zero-width characters carry no text and would break word matching.
_ZW_RE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
_MULTISPACE_RE = re.compile(r" {2,}")
# A line starting like this begins a new item even when the previous line was full.
_ITEM_START_RE = re.compile(r"\s*(?:[•*·▪◦□☆■●○►▶‣–—-]\s|\d{1,3}[.)]\s)")

# How far below the wrap width a line may end and still count as "full": a wrapper breaks
# before a word that does not fit, so non-final lines of a wrapped paragraph end within about
# one long word of the width.
_FULL_SLACK = 14
_MIN_WRAP = 30
_MIN_FULL = 5
_MAX_WRAP = 200


def normalize_text(text: str) -> str:
    """Normalise newlines and odd whitespace so later steps see plain spaces and ``\\n``."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\t" in text:
        text = text.replace("\t", " ")
    if text.isascii():
        return text  # the exotic spaces below are all non-ASCII
    text = _SPACE_RE.sub(" ", text)
    return _ZW_RE.sub("", text)


def detect_wrap_width(lines: list[str]) -> int | None:
    """Return the hard-wrap width of ``lines`` or None when the text does not look wrapped.

    Candidate widths are the longest line lengths (a few lines may overflow the wrapper: URLs,
    preformatted tables). For each candidate we count "full" lines: lines the wrapper must have
    broken, because the next line's first word would not have fitted. The text counts as wrapped
    when the best candidate has several full lines making up a good share of the longish lines;
    in an unwrapped one-per-line dump only the odd paragraphs that happen to end near the
    maximum length qualify.
    """
    lens = [len(ln) for ln in lines if " " in ln.strip()]
    if len(lens) < 3:
        return None
    lens.sort()
    # Quick exit for the common unwrapped case: many lines longer than any wrap width.
    if lens[-min(len(lens), 3 + len(lens) // 50)] > _MAX_WRAP:
        return None
    # (length of line, first-word length of the next non-blank line) for every line pair
    pairs = [(len(lines[i]), _first_word_len(lines[i + 1]))
             for i in range(len(lines) - 1) if lines[i] and lines[i + 1].strip()]
    best_w, best_full = 0, 0
    for width in sorted({n for n in lens if _MIN_WRAP <= n <= _MAX_WRAP}, reverse=True)[:6]:
        over = sum(1 for n in lens if n > width)
        if over > max(2, len(lens) // 50):
            break
        full = sum(1 for n, fw in pairs if n <= width and n + 1 + fw > width)
        if full > best_full:
            best_w, best_full = width, full
    if best_full < _MIN_FULL:
        return None
    # content length, not raw: centred menu items are long only because of their indent
    longish = sum(1 for ln in lines if best_w // 2 < len(ln.strip()) and len(ln) <= best_w)
    return best_w if best_full >= 0.12 * longish else None


def _first_word_len(line: str) -> int:
    s = line.lstrip()
    cut = s.find(" ")
    return len(s) if cut < 0 else cut


def split_paragraphs(text: str) -> list[str]:
    """Article text -> list of stripped, non-empty paragraphs.

    Works for one-paragraph-per-line, blank-line-separated and hard-wrapped text. Whitespace
    inside a paragraph is collapsed to single spaces.
    """
    if _kernels is not None:
        fast = _kernels.split_unwrapped(text)  # ASCII text that is plainly not wrapped
        if fast is not None:
            return fast
    return split_paragraphs_py(text)


def split_paragraphs_py(text: str) -> list[str]:
    """`split_paragraphs` in Python: the reference of the C fast path, and every other case."""
    text = normalize_text(text)
    lines = [ln.rstrip() for ln in text.split("\n")]
    width = detect_wrap_width(lines)
    out: list[str] = []
    if width is None:
        for ln in lines:
            s = ln.strip()
            if s:
                # the substring test is far cheaper than a regex scan of a clean paragraph
                out.append(_MULTISPACE_RE.sub(" ", s) if "  " in s else s)
        return out

    buf: list[str] = []
    prev = ""
    for ln in lines:
        s = ln.strip()
        if not s:
            if buf:
                out.append(" ".join(buf))
                buf = []
            prev = ""
            continue
        if buf and len(prev) + 1 + _first_word_len(ln) > width and not _ITEM_START_RE.match(ln):
            buf.append(s)
        else:
            if buf:
                out.append(" ".join(buf))
            buf = [s]
        prev = ln
    if buf:
        out.append(" ".join(buf))
    return [_MULTISPACE_RE.sub(" ", p) if "  " in p else p for p in out]
