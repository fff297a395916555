"""split_paragraphs on the three dump layouts (and whitespace normalisation)."""

from ingest.segment import detect_wrap_width, split_paragraphs

P1 = ("The harbour council on Tuesday approved a new winter timetable that adds two early "
      "ferries between Portville and the island villages, officials said on Wednesday.")
P2 = ("The vote passed with seven members in favour and two against after a debate that "
      "lasted most of the afternoon and much of the evening as well.")
P3 = "\u201cIt works,\u201d one resident said."


def _wrap(text: str, width: int) -> list[str]:
    lines, cur = [], ""
    for word in text.split():
        if cur and len(cur) + 1 + len(word) > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    lines.append(cur)
    return lines


def test_one_paragraph_per_line_is_not_merged():
    text = "\n".join(["Headline of the day", P1, P2, P3, P1])
    assert split_paragraphs(text) == ["Headline of the day", P1, P2, P3, P1]


def test_blank_line_separated():
    text = "\n\n".join(["Headline of the day", P1, P2, P3]) + "\n\n\n"
    assert split_paragraphs(text) == ["Headline of the day", P1, P2, P3]


def test_hard_wrapped_at_80_rejoined():
    blocks = [["Headline of the day"], _wrap(P1, 80), _wrap(P2, 80), [P3], _wrap(P1 + " " + P2, 80)]
    text = "\n\n".join("\n".join(b) for b in blocks)
    assert max(len(ln) for ln in text.split("\n")) <= 80
    assert split_paragraphs(text) == ["Headline of the day", P1, P2, P3, P1 + " " + P2]


def test_hard_wrapped_without_blank_lines_uses_full_line_test():
    # a short last line ends the paragraph even with no blank line after it
    lines = _wrap(P1, 72) + _wrap(P2, 72) + _wrap(P1, 72)
    assert detect_wrap_width(lines) is not None
    assert split_paragraphs("\n".join(lines)) == [P1, P2, P1]


def test_wrapped_list_items_stay_separate():
    lines = _wrap(P1, 60) + ["• first item", "• second item"] + _wrap(P2, 60) + _wrap(P1, 60)
    assert split_paragraphs("\n".join(lines)) == [P1, "• first item", "• second item", P2, P1]


def test_crlf_nbsp_zero_width_and_indent():
    text = "  Title\u00a0here \r\n\r\n\tBody\u200b text\u2009with  odd   spaces. \r\n"
    assert split_paragraphs(text) == ["Title here", "Body text with odd spaces."]


def test_empty_input():
    assert split_paragraphs("") == []
    assert split_paragraphs(" \n\n \r\n") == []
