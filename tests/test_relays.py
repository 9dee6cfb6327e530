"""The relays as a technician would check them on the pins: gpiozero's MockFactory records every pin change.

MockPin.states is a list of (seconds since the previous change, state); the first entry is the state when the
history was cleared.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from radiod.audio import relays as relays_module
from radiod.audio.relays import Relays, make_pin_factory, switch_off_on_signals
from radiod.errors import RelayError
from radiod.profiles import Profile, Relay, load_profile

REPO = Path(__file__).resolve().parents[1]
PROFILES = REPO / "firmware_profiles"


def mock_profile(**amplifier: float) -> Profile:
    profile = load_profile("mock", PROFILES)
    return dataclasses.replace(profile, amplifier=dataclasses.replace(profile.amplifier, **amplifier))


@pytest.fixture
def factory() -> MockFactory:
    return MockFactory()


@pytest.fixture
def relays(factory: MockFactory) -> Iterator[Relays]:
    with Relays(mock_profile(), factory) as r:
        yield r


def levels(factory: MockFactory, pin: str) -> list[bool]:
    return [s.state for s in factory.pin(pin).states]


def test_everything_starts_off_and_state_names_every_device(relays: Relays, factory: MockFactory) -> None:
    assert relays.state() == {"amplifier": False, "line-1": False, "line-2": False, "status_led": False}
    for pin in ("GPIO26", "GPIO20", "GPIO21", "GPIO16"):
        assert factory.pin(pin).function == "output"
        assert factory.pin(pin).state is False
    assert relays.amp_on_since is None


def test_the_board_is_composed_of_an_amplifier_speaker_lines_and_a_status_led(
    relays: Relays, factory: MockFactory
) -> None:
    # Each device drives its own pins, as gpiozero's composite devices do; Relays only orders them.
    relays.amplifier.on()
    assert factory.pin("GPIO26").state is True and relays.amplifier.is_active
    assert factory.pin("GPIO16").state is False  # the LED is the station's to light, not the amplifier's
    relays.lines.on(relays.lines.resolve(["line-1"]))
    assert relays.lines.state() == {"line-1": True, "line-2": False}
    assert relays.led is not None
    relays.led.on_air()
    assert factory.pin("GPIO16").state is True
    relays.all_off()
    assert relays.state() == {"amplifier": False, "line-1": False, "line-2": False, "status_led": False}
    names = [name for _, name, _ in relays.history()]
    assert names == ["amplifier", "line-1", "status_led", "line-1", "amplifier", "status_led"]


def test_amp_and_lines_switch_their_own_pins(relays: Relays, factory: MockFactory) -> None:
    before = time.time()
    relays.amp_on()
    assert before <= (relays.amp_on_since or 0) <= time.time()
    assert factory.pin("GPIO26").state is True
    assert factory.pin("GPIO16").state is True  # the on-air LED follows the amplifier
    assert factory.pin("GPIO20").state is False

    relays.lines_on(["line-2"])
    assert relays.state() == {"amplifier": True, "line-1": False, "line-2": True, "status_led": True}
    relays.lines_on()
    assert relays.state()["line-1"] is True

    relays.lines_off()
    relays.amp_off()
    assert relays.state() == {"amplifier": False, "line-1": False, "line-2": False, "status_led": False}
    assert relays.amp_on_since is None
    assert levels(factory, "GPIO26") == [False, True, False]
    assert levels(factory, "GPIO21") == [False, True, False]


def test_unknown_line_names_the_known_lines_and_switches_nothing(relays: Relays) -> None:
    with pytest.raises(RelayError, match=r"'line-9'.*known lines: line-1, line-2"):
        relays.lines_on(["line-1", "line-9"])
    assert relays.state()["line-1"] is False


def test_low_active_profile_drives_the_pin_low_for_on(factory: MockFactory) -> None:
    profile = load_profile("relay-board-4ch", PROFILES)
    with Relays(profile, factory) as relays:
        amp = factory.pin("GPIO5")
        assert amp.state is True  # off = high from the first instant
        relays.amp_on()
        assert amp.state is False
        assert relays.state()["amplifier"] is True
        relays.all_off()
        assert amp.state is True


def test_all_off_is_idempotent_and_close_leaves_everything_off(factory: MockFactory) -> None:
    relays = Relays(mock_profile(), factory)
    relays.amp_on()
    relays.lines_on()
    relays.all_off()
    relays.all_off()
    assert not any(relays.state().values())
    relays.amp_on()
    relays.close()
    relays.close()
    relays.all_off()  # a late signal after close must not raise
    assert factory.pin("GPIO26").state is False
    assert factory.pin("GPIO26").function == "input"  # released
    # the pins are free again: a new Relays can take them
    Relays(mock_profile(), factory).close()


def test_watchdog_forces_everything_off_and_reports(factory: MockFactory) -> None:
    reports: list[float] = []
    fired = threading.Event()
    with Relays(mock_profile(max_on_s=0.2), factory) as relays:
        relays.on_watchdog(lambda on_for: (reports.append(on_for), fired.set()))
        factory.pin("GPIO26").clear_states()
        relays.amp_on()
        relays.lines_on()
        assert fired.wait(2.0)
        assert not any(relays.state().values())
        assert relays.amp_on_since is None
        on_for = factory.pin("GPIO26").states[2].timestamp
        assert 0.2 <= on_for < 0.3, on_for
        assert reports == [pytest.approx(0.2, abs=0.08)]


def test_watchdog_is_disarmed_by_amp_off_and_rearmed_by_amp_on(factory: MockFactory) -> None:
    fired = threading.Event()
    with Relays(mock_profile(max_on_s=0.4), factory) as relays:
        relays.on_watchdog(lambda _: fired.set())
        relays.amp_on()
        time.sleep(0.2)
        relays.amp_off()
        relays.amp_on()  # a new on-period: the first timer (due at 0.4 s) must not cut it
        assert not fired.wait(0.3)  # now 0.5 s after the first amp_on, 0.1 s before the second timer
        assert relays.state()["amplifier"] is True
        assert fired.wait(1.0)  # the second timer, due 0.4 s after the second amp_on
        assert relays.state()["amplifier"] is False


def test_a_play_known_to_last_longer_than_max_on_s_is_allowed_its_length(
    factory: MockFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recording of two hours on a board whose watchdog cuts at 30 minutes: the play says how long it needs, and
    the watchdog fires only WATCHDOG_MARGIN_S after that (here 0.1 s), should the play hang."""
    monkeypatch.setattr(relays_module, "WATCHDOG_MARGIN_S", 0.1)
    fired = threading.Event()
    with Relays(mock_profile(max_on_s=0.2), factory) as relays:
        relays.on_watchdog(lambda _: fired.set())
        relays.amp_on(expected_s=0.5)
        assert not fired.wait(0.45), "cut before the play's own length"
        assert relays.state()["amplifier"] is True
        assert fired.wait(1.0), "a play that hangs past its length and the margin is still switched off"
        assert relays.state()["amplifier"] is False


def test_pin_clash_in_a_profile_is_a_relay_error_and_releases_what_it_took(factory: MockFactory) -> None:
    profile = mock_profile()
    clash = dataclasses.replace(profile, lines={"line-1": Relay(pin="GPIO26", active_high=True)})
    with pytest.raises(RelayError, match=r"speaker line 'line-1' on pin GPIO26"):
        Relays(clash, factory)
    Relays(profile, factory).close()  # GPIO26 was released


def test_pin_factories() -> None:
    assert isinstance(make_pin_factory("mock"), MockFactory)
    with pytest.raises(RelayError, match=r"unknown pin factory 'gpio'.*lgpio"):
        make_pin_factory("gpio")


@pytest.mark.skipif(Path("/dev/gpiochip0").exists(), reason="this machine has GPIO")
def test_hardware_pin_factory_off_a_pi_says_what_is_wrong() -> None:
    # This machine has no GPIO: each factory either lacks its library or cannot find a Pi; both are told.
    for name in ("lgpio", "rpigpio", "pigpio", "native"):
        with pytest.raises(RelayError, match=rf"pin factory '{name}' (needs the Python module|cannot start)"):
            make_pin_factory(name)


def test_signal_handler_switches_off_before_the_previous_handler(relays: Relays) -> None:
    seen: list[bool] = []
    old = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(relays.state()["amplifier"]))
    old_int = signal.getsignal(signal.SIGINT)
    try:
        switch_off_on_signals(relays)
        relays.amp_on()
        signal.raise_signal(signal.SIGTERM)
        assert seen == [False]  # the previous handler ran, and the amplifier was already off
    finally:
        signal.signal(signal.SIGTERM, old)
        signal.signal(signal.SIGINT, old_int)


def test_ignored_signal_stays_ignored(relays: Relays) -> None:
    old = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    old_int = signal.getsignal(signal.SIGINT)
    try:
        switch_off_on_signals(relays)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, old)
        signal.signal(signal.SIGINT, old_int)


def test_signal_handlers_need_the_main_thread(relays: Relays) -> None:
    errors: list[BaseException] = []

    def install() -> None:
        try:
            switch_off_on_signals(relays)
        except RelayError as exc:
            errors.append(exc)

    thread = threading.Thread(target=install)
    thread.start()
    thread.join()
    assert len(errors) == 1
    assert "main thread" in str(errors[0])


CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from gpiozero.pins.mock import MockFactory
    from radiod.profiles import load_profile
    from radiod.audio.relays import Relays, switch_off_on_signals

    factory = MockFactory()
    relays = Relays(load_profile("mock", Path(sys.argv[1])), factory)
    switch_off_on_signals(relays)
    amp = factory.pin("GPIO26")
    cleared = time.monotonic()
    amp.clear_states()
    relays.amp_on()
    try:
        print("ready", flush=True)  # inside the try: the signal may come before the next line runs
        while True:
            time.sleep(10)
    finally:
        history = [[s.timestamp, s.state] for s in amp.states]
        print(json.dumps({"cleared": cleared, "history": history}), flush=True)
    """
)


@pytest.mark.parametrize(("signum", "returncode"), [(signal.SIGTERM, 128 + 15), (signal.SIGINT, -signal.SIGINT)])
@pytest.mark.timing
def test_signal_to_the_process_switches_the_amplifier_off_before_it_exits(signum: int, returncode: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(PROFILES)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        sent = time.monotonic()  # CLOCK_MONOTONIC is system-wide: comparable with the child's
        child.send_signal(signum)
        out, err = child.communicate(timeout=10)
    finally:
        child.kill()
    assert child.returncode == returncode, err
    report = json.loads(out.strip().splitlines()[-1])
    states = [state for _, state in report["history"]]
    assert states == [False, True, False]  # on, then off before the process ended
    switched_off = report["cleared"] + sum(delay for delay, _ in report["history"])
    latency = switched_off - sent
    print(f"signal {signal.Signals(signum).name} -> amplifier off: {latency * 1000:.2f} ms")
    assert 0 <= latency < 0.1


def test_status_led_patterns_a_technician_can_read() -> None:
    """Fast blink = fault, slow blink = no broker, short flash = ok, steady = on air (docs/wiring.md)."""
    factory = MockFactory()
    profile = load_profile("mock", PROFILES)
    with Relays(profile, factory) as relays:
        led = factory.pin(profile.status_led.pin)

        def toggles_during(seconds: float) -> int:
            before = len(led.states)
            time.sleep(seconds)
            return len(led.states) - before

        relays.show("fault")
        assert toggles_during(1.2) >= 4  # 0.2 s on, 0.2 s off
        relays.show("no_broker")
        assert 1 <= toggles_during(1.2) <= 3  # 1 s on, 1 s off
        relays.amp_on()
        assert relays.state()["status_led"] is True
        assert toggles_during(0.6) == 0  # steady while on air
        relays.amp_off()
        relays.show("ok")
        assert toggles_during(2.2) in (1, 2, 3)  # a 0.1 s flash every 2 s
