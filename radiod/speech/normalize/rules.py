"""The rule engine: one pattern, compiled once per lexicon, finds every span not read as written.

The alternatives of the pattern are tried in order at each position, so a more specific reading wins:
a web address before a word, a document number (45/KH-UBND) before a date, a range (6h30 – 15h30)
before its two halves, a counted ratio (10/10 thôn) before a date. Each alternative has a handler that
returns the spoken form and the rule's name (shown by ``radiod normalize --explain``). Text no rule
claims is passed through; a last clean-up turns the rest into the pauses espeak-ng understands.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from radiod.speech.normalize import dates, numbers
from radiod.speech.normalize.lexicon import Lexicon
from radiod.speech.normalize.web import EMAIL, URL, read_address
from radiod.speech.normalize.words import WordReader, resolve

Reading = tuple[str, str]  # (spoken form, rule name)
Handler = Callable[[re.Match[str], str], Reading | None]


UNSURE = {
    "acronym": "unknown acronym spelled letter by letter: add it to the lexicon if it has a reading",
    "abbreviation-guess": "ambiguous abbreviation, no context word decided: its default reading",
    "date-guess": "number/number read as a date with no day word before it: is it a ratio?",
    "document-guess": "a code in this document number is ambiguous (its default reading) or unknown (spelled)",
    "slash-or": "slash between words read as 'hoặc'",
}
"""Rules that guessed, and why: ``radiod normalize --explain`` marks their spans so an operator can check."""


@dataclass(frozen=True)
class Span:
    """One piece of the input: its text, what is said for it, the rule that decided, and where it starts."""

    source: str
    spoken: str
    rule: str
    start: int

    @property
    def unsure(self) -> str:
        """Why this reading is a guess, or "" when the rule was sure."""
        return UNSURE.get(self.rule, "")


# Number shapes shared by several alternatives. A dot groups thousands (7.557), a comma is decimal (48,12);
# dots that do not group thousands are a version or section number (4.0, 1.1).
_NUM = r"\d{1,3}(?:\.\d{3})+(?!\d)(?:,\d+)?|\d+(?:\.\d+)+|\d+(?:,\d+)?"
_TIME = r"\d{1,2}[hg]\d{2}(?!\d)|\d{1,2}h(?![^\W\d_])|\d{1,2}:\d{2}(?::\d{2})?(?![\d:])"
_DATE = r"\d{1,2}/\d{1,2}(?:/\d{4})?(?!\d)"
_NUMLIKE = rf"(?:{_TIME}|{_DATE}|{_NUM})(?!\d|[.,/]\d)"
_INT = r"\d{1,3}(?:\.\d{3})+(?!\d)|\d+"
_END = r"(?!\d|[.,/]\d)"  # a number ends here: no more digits and no digit group follows

_ROMAN_HEAD = re.compile(r"\D+?[ \t]+(?=[IVX]+(?!\w))")
_ROMAN_PIECES = re.compile(r"[IVX]+|,|và|hoặc|đến")
_THOUSANDS = re.compile(r"\d{1,3}(?:\.\d{3})+(?:,\d+)?")
_PLATE_PARTS = re.compile(r"(\d{2})-?([A-ZĐ]{1,2}\d?)\D*(\d.*)")
_TIME_PARTS = re.compile(r"(\d{1,2})[hg:](\d{2})?(?::(\d{2}))?")
_PAUSES = {"(": ",", ")": ",", "[": ",", "]": ",", "{": ",", "}": ",", "|": ",", "•": ",", "·": ","}
_SILENT = frozenset("\"“”„«»‘’'`*_^\\~●▪◦►➢✓")

_NGAY_BEFORE = re.compile(r"(?i:\b(ngày|mồng|mùng|sáng|trưa|chiều|tối|đêm))[ \t]*$")
"""Words after which a date is not given a "ngày" of its own: "ngày 3/10", "sáng 12/8", "đêm 15/9"."""
_DATE_CUE_BEFORE = re.compile(
    r"(?i:\b(?:ngày|mồng|mùng|từ|đến|sáng|trưa|chiều|tối|đêm|hôm|trước|sau|hạn|lúc|vào|tới))[ \t]*$"
)
_THANG_BEFORE = re.compile(r"(?i:\btháng)[ \t]*$")
_SCALE_BEFORE = re.compile(r"(?i:\btỷ lệ|\btỉ lệ)[ \t]*$")
"""A map scale: "tỷ lệ 1/2000" is one over two thousand, never January 2000."""
_LEVEL_BEFORE = re.compile(r"(?<!\w)(?P<level>[A-ZĐ]{2,4})[ \t]?[1-9][ \t]*$")
_LEVEL_AFTER = re.compile(r"[ \t]*(?P<level>[A-ZĐ]{2,4})?[ \t]?[1-9](?!\w|[.,]\d|[ \t]*[-–—][ \t]*\d)")
"""Two numbered levels joined by a dash, "BĐ2-BĐ3", "BĐ 1 - BĐ 2", "BĐ1-3", are a range; "KH-UBND", "F0" and a
formula "NPK 16-16-8" or "NPK 5-5-5" are not (a level is one digit, and a range has two sides). A bare number
after the dash is the same kind of level, and is said with its name: "đến báo động ba"."""
_NUMBER_NEXT = re.compile(r"[ \t]+\d")
_FROM_BEFORE = re.compile(r"(?i:\btừ)[ \t]*$")
_SCALE_WORDS = r"triệu|nghìn|ngàn|tỷ"
_SPACE_RUN = re.compile(r"[ \t\xa0\r]+")
_SPACE_BEFORE_PAUSE = re.compile(r" +(?=[.,;:!?])")
_PAUSE_RUN = re.compile(r"[.,;:!?](?:[ \t]*[.,;:!?])+")
_PAUSE_AT_LINE_START = re.compile(r"^[ \t]*[,;:.!?]+[ \t]*", re.MULTILINE)
_NO_SPACE_AFTER_PAUSE = re.compile(r"([.,;:!?])(?=[^\W\d_])")
_SPACE_AROUND_NEWLINE = re.compile(r" *\n[ \n]*")
_LEXICAL_RULES = frozenset({
    "abbreviation", "abbreviation-context", "abbreviation-guess", "loanword", "place", "spelled", "acronym", "gloss",
})
"""Readings copied from the lexicon: regional number words are not substituted into them."""
_PAUSE_STRENGTH = {",": 0, ";": 1, ":": 1, ".": 2, "!": 2, "?": 2}


def _words(items: tuple[str, ...] | list[str]) -> str:
    """An alternation of lexicon words, longest first so "tiêu chí" is tried before "tiêu"."""
    return "|".join(re.escape(w) for w in sorted(items, key=len, reverse=True)) or r"(?!)"


def _starts(items: Iterable[str]) -> str:
    """A look-ahead for the first letters of a word list, in both cases: a position that cannot start one of
    the words fails in one test instead of trying each word (the scan's hot path)."""
    firsts = {c for w in items for c in (w[0].lower(), w[0].upper())}
    return "(?=[" + "".join(re.escape(c) for c in sorted(firsts)) + "])" if firsts else "(?!)"


def _strongest_pause(m: re.Match[str]) -> str:
    """",." or ".,": one pause, the longer one, so espeak-ng does not stutter."""
    return max((c for c in m.group() if c in _PAUSE_STRENGTH), key=_PAUSE_STRENGTH.__getitem__)


def clean(text: str) -> str:
    """Collapse spaces and runs of punctuation into one pause each; newlines stay sentence breaks."""
    text = _SPACE_RUN.sub(" ", text)
    text = _SPACE_BEFORE_PAUSE.sub("", text)
    if _PAUSE_RUN.search(text):
        text = _PAUSE_RUN.sub(_strongest_pause, text)
    text = _PAUSE_AT_LINE_START.sub("", text)
    text = _NO_SPACE_AFTER_PAUSE.sub(r"\1 ", text)
    return _SPACE_AROUND_NEWLINE.sub("\n", text).strip()


class Rules:
    """The compiled pattern and handlers for one lexicon."""

    def __init__(self, lexicon: Lexicon) -> None:
        self.lex = lexicon
        self.words = WordReader(lexicon)
        units = _words(list(lexicon.units))
        doc_words = [*lexicon.document_types, *lexicon.document_types.values(), "số"]
        self._doc_before = re.compile(rf"(?i:\b(?:{_words(doc_words)}))[ \t]*$")
        currency = [*lexicon.units, *(r.split()[-1] for r in lexicon.units.values()), "triệu", "nghìn", "ngàn", "tỷ"]
        self._amount_before = re.compile(rf"(?<!\w)(?:{_words(currency)})$")
        self._amount_dash_before = re.compile(rf"\d(?:[ \t]?(?:{_words(currency)})(?![\w²³]))+[ \t]*$")
        self._regional = {
            region: _substitution(table) for region, table in lexicon.regions.items() if table
        }
        phrases = [k for k in (*lexicon.abbreviations, *lexicon.ambiguous, *lexicon.places) if not _is_plain_word(k)]
        loan_phrases = [k for k in lexicon.loanwords if not _is_plain_word(k)]
        first_chars = {k[0] for k in phrases} | {c for k in loan_phrases for c in (k[0].lower(), k[0].upper())}
        phrase_start = "[" + "".join(re.escape(c) for c in sorted(first_chars)) + "]" if first_chars else "(?!)"
        # (name, pattern, handler, what it starts with). Alternatives led by a digit, and those led by a letter,
        # are grouped behind one look-ahead each: a position is then tried against a handful of them, not all
        # thirty, which doubles the speed. Within a group, and overall, earlier alternatives win.
        alternatives: list[tuple[str, str, Handler, str]] = [
            ("bullet", r"^[ \t]*[•·●▪◦►➢✓*+\-–—][ \t]+", self._bullet, "any"),
            ("listroman", r"^[ \t]*[IVX]+(?=[.)][ \t])", self._list_roman, "any"),
            ("ellipsis", r"\.{2,}|…", self._ellipsis, "any"),
            # Addresses first check, without backtracking, that the token has an @ or a dot at all.
            ("email", rf"(?<![\w.+-])(?=[\w.+-]*+@){EMAIL}", self._address, "any"),
            ("url", rf"(?<![\w.-])(?=[\w:/-]*+\.){URL}", self._address, "any"),
            ("phrase", rf"(?={phrase_start})(?<!\w)(?:{_words(phrases)}|(?i:{_words(loan_phrases)}))(?!\w)",
             self._phrase, "any"),
            ("gloss", r"\([ \t]*(?P<glossed>[A-ZĐ][\w&\-]*)[ \t]*\)", self._gloss, "any"),
            ("document", r"(?<![\w/])\d+(?:/\d{4})?/[A-ZĐ][\w&]*(?:[-.][\w&]+)*", self._document, "digit"),
            ("partydoc", r"(?<![\w/.,-])\d+-[A-ZĐ][A-Za-zĐđ]*/[A-ZĐ][\w&]*(?:[-.][\w&]+)*", self._party_document,
             "digit"),
            ("plate", r"(?<![\w.,/-])\d{2}(?:-?[A-ZĐ]{1,2}\d?)[ \t]?[-.]?[ \t]?(?:\d{3}\.\d{2}|\d{4,5})(?!\w|[.,]\d)",
             self._plate, "digit"),
            ("height", r"(?<![\w.,])\dm\d{2}(?!\w|[.,]\d)", self._height, "digit"),
            ("servicenum", r"(?:(?<=:)|(?<=: )|(?<=số ))11[1-5](?=[ \t]*(?:[.,;:)!?\n]|$|hoặc|hay|và))", self._service,
             "digit"),
            ("phone", rf"(?<![\w.,/+])(?:\+84[ .]?\d{{2,3}}|0\d{{2,3}})(?:[ .\-]?\d{{3,4}}){{2}}{_END}",
             self._phone, "digit"),
            # "0238.3.856.123": dots in odd places, but ten or eleven digits from a 0 are a phone number.
            ("phonedots", rf"(?<![\w.,/+])(?=0(?:\.?\d){{9,10}}(?!\.?\d))0\d{{2,3}}(?:\.\d{{1,4}}){{2,3}}{_END}",
             self._phone_dots, "digit"),
            ("hotline", rf"(?<![\w.,])1[89]00[ .]?\d{{4}}(?:[ .]?\d{{2}})?{_END}", self._hotline, "digit"),
            ("dms", r"(?<![\w.,])(?P<deg>\d{1,3})°[ \t]?(?P<min>\d{1,2}(?:[.,]\d+)?)['’′]"
                    r"(?:[ \t]?(?P<sec>\d{1,2}(?:[.,]\d+)?)(?:''|[\"”″]))?(?:[ \t]?(?P<hemi>[NSEW])(?!\w))?",
             self._dms, "digit"),
            ("isodate", r"(?<![\w.,/-])\d{4}-\d{2}(?:-\d{2})?(?!\d|[.,/-]\d)", self._iso_date, "digit"),
            ("fulldate", rf"(?<![\w.,/-])\d{{1,2}}(?P<dsep>[-.])\d{{1,2}}(?P=dsep)\d{{4}}{_END}",
             self._full_date, "digit"),
            ("range", rf"(?<![\w.,/:-])(?P<from>{_NUMLIKE})[ \t]*[-–—][ \t]*(?P<to>{_NUMLIKE})(?![ \t]*[-–—][ \t]*\d)"
                      rf"(?:[ \t]?(?P<rangeunit>{units})(?![\w²³]))?", self._range, "digit"),
            ("fraction", r"(?<![\w.,/])[1-9]/(?:10|[2-9])(?=[ \t]+(?i:số|tổng số|diện tích|dân số)(?!\w))",
             self._fraction, "digit"),
            ("ratio", rf"(?<![\w.,/])(?:{_INT})/(?:{_INT})(?=[ \t]+(?i:{_words(lexicon.counted_nouns)})(?!\w))",
             self._ratio, "digit"),
            ("hours", r"(?<![\w.,/])\d{1,2}/\d{1,2}h(?!\w)", self._hours, "digit"),
            ("slash", rf"(?<![\w.,/])\d+/\d+(?:/\d+)?{_END}(?:[ \t]?(?P<slashunit>{units})(?![\w²³]))?",
             self._slash, "digit"),
            ("time", rf"(?<![\w.,/:])(?:{_TIME})", self._time, "digit"),
            ("quantity", rf"(?P<amount>(?:(?<![\w.,/)\]%−-])[-−])?(?:{_NUM}))(?:[ \t](?P<scale>{_SCALE_WORDS}))?"
                         rf"[ \t]?(?P<unit>{units})(?![\w²³])",
             self._quantity, "digit"),
            ("numletter", r"(?<![\w.,])\d{1,3}[A-ZĐ](?!\w)", self._num_letter, "digit"),
            ("number", rf"(?:(?<![\w.,/)\]%−-])[-−](?=\d))?(?:{_NUM})", self._number, "digit"),
            ("road", rf"{_starts(lexicon.roads)}(?<!\w)(?P<roadtype>{_words(list(lexicon.roads))})(?:\.[ \t]?|[ \t]?)"
                     r"(?P<roadno>[1-9]\d{0,3}[A-Z]?)(?!\w|[.,]\d)", self._road, "letter"),
            # "km 72", "Km72+500"; but "km2" alone is the unit, as in "(km2)".
            ("chainage", r"(?=[kK])(?<!\w)(?![Kk]m[23](?![\d+]))[Kk]m[ \t]?(?P<km>\d{1,4})"
                         r"(?:[ \t]?\+[ \t]?(?P<kmplus>\d{1,3}))?(?!\w|[.,]\d)", self._chainage, "letter"),
            ("coordinates", r"(?=[tTvVkK])(?i:\b(?:tọa độ|toạ độ|vĩ độ|kinh độ))[ \t]*:?[ \t]*"
                            r"(?P<coords>\d{1,3}[.,]\d+(?:[ \t]*[,;][ \t]*\d{1,3}[.,]\d+)?)(?!\d|[.,]\d)",
             self._coordinates, "letter"),
            ("code", rf"{_starts(lexicon.code_cues)}(?<!\w)(?P<codecue>(?i:{_words(lexicon.code_cues)}))"
                     r"[ \t]*:?[ \t]*(?:(?i:số)[ \t]*:?[ \t]*)?"
                     r"(?P<codeno>\d+(?:[ .]\d+)*)(?!\w|[.,]\d)", self._code, "letter"),
            ("emergency", rf"{_starts(lexicon.phone_cues)}(?i:\b(?:{_words(lexicon.phone_cues)}))"
                          rf"[ \t:(]*(?:(?i:số|ngay)[ \t:]*){{0,2}}"
                          rf"(?P<service>1\d{{2,3}}){_END}(?![ \t]\d)", self._emergency, "letter"),
            ("ordinal", rf"(?=[tT])(?i:\bthứ)[ \t]+\d{{1,3}}{_END}(?!h\d)"
                        r"(?:[ \t]*,[ \t]*[2-8](?=[ \t]*[,.;:\n]|[ \t]*$|[ \t]+(?:và|hoặc)[ \t]))*"
                        r"(?:[ \t]+(?:và|hoặc)[ \t]+[2-8](?![\w.,/]))?", self._ordinal, "letter"),
            ("month", r"(?=[tT])(?i:\btháng)[ \t]+\d{1,2}(?!\d|[.,/:-]\d)", self._month, "letter"),
            ("roman", rf"{_starts(lexicon.roman_after)}(?i:\b(?:{_words(lexicon.roman_after)}))[ \t]+[IVX]+(?!\w)"
                      r"(?:(?:[ \t]*,[ \t]*|[ \t]+(?:và|hoặc|đến)[ \t]+)[IVX]+(?!\w))*(?:/\d{4}(?!\d))?",
             self._roman, "letter"),
            ("letternum", r"(?<!\w)[A-ZĐ]\d{1,2}(?!\w|[.,]\d)", self._num_letter, "letter"),
            ("times", r"(?<=\s)[x×](?=[ \t]*\d)", self._times, "letter"),
            ("dayword", r"(?=[nNmM])(?i:\b(?:ngày|mồng|mùng))[ \t]+\d{1,2}(?=[ \t]+(?i:tháng)\b)", self._day_word,
             "letter"),
            ("word", r"[^\W\d_]+(?:['’&\-][^\W\d_]+)*", self._word, "letter"),
            ("over", r"/(?:(?<=\d/)(?=\d)|(?<=[^\W\d_]/)(?=[ \t]?\d))", self._over, "any"),
            ("per", rf"/(?<=[^\W\d_]/|%/)(?:(?P<perunit>{units})(?![\w²³])|(?=(?i:{_words(lexicon.per_nouns)})(?!\w)))",
             self._per, "any"),
            ("dash", r"[-–—−]", self._dash, "any"),
            ("symbol", r"[^\w\s.,;:!?]|_", self._symbol, "any"),
        ]
        self.pattern = re.compile(_assemble(alternatives), re.MULTILINE)
        self.handlers = {name: handler for name, _, handler, _ in alternatives}

    # -- driving ---------------------------------------------------------------------------------------------

    def readings(self, text: str, region: str) -> Iterator[tuple[int, int, str, str]]:
        """(start, end, spoken, rule) for every span a rule reads differently from how it is written."""
        regional = self._regional.get(region)
        handlers = self.handlers
        for m in self.pattern.finditer(text):
            found = handlers[m.lastgroup](m, text)  # type: ignore[index]
            if found is None:
                continue
            spoken, rule = found
            if regional is not None and rule not in _LEXICAL_RULES:
                spoken = " ".join(regional(spoken).split())
            yield m.start(), m.end(), spoken, rule

    def normalize(self, text: str, region: str) -> str:
        out = []
        pos = 0
        for start, end, spoken, _ in self.readings(text, region):
            out.append(text[pos:start])
            out.append(f" {spoken} " if spoken[:1].isalnum() else spoken)
            pos = end
        out.append(text[pos:])
        return clean("".join(out))

    def explain(self, text: str, region: str) -> list[Span]:
        spans = []
        pos = 0
        for start, end, spoken, rule in self.readings(text, region):
            if start > pos:
                spans.append(Span(text[pos:start], text[pos:start], "text", pos))
            spans.append(Span(text[start:end], spoken, rule, start))
            pos = end
        if pos < len(text):
            spans.append(Span(text[pos:], text[pos:], "text", pos))
        return spans

    # -- helpers ---------------------------------------------------------------------------------------------

    def _says_ngay(self, text: str, start: int) -> tuple[bool, bool]:
        """(add "ngày", the text wrote "mồng"/"mùng") for a date starting at ``start``."""
        m = _NGAY_BEFORE.search(text, max(0, start - 12), start)
        if m is None:
            return True, False
        return False, m.group(1).lower() in ("mồng", "mùng")

    def _numlike(self, part: str, text: str, start: int, say_ngay: bool | None = None) -> tuple[str, bool]:
        """A side of a range: a time, a date or a number; also says whether it was a date."""
        if _TIME_PARTS.fullmatch(part):
            return self._read_time(part), False
        if "/" in part:
            day, month, *year = (int(p) for p in part.split("/"))
            if dates.is_date(day, month):
                ngay, mong = self._says_ngay(text, start) if say_ngay is None else (say_ngay, False)
                return dates.read_date(day, month, year[0] if year else None, say_ngay=ngay, after_mong=mong), True
            return " trên ".join(numbers.read_number(p) for p in part.split("/")), False
        return numbers.read_number(part), False

    @staticmethod
    def _read_time(part: str) -> str:
        m = _TIME_PARTS.fullmatch(part)
        assert m is not None  # the caller matched the time shape
        hour, minute, second = (int(g) if g else None for g in m.groups())
        assert hour is not None
        return dates.read_time(hour, minute, second)

    # -- handlers, in the order of the pattern ---------------------------------------------------------------

    def _bullet(self, m: re.Match[str], text: str) -> Reading:
        return "", "bullet"

    def _list_roman(self, m: re.Match[str], text: str) -> Reading | None:
        value = numbers.roman_value(m.group().strip())
        return (numbers.read_int(value), "roman") if value else None

    def _ellipsis(self, m: re.Match[str], text: str) -> Reading:
        """"…" ends the sentence before a capital or a line end, and is a short pause inside one."""
        after = text[m.end():m.end() + 8].lstrip(" \t\"”)]")
        return ("." if not after or after[0] == "\n" or after[0].isupper() else ","), "pause"

    def _address(self, m: re.Match[str], text: str) -> Reading:
        return read_address(m.group(), self.lex), m.lastgroup or "url"

    def _phrase(self, m: re.Match[str], text: str) -> Reading:
        key = m.group()
        lex = self.lex
        for table, rule in ((lex.abbreviations, "abbreviation"), (lex.places, "place")):
            if key in table:
                return table[key], rule
        if key in lex.ambiguous:
            return resolve(lex.ambiguous[key], text, m.start(), m.end())
        return lex.loanwords[key.lower()], "loanword"

    def _gloss(self, m: re.Match[str], text: str) -> Reading:
        """"chuyển đổi số (CĐS)": the bracket only defines the abbreviation just read, so it is not read."""
        word = m.group("glossed")
        found = self.words.read(word, text, m.start("glossed"), m.end("glossed"))
        spoken = found[0] if found else word
        before = " ".join(text[max(0, m.start() - len(spoken) - 16):m.start()].lower().split())
        if before.endswith(spoken.lower()):
            return "", "gloss"
        return f", {spoken},", found[1] if found else "text"

    def _document(self, m: re.Match[str], text: str) -> Reading:
        """"37/2022/NĐ-CP" -> "ba mươi bảy năm hai nghìn không trăm hai mươi hai nghị định chính phủ"."""
        number, *rest = m.group().split("/")
        words = [numbers.read_number(number)]
        if len(rest) == 2:
            words += ["năm", numbers.read_number(rest[0])]
        codes, rule = self._codes(text, m.end() - len(rest[-1]), m.end())
        return " ".join(words + codes), rule

    def _codes(self, text: str, start: int, end: int) -> tuple[list[str], str]:
        """The agency codes of a document number (KH-UBND, CĐ-BCH), and the rule for the whole number.

        The first code may be a document type; each is read in its own place, so an ambiguous one (BCH) sees
        the code before it and its sentence. The number is one span, so a code read by default or spelled
        makes the whole number a "document-guess": otherwise ``--explain`` would hide the guess inside it.
        """
        words = []
        rule = "document"
        for i, piece in enumerate(re.finditer(r"[^\W\d_]+|\d+", text[start:end])):
            code = piece.group()
            if code.isdigit():
                words.append(numbers.read_number(code))
            elif i == 0 and code in self.lex.document_types:
                words.append(self.lex.document_types[code])
            else:
                spoken, how = self.words.read_code(code, text, start + piece.start(), start + piece.end())
                words.append(spoken)
                if how in ("abbreviation-guess", "acronym"):
                    rule = "document-guess"
        return words, rule

    def _party_document(self, m: re.Match[str], text: str) -> Reading:
        """"57-NQ/TW", "15-KH/ĐU": the Party writes the number, its type, then the issuing body."""
        number = m.group().partition("-")[0]
        codes, rule = self._codes(text, m.start() + len(number) + 1, m.end())
        return " ".join([numbers.read_number(number), *codes]), rule

    def _plate(self, m: re.Match[str], text: str) -> Reading:
        """A licence plate, "29A-123.45" or "22-B1 123.45": the province as a number, the series letter by
        letter, then the serial digit by digit, as police notices read them."""
        parts = _PLATE_PARTS.fullmatch(m.group())
        assert parts is not None  # the pattern only matches plate shapes
        province, series, serial = parts.groups()
        head = [numbers.read_int(int(province)), *(self.words.spell_char(c) for c in series)]
        return f"{' '.join(head)}, {numbers.read_digits(serial)}", "plate"

    def _height(self, m: re.Match[str], text: str) -> Reading:
        """"1m62" -> "một mét sáu mươi hai", "1m05" -> "một mét linh năm": a height in metres and centimetres."""
        metres, centimetres = m.group().split("m")
        rest = numbers.read_int(int(centimetres))
        return f"{numbers.read_int(int(metres))} mét {'linh ' + rest if centimetres[0] == '0' else rest}", "unit"

    def _service(self, m: re.Match[str], text: str) -> Reading:
        """"báo cháy: 114", "cho số 113": a service number standing alone after a colon or "số"."""
        return numbers.read_digits(m.group()), "emergency"

    def _hours(self, m: re.Match[str], text: str) -> Reading:
        """"24/24h": every hour of the day, "hai mươi tư trên hai mươi tư giờ"."""
        top, bottom = m.group()[:-1].split("/")
        return f"{numbers.read_int(int(top))} trên {numbers.read_int(int(bottom))} giờ", "ratio"

    def _road(self, m: re.Match[str], text: str) -> Reading:
        """"QL.6", "QL1A", "ĐT.435": the road type, its number, and a letter said by name."""
        number = m.group("roadno")
        digits = number.rstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
        spoken = [self.lex.roads[m.group("roadtype")], numbers.read_int(int(digits))]
        spoken += [self.words.spell_char(c) for c in number[len(digits):]]
        return " ".join(spoken), "road"

    def _code(self, m: re.Match[str], text: str) -> Reading:
        """"tài khoản 1234 5678", "mã số thuế 5200123456": an identifier, digit by digit in its groups."""
        cue = text[m.start():m.start("codeno")]
        said = [self.words.read_code(w, text, m.start(), m.end())[0] if w.isupper() else w for w in cue.split()]
        groups = re.findall(r"\d+", m.group("codeno"))
        return " ".join(said) + " " + ", ".join(numbers.read_digits(g) for g in groups), "code"

    def _phone(self, m: re.Match[str], text: str) -> Reading:
        """Digit by digit, in the groups written, with a short pause between groups."""
        raw = m.group()
        plus = raw.startswith("+")
        groups = re.findall(r"\d+", raw)
        if len(groups) == 1:
            groups = _phone_groups(groups[0])
        spoken = ", ".join(numbers.read_digits(g) for g in groups)
        return ("cộng " + spoken if plus else spoken), "phone"

    def _phone_dots(self, m: re.Match[str], text: str) -> Reading:
        """"0238.3.856.123": the written groups (a lone "3") are not how the number is said; it is read in the
        groups of a number written run together, "0238, 3856, 123", as "0238.3856.123" is."""
        groups = _phone_groups(m.group().replace(".", ""))
        return ", ".join(numbers.read_digits(g) for g in groups), "phone"

    def _hotline(self, m: re.Match[str], text: str) -> Reading:
        digits = re.sub(r"\D", "", m.group())
        groups = re.findall(r"\d+", m.group())
        if len(groups) == 1:
            groups = [digits[:4], digits[4:]]
        return ", ".join(numbers.read_digits(g) for g in groups), "hotline"

    def _dms(self, m: re.Match[str], text: str) -> Reading:
        """"17°30'", "15°52'N": degrees and minutes (and seconds) of a storm's position, then the hemisphere
        as the "°N" and "°E" units say it (vĩ bắc, kinh đông); the minute mark is "phút", not a quote."""
        degree = self.lex.units.get("°", "độ")
        spoken = [numbers.read_number(m.group("deg")), degree, numbers.read_number(m.group("min").replace(".", ",")),
                  "phút"]
        if m.group("sec"):
            spoken += [numbers.read_number(m.group("sec").replace(".", ",")), "giây"]
        hemi = m.group("hemi")
        if hemi:
            said = self.lex.units.get("°" + hemi)
            spoken.append(said.removeprefix(degree).strip() if said else self.words.spell_char(hemi))
        if _NUMBER_NEXT.match(text, m.end()):
            spoken[-1] += ","  # "15°52'N 108°20'E": a pause between latitude and longitude
        return " ".join(spoken), "coordinate"

    def _coordinates(self, m: re.Match[str], text: str) -> Reading:
        """"Tọa độ 21.0285, 105.8542": decimal degrees, each read alike, the decimals digit by digit with the
        mark written ("chấm" for a dot, "phẩy" for a comma): a dot here is no thousands separator."""
        cue = text[m.start():m.start("coords")].rstrip(" \t")
        spoken = []
        for number in re.finditer(r"(\d+)([.,])(\d+)|([,;])", m.group("coords")):
            whole, mark, decimals, pause = number.groups()
            if pause:
                spoken.append(pause)
                continue
            said = "chấm" if mark == "." else "phẩy"
            spoken.append(f" {numbers.read_int(int(whole))} {said} {numbers.read_digits(decimals)}")
        return cue + "".join(spoken), "coordinate"

    def _chainage(self, m: re.Match[str], text: str) -> Reading:
        """"km 72", "Km72+500": a point on a road, the kilometre then the metres after it ("cộng")."""
        spoken = f"{self.lex.units['km']} {numbers.read_int(int(m.group('km')))}"
        if m.group("kmplus"):
            spoken += f" {self.lex.symbols.get('+', 'cộng')} {numbers.read_number(m.group('kmplus'))}"
        return spoken, "chainage"

    def _emergency(self, m: re.Match[str], text: str) -> Reading:
        """Service numbers (113, 114, 115, 1022) are read digit by digit after a phone word: "gọi 113"."""
        cue = text[m.start():m.start("service")]
        return cue + numbers.read_digits(m.group("service")), "emergency"

    def _full_date(self, m: re.Match[str], text: str) -> Reading:
        day, month, year = (int(p) for p in re.split(r"[-.]", m.group()))
        if not dates.is_date(day, month):
            return numbers.read_number(m.group().replace("-", " ").replace(".", " ")), "number"
        ngay, mong = self._says_ngay(text, m.start())
        return dates.read_date(day, month, year, say_ngay=ngay, after_mong=mong), "date"

    def _iso_date(self, m: re.Match[str], text: str) -> Reading:
        """"2021-01" (a year and month, as in a dateline) or "2026-10-03"; "2020-21" is a range of years."""
        year, month, *day = (int(p) for p in m.group().split("-"))
        if day and dates.is_date(day[0], month):
            ngay, mong = self._says_ngay(text, m.start())
            return dates.read_date(day[0], month, year, say_ngay=ngay, after_mong=mong), "date"
        if not day and 1 <= month <= 12:
            return dates.read_month_year(month, year, say_thang=not _THANG_BEFORE.search(text, 0, m.start())), "date"
        return " đến ".join(numbers.read_int(int(p)) for p in m.group().split("-")), "range"

    def _range(self, m: re.Match[str], text: str) -> Reading:
        """"12/8 – 30/9", "6h30 – 15h30", "2021 - 2026", "4-5", "ngày 15 - 25/10": read with "đến".

        After "ngày", "1-6" and "20-11" are dates written with a hyphen, not ranges.
        """
        low, high = m.group("from"), m.group("to")
        ngay, mong = self._says_ngay(text, m.start())
        after_day_word = not ngay
        hyphenated = low.isdigit() and high.isdigit() and "-" in m.group() and " " not in m.group()
        if after_day_word and hyphenated and dates.is_date(int(low), int(high)):
            return dates.read_date(int(low), int(high), None, say_ngay=False, after_mong=mong), "date"
        first, was_date = self._numlike(low, text, m.start())
        second, to_date = self._numlike(high, text, m.start("to"), say_ngay=True if was_date else None)
        if to_date and not was_date and low.isdigit() and 1 <= int(low) <= 31:
            if after_day_word:
                first = dates.read_day(int(low), after_mong=mong)
            elif _FROM_BEFORE.search(text, max(0, m.start() - 8), m.start()):
                first = "ngày " + dates.read_day(int(low))  # "từ 10-20/6": the first day is a date too
        spoken = f"{first} đến {second}"
        unit = m.group("rangeunit")
        if unit:
            spoken += " " + self.lex.units[unit]
        return spoken, "range"

    def _ratio(self, m: re.Match[str], text: str) -> Reading:
        """"10/10 thôn", "8/10 tiêu chí"; but "ngày 12/8 xã họp" and "15/10 xã" stay dates: a part is never
        more than the whole, and a day word before it makes it a date."""
        top, bottom = (int(p.replace(".", "")) for p in m.group().split("/"))
        cue = _DATE_CUE_BEFORE.search(text, max(0, m.start() - 8), m.start())
        if "." not in m.group() and dates.is_date(top, bottom) and (top > bottom or cue):
            return self._slash(m, text)
        return f"{numbers.read_int(top)} trên {numbers.read_int(bottom)}", "ratio"

    def _fraction(self, m: re.Match[str], text: str) -> Reading:
        """"2/3 số hộ" -> "hai phần ba số hộ": a share of a whole, not a date."""
        top, bottom = (int(p) for p in m.group().split("/"))
        return f"{numbers.read_int(top)} phần {numbers.read_int(bottom)}", "fraction"

    def _slash(self, m: re.Match[str], text: str) -> Reading:
        """Digits around a slash: a date, a month and year, a number of a year, or a ratio (with its unit)."""
        unit = m.group("slashunit")
        if unit:  # "140/90 mmHg", "85/120 ha": a ratio of amounts, whatever the numbers could otherwise be
            numbers_part = m.group()[:m.start("slashunit") - m.start()].strip()
            spoken = " trên ".join(numbers.read_number(p) for p in numbers_part.split("/"))
            return f"{spoken} {self.lex.units[unit]}", "ratio"
        parts = m.group().split("/")
        values = [int(p) for p in parts]
        start = m.start()
        if _SCALE_BEFORE.search(text, max(0, start - 12), start):
            return " trên ".join(numbers.read_number(p) for p in parts), "ratio"
        if len(parts) == 3 and len(parts[2]) == 4 and dates.is_date(values[0], values[1]):
            ngay, mong = self._says_ngay(text, start)
            return dates.read_date(*values, say_ngay=ngay, after_mong=mong), "date"
        if len(parts) == 2 and len(parts[1]) == 4:
            first, year = values
            lo = max(0, start - 24)
            if 1 <= first <= 12 and _THANG_BEFORE.search(text, lo, start):
                return dates.read_month_year(first, year, say_thang=False), "date"
            if first > 12 or self._doc_before.search(text, lo, start):
                return f"{numbers.read_number(parts[0])} năm {numbers.read_int(year)}", "document"
            return dates.read_month_year(first, year, say_thang=True), "date"
        if len(parts) == 2 and dates.is_date(values[0], values[1]):
            ngay, mong = self._says_ngay(text, start)
            sure = not ngay or _DATE_CUE_BEFORE.search(text, max(0, start - 8), start)
            return dates.read_date(values[0], values[1], None, say_ngay=ngay, after_mong=mong), \
                "date" if sure else "date-guess"
        return " trên ".join(numbers.read_number(p) for p in parts), "ratio"

    def _time(self, m: re.Match[str], text: str) -> Reading:
        parts = _TIME_PARTS.fullmatch(m.group())
        assert parts is not None  # the pattern only matches time shapes
        hour, minute = int(parts.group(1)), int(parts.group(2) or 0)
        if not dates.is_time(hour, minute):
            return f"{numbers.read_int(hour)}, {numbers.read_int(minute)}", "number"
        return self._read_time(m.group()), "time"

    def _quantity(self, m: re.Match[str], text: str) -> Reading:
        """"12 m3", "1,2 triệu m³": an amount, a scale word if written, then the unit."""
        scale = m.group("scale")
        amount = self._amount(m.group("amount")) + (f" {scale}" if scale else "")
        return f"{amount} {self.lex.units[m.group('unit')]}", "unit"

    @staticmethod
    def _amount(number: str) -> str:
        if "." in number and not _THOUSANDS.fullmatch(number.lstrip("-−")):
            return " chấm ".join(numbers.read_number(p) for p in number.split("."))
        return numbers.read_number(number)

    def _ordinal(self, m: re.Match[str], text: str) -> Reading:
        """"thứ 4" -> "thứ tư"; a list of weekdays "thứ 2, 4, 6" -> "thứ hai, tư, sáu"."""
        word, *rest = re.findall(r"\w+|,", m.group())
        spoken = [numbers.read_ordinal(int(p)) if p.isdigit() else p for p in rest]
        return f"{word} {' '.join(spoken)}".replace(" ,", ","), "ordinal"

    def _month(self, m: re.Match[str], text: str) -> Reading:
        word, number = m.group().split()
        month = int(number)
        spoken = dates.read_month(month) if 1 <= month <= 12 else numbers.read_int(month)
        return f"{word} {spoken}", "month"

    def _roman(self, m: re.Match[str], text: str) -> Reading | None:
        """"quý III", "khu vực I, II và III", "quý I/2027"; a malformed numeral (IIII) is left alone."""
        found, _, year = m.group().partition("/")
        head = _ROMAN_HEAD.match(found)
        assert head is not None  # the pattern starts with a context word
        ordinal = head.group().strip().lower().endswith("thứ")
        spoken = [" ".join(self._head_word(w, text, m.start()) for w in head.group().split())]
        for piece in _ROMAN_PIECES.findall(found, head.end()):
            if piece.isalpha() and piece.isupper():
                value = numbers.roman_value(piece)
                if value is None:
                    return None
                spoken.append(numbers.read_ordinal(value) if ordinal else numbers.read_int(value))
            else:
                spoken.append(piece)
        if year:
            spoken += ["năm", numbers.read_int(int(year))]
        return " ".join(spoken), "roman"

    def _head_word(self, word: str, text: str, start: int) -> str:
        """A context word before a Roman numeral, expanded when it is an abbreviation (HK I, BĐ II)."""
        if not word.isupper():
            return word
        found = self.words.read(word, text, start, start + len(word))
        return found[0] if found else word

    def _num_letter(self, m: re.Match[str], text: str) -> Reading:
        """"4G" -> "bốn giê", "F0" -> "ép không"."""
        token = m.group()
        pieces = re.findall(r"\d+|\D", token)
        spoken = [numbers.read_number(p) if p.isdigit() else self.lex.letters.get(p, p) for p in pieces]
        return " ".join(spoken), "spelled"

    def _number(self, m: re.Match[str], text: str) -> Reading:
        number = m.group()
        if "." in number and not _THOUSANDS.fullmatch(number.lstrip("-−")):
            return self._amount(number), "version"
        return numbers.read_number(number), "number"

    def _over(self, m: re.Match[str], text: str) -> Reading:
        """A slash between two amounts that no other rule claimed: "2.456/2.800" -> "... trên ..."."""
        return "trên", "ratio"

    def _times(self, m: re.Match[str], text: str) -> Reading:
        """"12 hộ x 500.000 đồng": an x before a number multiplies."""
        return "nhân", "symbol"

    def _day_word(self, m: re.Match[str], text: str) -> Reading:
        """"ngày 05 tháng 10": the day written in words around it still takes "mồng"."""
        word, number = m.group().split()
        return f"{word} {dates.read_day(int(number), after_mong=word.lower() != 'ngày')}", "date"

    def _per(self, m: re.Match[str], text: str) -> Reading:
        """"đồng/liều" -> "đồng một liều", "đồng/kg" -> "đồng một ki lô gam"."""
        unit = m.group("perunit")
        return ("một " + self.lex.units[unit] if unit else "một"), "per"

    def _word(self, m: re.Match[str], text: str) -> Reading | None:
        return self.words.read(m.group(), text, m.start(), m.end())

    def _dash(self, m: re.Match[str], text: str) -> Reading:
        """A spaced dash is a pause ("kinh tế - xã hội"); a joining hyphen is silent ("Covid-19")."""
        start, end = m.start(), m.end()
        spaced = (start > 0 and text[start - 1].isspace()) or (end < len(text) and text[end].isspace())
        level = _LEVEL_BEFORE.search(text, max(0, start - 10), start)
        after = _LEVEL_AFTER.match(text, end) if level else None
        if level and after:  # "BĐ2-BĐ3", "BĐ1-3": from one alarm level to another
            if after.group("level"):
                return "đến", "range"
            name = level.group("level")
            said = self.words.read(name, text, level.start(), level.start() + len(name))
            return f"đến {said[0] if said else name}", "range"
        if not spaced:
            return " ", "hyphen"
        amounts = self._amount_dash_before.search(text, max(0, start - 40), start)
        if amounts and text[end:end + 2].lstrip()[:1].isdigit():
            return "đến", "range"  # "800.000 đồng - 1.000.000 đồng": two amounts, each with its unit
        return ",", "pause"

    def _symbol(self, m: re.Match[str], text: str) -> Reading:
        char = m.group()
        if char == "/":
            start, end = m.start(), m.end()
            if not (start > 0 and text[start - 1].isalpha() and end < len(text) and text[end].isalpha()):
                return " ", "symbol"
            if self._amount_before.search(text, max(0, start - 12), start):
                return "một", "per"  # "25.000 đồng/giấy": a price is per one of anything
            return "hoặc", "slash-or"
        spoken = self.lex.symbols.get(char)
        if spoken:
            return spoken, "symbol"
        if char in _PAUSES:
            return _PAUSES[char], "pause"
        return ("" if char in _SILENT else " "), "symbol"


_LEADS = {"digit": r"(?=[0-9+\-−])", "letter": r"(?=[^\W\d_]|×)"}


def _assemble(alternatives: list[tuple[str, str, Handler, str]]) -> str:
    """One pattern of named alternatives, consecutive digit-led or letter-led ones behind one look-ahead."""
    parts: list[str] = []
    for lead, group in itertools.groupby(alternatives, key=lambda alternative: alternative[3]):
        named = [f"(?P<{name}>{regex})" for name, regex, _, _ in group]
        parts.extend([f"{_LEADS[lead]}(?:{'|'.join(named)})"] if lead in _LEADS else named)
    return "|".join(parts)


def _phone_groups(digits: str) -> list[str]:
    """A phone number written without usable groups, in the groups announcers say: 3-3-3, 4-3-3, 4-4-3."""
    sizes = {9: (3, 3, 3), 10: (4, 3, 3), 11: (4, 4, 3)}.get(len(digits), (len(digits),))
    groups, pos = [], 0
    for size in sizes:
        groups.append(digits[pos:pos + size])
        pos += size
    return groups


def _substitution(table: dict[str, str]) -> Callable[[str], str]:
    """Replace whole words by their regional form: linh -> lẻ, nghìn -> ngàn; '' drops the word."""
    regex = re.compile(rf"\b(?:{_words(list(table))})\b")
    return lambda spoken: regex.sub(lambda w: table[w.group()], spoken)


def _is_plain_word(key: str) -> bool:
    """Whether a lexicon key is one word the word rule finds whole; other keys go in the phrase pattern."""
    return re.fullmatch(r"[^\W\d_]+(?:['’&\-][^\W\d_]+)*", key) is not None


@lru_cache(maxsize=16)
def rules_for(lexicon: Lexicon) -> Rules:
    """The compiled rules of a lexicon, built once: compiling is the slow part."""
    return Rules(lexicon)
