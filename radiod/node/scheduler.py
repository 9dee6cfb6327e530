"""When each stored bulletin plays: APScheduler jobs derived from the store, never the other way round.

One in-memory job per bulletin fires ``prerender_s`` before its next occurrence and hands the playout a request
for that instant, then arms the occurrence after it. Nothing is persisted in APScheduler (its persistent stores
pickle jobs): at start, after a wall-clock jump and after every change, jobs are rebuilt from the store, which
also knows which occurrences already played. APScheduler's own misfire handling is bypassed (jobs run however
late); lateness is judged here against the configured grace window, and quiet hours here too: a normal bulletin
due inside them is reported skipped instead of handed to the playout (priority and emergency always play), as is
every occurrence of a ``test`` bulletin (delivered, never played).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Sequence
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger

from radiod.clock import rfc3339
from radiod.config import QuietHours
from radiod.errors import Rejected
from radiod.node.playout import PlayRequest
from radiod.node.store import DONE_STATES, Store
from radiod.protocol.messages import Bulletin
from radiod.protocol.occurrences import occurrences

log = logging.getLogger(__name__)

NOW = "now"


def in_quiet_hours(ts: float, windows: Sequence[QuietHours], tz: dt.tzinfo) -> bool:
    """Whether the instant ``ts`` falls in one of the windows, read in the node's time zone (the same rule
    ``radiod post`` warns with: :meth:`QuietHours.covers`)."""
    local = dt.datetime.fromtimestamp(ts, tz).time()
    return any(window.covers(local) for window in windows)


class Scheduler:
    def __init__(
        self,
        store: Store,
        tz: ZoneInfo,
        *,
        grace_s: float,
        prerender_s: float,
        quiet_hours: Sequence[QuietHours] = (),
        submit: Callable[[PlayRequest], None],
        skip: Callable[[Bulletin, str, str], None],
        parse: Callable[[str], Bulletin],
    ) -> None:
        self._store = store
        self._tz = tz
        self._grace = grace_s
        self._prerender = prerender_s
        self._quiet = tuple(quiet_hours)
        self._submit = submit
        self._skip = skip
        self._parse = parse
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}
        self._aps = BackgroundScheduler(timezone=tz, job_defaults={"misfire_grace_time": None, "coalesce": True})

    def start(self) -> None:
        self._aps.start()

    def shutdown(self) -> None:
        self._aps.shutdown(wait=False)

    # ----- building jobs -----
    def rebuild(self, *, last_alive: float | None = None) -> None:
        """Re-derive every job from the store: at start, after a clock jump, after reconciling."""
        now = time.time()
        with self._lock:
            self._aps.remove_all_jobs()
            self._next.clear()
        for stored in self._store.bulletins(now=now):
            try:
                bulletin = self._parse(stored.payload)
            except Rejected as exc:  # stored by an older radiod with other rules: skip it, keep the node going
                log.error("stored bulletin %s r%d cannot be read back (%s): not scheduled", stored.id, stored.rev, exc)
                continue
            self.schedule(bulletin, stored_at=stored.stored_at, last_alive=last_alive)

    def schedule(self, bulletin: Bulletin, *, stored_at: float, last_alive: float | None = None) -> None:
        """(Re)arm one bulletin: play what is due within grace, report what was missed, arm the next one."""
        self.unschedule(bulletin.id)
        now = time.time()
        if bulletin.cancelled or bulletin.exp <= now:
            return
        if bulletin.schedule.now:
            self._due_now(bulletin, stored_at, now)
            return
        # Occurrences since the node last knew the time (or since it got the bulletin), and those of the grace
        # window (one cut by a shutdown or still queued when the daemon stopped), not yet played.
        since = max(stored_at, min(last_alive, now - self._grace) if last_alive is not None else stored_at) - 1
        for occ in occurrences(bulletin.schedule, self._tz, _aware(since), _aware(now)):
            key = rfc3339(occ.timestamp(), self._tz, ms=False)
            if self._store_state(bulletin, key) in DONE_STATES:
                continue
            if now - occ.timestamp() <= self._grace:
                self._hand_over(PlayRequest(bulletin, key, None), now)
            else:
                self._skip(bulletin, key, "missed")
        self._arm_next(bulletin, now)

    def unschedule(self, bulletin_id: str) -> None:
        with self._lock:
            if self._aps.get_job(bulletin_id):
                self._aps.remove_job(bulletin_id)
            self._next.pop(bulletin_id, None)

    def next_play(self) -> tuple[str, float] | None:
        """The soonest armed occurrence not yet started: (bulletin id, start instant)."""
        with self._lock:
            self._forget_started()
            if not self._next:
                return None
            bid = min(self._next, key=self._next.__getitem__)
            return bid, self._next[bid]

    def next_of(self, bulletin_id: str) -> float | None:
        with self._lock:
            self._forget_started()
            return self._next.get(bulletin_id)

    def _forget_started(self) -> None:
        """Drop next plays whose instant has passed (under the lock): a bulletin's last occurrence is never
        replaced by another, and `radiod status` and `radiod nodes` must not announce it after it played."""
        now = time.time()
        for bulletin_id in [b for b, at in self._next.items() if at < now]:
            del self._next[bulletin_id]

    # ----- internals -----
    def _store_state(self, bulletin: Bulletin, key: str) -> str | None:
        return self._store.occurrence_state(bulletin.id, bulletin.rev, key)

    def _due_now(self, bulletin: Bulletin, stored_at: float, now: float) -> None:
        state = self._store_state(bulletin, NOW)
        if state in DONE_STATES:
            return
        if now - stored_at <= self._grace:
            self._hand_over(PlayRequest(bulletin, NOW, None), now)
        else:
            self._skip(bulletin, NOW, "missed")

    def _arm_next(self, bulletin: Bulletin, after: float) -> None:
        end = _aware(bulletin.exp)
        upcoming = next(occurrences(bulletin.schedule, self._tz, _aware(after), end), None)
        if upcoming is None:  # the last one stays its next play until it starts (see _forget_started)
            return
        fire_at = upcoming - dt.timedelta(seconds=self._prerender)
        with self._lock:
            self._next[bulletin.id] = upcoming.timestamp()
            self._aps.add_job(
                self._fire,
                DateTrigger(run_date=max(fire_at, _aware(time.time()))),
                args=(bulletin, upcoming.timestamp()),
                id=bulletin.id,
                replace_existing=True,
            )

    def _fire(self, bulletin: Bulletin, start: float) -> None:
        """On APScheduler's thread: hand the occurrence to the playout and arm the one after it."""
        key = rfc3339(start, self._tz, ms=False)
        if self._store_state(bulletin, key) not in DONE_STATES:
            self._hand_over(PlayRequest(bulletin, key, start), start)
        self._arm_next(bulletin, start + 0.5)

    def _hand_over(self, req: PlayRequest, at: float) -> None:
        """Give the playout a request to start at ``at``, unless it is not to be heard: a ``test`` bulletin (a
        delivery check), or a normal one in quiet hours."""
        if req.bulletin.status == "test":
            self._skip(req.bulletin, req.occurrence, "test")
        elif req.bulletin.priority == "normal" and in_quiet_hours(at, self._quiet, self._tz):
            self._skip(req.bulletin, req.occurrence, "quiet_hours")
        else:
            self._submit(req)


def _aware(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)
