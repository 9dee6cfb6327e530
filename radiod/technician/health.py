"""``radiod health``: the running daemon's checks, the config file on disk, and, with the daemon dead, the checks
that need no daemon; printed as a monitoring plugin does (see :mod:`radiod.node.health` for the checks).

Nagios plugin conventions, so the command is the monitoring agent's check as it is: the first line is the worst
status and a summary, then ``|`` and performance data (free space, CPU temperature, clock offset, outbox, each
with its thresholds); then one line per check, worst first; exit 0 OK, 1 WARNING, 2 CRITICAL, and 3 UNKNOWN for
a usage error (``radiod.cli``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from radiod.config import Config, load_config
from radiod.errors import ConfigError, RadiodError, VoiceError
from radiod.node.control import socket_paths
from radiod.node.health import (
    EXIT_CODES,
    OUTBOX_CRIT,
    OUTBOX_WARN,
    STATUSES,
    Check,
    local_checks,
    read_clock,
    read_cpu_temp,
    worst,
)
from radiod.profiles import load_profile
from radiod.speech.voices import load_voice
from radiod.technician.client import request


def check_config(path: Path | None) -> tuple[Check, Config | None]:
    """The config file as it is on disk now, with the profile and voice it names; and the config if it loads.

    This is what the daemon will read at its next start, so a bad edit shows up here before a reboot bites.
    """
    if path is None:
        return Check("config", "warn", "no config file: running on the built-in defaults (give --config F, set "
                     "$RADIOD_CONFIG, or create /etc/radiod/config.yaml)"), load_config(None)
    try:
        config = load_config(path)
        load_profile(config.gpio.profile, Path(config.gpio.profiles_dir))
        load_voice(config.speech.voice, Path(config.speech.voices_dir))
    except ConfigError as exc:
        more = f" (and {len(exc.problems) - 1} more: radiod validate --config {path})" if len(exc.problems) > 1 else ""
        return Check("config", "crit", f"{exc.problems[0]}{more}"), None
    except VoiceError as exc:
        return Check("config", "crit", f"{path}: speech.voice: {exc}"), None
    return Check("config", "ok", f"{path} is valid (node {config.node.id}, profile {config.gpio.profile}, "
                 f"voice {config.speech.voice})"), config


def gather(config_path: Path | None) -> tuple[list[Check], dict[str, Any] | None]:
    """``radiod health``: the daemon's own checks over its socket, plus the config file; with the daemon dead
    (or stalled), a crit "daemon" line and the checks that need no daemon. Also the daemon's report, if any."""
    config_check, config = check_config(config_path)
    effective = config or load_config(None)  # an invalid file: look where the defaults would put things
    try:
        answer = request(socket_paths(effective), {"cmd": "health"})
    except RadiodError as exc:
        return [Check("daemon", "crit", str(exc)), config_check, *local_checks(effective)], None
    report = answer["report"]
    alive = Check("daemon", "ok", f"running: pid {answer['pid']}, radiod {report['version']}, node "
                  f"{report['node']}, up {report['uptime_s']} s")
    reported = [Check(c["name"], c["status"], c["detail"]) for c in report["checks"]]
    return [alive, config_check, *reported], report


NAGIOS_STATUS = {"ok": "OK", "warn": "WARNING", "crit": "CRITICAL"}
"""The service states of the Nagios plugin guidelines, for the first line."""


def show_health(config_path: Path | None, *, as_json: bool) -> int:
    """Print the summary line with performance data and the checks worst first (or JSON); return the monitoring
    exit code of the worst."""
    checks, report = gather(config_path)
    checks = worst_first(checks)
    status = worst(c.status for c in checks)
    config = _config_or_defaults(config_path)
    perf = perfdata(config, report)
    node = report["node"] if report else config.node.id
    if as_json:
        print(json.dumps({"status": status, "summary": summary(node, checks), "perfdata": perf,
                          "checks": [c.to_dict() for c in checks], "report": report}, ensure_ascii=False, indent=2))
    else:
        print(f"RADIOD {NAGIOS_STATUS[status]} - {summary(node, checks)} | {format_perfdata(perf)}".rstrip(" |"))
        print("\n".join(format_checks(checks)))
    return EXIT_CODES[status]


def worst_first(checks: Iterable[Check]) -> list[Check]:
    """crit, then warn, then ok; in their usual order within each."""
    return sorted(checks, key=lambda c: -STATUSES.index(c.status))


def summary(node: str, checks: Iterable[Check]) -> str:
    """``node n01: 1 critical (daemon), 2 warning (audio, relays)``, or how many checks are ok."""
    checks = list(checks)
    parts = []
    for status, word in (("crit", "critical"), ("warn", "warning")):
        names = [c.name for c in checks if c.status == status]
        if names:
            parts.append(f"{len(names)} {word} ({', '.join(names)})")
    return f"node {node}: {', '.join(parts) or f'all {len(checks)} checks ok'}"


def perfdata(config: Config, report: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The figures behind the checks, with the thresholds the checks use (Nagios ranges: ``100:`` means alert
    below 100). A figure this machine cannot read (no sensor, no clock estimate, no daemon) is left out."""
    h = config.health
    perf: dict[str, dict[str, Any]] = {}
    try:
        free_mb = shutil.disk_usage(config.storage.dir).free / 1e6
        perf["free_mb"] = {"value": round(free_mb), "warn": f"{2 * h.min_free_mb}:", "crit": f"{h.min_free_mb}:",
                           "min": 0}
    except OSError:
        pass
    temp = read_cpu_temp()
    if temp is not None:
        perf["cpu_temp"] = {"value": round(temp[0], 1), "warn": h.cpu_temp_warn_c, "crit": h.cpu_temp_crit_c}
    clock = read_clock()
    if clock is not None and clock.error_s is not None:
        limit = h.max_clock_offset_s
        perf["clock_offset"] = {"value": round(clock.error_s, 6), "uom": "s", "warn": f"{-limit:g}:{limit:g}"}
    if report is not None:
        perf["outbox"] = {"value": report["outbox"], "warn": OUTBOX_WARN, "crit": OUTBOX_CRIT, "min": 0}
    return perf


def format_perfdata(perf: dict[str, dict[str, Any]]) -> str:
    """``label=value[uom];warn;crit;min`` items, space separated, as the plugin guidelines lay them out."""
    items = []
    for label, p in perf.items():
        fields = [f"{_number(p['value'])}{p.get('uom', '')}", *(str(p.get(k, "")) for k in ("warn", "crit", "min"))]
        items.append(f"{label}={';'.join(fields).rstrip(';')}")
    return " ".join(items)


def _number(value: float) -> str:
    """Plain decimal notation (perfdata parsers do not read 1e+06)."""
    return str(value) if isinstance(value, int) else f"{value:.6f}".rstrip("0").rstrip(".")


def _config_or_defaults(path: Path | None) -> Config:
    """The config for the figures: the file when it loads, else the defaults (the config check says why)."""
    try:
        return load_config(path)
    except ConfigError:
        return load_config(None)


def format_checks(checks: Iterable[Check]) -> list[str]:
    """One line per check, the status first in capitals so a failing one catches the eye."""
    return [f"{c.status.upper():<4}  {c.name:<9}  {c.detail}" for c in checks]
