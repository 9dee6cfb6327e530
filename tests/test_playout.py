"""The playout's rules (Circular 39/2020, docs/protocol.md) on small fakes: a station that "plays" a programme by
waiting its length, a renderer that makes such programmes, a reporter that writes down what a hub would hear.

No broker, no sound card, no speech: what is tested is the queue and the player thread, which decide what plays
when, what gives way and what plays again. The real-part tests (tests/test_daemon.py) show the same rules end to
end through MQTT.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, cast

import pytest
from harness import wait_for

from radiod.audio.render import Programme
from radiod.audio.station import Timeline
from radiod.node.playout import Playout, PlayRequest, occurrence_state
from radiod.node.programme import BulletinProgramme
from radiod.protocol.messages import Bulletin, Schedule

WAIT_S = 10.0


@dataclass
class Clip:
    """A stand-in for a rendered programme: only its length matters to the fake station; it has all it needs
    (:meth:`Programme.ready`) and plays again from the start (:meth:`Programme.starting_at`)."""

    seconds: float
    start_s = 0.0

    def ready(self, stop: threading.Event, until: float) -> None:
        return None

    def starting_at(self, seconds: float) -> Clip:
        return self


class FakeStation:
    """Plays a :class:`Clip` by waiting its length (stopping early when ``stop`` is set), as the real station
    waits for ``start_at``, calls ``on_started`` when audio begins, and reports a :class:`Timeline`."""

    warmup_s = 0.0

    def __init__(self) -> None:
        self.playing: str | None = None

    def play(self, programme: Programme, name: str, *, start_at: float | None, stop: threading.Event,
             on_started: Callable[[float, float], None]) -> Timeline:
        if start_at is not None and stop.wait(max(0.0, start_at - time.time())):
            now = time.time()
            return Timeline(now, now, now, now, completed=False, path=None)
        amp_on = time.time()
        self.playing = name
        on_started(amp_on, amp_on)
        stopped = stop.wait(cast(Clip, programme).seconds)
        self.playing = None
        end = time.time()
        return Timeline(amp_on, amp_on, end, end, completed=not stopped, path=None)


@dataclass(frozen=True)
class Report:
    kind: str
    bulletin: str
    occurrence: str
    reason: str = ""
    warnings: tuple[str, ...] = ()


class FakeReporter:
    """What the playout reports, in order; ``claim`` keeps the store's exactly-once rule in a dict."""

    def __init__(self) -> None:
        self.reports: list[Report] = []
        self.states: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def _add(self, req: PlayRequest, kind: str, reason: str = "", warnings: tuple[str, ...] = ()) -> None:
        with self._lock:
            self.reports.append(Report(kind, req.bulletin.id, req.occurrence, reason, warnings))
            if kind != "started":
                self.states[(req.bulletin.id, req.occurrence)] = occurrence_state(kind, reason)

    def claim(self, req: PlayRequest) -> bool:
        with self._lock:
            key = (req.bulletin.id, req.occurrence)
            if self.states.get(key, "interrupted") != "interrupted":
                return False
            self.states[key] = "started"
            return True

    def started(self, req: PlayRequest, amp_on: float, audio_start: float) -> None:
        self._add(req, "started", warnings=tuple(req.warnings))

    def finished(self, req: PlayRequest, timeline: Timeline) -> None:
        self._add(req, "finished", warnings=tuple(req.warnings))

    def interrupted(self, req: PlayRequest, reason: str, timeline: Timeline | None) -> None:
        self._add(req, "interrupted", reason)

    def failed(self, req: PlayRequest, reason: str, message: str) -> None:
        self._add(req, "failed", reason)

    def skipped(self, req: PlayRequest, reason: str) -> None:
        self._add(req, "skipped", reason)

    def seen(self, kind: str | None = None, bulletin: str | None = None) -> list[Report]:
        with self._lock:
            return [r for r in self.reports if (kind is None or r.kind == kind)
                    and (bulletin is None or r.bulletin == bulletin)]

    def wait(self, kind: str, bulletin: str, count: int = 1) -> list[Report]:
        return wait_for(lambda: len(self.seen(kind, bulletin)) >= count and self.seen(kind, bulletin), WAIT_S,
                        f"{count} {kind} of {bulletin}")

    def story(self) -> list[tuple[str, str]]:
        """(kind, bulletin) in order, with the reason of an interruption or a skip."""
        return [(f"{r.kind}:{r.reason}" if r.reason else r.kind, r.bulletin) for r in self.seen()]


def bulletin(id: str, priority: str = "normal", *, exp_in: float = 600) -> Bulletin:  # noqa: A002
    now = time.time()
    return Bulletin(id=id, rev=1, iat=now, exp=now + exp_in, targets=("n01",), priority=priority, status="actual",
                    title=id, text="Xin chào.", schedule=Schedule(now=True))


class Rig:
    """A playout on the fakes; ``lengths`` gives each bulletin's programme length in seconds (default 0.2)."""

    def __init__(self, lengths: dict[str, float], warnings: dict[str, list[str]] | None = None,
                 late_limit_s: float = 600) -> None:
        self.station = FakeStation()
        self.reporter = FakeReporter()
        self.lengths = lengths
        self.warnings = warnings or {}
        self.rendering = threading.Event()
        self.rendering.set()  # clear it to hold every render until it is set again
        self.playout = Playout(self.station, self.render, self.reporter, late_limit_s=late_limit_s)

    def render(self, b: Bulletin) -> BulletinProgramme:
        self.rendering.wait(WAIT_S)
        return BulletinProgramme(cast(Programme, Clip(self.lengths.get(b.id, 0.2))), list(self.warnings.get(b.id, [])))

    def submit(self, b: Bulletin, occurrence: str = "now", start_at: float | None = None) -> PlayRequest:
        req = PlayRequest(b, occurrence, start_at)
        self.playout.submit(req)
        return req

    def playing(self, bulletin_id: str) -> None:
        wait_for(lambda: self.station.playing == f"{bulletin_id}-r1", WAIT_S, f"{bulletin_id} to be playing")

    def idle(self) -> None:
        wait_for(lambda: not self.playout.busy() and not self.playout.snapshot()[1], WAIT_S, "the playout idle")


@pytest.fixture
def rig_of() -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(lengths: dict[str, float] | None = None, **kwargs: Any) -> Rig:
        rig = Rig(lengths or {}, **kwargs)
        rig.playout.start()
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.rendering.set()
        rig.playout.close()


def test_an_emergency_interrupts_a_normal_bulletin_which_plays_again_after_it(rig_of: Callable[..., Rig]) -> None:
    rig = rig_of({"normal": 1.0, "emergency": 0.2})
    rig.submit(bulletin("normal"))
    rig.playing("normal")
    rig.submit(bulletin("emergency", "emergency"))
    rig.reporter.wait("finished", "normal")
    assert rig.reporter.story() == [
        ("started", "normal"), ("interrupted:preempted", "normal"),
        ("started", "emergency"), ("finished", "emergency"),
        ("started", "normal"), ("finished", "normal"),
    ]


def test_an_emergency_interrupts_a_priority_bulletin_too(rig_of: Callable[..., Rig]) -> None:
    rig = rig_of({"priority": 1.0})
    rig.submit(bulletin("priority", "priority"))
    rig.playing("priority")
    rig.submit(bulletin("emergency", "emergency"))
    rig.reporter.wait("finished", "priority")
    assert rig.reporter.story()[:3] == [
        ("started", "priority"), ("interrupted:preempted", "priority"), ("started", "emergency"),
    ]


def test_an_emergency_does_not_interrupt_an_emergency(rig_of: Callable[..., Rig]) -> None:
    rig = rig_of({"first": 0.6})
    rig.submit(bulletin("first", "emergency"))
    rig.playing("first")
    rig.submit(bulletin("second", "emergency"))
    rig.reporter.wait("finished", "second")
    assert rig.reporter.story() == [
        ("started", "first"), ("finished", "first"), ("started", "second"), ("finished", "second"),
    ]


def test_a_priority_bulletin_goes_ahead_of_normal_ones_but_interrupts_nothing(rig_of: Callable[..., Rig]) -> None:
    rig = rig_of({"playing": 0.8})
    rig.submit(bulletin("playing"))
    rig.playing("playing")
    rig.submit(bulletin("normal"))
    rig.submit(bulletin("priority", "priority"))
    rig.reporter.wait("finished", "normal")
    assert rig.reporter.story() == [
        ("started", "playing"), ("finished", "playing"),
        ("started", "priority"), ("finished", "priority"),
        ("started", "normal"), ("finished", "normal"),
    ]


def test_a_normal_bulletin_waits_for_the_one_playing(rig_of: Callable[..., Rig]) -> None:
    rig = rig_of({"first": 0.6})
    rig.submit(bulletin("first"))
    rig.playing("first")
    rig.submit(bulletin("second"))
    assert rig.playout.snapshot()[1][0].bulletin.id == "second"
    rig.reporter.wait("finished", "second")
    assert rig.reporter.story() == [
        ("started", "first"), ("finished", "first"), ("started", "second"), ("finished", "second"),
    ]


def test_equal_priorities_play_in_time_order(rig_of: Callable[..., Rig]) -> None:
    rig = rig_of({"busy": 0.8})
    rig.submit(bulletin("busy"))
    rig.playing("busy")
    soon = time.time() + 0.2  # both are due while "busy" still plays; the earlier start goes first
    rig.submit(bulletin("later"), "t2", start_at=soon + 0.1)
    rig.submit(bulletin("earlier"), "t1", start_at=soon)
    rig.submit(bulletin("urgent-later", "priority"), "t4", start_at=soon + 0.3)
    rig.submit(bulletin("urgent-earlier", "priority"), "t3", start_at=soon + 0.2)
    assert [q.bulletin.id for q in rig.playout.snapshot()[1]] == ["urgent-earlier", "urgent-later", "earlier", "later"]
    rig.reporter.wait("finished", "later")
    assert [b for kind, b in rig.reporter.story() if kind == "started"] == [
        "busy", "urgent-earlier", "urgent-later", "earlier", "later",
    ]


def test_the_stop_command_ends_the_play_for_good_and_the_queue_goes_on(rig_of: Callable[..., Rig]) -> None:
    rig = rig_of({"long": 5.0})
    assert not rig.playout.stop_current(), "nothing was playing"
    rig.submit(bulletin("long"))
    rig.playing("long")
    rig.submit(bulletin("next"))
    assert rig.playout.stop_current()
    rig.reporter.wait("finished", "next")
    rig.idle()
    assert rig.reporter.story() == [
        ("started", "long"), ("interrupted:stopped", "long"), ("started", "next"), ("finished", "next"),
    ]
    assert rig.reporter.states[("long", "now")] == "skipped", "a stopped occurrence never plays again"
    rig.submit(bulletin("long"))  # asked again (a scheduler rebuild): the claim refuses it
    rig.idle()
    assert len(rig.reporter.seen("started", "long")) == 1


def test_a_cancel_drops_what_waits_and_stops_what_plays(rig_of: Callable[..., Rig]) -> None:
    rig = rig_of({"b1": 5.0})
    rig.submit(bulletin("b1"))
    rig.playing("b1")
    rig.submit(bulletin("b1"), "t1", start_at=time.time() + 0.1)
    rig.playout.cancel("b1", reason="superseded")
    rig.idle()
    assert rig.reporter.story() == [("started", "b1"), ("interrupted:superseded", "b1")]


def test_an_occurrence_already_played_is_not_played_again(rig_of: Callable[..., Rig]) -> None:
    rig = rig_of()
    rig.submit(bulletin("b1"), "t1")
    rig.reporter.wait("finished", "b1")
    rig.submit(bulletin("b1"), "t1")  # a rebuild or a clock jump asks for it again
    rig.idle()
    assert len(rig.reporter.seen("started", "b1")) == 1


def test_a_request_already_queued_or_playing_is_not_queued_twice(rig_of: Callable[..., Rig]) -> None:
    rig = rig_of({"b1": 0.6})
    rig.submit(bulletin("b1"))
    rig.playing("b1")
    rig.submit(bulletin("b1"))
    rig.submit(bulletin("b2"))
    rig.submit(bulletin("b2"))
    assert [q.bulletin.id for q in rig.playout.snapshot()[1]] == ["b2"]


def test_expired_and_missed_requests_are_skipped(rig_of: Callable[..., Rig]) -> None:
    rig = rig_of(late_limit_s=60)
    rig.submit(bulletin("expired", exp_in=-1))  # expired while it waited
    rig.submit(bulletin("missed"), "t0", start_at=time.time() - 120)
    rig.idle()
    assert sorted(rig.reporter.story()) == [("skipped:expired", "expired"), ("skipped:missed", "missed")]


def test_an_emergency_pre_empts_a_bulletin_still_being_rendered(rig_of: Callable[..., Rig]) -> None:
    rig = rig_of({"normal": 0.2, "emergency": 0.2})
    rig.rendering.clear()  # the normal bulletin's speech is still being synthesized
    rig.submit(bulletin("normal"))
    wait_for(rig.playout.busy, WAIT_S, "the player to take the normal bulletin")
    rig.submit(bulletin("emergency", "emergency"))
    rig.rendering.set()
    rig.reporter.wait("finished", "normal")
    assert rig.reporter.story() == [
        ("interrupted:preempted", "normal"),
        ("started", "emergency"), ("finished", "emergency"),
        ("started", "normal"), ("finished", "normal"),
    ]


def test_a_voice_warning_goes_with_its_own_bulletin(rig_of: Callable[..., Rig]) -> None:
    fallback = "voice vi-neural could not read it (too slow): read with vi"
    rig = rig_of({"a": 0.3, "b": 0.3}, warnings={"a": [fallback]})
    rig.submit(bulletin("a"))
    rig.submit(bulletin("b"))  # rendered beside "a" on the second render worker
    rig.reporter.wait("finished", "b")
    started = {r.bulletin: r.warnings for r in rig.reporter.seen("started")}
    assert started == {"a": (fallback,), "b": ()}


def test_a_warning_added_while_it_plays_reaches_the_end_of_that_play(rig_of: Callable[..., Rig]) -> None:
    """A streamed programme whose voice falls back mid-stream adds to its own list: the play's end sees it."""
    late = "voice vi-neural could not keep up: read with vi"
    rig = rig_of({"a": 0.5})
    rig.submit(bulletin("a"))
    rig.playing("a")
    current, _ = rig.playout.snapshot()
    assert current is not None and current.programme is not None
    current.programme.result().warnings.append(late)  # as the Speaker's on_fallback does, mid-stream
    rig.reporter.wait("finished", "a")
    assert [(r.kind, r.warnings) for r in rig.reporter.seen()] == [("started", ()), ("finished", (late,))]


def test_a_request_has_no_warnings_before_its_programme_is_made() -> None:
    req = PlayRequest(bulletin("a"), "now", None)
    assert req.warnings == []
    future: Future[BulletinProgramme] = Future()
    req.programme = future
    assert req.warnings == []
    future.set_exception(RuntimeError("synthesis failed"))
    assert req.warnings == []


def test_outcomes_map_to_occurrence_states_in_one_place() -> None:
    assert occurrence_state("started") == "started"
    assert occurrence_state("finished") == "finished"
    assert occurrence_state("failed", "audio") == "failed"
    assert occurrence_state("skipped", "quiet_hours") == "skipped"
    assert occurrence_state("interrupted", "preempted") == "interrupted"  # plays again after the emergency
    assert occurrence_state("interrupted", "restart") == "interrupted"  # replays within grace after a restart
    assert occurrence_state("interrupted", "shutdown") == "interrupted"  # likewise after systemctl restart
    for reason in ("stopped", "cancelled", "superseded"):
        assert occurrence_state("interrupted", reason) == "skipped", reason
