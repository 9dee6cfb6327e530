"""Every health check on its ok, warn and crit path, each built from the real condition a technician would meet:
a full or unwritable directory, a stopped broker, a missing audio directory, an amplifier left on, a dead player.

Where the condition lives in a file the kernel or a tool provides (a Pi's thermal zone and throttle word,
chronyc's report), the test writes that file or puts a stand-in program first on PATH, and the check reads it
exactly as on a node.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from gpiozero.pins.mock import MockFactory
from harness import Hub, ThreadNode, node_config, wait_for

from radiod.audio.output import FileOutput, NullOutput, open_output
from radiod.audio.relays import Relays
from radiod.cli import main
from radiod.config import REPO_ROOT, Config
from radiod.hub.localbroker import Broker
from radiod.hub.session import collect_retained
from radiod.node.health import (
    Check,
    check_audio,
    check_clock,
    check_cpu_temp,
    check_heartbeat,
    check_memory,
    check_outbox,
    check_power,
    check_queue,
    check_relays,
    check_storage,
    check_store,
    check_voice,
    worst,
)
from radiod.node.store import Store
from radiod.profiles import load_profile
from radiod.schema import to_plain
from radiod.technician.health import check_config

VOICES = REPO_ROOT / "voices"
HCM = ZoneInfo("Asia/Ho_Chi_Minh")


def write_config(config: Config, path: Path) -> Path:
    path.write_text(yaml.safe_dump(to_plain(config, mask_secrets=False)), encoding="utf-8")
    return path


@pytest.fixture
def hub(broker: Broker, tmp_path: Path) -> Hub:
    return Hub(broker, tmp_path / "hub")


@pytest.fixture
def node(hub: Hub, tmp_path: Path) -> Iterator[ThreadNode]:
    running = ThreadNode(node_config(hub, tmp_path))
    yield running
    if running.thread.is_alive():
        running.stop()


def put_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, script: str) -> None:
    """A stand-in for a system tool, first on PATH: it prints what the real one prints on a node."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text(f"#!/bin/sh\n{script}\n", encoding="utf-8")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


# ----- storage -----


def test_storage_ok_warn_crit_by_free_space(tmp_path: Path) -> None:
    free_mb = shutil.disk_usage(tmp_path).free / 1e6
    ok = check_storage(tmp_path, 1)
    assert ok.status == "ok" and "writable" in ok.detail and "MB free" in ok.detail
    near = check_storage(tmp_path, int(free_mb * 0.75))  # free is between the minimum and twice it
    assert near.status == "warn" and "near the minimum" in near.detail
    full = check_storage(tmp_path, int(free_mb * 10))
    assert full.status == "crit" and "free space on the SD card" in full.detail
    assert not list(tmp_path.iterdir()), "the write probe must not leave a file behind"


def test_storage_missing_or_unwritable_is_crit(tmp_path: Path) -> None:
    missing = check_storage(tmp_path / "gone", 1)
    assert missing.status == "crit" and "does not exist" in missing.detail
    # sysfs takes no new file, not even from root: a directory no write can reach, as a read-only remount is.
    unwritable = check_storage(Path("/sys/kernel"), 1)
    if os.geteuid() == 0:
        assert unwritable.status == "crit" and "not writable" in unwritable.detail
    else:  # a technician's own user cannot speak for the daemon's: it says so, and to run it as root
        assert unwritable.status == "warn" and "run it as root" in unwritable.detail


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only (chmod) directory anyway")
def test_storage_read_only_directory_is_crit(tmp_path: Path) -> None:
    locked = tmp_path / "state"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        check = check_storage(locked, 1)
    finally:
        locked.chmod(0o700)
    assert check.status == "crit" and "not writable" in check.detail


# ----- clock -----

CHRONY = """cat <<'EOF'
Reference ID    : C0A80101 (192.168.1.1)
Stratum         : 3
Ref time (UTC)  : Sun Nov 22 23:30:00 2026
System time     : {offset} seconds {direction} of NTP time
Last offset     : +0.000012345 seconds
Leap status     : {leap}
EOF"""


def test_clock_from_chrony_ok_and_warn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    put_on_path(monkeypatch, tmp_path, "chronyc", CHRONY.format(offset="0.000250000", direction="slow",
                                                                leap="Normal"))
    ok = check_clock(0.5)
    assert ok.status == "ok" and "chrony" in ok.detail and "within 0 ms" in ok.detail
    put_on_path(monkeypatch, tmp_path, "chronyc", CHRONY.format(offset="2.500000000", direction="fast",
                                                                leap="Normal"))
    off = check_clock(0.5)
    assert off.status == "warn" and "+2.500 s" in off.detail
    put_on_path(monkeypatch, tmp_path, "chronyc", CHRONY.format(offset="0.000000000", direction="slow",
                                                                leap="Not synchronised"))
    unsync = check_clock(0.5)
    assert unsync.status == "warn" and "not synchronized (chrony)" in unsync.detail


def test_clock_never_set_is_crit() -> None:
    check = check_clock(0.5, now=86400.0)  # a Pi without RTC that booted on 2 January 1970
    assert check.status == "crit" and "1970-01-02" in check.detail and "never set" in check.detail


def test_clock_without_chrony_asks_systemd_or_the_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    put_on_path(monkeypatch, tmp_path, "chronyc", "echo '506 Cannot talk to daemon'; exit 1")
    check = check_clock(0.5)
    assert check.status in ("ok", "warn")
    assert "chrony" not in check.detail and ("timedatectl" in check.detail or "kernel" in check.detail)


# ----- CPU temperature and power (a Pi's sysfs files) -----


def thermal(tmp_path: Path, millidegrees: int) -> Path:
    zone = tmp_path / "thermal" / "thermal_zone0"
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "type").write_text("cpu-thermal\n")
    (zone / "temp").write_text(f"{millidegrees}\n")
    return zone.parent


@pytest.mark.parametrize(("millidegrees", "status"), [(48312, "ok"), (72000, "warn"), (84500, "crit")])
def test_cpu_temperature(tmp_path: Path, millidegrees: int, status: str) -> None:
    check = check_cpu_temp(70, 80, thermal(tmp_path, millidegrees))
    assert check.status == status
    assert f"{millidegrees / 1000:.1f} °C (cpu-thermal)" in check.detail


def test_cpu_temperature_without_sensor_is_ok(tmp_path: Path) -> None:
    check = check_cpu_temp(70, 80, tmp_path)
    assert check.status == "ok" and "no temperature sensor" in check.detail


@pytest.mark.parametrize(
    ("word", "status", "says"),
    [("0", "ok", "no under-voltage"), ("50000", "warn", "since boot"), ("50005", "crit", "under-voltage now"),
     ("20002", "warn", "throttled")],
)
def test_power_from_the_firmware_throttle_word(tmp_path: Path, word: str, status: str, says: str) -> None:
    flags = tmp_path / "get_throttled"
    flags.write_text(f"{word}\n")
    check = check_power(flags)
    assert check.status == status and says in check.detail and f"0x{word}" in check.detail


def test_power_from_vcgencmd_when_sysfs_has_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    put_on_path(monkeypatch, tmp_path, "vcgencmd", "echo throttled=0x50005")
    assert check_power(tmp_path / "absent").status == "crit"


def test_power_off_a_pi_is_not_monitored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no vcgencmd either
    check = check_power(tmp_path / "absent")
    assert check.status == "ok" and "not monitored" in check.detail


# ----- config -----


def test_config_ok_warn_crit(tmp_path: Path) -> None:
    good = write_config(Config(), tmp_path / "good.yaml")
    check, config = check_config(good)
    assert check.status == "ok" and config is not None and "node n01" in check.detail
    bad = tmp_path / "bad.yaml"
    bad.write_text("node:\n  id: n07\nmqtt:\n  hots: 10.0.0.1\n  port: eighteen\n", encoding="utf-8")
    check, config = check_config(bad)
    assert check.status == "crit" and config is None
    assert "bad.yaml:4: mqtt.hots: unknown key 'hots'" in check.detail and "and 1 more" in check.detail
    wrong_voice = tmp_path / "voice.yaml"
    wrong_voice.write_text("speech:\n  voice: vi-nowhere\n", encoding="utf-8")
    check, _ = check_config(wrong_voice)
    assert check.status == "crit" and "vi-nowhere" in check.detail
    check, config = check_config(None)
    assert check.status == "warn" and "built-in defaults" in check.detail and config is not None


# ----- audio, voice -----


def test_audio_output_ok_missing_unopenable_and_null(tmp_path: Path) -> None:
    """On a demo (``demo=True``), where a file output is expected; outside one it warns (test_health_nagios)."""
    out = FileOutput(tmp_path / "out", 48000)
    assert check_audio(lambda: out, None, demo=True).status == "ok"
    (tmp_path / "out").rmdir()
    gone = check_audio(lambda: out, None, demo=True)
    assert gone.status == "crit" and "does not exist" in gone.detail
    assert check_audio(lambda: out, "playing b-1", demo=True).status == "ok", "a playing output is not probed"
    unopenable = check_audio(lambda: open_output("file:", 48000), None)
    assert unopenable.status == "crit" and "needs a directory" in unopenable.detail
    null = check_audio(lambda: NullOutput(48000), None)
    assert null.status == "warn" and "silent" in null.detail
    out = FileOutput(tmp_path / "out", 48000)
    now = time.time()
    unplugged = (now - 600, "audio output 'USB': no such output device")
    back = check_audio(lambda: out, None, unplugged, now=now, tz=HCM, demo=True)
    assert back.status == "warn" and "ready, but a play's audio failed at" in back.detail and "USB" in back.detail
    assert check_audio(lambda: out, None, (now - 7200, "old"), now=now, tz=HCM, demo=True).status == "ok"


def test_store_refusing_writes() -> None:
    now = 10_000_000.0
    assert check_store(None, 60, now, HCM).status == "ok"
    full = (now - 5, "radiod.db: the disk is full")
    refusing = check_store(full, 60, now, HCM)
    assert refusing.status == "crit" and "events wait in memory" in refusing.detail
    recovered = check_store((now - 1800, "radiod.db: the disk is full"), 60, now, HCM)
    assert recovered.status == "warn" and "takes writes again" in recovered.detail
    assert check_store((now - 7200, "radiod.db: the disk is full"), 60, now, HCM).status == "ok"


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_voice_ok_slow_fallback_and_crit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ok = check_voice("vi-north", VOICES, 30)
    assert ok.status == "ok" and "synthesized a test word" in ok.detail
    slow = check_voice("vi-north", VOICES, 30, slow_s=0.0)
    assert slow.status == "warn" and "overloaded" in slow.detail
    voices = tmp_path / "voices"
    shutil.copytree(VOICES, voices)
    (voices / "vi-broken.yaml").write_text("description: misspelt\nvoice: vi-vn-x-nowhere\nfallback: vi-north\n")
    fallback = check_voice("vi-broken", voices, 30)
    assert fallback.status == "warn" and "fallback voice 'vi-north'" in fallback.detail
    monkeypatch.setenv("PATH", str(tmp_path))  # espeak-ng uninstalled
    gone = check_voice("vi-north", VOICES, 30)
    assert gone.status == "crit" and "espeak-ng" in gone.detail
    assert check_voice("vi-nowhere", VOICES, 30).status == "crit"


# ----- relays, outbox, heartbeat -----


def test_relays_ok_stuck_amplifier_and_watchdog(tmp_path: Path) -> None:
    profile = load_profile("mock", REPO_ROOT / "firmware_profiles")
    with Relays(profile, MockFactory()) as relays:
        ok = check_relays(relays, lambda: False, None, HCM, demo=True)
        assert ok.status == "ok" and ok.detail == "amplifier off, line-1 off, line-2 off"
        relays.amp_on()
        assert check_relays(relays, lambda: True, None, HCM, demo=True).status == "ok", "a play holds it on"
        stuck = check_relays(relays, lambda: False, None, HCM, demo=True)
        assert stuck.status == "crit" and "amplifier ON while nothing plays" in stuck.detail
        relays.all_off()
        fired = check_relays(relays, lambda: False, time.time(), HCM, demo=True)
        assert fired.status == "warn" and "watchdog" in fired.detail


def test_outbox_backlog(tmp_path: Path) -> None:
    with Store(tmp_path / "radiod.db") as store:
        assert check_outbox(store.outbox_size(), warn_at=3, crit_at=5).status == "ok"
        for n in range(3):
            store.add_event({"v": 1, "node": "n01", "type": "accepted", "bulletin": f"b{n}"})
        backlog = check_outbox(store.outbox_size(), warn_at=3, crit_at=5)
        assert backlog.status == "warn" and backlog.detail == "3 events waiting for the broker"
        for n in range(2):
            store.add_event({"v": 1, "node": "n01", "type": "accepted", "bulletin": f"c{n}"})
        assert check_outbox(store.outbox_size(), warn_at=3, crit_at=5).status == "crit"


def test_heartbeat_age() -> None:
    now = 10_000.0
    assert check_heartbeat(now - 30, now - 3600, 60, now).status == "ok"
    assert check_heartbeat(None, now - 5, 60, now).detail.startswith("starting")
    assert check_heartbeat(now - 200, now - 3600, 60, now).status == "warn"
    late = check_heartbeat(None, now - 3600, 60, now)
    assert late.status == "crit" and "no health report published" in late.detail


def test_worst() -> None:
    assert worst([]) == "ok"
    assert worst(["ok", "warn", "ok"]) == "warn"
    assert worst(["warn", "crit", "ok"]) == "crit"


# ----- checks of a running daemon -----


def checks_of(report: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {c["name"]: c for c in report["checks"]}


def test_daemon_report_ok_then_broker_stopped(node: ThreadNode, broker: Broker) -> None:
    report = node.daemon.on_main_loop(node.daemon.health_report).result(timeout=10)
    checks = checks_of(report)
    assert list(checks) == ["broker", "heartbeat", "audio", "voice", "storage", "clock", "cpu_temp", "power",
                            "memory", "store", "relays", "queue", "outbox"]
    assert checks["broker"]["status"] == "ok" and "since" in checks["broker"]["detail"]
    assert checks["relays"]["detail"] == "amplifier off, line-1 off"
    assert report["status"] == worst(c["status"] for c in report["checks"])
    broker.stop()
    wait_for(lambda: not node.daemon.link.connected, 15, "the node to notice the broker is gone")
    down = checks_of(node.daemon.on_main_loop(node.daemon.health_report).result(timeout=10))
    assert down["broker"]["status"] == "crit" and "not connected" in down["broker"]["detail"]
    broker.start()


def test_queue_warns_on_a_failed_play_and_is_crit_when_the_player_died(node: ThreadNode) -> None:
    daemon = node.daemon

    def queue_check() -> Check:  # on the main loop, as the daemon runs it: after start-up, never mid-change
        def check() -> Check:
            last = daemon.store.last_plays(1)
            return check_queue(daemon.playout, daemon.scheduler.next_play(), last[0] if last else None, daemon.tz)

        return daemon.on_main_loop(check).result(timeout=10)

    assert queue_check().status == "ok"
    daemon.store.mark_occurrence("b-0612", 1, "now", "failed", detail="audio", at=time.time())
    failed = queue_check()
    assert failed.status == "warn" and "b-0612" in failed.detail and "failed: audio" in failed.detail
    daemon.playout.close()
    dead = queue_check()
    assert dead.status == "crit" and "player thread has died" in dead.detail


def test_radiod_health_cli_and_the_retained_report(
    node: ThreadNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(node.config, tmp_path / "node.yaml")
    code = main(["health", "--config", str(path)])
    summary, *lines = capsys.readouterr().out.splitlines()
    names = [line.split()[1] for line in lines]
    assert {"daemon", "config", "broker", "outbox"} <= set(names)
    assert any(line.startswith("OK    daemon     running: pid") for line in lines)
    statuses = [line.split()[0].lower() for line in lines]
    assert summary.startswith(f"RADIOD {dict(ok='OK', warn='WARNING', crit='CRITICAL')[worst(statuses)]} - ")
    assert code == {"ok": 0, "warn": 1, "crit": 2}[worst(statuses)]
    retained = collect_retained(node.config.mqtt, "t", f"{node.config.mqtt.prefix}/node/n01/health")
    assert retained, "the daemon leaves its health report retained"
    code = main(["health", "--config", str(path), "--json"])
    out = yaml.safe_load(capsys.readouterr().out)  # JSON is YAML
    assert out["report"]["node"] == "n01" and out["status"] == worst(c["status"] for c in out["checks"])


def test_radiod_health_with_the_daemon_dead_says_so_and_exits_2(
    node: ThreadNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(node.config, tmp_path / "node.yaml")
    node.stop()
    assert main(["health", "--config", str(path)]) == 2
    out = capsys.readouterr().out
    assert out.startswith("RADIOD CRITICAL - node n01: 1 critical (daemon)")
    assert out.splitlines()[1].startswith("CRIT  daemon     radiod is not running")
    assert "OK    config" in out and "storage" in out and "clock" in out


def test_radiod_health_with_a_broken_config_is_crit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text(f"storage:\n  dir: {tmp_path}\naudio:\n  volume: 3\n", encoding="utf-8")
    assert main(["health", "--config", str(bad)]) == 2
    out = capsys.readouterr().out
    assert "CRIT  config     " in out and "audio.volume: must be at most 1" in out


def test_socket_file_left_alone_is_not_a_daemon(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = dataclasses.replace(Config(), storage=dataclasses.replace(Config().storage, dir=str(tmp_path)))
    (tmp_path / "control.sock").write_text("")  # not even a socket
    assert stat.S_ISREG((tmp_path / "control.sock").stat().st_mode)
    assert main(["health", "--config", str(write_config(config, tmp_path / "c.yaml"))]) == 2
    assert "CRIT  daemon     radiod is not running: nothing listens" in capsys.readouterr().out


def test_memory_check_warns_when_a_neural_voice_does_not_fit(tmp_path: Path) -> None:
    """A Pi Zero 2 W (512 MB) with the 63 MB Piper voice: warn; an espeak-ng voice always fits."""
    voices = tmp_path / "voices"
    (voices / "models").mkdir(parents=True)
    with (voices / "models" / "vi.onnx").open("wb") as model:
        model.truncate(63 * 2**20)
    (voices / "models" / "vi.onnx.json").write_text("{}", encoding="utf-8")
    (voices / "vi-neural.yaml").write_text(
        "description: a medium piper voice\nengine: piper\nmodel: models/vi.onnx\nfallback: vi-north\n",
        encoding="utf-8",
    )
    (voices / "vi-north.yaml").write_text("description: espeak\nvoice: vi\n", encoding="utf-8")
    zero2w = tmp_path / "meminfo"
    zero2w.write_text("MemTotal:         437000 kB\nMemAvailable:     300000 kB\n", encoding="utf-8")
    neural = check_memory("vi-neural", voices, zero2w)
    assert neural.status == "warn"
    assert "vi-north" in neural.detail
    assert check_memory("vi-north", voices, zero2w).status == "ok"
