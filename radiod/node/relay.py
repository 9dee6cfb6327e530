"""A relay occurrence from start to end: the district or provincial radio played live through the station, off the
air whenever its signal is gone, back on when it returns, until the relay's end time.

The loop, on the playout thread (it holds the player, as any play does):

1. listen to the stream with the amplifier off (:meth:`LiveSource.wait_for_signal`): only audio with signal
   switches it on, so a dead stream never puts the loudspeakers on over silence;
2. play it (:class:`~radiod.audio.relay.LiveProgramme`, with the bulletin's text as a spoken introduction the
   first time): ``started``;
3. when the signal is gone for ``relay.no_signal_s`` the programme ends and the station switches off:
   ``interrupted`` with reason ``no_signal``; the stream is reconnected with backoff meanwhile; back to 1;
4. at the end time: ``finished``. If the end comes while it waits for a signal, it ends with no further event (its
   last event already said it went silent); one that never had a signal is ``skipped``, reason ``no_signal``.

While on the air with signal it keeps the amplifier's watchdog from ending a relay longer than the board's
``max_on_s`` (:meth:`radiod.audio.relays.Relays.keep_on`): the relay switches off by itself on silence.

The end is fixed when the occurrence first starts (its scheduled start, or for ``now`` its first attempt) and holds
across no-signal gaps and emergencies: a stop (emergency, cancel, stop command, shutdown) ends the loop and the
playout reports it; after an emergency the playout queues the relay again and it resumes live until that end.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo

from radiod.audio.relay import LiveProgramme, LiveSource
from radiod.audio.station import Timeline
from radiod.config import RelayConfig
from radiod.errors import AudioOutputError, RadiodError, SynthesisError, VoiceError
from radiod.node.playout import Player, PlayRequest, Reporter
from radiod.node.programme import BulletinProgramme
from radiod.protocol.messages import Relay

log = logging.getLogger(__name__)


def relay_end(relay: Relay, start: float, tz: ZoneInfo) -> float:
    """When a relay that starts at ``start`` ends: ``duration_s`` later, or at the first ``until`` time of day
    after ``start`` in the node's time zone."""
    if relay.duration_s is not None:
        return start + relay.duration_s
    assert relay.until is not None
    local = dt.datetime.fromtimestamp(start, tz)
    end = dt.datetime.combine(local.date(), relay.until, tzinfo=tz)
    if end <= local:
        end = dt.datetime.combine(local.date() + dt.timedelta(days=1), relay.until, tzinfo=tz)
    return end.timestamp()


class RelayLoop:
    """Plays relay occurrences through ``player``, reporting to ``reporter`` (the playout's :class:`RelayPlayer`)."""

    def __init__(self, player: Player, reporter: Reporter, config: RelayConfig, *, tz: ZoneInfo, rate: int,
                 target_lufs: float, keep_on: Callable[[], None] | None = None) -> None:
        self._player = player
        self._keep_on = keep_on  # the amplifier watchdog's Relays.keep_on
        self._reporter = reporter
        self._config = config
        self._tz = tz
        self._rate = rate
        self._target = target_lufs

    def play(self, req: PlayRequest, made: BulletinProgramme, stop: threading.Event) -> tuple[bool, Timeline | None]:
        """The loop of the module doc for one occurrence; ``first_time`` is false when it resumes after an
        emergency (its end already fixed): then there is no introduction, and its start is now."""
        relay = req.bulletin.relay
        assert relay is not None
        first_time = req.ends_at is None
        if req.ends_at is None:
            req.ends_at = relay_end(relay, req.start_at if req.start_at is not None else time.time(), self._tz)
        ends_at = req.ends_at
        source = LiveSource(relay.url, self._rate, silence_dbfs=self._config.silence_dbfs,
                            reconnect_max_s=self._config.reconnect_max_s).start()
        claimed = False
        try:
            while True:
                if not source.wait_for_signal(stop, ends_at):
                    if stop.is_set():
                        return True, None
                    self._ended_off_air(req, source, played=not first_time)
                    return False, None
                programme = LiveProgramme(
                    source, ends_at=ends_at, no_signal_s=self._config.no_signal_s, target_lufs=self._target,
                    volume=made.volume, intro=made.programme if first_time else None,
                    keep_on=self._keep_on,
                )
                if not claimed:
                    if not self._reporter.claim(req):
                        log.info("%s %s already played: not again", req.bulletin.id, req.occurrence)
                        return False, None
                    claimed = True
                else:
                    self._reporter.record(req, "started")
                timeline = self._segment(req, programme, stop, start_at=req.start_at if first_time else None)
                if timeline is None:  # failed, and reported
                    return False, None
                if not timeline.completed:
                    return True, timeline
                if programme.ended != "no_signal":
                    self._reporter.finished(req, timeline)
                    return False, None
                log.warning("relay %s: no signal for %g s (%s): amplifier off until it returns",
                            req.bulletin.id, self._config.no_signal_s, source.problem or "silence")
                self._reporter.interrupted(req, "no_signal", timeline)
                first_time = False
        finally:
            source.close()

    def _segment(self, req: PlayRequest, programme: LiveProgramme, stop: threading.Event, *,
                 start_at: float | None) -> Timeline | None:
        """One stretch on the air; None when it failed (reported as ``failed``)."""

        def on_started(amp_on: float, audio_start: float) -> None:
            self._reporter.started(req, amp_on, audio_start)

        name = f"{req.bulletin.id}-r{req.bulletin.rev}"
        try:
            return self._player.play(programme, name, start_at=start_at, stop=stop, on_started=on_started)
        except AudioOutputError as exc:
            self._reporter.failed(req, "audio", str(exc))
        except (SynthesisError, VoiceError) as exc:  # the spoken introduction is synthesized as it plays
            self._reporter.failed(req, "synthesis", str(exc))
        except RadiodError as exc:
            self._reporter.failed(req, "relays", str(exc))
        return None

    def _ended_off_air(self, req: PlayRequest, source: LiveSource, *, played: bool) -> None:
        """The end time came while the relay was off the air: waiting for a signal, or for an emergency to end
        (see the module doc). The store records it as over, so nothing plays it again."""
        log.warning("relay %s reached its end time off the air%s", req.bulletin.id,
                    f" ({source.problem})" if source.problem else "")
        if played:
            self._reporter.record(req, "skipped", "ended")
        else:
            self._reporter.skipped(req, "no_signal")
