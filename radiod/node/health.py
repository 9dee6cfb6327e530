"""Health checks: each says ok, warn or crit with one line a technician on SSH can act on.

The same checks feed three readers: the retained MQTT health report (protocol v1: ``status`` is the worst
check), ``radiod health`` (text or JSON, exit 0/1/2 as Nagios, Icinga and Zabbix plugins expect) and
``radiod nodes`` on the hub (which shows the failing ones). A check never raises for the condition it checks:
a missing directory or a dead broker is a crit line, not a traceback.

Where they run. Checks of the running daemon (broker, heartbeat, audio, voice, store, relays, queue, outbox) are
computed in the daemon, on its main loop, by :func:`daemon_checks`, from the parts and facts it hands over in a
:class:`RunningNode` (never the daemon itself), and reach ``radiod health`` over the control socket. Checks
that need no daemon (storage, clock, CPU temperature, power) are in :func:`local_checks`: the daemon runs them
for its report and the CLI (:mod:`radiod.technician.health`) runs them too, so ``radiod health`` still says
something useful, and exits 2, when the daemon is dead. Only the CLI checks the config file, because only it
reads the file as it is now (the daemon runs on the one it read at start).
"""

from __future__ import annotations

import ctypes
import datetime as dt
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from radiod.audio.output import FileOutput, NullOutput, Output
from radiod.audio.relays import AMPLIFIER, STATUS_LED, Relays
from radiod.clock import rfc3339
from radiod.config import Config
from radiod.errors import AudioOutputError, ConfigError, SynthesisError, VoiceError
from radiod.node.store import OUTBOX_CAP, PlayRecord
from radiod.protocol.outgoing import Check
from radiod.speech.tts import engine_for
from radiod.speech.voices import load_voice

if TYPE_CHECKING:
    from radiod.node.playout import PlayRequest

log = logging.getLogger(__name__)

Status = Literal["ok", "warn", "crit"]
STATUSES: tuple[Status, ...] = ("ok", "warn", "crit")
EXIT_CODES: dict[str, int] = {"ok": 0, "warn": 1, "crit": 2}
"""Monitoring-plugin exit codes (Nagios plugin guidelines): 0 OK, 1 WARNING, 2 CRITICAL."""

THERMAL_DIR = Path("/sys/class/thermal")
THROTTLED_FILE = Path("/sys/devices/platform/soc/soc:firmware/get_throttled")
"""The Pi firmware's throttle flags, the same word ``vcgencmd get_throttled`` prints, readable without /dev/vcio."""
SANE_EPOCH = dt.datetime(2025, 1, 1, tzinfo=dt.UTC).timestamp()
"""Earlier than this, the clock has never been set: a Pi without RTC boots near the last shutdown or 1970."""
TEST_WORD = "Thử"
"""Synthesized by the voice check: one short Vietnamese word, so espeak-ng's tone rules are exercised."""
VOICE_SLOW_S = 3.0
"""One word taking longer than this means the CPU is starved: a bulletin would be rendered late."""
VOICE_TIMEOUT_S = 5.0
"""The voice check gives up on a hung engine after this (or ``speech.timeout_s`` if shorter): it runs on the main
loop, which must keep taking messages and pinging the watchdog."""
VOICE_RECHECK_S = 600.0
"""A passing voice check is reused this long, so the main loop rarely waits for espeak-ng."""
OUTBOX_WARN = 100
"""Events waiting: a few minutes of normal traffic; more means the hub has not heard the node for a while."""
OUTBOX_CRIT = OUTBOX_CAP // 2
"""Half the store's outbox cap: past it, a long outage soon drops events (the hub will see a seq gap)."""
HEARTBEAT_WARN_INTERVALS = 2
HEARTBEAT_CRIT_INTERVALS = 5
RECENT_FAULT_S = 3600.0
"""A store write refused or a play's audio failing this recently still shows, as a warn, once it works again:
the technician who arrives an hour later learns that it happened."""

_UNDERVOLTAGE_NOW = 1 << 0
_THROTTLED_NOW = (1 << 1) | (1 << 2) | (1 << 3)
_UNDERVOLTAGE_SINCE_BOOT = 1 << 16
_THROTTLED_SINCE_BOOT = (1 << 17) | (1 << 18) | (1 << 19)


def worst(statuses: Iterable[str]) -> Status:
    """The worst of some statuses ("ok" for none), as the report's ``status`` and the exit code want it."""
    return max(statuses, key=STATUSES.index, default="ok")  # type: ignore[arg-type]


# ----- checks that need no daemon --------------------------------------------------------------------------------


def check_storage(directory: Path, min_free_mb: int) -> Check:
    """The state directory exists, takes a file (a real write: a read-only remount or a full card fails it,
    where permission bits alone say nothing for root), and has free space: crit below ``min_free_mb``, warn
    below twice that."""
    if not directory.is_dir():
        return Check("storage", "crit", f"{directory} does not exist: the store cannot be opened")
    try:
        fd, probe = tempfile.mkstemp(prefix=".health-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except PermissionError as exc:
        if os.geteuid() not in (0, directory.stat().st_uid):  # a technician's CLI, not the daemon's user
            return Check("storage", "warn", f"{directory} is not writable by this user, so it cannot tell whether "
                         "the daemon can write there: run it as root")
        return Check("storage", "crit", f"{directory} is not writable: {exc.strerror or exc}")
    except OSError as exc:
        return Check("storage", "crit", f"{directory} is not writable: {exc.strerror or exc}")
    free_mb = shutil.disk_usage(directory).free / 1e6
    if free_mb < min_free_mb:
        return Check("storage", "crit", f"only {free_mb:.0f} MB free in {directory} (minimum {min_free_mb} MB): "
                     "free space on the SD card (old journal, speech cache)")
    if free_mb < 2 * min_free_mb:
        return Check("storage", "warn", f"{free_mb:.0f} MB free in {directory}, near the minimum of "
                     f"{min_free_mb} MB")
    return Check("storage", "ok", f"{directory} writable, {free_mb:.0f} MB free")


@dataclass(frozen=True)
class ClockReading:
    """What a time source says: synchronized or not, and the clock's error in seconds when it knows it."""

    source: str
    synchronized: bool
    error_s: float | None


def check_clock(max_offset_s: float, *, now: float | None = None) -> Check:
    """The wall clock is set and synchronized: scheduled bulletins play by it, and clusters in earshot of each
    other start by it at the same instant (an offset is an echo across the village)."""
    now = time.time() if now is None else now
    if now < SANE_EPOCH:
        return Check("clock", "crit", f"the clock reads {rfc3339(now, ms=False)}: it was never set (no RTC, no "
                     "time source reached); scheduled bulletins will not play on time")
    reading = read_clock()
    if reading is None:
        return Check("clock", "warn", "cannot tell whether the clock is synchronized (no chronyc, timedatectl "
                     "or adjtimex answered)")
    if not reading.synchronized:
        return Check("clock", "warn", f"not synchronized ({reading.source}): scheduled plays may start late or "
                     "out of step with neighbouring clusters; check the network and the NTP server")
    if reading.error_s is not None and abs(reading.error_s) > max_offset_s:
        return Check("clock", "warn", f"synchronized but off by {reading.error_s:+.3f} s ({reading.source}), "
                     f"more than {max_offset_s} s: neighbouring clusters will be heard out of step")
    error = f", within {abs(reading.error_s) * 1000:.0f} ms" if reading.error_s is not None else ""
    return Check("clock", "ok", f"synchronized ({reading.source}{error})")


def read_clock() -> ClockReading | None:
    """Ask chrony, then systemd (timedatectl), then the kernel (adjtimex): the first that answers."""
    for source in (_chrony, _timedatectl, _adjtimex):
        reading = source()
        if reading is not None:
            return reading
    return None


def _run(args: list[str]) -> str | None:
    """A tool's output, or None when it is not installed, fails, or hangs (the next source is asked)."""
    if shutil.which(args[0]) is None:
        return None
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def _chrony() -> ClockReading | None:
    out = _run(["chronyc", "-n", "tracking"])
    if out is None:
        return None
    leap = re.search(r"^Leap status\s*:\s*(.+)$", out, re.MULTILINE)
    offset = re.search(r"^System time\s*:\s*([0-9.]+) seconds (slow|fast)", out, re.MULTILINE)
    if leap is None:
        return None
    error = (float(offset[1]) * (-1 if offset[2] == "slow" else 1)) if offset else None
    return ClockReading("chrony", leap[1].strip() != "Not synchronised", error)


def _timedatectl() -> ClockReading | None:
    out = _run(["timedatectl", "show", "--property=NTPSynchronized", "--value"])
    if out is None or out.strip() not in ("yes", "no"):
        return None
    return ClockReading("timedatectl", out.strip() == "yes", None)


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """``struct timex`` of adjtimex(2), as glibc lays it out (the tail is reserved padding)."""

    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
        ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
        ("time", _Timeval), ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int), ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int), ("_reserved", ctypes.c_int * 11),
    ]  # fmt: skip


_TIME_ERROR = 5
_STA_UNSYNC = 0x0040


def _adjtimex() -> ClockReading | None:
    """The kernel's own flag, which NTP daemons clear once synchronized: what timedatectl itself reads, and
    available where neither chrony nor systemd runs. Read-only (``modes`` 0)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        timex = _Timex()
        state = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    synchronized = state != _TIME_ERROR and not timex.status & _STA_UNSYNC
    return ClockReading("kernel", synchronized, timex.esterror / 1e6 if synchronized else None)


def check_cpu_temp(warn_c: float, crit_c: float, thermal_dir: Path = THERMAL_DIR) -> Check:
    """The SoC temperature: a Pi in a metal box on a pole in the sun throttles at 80-85 °C, and then renders
    late or stops."""
    reading = read_cpu_temp(thermal_dir)
    if reading is None:
        return Check("cpu_temp", "ok", f"no temperature sensor in {thermal_dir} (not a Raspberry Pi?)")
    temp, kind = reading
    where = f"{temp:.1f} °C ({kind})"
    if temp >= crit_c:
        return Check("cpu_temp", "crit", f"{where}, at or above {crit_c:g} °C: the Pi throttles; shade or "
                     "ventilate the cabinet")
    if temp >= warn_c:
        return Check("cpu_temp", "warn", f"{where}, at or above {warn_c:g} °C")
    return Check("cpu_temp", "ok", where)


def read_cpu_temp(thermal_dir: Path = THERMAL_DIR) -> tuple[float, str] | None:
    """The hottest CPU thermal zone (any zone when none says cpu): °C and its type; None without a sensor."""
    readings: list[tuple[float, str]] = []
    for zone in sorted(thermal_dir.glob("thermal_zone*")):
        try:
            millideg = int((zone / "temp").read_text().strip())
            kind = (zone / "type").read_text().strip() if (zone / "type").exists() else zone.name
        except (OSError, ValueError):
            continue
        readings.append((millideg / 1000.0, kind))
    cpu = [r for r in readings if "cpu" in r[1].lower()]
    return max(cpu or readings) if readings else None


def check_power(throttled_file: Path = THROTTLED_FILE) -> Check:
    """Under-voltage and throttling as the Pi firmware reports them: a weak supply browns out the relays and
    corrupts the SD card long before the Pi stops."""
    word = _throttled_word(throttled_file)
    if word is None:
        return Check("power", "ok", "no Raspberry Pi firmware here: under-voltage not monitored")
    flags = f"get_throttled=0x{word:x}"
    if word & _UNDERVOLTAGE_NOW:
        return Check("power", "crit", f"under-voltage now ({flags}): the power supply or its cable is too weak")
    if word & _UNDERVOLTAGE_SINCE_BOOT:
        return Check("power", "warn", f"under-voltage happened since boot ({flags}): check the supply and cable")
    if word & (_THROTTLED_NOW | _THROTTLED_SINCE_BOOT):
        return Check("power", "warn", f"CPU throttled or capped ({flags}): heat or power")
    return Check("power", "ok", f"no under-voltage or throttling since boot ({flags})")


def _throttled_word(throttled_file: Path) -> int | None:
    """The firmware's flags from sysfs (hex digits), or from ``vcgencmd get_throttled`` (``throttled=0x...``)."""
    try:
        text: str | None = throttled_file.read_text()
    except OSError:
        text = _run(["vcgencmd", "get_throttled"])
    if text is None:
        return None
    try:
        return int(text.strip().removeprefix("throttled=").removeprefix("0x"), 16)
    except ValueError:
        return None


def local_checks(config: Config, *, now: float | None = None) -> list[Check]:
    """The checks that need no daemon: run by the daemon for its report and by the CLI when it is dead."""
    return [_guarded(name, check) for name, check in _local(config, now)]


def _local(config: Config, now: float | None) -> list[tuple[str, Callable[[], Check]]]:
    h = config.health
    return [
        ("storage", lambda: check_storage(Path(config.storage.dir), h.min_free_mb)),
        ("clock", lambda: check_clock(h.max_clock_offset_s, now=now)),
        ("cpu_temp", lambda: check_cpu_temp(h.cpu_temp_warn_c, h.cpu_temp_crit_c)),
        ("power", check_power),
    ]


# ----- checks of the running daemon --------------------------------------------------------------------------------


class BrokerLink(Protocol):
    """The MQTT link as the broker check reads it (``MqttLink`` is one)."""

    @property
    def connected(self) -> bool: ...
    @property
    def connected_since(self) -> float | None: ...
    @property
    def address(self) -> str: ...
    @property
    def last_error(self) -> str | None: ...


class PlayerState(Protocol):
    """The playout as the audio, relays and queue checks read it (``Playout`` is one)."""

    @property
    def alive(self) -> bool: ...
    @property
    def audio_error(self) -> tuple[float, str] | None: ...
    def snapshot(self) -> tuple[PlayRequest | None, list[PlayRequest]]: ...
    def exclusive_job(self) -> str | None: ...
    def busy(self) -> bool: ...


def check_broker(link: BrokerLink, tz: dt.tzinfo) -> Check:
    """Connected to the hub's broker, since when; crit when not (no new bulletin, no emergency can arrive)."""
    since = link.connected_since
    if not link.connected or since is None:
        return Check("broker", "crit", f"not connected to {link.address}: {link.last_error or 'connecting'}")
    when = f"connected to {link.address} since {rfc3339(since, tz, ms=False)}"
    if link.last_error:
        return Check("broker", "warn", f"{when}, but {link.last_error}")
    return Check("broker", "ok", when)


def check_heartbeat(last_published: float | None, started_at: float, interval_s: float, now: float) -> Check:
    """The retained health report went out recently: the hub's view of this node is fresh."""
    age = now - (last_published if last_published is not None else started_at)
    if last_published is None:
        what = f"no health report published in the {age:.0f} s since start"
    else:
        what = f"last health report published {age:.0f} s ago"
    if age <= HEARTBEAT_WARN_INTERVALS * interval_s:
        return Check("heartbeat", "ok", what if last_published is not None else f"starting: {what}")
    status: Status = "warn" if age <= HEARTBEAT_CRIT_INTERVALS * interval_s else "crit"
    return Check("heartbeat", status, f"{what} (every {interval_s:g} s): the hub sees stale health")


def check_audio(
    output: Callable[[], Output], in_use: str | None, last_failure: tuple[float, str] | None = None,
    *, now: float | None = None, tz: dt.tzinfo | None = None, demo: bool = False,
) -> Check:
    """The audio output is there and opens (``output`` opens it, or returns the one already open); warn when a
    play's audio failed within :data:`RECENT_FAULT_S` (``last_failure``: when, why), and when plays go to WAV
    files outside a demo (``node.demo``): a node left on the default ``file:`` output is silent. While
    something plays it is not probed: re-opening a sound card would cut the stream, and the play is the proof."""
    try:
        opened = output()
        if in_use is None:
            opened.check()
    except AudioOutputError as exc:
        return Check("audio", "crit", str(exc))
    if isinstance(opened, FileOutput) and not demo:
        return Check("audio", "warn", f"{opened}: plays go to WAV files, the loudspeakers stay silent (set "
                     "audio.output to default or a device name; node.demo: true on a demo or bench)")
    if in_use is not None:
        return Check("audio", "ok", f"{opened}: in use ({in_use})")
    if isinstance(opened, NullOutput):
        return Check("audio", "warn", f"{opened}: audio is discarded, the loudspeakers stay silent "
                     "(set audio.output to default or a device name)")
    now = time.time() if now is None else now
    if last_failure is not None and now - last_failure[0] <= RECENT_FAULT_S:
        return Check("audio", "warn", f"{opened}: ready, but a play's audio failed at "
                     f"{rfc3339(last_failure[0], tz, ms=False)}: {last_failure[1]}")
    return Check("audio", "ok", f"{opened}: ready")


def check_memory(voice_id: str, voices_dir: Path, meminfo: Path = Path("/proc/meminfo")) -> Check:
    """Enough RAM for the default voice: a neural (Piper) voice on a 512 MB Pi swaps or meets the OOM killer in
    the middle of a bulletin; espeak-ng voices always fit."""
    from radiod.speech.tts.piper import memory_warning  # only the function: piper-tts itself is not imported

    try:
        warning = memory_warning(load_voice(voice_id, voices_dir), meminfo)
    except (ConfigError, VoiceError) as exc:
        return Check("memory", "ok", f"not checked: {exc}")  # the voice check says what is wrong with it
    return Check("memory", "warn", warning) if warning else Check("memory", "ok", f"enough for voice {voice_id}")


def check_store(
    last_error: tuple[float, str] | None, interval_s: float, now: float, tz: dt.tzinfo, unwritable: str | None = None
) -> Check:
    """The store takes writes: crit while it refuses them (a full or failing SD card; events then wait in
    memory) or runs in memory (it could not be opened for writing at start), warn for :data:`RECENT_FAULT_S`
    after the last refusal."""
    if unwritable is not None:
        return Check("store", "crit", f"the store runs in memory, nothing is kept across a restart: {unwritable};"
                                      " retrying")
    if last_error is None:
        return Check("store", "ok", "every write accepted since start")
    at, message = last_error
    when = rfc3339(at, tz, ms=False)
    if now - at <= HEARTBEAT_WARN_INTERVALS * interval_s:
        return Check("store", "crit", f"the store refused a write at {when}: {message}; events wait in memory")
    if now - at <= RECENT_FAULT_S:
        return Check("store", "warn", f"the store refused a write at {when} ({message}); it takes writes again")
    return Check("store", "ok", f"writes accepted since the last refusal at {when}")


def check_voice(voice_id: str, voices_dir: Path, timeout_s: float, *, slow_s: float = VOICE_SLOW_S) -> Check:
    """The default voice synthesizes a test word now: espeak-ng installed, its Vietnamese data present, the
    CPU free enough. A voice that cannot run but has a working fallback is a warn: bulletins still play, in
    the fallback voice, as the speech pipeline does."""
    problem: str | None = None
    tried: list[str] = []
    trying: str | None = voice_id
    while trying is not None and trying not in tried:
        tried.append(trying)
        fallback: str | None = None
        try:
            voice = load_voice(trying, voices_dir)
            fallback = voice.fallback
            engine = engine_for(voice)
            started = time.monotonic()
            engine.synthesize(TEST_WORD, voice, min(timeout_s, VOICE_TIMEOUT_S))
            took = time.monotonic() - started
        except (ConfigError, VoiceError, SynthesisError) as exc:
            problem = problem or str(exc)
            trying = fallback
            continue
        if trying != voice_id:
            return Check("voice", "warn", f"{problem}; bulletins are read with the fallback voice '{trying}'")
        if took > slow_s:
            return Check("voice", "warn", f"voice {voice_id} ({engine.name}) took {took:.1f} s for one word "
                         f"(more than {slow_s:g} s): the CPU is overloaded, bulletins will be rendered late")
        return Check("voice", "ok", f"voice {voice_id} ({engine.name}) synthesized a test word in "
                     f"{took * 1000:.0f} ms")
    return Check("voice", "crit", problem or f"voice {voice_id} cannot speak")


def check_relays(
    relays: Relays, busy: Callable[[], bool], watchdog_fired_at: float | None, tz: dt.tzinfo, *, demo: bool = False
) -> Check:
    """Every relay's state (not the status LED's, which blinks patterns); crit if the amplifier is on while
    nothing plays (a stuck relay blasts the commune), warn if the on-time watchdog had to switch it off since
    the daemon started, and when the relays are gpiozero's mock ones outside a demo (``node.demo``): nothing
    switches the amplifier (``gpio.profile`` is still the default ``mock``).

    ``busy`` is asked before and after reading the pins: a play sets the playout busy before the amplifier goes
    on and clears it after it went off, so idle-on-idle around "amplifier on" cannot be a play starting.
    """
    idle_before = not busy()
    state = relays.state()
    idle_after = not busy()
    states = ", ".join(f"{name} {'ON' if on else 'off'}" for name, on in state.items() if name != STATUS_LED)
    if state[AMPLIFIER] and idle_before and idle_after:
        return Check("relays", "crit", f"amplifier ON while nothing plays: {states}")
    if watchdog_fired_at is not None:
        return Check("relays", "warn", f"{states}; the on-time watchdog switched the amplifier off at "
                     f"{rfc3339(watchdog_fired_at, tz, ms=False)}")
    if relays.profile.pin_factory == "mock" and not demo:
        return Check("relays", "warn", f"{states}: mock relays (profile '{relays.profile.description}'), no relay "
                     "switches; set gpio.profile to the board (node.demo: true on a demo or bench)")
    return Check("relays", "ok", states)


def check_outbox(
    size: int, *, publishing: bool = True, warn_at: int = OUTBOX_WARN, crit_at: int = OUTBOX_CRIT
) -> Check:
    """Events not yet acknowledged by the broker: the hub's record of what was broadcast lags by that much.
    Crit when the publisher thread is not running (``publishing`` false): nothing would leave the outbox."""
    what = f"{size} event{'s' if size != 1 else ''} waiting for the broker"
    if not publishing:
        return Check("outbox", "crit", f"{what}, and the event publisher has stopped: the hub hears nothing more "
                     "from this node (see journalctl -u radiod; restart radiod)")
    if size >= crit_at:
        return Check("outbox", "crit", f"{what}: nearing the cap, the oldest will be dropped")
    if size >= warn_at:
        return Check("outbox", "warn", what)
    return Check("outbox", "ok", what)


def check_queue(
    playout: PlayerState, upcoming: tuple[str, float] | None, last_play: PlayRecord | None, tz: dt.tzinfo
) -> Check:
    """The player thread is alive; what plays, what waits, what is next (``upcoming``: bulletin id, instant);
    warn when the last play failed."""
    if not playout.alive:
        return Check("queue", "crit", "the player thread has died: nothing will play (see journalctl -u radiod; "
                     "restart radiod)")
    current, queued = playout.snapshot()
    job = playout.exclusive_job()
    parts = [f"playing {current.bulletin.id}" if current else f"running the {job}" if job else "idle"]
    parts.append(f"{len(queued)} queued")
    parts.append(f"next {upcoming[0]} at {rfc3339(upcoming[1], tz, ms=False)}" if upcoming else "nothing scheduled")
    summary = ", ".join(parts)
    if last_play is not None and last_play.state == "failed":
        return Check("queue", "warn", f"{summary}; the last play ({last_play.id} at {last_play.occurrence}) "
                     f"failed: {last_play.detail or 'see journalctl -u radiod'}")
    return Check("queue", "ok", summary)


class VoiceCheck:
    """The voice check of the node's default voice, run at most every :data:`VOICE_RECHECK_S` while it passes:
    it runs espeak-ng on the main loop, where an emergency arriving meanwhile would wait for it; a voice that
    worked a minute ago still works."""

    def __init__(self, voice_id: str, voices_dir: Path, timeout_s: float) -> None:
        self._args = (voice_id, voices_dir, timeout_s)
        self._passed: tuple[float, Check] | None = None  # the last passing check and when it ran

    def __call__(self, now: float) -> Check:
        if self._passed is not None and now - self._passed[0] < VOICE_RECHECK_S:
            return self._passed[1]
        check = check_voice(*self._args)
        self._passed = (now, check) if check.status == "ok" else None
        return check


@dataclass(frozen=True)
class RunningNode:
    """What the checks of a running daemon read: its parts (each check uses one or two) and the facts it keeps
    for them. The daemon builds one per report, on its main loop."""

    config: Config
    tz: dt.tzinfo
    now: float
    link: BrokerLink
    output: Callable[[], Output]
    relays: Relays
    playout: PlayerState
    voice: VoiceCheck
    next_play: Callable[[], tuple[str, float] | None]
    last_play: Callable[[], PlayRecord | None]
    outbox_size: Callable[[], int]
    publishing: Callable[[], bool]
    started_at: float
    health_published_at: float | None
    store_error: tuple[float, str] | None
    watchdog_fired_at: float | None
    store_unwritable: str | None = None  # why the store runs in memory (Store.unwritable)


def daemon_checks(node: RunningNode) -> list[Check]:
    """Every check of a running daemon, in the order a technician reads them; runs on the daemon's main loop."""
    config, h, now, tz = node.config, node.config.health, node.now, node.tz
    current, _queued = node.playout.snapshot()
    job = node.playout.exclusive_job()
    in_use = f"playing {current.bulletin.id}" if current else job
    checks: list[tuple[str, Callable[[], Check]]] = [
        ("broker", lambda: check_broker(node.link, tz)),
        ("heartbeat", lambda: check_heartbeat(node.health_published_at, node.started_at, h.interval_s, now)),
        ("audio", lambda: check_audio(node.output, in_use, node.playout.audio_error, now=now, tz=tz,
                                      demo=config.node.demo)),
        ("voice", lambda: node.voice(now)),
        *_local(config, now),
        ("memory", lambda: check_memory(config.speech.voice, Path(config.speech.voices_dir))),
        ("store", lambda: check_store(node.store_error, h.interval_s, now, tz,
                                                    node.store_unwritable)),
        ("relays", lambda: check_relays(node.relays, node.playout.busy, node.watchdog_fired_at, tz,
                                        demo=config.node.demo)),
        ("queue", lambda: check_queue(node.playout, node.next_play(), node.last_play(), tz)),
        ("outbox", lambda: check_outbox(node.outbox_size(), publishing=node.publishing())),
    ]
    return [_guarded(name, check) for name, check in checks]


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    """A check that raises is a radiod bug: it becomes a crit line (and a traceback in the journal) rather than
    ending the main loop that called it, which would silence the loudspeakers over a report."""
    try:
        return check()
    except Exception as exc:
        log.exception("health check %s failed", name)
        return Check(name, "crit", f"the check itself failed ({type(exc).__name__}: {exc}): a radiod bug, see "
                     "journalctl -u radiod")
