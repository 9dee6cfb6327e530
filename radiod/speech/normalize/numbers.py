"""Numbers read the Northern broadcast way: cardinals, decimals, digit strings, ordinals, Roman numerals.

Every function returns Northern words (linh, nghìn, mồng); the regional table of the lexicon turns them into
the voice's own words afterwards, so the reading rules are written once.
"""

from __future__ import annotations

import re

DIGITS = ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")

MAX_CARDINAL_DIGITS = 15
"""Up to 999 nghìn tỷ; a longer run of digits is an identifier and is read digit by digit."""

_BILLION = 10**9
_ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
_ROMAN_SHAPE = re.compile(r"M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})")


def read_digits(digits: str) -> str:
    """One word per digit, as phone numbers and codes are read: "0912" -> "không chín một hai"."""
    return " ".join(DIGITS[ord(c) - 48] for c in digits if "0" <= c <= "9")


def _read_group(n: int, full: bool) -> list[str]:
    """Read 0..999. ``full`` says a higher group precedes, so "không trăm" and "linh" are spoken."""
    hundreds, rest = divmod(n, 100)
    tens, units = divmod(rest, 10)
    words: list[str] = []
    if hundreds or full:
        words += [DIGITS[hundreds], "trăm"]
    if tens == 0:
        if units:
            if words:
                words.append("linh")
            words.append(DIGITS[units])
    elif tens == 1:
        words.append("mười")
        if units:
            words.append("lăm" if units == 5 else DIGITS[units])
    else:
        words += [DIGITS[tens], "mươi"]
        if units:
            words.append({1: "mốt", 4: "tư", 5: "lăm"}.get(units, DIGITS[units]))
    return words


def _read_below_billion(n: int, full: bool) -> list[str]:
    """Read 0..999 999 999 as triệu/nghìn/units groups; a group of zeros is skipped, not read."""
    millions, rest = divmod(n, 1_000_000)
    thousands, units = divmod(rest, 1000)
    words: list[str] = []
    for group, name in ((millions, "triệu"), (thousands, "nghìn"), (units, "")):
        if group:
            words += _read_group(group, full or bool(words))
            if name:
                words.append(name)
    return words


def read_int(n: int) -> str:
    """A whole number in words: 21 -> "hai mươi mốt", 1005 -> "một nghìn không trăm linh năm"."""
    if n < 0:
        return "âm " + read_int(-n)
    if n == 0:
        return DIGITS[0]
    return " ".join(_read_int_words(n))


def _read_int_words(n: int) -> list[str]:
    if n < _BILLION:
        return _read_below_billion(n, False)
    billions, rest = divmod(n, _BILLION)
    words = [*_read_int_words(billions), "tỷ"]
    if rest:
        words += _read_below_billion(rest, True)
    return words


def read_fraction_digits(digits: str) -> str:
    """The part after the decimal comma: leading zeros each say "không", then the rest as a number.

    "03" -> "không ba", "12" -> "mười hai"; more than three digits are read one by one, as announcers do.
    """
    stripped = digits.lstrip("0")
    zeros = [DIGITS[0]] * (len(digits) - len(stripped))
    if not stripped:
        return " ".join(zeros)
    if len(stripped) > 3:
        return " ".join([*zeros, read_digits(stripped)])
    return " ".join([*zeros, read_int(int(stripped))])


def read_number(text: str) -> str:
    """A written number: "7.557", "2.087,72", "48,12", "-5", "03"; a dot groups thousands, a comma is decimal.

    A long run of digits, or one with a leading zero and three or more digits, is a code: read digit by digit.
    """
    negative = text[:1] in "-−"
    body = text[1:] if negative else text
    whole, _, fraction = body.partition(",")
    digits = whole.replace(".", "")
    if len(digits) > MAX_CARDINAL_DIGITS or (len(digits) >= 3 and digits[0] == "0" and "." not in whole):
        spoken = read_digits(digits)
    else:
        spoken = read_int(int(digits))
    if fraction:
        spoken += " phẩy " + read_fraction_digits(fraction)
    return "âm " + spoken if negative else spoken


def read_ordinal(n: int) -> str:
    """The number after "thứ": thứ nhất, thứ tư; otherwise the cardinal (thứ hai, thứ mười bốn)."""
    return {1: "nhất", 4: "tư"}.get(n) or read_int(n)


def roman_value(text: str) -> int | None:
    """The value of a well-formed Roman numeral (I..MMMCMXCIX), or None; "IIII" and "VX" are not numerals."""
    if not text or not _ROMAN_SHAPE.fullmatch(text):
        return None
    total = 0
    for i, ch in enumerate(text):
        value = _ROMAN[ch]
        if i + 1 < len(text) and _ROMAN[text[i + 1]] > value:
            total -= value
        else:
            total += value
    return total
