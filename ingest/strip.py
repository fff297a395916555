"""Strip boilerplate from an article's paragraphs and find its headline.

Order of work, and why:

1. ``title`` given by the input format: paragraphs equal to it are dropped (reason ``title``).
2. Line rules and tags rules (rules.toml + user files) drop known furniture.
3. Content detection (content.py) scores the rest in the page's language (stopwords.py).
   Tail markers without ``resume_words`` (comment headings, ...) that follow at least
   ``after_words`` words of prose-scoring paragraphs cut the page first, so a comment
   section cannot out-score a short article; then the body region is picked among what is
   left and everything outside it is dropped as ``low_content``. It runs after the line
   rules so that removed widgets cannot split or pad the region.
4. Tail rules: the first marker (``Comments``, ``Related``, ...) that follows at least
   ``after_words`` words of kept body drops itself and everything after it.
5. Headline detection when no title was given (see ``_find_title``).

Reasons recorded in ``Stripped.removed`` (built-in rules; user rule files may add their own):

==============  ============================================================================
``title``       the headline (given, or detected)
``comments``    comment-section heading/prompt/moderation text and everything after it
``related``     "Related" / "More from" / "Recommended" blocks, "Read more" links
``breadcrumb``  ``Home › Section › …`` trails
``widget``      share bars, ``A+ A-`` font controls, print/email buttons
``navigation``  menu words, "Skip to content", "Advertisement", form labels
``tags``        ``Tags: a, b`` lines (parsed into ``Stripped.tags``) and bare "Tags" headings
``caption``     photo captions and photo credits (``(Photo: …)``, ``Getty Images``)
``credit``      ``Editing by`` / ``Translation by`` / ``Reporting by`` / "contributed to this report"
``byline``      ``By Name`` lines near the top
``timestamp``   bare date/time lines, "5 min read"
``newsletter``  newsletter / subscribe prompts
``cookies``     cookie and privacy notices
``login``       login / register / paywall prompts
``social``      "Follow us on …", "Download our app"
``footer``      copyright lines and footer link rows
``low_content`` outside the body region found by the content detector
==============  ============================================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ingest.content import paragraph_score, score_page, select_body, word_counts
from ingest.stopwords import ENGLISH
from ingest.rules import Rule, RuleSet

__all__ = ["Stripped", "strip_boilerplate"]

_TAG_SPLIT_RE = re.compile(r"\s*[,;|•·]\s*")
_TOKEN_RE = re.compile(r"[^\W_]+")
_SLUG_STOP = frozenset("www com html htm php aspx index amp story article news the a an of "
                       "to in and for on at is with by from".split())
_CRUMB_SPLIT_RE = re.compile(r"\s*[›»→]\s*|\s+>\s+")
_TITLE_END_BAD = ".,;:|"
_TITLE_START_OK = "\"'“‘«¿¡#$£€"
# Body starts at the first kept paragraph that is unmistakably prose.
_BODY_MIN_SCORE = 1.0
_DATELINE_REASONS = frozenset({"timestamp", "byline"})
# Lines that may stand between headline and body without ending the headline search
_TITLE_SKIP_OK = frozenset({None, "low_content", "title"})


@dataclass
class Stripped:
    """Result of ``strip_boilerplate``."""

    title: str | None
    paragraphs: list[str]
    removed: list[tuple[str, str]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)


def _norm(s: str) -> str:
    return " ".join(s.split()).casefold()


def _parse_tags(raw: str) -> list[str]:
    raw = raw.strip()
    parts = _TAG_SPLIT_RE.split(raw) if _TAG_SPLIT_RE.search(raw) else raw.split()
    seen: dict[str, None] = {}
    for t in parts:
        t = t.strip(" .#")
        if t:
            seen.setdefault(t, None)
    return list(seen)


def _slug_tokens(url: str | None) -> set[str]:
    if not url:
        return set()
    path = url.split("?", 1)[0].split("#", 1)[0]
    path = path.split("://", 1)[-1]
    path = path.split("/", 1)[1] if "/" in path else ""
    toks = {t for t in _TOKEN_RE.findall(path.casefold())
            if len(t) > 1 and not t.isdigit() and t not in _SLUG_STOP}
    return toks


def _title_shaped(p: str) -> bool:
    # The last-character test first: it rejects every body paragraph (they end with ".")
    # without counting the spaces of the whole paragraph.
    if not p or p[-1] in _TITLE_END_BAD:
        return False
    words = p.count(" ") + 1
    return (3 <= words <= 30 and not p.isdigit()
            and (p[0].isalnum() or p[0] in _TITLE_START_OK))


def _find_title(paras: list[str], reasons: list[str | None], body_start: int,
                url: str | None, lang: str | None) -> int | None:
    """Index of the headline, or None.

    With a URL, the paragraph above the body sharing most tokens with the URL slug wins (slugs
    are made from headlines). Otherwise the nearest title-shaped line above the body start;
    lines removed as dates, bylines, widgets, captions are skipped because they sit between
    headline and body on most pages. In a clean article that starts directly with the body
    the first line is the headline when it is title-shaped.
    """
    skip_ok = _TITLE_SKIP_OK
    slug = _slug_tokens(url)
    if slug and len(slug) >= 2:
        best, best_ov = None, 0.0
        for i in range(min(body_start + 1, len(paras))):
            if reasons[i] not in skip_ok or not _title_shaped(paras[i]):
                continue
            toks = set(_TOKEN_RE.findall(paras[i].casefold()))
            ov = len(toks & slug) / len(slug)
            if ov >= best_ov and ov >= 0.3:  # >= : the later (nearer the body) wins ties
                best, best_ov = i, ov
        if best is not None:
            return best
    for i in range(min(body_start, len(paras)) - 1, max(body_start - 8, -1), -1):
        if reasons[i] not in skip_ok:
            continue
        if i and reasons[i - 1] in _DATELINE_REASONS and paras[i].count(" ") < 4:
            continue  # a short line under the date is the source or author, not the headline
        if _title_shaped(paras[i]) and paragraph_score(paras[i], lang) < _BODY_MIN_SCORE:
            return i
        if reasons[i] is None:
            break  # a kept non-title paragraph (e.g. a standfirst) between: stop looking
    # clean short article with no clear prose paragraph: the first kept line is the headline
    first = reasons.index(None) if None in reasons else None
    if first is not None and first == body_start and first + 1 < len(paras) \
            and _title_shaped(paras[first]) and paragraph_score(paras[first], lang) < 0 \
            and any(r is None for r in reasons[first + 1:]):
        return first
    return None


def strip_boilerplate(paragraphs: list[str], rules: RuleSet, *, title: str | None = None,
                      url: str | None = None, detect_content: bool = True) -> Stripped:
    """Split ``paragraphs`` into headline, kept body paragraphs and removed ones with reasons.

    Every input paragraph ends up exactly once: in ``paragraphs`` or in ``removed`` (the
    headline is recorded there with reason ``title``).
    """
    n = len(paragraphs)
    reasons: list[str | None] = [None] * n
    tags: list[str] = []
    words = word_counts(paragraphs)

    if title:
        want = _norm(title)
        for i, p in enumerate(paragraphs):
            if len(p) >= len(want) - 2 and _norm(p) == want:
                reasons[i] = "title"

    cap = rules.line_words_cap
    for i in [i for i, w in enumerate(words) if w <= cap]:  # longer ones meet no rule
        if reasons[i] is not None:
            continue
        w = words[i]
        tag_b = rules.tags_rules_for(w)
        line_b = rules.line_rules_for(w)
        p = paragraphs[i]
        hit = tag_b.first_match_at(p, None, i, n) if tag_b.rules else None
        if hit is not None:
            reasons[i] = hit[0].reason
            tags.extend(t for t in _parse_tags(hit[1].group("tags")) if t not in tags)
            continue
        hit = line_b.first_match_at(p, None, i, n) if line_b.rules else None
        if hit is not None:
            reasons[i] = hit[0].reason

    scores: dict[int, float] = {}
    lang: str | None = ENGLISH
    # _body_start depends only on which paragraphs are kept: -1 when that changed since
    # it was last computed
    body_start = -1
    # both tail passes test the same paragraphs: the first pass's rule matches are kept
    tail_hits: dict[int, tuple[Rule, re.Match[str]] | None] = {}
    if detect_content:
        idx = [i for i in range(n) if reasons[i] is None]
        whole = len(idx) == n  # nothing removed yet: no copies of the lists
        kept_paras = paragraphs if whole else [paragraphs[i] for i in idx]
        raw, lang = score_page(kept_paras, words if whole else [words[i] for i in idx])
        scores = dict(zip(idx, raw))
        if rules.tail:
            # Tail markers first, counting only prose words: a comment section or a teaser
            # list that out-scores a short article must not be picked as its body.
            body_start = _body_start(paragraphs, reasons, scores, lang)
            _apply_tails(paragraphs, reasons, words, rules, body_start, lang, tail_hits, scores)
            if reasons.count(None) < len(idx):
                kept_idx = [j for j, i in enumerate(idx) if reasons[i] is None]
                idx = [idx[j] for j in kept_idx]
                raw = [raw[j] for j in kept_idx]
                kept_paras = [paragraphs[i] for i in idx]
                body_start = -1
        keep = select_body(kept_paras, scores=raw)
        if not all(keep):
            body_start = -1
            for i, k in zip(idx, keep):
                if not k:
                    reasons[i] = "low_content"

    if body_start < 0:
        body_start = _body_start(paragraphs, reasons, scores, lang)
    _apply_tails(paragraphs, reasons, words, rules, body_start, lang, tail_hits)

    found_title = title
    if title is None:
        t = _find_title(paragraphs, reasons, body_start, url, lang)
        if t is not None:
            reasons[t] = "title"
            found_title = paragraphs[t]
        elif n and reasons[0] == "breadcrumb":
            found_title = _crumb_title(paragraphs[0])

    if reasons.count(None) == n:  # nothing removed: most clean articles
        return Stripped(found_title, list(paragraphs), [], tags)
    kept = [p for p, r in zip(paragraphs, reasons) if r is None]
    removed = [(r, p) for p, r in zip(paragraphs, reasons) if r is not None]
    return Stripped(found_title, kept, removed, tags)


def _crumb_title(p: str) -> str | None:
    last = _CRUMB_SPLIT_RE.split(p)[-1].strip()
    return last if last and _title_shaped(last) else None


def _body_start(paras: list[str], reasons: list[str | None], scores: dict[int, float],
                lang: str | None) -> int:
    for i, p in enumerate(paras):
        if reasons[i] is None:
            sc = scores.get(i)
            if (paragraph_score(p, lang) if sc is None else sc) >= _BODY_MIN_SCORE:
                return i
    for i, r in enumerate(reasons):
        if r is None:
            return i
    return len(paras)


def _apply_tails(paras: list[str], reasons: list[str | None], words: list[int],
                 rules: RuleSet, body_start: int, lang: str | None,
                 hits: dict[int, tuple[Rule, re.Match[str]] | None],
                 prose_scores: dict[int, float] | None = None) -> None:
    """Drop from the first eligible tail marker to the end (in place).

    A rule with ``resume_words`` ends its block early at the first later paragraph of that
    many words that reads as prose: a "Most popular" box in the middle of a long feature
    must not take the rest of the article with it. Scanning then continues after the block.

    With ``prose_scores`` (the pass before content detection) only paragraphs scoring as
    prose count towards ``after_words``, and rules with ``resume_words`` are not applied:
    cutting out just the marker's block would close the junk gap between the body and the
    teasers after it, and the content detector would then join them.

    ``hits`` remembers each tested paragraph's first matching rule (or None) for the next pass:
    the result depends only on the paragraph and its place.
    """
    if not rules.tail:
        return
    cap = rules.tail_words_cap
    n = len(paras)
    # Only paragraphs short enough for some marker are tested (few in a clean article); the
    # words between them are summed when a marker is found.
    cands = [i for i in range(body_start, n) if words[i] <= cap]
    body_words = 0
    counted = 0  # body_words covers the paragraphs before this index
    for i in cands:
        if i < counted or (i == body_start and reasons[i] is None):
            continue  # inside a block already dropped, or the body's first paragraph
        if i in hits:
            hit = hits[i]
        else:
            bucket = rules.tail_rules_for(words[i])
            hit = hits[i] = bucket.first_match_at(paras[i], None, i, n) if bucket.rules else None
        if hit is None:
            continue
        rule = hit[0]
        body_words += _body_words(reasons, words, prose_scores, counted, i)
        counted = i
        if body_words < rule.after_words or (prose_scores is not None
                                             and rule.resume_words is not None):
            continue
        end = n
        if rule.resume_words is not None:
            end = next((j for j in range(i + 1, n) if words[j] >= rule.resume_words
                        and paragraph_score(paras[j], lang) >= _BODY_MIN_SCORE), n)
        for j in range(i, end):
            if reasons[j] is None or reasons[j] == "low_content" or j == i:
                reasons[j] = rule.reason
        if end == n:
            return
        counted = end


def _body_words(reasons: list[str | None], words: list[int],
                prose_scores: dict[int, float] | None, lo: int, hi: int) -> int:
    """Words of the kept paragraphs ``lo``..``hi``-1 (only prose-scoring ones with
    ``prose_scores``): what counts towards a tail rule's ``after_words``."""
    if prose_scores is None:
        return sum(w for w, r in zip(words[lo:hi], reasons[lo:hi]) if r is None)
    return sum(words[j] for j in range(lo, hi)
               if reasons[j] is None and prose_scores.get(j, 0.0) >= _BODY_MIN_SCORE)
