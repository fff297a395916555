"""The C fast path of split_paragraphs (ingest/_kernels.c) against segment.py's Python code."""

from __future__ import annotations

import random

import pytest

from ingest import content, segment

pytestmark = pytest.mark.skipif(content._kernels is None, reason="THRESHER_NO_KERNELS is set")

_WORDS = "the storm river police court budget school market rain train fire vote minister said".split()
# every ASCII whitespace str.strip() knows, line breaks of all kinds, and runs of them
_GAPS = [" ", " ", " ", " ", "  ", "   ", "\t", " \t ", "\x0b", "\x0c", "\x1c", "\x1f"]
_BREAKS = ["\n", "\n", "\n\n", "\r\n", "\r", "\r\r\n", "\n \n", "\n\t\n", "  \n", "\n\x0c\n"]


def _text(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(0, 14)):
        words = rng.choice([0, 1, 3, 8, 20, 36, 45, 80])
        line = "".join(rng.choice(_WORDS) + rng.choice(_GAPS) for _ in range(words))
        parts.append(rng.choice(["", " ", "\t", "  "]) + line)
        parts.append(rng.choice(_BREAKS))
    return "".join(parts)


def test_fast_path_equals_python_reference() -> None:
    rng = random.Random(11)
    fast = 0
    for _ in range(20000):
        text = _text(rng)
        got = content._kernels.split_unwrapped(text)
        if got is not None:
            fast += 1
            assert got == segment.split_paragraphs_py(text), repr(text)
    assert fast > 5000  # the fast path really ran on many of them


def test_fast_path_declines_what_python_must_decide() -> None:
    wrapped = "\n".join(["the storm " * 7] * 12)  # 70-column lines: may be hard-wrapped
    assert content._kernels.split_unwrapped(wrapped) is None
    assert content._kernels.split_unwrapped("caf\u00e9 " * 80) is None  # not ASCII
    long_lines = "\n\n".join(["the storm river " * 20] * 4)
    assert content._kernels.split_unwrapped(long_lines) == ["the storm river " * 19 + "the storm river"] * 4


def test_a_double_space_anywhere_in_a_paragraph_is_normalised() -> None:
    """The fast path's double-space scan works 16 bytes at a time: a double space at any
    position of a paragraph (inside a block, across two, in the tail) must be found."""
    base = ("word " * 80).rstrip()  # 399 characters: longer than any wrap width
    for cut in (0, 1, 15, 16, 17, 100, 181, 182, 183, 190, 197, 198):
        line = base[: len(base) - cut]
        paragraphs = [line] + [line[:at] + "  " + line[at:] for at in range(1, len(line))]
        text = "\n\n".join(paragraphs)
        got = content._kernels.split_unwrapped(text)
        assert got is not None  # the fast path ran
        assert got == segment.split_paragraphs_py(text)
