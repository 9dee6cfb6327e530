"""``radiod nodes``: the whole commune at a glance, from what every node leaves retained on the broker.

Each node keeps two retained messages (protocol v1): ``P/node/<n>/state`` (online, since, version; the Last
Will turns it to offline when the node vanishes) and ``P/node/<n>/health`` (its last health report). Reading
them needs only the broker, so this runs on the hub or on any laptop that reaches it, and it sees a node the
moment it is installed, without any list of nodes to keep up to date.

A node the state calls online but whose last report is older than :data:`SILENT_INTERVALS` report intervals
is "silent": the broker has not noticed yet (the Last Will waits 1.5 keepalives) or the daemon hangs with its
connection open. A node in the hub's list (``hub.nodes``, written by ``radiod hub-setup``) that has left nothing
on the broker is "never": installed on paper, never connected. Offline, silent and never-seen nodes are listed
first: they are the ones to drive out to.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from radiod.clock import parse_rfc3339, rfc3339
from radiod.config import Config
from radiod.hub.session import collect_retained
from radiod.node.health import EXIT_CODES
from radiod.node.mqtt_link import Incoming
from radiod.protocol.enums import HealthStatus
from radiod.protocol.outgoing import Check, Health, NextPlay, Playing, State
from radiod.protocol.topics import node_topic, parse_node_topic

SILENT_INTERVALS = 3
ORDER = {"offline": 0, "silent": 1, "never": 2, "crit": 3, "warn": 4, "unknown": 5, "ok": 6}
"""How urgent each state is: the table is sorted by it."""
SEVERITY = {
    "offline": "crit", "silent": "crit", "never": "warn", "crit": "crit", "warn": "warn", "unknown": "warn", "ok": "ok",
}
"""Each state as a monitoring status, for the exit code. A node never seen warns: it may not be installed yet."""


@dataclass(frozen=True)
class NodeList:
    """The commune's nodes as the hub knows them: ``hub.nodes`` and ``hub.zones`` from its config, and every node
    that left a retained state on the broker. ``post`` counts and checks its targets against it."""

    nodes: frozenset[str]
    zones: Mapping[str, tuple[str, ...]]
    online: frozenset[str] = frozenset()
    """The nodes whose retained state says online: those expected to answer a command."""

    @classmethod
    def build(cls, config: Config, states: Mapping[str, State] | None = None) -> NodeList:
        """From the config alone, or with the retained ``states`` read from the broker."""
        zones = {zone: tuple(members) for zone, members in config.hub.zones.items()}
        members = {n for group in zones.values() for n in group}
        states = states or {}
        online = frozenset(name for name, state in states.items() if state.online)
        return cls(frozenset({*config.hub.nodes, *members, *states}), zones, online)

    def reach(self, targets: Sequence[str]) -> set[str]:
        """The known nodes ``targets`` address; a target this list does not know reaches none of them (the
        warning for it is :func:`radiod.hub.checks.post_warnings`'s)."""
        reached: set[str] = set()
        for target in targets:
            if target == "all":
                reached |= self.nodes
            elif target.startswith("zone-"):
                reached |= set(self.zones.get(target.removeprefix("zone-"), ()))
            elif (node := target.removeprefix("node-")) in self.nodes:
                reached.add(node)
        return reached


def known_nodes(config: Config, settle_s: float = 0.5) -> NodeList:
    """The hub's node list: its config, and every node whose retained state is on the broker."""
    prefix = config.mqtt.prefix
    messages = collect_retained(config.mqtt, "nodes", node_topic(prefix, "+", "state"), settle_s=settle_s)
    return NodeList.build(config, _states(messages, prefix))


def _states(messages: list[Incoming], prefix: str) -> dict[str, State]:
    """Each node's retained state; a payload that is not the protocol's is left out."""
    states = {}
    for msg in messages:
        parsed = parse_node_topic(msg.topic, prefix)
        if parsed is None or parsed[1] != "state" or not msg.payload:
            continue
        try:
            states[parsed[0]] = State.from_dict(json.loads(msg.payload))
        except ValueError:
            continue  # not the protocol's: a stray retained message on a node topic
    return states


@dataclass
class NodeView:
    """One node as the hub sees it. ``state`` is offline, silent, or the health report's ok/warn/crit."""

    node: str
    state: str = "unknown"
    online: bool | None = None
    since: str | None = None
    last_seen: str | None = None
    version: str | None = None
    next: NextPlay | None = None
    playing: Playing | None = None
    failed: list[Check] = field(default_factory=list)


def node_views(
    messages: list[Incoming], prefix: str, *, interval_s: float, now: float, listed: Sequence[str] = ()
) -> list[NodeView]:
    """Fold the retained state and health messages into one view per node, the most urgent first; a ``listed``
    node with neither is "never"."""
    states: dict[str, State] = {}
    reports: dict[str, Health] = {}
    for msg in messages:
        parsed = parse_node_topic(msg.topic, prefix)
        if parsed is None or not msg.payload:
            continue
        name, kind = parsed
        try:
            if kind == "state":
                states[name] = State.from_dict(json.loads(msg.payload))
            elif kind == "health":
                reports[name] = Health.from_dict(json.loads(msg.payload))
        except ValueError:
            continue  # not the protocol's: a stray retained message on a node topic
    names = states.keys() | reports.keys()
    views = [_view(name, states.get(name), reports.get(name), interval_s, now) for name in names]
    views += [NodeView(name, state="never") for name in sorted(set(listed) - names)]
    return sorted(views, key=lambda v: (ORDER[v.state], v.node))


def _view(name: str, state: State | None, health: Health | None, interval_s: float, now: float) -> NodeView:
    view = NodeView(name)
    if state is not None:
        view.online = state.online
        view.since = state.since
        view.version = state.version
    seen = _time(health.ts) if health else None
    if health is not None:
        view.last_seen = health.ts
        view.version = health.version or view.version
        view.next = health.next
        view.playing = health.playing
        view.failed = [c for c in health.checks if c.status != HealthStatus.OK]
        view.state = str(health.status)
    if view.online is False:
        view.state = "offline"
    elif seen is not None and now - seen > SILENT_INTERVALS * interval_s:
        view.state = "silent"
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
        upcoming = f"{v.next.bulletin} at {v.next.at}" if v.next else "-"
        lines.append(f"{v.node:<10} {v.state.upper():<8} {seen:<26} {v.version or '?':<9} {upcoming}")
        if v.state == "never":
            lines.append(f"{'':<10} in hub.nodes but never connected to the broker")
        if v.state == "offline" and v.since:
            lines.append(f"{'':<10} offline since {v.since}")
        lines += [f"{'':<10} {c.status.upper():<4} {c.name}: {c.detail}" for c in v.failed]
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
    messages = collect_retained(config.mqtt, "nodes", node_topic(prefix, "+", "+"), settle_s=settle_s)
    now = time.time()
    views = node_views(messages, prefix, interval_s=config.health.interval_s, now=now, listed=config.hub.nodes)
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
