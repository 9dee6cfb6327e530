"""``radiod status``: now playing, the queue, the next plays and the last ten, as the daemon reports them."""

from __future__ import annotations

import json
import sys
from typing import Any

from radiod.config import Config
from radiod.node.control import socket_paths
from radiod.technician.client import NotRunning, request


def show_status(config: Config, *, as_json: bool) -> int:
    """``radiod status``: 0 when the daemon answered, 2 when it is not running (said on stderr)."""
    try:
        report = request(socket_paths(config), {"cmd": "status"})
    except NotRunning as exc:
        print(exc, file=sys.stderr)
        return 2
    print(json.dumps(report, ensure_ascii=False, indent=2) if as_json else "\n".join(format_status(report)))
    return 0


def format_status(report: dict[str, Any]) -> list[str]:
    """``radiod status`` as text: a technician reads it top to bottom."""
    lines = [f"node {report['node']}  radiod {report['version']}  up {report['uptime_s']} s  broker "
             f"{report['broker']}"]
    playing = report["playing"]
    if playing is None:
        lines.append("now playing: nothing")
    elif "job" in playing:
        lines.append(f"now playing: the {playing['job']}")
    else:
        lines.append(f"now playing: {_describe(playing)}")
    lines.append(f"queue: {len(report['queue'])}")
    lines += [f"  {_describe(q)}" for q in report["queue"]]
    lines.append("next plays:" if report["next"] else "next plays: none scheduled")
    lines += [f"  {n['at']}  {n['bulletin']} r{n['rev']}  {n['title'][:50]}" for n in report["next"]]
    lines.append("last plays:" if report["last_plays"] else "last plays: none yet")
    for p in report["last_plays"]:
        detail = f" ({p['detail']})" if p["detail"] else ""
        lines.append(f"  {p['at']}  {p['state']:<11} {p['id']} r{p['rev']} occurrence {p['occurrence']}{detail}")
    return lines


def _describe(req: dict[str, Any]) -> str:
    return f"{req['bulletin']} r{req['rev']} [{req['priority']}] start {req['start']}  {req['title'][:50]}"
