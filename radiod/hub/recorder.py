"""The hub's recorder: every node's state, health and events, and every retained bulletin, kept in SQLite.

Why a recorder: ``radiod watch`` shows events as they pass, but the commune has to answer afterwards "did the
bulletin play, and where not?" and report each month to the district. So the hub keeps what nodes send.

Nothing lost, nothing doubled: the recorder's MQTT session is persistent (a fixed client id, ``clean_start``
off, a session that outlives a hub restart by :data:`SESSION_EXPIRY_S`) and subscribes to events at QoS 1, so the
broker keeps the events sent while the hub is down (state and health are retained: each connection brings the
latest again); the messages are acknowledged by hand (paho's ``manual_ack``) only after the database transaction
holding them has committed, so a hub that dies in between gets them again; and an event is stored once per
``(node, seq)``, the node's own sequence number, so what comes again is ignored.

paho's callbacks run on its network thread and only enqueue (DEVELOPERS.md); one writer thread stores batches.
Readers (the console, the reports) open their own connections: SQLite in WAL mode lets them read while it writes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from radiod.clock import parse_rfc3339
from radiod.config import MqttConfig
from radiod.hub.operator import decode_retained
from radiod.node.mqtt_link import Incoming, new_client
from radiod.protocol.enums import EventType
from radiod.protocol.jws import TrustStore
from radiod.protocol.outgoing import Event, Health, State
from radiod.protocol.topics import bulletins_filter, node_topic, parse_hub_topic, parse_node_topic

log = logging.getLogger(__name__)

RECORDER_CLIENT_ID = "radiod-hub-recorder"
"""Fixed, so the broker keeps one session for the recorder across restarts (never equal to a node's or a tool's)."""
SESSION_EXPIRY_S = 7 * 86400
"""How long the broker keeps the recorder's queued events while the hub is down."""
BATCH = 500
"""Messages stored in one transaction: one fsync for a burst from 200 nodes instead of one each."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    node TEXT NOT NULL,
    seq INTEGER,
    ts TEXT NOT NULL,
    type TEXT NOT NULL,
    bulletin TEXT,
    rev INTEGER,
    occurrence TEXT,
    reason TEXT,
    duration_s REAL,
    lang TEXT,
    data TEXT NOT NULL,
    received REAL NOT NULL,
    UNIQUE (node, seq)
);
CREATE INDEX IF NOT EXISTS events_bulletin ON events (bulletin, node);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
CREATE TABLE IF NOT EXISTS nodes (
    node TEXT PRIMARY KEY,
    online INTEGER,
    since TEXT,
    version TEXT,
    last_seen REAL,
    health_status TEXT,
    health TEXT
);
CREATE TABLE IF NOT EXISTS bulletins (
    id TEXT NOT NULL,
    rev INTEGER NOT NULL,
    payload TEXT NOT NULL,
    topics TEXT NOT NULL,
    verified INTEGER NOT NULL,
    first_seen REAL NOT NULL,
    PRIMARY KEY (id, rev)
);
"""


def connect(path: Path | str) -> sqlite3.Connection:
    """A connection to the hub database in WAL mode, with the recorder's tables; one per thread."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA)
    if "lang" not in {row["name"] for row in db.execute("PRAGMA table_info(events)")}:
        with db:  # a database from before events kept the programme's language
            db.execute("ALTER TABLE events ADD COLUMN lang TEXT")
    return db


@dataclass
class _Pending:
    """Messages received but not yet committed, with what paho needs to acknowledge them afterwards."""

    messages: list[tuple[Incoming, int, int]] = field(default_factory=list)  # (message, mid, qos)


class Recorder:
    """Subscribes to every node's messages and every bulletin of ``prefix`` and stores them in ``database``.

    ``changed`` is a counter that rises on every commit: the console's live pages wait for it to move.
    """

    def __init__(self, mqtt: MqttConfig, database: Path | str, trust: TrustStore | None = None) -> None:
        self.mqtt = mqtt
        self.prefix = mqtt.prefix
        self.database = database
        self.trust = trust
        self.changed = 0
        self._cond = threading.Condition()
        self._queue: queue.Queue[tuple[Incoming, int, int] | None] = queue.Queue()
        self._db = connect(database)
        self._client = new_client(mqtt, RECORDER_CLIENT_ID)
        self._client.manual_ack_set(True)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(1, mqtt.reconnect_max_s)
        self._writer = threading.Thread(target=self._write_loop, name="recorder-writer", daemon=True)
        self.connected = threading.Event()

    # ----- life -----
    def start(self) -> None:
        """Start the writer and connect in the background: a broker that is down now is retried, not fatal."""
        self._writer.start()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self._client.connect_async(
            self.mqtt.host, self.mqtt.port, keepalive=self.mqtt.keepalive_s, clean_start=False, properties=props
        )
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect, then store what was received: what is not acknowledged the broker keeps for next time."""
        self._client.disconnect()
        self._client.loop_stop()
        self._queue.put(None)
        self._writer.join(timeout=30)
        self._db.close()

    def alive(self) -> bool:
        """The writer thread still runs: what the service's watchdog pings vouch for."""
        return self._writer.is_alive()

    def wait_changed(self, seen: int, timeout: float) -> int:
        """Block until ``changed`` differs from ``seen`` or ``timeout`` passes; returns the current value."""
        with self._cond:
            self._cond.wait_for(lambda: self.changed != seen, timeout)
            return self.changed

    # ----- paho callbacks (network thread: enqueue only) -----
    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: paho.ConnectFlags, code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if code.is_failure:
            log.warning("broker %s:%s refused the recorder: %s", self.mqtt.host, self.mqtt.port, code)
            return
        # Events and bulletins at QoS 1: the broker keeps them while the hub is down. State and health at QoS 0:
        # they are retained, so each (re)subscription here brings every node's latest, and the broker queues none
        # of the minutely health reports for an absent hub, where 200 nodes would fill the session's queue
        # (max_queued_messages) in five minutes and push the events behind them out.
        client.subscribe([
            (node_topic(self.prefix, "+", "event"), SubscribeOptions(qos=1)),
            (bulletins_filter(self.prefix), SubscribeOptions(qos=1)),
            (node_topic(self.prefix, "+", "state"), SubscribeOptions(qos=0)),
            (node_topic(self.prefix, "+", "health"), SubscribeOptions(qos=0)),
        ])
        # A session kept from a hub before this split still holds its one QoS 1 filter over every node topic.
        client.unsubscribe(node_topic(self.prefix, "+", "+"))
        self.connected.set()
        log.info("recorder connected to %s:%s (session present: %s)", self.mqtt.host, self.mqtt.port,
                 flags.session_present)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        incoming = Incoming(message.topic, bytes(message.payload), bool(message.retain), time.time())
        self._queue.put((incoming, message.mid, message.qos))

    # ----- the writer thread -----
    def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            batch = _Pending()
            if first is None:
                stopping = True
            else:
                batch.messages.append(first)
            while len(batch.messages) < BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.messages.append(item)
            if batch.messages:
                self._commit(batch)

    def _commit(self, batch: _Pending) -> None:
        with self._db:
            for incoming, _mid, _qos in batch.messages:
                self.store(self._db, incoming)
        for _incoming, mid, qos in batch.messages:
            if qos > 0:
                self._client.ack(mid, qos)
        with self._cond:
            self.changed += 1
            self._cond.notify_all()

    def store(self, db: sqlite3.Connection, msg: Incoming) -> None:
        """Store one message inside the caller's transaction; one that is not the protocol's is logged and dropped."""
        node_topic_parts = parse_node_topic(msg.topic, self.prefix)
        try:
            if node_topic_parts is not None:
                node, kind = node_topic_parts
                if kind == "event":
                    store_event(db, node, Event.from_dict(json.loads(msg.payload)), msg.received)
                elif kind == "health" and msg.payload:
                    store_health(db, node, Health.from_dict(json.loads(msg.payload)), msg.received)
                elif kind == "state" and msg.payload:
                    store_state(db, node, State.from_dict(json.loads(msg.payload)), msg.received)
            elif msg.payload and (hub := parse_hub_topic(msg.topic, self.prefix)) and hub.kind == "bulletin":
                decoded = decode_retained(msg, self.trust)
                if decoded["payload"].get("id"):
                    store_bulletin(db, decoded["payload"], msg.topic, decoded["verified"], msg.received)
        except ValueError as exc:  # not JSON, or not what the protocol says
            log.warning("recorder: ignoring %s: %s", msg.topic, exc)


def store_event(db: sqlite3.Connection, node: str, event: Event, received: float) -> bool:
    """Store ``event`` of ``node`` once; False when this ``(node, seq)`` is already stored (a redelivery)."""
    data = event.to_dict()
    cur = db.execute(
        "INSERT OR IGNORE INTO events (node, seq, ts, type, bulletin, rev, occurrence, reason, duration_s, lang,"
        " data, received) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (node, event.seq, event.ts, str(event.type), event.bulletin, event.rev, event.occurrence, event.reason,
         event.duration_s, event.lang, json.dumps(data, ensure_ascii=False), received),
    )
    _seen(db, node, received)
    return cur.rowcount == 1


def store_health(db: sqlite3.Connection, node: str, health: Health, received: float) -> None:
    db.execute(
        "INSERT INTO nodes (node, health_status, health, last_seen) VALUES (?,?,?,?) ON CONFLICT (node) DO UPDATE"
        " SET health_status=excluded.health_status, health=excluded.health,"
        " last_seen=max(coalesce(nodes.last_seen, 0), excluded.last_seen),"
        " version=coalesce(nullif(?, ''), nodes.version)",
        (node, str(health.status), health.to_json(), _report_time(health.ts, received), health.version),
    )


def store_state(db: sqlite3.Connection, node: str, state: State, received: float) -> None:
    db.execute(
        "INSERT INTO nodes (node, online, since, version) VALUES (?,?,?,?) ON CONFLICT (node) DO UPDATE"
        " SET online=excluded.online, since=coalesce(excluded.since, nodes.since),"
        " version=coalesce(excluded.version, nodes.version)",
        (node, int(state.online), state.since, state.version),
    )
    if state.online:
        _seen(db, node, received)


def store_bulletin(db: sqlite3.Connection, payload: dict[str, Any], topic: str, verified: bool,
                   received: float) -> None:
    """Keep every (id, rev) of every bulletin and tombstone seen, with the topics it was retained on."""
    row = db.execute("SELECT topics FROM bulletins WHERE id=? AND rev=?", (payload["id"], payload.get("rev", 0)))
    found = row.fetchone()
    topics = sorted({*json.loads(found["topics"]), topic}) if found else [topic]
    db.execute(
        "INSERT INTO bulletins (id, rev, payload, topics, verified, first_seen) VALUES (?,?,?,?,?,?)"
        " ON CONFLICT (id, rev) DO UPDATE SET topics=excluded.topics",
        (payload["id"], int(payload.get("rev", 0)), json.dumps(payload, ensure_ascii=False), json.dumps(topics),
         int(verified), received),
    )


def _seen(db: sqlite3.Connection, node: str, when: float) -> None:
    db.execute(
        "INSERT INTO nodes (node, last_seen) VALUES (?, ?) ON CONFLICT (node) DO UPDATE"
        " SET last_seen=max(coalesce(nodes.last_seen, 0), excluded.last_seen)",
        (node, when),
    )


def _report_time(ts: str, received: float) -> float:
    """When a report was made: its own ``ts``, unless it claims the future (a node whose clock jumped)."""
    with contextlib.suppress(ValueError):
        return min(parse_rfc3339(ts), received)
    return received


# ----- reading -----

PLAY_OUTCOMES = (EventType.FINISHED, EventType.INTERRUPTED, EventType.FAILED, EventType.SKIPPED)
DELIVERY_ORDER = ("finished", "interrupted", "failed", "started", "skipped", "accepted", "rejected")
"""A node's delivery state of a bulletin: the first of these it reported (a finished play outranks the rest)."""


def deliveries(db: sqlite3.Connection, bulletin_id: str) -> dict[str, str]:
    """node -> its delivery state of ``bulletin_id``: accepted, started, finished, interrupted, failed, ..."""
    states: dict[str, set[str]] = {}
    for row in db.execute("SELECT node, type FROM events WHERE bulletin=?", (bulletin_id,)):
        states.setdefault(row["node"], set()).add(row["type"])
    return {node: next(s for s in DELIVERY_ORDER if s in types) for node, types in states.items()
            if any(s in types for s in DELIVERY_ORDER)}


def bulletins(db: sqlite3.Connection, limit: int = -1) -> list[dict[str, Any]]:
    """Every bulletin seen (the newest ``limit`` of them, when given), newest first, each as :func:`bulletin`
    gives it: the console's home page reads 50, not every bulletin of the hub's life."""
    ids = [r["id"] for r in db.execute("SELECT id, min(first_seen) AS seen FROM bulletins GROUP BY id"
                                       " ORDER BY seen DESC LIMIT ?", (limit,))]
    return [found for i in ids if (found := bulletin(db, i)) is not None]


def bulletin(db: sqlite3.Connection, bulletin_id: str) -> dict[str, Any] | None:
    """The latest rev of a bulletin that has content, with ``cancelled`` and the tombstone's ``rev`` when a
    tombstone came after it: a cancelled bulletin keeps its title and text in the console and the reports."""
    revs = [json.loads(r["payload"]) for r in
            db.execute("SELECT payload FROM bulletins WHERE id=? ORDER BY rev DESC", (bulletin_id,))]
    if not revs:
        return None
    latest = revs[0]
    merged = dict(next((p for p in revs if not p.get("cancelled")), latest))
    if latest.get("cancelled"):
        merged.update(cancelled=True, rev=latest.get("rev"))
    return merged


def nodes(db: sqlite3.Connection) -> list[sqlite3.Row]:
    return list(db.execute("SELECT * FROM nodes ORDER BY node"))


def events_between(db: sqlite3.Connection, start: str, end: str) -> Iterator[sqlite3.Row]:
    """Events whose node time ``ts`` is in [start, end) (RFC 3339 text in the nodes' time zone compares as text
    only within one offset, so the caller passes the commune's)."""
    yield from db.execute("SELECT * FROM events WHERE ts >= ? AND ts < ? ORDER BY ts", (start, end))


def count_events(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT count(*) FROM events").fetchone()[0])
