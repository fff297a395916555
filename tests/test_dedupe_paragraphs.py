"""collapse_repeated_paragraphs and RecurringParagraphs."""

from __future__ import annotations

import random

from dedupe.paragraphs import collapse_repeated_paragraphs
from dedupe.recurring import RecurringParagraphs

P1 = "The council approved the new harbour bridge budget after a long debate on Tuesday night."
P2 = "Residents said the ferry service had been unreliable for most of the winter season."
P3 = "The mayor promised that construction would begin before the end of next year."


def test_collapse_exact_and_near_repeats_keep_first():
    near = P2.replace("unreliable", "unreliabel").replace("winter", "Winter") + " "
    paras = [P1, P2, "Photo: AAP", P1, P3, near, "photo:  aap"]
    kept, dropped = collapse_repeated_paragraphs(paras)
    assert kept == [P1, P2, "Photo: AAP", P3]
    assert dropped == [3, 5, 6]


def test_collapse_nothing_to_do():
    kept, dropped = collapse_repeated_paragraphs([P1, P2, P3, "", "Short."])
    assert kept == [P1, P2, P3, "", "Short."] and dropped == []


def test_collapse_short_paragraphs_compare_exactly():
    kept, dropped = collapse_repeated_paragraphs(["Read more", "Read less", "Read more."])
    assert kept == ["Read more", "Read less"] and dropped == [2]


def _article(rng: random.Random, k: int) -> list[str]:
    words = "storm river police court budget school market rain train fire vote team".split()
    return [" ".join(rng.choice(words) for _ in range(20)) + f" {k}." for _ in range(4)]


def test_recurring_footer_with_changing_date():
    rng = random.Random(3)
    quote = '"We will rebuild the bridge, whatever it takes," the mayor told reporters on Monday.'
    months = ["January", "February", "March", "April", "May"]
    rec = RecurringParagraphs(min_articles=3)
    for k in range(8):
        paras = _article(rng, k)
        if k < 5:
            paras.append(f"Copyright The Riverton Courier, all rights reserved. Updated {k + 3} "
                         f"{months[k]} 2019 at 10:{k}5 am. Subscribe to our newsletter.")
        if k < 2:
            paras.insert(1, quote)
        rec.observe(paras)
    rec.freeze()
    assert rec.is_recurring("Copyright The Riverton Courier, all rights reserved. Updated 9 "
                            "June 2020 at 11:45 pm. Subscribe to our newsletter.")
    assert not rec.is_recurring(quote)  # in 2 articles only
    assert not rec.is_recurring(P1)
    assert rec.recurring_mask([P1, "Copyright The Riverton Courier, all rights reserved. "
                               "Updated 3 January 2019 at 10:05 am. Subscribe to our "
                               "newsletter."]) == [False, True]


def test_recurring_exact_short_lines_and_distinct_articles():
    rec = RecurringParagraphs(min_articles=3)
    rec.observe(["Skip to main content", "Skip to main content", P1])  # one article, twice
    rec.observe(["Skip to main content", P2])
    rec.freeze()
    assert not rec.is_recurring("Skip to main content")  # 2 distinct articles < 3
    rec = RecurringParagraphs(min_articles=3)
    for p in (P1, P2, P3):
        rec.observe(["Skip to main content", p])
    rec.freeze()
    assert rec.is_recurring("SKIP to main content!")
    assert not rec.is_recurring(P1)
