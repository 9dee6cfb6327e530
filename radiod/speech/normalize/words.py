"""Words that are not Vietnamese syllables: abbreviations, loanwords, place names, acronyms to spell.

Order of lookup: the exact abbreviation (UBND), an ambiguous one resolved by its neighbours (TT), a place
name, a loanword in any case (Covid, COVID), then an unknown acronym spelled with the letters' names. A word
that is a well-formed Vietnamese syllable ("THÔNG", "LAN") is never spelled: headlines are written in capitals.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from functools import lru_cache

from radiod.speech.normalize.lexicon import Ambiguous, Lexicon
from radiod.speech.normalize.numbers import DIGITS

_TONES = ("", "\u0300", "\u0301", "\u0309", "\u0303", "\u0323")
_VOWELS = "".join(unicodedata.normalize("NFC", v + t) for v in "aăâeêioôơuưy" for t in _TONES)
_ONSET = r"(?:ngh|ng|gh|gi|kh|nh|ph|th|tr|ch|qu|[bcdđghklmnprstvx])?"
_SYLLABLE = rf"{_ONSET}[{_VOWELS}]{{1,3}}(?:ng|nh|ch|[cmnpt])?"
_ONE_SYLLABLE = re.compile(_SYLLABLE)

_VOWEL_CAPITALS = frozenset("AĂÂEÊIOÔƠUƯY")
"""A lone capital vowel is read as the word it spells (Vitamin A, Y tế), so it is never spelled."""
_CONTEXT_CHARS = 48
"""How far a context rule looks before or after an ambiguous abbreviation."""
_SENTENCE_CHARS = 200
"""How far a sense's ``near`` words are looked for, within the sentence: a bulletin sentence is rarely longer."""
_SENTENCE_END = re.compile(r"[.!?;](?=\s|$)|\n")
_YEAR = re.compile(r"(?:19|20)\d\d(?![\w.,]\d|\w)")


def is_syllable(word: str) -> bool:
    """Whether ``word`` (any case) is shaped like one Vietnamese syllable, so it is read, not spelled."""
    return _ONE_SYLLABLE.fullmatch(word.lower()) is not None


_ASCII_RIME = (
    r"(?:a(?:i|o|u|y|nh|ng|ch|[cmnpt])?"
    r"|e(?:o|u|nh|ng|ch|[cmnpt])?"
    r"|i(?:a|u|nh|ch|eu|e(?:ng|[cmnpt])|[cmnpt])?"
    r"|o(?:a(?:i|y|nh|ng|ch|[cmnpt])?|e(?:o|[nt])?|o(?:ng|c)|i|ng|[cmnpt])?"
    r"|u(?:a(?:y|ng|[nt])?|o(?:i|u|ng|[cmnpt])|y(?:a|u|nh|ch|e[nt])?|e(?:nh|ch|[nt])?|i|u|ng|[cmnpt])?"
    r"|y(?:e(?:u|[mnt]))?)"
)
_ASCII_SYLLABLE = re.compile(rf"{_ONSET}{_ASCII_RIME}")
_DIGRAPHS = frozenset(("ch", "gh", "gi", "kh", "ng", "nh", "ph", "th", "tr"))


def _base_letters(word: str) -> str:
    """The word without tone or vowel marks, letter for letter: "vihương" -> "vihuong"."""
    return "".join(
        "d" if ch == "đ" else unicodedata.normalize("NFD", ch)[0] for ch in word.lower()
    )


def split_syllables(word: str) -> list[str] | None:
    """Split run-together syllables ("hoptacxathienan" -> hop tac xa thien an); None if it cannot be done.

    Web addresses are written without spaces or tones; reading their syllables beats spelling 15 letters.
    Of the possible splits, the one with fewest syllables that start with a vowel (truyen|hinh, not
    truy|e|nhinh), then breaking fewest consonant pairs (xa|thien, not xat|hien), then shortest, wins.
    """
    base = _base_letters(word)
    n = len(base)
    best: list[tuple[tuple[int, int, int], list[int]] | None] = [None] * (n + 1)
    best[n] = ((0, 0, 0), [])
    for pos in range(n - 1, -1, -1):
        for end in range(pos + 1, min(n, pos + 8) + 1):
            tail = best[end]
            if tail is None or not _ASCII_SYLLABLE.fullmatch(base, pos, end):
                continue
            (bare, broken, count), cuts = tail
            if end < n and base[end - 1:end + 1] in _DIGRAPHS:
                broken += 1
            if base[pos] in "aeiouy":
                bare += 1
            cost = (bare, broken, count + 1)
            if best[pos] is None or cost < best[pos][0]:  # type: ignore[index]
                best[pos] = (cost, [end, *cuts])
    if best[0] is None:
        return None
    starts = [0, *best[0][1]]
    return [word[a:b] for a, b in itertools.pairwise(starts)]


def spell(token: str, letters: dict[str, str]) -> str:
    """Spell an acronym with the letters' names from the lexicon: "FAO" -> "ép a o"; digits say their name."""
    return " ".join(
        DIGITS[ord(ch) - 48] if "0" <= ch <= "9" else letters.get(ch.upper(), ch) for ch in token if ch.isalnum()
    )


def _follows(text: str, end: int, pattern: str) -> bool:
    after = text[end:end + _CONTEXT_CHARS].lstrip(" \t.,")
    if pattern == "<number>":  # a phone number may start with its country code: +84
        return after[:1].isdigit() or (after[:1] == "+" and after[1:2].isdigit())
    if pattern == "<Name>":
        return after[:1].isupper()
    if pattern == "<year>":
        return _YEAR.match(after) is not None
    n = len(pattern)
    return after[:n].lower() == pattern.lower() and not after[n:n + 1].isalnum()


def _precedes(text: str, start: int, pattern: str) -> bool:
    before = text[max(0, start - _CONTEXT_CHARS):start].rstrip(" \t")
    n = len(pattern)
    return before[-n:].lower() == pattern.lower() and not before[-n - 1:-n].isalnum()


@lru_cache(maxsize=256)
def _near_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    """Any of a sense's ``near`` words as a whole word, in any case; compiled once per sense."""
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def _sentence_around(text: str, start: int, end: int) -> str:
    """The sentence holding text[start:end], with the span itself left out (its own letters decide nothing)."""
    lo = max(0, start - _SENTENCE_CHARS)
    for cut in _SENTENCE_END.finditer(text, lo, start):
        lo = cut.end()
    hi = min(len(text), end + _SENTENCE_CHARS)
    cut = _SENTENCE_END.search(text, end, hi)
    return text[lo:start] + " " + text[end:cut.start() if cut else hi]


def resolve(entry: Ambiguous, text: str, start: int, end: int) -> tuple[str, str]:
    """(reading, rule) of an ambiguous abbreviation at text[start:end].

    The words next to it decide first (BCH Đoàn, tờ BĐ số): the first sense whose ``next`` or ``prev`` matches.
    Else a topic word anywhere in the sentence (``near``: cháy rừng, thiên tai) picks a sense, since a code
    inside "15/TB-BCH" has no telling neighbour. Else the default, a guess ("abbreviation-guess") that
    ``--explain`` marks.
    """
    for sense in entry.senses:
        if any(_follows(text, end, p) for p in sense.next) or any(_precedes(text, start, p) for p in sense.prev):
            return sense.reading, "abbreviation-context"
    if any(sense.near for sense in entry.senses):
        sentence = _sentence_around(text, start, end)
        for sense in entry.senses:
            if sense.near and _near_pattern(tuple(sense.near)).search(sentence):
                return sense.reading, "abbreviation-context"
    return entry.default, "abbreviation-guess"


class WordReader:
    """Reads one word token against a lexicon; returns (spoken, rule) or None to leave it as written."""

    def __init__(self, lexicon: Lexicon) -> None:
        self.lex = lexicon

    def read(self, token: str, text: str, start: int, end: int) -> tuple[str, str] | None:
        lex = self.lex
        if token.islower():  # the common case: a Vietnamese word, or a lower-case loanword
            reading = lex.loanwords.get(token)
            return (reading, "loanword") if reading else self._compound(token, text, start, end)
        reading = lex.abbreviations.get(token)
        if reading:
            return reading, "abbreviation"
        entry = lex.ambiguous.get(token)
        if entry:
            return resolve(entry, text, start, end)
        reading = lex.places.get(token)
        if reading:
            return reading, "place"
        reading = lex.loanwords.get(token.lower())
        if reading:
            return reading, "loanword"
        compound = self._compound(token, text, start, end)
        if compound:
            return compound
        if self._is_acronym(token):
            return spell(token, lex.letters), "acronym"
        return None

    def spell_char(self, char: str) -> str:
        """One letter by its name (the B of "22-B1"), a digit by its word."""
        return spell(char, self.lex.letters)

    def read_code(self, token: str, text: str, start: int, end: int) -> tuple[str, str]:
        """(spoken, rule) of a code segment (in 45/KH-UBND): any known reading, else spelled ("acronym");
        codes are never plain words. The rule lets a document number say that one of its codes was a guess."""
        found = self.read(token, text, start, end)
        if found:
            return found
        if is_syllable(token) and token.islower():
            return token, "text"
        return spell(token, self.lex.letters), "acronym"

    def _compound(self, token: str, text: str, start: int, end: int) -> tuple[str, str] | None:
        """Wi-Fi is in the lexicon whole; KH-UBND, KH&ĐT and vắc-xin are read part by part (espeak-ng runs
        hyphenated syllables together)."""
        for sep, joiner, plain_rule in (("&", " và ", "symbol"), ("-", " ", "hyphen")):
            if sep in token:
                parts = token.split(sep)
                spoken = [self.read(p, text, start, end) if p else None for p in parts]
                rule = next((s[1] for s in spoken if s), plain_rule)
                words = [s[0] if s else p for s, p in zip(spoken, parts, strict=True)]
                return joiner.join(words), rule
        return None

    @staticmethod
    def _is_acronym(token: str) -> bool:
        """Capitals that cannot be a Vietnamese word (HTX, FAO), or a lone consonant capital (khu B)."""
        if not token.isupper():
            return False
        if len(token) == 1:
            return token not in _VOWEL_CAPITALS
        return not is_syllable(token)
