"""Operator tools that run on the commune hub (or an operator's PC): post, cancel, list, watch.

They speak protocol v1 like any other hub tool would: a signed bulletin retained on
``P/bulletin/<target>/<id>``, a tombstone with a higher rev in its place to cancel. Nothing here runs on a node;
the signing key never needs to leave the hub.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from radiod.clock import rfc3339
from radiod.config import Config
from radiod.errors import RadiodError, Rejected
from radiod.hub.session import collect_retained, publish_once
from radiod.node.mqtt_link import Incoming
from radiod.protocol import builders
from radiod.protocol.enums import HealthStatus, Priority, Status
from radiod.protocol.jws import TrustStore, decode_payload, sign
from radiod.protocol.outgoing import Event, Health, State
from radiod.protocol.topics import bulletin_topic, bulletins_filter

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([mhd])")
_UNITS = {"m": 60, "h": 3600, "d": 86400}


class OperatorError(RadiodError):
    """An operator's request cannot be carried out as given (a bad time, no signing key, unknown id)."""


def parse_when(text: str, tz: ZoneInfo, now: float) -> float:
    """A start time: RFC 3339 with offset, ``YYYY-MM-DD HH:MM`` or ``HH:MM`` (the next such time) in ``tz``."""
    text = text.strip()
    try:
        if re.fullmatch(r"\d{1,2}:\d{2}", text):
            hour, minute = (int(x) for x in text.split(":"))
            local_now = dt.datetime.fromtimestamp(now, tz)
            candidate = local_now.replace(hour=hour, minute=minute, second=0, microsecond=0)
            if candidate.timestamp() <= now:
                candidate += dt.timedelta(days=1)
            return candidate.timestamp()
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:
        raise OperatorError(f"cannot read the time {text!r}: use HH:MM, 'YYYY-MM-DD HH:MM' or RFC 3339") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=tz)
    return stamp.timestamp()


def parse_expiry(text: str, tz: ZoneInfo, now: float) -> float:
    """``--expires``: a duration from now (90m, 2h, 7d) or a time as :func:`parse_when` reads it."""
    match = _DURATION.fullmatch(text.strip())
    if match:
        return now + float(match.group(1)) * _UNITS[match.group(2)]
    return parse_when(text, tz, now)


@dataclass(frozen=True)
class PostRequest:
    text: str
    targets: tuple[str, ...] = ("all",)
    at: tuple[str, ...] = ()
    daily: tuple[str, ...] = ()
    weekdays: tuple[int, ...] = ()
    date_from: str | None = None
    date_until: str | None = None
    priority: Priority = Priority.NORMAL
    status: Status = Status.ACTUAL
    voice: str | None = None
    repeat: int = 1
    gap_s: float | None = None
    expires: str | None = None
    title: str | None = None
    chime: bool = True
    volume: float | None = None
    bulletin_id: str | None = None
    rev: int = 1
    author: str | None = None


class Operator:
    """The hub's side of the protocol, configured from the same YAML schema as a node."""

    def __init__(self, config: Config, *, key: Path | None = None, kid: str | None = None) -> None:
        self.config = config
        self.tz = ZoneInfo(config.node.timezone)
        self.prefix = config.mqtt.prefix
        self.kid = kid or config.hub.kid
        key_path = key or (Path(config.hub.signing_key) if config.hub.signing_key else None)
        self.key = key_path

    # ----- building and signing -----
    def bulletin(self, req: PostRequest, now: float | None = None) -> dict[str, Any]:
        """The bulletin payload for ``req``; times are resolved in the hub's time zone."""
        now = time.time() if now is None else now
        at: list[str] = []
        if req.at:
            starts = sorted(parse_when(t, self.tz, now) for t in req.at)
            at = [rfc3339(t, self.tz, ms=False) for t in starts]
            default_exp = starts[-1] + 3600
        elif req.daily and req.date_until:
            until = dt.datetime.fromisoformat(req.date_until).replace(tzinfo=self.tz) + dt.timedelta(days=1)
            default_exp = until.timestamp()
        else:
            default_exp = now + self.config.hub.default_expiry_h * 3600
        exp = parse_expiry(req.expires, self.tz, now) if req.expires else default_exp
        if exp <= now:
            raise OperatorError(f"--expires {req.expires} is in the past")
        return builders.bulletin(
            id=req.bulletin_id or new_id(now, self.tz),
            rev=req.rev,
            iat=int(now),
            exp=int(exp),
            priority=req.priority,
            status=req.status,
            targets=req.targets,
            title=req.title or "",
            text=req.text,
            schedule=builders.schedule(
                at=at, times=req.daily, weekdays=req.weekdays, date_from=req.date_from, date_until=req.date_until,
                repeat=req.repeat, gap_s=req.gap_s,
            ),
            voice=req.voice,
            chime=req.chime,
            volume=req.volume,
            author=req.author,
        )

    def sign(self, payload: dict[str, Any]) -> str:
        if self.key is None:
            raise OperatorError("no signing key: pass --key FILE or set hub.signing_key in the config")
        return sign(payload, self.key, self.kid)

    # ----- talking to the broker -----
    def post(self, req: PostRequest) -> dict[str, Any]:
        """Sign and publish a bulletin, retained, on the topic of each of its targets; returns the payload."""
        payload = self.bulletin(req)
        token = self.sign(payload)
        messages = [(bulletin_topic(self.prefix, t, payload["id"]), token, True) for t in payload["targets"]]
        publish_once(self.config.mqtt, "post", messages, timeout=10)
        return payload

    def cancel(self, bulletin_id: str) -> dict[str, Any]:
        """Publish a signed tombstone (same id, rev + 1) in place of every retained copy of the bulletin."""
        current = [b for b in self.retained_bulletins() if b["payload"].get("id") == bulletin_id]
        if not current:
            raise OperatorError(f"no retained bulletin with id {bulletin_id!r} on {self.prefix}")
        latest = max((b["payload"] for b in current), key=lambda p: p.get("rev", 0))
        now = time.time()
        tombstone = builders.tombstone_for(latest, now)
        token = self.sign(tombstone)
        topics = sorted({b["topic"] for b in current})
        publish_once(self.config.mqtt, "cancel", [(t, token, True) for t in topics], timeout=10)
        return tombstone

    def retained_bulletins(self) -> list[dict[str, Any]]:
        """Every retained bulletin on the broker: topic, decoded payload, and whether its signature checks out."""
        trust = self._trust()
        out = []
        for msg in collect_retained(self.config.mqtt, "bulletins", bulletins_filter(self.prefix)):
            if not msg.payload:
                continue
            out.append({"topic": msg.topic, **_decode(msg, trust)})
        return out

    def _trust(self) -> TrustStore | None:
        keys = self.config.security.trusted_keys
        return TrustStore({k: Path(v) for k, v in keys.items()}, self.config.security.revoked_keys) if keys else None


def _decode(msg: Incoming, trust: TrustStore | None) -> dict[str, Any]:
    """Payload of a retained bulletin for display; 'verified' says whether a trusted key signed it."""
    raw = msg.payload
    if trust is not None:
        try:
            return {"payload": trust.verify(raw), "verified": True}
        except Rejected:
            pass
    parts = raw.split(b".")
    try:
        body = _b64(parts[1]) if len(parts) == 3 else raw
        return {"payload": decode_payload(body), "verified": False}
    except (ValueError, Rejected):
        return {"payload": {}, "verified": False}


def _b64(segment: bytes) -> bytes:
    return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))


def new_id(now: float, tz: ZoneInfo) -> str:
    """A bulletin id that sorts by time and is unique within the commune: b-20261123-0630-3f9a."""
    stamp = dt.datetime.fromtimestamp(now, tz).strftime("%Y%m%d-%H%M%S")
    return f"b-{stamp}-{secrets.token_hex(2)}"


def describe_schedule(schedule: dict[str, Any] | None) -> str:
    if not schedule:
        return "-"
    if schedule.get("now"):
        text = "now"
    elif "at" in schedule:
        text = "at " + ", ".join(str(t) for t in schedule["at"])
    elif "daily" in schedule:
        daily = schedule["daily"]
        text = "daily " + ",".join(daily.get("times", []))
        if daily.get("weekdays"):
            text += " on " + ",".join(str(d) for d in daily["weekdays"])
    else:
        text = "?"
    if schedule.get("repeat", 1) != 1:
        text += f" x{schedule['repeat']}"
    return text


def describe_event(topic: str, payload: bytes, tz: ZoneInfo) -> Iterator[str]:
    """One readable line per node message, for `radiod watch`; a message that is not the protocol's is shown raw."""
    node, kind = topic.rsplit("/", 2)[-2:] if topic.count("/") >= 2 else ("?", topic)
    try:
        data = json.loads(payload) if payload else {}
        if kind == "state":
            state = State.from_dict(data)
            yield f"{node:<8} state   {'online' if state.online else 'OFFLINE'} since {state.since or '?'}"
        elif kind == "health":
            health = Health.from_dict(data)
            failing = [f"{c.name}={c.status} ({c.detail})" for c in health.checks if c.status != HealthStatus.OK]
            yield f"{node:<8} health  {health.status} {'; '.join(failing)}".rstrip()
        elif kind == "event":
            event = Event.from_dict(data)
            skip = {"v", "node", "seq", "ts", "type", "bulletin", "rev"}
            details = " ".join(f"{k}={v}" for k, v in event.to_dict().items() if k not in skip)
            where = f"{event.bulletin} r{event.rev if event.rev is not None else ''}" if event.bulletin else ""
            seq = event.seq if event.seq is not None else "?"
            yield f"{node:<8} #{seq:<5} {event.ts} {event.type:<11} {where} {details}"
    except ValueError as exc:  # not JSON, or not what the protocol says a node sends
        yield f"{topic}: ({exc}) {payload[:80]!r}"


def targets_from(zones: Sequence[str], nodes: Sequence[str]) -> tuple[str, ...]:
    targets = tuple(f"zone-{z}" for z in zones) + tuple(f"node-{n}" for n in nodes)
    return targets or ("all",)
