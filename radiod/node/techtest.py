"""The technician's test: each speaker line in turn hears a tone and "Thử loa, đường dây số một".

It answers the question a technician climbs the pole with: does the amplifier come on, does each line's relay
close, does sound reach each horn. One step per line: amplifier on, only that line's relay closed, a
:data:`TONE_HZ` tone, the phrase naming the line, the tone again, everything off. A board without speaker-line
relays gets one step through the amplifier alone.

It always runs through the playout (:meth:`~radiod.node.playout.Playout.run_exclusive`), on the player thread
between two plays, so it can never overlap a bulletin; an emergency or a stop command ends it after the
current step's audio stops. ``radiod test`` and the MQTT ``test`` command run the same code, and every step is
an Event (type ``command``, ``action`` test, ``step`` the line, ``result`` ok, failed or interrupted), followed
by one summary event, so the hub sees the result of a test it did not start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from radiod.audio.pcm import Pcm
from radiod.audio.render import Programme, RenderOptions, render_programme
from radiod.audio.station import Station
from radiod.errors import AudioOutputError, RelayError, SynthesisError, VoiceError
from radiod.node.events import EventLog
from radiod.node.playout import Playout
from radiod.node.programme import ProgrammeMaker

log = logging.getLogger(__name__)

TONE_HZ = 1000.0
"""The usual line-test frequency: in the middle of what a horn speaker reproduces well."""
TONE_S = 1.0
PHRASE = "Thử loa, đường dây số {number}."
"""Read by the normalizer, so the number is spoken: "đường dây số một"."""
AMPLIFIER_ONLY = "amplifier"
"""The step's name on a board without speaker-line relays."""
JOB_NAME = "technician test"


@dataclass(frozen=True)
class Step:
    """One line tested: ``result`` is ok, failed or interrupted; ``detail`` says what was heard or what broke."""

    step: str
    result: str
    detail: str


def tone(rate: int, seconds: float = TONE_S) -> Pcm:
    """A sine at :data:`TONE_HZ`; the renderer fades its edges and sets its level like a chime's."""
    t = np.arange(round(seconds * rate)) / rate
    return Pcm((0.5 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32), rate)


class TechnicianTest:
    """The test as the daemon runs it. ``volume`` is read at each run (a volume command may have changed it)."""

    def __init__(
        self, station: Station, maker: ProgrammeMaker, events: EventLog, *, voice: str, volume: Callable[[], float]
    ) -> None:
        self.station = station
        self.maker = maker
        self.events = events
        self.voice = voice
        self.volume = volume

    def queue(
        self,
        playout: Playout,
        lines: Sequence[str] | None = None,
        *,
        command: str | None = None,
        progress: Callable[[dict[str, Any]], None] | None = None,
        done: Callable[[dict[str, Any]], None] | None = None,
    ) -> str:
        """Queue the test of ``lines`` (None: every line) on the playout and say so; returns at once.

        A wrong line name raises :class:`RelayError` naming the known lines, before anything is queued.
        ``progress`` gets each step as it ends, ``done`` the summary; both run on the player thread.
        ``command`` is the id of the MQTT command that asked, added to every event.
        """
        names = self.station.relays.resolve_lines(lines)
        steps = names or [AMPLIFIER_ONLY]
        playout.run_exclusive(JOB_NAME, lambda stop: self._run(steps, stop, command, progress, done))
        return f"test queued: {', '.join(steps)}"

    def _run(
        self,
        steps: list[str],
        stop: threading.Event,
        command: str | None,
        progress: Callable[[dict[str, Any]], None] | None,
        done: Callable[[dict[str, Any]], None] | None,
    ) -> None:
        extra = {"command": command} if command else {}
        results: list[Step] = []
        for name in steps:
            step = Step(name, "interrupted", "not run: stopped") if stop.is_set() else self.test_line(name, stop)
            results.append(step)
            self.events.emit("command", action="test", **asdict(step), **extra)
            if progress is not None:
                progress(asdict(step))
        failed = [s.step for s in results if s.result != "ok"]
        if not failed:
            result = f"passed: {', '.join(steps)}"
        else:
            result = f"{'interrupted' if stop.is_set() else 'failed'}: {', '.join(failed)}"
        self.events.emit("command", action="test", result=result, **extra)
        if done is not None:
            done({"result": result, "steps": [asdict(s) for s in results]})

    def test_line(self, name: str, stop: threading.Event) -> Step:
        """Play the test programme through the amplifier and line ``name`` (or the amplifier alone)."""
        lines = [] if name == AMPLIFIER_ONLY else [name]
        number = list(self.station.relays.profile.lines).index(name) + 1 if lines else 1
        programme, speech_problem = self.programme(number)
        try:
            started = time.monotonic()
            timeline = self.station.play(programme, f"test-{name}", stop=stop, lines=lines)
        except AudioOutputError as exc:
            return Step(name, "failed", f"audio: {exc}")
        except RelayError as exc:
            return Step(name, "failed", f"relays: {exc}")
        if not timeline.completed:
            return Step(name, "interrupted", f"stopped after {time.monotonic() - started:.1f} s")
        where = f" to {timeline.path}" if timeline.path else ""
        heard = (f"amplifier on, {'line ' + name if lines else 'no speaker-line relay'}, {TONE_HZ:.0f} Hz tone"
                 f"{'' if speech_problem else ' and phrase'}, {timeline.audio_end - timeline.audio_start:.1f} s{where}")
        if speech_problem:
            return Step(name, "failed", f"{heard}; but no phrase: {speech_problem}")
        return Step(name, "ok", heard)

    def programme(self, number: int) -> tuple[Programme, str | None]:
        """Tone, the phrase for line ``number``, tone: at the node's loudness and volume, like a bulletin.

        When the voice cannot speak, the tones alone, and why: the lines are still worth testing.
        """
        rate = self.maker.profile.audio.sample_rate
        beep = tone(rate)
        try:
            speech, problem = self.maker.speaker.speak(PHRASE.format(number=number), self.voice), None
        except (SynthesisError, VoiceError) as exc:
            speech, problem = [], str(exc)
        options = RenderOptions(
            rate=rate, chime=True, chimes=(beep, beep), target_lufs=self.maker.config.audio.loudness_lufs,
            volume=self.volume(),
        )
        return render_programme(speech, options), problem
