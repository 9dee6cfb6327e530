"""Plays through PortAudio to a sound card, the node's real output path: ALSA's ``null`` device stands for the card
(this machine has none), defined by the test in its own ALSA config, with a second device that breaks at the first
sample written, as a card does when its USB plug is pulled mid-play."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import SHORT, EventLog, Hub, ThreadNode

from radiod.clock import parse_rfc3339
from radiod.config import AudioConfig

sounddevice = pytest.importorskip("sounddevice", reason="PortAudio is not installed (make test installs it)")

ALSA_DEFAULTS = Path("/usr/share/alsa/alsa.conf")


@pytest.fixture
def cards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """ALSA devices ``radiod-card`` (plays into nothing, at any rate) and ``radiod-broken`` (its writes fail), seen
    by PortAudio from now on; PortAudio is initialized again after the test, without them."""
    if not ALSA_DEFAULTS.is_file():
        pytest.skip("ALSA's configuration is not installed (libasound2-data)")
    config = tmp_path / "asound.conf"
    config.write_text(
        f"<{ALSA_DEFAULTS}>\n"
        "pcm.radiod-card { type null }\n"
        f'pcm.radiod-broken {{ type file slave.pcm "radiod-card" file "{tmp_path}/no-such-dir/out.raw" }}\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(config))
    sounddevice._terminate()
    sounddevice._initialize()
    yield
    monkeypatch.undo()
    sounddevice._terminate()
    sounddevice._initialize()


def amplifier(node: ThreadNode) -> list[tuple[float, bool]]:
    return [(at, on) for at, relay, on in node.daemon.station.relays.history() if relay == "amplifier"]


@pytest.mark.usefixtures("cards")
def test_a_bulletin_plays_through_the_sound_card_inside_the_amplifiers_on_time(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode]
) -> None:
    node = start_node(audio=AudioConfig(output="radiod-card"))
    bid = hub.post(SHORT)["id"]
    events.wait("finished", bulletin=bid, timeout=60)
    started = events.of(type_="started", bulletin=bid)[0]
    (on_at, on), (off_at, off) = amplifier(node)
    assert on and not off
    # the null device takes samples as fast as they come, so only the order is checked, not the length
    assert on_at < parse_rfc3339(started["audio_start"]) <= off_at


@pytest.mark.usefixtures("cards")
def test_a_card_that_fails_mid_play_fails_the_play_once_without_cycling_the_amplifier(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode]
) -> None:
    node = start_node(audio=AudioConfig(output="radiod-broken"))
    bid = hub.post(SHORT)["id"]
    failed = events.wait("failed", bulletin=bid, timeout=60)[0]
    assert failed["reason"] == "audio" and "radiod-broken" in failed["message"]
    assert [on for _, on in amplifier(node)] == [True, False]  # switched on once, and off: never again
    assert len(events.of(type_="failed", bulletin=bid)) == 1
    later = hub.post(SHORT)["id"]  # the node plays on: the next bulletin is tried afresh
    events.wait("failed", bulletin=later, timeout=60)
