"""The node's durable store: bulletins, the play log, the event outbox, seen commands and a few settings.

The store, not the scheduler, is the source of truth for what should play: the scheduler is rebuilt from it after
every restart, and every occurrence is recorded here so that it plays exactly once across restarts.

Durability. The file is SQLite in WAL mode with ``synchronous=FULL``. WAL lets ``radiod status`` read while the
daemon writes, and a power cut cannot corrupt the file as long as the SD card honours fsync. ``NORMAL`` would not
corrupt it either, but it may silently roll back the last transactions committed before the cut, and for radiod
a lost commit is not harmless: a "started" mark lost means the loudspeakers play the bulletin a second time after
the reboot; a lost event-counter update means a seq is issued twice, and if the first event already reached the
broker the hub receives two different events under one seq; a lost seen-command means a replay executes. FULL
costs one fsync of the WAL per commit, and the node commits a handful of times per play, so it costs nothing that
matters. If the card lies about fsync and the file is damaged anyway, the quick check made at every open raises
:class:`StoreError` with ``corrupt=True`` so that the daemon can quarantine the file and rebuild it from the
retained bulletins.

Threads. One connection (``check_same_thread=False``) is shared by the main loop, the playout thread and the
outbox publisher; a lock serialises it and every public method is one short transaction, so no caller ever sees
half of another caller's change.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from radiod.errors import StoreError
from radiod.protocol.enums import OccurrenceState

logger = logging.getLogger(__name__)

#: Default cap on the event outbox. At a few hundred bytes an event this is tens of MB: years of normal events,
#: and a hard stop for a runaway (a flood of rejected messages while the broker is unreachable).
OUTBOX_CAP = 100_000

#: Event types that are the record of what was (or was not) broadcast. When the outbox is full, every other event
#: (accepted, rejected, command, ...) is dropped first, because these are the ones the commune has to account for.
PLAY_EVENT_TYPES = frozenset(OccurrenceState)

#: The states of an occurrence, as in the protocol's event types.
OCCURRENCE_STATES = frozenset(OccurrenceState)

#: The latest states after which an occurrence never plays again; only "interrupted" (pre-empted by an emergency,
#: or the daemon died or was shut down mid-play) lets it play again.
DONE_STATES = OCCURRENCE_STATES - {OccurrenceState.INTERRUPTED}

#: How long the play history outlives its bulletin: long enough for `radiod status` and a technician's questions
#: ("did it play last week?"), short enough that the log cannot grow for the life of the SD card.
PLAY_LOG_RETENTION_S = 30 * 86400

#: A seen command is remembered this long after its exp, so a replay that message validation still lets through
#: within its clock-skew leeway is refused as a replay.
COMMAND_KEEP_AFTER_EXP_S = 3600

#: How long a write waits for another process (e.g. `radiod status`) holding the file, before it fails.
BUSY_TIMEOUT_S = 5.0

#: The WAL is checkpointed into the file once it holds this many pages (SQLite's default is 1000, 4 MB): the
#: node writes a few small transactions per play, and a 4 MB WAL took back, and more, the little space a
#: technician freed on a full SD card, which filled it again.
WAL_AUTOCHECKPOINT_PAGES = 64

#: The largest WAL file kept after a checkpoint (about what :data:`WAL_AUTOCHECKPOINT_PAGES` fill), so one burst
#: of writes does not hold SD-card space forever.
WAL_SIZE_LIMIT = 256 * 1024

# Each migration is a tuple of statements; migration N is _MIGRATIONS[N - 1]. Only ever append.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # keep_until >= exp: a record is kept until every rev it replaced has expired too, so that no superseded
        # rev (e.g. one cancelled by a shorter-lived tombstone) can be replayed into the store after a purge.
        """CREATE TABLE bulletins (
            id TEXT PRIMARY KEY, rev INTEGER NOT NULL, exp REAL NOT NULL, keep_until REAL NOT NULL,
            cancelled INTEGER NOT NULL, payload TEXT NOT NULL, stored_at REAL NOT NULL)""",
        # AUTOINCREMENT: row numbers never go back, so they order plays even when the clock jumped (a Pi has no
        # RTC and may run on 1970 until NTP answers).
        """CREATE TABLE play_log (
            row INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, rev INTEGER NOT NULL,
            occurrence TEXT NOT NULL, state TEXT NOT NULL, detail TEXT NOT NULL, at REAL NOT NULL)""",
        "CREATE INDEX play_log_bulletin ON play_log (id, rev, occurrence)",
        """CREATE TABLE occurrences (
            id TEXT NOT NULL, rev INTEGER NOT NULL, occurrence TEXT NOT NULL, state TEXT NOT NULL,
            detail TEXT NOT NULL, at REAL NOT NULL, log_row INTEGER NOT NULL,
            PRIMARY KEY (id, rev, occurrence)) WITHOUT ROWID""",
        "CREATE INDEX occurrences_recent ON occurrences (log_row)",
        "CREATE TABLE outbox (seq INTEGER PRIMARY KEY, droppable INTEGER NOT NULL, json TEXT NOT NULL)",
        "CREATE INDEX outbox_droppable ON outbox (droppable, seq)",
        "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
        "INSERT INTO counters (name, value) VALUES ('event_seq', 0), ('events_dropped', 0)",
        "CREATE TABLE commands (id TEXT PRIMARY KEY, exp REAL NOT NULL) WITHOUT ROWID",
        "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    ),
)

# sqlite3 errors that mean radiod's code is wrong, not the file or the disk: they propagate as they are.
_BUGS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError, sqlite3.NotSupportedError)


@dataclass(frozen=True, slots=True)
class StoredBulletin:
    """A bulletin (or tombstone) as stored: ``payload`` is the verified JSON text, verbatim."""

    id: str
    rev: int
    exp: float
    cancelled: bool
    payload: str
    stored_at: float


@dataclass(frozen=True, slots=True)
class PlayRecord:
    """One state of one occurrence: a play-log row, or the latest state of an occurrence."""

    id: str
    rev: int
    occurrence: str
    state: str
    detail: str
    at: float


class Store:
    """The node's SQLite store; see the module docstring for durability and threading."""

    def __init__(
        self, path: Path, *, outbox_cap: int = OUTBOX_CAP, max_bytes: int | None = None, in_memory: bool = False
    ) -> None:
        """Open (creating directories, file and schema as needed) and quick-check the store at ``path``.

        ``max_bytes`` caps the database file (SQLite's ``max_page_count``) so the store can never take the last
        byte of the SD card that the OS and the logs also need; reaching it behaves like a full disk.
        ``in_memory``: when the file cannot be opened for writing (a full SD card cannot even create the WAL),
        run from a copy in memory of what the file holds (nothing, for a new node) rather than fail, so the
        daemon still starts and plays; :attr:`unwritable` then says why, and :meth:`persist` moves the store
        onto the file once the disk takes writes again.
        Raises :class:`StoreError` naming the file; ``corrupt`` is true when it is damaged or not SQLite at all.
        """
        if outbox_cap < 1:
            raise ValueError(f"outbox_cap must be at least 1, not {outbox_cap}")
        self.path = Path(path)
        self._outbox_cap = outbox_cap
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self.unwritable: str | None = None
        """Why the store runs in memory (nothing of it survives a restart), or None when it is on its file."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create its directory: {exc}", path=str(self.path)) from exc
        try:
            self._conn = self._open_file()
        except StoreError as exc:
            if exc.corrupt or not in_memory:
                raise
            self._conn = self._open_memory(exc)
            self.unwritable = str(exc)
            logger.error("%s cannot be written (%s): the store runs in memory until it can", self.path, exc)

    def persist(self) -> bool:
        """Move a store running in memory onto its file, with everything written meanwhile; True once it is on
        the file (at once when it always was), False while the disk still refuses (:attr:`unwritable` says why).
        """
        with self._lock:
            if self.unwritable is None:
                return True
            try:
                conn = self._open_file()
            except StoreError as exc:
                self.unwritable = str(exc)
                return False
            try:
                with self._guard():
                    self._conn.backup(conn)  # one transaction on the file: all of it or nothing
            except StoreError as exc:
                conn.close()
                self.unwritable = str(exc)
                return False
            self._conn.close()
            self._conn = conn
            self.unwritable = None
        logger.warning("%s: the store is on its file again", self.path)
        return True

    def close(self) -> None:
        """Close the connection; the last close also checkpoints and removes the WAL file. A store still in memory
        tries its file one last time first."""
        if not self.persist():
            logger.error("%s still cannot be written: what the store took since start is lost", self.path)
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- bulletins ---------------------------------------------------------------------------------------------

    def apply_bulletin(
        self,
        *,
        id: str,  # noqa: A002 - the protocol's field name
        rev: int,
        exp: float,
        cancelled: bool,
        payload: str,
        now: float,
    ) -> Literal["stored", "duplicate", "stale"]:
        """Apply a verified bulletin by ``(id, rev)``, so that a redelivered retained message changes nothing.

        ``stored``: a new id, or a higher rev than stored (it replaces it; a tombstone replaces too).
        ``duplicate``: the same rev with the identical payload (a retained redelivery on reconnect).
        ``stale``: a lower rev, or the same rev with a different payload (the hub never reuses a rev, so that is
        a replay or a forgery that happens to be signed; the stored one wins).
        Validation (signature, exp, targets) is the caller's job; the store only orders revisions.
        """
        with self._tx(write=True) as conn:
            row = conn.execute("SELECT rev, payload, keep_until FROM bulletins WHERE id = ?", (id,)).fetchone()
            keep_until = exp
            if row is not None:
                stored_rev, stored_payload, stored_keep_until = row
                if rev == stored_rev and payload == stored_payload:
                    return "duplicate"
                if rev <= stored_rev:
                    return "stale"
                keep_until = max(exp, stored_keep_until)
            conn.execute(
                "INSERT OR REPLACE INTO bulletins (id, rev, exp, keep_until, cancelled, payload, stored_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (id, rev, exp, keep_until, cancelled, payload, now),
            )
            return "stored"

    def get_bulletin(self, id: str) -> StoredBulletin | None:  # noqa: A002 - the protocol's field name
        """The stored record for ``id`` (bulletin or tombstone, expired or not, until it is purged)."""
        with self._tx(write=False) as conn:
            row = conn.execute(
                "SELECT id, rev, exp, cancelled, payload, stored_at FROM bulletins WHERE id = ?", (id,)
            ).fetchone()
        return _bulletin(row) if row is not None else None

    def bulletins(self, *, now: float, include_cancelled: bool = False) -> list[StoredBulletin]:
        """Bulletins not yet expired (``exp > now``), by id; tombstones only when asked for."""
        with self._tx(write=False) as conn:
            rows = conn.execute(
                "SELECT id, rev, exp, cancelled, payload, stored_at FROM bulletins"
                " WHERE exp > ? AND (? OR NOT cancelled) ORDER BY id",
                (now, include_cancelled),
            ).fetchall()
        return [_bulletin(row) for row in rows]

    def count_active(self, now: float) -> int:
        """How many bulletins can still play: not expired, not cancelled (the health report's ``bulletins``)."""
        with self._tx(write=False) as conn:
            return conn.execute(
                "SELECT count(*) FROM bulletins WHERE exp > ? AND NOT cancelled", (now,)
            ).fetchone()[0]

    def purge_expired(self, now: float) -> int:
        """Remove expired bulletins and tombstones; returns how many. Also forgets old commands and play history.

        A tombstone is kept until its exp so that a replayed old rev is refused; a record is kept past its own exp
        when a rev it replaced expires later (see ``keep_until`` in the schema). Occurrences still "started" are
        kept whatever their age: the daemon has to report them (:meth:`unfinished_plays`).
        """
        with self._tx(write=True) as conn:
            removed = conn.execute("DELETE FROM bulletins WHERE keep_until <= ?", (now,)).rowcount
            conn.execute("DELETE FROM commands WHERE exp <= ?", (now - COMMAND_KEEP_AFTER_EXP_S,))
            history_end = now - PLAY_LOG_RETENTION_S
            conn.execute("DELETE FROM play_log WHERE at < ?", (history_end,))
            conn.execute(
                "DELETE FROM occurrences WHERE state != 'started' AND at < ? AND NOT EXISTS"
                " (SELECT 1 FROM bulletins b WHERE b.id = occurrences.id AND b.rev = occurrences.rev)",
                (history_end,),
            )
        return removed

    # --- occurrences and the play log --------------------------------------------------------------------------

    def occurrence_state(self, id: str, rev: int, occurrence: str) -> str | None:  # noqa: A002
        """The latest state of an occurrence, or None if nothing happened to it yet (so it may still play)."""
        with self._tx(write=False) as conn:
            row = conn.execute(
                "SELECT state FROM occurrences WHERE id = ? AND rev = ? AND occurrence = ?", (id, rev, occurrence)
            ).fetchone()
        return row[0] if row is not None else None

    def mark_occurrence(
        self,
        id: str,  # noqa: A002 - the protocol's field name
        rev: int,
        occurrence: str,
        state: str,
        *,
        detail: str = "",
        at: float,
    ) -> None:
        """Record a new state of an occurrence: a play-log row, and the occurrence's latest state.

        ``occurrence`` is the RFC 3339 start instant (or the arrival instant of a "now" bulletin) as a string key.
        """
        _check_state(state)
        with self._tx(write=True) as conn:
            _record(conn, PlayRecord(id, rev, occurrence, state, detail, at))

    def claim_occurrence(self, id: str, rev: int, occurrence: str, *, at: float) -> bool:  # noqa: A002
        """Record the occurrence as "started" unless its latest state is one of :data:`DONE_STATES`; True if this
        call recorded it, and so may play it.

        Checking :meth:`occurrence_state` and then calling :meth:`mark_occurrence` leaves a window in which a
        second trigger of the same occurrence (a scheduler rebuild, a clock jump) also sees it unplayed; this is
        the one atomic step the playout thread takes right before it plays, so an occurrence plays exactly once
        (again only after an interruption that lets it, see :data:`DONE_STATES`).
        """
        with self._tx(write=True) as conn:
            row = conn.execute(
                "SELECT state FROM occurrences WHERE id = ? AND rev = ? AND occurrence = ?", (id, rev, occurrence)
            ).fetchone()
            if row is not None and row[0] in DONE_STATES:
                return False
            _record(conn, PlayRecord(id, rev, occurrence, "started", "", at))
            return True

    def last_plays(self, n: int = 10) -> list[PlayRecord]:
        """The latest state of the ``n`` most recently changed occurrences, newest first (for `radiod status`)."""
        with self._tx(write=False) as conn:
            rows = conn.execute(
                "SELECT id, rev, occurrence, state, detail, at FROM occurrences ORDER BY log_row DESC LIMIT ?",
                (n,),
            ).fetchall()
        return [PlayRecord(*row) for row in rows]

    def unfinished_plays(self) -> list[PlayRecord]:
        """Occurrences whose latest state is "started": the daemon was killed mid-play and must report them."""
        with self._tx(write=False) as conn:
            rows = conn.execute(
                "SELECT id, rev, occurrence, state, detail, at FROM occurrences WHERE state = 'started'"
                " ORDER BY log_row"
            ).fetchall()
        return [PlayRecord(*row) for row in rows]

    def play_history(self, id: str) -> list[PlayRecord]:  # noqa: A002 - the protocol's field name
        """Every recorded state of every occurrence of bulletin ``id``, oldest first (kept for 30 days)."""
        with self._tx(write=False) as conn:
            rows = conn.execute(
                "SELECT id, rev, occurrence, state, detail, at FROM play_log WHERE id = ? ORDER BY row", (id,)
            ).fetchall()
        return [PlayRecord(*row) for row in rows]

    # --- the event outbox --------------------------------------------------------------------------------------

    def add_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """Give ``event`` the next seq and keep it in the outbox until the broker acknowledges it.

        The seq counter is persisted in the same transaction as the event, so it survives restarts and is never
        reused, even after acks or drops; a failed add (bad JSON, full disk) consumes no seq. Returns a copy of
        the event with ``seq`` set. If the outbox is full, the oldest events are dropped first (info-only ones
        before play reports), with a warning; seqs are never renumbered, so the hub sees the gap.
        """
        with self._tx(write=True) as conn:
            seq = conn.execute("SELECT value FROM counters WHERE name = 'event_seq'").fetchone()[0] + 1
            stored = {**event, "seq": seq}
            text = json.dumps(stored, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            dropped = self._make_room(conn)
            conn.execute(
                "INSERT INTO outbox (seq, droppable, json) VALUES (?, ?, ?)",
                (seq, event.get("type") not in PLAY_EVENT_TYPES, text),
            )
            conn.execute("UPDATE counters SET value = ? WHERE name = 'event_seq'", (seq,))
        if dropped:
            logger.warning(
                "%s: event outbox full (%d events): dropped the %d oldest (seq %s); the hub will see the gap",
                self.path, self._outbox_cap, len(dropped), _ranges(dropped),
            )
        return stored

    def pending_events(self, limit: int = 100) -> list[tuple[int, str]]:
        """Events not yet acknowledged by the broker, as ``(seq, json)``, oldest first."""
        with self._tx(write=False) as conn:
            return conn.execute("SELECT seq, json FROM outbox ORDER BY seq LIMIT ?", (limit,)).fetchall()

    def ack_event(self, seq: int) -> None:
        """The broker acknowledged ``seq``: remove it from the outbox (an unknown seq is already gone: no-op)."""
        with self._tx(write=True) as conn:
            conn.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

    def outbox_size(self) -> int:
        """How many events wait for the broker (the health report's ``outbox``)."""
        with self._tx(write=False) as conn:
            return conn.execute("SELECT count(*) FROM outbox").fetchone()[0]

    def events_dropped(self) -> int:
        """How many events the outbox cap has dropped over the node's life (a health check can warn on it)."""
        with self._tx(write=False) as conn:
            return conn.execute("SELECT value FROM counters WHERE name = 'events_dropped'").fetchone()[0]

    # --- commands and settings ---------------------------------------------------------------------------------

    def remember_command(self, id: str, exp: float) -> bool:  # noqa: A002 - the protocol's field name
        """True the first time a command id is seen, False for a replay; forgotten by :meth:`purge_expired`."""
        with self._tx(write=True) as conn:
            return conn.execute("INSERT OR IGNORE INTO commands (id, exp) VALUES (?, ?)", (id, exp)).rowcount == 1

    def get_setting(self, key: str, default: str | None = None) -> str | None:
        """A small persistent setting (e.g. the volume set by a command), or ``default``."""
        with self._tx(write=False) as conn:
            row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return row[0] if row is not None else default

    def put_setting(self, key: str, value: str) -> None:
        """Set a persistent setting, replacing any previous value."""
        with self._tx(write=True) as conn:
            conn.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # --- health ------------------------------------------------------------------------------------------------

    def integrity_check(self) -> bool:
        """SQLite's quick check: False (with the findings logged) when the file is damaged.

        Other failures (e.g. an I/O error) raise :class:`StoreError`: they say nothing about the file's contents.
        """
        try:
            with self._lock, self._guard():
                findings = [row[0] for row in self._conn.execute("PRAGMA quick_check").fetchall()]
        except StoreError as exc:
            if not exc.corrupt:
                raise
            logger.error("%s", exc)
            return False
        if findings == ["ok"]:
            return True
        logger.error("%s: quick_check found damage: %s", self.path, "; ".join(findings[:10]))
        return False

    # --- internals ---------------------------------------------------------------------------------------------

    def _open_file(self) -> sqlite3.Connection:
        """A configured, checked and migrated connection to the file."""
        with self._guard():
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        try:
            with self._guard():
                self._configure(conn, self._max_bytes)
            self._check_on_open(conn)
            self._migrate(conn)
        except StoreError:
            conn.close()
            raise
        return conn

    def _open_memory(self, refused: StoreError) -> sqlite3.Connection:
        """A store in memory holding what the file holds. A file that exists but cannot be read at all keeps
        ``refused`` raised: starting empty over it would lose it when the memory store is written back."""
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        try:
            if self.path.exists() and self.path.stat().st_size > 0:
                try:
                    # immutable: no -shm to create on the full disk; the daemon is the file's only writer
                    source = sqlite3.connect(f"{self.path.resolve().as_uri()}?immutable=1", uri=True)
                    try:
                        source.backup(conn)
                    finally:
                        source.close()
                except sqlite3.DatabaseError as exc:
                    raise refused from exc
            self._check_on_open(conn)
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _configure(self, conn: sqlite3.Connection, max_bytes: int | None) -> None:
        """Per-connection settings; see the module docstring for why WAL and FULL."""
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(
                f"{self.path}: SQLite refused WAL mode (got {mode!r}); put the store on a local file system",
                path=str(self.path),
            )
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT:d}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES:d}")
        if max_bytes is not None:
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {max(1, max_bytes // page_size):d}")

    def _check_on_open(self, conn: sqlite3.Connection) -> None:
        """Refuse a damaged file at once, so the daemon quarantines it at start rather than fail mid-play."""
        with self._guard():
            findings = [row[0] for row in conn.execute("PRAGMA quick_check").fetchall()]
        if findings != ["ok"]:
            raise StoreError(
                f"{self.path}: the store is damaged ({'; '.join(findings[:3])}); quarantine it and rebuild",
                path=str(self.path),
                corrupt=True,
            )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring the schema to the latest version, all migrations in one transaction (all or nothing).

        One transaction also makes two processes opening the file at once (the daemon, `radiod status`) safe:
        the second waits for the first and then finds nothing to do.
        """
        with self._guard(), _transaction(conn, write=True):
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
            )
            current = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
            if current > len(_MIGRATIONS):
                raise StoreError(
                    f"{self.path}: schema version {current} was written by a newer radiod (this one knows up to"
                    f" {len(_MIGRATIONS)}); upgrade radiod rather than delete the file",
                    path=str(self.path),
                )
            for number in range(current + 1, len(_MIGRATIONS) + 1):
                for statement in _MIGRATIONS[number - 1]:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (number, time.time()))
                logger.info("%s: schema migrated to version %d", self.path, number)

    def _make_room(self, conn: sqlite3.Connection) -> list[int]:
        """Drop the oldest events so one more fits under the cap: info-only ones first. Returns the dropped seqs."""
        excess = conn.execute("SELECT count(*) FROM outbox").fetchone()[0] - self._outbox_cap + 1
        dropped: list[int] = []
        for droppable in (True, False):
            if excess <= len(dropped):
                break
            rows = conn.execute(
                "SELECT seq FROM outbox WHERE droppable = ? ORDER BY seq LIMIT ?", (droppable, excess - len(dropped))
            ).fetchall()
            dropped.extend(seq for (seq,) in rows)
        if dropped:
            conn.executemany("DELETE FROM outbox WHERE seq = ?", [(seq,) for seq in dropped])
            conn.execute("UPDATE counters SET value = value + ? WHERE name = 'events_dropped'", (len(dropped),))
        return sorted(dropped)

    @contextmanager
    def _tx(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        """One short transaction under the lock; rolled back on any error, so the store stays usable.

        A write takes SQLite's write lock at BEGIN (IMMEDIATE), so it never fails half-way on a lock upgrade.
        """
        with self._lock, self._guard(), _transaction(self._conn, write=write) as conn:
            yield conn

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn SQLite's failures of the file or the disk into a :class:`StoreError` that names the file."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, _BUGS):
                raise
            raise self._error(exc) from exc

    def _error(self, exc: sqlite3.DatabaseError) -> StoreError:
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if code is not None else None
        if primary == sqlite3.SQLITE_FULL:
            return StoreError(
                f"{self.path}: the disk (or the store's size limit) is full: {exc}; nothing was written —"
                " free space on the SD card (old logs, the speech cache)",
                path=str(self.path),
            )
        if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            return StoreError(
                f"{self.path}: the store is damaged or not an SQLite database ({exc}); quarantine it and rebuild",
                path=str(self.path),
                corrupt=True,
            )
        name = getattr(exc, "sqlite_errorname", type(exc).__name__)
        return StoreError(f"{self.path}: SQLite failed ({name}): {exc}", path=str(self.path))


@contextmanager
def _transaction(conn: sqlite3.Connection, *, write: bool) -> Iterator[sqlite3.Connection]:
    """One transaction on ``conn``, rolled back on any error (the caller holds the lock, if any)."""
    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _bulletin(row: tuple[Any, ...]) -> StoredBulletin:
    id_, rev, exp, cancelled, payload, stored_at = row
    return StoredBulletin(id_, rev, exp, bool(cancelled), payload, stored_at)


def _check_state(state: str) -> None:
    if state not in OCCURRENCE_STATES:
        raise ValueError(f"unknown occurrence state {state!r}; one of {sorted(OCCURRENCE_STATES)}")


def _record(conn: sqlite3.Connection, play: PlayRecord) -> None:
    """Append to the play log and make it the occurrence's latest state (inside the caller's transaction)."""
    row = conn.execute(
        "INSERT INTO play_log (id, rev, occurrence, state, detail, at) VALUES (?, ?, ?, ?, ?, ?)",
        (play.id, play.rev, play.occurrence, play.state, play.detail, play.at),
    ).lastrowid
    conn.execute(
        "INSERT INTO occurrences (id, rev, occurrence, state, detail, at, log_row) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (id, rev, occurrence) DO UPDATE SET"
        " state = excluded.state, detail = excluded.detail, at = excluded.at, log_row = excluded.log_row",
        (play.id, play.rev, play.occurrence, play.state, play.detail, play.at, row),
    )


def _ranges(seqs: list[int]) -> str:
    """'3-5, 9' for [3, 4, 5, 9]: a drop of thousands of events stays one log line."""
    spans: list[tuple[int, int]] = []
    for seq in seqs:
        if spans and seq == spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], seq)
        else:
            spans.append((seq, seq))
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in spans)
