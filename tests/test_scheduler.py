"""The scheduler's decisions on a real store and fake hands: what it gives the playout, what it reports skipped.

Quiet hours (normal bulletins only, never an emergency or a priority one), the grace window, occurrences that
already played, and the job that hands a scheduled occurrence over ahead of its start.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from harness import wait_for

from radiod.clock import rfc3339
from radiod.config import QuietHours
from radiod.node.playout import PlayRequest
from radiod.node.scheduler import NOW, Scheduler, in_quiet_hours
from radiod.node.store import Store
from radiod.protocol.messages import Bulletin, Schedule

HCM = ZoneInfo("Asia/Ho_Chi_Minh")


def window(start_min: float, end_min: float) -> QuietHours:
    """Quiet hours from ``start_min`` to ``end_min`` minutes from now, in the node's time zone."""
    now = dt.datetime.now(HCM)
    return QuietHours(start=(now + dt.timedelta(minutes=start_min)).time(),
                      end=(now + dt.timedelta(minutes=end_min)).time())


def bulletin(id: str, priority: str = "normal", schedule: Schedule | None = None, status: str = "actual") -> Bulletin:  # noqa: A002
    now = time.time()
    return Bulletin(id=id, rev=1, iat=now, exp=now + 3600, targets=("n01",), priority=priority, status=status,
                    title=id, text="Xin chào.", schedule=schedule or Schedule(now=True))


def at(*seconds_from_now: float) -> Schedule:
    now = time.time()
    return Schedule(at=tuple(dt.datetime.fromtimestamp(now + s, dt.UTC).replace(microsecond=0)
                             for s in seconds_from_now))


class Rig:
    def __init__(self, store: Store, quiet: tuple[QuietHours, ...], prerender_s: float = 120) -> None:
        self.store = store
        self.submitted: list[PlayRequest] = []
        self.skipped: list[tuple[str, str, str]] = []
        self.scheduler = Scheduler(store, HCM, grace_s=600, prerender_s=prerender_s, quiet_hours=quiet,
                                   submit=self.submitted.append, skip=self.skip, parse=lambda raw: None)  # type: ignore[arg-type,return-value]

    def skip(self, b: Bulletin, occurrence: str, reason: str) -> None:
        self.skipped.append((b.id, occurrence, reason))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "radiod.db") as opened:
        yield opened


def test_quiet_hours_window_including_one_past_midnight() -> None:
    night = QuietHours(start=dt.time(22, 0), end=dt.time(5, 0))
    noon = QuietHours(start=dt.time(11, 30), end=dt.time(13, 0))

    def local(hour: int, minute: int) -> float:
        return dt.datetime(2026, 12, 6, hour, minute, tzinfo=HCM).timestamp()

    assert in_quiet_hours(local(23, 0), [night], HCM) and in_quiet_hours(local(4, 59), [night], HCM)
    assert not in_quiet_hours(local(5, 0), [night], HCM) and not in_quiet_hours(local(21, 59), [night], HCM)
    assert in_quiet_hours(local(12, 0), [night, noon], HCM) and not in_quiet_hours(local(13, 0), [noon], HCM)
    assert not in_quiet_hours(local(12, 0), [], HCM)


def test_quiet_hours_skip_a_normal_bulletin_but_never_a_priority_or_an_emergency(store: Store) -> None:
    rig = Rig(store, (window(-5, 5),))
    now = time.time()
    for b in (bulletin("normal"), bulletin("priority", "priority"), bulletin("emergency", "emergency")):
        rig.scheduler.schedule(b, stored_at=now)
    assert rig.skipped == [("normal", NOW, "quiet_hours")]
    assert [r.bulletin.id for r in rig.submitted] == ["priority", "emergency"]


def test_outside_quiet_hours_a_normal_bulletin_plays(store: Store) -> None:
    rig = Rig(store, (window(60, 120),))
    rig.scheduler.schedule(bulletin("normal"), stored_at=time.time())
    assert [(r.bulletin.id, r.occurrence, r.start_at) for r in rig.submitted] == [("normal", NOW, None)]
    assert rig.skipped == []


def test_a_scheduled_occurrence_inside_quiet_hours_is_skipped_when_its_job_fires(store: Store) -> None:
    rig = Rig(store, (window(-5, 5),), prerender_s=5)  # the job fires at once: the start is 2 s away
    rig.scheduler.start()
    try:
        normal, emergency = bulletin("normal", schedule=at(2)), bulletin("emergency", "emergency", schedule=at(2))
        rig.scheduler.schedule(normal, stored_at=time.time())
        rig.scheduler.schedule(emergency, stored_at=time.time())
        wait_for(lambda: rig.skipped and rig.submitted, 10, "both jobs to fire")
    finally:
        rig.scheduler.shutdown()
    key = rfc3339(normal.schedule.at[0].timestamp(), HCM, ms=False)  # type: ignore[union-attr]
    assert rig.skipped == [("normal", key, "quiet_hours")]
    (req,) = rig.submitted
    assert req.bulletin.id == "emergency" and req.start_at == emergency.schedule.at[0].timestamp()  # type: ignore[union-attr]


def test_a_test_bulletin_is_delivered_but_never_handed_over(store: Store) -> None:
    rig = Rig(store, ())
    rig.scheduler.schedule(bulletin("drill-check", "emergency", status="test"), stored_at=time.time())
    assert rig.skipped == [("drill-check", NOW, "test")] and rig.submitted == []


def test_what_already_played_is_not_handed_over_again_what_was_interrupted_is(store: Store) -> None:
    rig = Rig(store, ())
    played, preempted, never = (bulletin(n, schedule=at(-60)) for n in ("played", "preempted", "never"))
    key = rfc3339(played.schedule.at[0].timestamp(), HCM, ms=False)  # type: ignore[union-attr]
    store.mark_occurrence("played", 1, key, "finished", at=time.time())
    store.mark_occurrence("preempted", 1, key, "interrupted", detail="restart", at=time.time())
    for b in (played, preempted, never):
        rig.scheduler.schedule(b, stored_at=time.time() - 120)
    assert sorted(r.bulletin.id for r in rig.submitted) == ["never", "preempted"]
    assert all(r.occurrence == key and r.start_at is None for r in rig.submitted), "late within grace: play now"


def test_an_occurrence_missed_beyond_grace_is_reported_not_played(store: Store) -> None:
    rig = Rig(store, ())
    old = bulletin("old", schedule=at(-900, 600))
    rig.scheduler.schedule(old, stored_at=time.time() - 1000)
    missed = rfc3339(old.schedule.at[0].timestamp(), HCM, ms=False)  # type: ignore[union-attr]
    assert rig.skipped == [("old", missed, "missed")] and rig.submitted == []
    upcoming = rig.scheduler.next_play()
    assert upcoming is not None and upcoming[0] == "old"
    assert upcoming[1] == old.schedule.at[1].timestamp()  # type: ignore[union-attr]
