"""Live relays end to end: a real Icecast fed by ffmpeg (the district radio), the real daemon on mock relays and a
file sink, the real broker. What a listener and the hub would check: the tone comes out at the programme loudness,
the amplifier goes off soon after the studio goes off the air and back on when it returns, an emergency cuts in
and the relay comes back after it, and the relay ends at its end time."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import yaml
from harness import FAST_PROFILE, SHORT, EventLog, Hub, ThreadNode, ms, node_config, wait_for

from radiod.audio.loudness import integrated_lufs
from radiod.audio.pcm import read_wav
from radiod.clock import parse_rfc3339, rfc3339
from radiod.config import RelayConfig
from radiod.hub.localstream import Icecast
from radiod.node.relay import relay_end
from radiod.protocol.builders import bulletin, tombstone_for
from radiod.protocol.messages import Relay

NO_SIGNAL_S = 2.0
AMP = "GPIO26"  # the fast profile's amplifier pin
WATCHDOG_S = 10
"""The amplifier watchdog's max_on_s on the test board: a relay on the air longer must not be cut by it."""
OFF_MARGIN_S = 1.0
"""After no_signal_s, the station's hold (0.2 s), the lines' settle (0.1 s) and the player's block: the amplifier
is off within this much more."""


@pytest.fixture
def icecast() -> Iterator[Icecast]:
    with Icecast() as server:
        yield server


class AmpHistory:
    """The amplifier pin's changes in wall-clock time (MockPin keeps monotonic delays between changes)."""

    def __init__(self, node: ThreadNode) -> None:
        self.pin = node.factory.pin(AMP)
        self.pin.clear_states()
        self.wall0 = time.time()

    def edges(self) -> list[tuple[float, bool]]:
        """(wall-clock time, on) of every change since this history began."""
        t, out = self.wall0, []
        for entry in self.pin.states[1:]:
            t += entry.timestamp
            out.append((t, bool(entry.state)))
        return out

    def levels(self) -> list[bool]:
        return [on for _, on in self.edges()]


@pytest.fixture
def relay_node(hub: Hub, tmp_path: Path, start_node: Callable[..., ThreadNode]) -> ThreadNode:
    """A node on the fast mock board, but with the amplifier watchdog's shortest ``max_on_s`` (10 s)."""
    profile = yaml.safe_load(FAST_PROFILE)
    profile["amplifier"]["max_on_s"] = WATCHDOG_S
    (hub.profiles / "watchdog.yaml").write_text(yaml.safe_dump(profile), encoding="utf-8")
    config = node_config(hub, tmp_path)
    return start_node(dataclasses.replace(
        config, relay=RelayConfig(no_signal_s=NO_SIGNAL_S, reconnect_max_s=1),
        gpio=dataclasses.replace(config.gpio, profile="watchdog"),
    ))


@pytest.fixture
def amp(relay_node: ThreadNode) -> AmpHistory:
    return AmpHistory(relay_node)


def post_relay(hub: Hub, events: EventLog, bulletin_id: str, url: str, duration_s: float, text: str = "") -> dict:
    now = int(time.time())
    payload = bulletin(id=bulletin_id, iat=now, exp=now + 3600, text=text, targets=(f"zone-{hub.zone}",),
                       chime=False, relay={"url": url, "duration_s": duration_s})
    events.publish([(hub.topic(payload), hub.signed(payload), True)])
    return payload


def wavs(node: ThreadNode, bulletin_id: str) -> list[Path]:
    return sorted(node.out_dir.glob(f"{bulletin_id}-r1*.wav"), key=lambda p: p.stat().st_mtime)


def tone_end_s(path: Path) -> float:
    """Where the tone in the WAV ends, in seconds from its start."""
    pcm = read_wav(path)
    size = pcm.rate // 50
    blocks = pcm.samples[: len(pcm.samples) // size * size].reshape(-1, size)
    loud = np.flatnonzero(np.sqrt(np.mean(blocks**2, axis=1)) > 0.01)
    return float(loud[-1] + 1) * size / pcm.rate


def tone_seconds(path: Path) -> float:
    """Seconds of the WAV with the tone in it (20 ms blocks above -40 dBFS)."""
    pcm = read_wav(path)
    size = pcm.rate // 50
    blocks = pcm.samples[: len(pcm.samples) // size * size].reshape(-1, size)
    return float(np.count_nonzero(np.sqrt(np.mean(blocks**2, axis=1)) > 0.01)) * size / pcm.rate


@pytest.mark.timing  # the amplifier's switching and the start, to tens of ms of wall time
def test_a_now_relay_plays_the_stream_at_programme_loudness_and_ends_on_time(
    icecast: Icecast, hub: Hub, events: EventLog, relay_node: ThreadNode, amp: AmpHistory
) -> None:
    icecast.feed(amplitude=0.125)  # a tone peaking at -18 dBFS: about -21 LUFS, to be brought to -16
    published = time.time()
    post_relay(hub, events, "b-relay-1", icecast.url, duration_s=5)
    started = events.wait("started", bulletin="b-relay-1")[0]
    finished = events.wait("finished", bulletin="b-relay-1", timeout=20)[0]
    assert ms(started["audio_start"]) - published * 1000 < 3000, "a relay starts within seconds"
    # the end is 5 s after the first attempt (before the amplifier's warm-up), not 5 s of audio after it
    assert 3.5 < finished["duration_s"] <= 5.0
    edges = amp.edges()
    assert [on for _, on in edges] == [True, False]
    assert abs(edges[0][0] * 1000 - ms(started["amp_on"])) < 50
    assert abs(edges[1][0] * 1000 - ms(finished["amp_off"])) < 50
    [wav] = wavs(relay_node, "b-relay-1")
    assert tone_seconds(wav) > 3.0
    assert integrated_lufs([read_wav(wav)]) == pytest.approx(-16.0, abs=1.0)
    assert np.max(np.abs(read_wav(wav).samples)) <= 10 ** (-1 / 20) + 1e-3, "the limiter's ceiling holds"


def test_the_amplifier_goes_off_when_the_studio_goes_off_the_air_and_on_when_it_returns(
    icecast: Icecast, hub: Hub, events: EventLog, relay_node: ThreadNode, amp: AmpHistory
) -> None:
    source = icecast.feed()
    payload = post_relay(hub, events, "b-relay-2", icecast.url, duration_s=60, text=SHORT)
    events.wait("started", bulletin="b-relay-2")
    time.sleep(2.5)  # the intro (a short sentence), then the stream
    source.stop()
    assert source.stopped_at is not None
    gone = events.wait("interrupted", bulletin="b-relay-2", timeout=15)[0]
    assert gone["reason"] == "no_signal"
    off = [t for t, on in amp.edges() if not on]
    assert len(off) == 1
    assert off[0] - source.stopped_at <= NO_SIGNAL_S + OFF_MARGIN_S, "the amplifier is not left on over silence"
    time.sleep(1.5)  # off the air a while: the node keeps trying, with the amplifier off
    assert amp.levels() == [True, False]

    source.start()
    back = time.time()
    events.wait("started", bulletin="b-relay-2", count=2, timeout=20)
    store = relay_node.daemon.store
    assert store.occurrence_state("b-relay-2", 1, "now") == "started", "on the air again: a restart would say so"
    assert events.of(type_="started", bulletin="b-relay-2")[1]["amp_on"] and time.time() - back < 10
    time.sleep(2.0)
    events.publish([(hub.topic(payload), hub.signed(tombstone_for(payload, time.time())), True)])
    stopped = wait_for(lambda: [e for e in events.of(type_="interrupted", bulletin="b-relay-2")
                                if e["reason"] == "cancelled"], 10, "the relay to stop on its cancel")
    assert stopped
    assert amp.levels() == [True, False, True, False]
    first, second = wavs(relay_node, "b-relay-2")
    assert tone_seconds(second) > 1.5, "the stream is heard again once it returns"
    assert tone_seconds(first) > 1.0


def test_an_emergency_interrupts_a_relay_which_comes_back_until_its_end(
    icecast: Icecast, hub: Hub, events: EventLog, relay_node: ThreadNode, amp: AmpHistory
) -> None:
    icecast.feed()
    post_relay(hub, events, "b-relay-3", icecast.url, duration_s=11)
    first = events.wait("started", bulletin="b-relay-3")[0]
    time.sleep(1.0)
    now = int(time.time())
    emergency = bulletin(id="b-khan-1", iat=now, exp=now + 600, text=SHORT, targets=(f"zone-{hub.zone}",),
                         priority="emergency", chime=False)
    events.publish([(hub.topic(emergency), hub.signed(emergency), True)])
    cut = events.wait("interrupted", bulletin="b-relay-3")[0]
    assert cut["reason"] == "preempted"
    spoken = events.wait("finished", bulletin="b-khan-1", timeout=30)[0]
    again = events.wait("started", bulletin="b-relay-3", count=2, timeout=20)[1]
    assert ms(again["amp_on"]) >= ms(spoken["amp_off"])
    finished = events.wait("finished", bulletin="b-relay-3", timeout=30)[0]
    # its original end: 11 s after the first attempt, which came just before the first amplifier switch-on
    end = ms(finished["audio_end"])
    assert ms(first["amp_on"]) + 9_000 < end <= ms(first["amp_on"]) + 11_000 + 200
    assert amp.levels() == [True, False] * 3  # relay, emergency, relay


def test_a_relay_whose_stream_never_comes_is_skipped_without_the_amplifier(
    icecast: Icecast, hub: Hub, events: EventLog, relay_node: ThreadNode, amp: AmpHistory
) -> None:
    post_relay(hub, events, "b-relay-4", icecast.url, duration_s=3)  # no source on the mount: 404
    skipped = events.wait("skipped", bulletin="b-relay-4", timeout=15)[0]
    assert skipped["reason"] == "no_signal"
    assert amp.edges() == []
    assert not events.of(type_="started", bulletin="b-relay-4")


def test_a_silent_stream_switches_the_amplifier_off_after_no_signal_s(
    icecast: Icecast, hub: Hub, events: EventLog, relay_node: ThreadNode, amp: AmpHistory
) -> None:
    icecast.feed(tone_s=6)  # the studio's fader goes down; the encoder stays on the air, sending silence
    payload = post_relay(hub, events, "b-relay-5", icecast.url, duration_s=60)
    started = events.wait("started", bulletin="b-relay-5")[0]
    gone = events.wait("interrupted", bulletin="b-relay-5", timeout=20)[0]
    assert gone["reason"] == "no_signal"
    [wav] = wavs(relay_node, "b-relay-5")
    silent_from = ms(started["audio_start"]) + tone_end_s(wav) * 1000  # when the loudspeakers went quiet
    [_, (off, _)] = amp.edges()
    assert off * 1000 - silent_from <= (NO_SIGNAL_S + OFF_MARGIN_S) * 1000, "not left on over silence"
    assert off * 1000 - silent_from >= 0, "the tone was played to its end"
    time.sleep(2.0)  # still silent: the node listens with the amplifier off
    assert amp.levels() == [True, False]
    events.publish([(hub.topic(payload), hub.signed(tombstone_for(payload, time.time())), True)])
    events.wait("interrupted", bulletin="b-relay-5", count=2, timeout=10)
    assert events.of(type_="interrupted", bulletin="b-relay-5")[1]["reason"] == "cancelled"
    assert amp.levels() == [True, False]


@pytest.mark.timing  # the amplifier's switching and the start, to tens of ms of wall time
def test_a_scheduled_relay_starts_on_its_instant_and_outlasts_the_amplifier_watchdog(
    icecast: Icecast, hub: Hub, events: EventLog, relay_node: ThreadNode, amp: AmpHistory
) -> None:
    icecast.feed()
    now = int(time.time())
    at, duration = now + 4, WATCHDOG_S + 2
    payload = bulletin(id="b-relay-6", iat=now, exp=now + 3600, text="", targets=(f"zone-{hub.zone}",), chime=False,
                       schedule={"at": [rfc3339(at)]}, relay={"url": icecast.url, "duration_s": duration})
    events.publish([(hub.topic(payload), hub.signed(payload), True)])
    started = events.wait("started", bulletin="b-relay-6", timeout=15)[0]
    finished = events.wait("finished", bulletin="b-relay-6", timeout=30)[0]
    assert abs(ms(started["audio_start"]) - at * 1000) < 100, "clusters in earshot start together"
    assert abs(ms(finished["audio_end"]) - (at + duration) * 1000) < 100, "the end counts from the scheduled start"
    assert amp.levels() == [True, False], "on the air with signal, the watchdog does not cut a relay"
    assert relay_node.daemon.watchdog_fired_at is None


@pytest.mark.parametrize(("start", "until", "end"), [
    ("2026-12-06T05:30:00+07:00", "06:00", "2026-12-06T06:00:00+07:00"),
    ("2026-12-06T06:00:00+07:00", "06:00", "2026-12-07T06:00:00+07:00"),  # the first such time *after* the start
    ("2026-12-06T23:30:00+07:00", "00:15", "2026-12-07T00:15:00+07:00"),
])
def test_a_relay_until_a_time_of_day_ends_at_its_next_occurrence(start: str, until: str, end: str) -> None:
    relay = Relay(url="http://radio.example/live.mp3", until=dt.time.fromisoformat(until))
    assert relay_end(relay, parse_rfc3339(start), ZoneInfo("Asia/Ho_Chi_Minh")) == parse_rfc3339(end)
