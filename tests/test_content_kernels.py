"""The C stopword counter (ingest/_kernels.c) against content.py's Python reference."""

from __future__ import annotations

import random

import pytest

from ingest import content

pytestmark = pytest.mark.skipif(content._kernels is None, reason="THRESHER_NO_KERNELS is set")

_WORDS = ("the of and to in a is that for it as was with be by on not he this are or his from at "
          "which but have an they you were her she there been one all we their has would when if "
          "storm river police court budget school market rain train fire vote team governor "
          "minister announced yesterday Tuesday THE The OF Of der die und het een el la los "
          "café naïve Zürich 東京 Ελλάδα").split()
_SPACES = [" ", " ", " ", " ", "  ", "\u00a0", "\u3000", "\t", "\x1f", "\u2028"]


def _paragraph(rng: random.Random) -> str:
    n = rng.choice([1, 2, 5, 14, 15, 16, 17, 40, 60, 90])
    out = []
    for _ in range(n):
        out.append(rng.choice(_WORDS) + rng.choice(["", "", "", ",", ".", "'s"]))
        out.append(rng.choice(_SPACES))
    return "".join(out).strip() or "x"


def _python_scores(paragraphs: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[list[float], str | None]:
    with monkeypatch.context() as m:
        m.setattr(content, "_kernels", None)
        return content.score_page(paragraphs)


def test_score_page_equals_python_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7)
    english = 0
    for _ in range(3000):
        page = [_paragraph(rng) for _ in range(rng.randint(1, 8))]
        fast = content.score_page(page)
        assert fast == _python_scores(page, monkeypatch), page
        english += fast[1] == content.ENGLISH
    assert english > 500  # the kernel's English fast path really ran


def test_samples_cut_at_prefix_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A word cut by the 96- or 320-character sample is dropped, a whole one is not."""
    for size in (content._PREFIX, content._LONG_PREFIX):
        for shift in range(-3, 4):
            head = "the " * ((size + shift) // 4)
            for tail in (" of the", "of the", "\u00a0of", "xyz the"):
                page = [head + tail, "the and of to in a is that for it as was with be by on " * 3]
                assert content.score_page(page) == _python_scores(page, monkeypatch), (size, shift, tail)


def test_word_table_refuses_what_it_cannot_hold() -> None:
    with pytest.raises(ValueError, match="ASCII"):
        content._kernels.word_table(["straße"])
    with pytest.raises(ValueError, match="31"):
        content._kernels.word_table(["x" * 32])
