"""The node's configuration: one YAML file, this schema, these defaults.

The dataclasses below *are* the documentation of the config: every key has a default and a one-line doc,
and ``config.example.yaml`` is checked against them by the tests. ``speak``, ``voices`` and ``normalize`` run
on the defaults alone, so a technician can try the voice before writing any config.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from radiod import schema
from radiod.schema import setting

NAME_PATTERN = r"[a-z0-9][a-z0-9_-]{0,31}"
"""Zone and node names, as protocol v1 defines them."""

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_data_dir(name: str) -> str:
    """Where profiles and voices live: next to the package in a checkout, under /usr/share when installed."""
    local = REPO_ROOT / name
    return str(local if local.is_dir() else Path("/usr/share/radiod") / name)


def unknown_zone(name: str) -> str | None:
    """What is wrong with time zone ``name``, None if the system knows it: ``run`` would stop on it at start."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(name, sorted(available_timezones()), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f"unknown time zone {name!r} ({hint}Viet Nam is Asia/Ho_Chi_Minh; see `timedatectl list-timezones`)"
    return None


@dataclass(frozen=True, kw_only=True)
class NodeConfig:
    id: str = setting("n01", doc="this node's name; also its MQTT client id and topic", pattern=NAME_PATTERN)
    zones: list[str] = setting(factory=list, doc="village zones this cluster belongs to", pattern=NAME_PATTERN)
    timezone: str = setting(
        "Asia/Ho_Chi_Minh", doc="IANA time zone for daily times and quiet hours", check=unknown_zone
    )
    demo: bool = setting(
        False, doc="a demo or test bench: mock relays and a file: output are expected, health does not warn of them"
    )


@dataclass(frozen=True, kw_only=True)
class TlsConfig:
    ca_file: str = setting(doc="CA certificate that signed the broker's certificate")
    cert_file: str | None = setting(None, doc="client certificate, when the broker wants one")
    key_file: str | None = setting(None, doc="client certificate's private key")


@dataclass(frozen=True, kw_only=True)
class MqttConfig:
    host: str = setting("127.0.0.1", doc="the commune hub's broker")
    port: int = setting(1883, doc="broker port (8883 is usual with TLS)", min=1, max=65535)
    prefix: str = setting("radio/commune", doc="topic prefix P of protocol v1, e.g. radio/yen-hoa")
    username: str | None = setting(None, doc="broker user name, if the broker asks for one")
    password: str | None = setting(None, doc="broker password", secret=True)
    tls: TlsConfig | None = setting(None, doc="TLS to the broker; leave out for plain TCP on a closed LAN")
    keepalive_s: int = setting(30, doc="MQTT keepalive; the broker sends the Last Will after 1.5x this", min=5)
    reconnect_max_s: int = setting(60, doc="longest wait between reconnect attempts", min=1)


@dataclass(frozen=True, kw_only=True)
class SecurityConfig:
    require_signature: bool = setting(True, doc="refuse unsigned messages; false only in a lab or demo")
    trusted_keys: dict[str, str] = setting(factory=dict, doc="key id -> Ed25519 public key PEM file of a hub")
    revoked_keys: list[str] = setting(factory=list, doc="key ids refused even if still listed as trusted")


@dataclass(frozen=True, kw_only=True)
class StorageConfig:
    dir: str = setting("/var/lib/radiod", doc="state: the bulletin store, play log, event outbox")
    cache_dir: str | None = setting(None, doc="synthesized speech cache; default <dir>/cache")
    cache_max_mb: int = setting(512, doc="cache size above which the least recently used entries go", min=16)
    media_max_mb: int = setting(
        2048, doc="recordings kept in <cache_dir>/media; the least recently used go first, those still due last",
        min=16,
    )


@dataclass(frozen=True, kw_only=True)
class AudioConfig:
    output: str = setting(
        "file:/var/lib/radiod/out",
        doc='"file:<dir>" (one WAV per play, real time), "null", "default", or a PortAudio device name',
    )
    volume: float = setting(1.0, doc="the node's level, 0.0 to 1.0; a volume command changes it", min=0, max=1)
    loudness_lufs: float = setting(
        -16.0,
        doc="every programme is normalized to this loudness (espeak speech peaks cap it near -14)",
        min=-40,
        max=-14,
    )
    chime: bool = setting(True, doc="play the opening and closing chime unless a bulletin says not to")
    chime_file: str | None = setting(None, doc="a WAV to use as chime instead of the generated one")
    file_keep: int = setting(
        100, doc="with a file: output, the newest WAVs kept; older ones are deleted after each play (0: keep all)",
        min=0,
    )


@dataclass(frozen=True, kw_only=True)
class RelayConfig:
    no_signal_s: float = setting(
        10.0, doc="a live relay whose stream sent no audio above silence_dbfs for this long goes off the air "
        "(amplifier off) until its signal returns", min=1, max=300,
    )
    silence_dbfs: float = setting(-50.0, doc="a relayed stream quieter than this (RMS) counts as silence",
                                  min=-90, max=-20)
    reconnect_max_s: float = setting(30.0, doc="longest wait between attempts to reach a lost relay stream",
                                     min=1, max=600)


@dataclass(frozen=True, kw_only=True)
class GpioConfig:
    profile: str = setting("mock", doc="a board in firmware_profiles/, e.g. mock, rpi-relay-hat-2ch")
    profiles_dir: str = setting(default_data_dir("firmware_profiles"), doc="where firmware profiles are")


@dataclass(frozen=True, kw_only=True)
class SpeechConfig:
    voice: str = setting("vi-north", doc="default voice id from voices/")
    voices_dir: str = setting(default_data_dir("voices"), doc="voice files and the pronunciation lexicon")
    workers: int = setting(0, doc="parallel synthesis processes; 0 means one per CPU core", min=0, max=16)
    timeout_s: float = setting(60.0, doc="longest one sentence may take to synthesize", min=1)


@dataclass(frozen=True, kw_only=True)
class QuietHours:
    start: dt.time = setting(doc='start of quiet hours, "HH:MM" in quotes')
    end: dt.time = setting(doc='end of quiet hours, "HH:MM" in quotes; may be past midnight')

    def covers(self, local: dt.time) -> bool:
        """Whether the local time ``local`` is inside this window (which may run past midnight)."""
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


@dataclass(frozen=True, kw_only=True)
class ScheduleConfig:
    grace_s: int = setting(600, doc="an occurrence missed by less than this still plays", min=0)
    prerender_s: int = setting(120, doc="render scheduled programmes this long ahead of their start", min=5)
    quiet_hours: list[QuietHours] = setting(factory=list, doc="normal bulletins are skipped inside these")


@dataclass(frozen=True, kw_only=True)
class HealthConfig:
    interval_s: int = setting(60, doc="seconds between retained health reports", min=5)
    min_free_mb: int = setting(100, doc="free space in storage.dir below which health is crit (warn below 2x)", min=1)
    max_clock_offset_s: float = setting(
        0.5, doc="clock error above which health warns: clusters in earshot must start together", min=0.001
    )
    cpu_temp_warn_c: float = setting(70.0, doc="CPU temperature at which health warns", min=30, max=110)
    cpu_temp_crit_c: float = setting(
        80.0, doc="CPU temperature at which health is crit (a Pi throttles)", min=30, max=110
    )


@dataclass(frozen=True, kw_only=True)
class ControlConfig:
    socket: str | None = setting(
        None,
        doc="the daemon's control socket for radiod health/status/test; default /run/radiod/control.sock "
        "(systemd's RuntimeDirectory), else <storage.dir>/control.sock",
    )
    group: str = setting("radiod", doc="group that may use the control socket besides root (mode 0660)")


@dataclass(frozen=True, kw_only=True)
class HubConfig:
    kid: str = setting("hub-1", doc="key id that `radiod post` signs with (the nodes list it in trusted_keys)")
    signing_key: str | None = setting(
        None, doc="the hub's Ed25519 private key PEM; only on the hub or operator PC, never on a node"
    )
    default_expiry_h: float = setting(24.0, doc="`radiod post` without --expires: bulletins expire after this", min=0.1)
    daily_expiry_days: float = setting(
        30.0, doc="`radiod post --daily` without --until or --expires: it plays for this many days", min=1
    )
    nodes: list[str] = setting(
        factory=list, doc="the commune's node ids (hub-setup writes them): `nodes` lists those never seen, "
        "`post` counts and checks its targets", pattern=NAME_PATTERN,
    )
    zones: dict[str, list[str]] = setting(
        factory=dict, doc="zone -> its node ids, so that `post --zone` can check and count the nodes it reaches"
    )
    media_dir: str = setting(
        "/var/lib/radiod-hub/media", doc="`post --media FILE` keeps the recording here (the hub's media.dir)"
    )
    media_base_url: str | None = setting(
        None, doc="the URL the nodes fetch media_dir from (the hub's media.base_url), e.g. http://hub:8080/media/",
        pattern=r"https?://\S+",
    )


@dataclass(frozen=True, kw_only=True)
class Config:
    node: NodeConfig = setting(factory=NodeConfig, doc="who this node is")
    mqtt: MqttConfig = setting(factory=MqttConfig, doc="the broker on the commune hub")
    security: SecurityConfig = setting(factory=SecurityConfig, doc="which hub keys this node trusts")
    storage: StorageConfig = setting(factory=StorageConfig, doc="where state is kept")
    audio: AudioConfig = setting(factory=AudioConfig, doc="audio output and programme sound")
    relay: RelayConfig = setting(factory=RelayConfig, doc="live relays of the district or provincial radio")
    gpio: GpioConfig = setting(factory=GpioConfig, doc="relay board")
    speech: SpeechConfig = setting(factory=SpeechConfig, doc="voices and synthesis")
    schedule: ScheduleConfig = setting(factory=ScheduleConfig, doc="when bulletins play")
    health: HealthConfig = setting(factory=HealthConfig, doc="health reports")
    control: ControlConfig = setting(factory=ControlConfig, doc="the technician's local control socket")
    hub: HubConfig = setting(factory=HubConfig, doc="operator tools on the hub: post, cancel")
    log_level: Literal["debug", "info", "warning", "error"] = setting("info", doc="journal verbosity")

    @property
    def cache_dir(self) -> Path:
        return Path(self.storage.cache_dir or Path(self.storage.dir) / "cache")


PROGRAMMES_DIR = "programmes"
"""Finished programmes (``<cache_dir>/programmes``): within the speech cache's bound and its eviction."""

SYSTEM_CONFIG_PATH = Path("/etc/radiod/config.yaml")
"""Where ``make install`` puts a node's config."""
CONFIG_ENV = "RADIOD_CONFIG"
DEFAULTS_CLAUSE = ", else the built-in defaults"
CONFIG_RULE = f"--config F, else ${CONFIG_ENV}, else {SYSTEM_CONFIG_PATH} if it exists{DEFAULTS_CLAUSE}"
"""The one rule every command finds its config by, as ``--help`` and the docs state it."""


def find_config(given: str | None) -> Path | None:
    """The config file a command reads (:data:`CONFIG_RULE`); None means the built-in defaults.

    The environment is read at each call, not at import, so a technician's ``export RADIOD_CONFIG=...`` and a
    test's environment both count. A ``$RADIOD_CONFIG`` naming a missing file is returned as it is: loading it
    then fails loudly rather than silently falling back to the defaults.
    """
    if given:
        return Path(given)
    if env := os.environ.get(CONFIG_ENV):
        return Path(env)
    return SYSTEM_CONFIG_PATH if SYSTEM_CONFIG_PATH.is_file() else None


def load_config(path: Path | None) -> Config:
    """Load the config file, or the built-in defaults when ``path`` is None.

    The defaults keep state under ``~/.local/state/radiod`` when /var/lib/radiod is not writable, so
    ``radiod speak`` works for an ordinary user on a fresh machine.
    """
    if path is not None:
        return schema.load(path, Config)
    config = Config()
    state = Path(config.storage.dir)
    if not os.access(state if state.exists() else state.parent, os.W_OK):
        home_state = Path.home() / ".local" / "state" / "radiod"
        config = Config(
            storage=StorageConfig(dir=str(home_state)),
            audio=AudioConfig(output=f"file:{home_state / 'out'}"),
        )
    return config
