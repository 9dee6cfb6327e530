"""When schedules play: the instants a technician would read off the wall clock in the commune."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radiod.protocol.messages import Daily, Schedule
from radiod.protocol.occurrences import next_occurrence, occurrences

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
BERLIN = ZoneInfo("Europe/Berlin")


def local(tz: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=tz)  # type: ignore[misc]


def walls(instants: list[datetime]) -> list[str]:
    """Instants as the node's wall clock shows them, with the offset."""
    return [t.isoformat(timespec="minutes") for t in instants]


def test_daily_across_midnight_between_inclusive_dates() -> None:
    daily = Daily(times=(time(0, 1), time(23, 59)), from_date=date(2026, 11, 23), until_date=date(2026, 11, 25))
    got = list(occurrences(Schedule(daily=daily), HCM, local(HCM, 2026, 11, 1), local(HCM, 2026, 12, 31)))
    assert walls(got) == [
        "2026-11-23T00:01+07:00",
        "2026-11-23T23:59+07:00",
        "2026-11-24T00:01+07:00",
        "2026-11-24T23:59+07:00",
        "2026-11-25T00:01+07:00",
        "2026-11-25T23:59+07:00",
    ]
    assert got[1].astimezone(UTC) == datetime(2026, 11, 23, 16, 59, tzinfo=UTC)


def test_the_local_date_decides_even_when_the_window_is_given_in_utc() -> None:
    """23:59 on Monday in Vietnam is 16:59 UTC Monday; 00:01 on Tuesday is still Monday in UTC."""
    daily = Daily(times=(time(0, 1), time(23, 59)), weekdays=(1,))  # Mondays only
    start, end = datetime(2026, 11, 22, 0, 0, tzinfo=UTC), datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
    got = list(occurrences(Schedule(daily=daily), HCM, start, end))
    assert walls(got) == ["2026-11-23T00:01+07:00", "2026-11-23T23:59+07:00"]
    assert all(t.isoweekday() == 1 for t in got)


def test_weekdays_are_iso() -> None:
    daily = Daily(times=(time(6, 30),), weekdays=(6, 7))
    got = list(occurrences(Schedule(daily=daily), HCM, local(HCM, 2026, 11, 23), local(HCM, 2026, 12, 7)))
    assert walls(got) == [
        "2026-11-28T06:30+07:00",
        "2026-11-29T06:30+07:00",
        "2026-12-05T06:30+07:00",
        "2026-12-06T06:30+07:00",
    ]


def test_the_window_includes_its_start_and_excludes_its_end() -> None:
    daily = Schedule(daily=Daily(times=(time(6, 30), time(17, 0))))
    got = list(occurrences(daily, HCM, local(HCM, 2026, 11, 23, 6, 30), local(HCM, 2026, 11, 24, 6, 30)))
    assert walls(got) == ["2026-11-23T06:30+07:00", "2026-11-23T17:00+07:00"]


def test_nothing_at_or_after_exp() -> None:
    schedule = Schedule(daily=Daily(times=(time(6, 30), time(17, 0))))
    exp = local(HCM, 2026, 11, 24, 17, 0)  # the caller passes end = exp
    got = list(occurrences(schedule, HCM, local(HCM, 2026, 11, 23, 12, 0), exp))
    assert walls(got) == ["2026-11-23T17:00+07:00", "2026-11-24T06:30+07:00"]


def test_at_times_in_the_window_in_the_node_zone() -> None:
    at = (
        datetime(2026, 11, 22, 23, 30, tzinfo=UTC),  # 06:30 on the 23rd in Vietnam
        datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
        datetime(2026, 11, 24, 10, 0, tzinfo=UTC),
    )
    schedule = Schedule(at=at)
    got = list(occurrences(schedule, HCM, datetime(2026, 11, 22, 23, 30, tzinfo=UTC), local(HCM, 2026, 11, 24, 17)))
    assert walls(got) == ["2026-11-23T06:30+07:00", "2026-11-23T17:00+07:00"]
    assert got[0] == at[0]


def test_next_occurrence() -> None:
    schedule = Schedule(at=(datetime(2026, 11, 23, 10, 0, tzinfo=UTC),))
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert next_occurrence(schedule, HCM, start, start + timedelta(days=1)) == datetime(2026, 11, 23, 10, tzinfo=UTC)
    assert next_occurrence(schedule, HCM, start + timedelta(hours=2), start + timedelta(days=1)) is None
    daily = Schedule(daily=Daily(times=(time(6, 30),), until_date=date(2026, 11, 23)))
    assert next_occurrence(daily, HCM, start, start + timedelta(days=30)) is None  # after until


def test_a_now_schedule_and_a_naive_window_are_programming_errors() -> None:
    start = datetime(2026, 11, 23, tzinfo=UTC)
    with pytest.raises(ValueError, match="'now' schedule"):
        list(occurrences(Schedule(now=True), HCM, start, start + timedelta(days=1)))
    with pytest.raises(ValueError, match="aware"):
        list(occurrences(Schedule(at=(start,)), HCM, datetime(2026, 11, 23), start))


def test_berlin_keeps_wall_clock_times_across_daylight_saving() -> None:
    schedule = Schedule(daily=Daily(times=(time(6, 30),)))
    got = list(occurrences(schedule, BERLIN, local(BERLIN, 2026, 3, 28), local(BERLIN, 2026, 3, 31)))
    assert walls(got) == ["2026-03-28T06:30+01:00", "2026-03-29T06:30+02:00", "2026-03-30T06:30+02:00"]


def test_berlin_a_time_skipped_by_spring_forward_plays_an_hour_later_once() -> None:
    """On 2026-03-29 clocks jump from 02:00 to 03:00: 02:30 does not exist and is played at 03:30."""
    start, end = local(BERLIN, 2026, 3, 29), local(BERLIN, 2026, 3, 30)
    schedule = Schedule(daily=Daily(times=(time(2, 30), time(3, 15))))
    assert walls(list(occurrences(schedule, BERLIN, start, end))) == [
        "2026-03-29T03:15+02:00",
        "2026-03-29T03:30+02:00",
    ]
    schedule = Schedule(daily=Daily(times=(time(2, 30), time(3, 30))))
    assert walls(list(occurrences(schedule, BERLIN, start, end))) == ["2026-03-29T03:30+02:00"]


def test_berlin_a_time_repeated_by_fall_back_plays_once_the_first_time() -> None:
    """On 2026-10-25 clocks go back from 03:00 to 02:00: 02:30 happens twice, it plays at the first."""
    schedule = Schedule(daily=Daily(times=(time(2, 30),)))
    got = list(occurrences(schedule, BERLIN, local(BERLIN, 2026, 10, 25), local(BERLIN, 2026, 10, 26)))
    assert walls(got) == ["2026-10-25T02:30+02:00"]
    assert got[0].astimezone(UTC) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    # a window starting between the two 02:30s does not see the first one again
    second = datetime(2026, 10, 25, 1, 0, tzinfo=UTC)  # 02:00 CET, the repeated hour
    assert list(occurrences(schedule, BERLIN, second.astimezone(BERLIN), local(BERLIN, 2026, 10, 26))) == []


@settings(max_examples=300, deadline=None)
@given(
    times=st.sets(st.times().map(lambda t: t.replace(second=0, microsecond=0)), min_size=1, max_size=4),
    weekdays=st.sets(st.integers(1, 7), min_size=1),
    from_offset=st.none() | st.integers(-10, 40),
    length=st.integers(0, 30),
    start=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1)),
    span_h=st.integers(0, 24 * 40),
    zone=st.sampled_from([HCM, BERLIN]),
)
def test_daily_occurrences_are_what_the_schedule_says(
    times: set[time],
    weekdays: set[int],
    from_offset: int | None,
    length: int,
    start: datetime,
    span_h: int,
    zone: ZoneInfo,
) -> None:
    start = start.replace(tzinfo=UTC)
    end = start + timedelta(hours=span_h)
    from_date = None if from_offset is None else start.date() + timedelta(days=from_offset)
    until_date = None if from_date is None else from_date + timedelta(days=length)
    daily = Daily(
        times=tuple(sorted(times)), weekdays=tuple(sorted(weekdays)), from_date=from_date, until_date=until_date
    )
    got = list(occurrences(Schedule(daily=daily), zone, start, end))
    assert all(start <= t < end for t in got)
    assert got == sorted(set(got))
    for t in got:
        wall = t.astimezone(zone)
        assert wall.isoweekday() in weekdays
        assert from_date is None or from_date <= wall.date() <= until_date  # type: ignore[operator]
        if zone is HCM:  # no daylight saving: every instant is a listed wall-clock time
            assert wall.time() in times
    if zone is HCM:  # and every listed time in the window is there
        expected = {
            datetime.combine(date.fromordinal(d), t, tzinfo=HCM)
            for d in range(start.astimezone(HCM).date().toordinal(), end.astimezone(HCM).date().toordinal() + 1)
            for t in times
        }
        expected = {
            t
            for t in expected
            if start <= t < end
            and t.isoweekday() in weekdays
            and (from_date is None or from_date <= t.date() <= until_date)  # type: ignore[operator]
        }
        assert set(got) == expected
