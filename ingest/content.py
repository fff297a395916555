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

import os
import re
from dataclasses import dataclass
from itertools import repeat

__all__ = ["STOPWORDS", "word_count", "word_counts", "paragraph_score", "score_page",
           "select_body", "is_prose"]

from ingest.stopwords import STOPWORDS as _LISTS
from ingest.stopwords import ENGLISH, TYPICAL_SHARE, detect_language, stopwords_for

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
# The function-word share is estimated from a paragraph's first words only: the share is
# stable after a few dozen words, and splitting long paragraphs completely was the main cost
# of stripping a clean article. A short sample (~15 words) decides clear prose; a paragraph
# whose short sample is not clearly prose gets a longer one before it is judged.
_PREFIX = 96
_LONG_PREFIX = 320
_CLEAR_SHARE = 0.25
_COUNT_PREFIX = 160
_EXACT_CHARS = 480
# With no stopword list for the page's language, every paragraph gets this share: length and
# punctuation decide alone (jusText's language-independent mode).
_NEUTRAL_STOP_RATIO = 0.25
# English share of function words above which a page is English without testing the others.
_ENGLISH_PAGE = 0.2
_LANG_MIN_TOKENS = 8
# A page with none of these needs no separator/URL/placeholder test per paragraph.
_NOT_PLAIN = ("|", "•", " · ", "http", "www.", "[")
_SHARE_SCALE = {lang: TYPICAL_SHARE[ENGLISH] / share for lang, share in TYPICAL_SHARE.items()}

# The C kernel (ingest/_kernels.c, built at install) counts English stopwords in the samples
# without making a str per token; the Python loop in score_page is the reference it is tested
# against, and what non-English pages use. THRESHER_NO_KERNELS=1 selects the Python path.
_kernels = None
if not os.environ.get("THRESHER_NO_KERNELS"):
    try:
        from ingest import _kernels
    except ImportError as exc:  # pragma: no cover - a source checkout without the build step
        raise ImportError(
            "thresher's compiled kernels (ingest._kernels) are missing: reinstall with "
            "`pip install -e .` (needs a C compiler), or set THRESHER_NO_KERNELS=1 to run the "
            "pure-Python code") from exc
_EN_TABLE = _kernels.word_table(sorted(_STOP_ANYCASE)) if _kernels is not None else None


def word_count(p: str) -> int:
    """Words in a single-spaced paragraph: exact up to _EXACT_CHARS characters, above that
    extrapolated from the first _COUNT_PREFIX characters.

    Word counts gate the rules (none applies above 60 words) and weigh scores (capped at 90
    words), so long paragraphs need no exact count, and counting spaces across every long
    paragraph of every article was a measurable share of the stripping budget.
    """
    n = len(p)
    if n <= _EXACT_CHARS:
        return p.count(" ") + 1
    return (p.count(" ", 0, _COUNT_PREFIX) * n) // _COUNT_PREFIX + 1


def word_counts(paragraphs: list[str]) -> list[int]:
    """``word_count`` of every paragraph (one C call when the kernels are built)."""
    if _kernels is not None:
        return _kernels.word_counts(paragraphs, _EXACT_CHARS, _COUNT_PREFIX)
    return [word_count(p) for p in paragraphs]


def _sample(p: str, size: int) -> list[str]:
    """Whitespace tokens of the first ``size`` characters (a word cut at the end dropped)."""
    if len(p) <= size:
        return p.split()
    toks = p[:size].split()
    if p[size] != " " and len(toks) > 1:
        toks.pop()
    return toks


def _tokens(p: str, words: int = -1) -> tuple[list[str], int]:
    """(whitespace tokens of the paragraph's first _PREFIX characters, word count).

    ``words`` is the word count when the caller already has it (paragraphs come with single
    spaces from split_paragraphs, so it is ``p.count(" ") + 1``).
    """
    if len(p) <= _LONG_PREFIX:
        toks = p.split()
        return toks, len(toks)
    return _sample(p, _LONG_PREFIX), (words if words >= 0 else word_count(p))


def paragraph_score(p: str, lang: str | None = ENGLISH) -> float:
    """Body-likeness of one paragraph: >0 looks like article prose, <0 like page furniture.

    ``lang`` is the page's language (see ``score_page``); None means no stopword list fits
    the page and the function-word share is not used.

    The magnitude grows with length so one long paragraph outweighs several junk lines; that
    is what makes the maximum-subarray region prefer the article over link lists. Features use
    C-level str methods only (a regex findall per feature was the largest cost of stripping).
    """
    toks, words = _tokens(p)
    if lang is None:
        return _score(p, len(toks), words, -1)
    stops = _STOP_ANYCASE if lang == ENGLISH else stopwords_for(lang)
    return _score(p, len(toks), words, sum(map(stops.__contains__, toks)), _SHARE_SCALE[lang])


def _score(p: str, ntoks: int, words: int, stops: int, scale: float = 1.0,
           plain: bool = False) -> float:
    """``stops``: stopword hits among the ``ntoks`` sampled tokens, or -1 for a page without
    a stopword list.

    ``plain`` says the page has no separator, URL or placeholder characters at all, so those
    per-paragraph tests can be skipped (they are most of the cost for a clean article).
    """
    if not words or (not p[0].isalpha() and _NUMERIC_RE.fullmatch(p)):
        return -1.5
    if stops < 0:
        # no list: scripts without spaces (CJK) count about one word per three characters
        words = max(words, len(p) // 3) if len(p) > 6 * words else words
        stop_ratio = _NEUTRAL_STOP_RATIO
        stops = 1
    else:
        stop_ratio = stops / ntoks * scale
    if p[-1] in _SENT_END:
        sentence = True
    else:
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
    if not p[0].isalpha() and _BULLET_RE.match(p):
        score -= 1.5
    if words >= 2 and p.isupper():
        score -= 1.0
    if plain:
        return score
    if "|" in p or "•" in p or " · " in p:  # memchr-fast; counting only when present
        score -= min(p.count("|") + p.count("•") + p.count(" · "), 4) * 0.75
    if "http" in p or "www." in p:
        score -= 1.5
    if p[0] == "[" and p[-1] == "]":  # [image alt text] placeholders
        score -= 1.0
    return score


def score_page(paragraphs: list[str],
               words: list[int] | None = None) -> tuple[list[float], str | None]:
    """Scores of all ``paragraphs`` in the page's language, and that language (None: no list fits).

    ``words`` are the paragraphs' ``word_count`` values when the caller has them. Tokens are
    split once: English hits are counted first, and only a page whose longer paragraphs are
    clearly not English is tested against the other lists and re-counted.
    """
    if words is None:
        words = [word_count(p) for p in paragraphs]
    if _kernels is not None:
        ntoks, hits, long_tok, long_hit = _kernels.stop_counts(
            paragraphs, _EN_TABLE, _PREFIX, _LONG_PREFIX, _CLEAR_SHARE, _LANG_MIN_TOKENS)
        if long_tok and long_hit >= _ENGLISH_PAGE * long_tok:  # English: nothing else to test
            return _scored(paragraphs, ntoks, words, hits, ENGLISH), ENGLISH
    en = _STOP_ANYCASE
    clear_en = _CLEAR_SHARE
    toks_list: list[list[str]] = []
    hits: list[int] = []
    long_tok = long_hit = 0
    for p in paragraphs:  # _sample inlined: this loop runs for every paragraph of every article
        if len(p) <= _PREFIX:
            t = p.split()
            h = sum(map(en.__contains__, t))
        else:
            t = p[:_PREFIX].split()
            if p[_PREFIX] != " " and len(t) > 1:
                t.pop()
            h = sum(map(en.__contains__, t))
            if h < clear_en * len(t):  # not clearly English prose: look further
                t = _sample(p, _LONG_PREFIX)
                h = sum(map(en.__contains__, t))
        toks_list.append(t)
        hits.append(h)
        if len(t) >= _LANG_MIN_TOKENS:
            long_tok += len(t)
            long_hit += h
    lang: str | None = ENGLISH
    if long_hit < _ENGLISH_PAGE * long_tok or not long_tok:
        lang = detect_language(sorted(toks_list, key=len, reverse=True))
        if lang is None:
            hits = [-1] * len(paragraphs)
        elif lang != ENGLISH:
            stops = stopwords_for(lang)
            hits = [sum(map(stops.__contains__, t)) for t in toks_list]
    if lang is not None and lang != ENGLISH:
        stops = stopwords_for(lang)
        clear = _CLEAR_SHARE / _SHARE_SCALE[lang]
        for k, p in enumerate(paragraphs):
            t = toks_list[k]
            if len(p) > _PREFIX and hits[k] < clear * len(t):
                t = toks_list[k] = _sample(p, _LONG_PREFIX)
                hits[k] = sum(map(stops.__contains__, t))
    return _scored(paragraphs, list(map(len, toks_list)), words, hits, lang), lang


def _scored(paragraphs: list[str], ntoks: list[int], words: list[int], hits: list[int],
            lang: str | None) -> list[float]:
    scale = _SHARE_SCALE[lang] if lang is not None else 1.0
    if _kernels is not None and lang is not None:
        # One pass per paragraph in C; it calls _score itself for non-ASCII paragraphs.
        return _kernels.scores(paragraphs, ntoks, words, hits, scale, _score)
    page = "\n".join(paragraphs)
    plain = not any(map(page.__contains__, _NOT_PLAIN))
    return list(map(_score, paragraphs, ntoks, words, hits, repeat(scale), repeat(plain)))


def is_prose(p: str, lang: str | None = ENGLISH) -> bool:
    """A paragraph that on its own is clearly article text (used for tail-marker guards)."""
    return paragraph_score(p, lang) >= 1.0


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


# In a gap between two body blocks, a list item of a few words costs at most this much: the
# article's own bullet lists (ingredients, steps, key points) sit between prose paragraphs,
# while menus and teaser lists sit at the edges of the page where nothing strong follows.
_LIST_GAP_COST = -0.5
_LIST_ITEM_MIN_WORDS = 2


def _gap_cost(paragraphs: list[str], vals: list[float], lo: int, hi: int) -> float:
    total = 0.0
    for j in range(lo, hi):
        v = vals[j]
        if v < _LIST_GAP_COST and _BULLET_RE.match(paragraphs[j]) \
                and paragraphs[j].count(" ") >= _LIST_ITEM_MIN_WORDS:
            v = _LIST_GAP_COST
        total += v
    return total


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
    raw = scores if scores is not None else score_page(paragraphs)[0]
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
        gap = _gap_cost(paragraphs, vals, pos, blk.start)
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
        gap = _gap_cost(paragraphs, vals, blk.end, pos)
        if blk.total + gap < need * 0.5:
            break
        for i in range(blk.start, pos):
            keep[i] = True
        pos = blk.start
    return keep
