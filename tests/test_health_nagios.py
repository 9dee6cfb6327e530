"""`radiod health` as a Nagios/Icinga check command (issue 11, item 13): the first line is the worst status, a
summary and performance data; the checks follow worst first; a usage error is UNKNOWN (3). A node left on mock
relays or a file sink outside a demo says so, and a file sink keeps only the newest WAVs."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from gpiozero.pins.mock import MockFactory
from harness import SHORT, EventLog, Hub, ThreadNode, node_config

from radiod.audio.relays import Relays
from radiod.cli import main
from radiod.config import REPO_ROOT
from radiod.node.health import check_relays, read_clock, read_cpu_temp, worst
from radiod.profiles import load_profile
from radiod.schema import to_plain

NAGIOS = {"ok": "OK", "warn": "WARNING", "crit": "CRITICAL"}


def test_health_first_line_perfdata_and_worst_first(
    hub: Hub, start_node: Callable[..., ThreadNode], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = node_config(hub, tmp_path)
    config = replace(base, node=replace(base.node, demo=False))  # a real node left on mock relays and a file sink
    start_node(config)
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(to_plain(config, mask_secrets=False)), encoding="utf-8")
    code = main(["health", "--config", str(path)])
    first, *lines = capsys.readouterr().out.splitlines()
    statuses = [line.split()[0].lower() for line in lines]
    status = worst(statuses)
    assert code == {"ok": 0, "warn": 1, "crit": 2}[status]
    assert statuses == sorted(statuses, key=["crit", "warn", "ok"].index), "worst checks first"
    summary, perf = first.split(" | ")
    assert summary.startswith(f"RADIOD {NAGIOS[status]} - node n01: ")
    assert re.fullmatch(r"free_mb=\d+;200:;100:;0", re.search(r"free_mb=\S+", perf)[0])
    assert re.search(r"(^| )outbox=\d+;100;50000;0( |$)", perf)
    if read_cpu_temp() is not None:
        assert re.search(r"(^| )cpu_temp=[\d.]+;70.0;80.0( |$)", perf)
    reading = read_clock()
    if reading is not None and reading.error_s is not None:
        assert re.search(r"(^| )clock_offset=-?[\d.]+s;-0.5:0.5( |$)", perf)
    by_name = {line.split()[1]: line for line in lines}
    assert by_name["relays"].startswith("WARN") and "mock relays" in by_name["relays"]
    assert by_name["audio"].startswith("WARN") and "WAV files" in by_name["audio"]
    assert "warning (" in summary and "relays" in summary and "audio" in summary


def test_demo_expects_mock_relays() -> None:
    profile = load_profile("mock", REPO_ROOT / "firmware_profiles")
    relays = Relays(profile, MockFactory())
    try:
        assert check_relays(relays, lambda: False, None, None, demo=True).status == "ok"  # type: ignore[arg-type]
        warned = check_relays(relays, lambda: False, None, None)  # type: ignore[arg-type]
        assert warned.status == "warn" and "gpio.profile" in warned.detail
    finally:
        relays.close()


def test_health_usage_errors_are_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["health", "--no-such-option"]) == 3
    assert main(["health", "--config"]) == 3
    assert "usage: radiod" in capsys.readouterr().err


def test_file_sink_keeps_the_newest_wavs(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode], tmp_path: Path
) -> None:
    base = node_config(hub, tmp_path)
    node = start_node(replace(base, audio=replace(base.audio, file_keep=2)))
    old = []
    for n in range(4):  # plays of past days
        wav = node.out_dir / f"old-{n}.wav"
        wav.write_bytes(b"RIFF")
        os.utime(wav, (time.time() - 86400 * (5 - n),) * 2)
        old.append(wav)
    bid = hub.post(SHORT)["id"]
    events.wait("finished", bulletin=bid, timeout=30)
    kept = sorted(p.name for p in node.out_dir.glob("*.wav"))
    assert len(kept) == 2 and old[-1].name in kept, kept
    assert any(name.startswith(bid) for name in kept), kept
