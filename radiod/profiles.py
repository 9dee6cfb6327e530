"""Firmware profiles: one YAML per board, so the same radiod runs on a relay HAT, a relay board or a mock.

A profile says which GPIO pin drives the amplifier's relay and each speaker-line relay, their polarity, how
long the amplifier needs to warm up before audio and to hold after, the longest it may stay on, and which
audio device and sample rate the board uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from radiod import schema
from radiod.errors import ConfigError, Problem, ProfileError
from radiod.schema import setting

PinFactoryName = Literal["mock", "lgpio", "rpigpio", "pigpio", "native"]


@dataclass(frozen=True, kw_only=True)
class Relay:
    pin: str = setting(doc='GPIO pin: "GPIO26", "BOARD37" or a number (BCM)')
    active_high: bool = setting(
        True, doc="true: the relay closes when the pin is high; false for the usual low-active relay boards"
    )


@dataclass(frozen=True, kw_only=True)
class Amplifier(Relay):
    warmup_s: float = setting(1.0, doc="amplifier on this long before the first audio sample", min=0, max=30)
    hold_s: float = setting(1.0, doc="amplifier stays on this long after the last sample", min=0, max=60)
    max_on_s: float = setting(1800.0, doc="watchdog: the amplifier is forced off after this long", min=10)


@dataclass(frozen=True, kw_only=True)
class AudioDevice:
    device: str = setting("default", doc="PortAudio device name for audio.output: default")
    sample_rate: int = setting(48000, doc="the rate programmes are rendered at", min=8000, max=192000)


@dataclass(frozen=True, kw_only=True)
class Profile:
    description: str = setting(doc="the board, for people")
    pin_factory: PinFactoryName = setting("lgpio", doc="gpiozero pin factory; mock for tests and the demo")
    amplifier: Amplifier = setting(doc="the amplifier's power relay")
    lines: dict[str, Relay] = setting(factory=dict, doc="speaker-line relays by line name")
    status_led: Relay | None = setting(None, doc="a status LED, if the board has one")
    audio: AudioDevice = setting(factory=AudioDevice, doc="the board's audio output")


def available_profiles(profiles_dir: Path) -> list[str]:
    """The profile names in ``profiles_dir``."""
    return sorted(p.stem for p in profiles_dir.glob("*.yaml"))


def load_profile(name: str, profiles_dir: Path) -> Profile:
    """Load ``firmware_profiles/<name>.yaml``, naming the known profiles if it does not exist."""
    path = profiles_dir / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(available_profiles(profiles_dir)) or "none"
        raise ProfileError([Problem(str(path), None, "gpio.profile", f"no such profile '{name}' (known: {known})")])
    try:
        return schema.load(path, Profile)
    except ConfigError as exc:
        raise ProfileError(exc.problems) from None
