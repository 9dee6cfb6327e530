"""The amplifier and speaker-line relays, driven through gpiozero, with a maximum on-time watchdog.

Every failure mode must end with the amplifier OFF: a bug that leaves it on blasts a commune's loudspeakers
(and burns the amplifier) until someone climbs the pole. So every relay starts off, :meth:`Relays.all_off` is
safe from any thread and from a signal handler, a watchdog forces everything off after the profile's
``max_on_s``, and :func:`switch_off_on_signals` switches off on SIGTERM/SIGINT before anything else runs. What
happens when the process dies without running any of this is down to the wiring: see ``docs/wiring.md``.

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


class Relays:
    """The board's relays: one amplifier, named speaker lines, an optional status LED, all off at start.

    ``amp_on``/``amp_off``/``lines_on``/``lines_off`` switch one group each, so the caller (playback) owns the
    order; ``all_off`` is the emergency stop. One re-entrant lock guards the state: re-entrant because a signal
    handler runs ``all_off`` in the main thread, possibly while the main thread is inside another method.
    """

    def __init__(self, profile: Profile, pin_factory: Factory | None = None) -> None:
        for reserved in (AMPLIFIER, STATUS_LED):
            if reserved in profile.lines:
                raise RelayError(f"profile '{profile.description}': a speaker line may not be called '{reserved}'")
        self.profile = profile
        self._owns_factory = pin_factory is None
        self._factory = make_pin_factory(profile.pin_factory) if pin_factory is None else pin_factory
        self._lock = threading.RLock()
        self._devices: list[OutputDevice] = []
        try:
            self._amp = self._output(AMPLIFIER, profile.amplifier)
            self._lines = {name: self._output(f"speaker line '{name}'", r) for name, r in profile.lines.items()}
            led = profile.status_led
            self._led = self._output(STATUS_LED, led, DigitalOutputDevice) if led else None
        except BaseException:
            self._release()
            raise
        self._on_since: float | None = None
        self._on_mono = 0.0
        self._generation = 0  # bumped whenever the amplifier goes off: a stale watchdog timer then does nothing
        self._timer: threading.Timer | None = None
        self._on_watchdog: Callable[[float], None] | None = None
        self._closed = False
        self._history: deque[tuple[float, str, bool]] = deque(maxlen=HISTORY_LENGTH)
        self._pattern: LedPattern = "off"

    def _output(self, role: str, relay: Relay, kind: type[OutputDevice] = OutputDevice) -> OutputDevice:
        """One relay as a gpiozero OutputDevice, off from the first instant (initial_value=False)."""
        try:
            device = kind(relay.pin, active_high=relay.active_high, initial_value=False, pin_factory=self._factory)
        except GPIOZeroError as exc:
            raise RelayError(f"profile '{self.profile.description}': {role} on pin {relay.pin}: {exc}") from exc
        self._devices.append(device)
        return device

    @property
    def amp_on_since(self) -> float | None:
        """When the amplifier went on (time.time()), or None while it is off."""
        return self._on_since

    def on_watchdog(self, callback: Callable[[float], None]) -> None:
        """Call ``callback(on_for_s)`` (from the watchdog's thread) after the watchdog forced everything off."""
        self._on_watchdog = callback

    def amp_on(self) -> None:
        """Amplifier (and the on-air LED) on, and arm the watchdog; a no-op if it is already on."""
        with self._lock:
            if self._on_since is not None:
                return
            self._set(AMPLIFIER, self._amp, on=True)
            if self._led:
                self._led.on()  # steady while on air; also stops a status blink
                self._history.append((time.time(), STATUS_LED, True))
            self._on_since, self._on_mono = time.time(), time.monotonic()
            timer = threading.Timer(self.profile.amplifier.max_on_s, self._watchdog_expired, args=(self._generation,))
            timer.daemon = True  # a pending timer must never keep a stopping daemon alive
            timer.name = "relay-watchdog"
            timer.start()
            self._timer = timer

    def amp_off(self) -> None:
        """Amplifier (and the on-air LED) off; disarms the watchdog."""
        with self._lock:
            self._switch_amp_off()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def resolve_lines(self, names: Sequence[str] | None) -> list[str]:
        """The speaker lines ``names`` selects (None: all), or RelayError naming the known lines.

        Public so a caller can refuse a bad line name before the amplifier goes on, not after its warm-up.
        """
        chosen = list(self._lines) if names is None else list(names)
        unknown = [n for n in chosen if n not in self._lines]
        if unknown:
            known = ", ".join(self._lines) or "none"
            raise RelayError(
                f"unknown speaker line {', '.join(map(repr, unknown))} in profile "
                f"'{self.profile.description}' (known lines: {known})"
            )
        return chosen

    def lines_on(self, names: Sequence[str] | None = None) -> None:
        """Close the named speaker-line relays (None: all of them); nothing switches if a name is unknown."""
        chosen = self.resolve_lines(names)
        with self._lock:
            for name in chosen:
                self._set(name, self._lines[name], on=True)

    def lines_off(self) -> None:
        """Open every speaker-line relay."""
        with self._lock:
            for name, line in self._lines.items():
                self._set(name, line, on=False)

    def all_off(self) -> None:
        """Everything off, now. Idempotent; safe from any thread and from a signal handler.

        It takes only the re-entrant lock and writes pins; it does not cancel the watchdog timer (cancelling
        takes the timer's own non-re-entrant lock, which the interrupted main thread might be holding): the
        bumped generation makes that timer a no-op when it fires.
        """
        with self._lock:
            if not self._closed:
                self._switch_everything_off()

    def state(self) -> dict[str, bool]:
        """What each pin is doing now: ``amplifier``, each line by name, and ``status_led`` if there is one."""
        with self._lock:
            states = {AMPLIFIER: bool(self._amp.is_active)}
            states.update({name: bool(line.is_active) for name, line in self._lines.items()})
            if self._led:
                states[STATUS_LED] = bool(self._led.is_active)
            return states

    def close(self) -> None:
        """All off, then release the pins (and the pin factory, if this object made it). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._switch_everything_off()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._release()

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

    def _set(self, name: str, device: OutputDevice, *, on: bool) -> None:
        """Switch one device and note the change; caller holds the lock."""
        if bool(device.is_active) != on:
            device.on() if on else device.off()
            self._history.append((time.time(), name, on))

    def show(self, pattern: LedPattern) -> None:
        """What the status LED blinks while the amplifier is off, for a technician at the cabinet (see
        docs/wiring.md): ``ok`` a short flash every 2 s, ``no_broker`` a slow blink, ``fault`` a fast blink."""
        with self._lock:
            self._pattern = pattern
            if self._on_since is None and not self._closed:
                self._show_pattern()

    def _show_pattern(self) -> None:
        if not isinstance(self._led, DigitalOutputDevice):
            return
        if self._pattern == "off":
            self._led.off()
        else:
            on_s, off_s = LED_PATTERNS[self._pattern]
            self._led.blink(on_time=on_s, off_time=off_s, background=True)

    def _switch_amp_off(self) -> None:
        self._set(AMPLIFIER, self._amp, on=False)
        if self._led:
            self._led.off()
            if self._on_since is not None:  # off air: note it; an idle LED's blinking is not history
                self._history.append((time.time(), STATUS_LED, False))
            self._show_pattern()
        self._on_since = None
        self._generation += 1

    def _switch_everything_off(self) -> None:
        """Lines first, then the amplifier (the order playback uses too); caller holds the lock."""
        for name, line in self._lines.items():
            self._set(name, line, on=False)
        self._switch_amp_off()

    def _watchdog_expired(self, generation: int) -> None:
        """The timer thread: if the amplifier is still on since the arming, force everything off and report."""
        with self._lock:
            if generation != self._generation or self._on_since is None:
                return
            on_for = time.monotonic() - self._on_mono
            self._switch_everything_off()
            self._timer = None
            callback = self._on_watchdog
        if callback is not None:
            callback(on_for)

    def _release(self) -> None:
        for device in self._devices:
            device.close()
        self._devices.clear()
        if self._owns_factory:
            self._factory.close()


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
