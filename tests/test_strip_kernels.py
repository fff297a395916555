"""The C word counter and paragraph scorer (ingest/_kernels.c) against content.py's Python
reference (``word_count``, ``_score`` and the pure-Python ``_scored``)."""

from __future__ import annotations

import random

import pytest

from ingest import content

pytestmark = pytest.mark.skipif(content._kernels is None, reason="THRESHER_NO_KERNELS is set")

_WORDS = ("the of and to in a is that for it as was with be by on not he this are or his "
          "storm river police court budget school market rain train fire vote team governor "
          "THE The OF STORM Tuesday http://x.com www.site.org https ttp ww. http www "
          "1. 12) 3 45 2024 - -- * + • · | || [image] [ ] ( ) \" ' ” ’ » ... . ! ? ?\" .) .] "
          "café naïve 東京 。 Ελλάδα _ __ 1.5 $4 ©").split()
_SPACES = [" ", " ", " ", " ", "  ", "\t", "\n", "\x1c", "\x1f", "\u00a0"]


def _paragraph(rng: random.Random) -> str:
    n = rng.choice([1, 1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 30, 89, 90, 91, 150])
    out = []
    for _ in range(n):
        out.append(rng.choice(_WORDS) + rng.choice(["", "", "", ",", ".", "'s", "|", ")", "]"]))
        out.append(rng.choice(_SPACES))
    text = "".join(out)
    return rng.choice([text, text.strip(), text.strip()]) or "x"


def _ascii_paragraph(rng: random.Random) -> str:
    p = _paragraph(rng).encode("ascii", "ignore").decode()
    return p or rng.choice(["x", ".", "1", "-", "*"])


def test_word_counts_equal_word_count() -> None:
    rng = random.Random(3)
    for _ in range(2000):
        page = [_paragraph(rng) for _ in range(rng.randint(0, 6))]
        page += ["a " * k for k in (239, 240, 241, 300)] + ["x" * 481, "é " * 300]
        assert content.word_counts(page) == [content.word_count(p) for p in page]


@pytest.mark.parametrize("make", [_paragraph, _ascii_paragraph])
def test_scores_equal_python_score(make) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(11)
    for _ in range(20000):
        p = make(rng)
        words = content.word_count(p)
        ntoks = rng.randint(1, 60)
        hits = rng.randint(0, ntoks)
        scale = rng.choice([1.0, content._SHARE_SCALE["ru"], content._SHARE_SCALE["de"]])
        want = content._score(p, ntoks, words, hits, scale)
        got = content._kernels.scores([p], [ntoks], [words], [hits], scale, content._score)
        assert got == [want], (p, ntoks, words, hits, scale)


def test_scores_edge_cases() -> None:
    cases = ["[photo]", "[x", "x]", "A|B|C|D|E|F", "HTTP", "ht tp", "awww.", "wwww", "1) a",
             "12. a", "123. a", "1.\ta", "1.\x1ca", "- a", "-a", "* a", "+", "...", "999",
             "ALL CAPS LINE", "A", "a.", "quote.\"", "quote.\"')]", "end. mid", "no end",
             "x" * 20 + "http", "x" * 18 + "www.", "x" * 15 + "http" + "y" * 20]
    for p in cases:
        for words, ntoks, hits in ((content.word_count(p), 5, 2), (15, 20, 5), (7, 7, 3),
                                   (3, 3, 1), (1, 1, 0), (100, 40, 20)):
            want = content._score(p, ntoks, words, hits)
            assert content._kernels.scores([p], [ntoks], [words], [hits], 1.0,
                                           content._score) == [want], p


def test_scored_equals_python_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(5)
    for _ in range(3000):
        page = [rng.choice([_paragraph, _ascii_paragraph])(rng) for _ in range(rng.randint(1, 8))]
        ntoks = [max(1, len(p.split())) for p in page]
        hits = [rng.randint(0, k) for k in ntoks]
        words = content.word_counts(page)
        for lang in ("en", "ru", None):
            h = hits if lang is not None else [-1] * len(page)
            fast = content._scored(page, ntoks, words, h, lang)
            with monkeypatch.context() as m:
                m.setattr(content, "_kernels", None)
                assert fast == content._scored(page, ntoks, words, h, lang), page


def test_fallback_errors_propagate() -> None:
    with pytest.raises(ZeroDivisionError):
        content._kernels.scores(["abc"], [0], [1], [0], 1.0, content._score)
    with pytest.raises(IndexError):
        content._kernels.scores([""], [1], [1], [0], 1.0, content._score)
