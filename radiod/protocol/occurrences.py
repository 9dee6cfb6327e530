"""When a schedule plays: the start instants of its occurrences in a time window, in the node's time zone.

Pure and lazy, so the scheduler can ask "what is next after now, before exp" as often as it likes. Daily times
are wall-clock times in the node's ``timezone``; nodes in earshot of each other share that zone, so they start
the same occurrence at the same instant. Vietnam has no daylight saving time, but the rules for zones that do
are fixed here so that a node configured elsewhere behaves predictably:

- a local time that does not exist (skipped by a spring-forward) plays at the same offset from the skipped
  hour's start, i.e. 02:30 becomes 03:30 on the day clocks jump from 02:00 to 03:00;
- a local time that happens twice (fall-back) plays once, the first time.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from radiod.protocol.messages import Daily, Schedule


def occurrences(schedule: Schedule, tz: ZoneInfo, start: datetime, end: datetime) -> Iterator[datetime]:
    """Every start instant of ``schedule`` in ``[start, end)``, in order, as aware datetimes in ``tz``.

    Pass ``end`` no later than the bulletin's ``exp``: nothing plays at or after it. A ``now`` schedule has no
    instants of its own (it plays once, at arrival), so asking for them is a programming error.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be aware datetimes")
    if schedule.now:
        raise ValueError("a 'now' schedule plays once at arrival; it has no occurrences to enumerate")
    # Compare in UTC: aware datetimes sharing a tzinfo compare by wall clock, ignoring fold, which is wrong
    # in the hour a fall-back repeats.
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    instants = _daily(schedule.daily, tz, start, end) if schedule.daily is not None else iter(schedule.at)
    yield from (t.astimezone(tz) for t in instants if start <= t < end)


def next_occurrence(schedule: Schedule, tz: ZoneInfo, start: datetime, end: datetime) -> datetime | None:
    """The first occurrence at or after ``start`` and before ``end``, or None."""
    return next(occurrences(schedule, tz, start, end), None)


def _daily(daily: Daily, tz: ZoneInfo, start: datetime, end: datetime) -> Iterator[datetime]:
    """The daily instants (UTC) on the local dates from ``start`` to ``end``; the caller trims to the window."""
    first = start.astimezone(tz).date()
    last = end.astimezone(tz).date()
    if daily.from_date is not None:
        first = max(first, daily.from_date)
    if daily.until_date is not None:
        last = min(last, daily.until_date)
    # Ordinals rather than date + timedelta: stepping past date.max would raise.
    for ordinal in range(first.toordinal(), last.toordinal() + 1):
        day = date.fromordinal(ordinal)
        if day.isoweekday() not in daily.weekdays:
            continue
        yield from _instants(daily, day, tz)


def _instants(daily: Daily, day: date, tz: ZoneInfo) -> list[datetime]:
    """The day's times as UTC instants: fold=0 picks the first of a repeated time and, for a skipped one, the
    offset in force before the jump (so 02:30 is read as 01:30 + 1 h = 03:30 after the jump). Sorting and
    de-duplicating afterwards keeps the order right when a skipped time lands on or after a later listed one.
    """
    return sorted({datetime.combine(day, t, tzinfo=tz).astimezone(UTC) for t in daily.times})
