"""Events: written to the store's outbox first, published from there, deleted only when the broker acked them.

``seq`` is assigned by the store, so it rises by one per event for the node's whole life and the hub can see a
gap. A broker outage or a daemon restart leaves events in the outbox; the publisher sends them again, in
order, when the link is back.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import replace
from typing import Any, Protocol

from radiod.clock import rfc3339
from radiod.errors import StoreError
from radiod.node.store import Store
from radiod.protocol.enums import EventType
from radiod.protocol.outgoing import Event

log = logging.getLogger(__name__)


class Link(Protocol):
    connected: bool

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False, qos: int = 1) -> int | None: ...
    def wait_published(self, mid: int, timeout: float) -> bool: ...


MEMORY_BACKLOG = 10_000
"""Events held in RAM while the store cannot be written (a full SD card), before the oldest are dropped."""
PUBLISHER_RETRY_S = 2.0
"""How long the publisher waits after the store refused it (a full SD card) before it tries again."""


class EventLog:
    """Puts protocol v1 events (:class:`~radiod.protocol.outgoing.Event`) in the outbox.

    When the store cannot be written (disk full, I/O error) events wait in RAM, in order, and go into the
    outbox when it can be written again, so a full SD card delays reports but does not lose them (up to
    :data:`MEMORY_BACKLOG`) and never stops a play.
    """

    def __init__(self, store: Store, node_id: str, tz: Any) -> None:
        self._store = store
        self._node = node_id
        self._tz = tz
        self.wakeup = threading.Event()
        self._lock = threading.Lock()
        self._backlog: deque[dict[str, Any]] = deque(maxlen=MEMORY_BACKLOG)
        self.store_error: str | None = None

    def emit(self, event: Event | EventType | str, **fields: Any) -> Event:
        """Store one event and wake the publisher; returns it, with this node and the time filled in.

        ``event`` is an :class:`Event`, or its type with the event's fields as keywords (an unknown field is a
        TypeError: the protocol's field names are those of :class:`Event`). The store assigns ``seq``; while the
        store cannot be written the event waits in RAM, in order.
        """
        if not isinstance(event, Event):
            event = Event(EventType(event), **fields)
        elif fields:
            raise TypeError("emit() takes an Event or a type and fields, not both")
        event = replace(event, node=self._node, ts=self.time(time.time()))
        with self._lock:
            self._backlog.append(event.to_dict())
            self._flush()
        self.wakeup.set()
        return event

    def flush(self) -> None:
        """Retry storing events held in RAM; the main loop calls it every tick."""
        with self._lock:
            if self._backlog:
                self._flush()
                self.wakeup.set()

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    def _flush(self) -> None:
        while self._backlog:
            try:
                stored = self._store.add_event(self._backlog[0])
            except StoreError as exc:
                if self.store_error is None:
                    log.error("events wait in memory (%d): %s", len(self._backlog), exc)
                self.store_error = str(exc)
                return
            self._backlog.popleft()
            log.info("event %s", json.dumps(stored, ensure_ascii=False))
        if self.store_error is not None:
            log.warning("the store takes events again")
            self.store_error = None

    def time(self, ts: float) -> str:
        """Event times: RFC 3339 in the node's zone, with milliseconds."""
        return rfc3339(ts, self._tz)


class Publisher:
    """Drains the outbox to ``topic`` in seq order, one acknowledged message at a time.

    A store error (a full SD card refuses even the delete of an acknowledged event) pauses it for
    :data:`PUBLISHER_RETRY_S`, never ends it: the event stays in the outbox and is sent again, so the hub may
    receive one seq twice (it keeps the first), but never loses one.
    """

    def __init__(self, store: Store, link: Link, topic: str, wakeup: threading.Event, *, ack_timeout_s: float = 10.0):
        self._store = store
        self._link = link
        self._topic = topic
        self._wakeup = wakeup
        self._ack_timeout = ack_timeout_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-publisher", daemon=True)
        self.store_error: str | None = None

    @property
    def alive(self) -> bool:
        """Whether the publisher thread runs: if it ever ends, events pile up in the outbox (health is crit)."""
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wakeup.set()
        self._thread.join(timeout=self._ack_timeout + 2)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wakeup.wait(timeout=1.0)
            self._wakeup.clear()
            try:
                while not self._stop.is_set() and self._link.connected and self._drain_batch():
                    pass
            except StoreError as exc:
                if self.store_error is None:
                    log.error("event publisher paused, retrying every %g s: %s", PUBLISHER_RETRY_S, exc)
                self.store_error = str(exc)
                self._stop.wait(PUBLISHER_RETRY_S)
                self._wakeup.set()  # then straight back to the outbox
                continue
            if self.store_error is not None:
                log.warning("event publisher: the store works again")
                self.store_error = None

    def _drain_batch(self) -> bool:
        """Publish pending events in order; True if it sent a full batch and more may wait."""
        pending = self._store.pending_events(limit=100)
        for seq, payload in pending:
            mid = self._link.publish(self._topic, payload, qos=1)
            if mid is None or not self._link.wait_published(mid, self._ack_timeout):
                return False  # link went down: the event stays in the outbox and goes again, in order
            self._store.ack_event(seq)
        return len(pending) == 100
