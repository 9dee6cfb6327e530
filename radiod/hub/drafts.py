"""Drafts: a bulletin written in the console but not posted, kept until someone posts it or drops it.

Why: an operator may not post an emergency, but is often the one who hears of it first. So anyone may save a
draft of any priority; an approver reads it, and approves it, which posts it (under the drafter's name and the
approver's), or an operator posts a normal one later. The draft is the post form's values, as typed.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS drafts (
    id INTEGER PRIMARY KEY,
    author TEXT NOT NULL,
    created REAL NOT NULL,
    form TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'open'
);
"""


@dataclass(frozen=True)
class Draft:
    id: int
    author: str
    created: float
    form: dict[str, Any]
    state: str  # open, posted, dropped


def init(db: sqlite3.Connection) -> None:
    db.executescript(SCHEMA)


def save(db: sqlite3.Connection, author: str, form: dict[str, Any]) -> int:
    with db:
        cur = db.execute("INSERT INTO drafts (author, created, form) VALUES (?,?,?)",
                         (author, time.time(), json.dumps(form, ensure_ascii=False)))
    return int(cur.lastrowid or 0)


def get(db: sqlite3.Connection, draft_id: int) -> Draft | None:
    row = db.execute("SELECT * FROM drafts WHERE id=?", (draft_id,)).fetchone()
    return _draft(row) if row else None


def open_drafts(db: sqlite3.Connection) -> list[Draft]:
    return [_draft(r) for r in db.execute("SELECT * FROM drafts WHERE state='open' ORDER BY created DESC")]


def close(db: sqlite3.Connection, draft_id: int, state: str) -> None:
    """Mark a draft posted or dropped: it leaves the list, and stays in the database for the audit."""
    with db:
        db.execute("UPDATE drafts SET state=? WHERE id=?", (state, draft_id))


def _draft(row: sqlite3.Row) -> Draft:
    return Draft(row["id"], row["author"], row["created"], json.loads(row["form"]), row["state"])
