"""Wall-clock time as the protocol writes it, and detection of wall-clock jumps.

A Pi has no real-time clock: it may boot believing it is 1970 and jump decades when NTP syncs, and an operator
may set the time by hand. APScheduler trusts the wall clock, so the daemon watches for jumps against the
monotonic clock and rebuilds its schedule from the store when one happens.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections.abc import Callable

OFFSET_ENV = "RADIOD_CLOCK_OFFSET_S"
"""Seconds added to the machine's clock in :func:`wall`: how a test gives the daemon a wrong clock (a Pi booted
at 2001 before NTP, a clock set two days back by hand). libfaketime cannot do it: it breaks time.sleep."""
NOT_BEFORE = dt.datetime(2026, 11, 1, tzinfo=dt.UTC).timestamp()
"""Before this release of radiod was built (bump it with each release): a clock reading earlier is plainly wrong."""


def clock_offset() -> float:
    """The test offset of :func:`wall` (0 on a real node); a value that is not a number counts as 0."""
    try:
        return float(os.environ.get(OFFSET_ENV, "0") or 0)
    except ValueError:
        return 0.0


def wall() -> float:
    """The daemon's wall clock, in seconds since the epoch: ``time.time()``, plus :data:`OFFSET_ENV` in tests."""
    return time.time() + clock_offset()


def rfc3339(ts: float, tz: dt.tzinfo | None = None, *, ms: bool = True) -> str:
    """``ts`` (seconds since the epoch) as RFC 3339 with an offset, e.g. 2026-11-22T06:30:00.000+07:00."""
    stamp = dt.datetime.fromtimestamp(ts, tz or dt.UTC)
    return stamp.isoformat(timespec="milliseconds" if ms else "seconds")


def parse_rfc3339(text: str) -> float:
    """The inverse of :func:`rfc3339`; the offset is required."""
    stamp = dt.datetime.fromisoformat(text)
    if stamp.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return stamp.timestamp()


class JumpWatch:
    """Calls ``on_jump(delta_s)`` from its own thread when the wall clock moves against the monotonic clock.

    Checked every ``period_s``; a difference above ``threshold_s`` is a jump (NTP slews small errors, it does
    not step them, so a few seconds is a safe threshold).
    """

    def __init__(
        self,
        on_jump: Callable[[float], None],
        *,
        period_s: float = 1.0,
        threshold_s: float = 2.0,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_jump = on_jump
        self._period = period_s
        self._threshold = threshold_s
        self._wall = wall  # swappable, like gpiozero's pin factory: a test cannot move the machine's clock
        self._mono = monotonic
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="clock-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        wall, mono = self._wall(), self._mono()
        while not self._stop.wait(self._period):
            now_wall, now_mono = self._wall(), self._mono()
            delta = (now_wall - wall) - (now_mono - mono)
            wall, mono = now_wall, now_mono
            if abs(delta) > self._threshold:
                self._on_jump(delta)
