"""The node's sound hardware as one object, and one play through it: relays and audio output, opened once,
always left switched off.

Both ``radiod speak`` and the daemon play through a :class:`Station`, so the relay sequence and its timings are
the same everywhere; tests build one on gpiozero's MockFactory and a file sink.

One play (:func:`play`) and why its steps come in this order:

1. amplifier on, ``warmup_s`` before the first sample (with ``start_at``: plus :data:`AMP_SLACK_S`): the
   amplifier needs that long to pop and settle;
2. speaker lines on, :data:`LINE_SETTLE_S` before the first sample (or with the amplifier, if the warm-up is
   shorter): the lines act as the speaker-protection relay of a hi-fi amplifier, so the amplifier's switch-on
   thump goes into an open line rather than out of every horn in the commune, and the line contacts have
   closed and stopped bouncing before the first syllable;
3. the audio;
4. ``hold_s`` after the last sample, so a reverberant tail or the output's buffer is not cut off;
5. speaker lines off, then :data:`LINE_SETTLE_S` later the amplifier off: the lines are open before the
   amplifier's rails collapse, so its switch-off thump is not heard either.

Step 5 always runs (``finally``), whatever happened; a stop skips the hold. With ``start_at`` the first sample
leaves at that wall-clock instant, so clusters within earshot of each other play in step instead of echoing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from radiod.audio.output import Output, PlayResult, open_output
from radiod.audio.relays import Relays
from radiod.audio.render import Programme
from radiod.config import Config
from radiod.errors import AudioOutputError, OutputNotReady
from radiod.profiles import Profile, load_profile

log = logging.getLogger(__name__)

# A line relay closes in ~10-20 ms and bounces for a few ms more; this leaves a wide margin either way.
LINE_SETTLE_S = 0.1
# A sleeping thread on a busy Pi wakes up to tens of ms late. The amplifier goes on this much before
# start_at - warmup_s, so a late wake-up eats into this slack instead of delaying the first sample (the warm-up
# is never shortened); a longer warm-up by this much costs nothing.
AMP_SLACK_S = 0.1
# Event.wait can overshoot by a scheduler tick; the last stretch before the first sample is spun instead. Kept
# short: ten nodes spinning 20 ms on two cores (bench/skew.py) starve each other and start later, not sooner.
FINE_WAIT_S = 0.002


@dataclass(frozen=True)
class Timeline:
    """What happened during one play, in wall-clock seconds (time.time()).

    When no audio played (stopped during the warm-up), audio_start == audio_end == amp_off; when the
    amplifier never went on (stopped before its time), all four are the moment it was stopped.
    """

    amp_on: float
    audio_start: float
    audio_end: float
    amp_off: float
    completed: bool
    path: Path | None


def play(
    programme: Programme,
    relays: Relays,
    output: Output,
    *,
    name: str,
    stop: threading.Event,
    start_at: float | None = None,
    lines: Sequence[str] | None = None,
    on_started: Callable[[float, float], None] | None = None,
) -> Timeline:
    """Play ``programme`` with the full relay sequence (see the module docstring) and return its timeline.

    ``start_at``: the wall-clock instant of the first sample; already past (or closer than the warm-up) means
    as soon as the warm-up allows: the warm-up is never cut short, because a cold amplifier would swallow
    or pop the first words. ``stop`` interrupts the waits and the audio (completed=False) and skips the hold.
    ``on_started(amp_on, audio_start)`` is called from inside ``output.play`` as soon as the first sample has
    left. ``lines`` selects speaker lines (None: all); a wrong name raises RelayError before anything switches.
    """
    amplifier = relays.profile.amplifier
    chosen = relays.resolve_lines(lines)
    # Before the amplifier is on, follow the wall clock (start_at is a wall-clock instant shared by clusters);
    # once it is on, wait on the monotonic clock, so a clock step cannot stretch how long it stays on.
    if start_at is not None and not _wait_wall(start_at - amplifier.warmup_s - AMP_SLACK_S, stop):
        now = time.time()
        return Timeline(now, now, now, now, completed=False, path=None)

    result: PlayResult | None = None
    lines_closed = False
    try:
        # the watchdog allows what this play needs when it is longer than max_on_s (a recording of two hours)
        relays.amp_on(AMP_SLACK_S + amplifier.warmup_s + programme.duration_s + amplifier.hold_s + LINE_SETTLE_S)
        amp_on = time.time()
        programme.prime()  # rendered during the warm-up, so the first sample is on time
        due_wall = max(amp_on if start_at is None else start_at, amp_on + amplifier.warmup_s)
        due = time.monotonic() + (due_wall - time.time())
        if _wait_monotonic(due - LINE_SETTLE_S, stop):
            relays.lines_on(chosen)
            lines_closed = True
            if _wait_monotonic(due, stop, fine=True):
                result = output.play(programme, name, stop, _started(on_started, amp_on))
        if result is not None and result.completed:
            _wait_monotonic(time.monotonic() + (result.audio_end + amplifier.hold_s - time.time()), stop)
    finally:
        relays.lines_off()
        if lines_closed:
            time.sleep(LINE_SETTLE_S)
        relays.amp_off()
    amp_off = time.time()
    if result is None:  # stopped during the warm-up
        return Timeline(amp_on, amp_off, amp_off, amp_off, completed=False, path=None)
    return Timeline(amp_on, result.audio_start, result.audio_end, amp_off, result.completed, result.path)


def _started(on_started: Callable[[float, float], None] | None, amp_on: float) -> Callable[[float], None] | None:
    """The output's on_start callback: it knows only audio_start; the caller wants amp_on too."""
    if on_started is None:
        return None
    return lambda audio_start: on_started(amp_on, audio_start)


def _wait_wall(until: float, stop: threading.Event) -> bool:
    """Sleep until the wall clock reads ``until``, in steps of at most a second so a clock step is followed;
    False if ``stop`` was set."""
    while (left := until - time.time()) > 0:
        if stop.wait(min(left, 1.0)):
            return False
    return not stop.is_set()


def _wait_monotonic(until: float, stop: threading.Event, *, fine: bool = False) -> bool:
    """Sleep until time.monotonic() reaches ``until``; ``fine`` spins the last few ms for a punctual start.
    False if ``stop`` was set."""
    margin = FINE_WAIT_S if fine else 0.0
    while (left := until - time.monotonic()) > margin:
        if stop.wait(left - margin):
            return False
    while time.monotonic() < until:
        if stop.is_set():
            return False
    return not stop.is_set()


class Station:
    """The relays and the audio output of one node, and the one way to play a programme through them."""

    def __init__(self, config: Config, profile: Profile | None = None, pin_factory: object | None = None) -> None:
        self.profile = profile or load_profile(config.gpio.profile, Path(config.gpio.profiles_dir))
        self.relays = Relays(self.profile, pin_factory)
        self._spec = self.profile.audio.device if config.audio.output == "default" else config.audio.output
        self._file_keep = config.audio.file_keep
        self._output: Output | None = None
        try:
            self.output()
        except AudioOutputError as exc:  # a USB card unplugged at boot: start anyway, try again at each play
            log.error("%s; the node starts without it and tries again at each play", exc)

    def output(self) -> Output:
        """The audio output, opened on first use and again after it could not be opened."""
        if self._output is None:
            self._output = open_output(self._spec, self.profile.audio.sample_rate, file_keep=self._file_keep)
        return self._output

    @property
    def warmup_s(self) -> float:
        """How long before its first sample a play must begin (the amplifier's warm-up)."""
        return self.profile.amplifier.warmup_s

    def play(
        self,
        programme: Programme,
        name: str,
        *,
        start_at: float | None = None,
        stop: threading.Event | None = None,
        lines: Sequence[str] | None = None,
        on_started: Callable[..., None] | None = None,
    ) -> Timeline:
        """One play with the full relay sequence; see :func:`play`.

        The output is opened and made ready first: a missing sound card or output folder fails here, before any
        relay moves, with :class:`OutputNotReady`, so a broken output never switches the amplifier on over silence.
        """
        try:
            output = self.output()
            output.prepare()
        except AudioOutputError as exc:
            raise OutputNotReady(str(exc)) from exc
        return play(
            programme,
            self.relays,
            output,
            name=name,
            stop=stop or threading.Event(),
            start_at=start_at,
            lines=lines,
            on_started=on_started,
        )

    def close(self) -> None:
        """Relays off and released, output closed."""
        try:
            self.relays.close()
        finally:
            if self._output is not None:
                self._output.close()

    def __enter__(self) -> Station:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
