"""Dates and clock times, as a Northern announcer reads them.

"ngày 03/10/2026" -> "ngày mồng ba tháng mười năm hai nghìn không trăm hai mươi sáu": days 1-10 take "mồng",
month 4 is "tư", the year is a full number. "6h30" -> "sáu giờ ba mươi phút"; whole hours drop the minutes.
"""

from __future__ import annotations

from radiod.speech.normalize.numbers import read_int

_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def is_date(day: int, month: int) -> bool:
    """Whether day/month can be a calendar date (29/2 is allowed: the year may be a leap year)."""
    return 1 <= month <= 12 and 1 <= day <= _DAYS_IN_MONTH[month - 1]


def read_day(day: int, after_mong: bool = False) -> str:
    """The day of the month: 1-10 take "mồng" unless the text already wrote "mồng"/"mùng"."""
    return read_int(day) if day > 10 or after_mong else "mồng " + read_int(day)


def read_month(month: int) -> str:
    """The month's name: tháng tư for April, the cardinal otherwise (tháng một, tháng mười hai)."""
    return "tư" if month == 4 else read_int(month)


def read_date(day: int, month: int, year: int | None, *, say_ngay: bool, after_mong: bool = False) -> str:
    """A full date; ``say_ngay`` adds "ngày" when the text did not write it before the digits."""
    words = []
    if say_ngay:
        words.append("ngày")
    words += [read_day(day, after_mong), "tháng", read_month(month)]
    if year is not None:
        words += ["năm", read_int(year)]
    return " ".join(words)


def read_month_year(month: int, year: int, *, say_thang: bool) -> str:
    """"10/2026" -> "tháng mười năm hai nghìn không trăm hai mươi sáu"."""
    head = f"tháng {read_month(month)}" if say_thang else read_month(month)
    return f"{head} năm {read_int(year)}"


def is_time(hour: int, minute: int) -> bool:
    """Whether hour:minute is a clock time (24:00 allowed, as "24/24h" and midnight deadlines use it)."""
    return 0 <= hour <= 24 and 0 <= minute <= 59


def read_time(hour: int, minute: int | None, second: int | None = None) -> str:
    """"6h30" -> "sáu giờ ba mươi phút"; "7h00" -> "bảy giờ"; minutes are never read with "linh"."""
    words = [read_int(hour), "giờ"]
    if minute:
        words += [read_int(minute), "phút"]
    if second:
        words += [read_int(second), "giây"]
    return " ".join(words)
