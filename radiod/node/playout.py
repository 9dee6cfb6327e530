"""One player and a queue ordered by priority, then time: what plays next, and what gives way.

Circular 39/2020: an emergency plays at once and interrupts anything lower (which plays again after it, if
still valid); a priority bulletin goes ahead of normal ones but interrupts nothing; equal priorities play in
time order. Requests arrive from the scheduler (ahead of their start, so the programme is rendered before the
instant it must play; quiet hours are the scheduler's to apply). Rendering runs on a small pool beside the
player, so an emergency is synthesized while the bulletin it will interrupt is still playing.

Exactly once: an occurrence plays only after :meth:`Reporter.claim` recorded it as started in the store, one
atomic step, so a second request for it (a rebuild, a clock jump racing the scheduler) finds it taken.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from radiod.audio.render import Programme
from radiod.audio.station import Timeline
from radiod.errors import AudioOutputError, MediaError, OutputNotReady, RadiodError, SynthesisError, VoiceError
from radiod.node.programme import BulletinProgramme
from radiod.protocol.enums import Priority
from radiod.protocol.messages import Bulletin

log = logging.getLogger(__name__)

RANK = {p: p.rank for p in Priority}
PLAYER_LEAD_S = 0.5
AUDIO_TRIES = 3
AUDIO_RETRY_S = 2.0
"""A USB sound card that vanished often comes back within seconds (a loose plug, a brown-out)."""
READY_WAIT_S = 30.0
"""How long past its start a play may wait for what its programme still needs (a recording still being fetched:
:meth:`Programme.ready`) before it is skipped; an emergency or a stop ends the wait at once."""
REPLAYED_AFTER = frozenset({"preempted", "restart", "shutdown"})
"""Interruptions after which the occurrence may play again: an emergency went first, or the daemon died or was
stopped (``systemctl restart``, a reboot: it plays after the restart if still within grace). Cancelled,
superseded or stopped by a command, it is over."""


def occurrence_state(outcome: str, reason: str | None = None) -> str:
    """The store's state for what happened to an occurrence (an event type and its reason): the one place that
    says which outcomes let it play again. Every outcome is its own state, but an interruption that ends the
    occurrence for good is recorded as skipped, so that nothing plays it again."""
    if outcome == "interrupted" and reason not in REPLAYED_AFTER:
        return "skipped"
    return outcome


@dataclass
class PlayRequest:
    """One occurrence of a bulletin to play.

    ``occurrence`` is the store's key for it (the scheduled instant in RFC 3339, or ``now``); ``start_at`` is
    the wall-clock instant of the first sample, or None for as soon as possible.
    """

    bulletin: Bulletin
    occurrence: str
    start_at: float | None
    enqueued: float = field(default_factory=time.time)
    programme: Future[BulletinProgramme] | None = None
    resume_s: float = 0.0
    """Where in its programme this play starts, in seconds: past 0 for a recording pre-empted by an emergency,
    which goes on from where it stopped (:meth:`Programme.starting_at`; speech plays again from the start)."""
    ends_at: float | None = None
    """A relay's end (wall clock), fixed when the occurrence first starts; kept when it is queued again after an
    emergency, so the relay resumes until its original end."""
    warned: int = 0
    """How many of :attr:`warnings` the reporter has already sent (a streamed programme adds some mid-play)."""

    @property
    def warnings(self) -> list[str]:
        """The warnings of this play's programme so far (a streamed one may add some while it plays)."""
        future = self.programme
        if future is None or not future.done() or future.cancelled() or future.exception() is not None:
            return []
        return list(future.result().warnings)

    @property
    def rank(self) -> int:
        return RANK[self.bulletin.priority]

    def sort_key(self) -> tuple[int, float]:
        return (self.rank, self.start_at if self.start_at is not None else self.enqueued)

    def same_occurrence(self, other: PlayRequest) -> bool:
        return (self.bulletin.id, self.occurrence) == (other.bulletin.id, other.occurrence)


class Reporter(Protocol):
    """What the player tells the rest of the node; the daemon turns it into store records and events."""

    def claim(self, req: PlayRequest) -> bool:
        """Record the occurrence as started unless it already played; False: do not play it."""
        ...

    def started(self, req: PlayRequest, amp_on: float, audio_start: float) -> None: ...
    def finished(self, req: PlayRequest, timeline: Timeline) -> None: ...
    def interrupted(self, req: PlayRequest, reason: str, timeline: Timeline | None) -> None: ...
    def failed(self, req: PlayRequest, reason: str, message: str) -> None: ...
    def skipped(self, req: PlayRequest, reason: str) -> None: ...

    def record(self, req: PlayRequest, outcome: str, reason: str = "") -> None:
        """Record a state without an event: a relay starting again after its signal returned (already claimed),
        or ending at its end time while silent."""
        ...


class Player(Protocol):
    """The station as the playout sees it."""

    warmup_s: float

    def play(self, programme: Programme, name: str, *, start_at: float | None, stop: threading.Event,
             on_started: Callable[[float, float], None]) -> Timeline: ...


class RelayPlayer(Protocol):
    """Plays a relay occurrence (:mod:`radiod.node.relay`)."""

    def play(self, req: PlayRequest, made: BulletinProgramme, stop: threading.Event) -> tuple[bool, Timeline | None]:
        """Play ``req``'s relay to its end, reporting as it goes; (True, the last play's timeline or None) when
        ``stop`` ended it, for the playout to report why."""
        ...


@dataclass
class _Current:
    req: PlayRequest
    stop: threading.Event = field(default_factory=threading.Event)
    reason: str | None = None  # why it was stopped: preempted, cancelled, stopped


@dataclass
class _Job:
    """Work that needs the loudspeakers to itself (the technician's test), run on the player thread between
    plays so it can never overlap a bulletin; ``stop`` is set by an emergency, a stop command or shutdown."""

    name: str
    run: Callable[[threading.Event], None]
    stop: threading.Event = field(default_factory=threading.Event)


class Playout:
    """The queue and the player thread. Every public method is thread-safe and returns at once."""

    def __init__(
        self,
        player: Player,
        render: Callable[[Bulletin], BulletinProgramme],
        reporter: Reporter,
        *,
        late_limit_s: float,
        relay_player: RelayPlayer | None = None,
    ) -> None:
        self._player = player
        self._render = render
        self._reporter = reporter
        self._late_limit = late_limit_s
        self._relay_player = relay_player
        self._queue: list[PlayRequest] = []
        self._current: _Current | None = None
        self._jobs: list[_Job] = []
        self._job: _Job | None = None  # the job running on the player thread
        self._cond = threading.Condition()
        self._closing = False
        self._renderers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="render")
        self._warmer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warm")
        self.audio_error: tuple[float, str] | None = None  # the latest output failure, for health
        self._thread = threading.Thread(target=self._run, name="playout", daemon=True)

    # ----- control, from any thread -----
    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop the current play (relays go off in the player's finally) and end the thread."""
        with self._cond:
            self._closing = True
            if self._current:
                self._current.reason = "shutdown"
                self._current.stop.set()
            if self._job:
                self._job.stop.set()
            self._cond.notify_all()
        self._thread.join(timeout=10)
        self._renderers.shutdown(wait=False, cancel_futures=True)
        self._warmer.shutdown(wait=False, cancel_futures=True)

    def submit(self, req: PlayRequest) -> None:
        """Queue an occurrence; render it now; pre-empt a lower-priority play if it is an emergency."""
        with self._cond:
            if any(q.same_occurrence(req) for q in self._queue) or (
                self._current and self._current.req.same_occurrence(req)
            ):
                return
            req.programme = self._renderers.submit(self._render, req.bulletin)
            self._queue.append(req)
            current = self._current
            if current and req.rank == 0 and current.req.rank > 0 and current.reason is None:
                current.reason = "preempted"
                current.stop.set()
            if self._job and req.rank == 0:
                self._job.stop.set()
            self._cond.notify_all()

    def warm(self, job: Callable[[], object]) -> None:
        """Run ``job`` (synthesizing a scheduled bulletin into the speech cache) in the background, one at a
        time: a neural voice reads at about real time on a Pi, far slower than the pre-render window."""
        self._warmer.submit(self._warm, job)

    @staticmethod
    def _warm(job: Callable[[], object]) -> None:
        try:
            job()
        except (SynthesisError, VoiceError) as exc:  # reported when it is due to play, with a failed event
            log.warning("could not synthesize ahead of time: %s", exc)

    def cancel(self, bulletin_id: str, reason: str = "cancelled") -> None:
        """Drop every queued occurrence of a bulletin and stop it if it is playing."""
        with self._cond:
            self._queue = [q for q in self._queue if q.bulletin.id != bulletin_id]
            if self._current and self._current.req.bulletin.id == bulletin_id and self._current.reason is None:
                self._current.reason = reason
                self._current.stop.set()
            self._cond.notify_all()

    def stop_current(self) -> bool:
        """The operator's stop command: end the current play now. False if nothing was playing."""
        with self._cond:
            if self._job:
                self._job.stop.set()
                return True
            if not self._current:
                return False
            self._current.reason = "stopped"
            self._current.stop.set()
            return True

    def wake(self) -> None:
        """Re-evaluate what is due now; after a wall-clock jump the player's wait was computed on the old time."""
        with self._cond:
            self._cond.notify_all()

    def snapshot(self) -> tuple[PlayRequest | None, list[PlayRequest]]:
        """What is playing and what waits, in the order it would play."""
        with self._cond:
            current = self._current.req if self._current else None
            return current, sorted(self._queue, key=PlayRequest.sort_key)

    def run_exclusive(self, name: str, run: Callable[[threading.Event], None]) -> None:
        """Run ``run(stop)`` on the player thread once no play is due, never during one.

        A bulletin already due goes first; an emergency arriving meanwhile sets ``stop``, as does a stop
        command. An exception in ``run`` is logged and the player goes on.
        """
        with self._cond:
            self._jobs.append(_Job(name, run))
            self._cond.notify_all()

    def exclusive_job(self) -> str | None:
        """The name of the job running now (see :meth:`run_exclusive`), or None."""
        with self._cond:
            return self._job.name if self._job else None

    def busy(self) -> bool:
        """A play or a job holds the player: set before the amplifier goes on, cleared after it went off."""
        with self._cond:
            return self._current is not None or self._job is not None

    @property
    def alive(self) -> bool:
        """The player thread runs (after start, until close): false means nothing can play."""
        return self._thread.is_alive()

    # ----- the player thread -----
    def _next_due(self) -> PlayRequest | _Job | None:
        """Wait for the most urgent request whose amplifier must go on now; None when closing."""
        with self._cond:
            while not self._closing:
                now = time.time()
                due = [q for q in self._queue if q.start_at is None or self._lead_time(q) <= now]
                if due:
                    req = min(due, key=PlayRequest.sort_key)
                    self._queue.remove(req)
                    self._current = _Current(req)
                    return req
                if self._jobs:
                    self._job = self._jobs.pop(0)
                    return self._job
                waits = [self._lead_time(q) - now for q in self._queue if q.start_at is not None]
                self._cond.wait(timeout=min(waits) if waits else None)
            return None

    def _lead_time(self, req: PlayRequest) -> float:
        """When the player must take a scheduled request: a little before its warm-up, so that playback's own
        precise wait (not this queue's) decides the instant the amplifier goes on."""
        assert req.start_at is not None
        return req.start_at - self._player.warmup_s - PLAYER_LEAD_S

    def _run(self) -> None:
        while (req := self._next_due()) is not None:
            if isinstance(req, _Job):
                self._run_job(req)
                continue
            try:
                self._play(req)
            except Exception as exc:
                # A bug must not silence the cluster until someone climbs the pole: report it, play on.
                log.exception("playout failed on %s", req.bulletin.id)
                self._reporter.failed(req, "internal", f"{type(exc).__name__}: {exc}")
            finally:
                with self._cond:
                    self._current = None

    def _run_job(self, job: _Job) -> None:
        try:
            job.run(job.stop)
        except Exception:
            log.exception("%s failed", job.name)  # as for a play: a bug must not end the player thread
        finally:
            with self._cond:
                self._job = None

    def _play(self, req: PlayRequest) -> None:
        now = time.time()
        bulletin = req.bulletin
        if now >= bulletin.exp:
            self._reporter.skipped(req, "expired")
            return
        if req.start_at is not None and now - req.start_at > self._late_limit:
            self._reporter.skipped(req, "missed")
            return
        assert req.programme is not None
        try:
            made = req.programme.result()
            programme = made.programme
        except (SynthesisError, VoiceError) as exc:
            self._reporter.failed(req, "synthesis", str(exc))
            return
        current = self._current
        assert current is not None
        if current.stop.is_set():  # pre-empted or cancelled while it was being rendered
            self._after_stop(current, None)
            return
        if bulletin.relay is not None and self._relay_player is not None:
            stopped, last = self._relay_player.play(req, made, current.stop)
            if stopped:
                self._after_stop(current, last)
            return
        missing = programme.ready(current.stop, max(now, req.start_at or now) + READY_WAIT_S)
        if current.stop.is_set():  # pre-empted while it waited for its recording
            self._after_stop(current, None)
            return
        if missing is not None:
            self._reporter.skipped(req, missing)
            return
        programme = programme.starting_at(req.resume_s)
        req.resume_s = programme.start_s
        if not self._reporter.claim(req):
            log.info("%s %s already played: not again", bulletin.id, req.occurrence)
            return

        def on_started(amp_on: float, audio_start: float) -> None:
            self._reporter.started(req, amp_on, audio_start)

        name = f"{bulletin.id}-r{bulletin.rev}"
        for attempt in range(1, AUDIO_TRIES + 1):
            try:
                timeline = self._player.play(
                    programme, name, start_at=req.start_at, stop=current.stop, on_started=on_started
                )
                break
            except OutputNotReady as exc:  # no relay moved: a card back in its socket may play it in a moment
                self.audio_error = (time.time(), str(exc))
                log.warning("audio output not ready (try %d of %d): %s", attempt, AUDIO_TRIES, exc)
                if attempt == AUDIO_TRIES or current.stop.wait(AUDIO_RETRY_S):
                    self._reporter.failed(req, "audio", str(exc))
                    return
            except AudioOutputError as exc:  # broke while playing: once, never the amplifier cycled over silence
                self.audio_error = (time.time(), str(exc))
                log.error("audio output failed while playing: %s", exc)
                self._reporter.failed(req, "audio", str(exc))
                return
            except (SynthesisError, VoiceError) as exc:  # a streamed programme synthesizes while it plays
                self._reporter.failed(req, "synthesis", str(exc))
                return
            except MediaError as exc:  # a recording is decoded while it plays
                self._reporter.failed(req, "media", str(exc))
                return
            except RadiodError as exc:
                self._reporter.failed(req, "relays", str(exc))
                return
        if timeline.completed:
            self._reporter.finished(req, timeline)
        else:
            self._after_stop(current, timeline)

    def _after_stop(self, current: _Current, timeline: Timeline | None) -> None:
        reason = current.reason or "stopped"
        self._reporter.interrupted(current.req, reason, timeline)
        if reason == "preempted" and time.time() < current.req.bulletin.exp:
            played = timeline.audio_end - timeline.audio_start if timeline is not None else 0.0
            again = PlayRequest(current.req.bulletin, current.req.occurrence, None, current.req.enqueued,
                                resume_s=current.req.resume_s + played, ends_at=current.req.ends_at)
            again.programme = current.req.programme
            with self._cond:
                self._queue.append(again)
                self._cond.notify_all()
