"""``radiod nodes``: the whole commune at a glance, from what every node leaves retained on the broker.

Each node keeps two retained messages (protocol v1): ``P/node/<n>/state`` (online, since, version; the Last
Will turns it to offline when the node vanishes) and ``P/node/<n>/health`` (its last health report). Reading
them needs only the broker, so this runs on the hub or on any laptop that reaches it, and it sees a node the
moment it is installed, without any list of nodes to keep up to date.

A node the state calls online but whose last report is older than :data:`SILENT_INTERVALS` report intervals
is "silent": the broker has not noticed yet (the Last Will waits 1.5 keepalives) or the daemon hangs with its
connection open. Offline and silent nodes are listed first: they are the ones to drive out to.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from radiod.clock import parse_rfc3339, rfc3339
from radiod.config import Config
from radiod.node.health import EXIT_CODES
from radiod.node.mqtt_link import Incoming, collect_retained

SILENT_INTERVALS = 3
ORDER = {"offline": 0, "silent": 1, "crit": 2, "warn": 3, "unknown": 4, "ok": 5}
"""How urgent each state is: the table is sorted by it."""
SEVERITY = {"offline": "crit", "silent": "crit", "crit": "crit", "warn": "warn", "unknown": "warn", "ok": "ok"}
"""Each state as a monitoring status, for the exit code."""


@dataclass
class NodeView:
    """One node as the hub sees it. ``state`` is offline, silent, or the health report's ok/warn/crit."""

    node: str
    state: str = "unknown"
    online: bool | None = None
    since: str | None = None
    last_seen: str | None = None
    version: str | None = None
    next: dict[str, Any] | None = None
    playing: dict[str, Any] | None = None
    failed: list[dict[str, str]] = field(default_factory=list)


def node_views(messages: list[Incoming], prefix: str, *, interval_s: float, now: float) -> list[NodeView]:
    """Fold the retained state and health messages into one view per node, the most urgent first."""
    nodes: dict[str, dict[str, dict[str, Any]]] = {}
    base = prefix.rstrip("/") + "/node/"
    for msg in messages:
        if not msg.topic.startswith(base):
            continue
        name, _, kind = msg.topic[len(base):].partition("/")
        if kind not in ("state", "health") or not msg.payload:
            continue
        try:
            data = json.loads(msg.payload)
        except ValueError:
            continue  # not the protocol's: a stray retained message on a node topic
        if isinstance(data, dict):
            nodes.setdefault(name, {})[kind] = data
    views = [_view(name, parts.get("state"), parts.get("health"), interval_s, now) for name, parts in nodes.items()]
    return sorted(views, key=lambda v: (ORDER[v.state], v.node))


def _view(name: str, state: dict[str, Any] | None, health: dict[str, Any] | None, interval_s: float,
          now: float) -> NodeView:
    view = NodeView(name)
    if state is not None:
        view.online = bool(state.get("online"))
        view.since = state.get("since")
        view.version = state.get("version")
    seen = _time(health.get("ts")) if health else None
    if health is not None:
        view.last_seen = health.get("ts")
        view.version = health.get("version") or view.version
        view.next = health.get("next")
        view.playing = health.get("playing")
        view.failed = [c for c in health.get("checks", []) if isinstance(c, dict) and c.get("status") != "ok"]
    if view.online is False:
        view.state = "offline"
    elif seen is not None and now - seen > SILENT_INTERVALS * interval_s:
        view.state = "silent"
    elif health is not None and health.get("status") in ("ok", "warn", "crit"):
        view.state = str(health["status"])
    if view.last_seen is None and view.since:
        view.last_seen = view.since
    return view


def _time(text: Any) -> float | None:
    try:
        return parse_rfc3339(text) if isinstance(text, str) else None
    except ValueError:
        return None


def format_nodes(views: list[NodeView], now: float) -> list[str]:
    """The table a technician reads, one line per node, then its failing checks indented under it."""
    lines = [f"{'NODE':<10} {'STATE':<8} {'LAST SEEN':<26} {'VERSION':<9} NEXT PLAY"]
    for v in views:
        seen = v.last_seen or "never"
        when = _time(v.last_seen)
        if when is not None:
            seen = f"{_ago(now - when)} ago"
        upcoming = f"{v.next.get('bulletin')} at {v.next.get('at')}" if v.next else "-"
        lines.append(f"{v.node:<10} {v.state.upper():<8} {seen:<26} {v.version or '?':<9} {upcoming}")
        if v.state == "offline" and v.since:
            lines.append(f"{'':<10} offline since {v.since}")
        lines += [f"{'':<10} {c.get('status', '?').upper():<4} {c.get('name', '?')}: {c.get('detail', '')}"
                  for c in v.failed]
    return lines


def _ago(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def show_nodes(config: Config, *, as_json: bool, settle_s: float = 1.0) -> int:
    """``radiod nodes``: print the table (or JSON); exit 2 if a node is offline, silent or crit, 1 on a warn."""
    prefix = config.mqtt.prefix
    messages = collect_retained(config.mqtt, "nodes", f"{prefix}/node/+/+", settle_s=settle_s)
    now = time.time()
    views = node_views(messages, prefix, interval_s=config.health.interval_s, now=now)
    if as_json:
        print(json.dumps([asdict(v) for v in views], ensure_ascii=False, indent=2))
    elif not views:
        print(f"no node has reported on {prefix} at {config.mqtt.host}:{config.mqtt.port} "
              f"(checked {rfc3339(now, ms=False)})")
    else:
        print("\n".join(format_nodes(views, now)))
    if not views:
        return EXIT_CODES["warn"]
    return max(EXIT_CODES[SEVERITY[v.state]] for v in views)
