"""The payloads a hub sends (protocol v1): bulletins, their schedules, tombstones and commands, built in one place.

The operator tools (``radiod post``, ``radiod cancel``), the benches and the tests build what they sign here, so
the wire fields are spelled once for the sending side, as :mod:`radiod.protocol.messages` spells them once for
the receiving side. These are plain JSON objects, ready for :func:`radiod.protocol.jws.sign`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from radiod.protocol.enums import Action, Priority, Status
from radiod.protocol.outgoing import PROTOCOL_VERSION

TOMBSTONE_MIN_LIFE_S = 3600
"""A tombstone lives at least this long, even for a bulletin about to expire, so every node gets to see it."""


def _envelope(kind: str, id: str, iat: int, exp: int, targets: Sequence[str]) -> dict[str, Any]:  # noqa: A002
    """What every message from the hub carries: version, kind, id, lifetime and targets."""
    return {"v": PROTOCOL_VERSION, "kind": kind, "id": id, "iat": iat, "exp": exp, "targets": list(targets)}


def schedule(
    *,
    at: Sequence[str] = (),
    times: Sequence[str] = (),
    weekdays: Sequence[int] = (),
    date_from: str | None = None,
    date_until: str | None = None,
    repeat: int = 1,
    gap_s: float | None = None,
) -> dict[str, Any]:
    """``{"at": [...]}`` for start times (RFC 3339), ``{"daily": ...}`` for daily ``times`` ("HH:MM"), else
    ``{"now": true}``; ``repeat`` and ``gap_s`` only when they differ from the protocol's defaults."""
    if at and times:
        raise ValueError("a schedule has start times or daily times, not both")
    out: dict[str, Any]
    if at:
        out = {"at": list(at)}
    elif times:
        daily: dict[str, Any] = {"times": list(times)}
        if weekdays:
            daily["weekdays"] = list(weekdays)
        if date_from:
            daily["from"] = date_from
        if date_until:
            daily["until"] = date_until
        out = {"daily": daily}
    else:
        out = {"now": True}
    if repeat != 1:
        out["repeat"] = repeat
    if gap_s is not None:
        out["gap_s"] = gap_s
    return out


def bulletin(
    *,
    id: str,  # noqa: A002  (the protocol's name)
    iat: int,
    exp: int,
    text: str,
    targets: Sequence[str] = ("all",),
    schedule: Mapping[str, Any] | None = None,
    rev: int = 1,
    priority: Priority | str = Priority.NORMAL,
    status: Status | str = Status.ACTUAL,
    title: str = "",
    lang: str = "vi",
    voice: str | None = None,
    chime: bool = True,
    volume: float | None = None,
    author: str | None = None,
    media: Mapping[str, Any] | None = None,
    relay: Mapping[str, Any] | None = None,
    bed: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A bulletin; ``schedule`` defaults to ``now``, ``title`` to the text's first line. ``media`` (``url``,
    ``sha256``, ``bytes``, ``duration_s``, ``format``) or ``relay`` (``url`` and ``duration_s`` or ``until``) add
    a recording or a live stream after the text, which may then be empty. ``bed`` (as ``media``) is music under
    the text, ducked while it speaks."""
    payload = {
        **_envelope("bulletin", id, iat, exp, targets),
        "rev": rev,
        "priority": str(Priority(priority)),
        "status": str(Status(status)),
        "title": title or title_of(text),
        "lang": lang,
        "schedule": dict(schedule) if schedule is not None else {"now": True},
        "chime": chime,
    }
    if text or not (media or relay):
        payload["text"] = text
    if media:
        payload["media"] = dict(media)
    if relay:
        payload["relay"] = dict(relay)
    if bed:
        payload["bed"] = dict(bed)
    if voice:
        payload["voice"] = voice
    if volume is not None:
        payload["volume"] = volume
    if author:
        payload["author"] = author
    return payload


def title_of(text: str) -> str:
    """A bulletin's default title: its first line, cut to the protocol's 200 characters."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first[:200]


def tombstone_for(bulletin: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The tombstone that cancels ``bulletin``: same id and targets, the next rev, and an ``exp`` no earlier than
    the bulletin's, so nodes keep refusing the cancelled rev for as long as it could have been replayed."""
    exp = int(max(bulletin.get("exp", now), now + TOMBSTONE_MIN_LIFE_S))
    return {
        **_envelope("bulletin", bulletin["id"], int(now), exp, bulletin.get("targets", ["all"])),
        "rev": int(bulletin.get("rev", 0)) + 1,
        "cancelled": True,
    }


def command(
    *,
    id: str,  # noqa: A002  (the protocol's name)
    iat: int,
    exp: int,
    action: Action | str,
    targets: Sequence[str] = ("all",),
    level: float | None = None,
) -> dict[str, Any]:
    """A command; ``level`` is the ``volume`` action's ``args.level``."""
    payload = {**_envelope("command", id, iat, exp, targets), "action": str(Action(action))}
    if level is not None:
        payload["args"] = {"level": level}
    return payload
