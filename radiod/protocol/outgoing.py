"""What a node publishes (protocol v1, docs/protocol.md): Event, Health and State, as small typed dataclasses.

As in wyoming's ``event.py``, each message is a dataclass that turns itself into the JSON object on the wire
(``to_dict``) and back (``from_dict``), so a field name is written once, here, for the node that emits it and for
the hub tools (``radiod watch``, ``radiod nodes``) that read it. Events and health reports share one envelope,
``{"v": 1, "node": ..., "ts": ...}``. ``to_dict`` leaves out optional fields that are unset (``None``), as the
node always has. ``from_dict`` keeps what a newer node may add (an Event's unknown fields go to ``extra``) and
raises ``ValueError`` naming the field when a message is not what the protocol says.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from radiod.protocol.enums import EventType, HealthStatus

PROTOCOL_VERSION = 1


def _envelope(node: str, ts: str) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "node": node, "ts": ts}


def _object(what: str, data: Any) -> Mapping[str, Any]:
    """``data`` as a protocol v1 object, or ValueError: not an object, or of another protocol version."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{what}: expected a JSON object, got {type(data).__name__}")
    if data.get("v", PROTOCOL_VERSION) != PROTOCOL_VERSION:
        raise ValueError(f"{what}: protocol version {data.get('v')!r}, this reads {PROTOCOL_VERSION}")
    return data


def _required(what: str, data: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = _typed(what, data, key, kind)
    if value is None:
        raise ValueError(f"{what}.{key}: required")
    return value


def _typed(what: str, data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    """``data[key]`` if it has type ``kind`` (``default`` when missing or null), else ValueError naming it."""
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ValueError(f"{what}.{key}: unexpected {type(value).__name__} {value!r:.40}")
    return value


@dataclass(frozen=True)
class Event:
    """One event (``P/node/<node>/event``): the common fields, then those its ``type`` carries.

    The node's :class:`~radiod.node.events.EventLog` fills ``node`` and ``ts``, and its store ``seq``. ``next``
    is written on every ``accepted`` event, null when nothing is left to play; every other field only when set.
    """

    type: EventType
    node: str = ""
    ts: str = ""  # RFC 3339 with milliseconds and the node's offset
    seq: int | None = None
    bulletin: str | None = None
    rev: int | None = None
    occurrence: str | None = None
    next: str | None = None  # accepted
    warning: str | None = None  # accepted (unknown voice), started (fallback voice)
    reason: str | None = None  # rejected, interrupted, skipped, failed
    message: str | None = None  # rejected, failed
    topic: str | None = None  # rejected
    command: str | None = None  # rejected (a replayed command), command
    action: str | None = None  # command
    result: str | None = None  # command
    step: str | None = None  # command (a technician test step)
    detail: str | None = None  # command (a technician test step)
    amp_on: str | None = None  # started, finished
    audio_start: str | None = None  # started, finished
    audio_end: str | None = None  # finished, interrupted
    amp_off: str | None = None  # finished, interrupted
    duration_s: float | None = None  # finished
    lang: str | None = None  # started, finished, interrupted, skipped, failed: the bulletin's language (not vi)
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Fields of a received event that this version does not know (a newer node's optional fields)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", EventType(self.type))  # a typo in an emit() call fails here, loudly

    def to_dict(self) -> dict[str, Any]:
        data = {**_envelope(self.node, self.ts), "type": str(self.type)}
        for f in fields(self):
            if f.name in _EVENT_ENVELOPE or f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is not None or (f.name == "next" and self.type is EventType.ACCEPTED):
                data[f.name] = value
        return {**data, **self.extra}

    @classmethod
    def from_dict(cls, data: Any) -> Event:
        obj = _object("event", data)
        type_ = _typed("event", obj, "type", str)
        if type_ not in EventType.__members__.values():
            raise ValueError(f"event.type: unknown type {type_!r}")
        known = {name: _typed("event", obj, name, wire) for name, wire in _EVENT_FIELDS.items()}
        extra = {k: v for k, v in obj.items() if k not in _EVENT_FIELDS and k not in ("v", "type")}
        return cls(type=EventType(type_), **{k: v for k, v in known.items() if v is not None}, extra=extra)


_EVENT_ENVELOPE = ("type", "node", "ts")
_EVENT_FIELDS: dict[str, type | tuple[type, ...]] = {
    f.name: (int if f.name in ("seq", "rev") else (int, float) if f.name == "duration_s" else str)
    for f in fields(Event)
    if f.name not in ("type", "extra")
}
"""The wire type of each field ``from_dict`` reads (times are RFC 3339 strings)."""


@dataclass(frozen=True)
class Check:
    """One line of a health report: what is checked, how it stands, and in words what a technician should know."""

    name: str
    status: HealthStatus
    detail: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", HealthStatus(self.status))  # "ok", "warn" or "crit" as given

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": str(self.status), "detail": self.detail}

    @classmethod
    def from_dict(cls, data: Any) -> Check:
        obj = _object("check", data)
        return cls(
            name=_typed("check", obj, "name", str, ""),
            status=_health_status("check", obj),
            detail=_typed("check", obj, "detail", str, ""),
        )


@dataclass(frozen=True)
class Playing:
    """The health report's ``playing``: the bulletin on air."""

    bulletin: str
    rev: int


@dataclass(frozen=True)
class NextPlay:
    """The health report's ``next``: the next scheduled play, ``at`` in RFC 3339."""

    bulletin: str
    at: str


class _Retained(ABC):
    """A message a node keeps retained on the broker, sent as UTF-8 JSON."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]: ...

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)


@dataclass(frozen=True)
class Health(_Retained):
    """A health report (``P/node/<node>/health``, retained); ``status`` is the worst of ``checks``."""

    node: str
    ts: str
    status: HealthStatus
    version: str = ""
    uptime_s: int = 0
    checks: tuple[Check, ...] = ()
    playing: Playing | None = None
    next: NextPlay | None = None
    bulletins: int = 0
    outbox: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", HealthStatus(self.status))

    def to_dict(self) -> dict[str, Any]:
        return {
            **_envelope(self.node, self.ts),
            "status": str(self.status),
            "version": self.version,
            "uptime_s": self.uptime_s,
            "checks": [c.to_dict() for c in self.checks],
            "playing": {"bulletin": self.playing.bulletin, "rev": self.playing.rev} if self.playing else None,
            "next": {"bulletin": self.next.bulletin, "at": self.next.at} if self.next else None,
            "bulletins": self.bulletins,
            "outbox": self.outbox,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Health:
        """A report as the hub reads it: ``ts`` and ``status`` are required, the rest defaults when missing."""
        obj = _object("health", data)
        playing = _typed("health", obj, "playing", Mapping)
        upcoming = _typed("health", obj, "next", Mapping)
        return cls(
            node=_typed("health", obj, "node", str, ""),
            ts=_required("health", obj, "ts", str),
            status=_health_status("health", obj),
            version=_typed("health", obj, "version", str, ""),
            uptime_s=_typed("health", obj, "uptime_s", (int, float), 0),
            checks=tuple(Check.from_dict(c) for c in _typed("health", obj, "checks", list, [])),
            playing=Playing(
                _typed("health.playing", playing, "bulletin", str, ""), _typed("health.playing", playing, "rev", int, 0)
            ) if playing is not None else None,
            next=NextPlay(
                _typed("health.next", upcoming, "bulletin", str, ""), _typed("health.next", upcoming, "at", str, "")
            ) if upcoming is not None else None,
            bulletins=_typed("health", obj, "bulletins", int, 0),
            outbox=_typed("health", obj, "outbox", int, 0),
        )


def _health_status(what: str, obj: Mapping[str, Any]) -> HealthStatus:
    status = obj.get("status")
    if not isinstance(status, str) or status not in HealthStatus.__members__.values():
        raise ValueError(f"{what}.status: expected one of {', '.join(HealthStatus)}, got {status!r:.40}")
    return HealthStatus(status)


@dataclass(frozen=True)
class State(_Retained):
    """A node's retained state (``P/node/<node>/state``). The Last Will is ``State(online=False)``: the broker
    publishes it when the node vanishes, with no time or version, so those are optional."""

    online: bool
    since: str | None = None  # RFC 3339, seconds
    version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"online": self.online}
        if self.since is not None:
            data["since"] = self.since
        if self.version is not None:
            data["version"] = self.version
        return data

    @classmethod
    def from_dict(cls, data: Any) -> State:
        obj = _object("state", data)
        since, version = _typed("state", obj, "since", str), _typed("state", obj, "version", str)
        return cls(_required("state", obj, "online", bool), since, version)
