"""The console's accounts, login throttle and audit log, in the hub's SQLite database.

Roles follow who may put what on the commune's loudspeakers: an *operator* drafts and posts normal and priority
bulletins; an *approver* may also post emergencies and stop every node; an *admin* also manages accounts.
Passwords are hashed with argon2id (argon2-cffi's defaults). Every post, cancel, stop and login goes into the
audit log: who, when, what; the bulletin itself carries its author too.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from radiod.config import NAME_PATTERN
from radiod.errors import RadiodError

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    user TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""
USER_PATTERN = NAME_PATTERN
MIN_PASSWORD = 8

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a password of anyone")


class Role(StrEnum):
    OPERATOR = "operator"
    APPROVER = "approver"
    ADMIN = "admin"

    def may(self, needed: Role) -> bool:
        """Roles are ordered: an admin may do what an approver may, who may do what an operator may."""
        order = list(Role)
        return order.index(self) >= order.index(needed)


class AccountError(RadiodError):
    """An account cannot be created as asked (a bad name, a short password, a name taken)."""


@dataclass(frozen=True)
class User:
    name: str
    role: Role


def init(db: sqlite3.Connection) -> None:
    db.executescript(SCHEMA)


def add_user(db: sqlite3.Connection, name: str, password: str, role: Role | str) -> User:
    """Create an account; raises AccountError naming what is wrong."""
    user, hashed = new_account(name, password, role)
    return store_user(db, user, hashed)


def new_account(name: str, password: str, role: Role | str) -> tuple[User, str]:
    """The account checked and its password hashed, without the database: the slow half of :func:`add_user`,
    which the console runs in its thread pool while the connection stays on the event loop."""
    if not re.fullmatch(USER_PATTERN, name):
        raise AccountError(f"user name {name!r}: lower-case letters, digits, - and _, at most 32")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"password: at least {MIN_PASSWORD} characters")
    try:
        role = Role(role)
    except ValueError:
        raise AccountError(f"role {role!r}: one of {', '.join(Role)}") from None
    return User(name, role), _hasher.hash(password)


def store_user(db: sqlite3.Connection, user: User, hashed: str) -> User:
    """Keep an account made by :func:`new_account`; AccountError when the name is taken."""
    init(db)
    with db:
        if db.execute("SELECT 1 FROM users WHERE name=?", (user.name,)).fetchone():
            raise AccountError(f"user {user.name!r} exists already")
        db.execute("INSERT INTO users (name, hash, role, created) VALUES (?,?,?,?)",
                   (user.name, hashed, str(user.role), time.time()))
    return user


def verify(db: sqlite3.Connection, name: str, password: str) -> User | None:
    """The user if ``password`` is theirs; the hash is computed even for an unknown name, so the time taken
    does not tell which names exist."""
    row = db.execute("SELECT hash, role FROM users WHERE name=?", (name,)).fetchone()
    try:
        _hasher.verify(row["hash"] if row else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    return User(name, Role(row["role"])) if row else None


def users(db: sqlite3.Connection) -> list[User]:
    return [User(r["name"], Role(r["role"])) for r in db.execute("SELECT name, role FROM users ORDER BY name")]


def audit(db: sqlite3.Connection, user: str, action: str, **detail: Any) -> None:
    """One line of the audit log; ``detail`` is what was done (bulletin id, title, targets...)."""
    with db:
        db.execute("INSERT INTO audit (ts, user, action, detail) VALUES (?,?,?,?)",
                   (time.time(), user, action, json.dumps(detail, ensure_ascii=False)))


def audit_log(db: sqlite3.Connection, limit: int = 200) -> list[dict[str, Any]]:
    rows = db.execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,))
    return [{"ts": r["ts"], "user": r["user"], "action": r["action"], "detail": json.loads(r["detail"])}
            for r in rows]


class LoginThrottle:
    """At most ``attempts`` failed logins per (name, address) within ``pause_s``, and ``ADDRESS_FACTOR`` times that
    from one address whatever the names; then that pair, or that address, waits.

    The address bound stops one machine guessing through a list of names; it is loose enough for a commune office
    whose staff share one address. Kept in memory: a restart clears it, which costs an attacker a restart of the hub
    per few guesses.
    """

    ADDRESS_FACTOR = 4

    def __init__(self, attempts: int, pause_s: float) -> None:
        self.attempts = attempts
        self.pause_s = pause_s
        self._failures: dict[tuple[str, str], list[float]] = {}
        self._by_address: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def blocked_for(self, name: str, address: str, now: float | None = None) -> float:
        """Seconds until ``name`` may try again from ``address`` (0: now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            pair = self._failures[(name, address)] = self._recent(self._failures.get((name, address), []), now)
            anyone = self._by_address[address] = self._recent(self._by_address.get(address, []), now)
            waits = [self.pause_s - (now - times[-limit]) for times, limit in
                     ((pair, self.attempts), (anyone, self.ADDRESS_FACTOR * self.attempts)) if len(times) >= limit]
            return max(waits, default=0.0)

    def failed(self, name: str, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._failures.setdefault((name, address), []).append(now)
            self._by_address.setdefault(address, []).append(now)

    def succeeded(self, name: str, address: str) -> None:
        """A right password clears its own name's failures, not the address's: one known account must not let
        an address go on guessing the others."""
        with self._lock:
            self._failures.pop((name, address), None)

    def _recent(self, times: list[float], now: float) -> list[float]:
        return [t for t in times if now - t < self.pause_s]
