"""What a bulletin about to be posted may do otherwise than the operator expects, found once for both front ends.

``radiod post`` prints these warnings in English (:meth:`radiod.hub.operator.Operator.warnings`), the web console
in Vietnamese (:func:`radiod.hub.web.views.warning_text`); both get them from :func:`post_warnings`, so the two
desks never disagree on what deserves a second look. A warning never stops a post: what every node would reject
is refused earlier, by the nodes' own parser (:func:`radiod.hub.operator.check`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import islice
from zoneinfo import ZoneInfo

from radiod.config import QuietHours
from radiod.hub.nodes import NodeList
from radiod.protocol.enums import Priority
from radiod.protocol.messages import Bulletin
from radiod.protocol.occurrences import occurrences

LONG_EXPIRY_DAYS = 30
"""A bulletin valid for longer than this is worth a second look: it keeps playing long after people forget it."""
QUIET_PLAYS_CHECKED = 1000
"""How many of the next plays are checked against the quiet hours (a year of a three-times-daily notice)."""


class Code(StrEnum):
    """Which warning: each front end words it in its own language."""

    UNKNOWN_VOICE = "unknown_voice"
    UNKNOWN_ZONE = "unknown_zone"
    UNKNOWN_NODE = "unknown_node"
    QUIET_HOURS = "quiet_hours"
    NO_END_DATE = "no_end_date"
    LONG_EXPIRY = "long_expiry"


@dataclass(frozen=True)
class PostWarning:
    """One warning and the values its wording needs (the others keep their defaults)."""

    code: Code
    name: str = ""
    """unknown_voice, unknown_zone, unknown_node: the voice, zone or node the operator named."""
    known: tuple[str, ...] = ()
    """unknown_voice: the voices the hub has; unknown_zone: the zones it knows."""
    plays: tuple[dt.datetime, ...] = ()
    """quiet_hours: the plays that fall in them, in order, local time."""
    windows: tuple[QuietHours, ...] = ()
    """quiet_hours: the windows."""
    until: dt.datetime | None = None
    """no_end_date, long_expiry: when the bulletin expires, local time."""


def next_plays(bulletin: Bulletin, tz: ZoneInfo, now: float, limit: int | None = None) -> list[dt.datetime]:
    """The bulletin's plays from ``now`` until it expires, in local time; ``now`` itself for a ``now`` bulletin."""
    assert bulletin.schedule is not None  # a bulletin being posted, not a tombstone
    start = dt.datetime.fromtimestamp(now, tz)
    if bulletin.schedule.now:
        return [start]
    return list(islice(occurrences(bulletin.schedule, tz, start, dt.datetime.fromtimestamp(bulletin.exp, tz)), limit))


def post_warnings(bulletin: Bulletin, nodes: NodeList, *, voices: Sequence[str], quiet: Sequence[QuietHours],
                  tz: ZoneInfo, now: float) -> list[PostWarning]:
    """Every warning for ``bulletin`` (checked, not yet posted): targets ``nodes`` does not know, a voice not
    among ``voices``, normal plays in the ``quiet`` hours, a daily schedule without end, a long validity."""
    out: list[PostWarning] = []
    for target in bulletin.targets:
        if target.startswith("zone-") and target.removeprefix("zone-") not in nodes.zones:
            out.append(PostWarning(Code.UNKNOWN_ZONE, target.removeprefix("zone-"), tuple(sorted(nodes.zones))))
        elif target.startswith("node-") and target.removeprefix("node-") not in nodes.nodes:
            out.append(PostWarning(Code.UNKNOWN_NODE, target.removeprefix("node-")))
    if bulletin.voice and bulletin.voice not in voices:
        out.append(PostWarning(Code.UNKNOWN_VOICE, bulletin.voice, tuple(voices)))
    if bulletin.priority == Priority.NORMAL and quiet:
        hushed = tuple(t for t in next_plays(bulletin, tz, now, QUIET_PLAYS_CHECKED)
                       if any(w.covers(t.time()) for w in quiet))
        if hushed:
            out.append(PostWarning(Code.QUIET_HOURS, plays=hushed, windows=tuple(quiet)))
    until = dt.datetime.fromtimestamp(bulletin.exp, tz)
    assert bulletin.schedule is not None
    if bulletin.schedule.daily is not None and bulletin.schedule.daily.until_date is None:
        out.append(PostWarning(Code.NO_END_DATE, until=until))
    if bulletin.exp - now > LONG_EXPIRY_DAYS * 86400:
        out.append(PostWarning(Code.LONG_EXPIRY, until=until))
    return out
