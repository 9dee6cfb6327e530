"""The amplifier and speaker-line relays, driven through gpiozero, with a maximum on-time watchdog.

Every failure mode must end with the amplifier OFF: a bug that leaves it on blasts a commune's loudspeakers
(and burns the amplifier) until someone climbs the pole. So every relay starts off, :meth:`Relays.all_off` is
safe from any thread and from a signal handler, a watchdog forces everything off after the profile's
``max_on_s`` (for a live relay, ``max_on_s`` after its last sign of life: :meth:`Relays.keep_on`), and
:func:`switch_off_on_signals` switches off on SIGTERM/SIGINT before anything else runs. What happens when the
process dies without running any of this is down to the wiring: see ``docs/wiring.md``.

The status LED is an "on air" lamp: it is lit exactly while the amplifier relay is commanded on, so a
technician at the cabinet can see what radiod believes without a meter.
"""

from __future__ import annotations

import importlib
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from types import FrameType, TracebackType
from typing import Literal

from gpiozero import DigitalOutputDevice, GPIOZeroError, OutputDevice
from gpiozero.pins import Factory

from radiod.errors import RelayError
from radiod.profiles import Profile, Relay

# gpiozero's factory class for each profile ``pin_factory``, and what to install when its library is missing.
_FACTORIES: dict[str, tuple[str, str, str]] = {
    "lgpio": ("gpiozero.pins.lgpio", "LGPIOFactory", "lgpio (apt install python3-lgpio, or pip install lgpio)"),
    "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory", "RPi.GPIO (apt install python3-rpi.gpio)"),
    "pigpio": ("gpiozero.pins.pigpio", "PiGPIOFactory", "pigpio (apt install python3-pigpio; run pigpiod)"),
    "native": ("gpiozero.pins.native", "NativeFactory", "nothing (gpiozero's native factory is pure Python)"),
    "mock": ("gpiozero.pins.mock", "MockFactory", "nothing (the mock factory ships with gpiozero)"),
}

# state() keys for the two fixed devices; a speaker line may not take one of these names.
AMPLIFIER = "amplifier"
STATUS_LED = "status_led"
HISTORY_LENGTH = 64
WATCHDOG_MARGIN_S = 60.0
"""A play of known length longer than ``max_on_s`` is switched off this long after its expected end, if it hangs."""
LedPattern = Literal["off", "ok", "no_broker", "fault"]
LED_PATTERNS: dict[str, tuple[float, float]] = {"ok": (0.1, 1.9), "no_broker": (1.0, 1.0), "fault": (0.2, 0.2)}
"""Status LED (on, off) seconds per pattern; steady on means on air."""


def make_pin_factory(name: str) -> Factory:
    """gpiozero's pin factory called ``name``; its hardware library is imported only now, when it is needed.

    Raises RelayError naming the missing package, or saying this machine has no usable GPIO.
    """
    try:
        module_name, class_name, package = _FACTORIES[name]
    except KeyError:
        raise RelayError(f"unknown pin factory '{name}' (known: {', '.join(sorted(_FACTORIES))})") from None
    try:
        factory_class = getattr(importlib.import_module(module_name), class_name)
    except ImportError as exc:
        raise RelayError(
            f"pin factory '{name}' needs the Python module '{exc.name}', which is not installed: install {package}"
        ) from exc
    try:
        return factory_class()
    # Each library fails its own way off a Pi (lgpio.error, RuntimeError from RPi.GPIO, OSError from pigpio's
    # socket, gpiozero's PinUnknownPi); the original stays chained and its text is in the message.
    except Exception as exc:
        raise RelayError(
            f"pin factory '{name}' cannot start: {exc}. Is this a Raspberry Pi with GPIO (and, for pigpio, is "
            "pigpiod running)? Use the 'mock' profile on machines without GPIO"
        ) from exc


_History = Callable[[str, bool], None]
"""Notes one switching: (device name, on)."""


class _Switch:
    """One relay as a gpiozero output device, off from the first instant, that notes every change it makes."""

    def __init__(
        self, name: str, relay: Relay, factory: Factory, note: _History, *, role: str, kind: type[OutputDevice]
    ) -> None:
        self.name = name
        self._note = note
        try:
            self.device = kind(relay.pin, active_high=relay.active_high, initial_value=False, pin_factory=factory)
        except GPIOZeroError as exc:
            raise RelayError(f"{role} on pin {relay.pin}: {exc}") from exc

    @property
    def is_active(self) -> bool:
        return bool(self.device.is_active)

    def set(self, *, on: bool) -> None:
        """Switch, noting it if it changes anything."""
        if self.is_active != on:
            self.force(on=on)

    def force(self, *, on: bool) -> None:
        """Switch and note it, whatever the device was doing (a blinking LED may be lit at this instant)."""
        self.device.on() if on else self.device.off()
        self._note(self.name, on)

    def close(self) -> None:
        self.device.close()


class Amplifier:
    """The amplifier relay and its watchdog: each switch-on arms a timer of ``max_on_s``; the timer calls
    ``expired(generation)``, and :meth:`is_armed_by` tells whether that arming still stands (any switch-off
    bumps the generation, so a stale timer does nothing)."""

    def __init__(self, switch: _Switch, max_on_s: float, expired: Callable[[int], None]) -> None:
        self._switch = switch
        self._max_on_s = max_on_s
        self._limit_s = max_on_s  # this switch-on's: longer for a play known to last longer (see on())
        self._expired = expired
        self.on_since: float | None = None  # time.time() of the switch-on, None while off
        self.on_mono = 0.0
        self._generation = 0
        self._timer: threading.Timer | None = None

    @property
    def is_active(self) -> bool:
        return self._switch.is_active

    def on(self, expected_s: float = 0.0) -> bool:
        """Switch on and arm the watchdog for ``max_on_s``, or ``expected_s`` if that is longer (a recording of
        known length); False (and nothing done) if already on."""
        if self.on_since is not None:
            return False
        self._limit_s = max(self._max_on_s, expected_s)
        self._switch.set(on=True)
        self.on_since, self.on_mono = time.time(), time.monotonic()
        self._arm()
        return True

    def rearm(self) -> bool:
        """Count ``max_on_s`` again from now, if the amplifier is on (False if it is off): the old timer is
        cancelled, and made stale should it be firing already."""
        if self.on_since is None:
            return False
        self.disarm()
        self._generation += 1
        self._arm()
        return True

    def _arm(self) -> None:
        timer = threading.Timer(self._limit_s, self._expired, args=(self._generation,))
        timer.daemon = True  # a pending timer must never keep a stopping daemon alive
        timer.name = "relay-watchdog"
        timer.start()
        self._timer = timer

    def off(self) -> None:
        """Switch off; the watchdog's timer, if any, is left to fire as a no-op (see :meth:`disarm`)."""
        self._switch.set(on=False)
        self.on_since = None
        self._generation += 1

    def disarm(self) -> None:
        """Cancel the watchdog's timer. Not from a signal handler: cancelling takes the timer's own lock."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def is_armed_by(self, generation: int) -> bool:
        return generation == self._generation and self.on_since is not None

    def close(self) -> None:
        self._switch.close()


class SpeakerLines:
    """The named speaker-line relays."""

    def __init__(self, switches: dict[str, _Switch], where: str) -> None:
        self._switches = switches
        self._where = where

    def resolve(self, names: Sequence[str] | None) -> list[str]:
        """The lines ``names`` selects (None: all), or RelayError naming the known lines."""
        chosen = list(self._switches) if names is None else list(names)
        unknown = [n for n in chosen if n not in self._switches]
        if unknown:
            known = ", ".join(self._switches) or "none"
            raise RelayError(
                f"unknown speaker line {', '.join(map(repr, unknown))} in {self._where} (known lines: {known})"
            )
        return chosen

    def on(self, names: Sequence[str]) -> None:
        for name in names:
            self._switches[name].set(on=True)

    def off(self) -> None:
        for switch in self._switches.values():
            switch.set(on=False)

    def state(self) -> dict[str, bool]:
        return {name: switch.is_active for name, switch in self._switches.items()}

    def close(self) -> None:
        for switch in self._switches.values():
            switch.close()


class StatusLed:
    """The "on air" lamp: steady while the amplifier is on, otherwise a blink pattern for the technician."""

    def __init__(self, switch: _Switch) -> None:
        self._switch = switch
        self.pattern: LedPattern = "off"

    @property
    def is_active(self) -> bool:
        return self._switch.is_active

    def on_air(self) -> None:
        """Steady on (this also stops a blink); noted in the history."""
        self._switch.force(on=True)

    def off_air(self) -> None:
        """Back to the pattern; the end of on-air is noted, an idle LED's blinking is not."""
        self._switch.force(on=False)
        self.show()

    def show(self, pattern: LedPattern | None = None) -> None:
        """Blink ``pattern`` (or the current one): ``ok``, ``no_broker``, ``fault``; ``off`` is dark."""
        if pattern is not None:
            self.pattern = pattern
        device = self._switch.device
        if not isinstance(device, DigitalOutputDevice):
            return
        if self.pattern == "off":
            device.off()
        else:
            on_s, off_s = LED_PATTERNS[self.pattern]
            device.blink(on_time=on_s, off_time=off_s, background=True)

    def close(self) -> None:
        self._switch.close()


class Relays:
    """The board's devices, all off at start: an :class:`Amplifier` (with its watchdog), the
    :class:`SpeakerLines`, and an optional :class:`StatusLed`, composed the way gpiozero composes devices.

    ``amp_on``/``amp_off``/``lines_on``/``lines_off`` switch one group each, so the caller (the station's play)
    owns the order; ``all_off`` is the emergency stop. One re-entrant lock guards them all: re-entrant because a
    signal handler runs ``all_off`` in the main thread, possibly while the main thread is inside another method.
    """

    def __init__(self, profile: Profile, pin_factory: Factory | None = None) -> None:
        for reserved in (AMPLIFIER, STATUS_LED):
            if reserved in profile.lines:
                raise RelayError(f"profile '{profile.description}': a speaker line may not be called '{reserved}'")
        self.profile = profile
        self._owns_factory = pin_factory is None
        self._factory = make_pin_factory(profile.pin_factory) if pin_factory is None else pin_factory
        self._lock = threading.RLock()
        self._history: deque[tuple[float, str, bool]] = deque(maxlen=HISTORY_LENGTH)
        self._on_watchdog: Callable[[float], None] | None = None
        self._closed = False
        where = f"profile '{profile.description}'"
        switches: list[_Switch] = []

        def switch(name: str, relay: Relay, role: str, kind: type[OutputDevice] = OutputDevice) -> _Switch:
            made = _Switch(name, relay, self._factory, self._note, role=f"{where}: {role}", kind=kind)
            switches.append(made)
            return made

        try:
            amp = switch(AMPLIFIER, profile.amplifier, AMPLIFIER)
            self.amplifier = Amplifier(amp, profile.amplifier.max_on_s, self._expired)
            self.lines = SpeakerLines(
                {name: switch(name, r, f"speaker line '{name}'") for name, r in profile.lines.items()}, where
            )
            led = profile.status_led
            self.led = StatusLed(switch(STATUS_LED, led, STATUS_LED, DigitalOutputDevice)) if led else None
        except BaseException:
            for made in switches:
                made.close()
            if self._owns_factory:
                self._factory.close()
            raise

    def _note(self, name: str, on: bool) -> None:
        self._history.append((time.time(), name, on))

    @property
    def amp_on_since(self) -> float | None:
        """When the amplifier went on (time.time()), or None while it is off."""
        return self.amplifier.on_since

    def on_watchdog(self, callback: Callable[[float], None]) -> None:
        """Call ``callback(on_for_s)`` (from the watchdog's thread) after the watchdog forced everything off."""
        self._on_watchdog = callback

    def amp_on(self, expected_s: float = 0.0) -> None:
        """Amplifier (and the on-air LED) on, and arm the watchdog; a no-op if it is already on.

        ``expected_s``: how long the play will hold it on, when known (warm-up, programme, hold): the watchdog
        then fires :data:`WATCHDOG_MARGIN_S` after that if it is longer than ``max_on_s``, so a signed two-hour
        recording plays to its end and a play that hangs is still switched off."""
        with self._lock:
            if self.amplifier.on(expected_s + WATCHDOG_MARGIN_S if expected_s else 0.0) and self.led:
                self.led.on_air()

    def keep_on(self) -> None:
        """A live relay still on the air says so: the watchdog's ``max_on_s`` counts again from now. A relay of
        the district radio may last hours, and switches the amplifier off by itself on silence
        (:mod:`radiod.audio.relay`); if its thread hangs, the calls stop and the watchdog acts as for any play."""
        with self._lock:
            self.amplifier.rearm()

    def amp_off(self) -> None:
        """Amplifier (and the on-air LED) off; disarms the watchdog."""
        with self._lock:
            self._switch_amp_off()
            self.amplifier.disarm()

    def resolve_lines(self, names: Sequence[str] | None) -> list[str]:
        """The speaker lines ``names`` selects (None: all), or RelayError naming the known lines.

        Public so a caller can refuse a bad line name before the amplifier goes on, not after its warm-up.
        """
        return self.lines.resolve(names)

    def lines_on(self, names: Sequence[str] | None = None) -> None:
        """Close the named speaker-line relays (None: all of them); nothing switches if a name is unknown."""
        chosen = self.lines.resolve(names)
        with self._lock:
            self.lines.on(chosen)

    def lines_off(self) -> None:
        """Open every speaker-line relay."""
        with self._lock:
            self.lines.off()

    def all_off(self) -> None:
        """Everything off, now. Idempotent; safe from any thread and from a signal handler.

        It takes only the re-entrant lock and writes pins; it does not cancel the watchdog timer (cancelling
        takes the timer's own non-re-entrant lock, which the interrupted main thread might be holding): the
        amplifier's bumped generation makes that timer a no-op when it fires.
        """
        with self._lock:
            if not self._closed:
                self._switch_everything_off()

    def state(self) -> dict[str, bool]:
        """What each pin is doing now: ``amplifier``, each line by name, and ``status_led`` if there is one."""
        with self._lock:
            states = {AMPLIFIER: self.amplifier.is_active, **self.lines.state()}
            if self.led:
                states[STATUS_LED] = self.led.is_active
            return states

    def close(self) -> None:
        """All off, then release the pins (and the pin factory, if this object made it). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._switch_everything_off()
            self.amplifier.disarm()
            for device in (self.amplifier, self.lines, self.led):
                if device is not None:
                    device.close()
            if self._owns_factory:
                self._factory.close()

    def __enter__(self) -> Relays:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def history(self) -> list[tuple[float, str, bool]]:
        """The latest switchings as (time.time(), relay name, on), oldest first: for `status` and the demo."""
        with self._lock:
            return list(self._history)

    def show(self, pattern: LedPattern) -> None:
        """What the status LED blinks while the amplifier is off, for a technician at the cabinet (see
        docs/wiring.md): ``ok`` a short flash every 2 s, ``no_broker`` a slow blink, ``fault`` a fast blink."""
        with self._lock:
            if self.led is None:
                return
            self.led.pattern = pattern
            if self.amplifier.on_since is None and not self._closed:
                self.led.show()

    def _switch_amp_off(self) -> None:
        was_on = self.amplifier.on_since is not None
        self.amplifier.off()
        if self.led:
            if was_on:
                self.led.off_air()
            else:
                self.led.show()

    def _switch_everything_off(self) -> None:
        """Lines first, then the amplifier (the order a play uses too); caller holds the lock."""
        self.lines.off()
        self._switch_amp_off()

    def _expired(self, generation: int) -> None:
        """The watchdog's thread: if the amplifier is still on since that arming, force everything off, report."""
        with self._lock:
            if not self.amplifier.is_armed_by(generation):
                return
            on_for = time.monotonic() - self.amplifier.on_mono
            self._switch_everything_off()
            callback = self._on_watchdog
        if callback is not None:
            callback(on_for)


def switch_off_on_signals(relays: Relays) -> None:
    """On SIGTERM and SIGINT, switch every relay off FIRST, then do what the signal did before.

    The previous handler is chained (the daemon's own shutdown, or Python's KeyboardInterrupt for SIGINT);
    where there was none (SIG_DFL), the process exits with 128 + signum as a killed process would. A signal
    that was ignored stays ignored: it will not end the process, so it must not cut a bulletin short either.
    Must be called from the main thread, the only one Python lets install signal handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        raise RelayError("switch_off_on_signals must be called from the main thread (Python's rule for signals)")
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        if previous == signal.SIG_IGN:
            continue
        signal.signal(signum, _switch_off_then(relays, previous))


def _switch_off_then(
    relays: Relays, previous: Callable[[int, FrameType | None], object] | int | None
) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        relays.all_off()
        if callable(previous):
            previous(signum, frame)
        else:  # SIG_DFL, or None for a handler installed outside Python: end the process as the signal would
            raise SystemExit(128 + signum)

    return handler
