"""``radiod health``: the running daemon's checks, the config file on disk, and, with the daemon dead, the checks
that need no daemon; printed one line each (or JSON), exit code as a monitoring plugin's (see
:mod:`radiod.node.health` for the checks themselves).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from radiod.config import Config, load_config
from radiod.errors import ConfigError, RadiodError, VoiceError
from radiod.node.control import socket_paths
from radiod.node.health import EXIT_CODES, Check, local_checks, worst
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


def show_health(config_path: Path | None, *, as_json: bool) -> int:
    """Print the checks (one line each, or JSON) and return the monitoring exit code of the worst."""
    checks, report = gather(config_path)
    status = worst(c.status for c in checks)
    if as_json:
        print(json.dumps({"status": status, "checks": [c.to_dict() for c in checks], "report": report},
                         ensure_ascii=False, indent=2))
    else:
        print("\n".join(format_checks(checks)))
    return EXIT_CODES[status]


def format_checks(checks: Iterable[Check]) -> list[str]:
    """One line per check, the status first in capitals so a failing one catches the eye."""
    return [f"{c.status.upper():<4}  {c.name:<9}  {c.detail}" for c in checks]
