"""Boilerplate rules: load, validate and compile them.

Rules are data (``ingest/rules.toml`` plus user files passed with ``--rules``) so that new site
quirks are fixed without code changes. The TOML format is documented at the top of rules.toml.
This module only turns the TOML into compiled, immutable objects; applying them is strip.py's job.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

__all__ = ["Rule", "RuleSet", "load_rules", "parse_rules", "KINDS", "ZONES"]

KINDS = ("line", "tail", "tags")
ZONES = ("any", "head", "foot")
MATCHES = ("full", "start", "search")
_REASON_RE = re.compile(r"[a-z][a-z0-9_]*\Z")
_KEYS = {"kind", "pattern", "reason", "zone", "size", "match", "max_words", "min_words",
         "case", "name", "after_words", "contains", "resume_words"}
_DEFAULT_ZONE_SIZE = 12
_DEFAULT_AFTER_WORDS = 30


@dataclass(frozen=True)
class Rule:
    """One compiled rule. ``test`` is the bound regex method chosen by ``match``."""

    kind: str
    reason: str
    regex: re.Pattern[str]
    match: str = "full"
    zone: str = "any"
    size: int = _DEFAULT_ZONE_SIZE
    max_words: int | None = None
    min_words: int = 0
    after_words: int = _DEFAULT_AFTER_WORDS
    name: str = ""
    source: str = ""
    contains: tuple[str, ...] = ()
    resume_words: int | None = None

    def matches(self, para: str, lower: str | None = None) -> re.Match[str] | None:
        """Match the paragraph against the pattern using the rule's match mode.

        ``lower`` is the lower-cased paragraph, passed by callers that test many rules, so the
        ``contains`` pre-check (plain substring tests, far cheaper than a regex search over
        the paragraph) does not lower-case it again.
        """
        if self.contains:
            low = para.lower() if lower is None else lower
            if not any(map(low.__contains__, self.contains)):
                return None
        return self.pattern_match(para)

    def pattern_match(self, para: str) -> re.Match[str] | None:
        """``matches`` without the ``contains`` pre-check (for callers that made it)."""
        if self.match == "full":
            return self.regex.fullmatch(para)
        if self.match == "start":
            return self.regex.match(para)
        return self.regex.search(para)


@dataclass(frozen=True)
class RuleSet:
    """All rules, grouped by kind so the stripper can run each pass with one loop."""

    line: tuple[Rule, ...] = ()
    tail: tuple[Rule, ...] = ()
    tags: tuple[Rule, ...] = ()
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Per word count, the rules that may apply (max_words/min_words already checked),
        # with the anchored ones folded into one prefilter regex: body paragraphs are long and
        # match nothing, and rejecting them with one C call instead of a Python-level test per
        # rule is most of the stripper's speed.
        object.__setattr__(self, "_line_by_words", _by_words(self.line))
        object.__setattr__(self, "_tail_by_words", _by_words(self.tail))
        object.__setattr__(self, "_tags_by_words", _by_words(self.tags))
        object.__setattr__(self, "hinted", tuple(r for r in self.line + self.tags if r.contains))
        # Paragraphs longer than this many words meet no line/tags (resp. tail) rule: the
        # stripper skips them without a lookup (most paragraphs of a clean article).
        object.__setattr__(self, "line_words_cap", _cap(self._line_by_words, self._tags_by_words))
        object.__setattr__(self, "tail_words_cap", _cap(self._tail_by_words))

    def line_rules_for(self, words: int) -> "Bucket":
        """Line rules whose word-count limits admit a paragraph of ``words`` words."""
        table = self._line_by_words  # type: ignore[attr-defined]
        return table[words] if words < len(table) else table[-1]

    def tail_rules_for(self, words: int) -> "Bucket":
        """Tail rules whose word-count limits admit a paragraph of ``words`` words."""
        table = self._tail_by_words  # type: ignore[attr-defined]
        return table[words] if words < len(table) else table[-1]

    def tags_rules_for(self, words: int) -> "Bucket":
        """Tags rules whose word-count limits admit a paragraph of ``words`` words."""
        table = self._tags_by_words  # type: ignore[attr-defined]
        return table[words] if words < len(table) else table[-1]

    def __len__(self) -> int:
        return len(self.line) + len(self.tail) + len(self.tags)

    def merged(self, other: "RuleSet") -> "RuleSet":
        """Return a RuleSet with ``other``'s rules appended (user rules after built-ins)."""
        return RuleSet(self.line + other.line, self.tail + other.tail,
                       self.tags + other.tags, self.sources + other.sources)


@dataclass(frozen=True)
class Bucket:
    """Rules admitted for one word count.

    ``prefilter`` is the union of the anchored (full/start) rules: when it does not match,
    none of them can, and only the ``loose`` (search) rules need testing. When the union
    cannot be compiled (e.g. backreferences in a user pattern) it is None and every rule is
    loose.
    """

    rules: tuple[Rule, ...]
    prefilter: re.Pattern[str] | None
    loose: tuple[Rule, ...]

    def __post_init__(self) -> None:
        # The loose rules' ``contains`` strings, each once: several rules share some
        # ("photo", "image"), and a paragraph usually holds none, so testing them all at once
        # settles every hinted loose rule with one pass of substring tests.
        needles = dict.fromkeys(c for r in self.loose for c in r.contains)
        object.__setattr__(self, "needles", tuple(needles))
        # What is left to test when the paragraph holds none of them.
        object.__setattr__(self, "unhinted", tuple(r for r in self.loose if not r.contains))

    def first_match_at(self, para: str, lower: str | None, i: int,
                       n: int) -> tuple[Rule, re.Match[str]] | None:
        """First rule (in file order) admitted for paragraph ``i`` of ``n`` by its zone that
        matches ``para``. The zone test is inline: the stripper calls this per short paragraph,
        and a closure per call was a visible cost.
        ``lower`` (the lower-cased paragraph) may be None: it is then made when needed."""
        if self.prefilter is not None and self.prefilter.match(para):
            for r in self.rules:
                if _zone_ok(r, i, n):
                    if r.contains and lower is None:
                        lower = para.lower()
                    m = r.matches(para, lower)
                    if m:
                        return r, m
            return None
        if self.needles:  # type: ignore[attr-defined]
            low = para.lower() if lower is None else lower
            present = {c for c in self.needles if c in low}  # type: ignore[attr-defined]
        else:
            present = set()
        for r in self.loose if present else self.unhinted:  # type: ignore[attr-defined]
            if (r.zone == "any" or _zone_ok(r, i, n)) \
                    and (not r.contains or not present.isdisjoint(r.contains)):
                m = r.pattern_match(para)
                if m:
                    return r, m
        return None


def _zone_ok(r: Rule, i: int, n: int) -> bool:
    """Rule ``r`` may apply to paragraph ``i`` of ``n``."""
    z = r.zone
    return z == "any" or (i < r.size if z == "head" else z != "foot" or i >= n - r.size)


_NAMED_GROUP_RE = re.compile(r"\(\?P<\w+>")


def _make_bucket(rules: tuple[Rule, ...]) -> Bucket:
    anchored = [r for r in rules if r.match != "search"]
    if not anchored:
        return Bucket(rules, None, rules)
    parts = []
    for r in anchored:
        pat = _NAMED_GROUP_RE.sub("(?:", r.regex.pattern)
        flag = "i" if r.regex.flags & re.IGNORECASE else "-i"
        parts.append(f"(?{flag}:{pat}){chr(92) + 'Z' if r.match == 'full' else ''}")
    try:
        pre = re.compile("|".join(parts))
    except re.error:
        return Bucket(rules, None, rules)
    return Bucket(rules, pre, tuple(r for r in rules if r.match == "search"))


def _cap(*tables: tuple["Bucket", ...]) -> int:
    """Largest word count any bucket of ``tables`` has rules for (a huge number when the
    last bucket, which serves all longer paragraphs, has rules)."""
    cap = -1
    for table in tables:
        if table[-1].rules:
            return 1 << 30
        for w, b in enumerate(table):
            if b.rules:
                cap = max(cap, w)
    return cap


def _by_words(rules: tuple[Rule, ...]) -> tuple[Bucket, ...]:
    """Buckets indexed by word count; the last entry serves every longer paragraph."""
    cap = max([r.max_words or 0 for r in rules] + [r.min_words for r in rules] + [0]) + 1
    cache: dict[tuple[int, ...], Bucket] = {}
    out = []
    for w in range(cap + 1):
        sel = tuple(r for r in rules
                    if r.min_words <= w and (r.max_words is None or w <= r.max_words))
        key = tuple(id(r) for r in sel)
        if key not in cache:
            cache[key] = _make_bucket(sel)
        out.append(cache[key])
    return tuple(out)


def _fail(source: str, where: str, what: str) -> ValueError:
    return ValueError(f"{source}: {where}{what}")


def _int_field(raw: dict[str, Any], key: str, default: int | None, source: str,
               where: str) -> int | None:
    val = raw.get(key, default)
    if val is None:
        return None
    if isinstance(val, bool) or not isinstance(val, int) or val < 0:
        raise _fail(source, where, f"'{key}' must be a non-negative integer, got {val!r}")
    return val


def _compile_rule(raw: Any, source: str, index: int) -> Rule:
    if not isinstance(raw, dict):
        raise _fail(source, f"rule #{index}: ", "must be a table ([[rule]])")
    name = str(raw.get("name", ""))
    where = f"rule #{index}{' (' + name + ')' if name else ''}: "
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise _fail(source, where, f"unknown key(s) {', '.join(unknown)}; "
                                   f"allowed: {', '.join(sorted(_KEYS))}")
    kind = raw.get("kind", "line")
    if kind not in KINDS:
        raise _fail(source, where, f"'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    pattern = raw.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise _fail(source, where, "missing 'pattern' (a non-empty regex string)")
    reason = raw.get("reason", "tags" if kind == "tags" else None)
    if not isinstance(reason, str) or not _REASON_RE.match(reason):
        raise _fail(source, where, f"'reason' must be a snake_case word, got {reason!r}")
    zone = raw.get("zone", "any")
    if zone not in ZONES:
        raise _fail(source, where, f"'zone' must be one of {', '.join(ZONES)}, got {zone!r}")
    match = raw.get("match", "full")
    if match not in MATCHES:
        raise _fail(source, where, f"'match' must be one of {', '.join(MATCHES)}, got {match!r}")
    case = raw.get("case", False)
    if not isinstance(case, bool):
        raise _fail(source, where, f"'case' must be true or false, got {case!r}")
    flags = 0 if case else re.IGNORECASE
    try:
        regex = re.compile(pattern, flags)
    except re.error as e:
        raise _fail(source, where, f"bad regex {pattern!r}: {e}") from None
    if kind == "tags" and "tags" not in regex.groupindex:
        raise _fail(source, where, "a 'tags' rule needs a named group (?P<tags>...)")
    contains = raw.get("contains", [])
    if not isinstance(contains, list) or not all(isinstance(c, str) and c for c in contains):
        raise _fail(source, where, "'contains' must be a list of non-empty strings")
    size = _int_field(raw, "size", _DEFAULT_ZONE_SIZE, source, where)
    if zone != "any" and not size:
        raise _fail(source, where, "'size' must be at least 1 for a head/foot zone")
    return Rule(
        kind=kind, reason=reason, regex=regex, match=match, zone=zone,
        size=size or _DEFAULT_ZONE_SIZE,
        max_words=_int_field(raw, "max_words", None, source, where),
        min_words=_int_field(raw, "min_words", 0, source, where) or 0,
        after_words=_int_field(raw, "after_words", _DEFAULT_AFTER_WORDS, source, where) or 0,
        name=name, source=source, contains=tuple(c.lower() for c in contains),
        resume_words=_int_field(raw, "resume_words", None, source, where),
    )


def parse_rules(text: str, source: str = "<string>") -> RuleSet:
    """Compile rules from TOML text; errors name ``source`` and the offending rule."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{source}: not valid TOML: {e}") from None
    extra = sorted(set(doc) - {"rule"})
    if extra:
        raise ValueError(f"{source}: unknown top-level key(s) {', '.join(extra)}; "
                         "rules go in [[rule]] tables")
    raws = doc.get("rule", [])
    if not isinstance(raws, list):
        raise ValueError(f"{source}: 'rule' must be an array of tables ([[rule]])")
    groups: dict[str, list[Rule]] = {k: [] for k in KINDS}
    for i, raw in enumerate(raws, 1):
        rule = _compile_rule(raw, source, i)
        groups[rule.kind].append(rule)
    return RuleSet(tuple(groups["line"]), tuple(groups["tail"]), tuple(groups["tags"]),
                   (source,))


_BUILTIN_CACHE: RuleSet | None = None


def _builtin() -> RuleSet:
    # Cached: every article uses the same built-ins and compiling ~100 regexes is not free.
    global _BUILTIN_CACHE
    if _BUILTIN_CACHE is None:
        text = resources.files("ingest").joinpath("rules.toml").read_text(encoding="utf-8")
        _BUILTIN_CACHE = parse_rules(text, "ingest/rules.toml")
    return _BUILTIN_CACHE


_LOADED: dict[tuple[tuple[str, str], ...], RuleSet] = {}


def _read_rule_files(extra_files: Sequence[str | Path]) -> list[tuple[str, str]]:
    out = []
    for f in extra_files:
        path = Path(f)
        try:
            out.append((str(path), path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: cannot read rule file: {e}") from None
    return out


def load_rules(extra_files: Sequence[str | Path] = ()) -> RuleSet:
    """Built-in rules plus user rule files (same TOML format), in that order.

    Raises ValueError('FILE: what is wrong') for an unreadable or invalid user file. Cached per
    process by the files' contents: building a rule set compiles ~130 regexes (~0.3 s).
    """
    texts = tuple(_read_rule_files(extra_files))
    rules = _LOADED.get(texts)
    if rules is None:
        rules = _builtin()
        for path, text in texts:
            rules = rules.merged(parse_rules(text, path))
        if len(_LOADED) >= 8:
            _LOADED.clear()
        _LOADED[texts] = rules
    return rules


def check_rule_files(extra_files: Sequence[str | Path]) -> None:
    """Raise what `load_rules` would raise for the user's files, without building the rule set."""
    for path, text in _read_rule_files(extra_files):
        parse_rules(text, path)


class LazyRules:
    """`load_rules(files)` as a recipe: what a run's parent hands its worker processes. It
    travels as the recipe, not as ~130 compiled regexes that every worker would compile again
    when unpickling (unpickled, it is the built `RuleSet`); the workers' fork server has the
    built-in rules compiled already (ingest/preload.py), and a parent that never strips itself
    never builds them at all. A worker forked from the parent inherits the recipe itself and
    builds it once (`ingest.clean.context_settings`): it is not a proxy, since an attribute
    looked up through one costs ~1 µs, paid on every short paragraph."""

    def __init__(self, files: Sequence[str | Path]) -> None:
        self.files = tuple(str(f) for f in files)

    def __reduce__(self) -> tuple[object, tuple[tuple[str, ...]]]:
        return (load_rules, (self.files,))

    def build(self) -> RuleSet:
        return load_rules(self.files)
