"""The pronunciation lexicon: word lists a technician edits in ``voices/lexicon*.yaml``, without touching code.

Every ``lexicon.yaml`` and ``lexicon-*.yaml`` in the voices folder is read and merged; each may hold any of
the sections of :class:`LexiconFile`. A key defined twice (in one file or across files) is an error naming
both places, because silently preferring one would make a technician's entry do nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radiod import schema
from radiod.errors import ConfigError, Problem
from radiod.schema import setting

REGIONS = ("north", "central", "south")

_DIGIT = re.compile(r"\d")


@dataclass(frozen=True, kw_only=True)
class Sense:
    reading: str = setting(doc="what to say when this sense applies")
    next: list[str] = setting(
        factory=list,
        doc="words that follow it; <number> for any number, <year> for a year 19xx/20xx, <Name> for any "
            "capitalised word",
    )
    prev: list[str] = setting(factory=list, doc="words that come just before it")
    near: list[str] = setting(
        factory=list,
        doc="topic words anywhere in its sentence (cháy rừng, thiên tai), tried when no sense's next or prev did",
    )


@dataclass(frozen=True, kw_only=True)
class Ambiguous:
    default: str = setting(doc="the reading when no sense matches")
    senses: list[Sense] = setting(doc="the other readings, each with the context that selects it")


@dataclass(frozen=True, kw_only=True)
class LexiconFile:
    """One lexicon file; every section is optional."""

    abbreviations: dict[str, str] = setting(factory=dict, doc="exact spelling -> reading (UBND: ủy ban nhân dân)")
    ambiguous: dict[str, Ambiguous] = setting(factory=dict, doc="abbreviations whose reading depends on context")
    loanwords: dict[str, str] = setting(factory=dict, doc="foreign word, any case -> Vietnamese-speakable form")
    places: dict[str, str] = setting(factory=dict, doc="place name, exact spelling -> how it is said")
    units: dict[str, str] = setting(factory=dict, doc="unit written after a number -> reading (km: ki lô mét)")
    letters: dict[str, str] = setting(factory=dict, doc="capital letter -> its name, to spell unknown acronyms")
    symbols: dict[str, str] = setting(factory=dict, doc="one symbol character -> reading ('&': và)")
    url_words: dict[str, str] = setting(factory=dict, doc="part of a web or e-mail address -> reading")
    document_types: dict[str, str] = setting(factory=dict, doc="first code of a document number (QĐ, KH)")
    roads: dict[str, str] = setting(factory=dict, doc="road prefix before a road number (QL.6: quốc lộ sáu)")
    counted_nouns: list[str] = setting(factory=list, doc="nouns after which 10/10 is read 'mười trên mười'")
    per_nouns: list[str] = setting(factory=list, doc="nouns after which '/' is read 'một' (đồng/liều)")
    roman_after: list[str] = setting(factory=list, doc="words after which a Roman numeral is a number (quý)")
    phone_cues: list[str] = setting(factory=list, doc="words before which 113, 114, 115 are read digit by digit")
    code_cues: list[str] = setting(factory=list, doc="words after which a number is a code, read digit by digit")
    regions: dict[str, dict[str, str]] = setting(
        factory=dict, doc="region -> number word -> regional word ('' drops the word)"
    )


_READING_SECTIONS = (
    "abbreviations", "loanwords", "places", "units", "letters", "symbols", "url_words", "document_types", "roads",
)
_LIST_SECTIONS = ("counted_nouns", "per_nouns", "roman_after", "phone_cues", "code_cues")


@dataclass(frozen=True, eq=False)
class Lexicon:
    """All lexicon files merged; hashable by identity so compiled rules can be cached per lexicon."""

    abbreviations: dict[str, str] = field(default_factory=dict)
    ambiguous: dict[str, Ambiguous] = field(default_factory=dict)
    loanwords: dict[str, str] = field(default_factory=dict)  # keys lower-cased
    places: dict[str, str] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    letters: dict[str, str] = field(default_factory=dict)
    symbols: dict[str, str] = field(default_factory=dict)
    url_words: dict[str, str] = field(default_factory=dict)  # keys lower-cased
    document_types: dict[str, str] = field(default_factory=dict)
    roads: dict[str, str] = field(default_factory=dict)
    counted_nouns: tuple[str, ...] = ()
    per_nouns: tuple[str, ...] = ()
    roman_after: tuple[str, ...] = ()
    phone_cues: tuple[str, ...] = ()
    code_cues: tuple[str, ...] = ()
    regions: dict[str, dict[str, str]] = field(default_factory=dict)
    files: tuple[str, ...] = ()


def lexicon_files(voices_dir: Path) -> list[Path]:
    """The lexicon files of a voices folder, in a stable order."""
    return sorted(p for p in voices_dir.glob("lexicon*.yaml") if p.is_file())


def load_lexicon(voices_dir: Path) -> Lexicon:
    """Read, check and merge every ``lexicon*.yaml`` in ``voices_dir``; ConfigError lists every problem."""
    voices_dir = Path(voices_dir)
    paths = lexicon_files(voices_dir)
    if not paths:
        raise ConfigError([Problem(str(voices_dir), None, "", "no lexicon.yaml or lexicon-*.yaml in this folder")])
    merger = _Merger()
    for path in paths:
        raw = schema.read_yaml(path)
        problems = _check_keys_are_text(raw, str(path))
        if problems:
            merger.problems += problems
            continue
        try:
            parsed = schema.build(LexiconFile, raw, str(path))
        except ConfigError as exc:
            merger.problems += exc.problems
            continue
        merger.add(parsed, raw, str(path))
    if merger.problems:
        raise ConfigError(merger.problems)
    return merger.lexicon()


def _line(raw: Any, *keys: Any) -> int | None:
    """The YAML line of a nested key, falling back to the enclosing mapping's line."""
    line = getattr(raw, "line", None)
    node = raw
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            break
        line = getattr(node, "key_lines", {}).get(key, line)
        node = node[key]
    return line


def _check_keys_are_text(node: Any, source: str, path: str = "") -> list[Problem]:
    """YAML turns unquoted keys like ON, NO or 113 into booleans and numbers; say so instead of guessing."""
    problems = []
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if not isinstance(key, str):
                problems.append(Problem(
                    source, getattr(node, "key_lines", {}).get(key), where,
                    f"the key {key!r} is read by YAML as {type(key).__name__}, not text: put it in quotes",
                ))
            problems += _check_keys_are_text(value, source, where)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            problems += _check_keys_are_text(item, source, f"{path}[{i}]")
    return problems


@dataclass
class _Merger:
    """Collects the files' sections, remembering where each key came from to report duplicates."""

    problems: list[Problem] = field(default_factory=list)
    readings: dict[str, dict[str, str]] = field(default_factory=lambda: {s: {} for s in _READING_SECTIONS})
    ambiguous: dict[str, Ambiguous] = field(default_factory=dict)
    lists: dict[str, list[str]] = field(default_factory=lambda: {s: [] for s in _LIST_SECTIONS})
    regions: dict[str, dict[str, str]] = field(default_factory=dict)
    origin: dict[tuple[str, str], str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def add(self, parsed: LexiconFile, raw: Any, source: str) -> None:
        self.files.append(source)
        for section in _READING_SECTIONS:
            for key, reading in getattr(parsed, section).items():
                line = _line(raw, section, key)
                if self._check_entry(section, key, reading, source, line):
                    self.readings[section][self._fold(section, key)] = reading
        for key, entry in parsed.ambiguous.items():
            line = _line(raw, "ambiguous", key)
            if self._check_ambiguous(key, entry, source, line):
                self.ambiguous[key] = entry
        for section in _LIST_SECTIONS:
            for i, word in enumerate(getattr(parsed, section)):
                if not word.strip():
                    self._problem(source, _item_line(raw, section, i), f"{section}[{i}]", "the word is empty")
                elif word not in self.lists[section]:
                    self.lists[section].append(word)
        for region, table in parsed.regions.items():
            line = _line(raw, "regions", region)
            if region not in REGIONS:
                self._problem(source, line, f"regions.{region}", f"unknown region (known: {', '.join(REGIONS)})")
                continue
            for word, regional in table.items():
                if self._claim(f"regions.{region}", word, source, _line(raw, "regions", region, word)):
                    self.regions.setdefault(region, {})[word] = regional

    @staticmethod
    def _fold(section: str, key: str) -> str:
        """Loanwords and address parts match in any case, so they are stored lower-cased."""
        return key.lower() if section in ("loanwords", "url_words") else key

    def _claim(self, section: str, key: str, source: str, line: int | None) -> bool:
        """Record where ``section.key`` is defined; False (and a problem) if it already was."""
        first = self.origin.get((section, key))
        if first is not None:
            self._problem(source, line, f"{section}.{key}", f"already defined at {first}; keep one")
            return False
        self.origin[(section, key)] = f"{source}:{line}" if line else source
        return True

    def _check_entry(self, section: str, key: str, reading: str, source: str, line: int | None) -> bool:
        where = f"{section}.{key}"
        ok = True
        if not key.strip() or key != key.strip():
            self._problem(source, line, where, "the key is empty or has spaces around it")
            ok = False
        if not reading.strip():
            self._problem(source, line, where, "the reading is empty")
            ok = False
        elif _DIGIT.search(reading):
            self._problem(source, line, where, f"the reading {reading!r} has digits: write numbers in words")
            ok = False
        if section == "letters" and not (len(key) == 1 and key.isalpha() and key.isupper()):
            self._problem(source, line, where, "a letter entry is one capital letter")
            ok = False
        if section == "symbols" and not (len(key) == 1 and not key.isalnum() and not key.isspace()):
            self._problem(source, line, where, "a symbol entry is one character that is not a letter or digit")
            ok = False
        return ok and self._claim(section, self._fold(section, key), source, line)

    def _check_ambiguous(self, key: str, entry: Ambiguous, source: str, line: int | None) -> bool:
        where = f"ambiguous.{key}"
        ok = True
        readings = [entry.default, *(s.reading for s in entry.senses)]
        if any(not r.strip() or _DIGIT.search(r) for r in readings):
            self._problem(source, line, where, "every reading must be words, not empty and without digits")
            ok = False
        for i, sense in enumerate(entry.senses):
            if not sense.next and not sense.prev and not sense.near:
                self._problem(source, line, f"{where}.senses[{i}]",
                              "give 'next' or 'prev' words (or 'near' topic words) that select it")
                ok = False
        return ok and self._claim("abbreviations", key, source, line)

    def _problem(self, source: str, line: int | None, key: str, message: str) -> None:
        self.problems.append(Problem(source, line, key, message))

    def lexicon(self) -> Lexicon:
        values: dict[str, Any] = dict(self.readings)
        values["ambiguous"] = self.ambiguous
        values.update({s: tuple(words) for s, words in self.lists.items()})
        values["regions"] = self.regions
        values["files"] = tuple(self.files)
        return Lexicon(**values)


def _item_line(raw: Any, section: str, index: int) -> int | None:
    seq = raw.get(section) if isinstance(raw, dict) else None
    lines = getattr(seq, "item_lines", None)
    return lines[index] if lines and index < len(lines) else _line(raw, section)
