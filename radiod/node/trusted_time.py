"""The hub's signed times as a check on the node's own clock.

A Pi has no real-time clock: before NTP answers it may read 2001, and a technician may set it days back by hand.
Trusting such a clock, a node played an emergency that had expired a day earlier. Every verified message carries
the hub's signed ``iat``, so the node knows the real time is at least the newest ``iat`` it has seen (kept in
the store across restarts). From that:

- a bulletin whose ``exp`` is not after that time is expired, whatever an unsynchronized local clock says
  (:meth:`now`). A synchronized clock is believed over the hub's: a hub whose clock once ran ahead must not
  make every node refuse every bulletin, emergencies included, until the real time catches up;
- a command signed more than :data:`FUTURE_IAT_S` after both that time and the local clock is refused: it was
  signed for later use, or by a hub whose clock is wrong;
- while the local clock is plainly wrong (before this release was built, or more than :data:`FUTURE_IAT_S`
  behind the newest ``iat`` while not synchronized), scheduled times mean nothing: only ``now`` bulletins play,
  and health and the ``accepted`` events say so (:meth:`wrong`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from radiod.clock import NOT_BEFORE, clock_offset, rfc3339, wall
from radiod.node.health import read_clock
from radiod.node.store import Store

log = logging.getLogger(__name__)

FUTURE_IAT_S = 300.0
"""How far a signed time may lie ahead of the node's: the hub's and the node's clocks, both synchronized, agree
far better; a command lives at most 300 s, so one signed further ahead is not meant for now."""
PERSIST_STEP_S = 60.0
"""The newest iat is written to the store when it moved on by this much: not once per message of a backlog."""
SYNC_RECHECK_S = 60.0
"""How long a reading of the time source (chrony, timedatectl, adjtimex; a subprocess) is reused."""
SETTING = "newest_iat"


class TrustedTime:
    """The newest signed ``iat`` seen from a trusted key, and what it says about the local clock."""

    def __init__(self, store: Store, *, wall_clock: Callable[[], float] = wall,
                 synchronized: Callable[[], bool | None] | None = None) -> None:
        self._store = store
        self._wall = wall_clock
        self._synchronized = synchronized or _synchronized
        self.newest_iat = float(store.get_setting(SETTING) or 0.0)
        self._persisted = self.newest_iat
        self._sync: tuple[float, bool | None] | None = None  # (monotonic time of the reading, synchronized)
        self._is_synchronized()  # now, at start: the time source may take a subprocess to ask

    def now(self) -> float:
        """The time expiry is judged by: the local clock, or the newest signed iat when that is later and the
        local clock is not synchronized."""
        local = self._wall()
        if self.newest_iat <= local or self._is_synchronized():
            return local
        return self.newest_iat

    def saw(self, iat: float) -> None:
        """A verified message signed at ``iat``; the store is written only when it moved on by a minute."""
        if iat <= self.newest_iat:
            return
        self.newest_iat = iat
        if iat - self._persisted >= PERSIST_STEP_S:
            self._store.put_setting(SETTING, repr(iat))
            self._persisted = iat

    def too_far_ahead(self, iat: float) -> str | None:
        """Why a command signed at ``iat`` is refused, or None when it may run."""
        limit = max(self.newest_iat, self._wall()) + FUTURE_IAT_S
        if iat <= limit:
            return None
        return (f"iat: {rfc3339(iat, ms=False)} is more than {FUTURE_IAT_S:.0f} s after this node's time "
                f"{rfc3339(limit - FUTURE_IAT_S, ms=False)} (its clock, or the hub's newest signed time)")

    def wrong(self) -> str | None:
        """Why the local clock cannot be trusted for scheduled plays, or None when it can."""
        local = self._wall()
        if local < NOT_BEFORE:
            return (f"the clock reads {rfc3339(local, ms=False)}, before this radiod was built "
                    f"({rfc3339(NOT_BEFORE, ms=False)}): it was never set")
        if local < self.newest_iat - FUTURE_IAT_S and not self._is_synchronized():
            return (f"the clock reads {rfc3339(local, ms=False)}, {self.newest_iat - local:.0f} s behind the hub's "
                    f"newest signed time {rfc3339(self.newest_iat, ms=False)}, and is not synchronized")
        return None

    def _is_synchronized(self) -> bool:
        reading = self._sync
        if reading is None or time.monotonic() - reading[0] > SYNC_RECHECK_S:
            reading = (time.monotonic(), self._synchronized())
            self._sync = reading
        return reading[1] is True


def _synchronized() -> bool | None:
    """The time source's word; a clock offset for a test is by definition not the synchronized one."""
    if clock_offset():
        return False
    reading = read_clock()
    return reading.synchronized if reading is not None else None
