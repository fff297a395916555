"""Find the main body of a page without per-site rules.

Each paragraph gets a score from what body text looks like (ideas from jusText and
body-text-extraction, our own weights): long runs of words with sentence punctuation and a
normal share of function words score positive; short lines, menus, bullets, pipes, all-caps,
URLs and bare numbers score negative. Scores are smoothed over neighbours (a junk line inside
prose is pulled up, a prose-looking line inside a menu is pulled down) and the body is the
maximum-sum contiguous region (Kadane). Further strong blocks separated from it by a short
junk gap are added, so a page with an inline ad or photo strip is not cut in half.

Everything is per paragraph with C-level string methods and precompiled regexes: this runs
for every article in the pipeline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["STOPWORDS", "paragraph_score", "score_page", "select_body", "is_prose"]

from ingest.stopwords import STOPWORDS as _LISTS
from ingest.stopwords import ENGLISH, detect_language, stopwords_for

STOPWORDS = _LISTS[ENGLISH]  # English list, kept for callers that import it from here

# Stopwords in the three casings they appear in, so tokens need no lower-casing.
_STOP_ANYCASE = stopwords_for(ENGLISH)
_BULLET_RE = re.compile(r"[•*·▪◦□☆■●○►▶‣»›+]|\d{1,2}[.)]\s|[-–—]\s")
_NUMERIC_RE = re.compile(r"[\d\W_]+")
# A body region must add up to at least this (about one 40-word paragraph); below it we
# cannot tell body from furniture and keep everything.
_MIN_REGION = 2.0
_CLOSERS = "\"'”’)]»"
_SENT_END = ".!?…。！？"
# The function-word share is estimated from the first tokens only: the share is stable after
# a few dozen words and splitting a 150-word paragraph completely is the main cost.
_SAMPLE = 48
# With no stopword list for the page's language, every paragraph gets this share: length and
# punctuation decide alone (jusText's language-independent mode).
_NEUTRAL_STOP_RATIO = 0.25
# English share of function words above which a page is English without testing the others.
_ENGLISH_PAGE = 0.2
_LANG_MIN_TOKENS = 8


def _tokens(p: str) -> tuple[list[str], int]:
    """(first _SAMPLE whitespace tokens, word count)."""
    toks = p.split(None, _SAMPLE)
    if len(toks) > _SAMPLE:
        toks.pop()
        return toks, p.count(" ") + 1
    return toks, len(toks)


def paragraph_score(p: str, stops: frozenset[str] | None = _STOP_ANYCASE) -> float:
    """Body-likeness of one paragraph: >0 looks like article prose, <0 like page furniture.

    ``stops`` is the any-case stopword set of the page's language (see ``page_language``);
    None means no list fits the language and the function-word share is not used.

    The magnitude grows with length so one long paragraph outweighs several junk lines; that
    is what makes the maximum-subarray region prefer the article over link lists. Features use
    C-level str methods only (a regex findall per feature was the largest cost of stripping).
    """
    toks, words = _tokens(p)
    if stops is None:
        return _score(p, toks, words, -1)
    return _score(p, toks, words, sum(map(stops.__contains__, toks)))


def _score(p: str, toks: list[str], words: int, stops: int) -> float:
    """``stops``: stopword hits among ``toks``, or -1 for a page without a stopword list."""
    if not words or _NUMERIC_RE.fullmatch(p):
        return -1.5
    if stops < 0:
        # no list: scripts without spaces (CJK) count about one word per three characters
        words = max(words, len(p) // 3) if len(p) > 6 * words else words
        stop_ratio = _NEUTRAL_STOP_RATIO
        stops = 1
    else:
        stop_ratio = stops / len(toks)
    end = p.rstrip(_CLOSERS)[-1:]
    sentence = (end != "" and end in _SENT_END) or ". " in p or "。" in p

    if words >= 12 and stop_ratio >= 0.15:
        # prose: strength grows with length (capped) and with function-word share
        score = min(words, 90) / 10.0 * (0.6 + min(stop_ratio, 0.4))
        if not sentence:
            score *= 0.5
    elif words >= 6 and sentence and stop_ratio >= 0.15:
        score = 0.5  # short sentence: a quote, a one-line paragraph
    elif sentence and stops and words >= 3:
        score = 0.1
    else:
        score = -1.5 if words <= 3 else -1.0
    if _BULLET_RE.match(p):
        score -= 1.5
    seps = p.count("|") + p.count("•") + p.count(" · ")
    if seps:
        score -= min(seps, 4) * 0.75
    if "http" in p or "www." in p:
        score -= 1.5
    if words >= 2 and p.isupper():
        score -= 1.0
    if p[0] == "[" and p[-1] == "]":  # [image alt text] placeholders
        score -= 1.0
    return score


def score_page(paragraphs: list[str]) -> tuple[list[float], frozenset[str] | None]:
    """Scores of all ``paragraphs`` scored in the page's language, and that language's stopwords.

    Tokens are split once: English hits are counted first, and only a page whose longer
    paragraphs are clearly not English is tested against the other lists and re-counted.
    """
    toks_words = [_tokens(p) for p in paragraphs]
    en = _STOP_ANYCASE
    hits = [sum(map(en.__contains__, t)) for t, _ in toks_words]
    long_tok = long_hit = 0
    for (t, _), h in zip(toks_words, hits):
        if len(t) >= _LANG_MIN_TOKENS:
            long_tok += len(t)
            long_hit += h
    stops: frozenset[str] | None = en
    if long_hit < _ENGLISH_PAGE * long_tok or not long_tok:
        ranked = sorted((t for t, _ in toks_words), key=len, reverse=True)
        lang = detect_language(ranked)
        if lang != ENGLISH:
            stops = stopwords_for(lang) if lang is not None else None
            hits = ([sum(map(stops.__contains__, t)) for t, _ in toks_words]
                    if stops is not None else [-1] * len(paragraphs))
    return [_score(p, t, w, h) for p, (t, w), h in zip(paragraphs, toks_words, hits)], stops


def is_prose(p: str, stops: frozenset[str] | None = _STOP_ANYCASE) -> bool:
    """A paragraph that on its own is clearly article text (used for tail-marker guards)."""
    return paragraph_score(p, stops) >= 1.0


@dataclass
class _Block:
    start: int
    end: int  # exclusive
    total: float


def _max_subarray(vals: list[float], lo: int, hi: int) -> _Block | None:
    best = _Block(lo, lo, 0.0)
    cur, cur_start = 0.0, lo
    for i in range(lo, hi):
        if cur <= 0.0:
            cur, cur_start = 0.0, i
        cur += vals[i]
        if cur > best.total:
            best = _Block(cur_start, i + 1, cur)
    return best if best.end > best.start else None


def _smooth(raw: list[float]) -> list[float]:
    n = len(raw)
    if n < 3:
        return raw[:]
    out = [0.0] * n
    for i in range(n):
        left = raw[i - 1] if i else raw[i]
        right = raw[i + 1] if i + 1 < n else raw[i]
        # clip neighbours: one huge paragraph must not drag a menu line into the body
        out[i] = 0.6 * raw[i] + 0.2 * max(min(left, 2.0), -2.0) + 0.2 * max(min(right, 2.0), -2.0)
    return out


def select_body(paragraphs: list[str], *, gap_ratio: float = 0.35,
                scores: list[float] | None = None) -> list[bool]:
    """Return a keep-flag per paragraph: True inside the detected body region(s).

    A clean article (nothing that scores as furniture around it) comes back all True. Blocks
    outside the main region are added when their own sum is at least ``gap_ratio`` of the main
    region's and the junk between them costs less than the block brings.
    """
    n = len(paragraphs)
    if n == 0:
        return []
    raw = scores if scores is not None else [paragraph_score(p) for p in paragraphs]
    if n == 1 or min(raw[1:]) > -1.0:
        # nothing (after a possible headline) looks like furniture: already clean text
        return [True] * n
    vals = _smooth(raw)
    main = _max_subarray(vals, 0, n)
    if main is None or main.total < _MIN_REGION:
        return [True] * n  # no real prose anywhere: better to keep than return nothing
    keep = [False] * n
    for i in range(main.start, main.end):
        keep[i] = True
    need = max(main.total * gap_ratio, 3.0)

    # grow to the right
    pos = main.end
    while pos < n:
        blk = _max_subarray(vals, pos, n)
        if blk is None or blk.total < need:
            break
        gap = sum(vals[pos:blk.start])
        if blk.total + gap < need * 0.5:
            break
        for i in range(pos, blk.end):
            keep[i] = True
        pos = blk.end
    # grow to the left
    pos = main.start
    while pos > 0:
        blk = _max_subarray(vals, 0, pos)
        if blk is None or blk.total < need:
            break
        gap = sum(vals[blk.end:pos])
        if blk.total + gap < need * 0.5:
            break
        for i in range(blk.start, pos):
            keep[i] = True
        pos = blk.start
    return keep
