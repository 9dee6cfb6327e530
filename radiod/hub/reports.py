"""Delivery reports from the recorder's database: "played on N of M nodes", and the monthly play report.

The commune reports each month to the district and province how often the loudspeakers carried which bulletin;
the CSV files are what goes into that report's spreadsheet, the HTML page what gets printed and signed.
Months are the nodes' own local dates (an event's ``ts`` carries the node's offset, which is the commune's).
"""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from radiod.hub import recorder


@dataclass(frozen=True)
class Delivery:
    """What became of one bulletin: each targeted node's state, and which nodes played it."""

    bulletin: str
    targeted: tuple[str, ...]
    states: dict[str, str]

    @property
    def played(self) -> tuple[str, ...]:
        return tuple(n for n in self.targeted if self.states.get(n) == "finished")

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(n for n in self.targeted if self.states.get(n) != "finished")

    def summary(self) -> str:
        """'played on 3 of 4 nodes; not on n04' in words a commune clerk reads."""
        text = f"played on {len(self.played)} of {len(self.targeted)} nodes"
        return f"{text}; not on {', '.join(self.missing)}" if self.missing else text


def targeted_nodes(targets: Iterable[str], known: Iterable[str], zones: dict[str, list[str]],
                   reported: Iterable[str]) -> tuple[str, ...]:
    """The nodes a bulletin's ``targets`` address: every known node for ``all``, a zone's listed members, a named
    node; plus every node that reported on it (a node knows its own zones better than the hub's list)."""
    names: set[str] = set(reported)
    known = set(known)
    for target in targets:
        if target == "all":
            names |= known
        elif target.startswith("zone-"):
            names.update(zones.get(target.removeprefix("zone-"), []))
        elif target.startswith("node-"):
            names.add(target.removeprefix("node-"))
    return tuple(sorted(names))


def delivery(db: sqlite3.Connection, bulletin_id: str, expected: Sequence[str],
             zones: dict[str, list[str]]) -> Delivery | None:
    """The delivery of ``bulletin_id``, None when the recorder never saw it."""
    payload = recorder.bulletin(db, bulletin_id)
    if payload is None:
        return None
    states = recorder.deliveries(db, bulletin_id)
    reported = [n for n, s in states.items() if s != "rejected"]
    known = {*expected, *(row["node"] for row in recorder.nodes(db))}
    targets = payload.get("targets", ["all"])
    return Delivery(bulletin_id, targeted_nodes(targets, known, zones, reported), states)


def _month_range(month: str) -> tuple[str, str]:
    """'2026-11' -> ('2026-11', '2026-12'): RFC 3339 times of that month sort between them as text."""
    year, mon = (int(x) for x in month.split("-"))
    following = f"{year + 1}-01" if mon == 12 else f"{year}-{mon + 1:02d}"
    return f"{year}-{mon:02d}", following


def _bulletin_events(db: sqlite3.Connection, month: str) -> Iterator[sqlite3.Row]:
    """The events of ``month`` ('YYYY-MM') about a bulletin (a command's events are no play)."""
    start, end = _month_range(month)
    return (row for row in recorder.events_between(db, start, end) if row["bulletin"] is not None)


@dataclass
class PlayCount:
    """Plays of one node or one bulletin in a month."""

    key: str
    finished: int = 0
    interrupted: int = 0
    failed: int = 0
    skipped: int = 0
    airtime_s: float = 0.0
    others: set[str] | None = None  # bulletins of a node, nodes of a bulletin

    def add(self, row: sqlite3.Row, other: str) -> None:
        kind = row["type"]
        if kind == "finished":
            self.finished += 1
            self.airtime_s += row["duration_s"] or 0.0
        elif kind in ("interrupted", "failed", "skipped"):
            setattr(self, kind, getattr(self, kind) + 1)
        else:
            return
        self.others = (self.others or set()) | {other}


def monthly(db: sqlite3.Connection, month: str) -> tuple[list[PlayCount], list[PlayCount]]:
    """(per node, per bulletin) play counts of ``month`` ('YYYY-MM'), each sorted by name."""
    per_node: dict[str, PlayCount] = {}
    per_bulletin: dict[str, PlayCount] = {}
    for row in _bulletin_events(db, month):
        per_node.setdefault(row["node"], PlayCount(row["node"])).add(row, row["bulletin"])
        per_bulletin.setdefault(row["bulletin"], PlayCount(row["bulletin"])).add(row, row["node"])
    return _played(per_node), _played(per_bulletin)


def by_language(db: sqlite3.Connection, month: str) -> list[PlayCount]:
    """Play counts of ``month`` per programme language (BCP 47 tag), for the district's question how much the
    loudspeakers carried in Tày, Nùng, Hmong...: the language a node reported in its event (nodes name it when it
    is not ``vi``), else the bulletin's own ``lang``, else ``vi``."""
    langs: dict[str, str] = {}
    per_lang: dict[str, PlayCount] = {}
    for row in _bulletin_events(db, month):
        if row["bulletin"] not in langs:
            langs[row["bulletin"]] = (recorder.bulletin(db, row["bulletin"]) or {}).get("lang") or "vi"
        lang = row["lang"] or langs[row["bulletin"]]
        per_lang.setdefault(lang, PlayCount(lang)).add(row, row["bulletin"])
    return _played(per_lang)


def kind_of(payload: dict[str, Any]) -> str:
    """What a bulletin plays: ``media`` (a recording), ``relay`` (a live stream) or ``text``."""
    return "media" if payload.get("media") else "relay" if payload.get("relay") else "text"


def _played(counts: dict[str, PlayCount]) -> list[PlayCount]:
    """The counts with at least one play outcome (accepted-only bulletins are not in a play report), by name."""
    return sorted((c for c in counts.values() if c.others), key=lambda c: c.key)


NODE_COLUMNS = ("node", "plays_finished", "interrupted", "failed", "skipped", "airtime_min", "bulletins")
BULLETIN_COLUMNS = ("bulletin", "title", "priority", "status", "plays_finished", "interrupted", "failed", "skipped",
                    "airtime_min", "nodes", "kind", "lang")
LANGUAGE_COLUMNS = ("lang", "plays_finished", "interrupted", "failed", "skipped", "airtime_min", "bulletins")


def node_rows(counts: list[PlayCount]) -> list[tuple]:
    """Rows of NODE_COLUMNS, or of LANGUAGE_COLUMNS for :func:`by_language`'s counts (the same shape)."""
    return [(c.key, c.finished, c.interrupted, c.failed, c.skipped, round(c.airtime_s / 60, 1),
             len(c.others or ())) for c in counts]


def bulletin_rows(db: sqlite3.Connection, counts: list[PlayCount]) -> list[tuple]:
    rows = []
    for c in counts:
        payload = recorder.bulletin(db, c.key) or {}
        rows.append((c.key, payload.get("title", ""), payload.get("priority", ""), payload.get("status", ""),
                     c.finished, c.interrupted, c.failed, c.skipped, round(c.airtime_s / 60, 1),
                     len(c.others or ()), kind_of(payload), payload.get("lang", "vi")))
    return rows


def to_csv(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """CSV with a UTF-8 BOM, so a spreadsheet on the district's PC shows Vietnamese titles right."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue()
