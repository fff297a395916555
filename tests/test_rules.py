"""Rule loading: built-ins, user files, validation errors, and one test per rule kind."""

from pathlib import Path

import pytest

from ingest.rules import load_rules, parse_rules
from ingest.strip import strip_boilerplate

BODY = [
    "The council approved the plan on Tuesday after a long debate about costs and the "
    "effect on the harbour, officials said.",
    "Work on the new pier will start in the spring and should be finished by the end of "
    "next year, according to the transport office.",
    "Residents who live near the harbour will be invited to a public meeting in March to "
    "discuss the noise from the building work.",
]


def test_builtin_rules_load_and_are_cached():
    rules = load_rules()
    assert len(rules) > 20
    assert rules.line and rules.tail and rules.tags
    assert load_rules().line is rules.line


def test_user_rule_file_is_appended(tmp_path: Path):
    f = tmp_path / "mine.toml"
    f.write_text('[[rule]]\nname = "promo"\npattern = \'\'\'Buy the print edition.*\'\'\'\n'
                 'reason = "promo"\n', encoding="utf-8")
    rules = load_rules([f])
    assert len(rules) == len(load_rules()) + 1
    res = strip_boilerplate(BODY[:1] + ["Buy the print edition today"] + BODY[1:], rules,
                            detect_content=False)
    assert res.paragraphs == BODY
    assert res.removed == [("promo", "Buy the print edition today")]


@pytest.mark.parametrize("body, message", [
    ('[[rule]]\npattern = "(unclosed"\nreason = "x"\n', "rule #1: bad regex '(unclosed'"),
    ('[[rule]]\npattern = "x"\n', "rule #1: 'reason' must be a snake_case word, got None"),
    ('[[rule]]\npattern = "x"\nreason = "x"\nkind = "middle"\n',
     "rule #1: 'kind' must be one of line, tail, tags, got 'middle'"),
    ('[[rule]]\npattern = "x"\nreason = "x"\nzone = "top"\n',
     "rule #1: 'zone' must be one of any, head, foot, got 'top'"),
    ('[[rule]]\npattern = "x"\nreason = "x"\ncolour = "red"\n', "rule #1: unknown key(s) colour"),
    ('[[rule]]\nkind = "tags"\npattern = "Tags: .*"\n',
     "rule #1: a 'tags' rule needs a named group (?P<tags>...)"),
    ('[[rule]\npattern = "x"\n', "not valid TOML"),
    ('[rules]\npattern = "x"\n', "unknown top-level key(s) rules"),
])
def test_bad_user_file_names_file_and_problem(tmp_path: Path, body: str, message: str):
    f = tmp_path / "bad.toml"
    f.write_text(body, encoding="utf-8")
    with pytest.raises(ValueError) as exc:
        load_rules([f])
    assert str(exc.value).startswith(f"{f}: ")
    assert message in str(exc.value)


def test_missing_user_file(tmp_path: Path):
    with pytest.raises(ValueError, match=r"nope\.toml: cannot read rule file"):
        load_rules([tmp_path / "nope.toml"])


def test_line_rule_kind():
    rules = parse_rules('[[rule]]\npattern = "advert.*"\nreason = "ad"\n')
    res = strip_boilerplate(["Advert: cheap boats"] + BODY, rules, detect_content=False)
    assert res.paragraphs == BODY
    assert res.removed == [("ad", "Advert: cheap boats")]


def test_tail_rule_kind_drops_to_end_but_not_before_body():
    rules = parse_rules('[[rule]]\nkind = "tail"\npattern = "readers write"\n'
                        'reason = "comments"\nafter_words = 10\n')
    paras = ["Readers write"] + BODY + ["Readers write", "I agree with this.", "Me too."]
    res = strip_boilerplate(paras, rules, detect_content=False)
    assert res.paragraphs == ["Readers write"] + BODY
    assert res.removed == [("comments", "Readers write"), ("comments", "I agree with this."),
                           ("comments", "Me too.")]


def test_head_zone_rule_kind():
    rules = parse_rules('[[rule]]\npattern = "Bay Courier"\nreason = "source"\n'
                        'zone = "head"\nsize = 2\n')
    paras = ["Bay Courier"] + BODY + ["Bay Courier"]
    res = strip_boilerplate(paras, rules, detect_content=False)
    assert res.paragraphs == BODY + ["Bay Courier"]
    assert res.removed == [("source", "Bay Courier")]


def test_foot_zone_rule_kind():
    rules = parse_rules('[[rule]]\npattern = "Bay Courier"\nreason = "footer"\n'
                        'zone = "foot"\nsize = 1\n')
    paras = ["Bay Courier"] + BODY + ["Bay Courier"]
    res = strip_boilerplate(paras, rules, detect_content=False)
    assert res.paragraphs == ["Bay Courier"] + BODY
    assert res.removed == [("footer", "Bay Courier")]


def test_tags_rule_kind_parses_tags():
    rules = parse_rules('[[rule]]\nkind = "tags"\npattern = "Labels: (?P<tags>.+)"\n')
    res = strip_boilerplate(BODY + ["Labels: boats; harbour | council"], rules,
                            detect_content=False)
    assert res.tags == ["boats", "harbour", "council"]
    assert res.removed == [("tags", "Labels: boats; harbour | council")]


def test_max_words_guards_long_paragraphs():
    rules = parse_rules('[[rule]]\nmatch = "search"\npattern = "pier"\nreason = "x"\n'
                        'max_words = 5\n')
    res = strip_boilerplate(BODY + ["See the pier"], rules, detect_content=False)
    assert res.paragraphs == BODY
    assert res.removed == [("x", "See the pier")]


@pytest.mark.parametrize("line, reason", [
    ("Home › News › Local", "breadcrumb"),
    ("Home > Sport > Football", "breadcrumb"),
    ("A+ A-", "widget"),
    ("Share", "widget"),
    ("Tweet", "widget"),
    ("Print", "widget"),
    ("Email", "widget"),
    ("Share on Facebook", "widget"),
    ("Harbour workers at dawn. (Photo: Bay Courier)", "caption"),
    ("Photo: Bay Courier", "caption"),
    ("Image: Jonas Berg", "caption"),
    ("The pier at night. Getty Images", "caption"),
    ("Editing by Mara Lindqvist", "credit"),
    ("Translation by Ola Nordmann", "credit"),
    ("Video editing by Kari Holm", "credit"),
    ("Reporting by Jonas Berg; Editing by Mara Lindqvist", "credit"),
    ("2021/04/02 | 08:15", "timestamp"),
    ("12-03-2021", "timestamp"),
    ("Updated: Friday, April 2, 2021 8:15 a.m.", "timestamp"),
    ("Sign up for our daily newsletter", "newsletter"),
    ("We use cookies to improve your experience.", "cookies"),
    ("© 2021 Bay Courier. All rights reserved.", "footer"),
])
def test_builtin_line_rules(line: str, reason: str):
    res = strip_boilerplate(BODY + [line], load_rules(), detect_content=False)
    assert res.removed == [(reason, line)]
    assert res.paragraphs == BODY


@pytest.mark.parametrize("marker, reason", [
    ("Comments", "comments"), ("3 Comments", "comments"), ("Post a comment", "comments"),
    ("Leave a Reply", "comments"), ("Related", "related"), ("Related Stories", "related"),
    ("More from Bay Courier", "related"), ("Recommended", "related"),
    ("You may also like", "related"),
])
def test_builtin_tail_markers(marker: str, reason: str):
    after = ["Some teaser headline here", "Required"]
    res = strip_boilerplate(BODY + [marker] + after, load_rules(), detect_content=False)
    assert res.paragraphs == BODY
    assert res.removed[0] == (reason, marker)
    assert [p for _, p in res.removed] == [marker] + after


def test_body_sentences_starting_like_rules_are_kept():
    body = BODY + ["Share prices rose by four percent after the council announced the plan "
                   "for the harbour on Tuesday.",
                   "Home owners near the pier say the noise will be a problem."]
    res = strip_boilerplate(body, load_rules(), detect_content=False)
    assert res.paragraphs == body


def test_word_caps_skip_only_paragraphs_no_rule_can_match():
    from ingest.rules import load_rules as _load

    rules = _load()
    longest = max(r.max_words for r in rules.line + rules.tags if r.max_words is not None)
    assert rules.line_words_cap == longest
    assert not rules.line_rules_for(rules.line_words_cap + 1).rules
    assert not rules.tags_rules_for(rules.line_words_cap + 1).rules
    assert not rules.tail_rules_for(rules.tail_words_cap + 1).rules
    unbounded = parse_rules('[[rule]]\npattern = "x"\nreason = "widget"\n')
    assert unbounded.line_words_cap > 10**6


def test_a_rewritten_rule_file_is_read_again(tmp_path: Path):
    """Rule sets are cached per process by the files' contents, not their names."""
    f = tmp_path / "mine.toml"
    f.write_text('[[rule]]\npattern = \'\'\'Buy the print edition.*\'\'\'\nreason = "promo"\n', encoding="utf-8")
    first = load_rules([f])
    assert load_rules([f]) is first
    f.write_text('[[rule]]\npattern = \'\'\'Buy the print edition.*\'\'\'\nreason = "advert"\n', encoding="utf-8")
    assert load_rules([f]).line[-1].reason == "advert"


def test_a_forked_worker_builds_the_rule_recipe_once(tmp_path: Path):
    """A worker forked from the parent inherits the rules as a recipe (`LazyRules`); the
    worker context's settings hold the built rule set from its first chunk on, not a proxy
    that every rule lookup would go through."""
    import pickle

    from ingest.clean import CleanSettings, context_settings
    from ingest.rules import LazyRules, RuleSet

    f = tmp_path / "mine.toml"
    f.write_text('[[rule]]\npattern = \'\'\'Buy the print edition.*\'\'\'\nreason = "promo"\n', encoding="utf-8")
    ctx = {"clean": CleanSettings(rules=LazyRules([f]))}
    settings = context_settings(ctx)
    assert type(settings.rules) is RuleSet and settings.rules is load_rules([f])
    assert settings.rules.line[-1].reason == "promo"
    assert context_settings(ctx) is settings  # built once a process
    assert type(pickle.loads(pickle.dumps(LazyRules([f])))) is RuleSet  # spawned workers: built on arrival
