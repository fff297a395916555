"""Compact function-word lists and page-language detection for the content scorer.

Body prose has a steady share of function words (articles, prepositions, pronouns,
auxiliaries) in every language; menus, link lists and captions have few. jusText uses the
same signal and picks the page's language by the list with the highest hit rate; so do we.
The lists are short on purpose: the most frequent words carry nearly all of the signal, and
a short list keeps an unknown-language page from matching by accident.

Languages: en de fr es it pt nl ru pl id. A page whose best hit rate is too low (Japanese,
Chinese, Korean, ...) gets no list, and the scorer falls back to length and punctuation.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

__all__ = ["STOPWORDS", "LANGUAGES", "TYPICAL_SHARE", "detect_language", "stopwords_for", "ENGLISH"]

STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset("""
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from
further had has have having he her here hers herself him himself his how i if in into is it its
itself just me more most my myself no nor not now of off on once only or other our ours
ourselves out over own same she should so some such than that the their theirs them themselves
then there these they this those through to too under until up very was we were what when where
which while who whom why will with would you your yours yourself yourselves said says say
since though although however whether according told it's he's she's they're we're i'm don't
didn't can't won't isn't wasn't aren't weren't one two three
""".split()),
    "de": frozenset("""
der die das den dem des ein eine einen einem einer eines und oder aber auch als an auf aus bei
bis durch für gegen in im ins mit nach ohne über um unter von vom vor zu zum zur ist sind war
waren wird werden wurde wurden hat haben hatte hatten sein kann können muss soll nicht noch nur
schon sehr wie wenn dass daß weil ob so es er sie wir ihr ich man sich sein seine ihre ihren
dieser diese dieses diesen mehr wieder dann doch denn hier da was wer wo bereits sowie einen
""".split()),
    "fr": frozenset("""
le la les l un une des du de d et ou mais donc car ni que qui quoi dont où ce cet cette ces
son sa ses leur leurs il elle ils elles on nous vous je se ne pas plus est sont était été être
a ont avait avoir fait dans en sur sous par pour avec sans chez entre vers au aux comme aussi
très tout tous toute même si y c qu n s été depuis selon
""".split()),
    "es": frozenset("""
el la los las lo un una unos unas y o pero que de del al a en con por para sin sobre entre
hasta desde es son fue era ser está están estaba ha han había haber se su sus le les me te nos
no más muy como cuando donde también ya este esta estos estas ese esa eso porque sí todo
todos hay según tras ante durante
""".split()),
    "it": frozenset("""
il lo la i gli le un uno una e ed o ma che di del dello della dei degli delle a al allo alla ai
agli alle da dal dalla dai in nel nello nella nei negli nelle con su sul sulla per tra fra è
sono era erano essere stato stata ha hanno aveva avere si non più come anche questo questa
questi queste quello quella suo sua suoi sue loro cui quando dove perché molto già ci ne
""".split()),
    "pt": frozenset("""
o a os as um uma uns umas e ou mas que de do da dos das em no na nos nas por pelo pela pelos
pelas para com sem sobre entre até desde ao aos à às é são foi era ser está estão estava tem
têm tinha ter se seu sua seus suas lhe não mais muito como quando onde também já este esta
isso isto esse essa porque todo todos há pode ainda
""".split()),
    "nl": frozenset("""
de het een en of maar dat die dit deze van in op aan met voor door bij naar om uit over tot
onder tegen is zijn was waren wordt worden werd werden heeft hebben had hadden kan kunnen moet
zal zou niet geen ook nog al wel er hier daar als dan toen hij zij ze wij we ik je u men zich
haar hun wat wie waar hoe meer zo
""".split()),
    "ru": frozenset("""
и в во не что он на я с со как а то все она так его но да ты к у же вы за бы по только ее её
мне было вот от меня еще ещё нет о из ему теперь когда даже ну вдруг ли если уже или ни быть
был была были него до вас нибудь опять уж вам ведь там потом себя ничего ей может они тут где
есть надо ней для мы тебя их чем сам чтобы без будто чего раз тоже себе под будет ж тогда кто
этот этого это эти того потому этой какой при более также который которые которая
""".split()),
    "pl": frozenset("""
i w we z ze na do nie się to że jest są był była było były jak ale o od po przez dla przy za
oraz lub czy tak jego jej ich ten ta te tego tej tym który która które którzy co jako już
także może być będzie mnie mi go je tylko bardzo jeszcze gdy gdzie aby żeby a u pod nad
""".split()),
    "id": frozenset("""
yang dan di ke dari ini itu dengan untuk tidak dalam akan pada juga adalah karena ada oleh
sebagai atau mereka kami kita saya telah sudah bisa lebih jadi para tersebut namun saat
seperti hanya bahwa masih belum harus dapat ia dia
""".split()),
}

LANGUAGES = tuple(STOPWORDS)
ENGLISH = "en"

# Usual share of listed words in body prose per language. Languages without articles (the
# Slavic ones, Indonesian) score lower with any list, so shares are scaled to English's
# before the scorer compares them with its thresholds.
TYPICAL_SHARE = {"en": 0.40, "de": 0.38, "fr": 0.40, "es": 0.40, "it": 0.38, "pt": 0.40,
                 "nl": 0.38, "ru": 0.25, "pl": 0.27, "id": 0.21}

# Every word in the three casings it appears in, so tokens need no lower-casing.
_ANYCASE: dict[str, frozenset[str]] = {
    lang: frozenset(v for w in words for v in (w, w.capitalize(), w.upper()))
    for lang, words in STOPWORDS.items()
}
# word -> bit mask of the languages listing it: one dict lookup per token for all languages
_MASK: dict[str, int] = {}
for _bit, _lang in enumerate(LANGUAGES):
    for _w in _ANYCASE[_lang]:
        _MASK[_w] = _MASK.get(_w, 0) | (1 << _bit)

# Below this hit rate no list describes the page (CJK without spaces, unlisted languages).
_MIN_RATE = 0.12
# English is what nearly every page is; accept it without testing the others above this.
_ENGLISH_SURE = 0.22
_SAMPLE_TOKENS = 400


def stopwords_for(lang: str | None) -> frozenset[str]:
    """The any-case stopword set for ``lang`` (empty for None)."""
    return _ANYCASE[lang] if lang is not None else frozenset()


def detect_language(token_lists: Iterable[list[str]]) -> str | None:
    """Language whose list covers the most of the given tokens, or None when none fits.

    ``token_lists`` are whitespace tokens of the page's paragraphs (sampled by the caller or
    not); at most ~400 tokens are looked at.
    """
    sample: list[str] = []
    for toks in token_lists:
        sample.extend(toks)
        if len(sample) >= _SAMPLE_TOKENS:
            break
    if not sample:
        return None
    en = _ANYCASE[ENGLISH]
    en_rate = sum(map(en.__contains__, sample)) / len(sample)
    if en_rate >= _ENGLISH_SURE:
        return ENGLISH
    masks = Counter(map(_MASK.get, sample))
    masks.pop(None, None)
    best, best_hits = None, 0
    for bit, lang in enumerate(LANGUAGES):
        hits = sum(c for m, c in masks.items() if m & (1 << bit))
        if hits > best_hits:
            best, best_hits = lang, hits
    if best is None or best_hits / len(sample) < _MIN_RATE:
        return None
    return best
