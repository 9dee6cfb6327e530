"""Play states written to the store in the order they happened, even while it refuses writes.

The playout thread records each state of an occurrence (started, then finished, interrupted, skipped); the store
keeps the latest one, which decides whether a restart plays it again. A full SD card must not silence the
loudspeakers, so a refused state waits in RAM. Every later state must then wait behind it: written straight
into the store once space returns, a ``skipped`` would be overwritten by the older ``started`` still waiting,
and the play would be replayed after a restart. One lock orders the playout thread's writes and the main loop's
flush.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

from radiod.errors import StoreError
from radiod.node.store import DONE_STATES, PlayRecord, Store

log = logging.getLogger(__name__)


class PlayRecorder:
    """The occurrence states of one store, with those it refused kept in order until it takes them."""

    def __init__(self, store: Store, maxlen: int, on_error: Callable[[str], None]) -> None:
        self._store = store
        self._waiting: deque[PlayRecord] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self._on_error = on_error  # the latest refusal, for the daemon's health report

    def __len__(self) -> int:
        return len(self._waiting)

    def mark(self, play: PlayRecord) -> None:
        """Record a state, or keep it behind those waiting if the store refuses it (logged, never raised)."""
        with self._lock:
            if not self._waiting:
                try:
                    self._store.mark_occurrence(play.id, play.rev, play.occurrence, play.state, detail=play.detail,
                                                at=play.at)
                    return
                except StoreError as exc:
                    self._refused(play, exc)
            self._waiting.append(play)

    def claim(self, play: PlayRecord) -> bool:
        """The exactly-once step (see :meth:`Store.claim_occurrence`), decided on the states still waiting too.
        True if the occurrence may play; a store that refuses the write or the read lets it play, unrecorded."""
        with self._lock:
            if not self._waiting:
                try:
                    return self._store.claim_occurrence(play.id, play.rev, play.occurrence, at=play.at)
                except StoreError as exc:
                    self._refused(play, exc)
            else:
                key = (play.id, play.rev, play.occurrence)
                waiting = [p.state for p in self._waiting if (p.id, p.rev, p.occurrence) == key]
                try:
                    latest = waiting[-1] if waiting else self._store.occurrence_state(*key)
                except StoreError as exc:
                    self._refused(play, exc)
                    latest = None
                if latest in DONE_STATES:
                    return False
            self._waiting.append(play)
            return True

    def flush(self) -> bool:
        """Write the waiting states, oldest first; True once none waits."""
        with self._lock:
            while self._waiting:
                play = self._waiting[0]
                try:
                    self._store.mark_occurrence(play.id, play.rev, play.occurrence, play.state, detail=play.detail,
                                                at=play.at)
                except StoreError as exc:
                    self._on_error(str(exc))
                    return False
                self._waiting.popleft()
            return True

    def _refused(self, play: PlayRecord, exc: StoreError) -> None:
        log.error("cannot record %s of %s %s yet: %s", play.state, play.id, play.occurrence, exc)
        self._on_error(str(exc))
