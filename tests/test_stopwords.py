"""Page-language detection and language-aware paragraph scores."""

import pytest

from ingest.content import paragraph_score, score_page, select_body, word_count
from ingest.rules import load_rules
from ingest.stopwords import LANGUAGES, STOPWORDS, TYPICAL_SHARE, detect_language
from ingest.strip import strip_boilerplate

RULES = load_rules()

PROSE = {
    "en": "The council said on Friday that the new ferry timetable would start in "
          "November, and that it had listened to the residents who wrote to it.",
    "de": "Der Rat hat am Freitag gesagt, dass der neue Fahrplan im November beginnt und "
          "dass er die Bürger gehört hat, die ihm geschrieben haben.",
    "fr": "Le conseil a dit vendredi que le nouvel horaire du ferry commencera en novembre "
          "et qu'il a écouté les habitants qui lui ont écrit.",
    "es": "El consejo dijo el viernes que el nuevo horario del ferry empezará en noviembre "
          "y que ha escuchado a los vecinos que le escribieron.",
    "it": "Il consiglio ha detto venerdì che il nuovo orario del traghetto partirà a "
          "novembre e che ha ascoltato i cittadini che gli hanno scritto.",
    "pt": "O conselho disse na sexta-feira que o novo horário da balsa começa em novembro "
          "e que ouviu os moradores que lhe escreveram.",
    "nl": "De raad heeft vrijdag gezegd dat de nieuwe dienstregeling van de veerboot in "
          "november begint en dat hij naar de bewoners heeft geluisterd.",
    "ru": "Совет заявил в пятницу, что новое расписание парома начнет действовать в "
          "ноябре и что он выслушал жителей, которые ему писали.",
    "pl": "Rada powiedziała w piątek, że nowy rozkład promu zacznie obowiązywać w "
          "listopadzie i że wysłuchała mieszkańców, którzy do niej pisali.",
}


def test_lists_are_compact_and_calibrated():
    assert set(TYPICAL_SHARE) == set(LANGUAGES)
    assert all(20 <= len(STOPWORDS[lang]) <= 200 for lang in LANGUAGES)


@pytest.mark.parametrize("lang", sorted(PROSE))
def test_detect_language_and_score_prose(lang):
    paras = [PROSE[lang]] * 3
    assert detect_language([p.split() for p in paras]) == lang
    scores, got = score_page(paras)
    assert got == lang
    assert all(s >= 1.0 for s in scores)
    assert paragraph_score(PROSE[lang], lang) == pytest.approx(scores[0])


def test_no_list_for_japanese_falls_back_to_length_and_punctuation():
    body = ("Kindle書籍を読む場合は、一般的にスマホやタブレットなどのモバイル端末で読むことが"
            "多いと思いますが、パソコンでそのまま読みたい場合もあります。")
    scores, lang = score_page(["ホーム", "ブログ", body, body, "お問い合わせ"])
    assert lang is None
    assert scores[2] >= 1.0 and scores[0] < 0 and scores[4] < 0


def test_non_english_page_body_is_found():
    nav = ["• Startseite", "• Politik", "• Sport", "Impressum | Datenschutz"]
    body = [PROSE["de"] + " " + PROSE["de"]] * 3
    assert select_body(nav + body) == [False] * 4 + [True] * 3
    res = strip_boilerplate(nav + body, RULES)
    assert res.paragraphs == body


def test_word_count_exact_for_short_close_for_long():
    assert word_count("one two three") == 3
    long = " ".join(["word"] * 300)
    assert abs(word_count(long) - 300) <= 10


def test_body_list_between_prose_blocks_is_kept():
    prose = PROSE["en"] + " " + PROSE["en"]
    nav = ["• Home", "• News", "• Sport"]
    items = ["• fresh fish of any kind", "• poultry including game", "• eggs in any form",
             "• all kinds of green vegetables"]
    paras = nav + [prose, prose, "You can eat:"] + items + [prose, prose]
    keep = select_body(paras)
    assert keep == [False] * 3 + [True] * (len(paras) - 3)


def test_comment_section_heading_cuts_before_content_detection():
    short_body = [PROSE["en"], PROSE["en"].replace("council", "board")]
    comments = ["34 responses to “New ferry timetable”"] + [
        "I think the council got this completely wrong and the people who live on the north "
        "side of the harbour will be the ones who pay for it in the end, as usual." ] * 4
    res = strip_boilerplate(["• Home", "• News"] + short_body + comments, RULES)
    assert res.paragraphs == short_body
    assert [r for r, _ in res.removed].count("comments") == 5


def test_multilingual_related_heading_is_a_tail_marker():
    body = [PROSE["pt"] + " " + PROSE["pt"]] * 2
    teasers = ["Você pode gostar...", PROSE["pt"], PROSE["pt"]]
    res = strip_boilerplate(body + teasers, RULES)
    assert res.paragraphs == body
