"""Console sessions and CSRF tokens, kept server-side in the hub's database.

The browser holds only a random session token in an HttpOnly, SameSite=Strict cookie (Secure over HTTPS), so
a script in the page cannot read it and another site cannot send it. Each session has its own CSRF token,
written into every form and checked on every POST: SameSite already stops most cross-site posts, the token
stops the rest (an old browser, a sibling page on the same site). Before login there is no session yet, so the
login form uses a double-submit token: a random value in a cookie that must come back in the form.
"""

from __future__ import annotations

import hmac
import secrets
import sqlite3
import time

from radiod.hub.accounts import Role, User

SESSION_COOKIE = "radiod_session"
LOGIN_CSRF_COOKIE = "radiod_login_csrf"

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    token TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    csrf TEXT NOT NULL,
    expires REAL NOT NULL
);
"""


def init(db: sqlite3.Connection) -> None:
    db.executescript(SCHEMA)


def open_session(db: sqlite3.Connection, user: str, lifetime_s: float) -> str:
    """A new session for ``user``; returns its token (the cookie's value)."""
    token = secrets.token_urlsafe(32)
    with db:
        db.execute("DELETE FROM sessions WHERE expires < ?", (time.time(),))
        db.execute("INSERT INTO sessions (token, user, csrf, expires) VALUES (?,?,?,?)",
                   (token, user, secrets.token_urlsafe(32), time.time() + lifetime_s))
    return token


def session_user(db: sqlite3.Connection, token: str | None) -> tuple[User, str] | None:
    """(user, csrf token) of a live session, None when the token is unknown, expired or its user is gone."""
    if not token:
        return None
    row = db.execute(
        "SELECT s.csrf, u.name, u.role FROM sessions s JOIN users u ON u.name = s.user"
        " WHERE s.token=? AND s.expires > ?", (token, time.time()),
    ).fetchone()
    return (User(row["name"], Role(row["role"])), row["csrf"]) if row else None


def close_session(db: sqlite3.Connection, token: str | None) -> None:
    if token:
        with db:
            db.execute("DELETE FROM sessions WHERE token=?", (token,))


def same(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison of two tokens; a missing one never matches."""
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))
