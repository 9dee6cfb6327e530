"""Protocol v1 topics: every MQTT topic and filter hub and node use, built and parsed here only.

``P`` is the prefix (config ``mqtt.prefix``, a trailing ``/`` ignored). Hub to node: ``P/bulletin/<target>/<id>``
(retained) and ``P/command/<target>``. Node to hub: ``P/node/<node>/state``, ``.../health`` (both retained) and
``.../event``. A target is ``all``, ``zone-<zone>`` or ``node-<node>``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from radiod.config import NAME_PATTERN

ID_PATTERN = r"[A-Za-z0-9._-]{1,64}"
TARGET_PATTERN = rf"all|zone-{NAME_PATTERN}|node-{NAME_PATTERN}"
NodeTopicKind = Literal["state", "health", "event"]
NODE_TOPIC_KINDS: tuple[NodeTopicKind, ...] = ("state", "health", "event")


@dataclass(frozen=True)
class HubTopic:
    """A bulletin or command topic, taken apart: ``id`` is set for bulletins only."""

    kind: Literal["bulletin", "command"]
    target: str
    id: str | None


def node_targets(node_id: str, zones: Sequence[str]) -> tuple[str, ...]:
    """The targets that address this node: ``all``, ``zone-<z>`` for each zone, ``node-<id>``."""
    return ("all", *(f"zone-{z}" for z in zones), f"node-{node_id}")


def subscriptions(prefix: str, node_id: str, zones: Sequence[str]) -> list[str]:
    """The MQTT topic filters a node subscribes to: bulletins and commands for each of its targets."""
    filters = []
    for target in node_targets(node_id, zones):
        filters += [bulletin_topic(prefix, target, "+"), command_topic(prefix, target)]
    return filters


def bulletin_topic(prefix: str, target: str, bulletin_id: str) -> str:
    return f"{_base(prefix)}/bulletin/{target}/{bulletin_id}"


def bulletins_filter(prefix: str) -> str:
    """Every bulletin of the commune, all targets: what an operator tool reads the schedule from."""
    return f"{_base(prefix)}/bulletin/#"


def command_topic(prefix: str, target: str) -> str:
    return f"{_base(prefix)}/command/{target}"


def node_topic(prefix: str, node_id: str, kind: NodeTopicKind | Literal["+"]) -> str:
    """``P/node/<node>/<kind>``; ``node_id`` and ``kind`` may be ``+`` for a filter over every node or kind."""
    return f"{_base(prefix)}/node/{node_id}/{kind}"


def state_topic(prefix: str, node_id: str) -> str:
    return node_topic(prefix, node_id, "state")


def health_topic(prefix: str, node_id: str) -> str:
    return node_topic(prefix, node_id, "health")


def event_topic(prefix: str, node_id: str) -> str:
    return node_topic(prefix, node_id, "event")


def parse_node_topic(topic: str, prefix: str) -> tuple[str, NodeTopicKind] | None:
    """``(node, kind)`` of a ``P/node/<node>/<kind>`` topic, or None for any other topic."""
    base = f"{_base(prefix)}/node/"
    if not topic.startswith(base):
        return None
    node, _, kind = topic[len(base) :].partition("/")
    for known in NODE_TOPIC_KINDS:
        if kind == known and node:
            return node, known
    return None


def parse_hub_topic(topic: str, prefix: str) -> HubTopic | None:
    """A ``P/bulletin/<target>/<id>`` or ``P/command/<target>`` topic with a valid target and id, else None."""
    base = _base(prefix) + "/"
    if not topic.startswith(base):
        return None
    parts = topic[len(base) :].split("/")
    parsed: HubTopic
    if len(parts) == 3 and parts[0] == "bulletin" and re.fullmatch(ID_PATTERN, parts[2]):
        parsed = HubTopic("bulletin", parts[1], parts[2])
    elif len(parts) == 2 and parts[0] == "command":
        parsed = HubTopic("command", parts[1], None)
    else:
        return None
    return parsed if re.fullmatch(TARGET_PATTERN, parsed.target) else None


def topic_bulletin_id(topic: str, prefix: str) -> str | None:
    """The bulletin id a topic names, for the ``rejected`` event of a payload that cannot be trusted."""
    parsed = parse_hub_topic(topic, prefix)
    return parsed.id if parsed else None


def _base(prefix: str) -> str:
    return prefix.rstrip("/")
