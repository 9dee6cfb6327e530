"""One play as the village and a technician would check it: the relay pins' history (gpiozero MockFactory)
against the audio the real file sink wrote, with a real rendered Programme."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from radiod.audio.output import Output, open_output
from radiod.audio.pcm import Pcm, read_wav
from radiod.audio.relays import Relays
from radiod.audio.render import Programme, RenderOptions, render_programme
from radiod.audio.station import AMP_SLACK_S, LINE_SETTLE_S, Timeline, play
from radiod.errors import AudioOutputError, RelayError
from radiod.profiles import Profile, load_profile

REPO = Path(__file__).resolve().parents[1]
PROFILES = REPO / "firmware_profiles"
RATE = 16000
WARMUP_S = 0.3
HOLD_S = 0.2
pytestmark = pytest.mark.timing  # tens of ms of wall time: run alone, never beside other tests

TOLERANCE_S = 0.03  # a loaded 2-core machine: scheduling jitter, not the code's precision
ROUNDING_S = 0.001  # pin times rebuilt from monotonic deltas, float sums of epoch seconds: rounding, not timing


def short_profile(name: str = "mock") -> Profile:
    profile = load_profile(name, PROFILES)
    amplifier = dataclasses.replace(profile.amplifier, warmup_s=WARMUP_S, hold_s=HOLD_S, max_on_s=30.0)
    return dataclasses.replace(profile, amplifier=amplifier)


def tone_programme(seconds: float) -> Programme:
    t = np.arange(round(seconds * RATE)) / RATE
    tone = Pcm((0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32), RATE)
    return render_programme([tone], RenderOptions(rate=RATE, chime=False))


class PinHistory:
    """Wall-clock times of each pin's changes, from MockPin.states (delays between changes, monotonic)."""

    def __init__(self, factory: MockFactory, pins: list[str]) -> None:
        self.factory = factory
        self.wall0, self.mono0 = time.time(), time.monotonic()
        for pin in pins:
            factory.pin(pin).clear_states()

    def edges(self, pin: str) -> list[tuple[float, bool]]:
        """(wall-clock time, new level) for every change since the history was cleared."""
        states = self.factory.pin(pin).states
        t, out = self.wall0, []
        for entry in states[1:]:
            t += entry.timestamp
            out.append((t, bool(entry.state)))
        return out

    def on_off(self, pin: str, on_level: bool = True) -> tuple[float, float]:
        """The single on-period of a relay pin: (time it went on, time it went off)."""
        edges = self.edges(pin)
        assert [level for _, level in edges] == [on_level, not on_level], edges
        return edges[0][0], edges[1][0]


@pytest.fixture
def factory() -> MockFactory:
    return MockFactory()


@pytest.fixture
def relays(factory: MockFactory) -> Iterator[Relays]:
    with Relays(short_profile(), factory) as r:
        yield r


@pytest.fixture
def output(tmp_path: Path) -> Iterator[Output]:
    out = open_output(f"file:{tmp_path / 'played'}", RATE)
    yield out
    out.close()


PINS = ["GPIO26", "GPIO20", "GPIO21", "GPIO16"]


def test_sequence_and_timings(relays: Relays, output: Output, factory: MockFactory) -> None:
    programme = tone_programme(0.5)
    history = PinHistory(factory, PINS)
    timeline = play(programme, relays, output, name="seq", stop=threading.Event())

    amp_on, amp_off = history.on_off("GPIO26")
    line1_on, line1_off = history.on_off("GPIO20")
    line2_on, line2_off = history.on_off("GPIO21")
    led_on, led_off = history.on_off("GPIO16")
    assert timeline.completed
    # amplifier first, lines just before the audio, everything off after the hold, lines before the amplifier
    assert amp_on <= line1_on and amp_on <= line2_on
    assert amp_on <= timeline.audio_start - WARMUP_S + ROUNDING_S
    assert timeline.audio_start - LINE_SETTLE_S - TOLERANCE_S <= line1_on <= timeline.audio_start - LINE_SETTLE_S / 2
    assert timeline.audio_end + HOLD_S - ROUNDING_S <= line1_off <= line2_off + TOLERANCE_S
    assert max(line1_off, line2_off) + LINE_SETTLE_S <= amp_off + 0.002
    assert amp_off - timeline.audio_end < HOLD_S + LINE_SETTLE_S + TOLERANCE_S
    assert led_on == pytest.approx(amp_on, abs=TOLERANCE_S) and led_off == pytest.approx(amp_off, abs=TOLERANCE_S)
    assert not any(relays.state().values())
    # the timeline agrees with the pins, and the audio is what the sink wrote
    assert amp_on <= timeline.amp_on < amp_on + TOLERANCE_S  # read just after the pin was written
    assert amp_off <= timeline.amp_off < amp_off + TOLERANCE_S
    assert timeline.audio_end - timeline.audio_start == pytest.approx(programme.duration_s, abs=TOLERANCE_S)
    assert timeline.path is not None
    written = read_wav(timeline.path)
    assert len(written.samples) == programme.n_samples


def test_start_at_puts_the_first_sample_on_the_instant(relays: Relays, output: Output, factory: MockFactory) -> None:
    started: list[tuple[float, float]] = []
    history = PinHistory(factory, PINS)
    start_at = time.time() + 0.6
    timeline = play(
        tone_programme(0.2),
        relays,
        output,
        name="sync",
        stop=threading.Event(),
        start_at=start_at,
        on_started=lambda amp_on, audio_start: started.append((amp_on, audio_start)),
    )
    amp_on, _ = history.on_off("GPIO26")
    print(f"first sample {1000 * (timeline.audio_start - start_at):+.2f} ms from start_at")
    # never early; late only by scheduling and the output's own start-up (file, first block): ~1 ms when idle
    assert start_at - ROUNDING_S <= timeline.audio_start < start_at + TOLERANCE_S
    assert start_at - WARMUP_S - AMP_SLACK_S - ROUNDING_S <= amp_on <= start_at - WARMUP_S + ROUNDING_S
    assert started == [(timeline.amp_on, timeline.audio_start)]


def test_start_at_in_the_past_starts_at_once_with_a_full_warm_up(
    relays: Relays, output: Output, factory: MockFactory
) -> None:
    history = PinHistory(factory, PINS)
    called = time.time()
    timeline = play(tone_programme(0.2), relays, output, name="late", stop=threading.Event(), start_at=called - 5)
    amp_on, _ = history.on_off("GPIO26")
    assert amp_on - called < TOLERANCE_S
    assert timeline.audio_start - amp_on == pytest.approx(WARMUP_S, abs=TOLERANCE_S)
    assert timeline.audio_start - amp_on >= WARMUP_S


def test_chosen_lines_only(relays: Relays, output: Output, factory: MockFactory) -> None:
    history = PinHistory(factory, PINS)
    play(tone_programme(0.1), relays, output, name="one-line", stop=threading.Event(), lines=["line-2"])
    assert history.edges("GPIO20") == []
    history.on_off("GPIO21")


def test_unknown_line_is_refused_before_anything_switches(relays: Relays, output: Output, factory: MockFactory) -> None:
    history = PinHistory(factory, PINS)
    with pytest.raises(RelayError, match="known lines: line-1, line-2"):
        play(tone_programme(0.1), relays, output, name="bad", stop=threading.Event(), lines=["line-3"])
    assert all(history.edges(pin) == [] for pin in PINS)


def test_stop_mid_play_switches_everything_off_quickly(relays: Relays, output: Output, factory: MockFactory) -> None:
    stop = threading.Event()
    stopped_at: list[float] = []

    def stop_soon(amp_on: float, audio_start: float) -> None:
        def fire() -> None:
            stopped_at.append(time.time())
            stop.set()

        threading.Timer(0.2, fire).start()

    history = PinHistory(factory, PINS)
    timeline = play(tone_programme(3.0), relays, output, name="stopped", stop=stop, on_started=stop_soon)
    _, amp_off = history.on_off("GPIO26")
    assert not timeline.completed
    print(f"stop -> amplifier off: {1000 * (amp_off - stopped_at[0]):.1f} ms")
    assert amp_off - stopped_at[0] < LINE_SETTLE_S + 0.1  # no hold after a stop
    assert timeline.audio_end - timeline.audio_start < 0.2 + TOLERANCE_S + 0.05
    assert not any(relays.state().values())


def test_stop_during_warm_up_plays_nothing(relays: Relays, output: Output, factory: MockFactory) -> None:
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    history = PinHistory(factory, PINS)
    timeline = play(tone_programme(0.5), relays, output, name="never", stop=stop)
    amp_on, amp_off = history.on_off("GPIO26")
    assert amp_off - amp_on < 0.1 + TOLERANCE_S
    assert history.edges("GPIO20") == []  # the lines never closed
    assert not timeline.completed and timeline.path is None
    assert timeline.audio_start == timeline.audio_end


def test_stop_before_the_warm_up_switches_nothing(relays: Relays, output: Output, factory: MockFactory) -> None:
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    history = PinHistory(factory, PINS)
    timeline = play(tone_programme(0.5), relays, output, name="x", stop=stop, start_at=time.time() + 5)
    assert all(history.edges(pin) == [] for pin in PINS)
    assert timeline == Timeline(
        timeline.amp_on, timeline.amp_on, timeline.amp_on, timeline.amp_on, completed=False, path=None
    )


def test_a_programme_longer_than_the_watchdog_plays_to_its_end(output: Output, factory: MockFactory) -> None:
    """A recording longer than the board's max_on_s (two hours against 30 minutes on a Pi; here 1.5 s against
    0.5 s) is not cut by the watchdog: the play arms it for its own length."""
    profile = short_profile()
    profile = dataclasses.replace(profile, amplifier=dataclasses.replace(profile.amplifier, max_on_s=0.5))
    with Relays(profile, factory) as relays:
        fired = threading.Event()
        relays.on_watchdog(lambda _: fired.set())
        programme = tone_programme(1.5)
        history = PinHistory(factory, ["GPIO26"])
        timeline = play(programme, relays, output, name="long", stop=threading.Event())
        assert timeline.completed and not fired.is_set()
        amp_on, amp_off = history.on_off("GPIO26")
        assert amp_off - amp_on >= programme.duration_s + WARMUP_S + HOLD_S - ROUNDING_S


def test_low_active_board_drives_its_pins_low_while_playing(output: Output, factory: MockFactory) -> None:
    with Relays(short_profile("relay-board-4ch"), factory) as relays:
        history = PinHistory(factory, ["GPIO5", "GPIO6"])
        timeline = play(tone_programme(0.2), relays, output, name="low", stop=threading.Event())
        amp_on, amp_off = history.on_off("GPIO5", on_level=False)
        line_on, line_off = history.on_off("GPIO6", on_level=False)
        assert amp_on <= timeline.audio_start - WARMUP_S + ROUNDING_S
        assert amp_off >= timeline.audio_end + HOLD_S - ROUNDING_S
        assert amp_on < line_on < timeline.audio_start < timeline.audio_end < line_off < amp_off
        assert factory.pin("GPIO5").state is True  # off = high


def test_an_output_failure_still_switches_everything_off(relays: Relays, output: Output, factory: MockFactory) -> None:
    history = PinHistory(factory, PINS)
    wrong_rate = render_programme([Pcm.silence(0.2, 8000)], RenderOptions(rate=8000, chime=False))
    with pytest.raises(AudioOutputError, match="8000 Hz"):
        play(wrong_rate, relays, output, name="broken", stop=threading.Event())
    history.on_off("GPIO26")
    history.on_off("GPIO20")
    assert not any(relays.state().values())
