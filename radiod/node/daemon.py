"""``radiod run``: the node daemon. It wires message → store → schedule → render → play → report.

Threads, and what each may do:
- paho's network thread only puts messages and link events on ``inbox``;
- this main loop takes them one at a time: verify, store, schedule, answer commands, publish health;
- APScheduler's thread only hands requests to the playout, or reports one skipped in quiet hours;
- the playout thread plays, one programme at a time; its render pool runs the speech pipeline;
- the publisher thread drains the event outbox to the broker.
SIGTERM and SIGINT switch the relays off first, then stop the loop, publish the offline state and exit.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

from radiod import __version__
from radiod.audio.relays import switch_off_on_signals
from radiod.audio.station import Station, Timeline
from radiod.clock import JumpWatch, rfc3339
from radiod.config import Config
from radiod.errors import RadiodError, Rejected, StoreError
from radiod.node.control import Progress, daemon_server, install_stack_dump
from radiod.node.events import EventLog, Publisher
from radiod.node.health import RunningNode, VoiceCheck, daemon_checks, worst
from radiod.node.inbox import Inbox
from radiod.node.media import MediaCache, MediaFetcher
from radiod.node.mqtt_link import Incoming, LinkEvent, MqttLink
from radiod.node.play_record import PlayRecorder
from radiod.node.playout import Playout, PlayRequest, occurrence_state
from radiod.node.programme import BulletinProgramme, ProgrammeMaker
from radiod.node.relay import RelayLoop
from radiod.node.scheduler import NOW, Scheduler
from radiod.node.sdnotify import Notifier
from radiod.node.store import PlayRecord, Store
from radiod.node.techtest import TechnicianTest
from radiod.node.trusted_time import TrustedTime
from radiod.protocol.enums import Priority
from radiod.protocol.jws import TrustStore
from radiod.protocol.messages import Bulletin, Command, Media, parse_bulletin_json, parse_message
from radiod.protocol.occurrences import occurrences
from radiod.protocol.outgoing import Check, Health, NextPlay, Playing
from radiod.protocol.topics import event_topic, health_topic, state_topic, subscriptions, topic_bulletin_id

log = logging.getLogger(__name__)

ALIVE_EVERY_S = 30.0
"""How often the daemon notes that it is alive, so missed occurrences after a power cut can be told."""
STORE_RETRY_S = 5.0
"""How often a refused store write is tried again."""
UNAPPLIED_MAX = 5000
"""Messages kept in RAM while the store refuses writes; more than a commune's whole retained schedule."""
REJECTED_FIELD_MAX = 200
REJECTED_MESSAGE_MAX = 500
"""Bounds on what a rejected event copies from the message (a topic may be 64 KiB)."""
PURGE_EVERY_S = 3600.0
"""How often expired bulletins, tombstones and old play records leave the store."""
SWITCH_INTERVAL_S = 0.0005
"""Python's GIL switch interval for the daemon process (default 5 ms). paho's network thread gives up the GIL at
each of the four or five socket reads of a message and then waits up to this long to get it back from a busy
thread: reading 1000 retained bulletins beside a CPU-bound thread took 1.4 to 2.1 s at 5 ms, 0.33 s at 0.5 ms
(0.13 to 0.24 s with the CPU idle)."""
FROM_MEMORY_ACTIONS = frozenset({"stop", "report"})
"""Commands carried out at once even when the store cannot remember them (a full SD card): they change nothing
that needs the store. ``volume`` is a stored setting, so it waits for the store like a bulletin."""
HOLD_BACKLOG_S = 2.0
"""At most this long the backlog waits while an emergency is rendered and started: its speech and chimes then
have the CPU to themselves (bench/backlog.py). Urgent messages are still handled meanwhile."""


def open_store(path: Path) -> Store:
    """Open the store; a corrupt file is moved aside and a new one built (the retained bulletins refill it). A
    disk that cannot take writes (full) does not stop the daemon: the store runs in memory until it can."""
    try:
        return Store(path, in_memory=True)
    except StoreError as exc:
        if not exc.corrupt:
            raise
        stamp = time.strftime("%Y%m%dT%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            part = path.with_name(path.name + suffix)
            if part.exists():
                part.rename(part.with_name(f"{part.name}.corrupt-{stamp}"))
        log.error("store %s is corrupt (%s): moved aside, rebuilding from the retained bulletins", path, exc)
        return Store(path, in_memory=True)


@dataclass(frozen=True)
class _Call:
    """Work handed to the main loop from another thread: a clock jump, a control-socket request, or "stop" (which
    only wakes the loop up to see it is stopping)."""

    what: str
    arg: Any = None


def _urgent(item: Incoming | LinkEvent | _Call) -> bool:
    """The inbox's fast lane: what the network thread peeked as urgent, and the daemon's own stop."""
    return item.urgent if isinstance(item, Incoming) else isinstance(item, _Call) and item.what == "stop"


class Daemon:
    def __init__(self, config: Config, *, pin_factory: object | None = None) -> None:
        self.config = config
        self.tz = ZoneInfo(config.node.timezone)
        self.inbox: Inbox[Incoming | LinkEvent | _Call] = Inbox(_urgent)
        self.started_at = time.time()
        state_dir = Path(config.storage.dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        self.store = open_store(state_dir / "radiod.db")
        self.trust = TrustStore(
            {kid: Path(p) for kid, p in config.security.trusted_keys.items()}, config.security.revoked_keys
        )
        self.station = Station(config, pin_factory=pin_factory)
        self.station.relays.all_off()
        self.station.relays.on_watchdog(self._on_watchdog)
        self.events = EventLog(self.store, config.node.id, self.tz)
        self.media = MediaFetcher(
            MediaCache(config.cache_dir / "media", config.storage.media_max_mb << 20,
                       self.station.profile.audio.sample_rate, config.audio.loudness_lufs, self._needed_media),
            self._bad_media,
        )
        self.maker = ProgrammeMaker(config, self.station.profile, media=self.media)
        self.trusted_time = TrustedTime(self.store)
        prefix, node = config.mqtt.prefix, config.node.id
        self.topics = {
            "state": state_topic(prefix, node),
            "health": health_topic(prefix, node),
            "event": event_topic(prefix, node),
        }
        self.link = MqttLink(
            config.mqtt,
            node,
            subscriptions=subscriptions(prefix, node, config.node.zones),
            state_topic=self.topics["state"],
            version=__version__,
            inbox=self.inbox,  # type: ignore[arg-type]  # the inbox also carries _Call items
            tz=self.tz,
        )
        self.publisher = Publisher(self.store, self.link, self.topics["event"], self.events.wakeup)
        reporter = _Reporter(self)
        self.playout = Playout(
            self.station,
            self._render,
            reporter,
            late_limit_s=config.schedule.grace_s,
            relay_player=RelayLoop(self.station, reporter, config.relay, tz=self.tz,
                                   rate=self.station.profile.audio.sample_rate,
                                   target_lufs=config.audio.loudness_lufs, keep_on=self.station.relays.keep_on),
        )
        self.scheduler = Scheduler(
            self.store,
            self.tz,
            grace_s=config.schedule.grace_s,
            prerender_s=config.schedule.prerender_s,
            quiet_hours=config.schedule.quiet_hours,
            submit=self._submit,
            skip=self._skip,
            parse=parse_bulletin_json,
        )
        self.clock = JumpWatch(lambda delta: self.inbox.put(_Call("clock_jump", delta)))
        self._stopping = threading.Event()
        self.store_error: tuple[float, str] | None = None  # the latest store failure, for health
        self._unapplied: deque[Incoming] = deque(maxlen=UNAPPLIED_MAX)
        # Emergencies (id, rev) and command ids already acted on from memory while the store refused them: when
        # the store takes them later, they are written but not played or carried out a second time.
        self._from_memory: set[tuple[str, int]] = set()
        self._commands_from_memory: set[str] = set()
        # Play states (from the playout thread), held in order while the store refuses them, so a play from memory
        # is not played again after a restart.
        self.plays = PlayRecorder(self.store, UNAPPLIED_MAX, on_error=self._store_refused)
        self.voice_check = VoiceCheck(config.speech.voice, Path(config.speech.voices_dir), config.speech.timeout_s)
        self.techtest = TechnicianTest(
            self.station, self.maker, self.events, voice=config.speech.voice, volume=self._node_volume
        )
        self.control = daemon_server(
            config,
            self.on_main_loop,
            health=self.health_report,
            status=self.status_report,
            test=self._socket_test,
        )
        self.systemd = Notifier()
        self.health_published_at: float | None = None  # the heartbeat check's evidence
        self.watchdog_fired_at: float | None = None  # the relays check warns once the watchdog had to act
        self.emergency_due: tuple[str, float] | None = None  # (bulletin id, monotonic deadline): see HOLD_BACKLOG_S

    # ----- life cycle -----
    def run(self) -> int:
        """Run until SIGTERM/SIGINT or :meth:`request_stop`; returns the exit code."""
        self._install_signals()
        switch_interval = sys.getswitchinterval()  # restored at the end: a test runs daemons in its own process
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        last_alive = float(self.store.get_setting("last_alive") or 0) or None
        self._report_unfinished_plays()
        self.publisher.start()
        # The socket first: a technician's request waits for the main loop, rather than hearing "not running"
        # from a daemon that is starting.
        try:
            self.control.start()
        except RadiodError as exc:  # the loudspeakers matter more than the technician's socket: play on
            log.error("%s: radiod health, status and test cannot reach this daemon", exc)
        self._warm_up_speech()
        self.link.start()
        self.playout.start()
        self.scheduler.start()
        self.scheduler.rebuild(last_alive=last_alive)
        self._fetch_stored_media()
        self.clock.start()
        self.systemd.ready(f"node {self.config.node.id} running")
        log.info("radiod %s node %s running", __version__, self.config.node.id)
        next_health = next_alive = next_purge = time.monotonic()
        try:
            while not self._stopping.is_set():
                self.systemd.ping()  # only this loop pings: if it stalls, systemd restarts the daemon
                now = time.monotonic()
                if now >= next_alive:
                    self._guarded(lambda: self.store.put_setting("last_alive", str(time.time())))
                    next_alive = now + ALIVE_EVERY_S
                if now >= next_purge:
                    self._guarded(lambda: self.store.purge_expired(time.time()))
                    next_purge = now + PURGE_EVERY_S
                if now >= next_health:
                    self._publish_health()
                    next_health = now + self.config.health.interval_s
                wait = min(next_health, next_alive, next_purge) - time.monotonic()
                wait = min(wait, self.systemd.ping_due_in(), STORE_RETRY_S if self._store_waiting() else wait)
                try:
                    holding = self._holding_backlog()
                    item = self.inbox.take(0.02 if holding else max(0.05, wait), urgent_only=holding)
                except queue.Empty:
                    item = None
                if item is not None:
                    self._guarded(lambda item=item: self._handle(item), keep=item)
                if self._store_waiting():
                    self._retry_store()
        finally:
            self._shutdown()
            sys.setswitchinterval(switch_interval)
        return 0

    def _holding_backlog(self) -> bool:
        due = self.emergency_due
        return due is not None and time.monotonic() < due[1]

    def release_backlog(self, bulletin_id: str) -> None:
        """The emergency the backlog waits for has started (or will not play): the backlog goes on. Called
        from the playout thread; one assignment, which the main loop reads at its next turn."""
        due = self.emergency_due
        if due is not None and due[0] == bulletin_id:
            self.emergency_due = None

    def _warm_up_speech(self) -> None:
        """Load the lexicon, the voice and the chimes now, so the first emergency after a boot is not the one
        that pays for it (about 200 ms)."""
        try:
            self.maker.make("Xin chào.", self.config.speech.voice)
        except RadiodError as exc:  # reported again, with a failed event, when a bulletin needs the voice
            log.error("the default voice cannot speak: %s", exc)

    def request_stop(self) -> None:
        self._stopping.set()
        self.inbox.put(_Call("stop"))

    def on_main_loop(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run ``fn`` on the main loop, the one thread that may touch the daemon's state; for the control
        socket's threads, which wait on the returned future (an exception in ``fn`` goes to it too)."""
        future: Future[Any] = Future()
        self.inbox.put(_Call("call", (fn, future)))
        return future

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("signal %s: relays off, stopping", signal.Signals(signum).name)
            self.request_stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        switch_off_on_signals(self.station.relays)  # relays off first, then on_signal
        install_stack_dump()  # SIGUSR1: every thread's stack to the journal

    def _shutdown(self) -> None:
        self.station.relays.all_off()
        self.systemd.stopping()
        self.control.stop()
        self.clock.stop()
        self.scheduler.shutdown()
        self.playout.close()
        self.media.close()
        self._guarded(lambda: self.store.put_setting("last_alive", str(time.time())))
        self.publisher.stop()
        self.link.stop()
        self.station.close()
        self.store.close()
        log.info("radiod stopped")

    # ----- the main loop's work -----
    def _guarded(self, work: Callable[[], object], keep: Incoming | LinkEvent | _Call | None = None) -> None:
        """Run ``work``; if the store refuses it (a full or failing SD card), note it for health and keep the
        message to apply when the store takes writes again, so nothing is lost; meanwhile the node plays on."""
        try:
            work()
        except StoreError as exc:
            log.error("store: %s", exc)
            self._store_refused(str(exc))
            if isinstance(keep, Incoming):
                self._unapplied.append(keep)

    def _store_refused(self, message: str) -> None:
        """Note the latest store failure for health (from any thread)."""
        self.store_error = (time.time(), message)

    def _store_waiting(self) -> bool:
        return bool(self._unapplied or self.plays or self.events.backlog or self.store.unwritable)

    def _retry_store(self) -> None:
        """A store in memory goes onto its file first; then play states and events held in RAM (each in its
        order), then the messages not yet applied."""
        if not self.store.persist() or not self.plays.flush():
            return
        self.events.flush()
        while self._unapplied and not self.events.backlog:
            item = self._unapplied.popleft()
            before = len(self._unapplied)
            self._guarded(lambda item=item: self._handle(item), keep=item)
            if len(self._unapplied) > before:  # refused again: the store is still full
                self._unapplied.rotate(1)  # back to the front, in order
                return

    def _handle(self, item: Incoming | LinkEvent | _Call) -> None:
        if isinstance(item, Incoming):
            self._on_message(item)
        elif isinstance(item, LinkEvent):
            if item.kind == "connected":
                self.events.wakeup.set()
                self._publish_health()
            else:
                self._show_status("ok")
        elif item.what == "clock_jump":
            log.warning("wall clock jumped by %+.1f s: rebuilding the schedule", item.arg)
            self.scheduler.rebuild()
            self.playout.wake()
        elif item.what == "call":
            fn, future = item.arg
            try:
                future.set_result(fn())
            except Exception as exc:  # handed back to the asker, which logs it; the loop goes on
                future.set_exception(exc)

    def _on_message(self, msg: Incoming) -> None:
        if not msg.payload and "/bulletin/" in msg.topic:
            # A retained bulletin cleared by the hub after its exp. Only a signed tombstone cancels.
            log.info("retained message cleared on %s", msg.topic)
            return
        try:
            parsed = parse_message(
                msg.topic,
                msg.payload,
                prefix=self.config.mqtt.prefix,
                node_id=self.config.node.id,
                zones=self.config.node.zones,
                trust=self.trust,
                require_signature=self.config.security.require_signature,
                now=self.trusted_time.now(),  # the hub's newest signed time, if the local clock is behind it
            )
        except Rejected as exc:
            bulletin_id = topic_bulletin_id(msg.topic, self.config.mqtt.prefix)
            self._reject(msg.topic, exc.reason, exc.message, bulletin=bulletin_id)
            return
        if isinstance(parsed, Command) and (ahead := self.trusted_time.too_far_ahead(parsed.iat)):
            self._reject(msg.topic, "schema", ahead, command=parsed.id)
            return
        if msg.payload.lstrip()[:1] != b"{":  # signed by a trusted key: its iat is a lower bound of the real time
            try:
                self.trusted_time.saw(parsed.iat)
            except StoreError as exc:  # kept in memory and written at a later message: the message goes on
                log.error("store: %s", exc)
                self._store_refused(str(exc))
        if isinstance(parsed, Command):
            self._on_command(parsed, msg.topic)
        else:
            self._on_bulletin(parsed, msg.topic)

    def _reject(self, topic: str, reason: str, message: str, **fields: Any) -> None:
        """A ``rejected`` event, cut to a bounded size: a hostile message must not make a large event (they
        wait in RAM when the SD card is full)."""
        for key, value in fields.items():
            if isinstance(value, str):
                fields[key] = value[:REJECTED_FIELD_MAX]
        self.events.emit("rejected", reason=reason, message=message[:REJECTED_MESSAGE_MAX],
                         topic=topic[:REJECTED_FIELD_MAX], **fields)

    def _on_bulletin(self, bulletin: Bulletin, topic: str) -> None:
        now = time.time()
        try:
            result = self.store.apply_bulletin(
                id=bulletin.id, rev=bulletin.rev, exp=bulletin.exp, cancelled=bulletin.cancelled,
                payload=bulletin.raw, now=now,
            )
        except StoreError:
            self._play_from_memory(bulletin, now)
            raise  # the message is kept (see _guarded) and written when the store takes writes again
        if (bulletin.id, bulletin.rev) in self._from_memory:
            self._from_memory.discard((bulletin.id, bulletin.rev))
            if result == "stored":  # accepted and played from memory already
                return
        if result == "duplicate":
            return
        if result == "stale":
            stored = self.store.get_bulletin(bulletin.id)
            have = stored.rev if stored else "?"
            self._reject(topic, "stale_rev", f"rev {bulletin.rev} is not newer than the stored rev {have}",
                         bulletin=bulletin.id, rev=bulletin.rev)
            return
        self.playout.cancel(bulletin.id, reason="cancelled" if bulletin.cancelled else "superseded")
        self._accept(bulletin, now)

    def _play_from_memory(self, bulletin: Bulletin, now: float) -> None:
        """The store refused a new bulletin: an emergency for now is accepted and played at once all the same
        (the loudspeakers must not wait for a full SD card); anything else waits for the store."""
        key = (bulletin.id, bulletin.rev)
        if key in self._from_memory or bulletin.cancelled or not bulletin.schedule.now:
            return
        if bulletin.priority != Priority.EMERGENCY:
            return
        log.warning("%s rev %d: the store refused it; playing the emergency from memory", *key)
        self._from_memory.add(key)
        self._accept(bulletin, now)

    def _accept(self, bulletin: Bulletin, now: float) -> None:
        """Report a new bulletin (or tombstone) as accepted and (un)schedule it."""
        extra: dict[str, Any] = {"next": None if bulletin.cancelled else self._next_occurrence(bulletin, now)}
        if unknown := self.maker.unknown_voice(bulletin):
            extra["warning"] = unknown
        if not bulletin.cancelled and not bulletin.schedule.now and (wrong := self.trusted_time.wrong()):
            held = f"{wrong}: only `now` bulletins play until the clock is set"
            extra["warning"] = f"{extra['warning']}; {held}" if "warning" in extra else held
        self.events.emit("accepted", bulletin=bulletin.id, rev=bulletin.rev, **extra)
        self.media.forget(bulletin.id)  # an earlier rev's recording, if no other bulletin wants it
        if bulletin.cancelled:
            self.scheduler.unschedule(bulletin.id)
        else:
            if bulletin.schedule.now and bulletin.priority == Priority.EMERGENCY and bulletin.status != "test":
                self.emergency_due = (bulletin.id, time.monotonic() + HOLD_BACKLOG_S)
            for media in _files(bulletin):  # fetched at once, well ahead of its time
                self.media.want(media, until=bulletin.exp, bulletin=bulletin.id, rev=bulletin.rev)
            self.scheduler.schedule(bulletin, stored_at=now)
            if not bulletin.schedule.now and bulletin.status != "test":
                self.playout.warm(lambda: self.maker.warm(bulletin.text, self.maker.voice_for(bulletin)))

    def _on_command(self, command: Command, topic: str) -> None:
        try:
            fresh = self.store.remember_command(command.id, command.exp)
        except StoreError:
            if command.action in FROM_MEMORY_ACTIONS and command.id not in self._commands_from_memory:
                log.warning("command %s: the store refused it; carrying out %s from memory", command.id,
                            command.action)
                self._commands_from_memory.add(command.id)
                self._execute(command)
            raise  # the message is kept (see _guarded) and remembered when the store takes writes again
        if command.id in self._commands_from_memory:  # carried out from memory already; now remembered too
            self._commands_from_memory.discard(command.id)
            return
        if not fresh:
            self._reject(topic, "replayed", f"command {command.id} was already executed", command=command.id)
            return
        self._execute(command)

    def _execute(self, command: Command) -> None:
        """Carry out a command not seen before and report it."""
        if command.action == "stop":
            result = "stopped" if self.playout.stop_current() else "nothing was playing"
        elif command.action == "volume":
            level = float(command.level or 0.0)
            self.store.put_setting("volume", str(level))
            result = f"volume {level:.2f}"
        elif command.action == "report":
            self._publish_health()
            result = "health published"
        else:
            result = self._technician_test(command.id)
        self.events.emit("command", action=command.action, result=result, command=command.id)

    # ----- recordings -----
    def _stored_with_media(self) -> list[Bulletin]:
        """Stored bulletins, not expired or cancelled, that carry a recording or a music bed."""
        found = []
        for stored in self.store.bulletins(now=time.time()):
            if '"media"' not in stored.payload and '"bed"' not in stored.payload:  # most are text: not parsed again
                continue
            try:
                bulletin = parse_bulletin_json(stored.payload)
            except Rejected:  # the scheduler's rebuild reports it; it will not play
                continue
            if _files(bulletin):
                found.append(bulletin)
        return found

    def _fetch_stored_media(self) -> None:
        """At start: fetch the recordings of stored bulletins that are not in the cache (the fetcher skips those
        that are)."""
        for bulletin in self._stored_with_media():
            for media in _files(bulletin):
                self.media.want(media, until=bulletin.exp, bulletin=bulletin.id, rev=bulletin.rev)

    def _needed_media(self) -> set[str]:
        """The recordings stored bulletins may still play: the media cache evicts these last. Called on a fetch
        thread; the store takes reads from any thread. A store that cannot be read leaves plain LRU order."""
        try:
            return {media.sha256 for b in self._stored_with_media() for media in _files(b)}
        except StoreError as exc:
            log.error("media cache: cannot read which recordings are still due (%s): least recently used go", exc)
            return set()

    def _bad_media(self, media: Media, message: str, bulletins: dict[str, int]) -> None:
        """A server sent other bytes than the hub signed (from a fetch thread): ``rejected``, ``bad_media``, for
        each bulletin that carries it. The bulletin stays scheduled: a fixed server may still serve it in time."""
        named: list[tuple[str | None, int | None]] = list(bulletins.items()) or [(None, None)]
        for bulletin, rev in named:
            self.events.emit("rejected", reason="bad_media", message=message[:REJECTED_MESSAGE_MAX],
                             bulletin=bulletin, rev=rev)

    # ----- helpers -----
    def _next_occurrence(self, bulletin: Bulletin, now: float) -> str | None:
        if bulletin.schedule.now:
            return self.events.time(now)
        start = dt.datetime.fromtimestamp(now, dt.UTC)
        end = dt.datetime.fromtimestamp(bulletin.exp, dt.UTC)
        upcoming = next(occurrences(bulletin.schedule, self.tz, start, end), None)
        return rfc3339(upcoming.timestamp(), self.tz, ms=False) if upcoming else None

    def _submit(self, req: PlayRequest) -> None:
        """The scheduler's requests to the playout; a scheduled time means nothing on a plainly wrong clock
        (radiod.node.trusted_time), so only ``now`` occurrences play then. Also on APScheduler's thread."""
        if req.occurrence != NOW and (wrong := self.trusted_time.wrong()):
            log.warning("%s %s not played: %s", req.bulletin.id, req.occurrence, wrong)
            return
        self.playout.submit(req)

    def _render(self, bulletin: Bulletin) -> BulletinProgramme:
        """On the playout's render pool: the bulletin's programme at the node's volume, with its own warnings."""
        return self.maker.for_bulletin(bulletin, node_volume=self._node_volume())

    def _node_volume(self) -> float:
        """The level a volume command set, else the config's."""
        return float(self.store.get_setting("volume") or self.config.audio.volume)

    def _skip(self, bulletin: Bulletin, occurrence: str, reason: str) -> None:
        """The scheduler's report of an occurrence that will not play (missed, quiet hours): on the main loop, or
        on APScheduler's thread for a scheduled one due in quiet hours. A ``now`` occurrence is named by the time
        it is reported, as the playout's events name it by the time it was queued."""
        now = time.time()
        self.store.mark_occurrence(bulletin.id, bulletin.rev, occurrence, occurrence_state("skipped"), detail=reason,
                                   at=now)
        occurrence = self.events.time(now) if occurrence == NOW else occurrence
        self.events.emit("skipped", bulletin=bulletin.id, rev=bulletin.rev, occurrence=occurrence, reason=reason,
                         **_lang(bulletin))

    def _report_unfinished_plays(self) -> None:
        """A play that started but never ended: the daemon died mid-play. Report it; it may replay in grace."""
        for play in self.store.unfinished_plays():
            self.store.mark_occurrence(play.id, play.rev, play.occurrence,
                                       occurrence_state("interrupted", "restart"), detail="restart", at=time.time())
            stored = self.store.get_bulletin(play.id)
            try:
                extra = _lang(parse_bulletin_json(stored.payload)) if stored is not None else {}
            except Rejected:  # a payload this version no longer reads: the event goes without its language
                extra = {}
            self.events.emit("interrupted", bulletin=play.id, rev=play.rev, occurrence=play.occurrence,
                             reason="restart", **extra)

    def _on_watchdog(self, on_for: float) -> None:
        log.error("amplifier on for %.0f s: watchdog switched it off", on_for)
        self.watchdog_fired_at = time.time()
        self.playout.stop_current()

    def _technician_test(self, command_id: str) -> str:
        """The MQTT test command: queued on the playout like `radiod test`; each step becomes an event."""
        return self.techtest.queue(self.playout, command=command_id)

    def _socket_test(self, lines: list[str] | None, progress: Progress, done: Callable[[dict[str, Any]], None]) -> str:
        """`radiod test` over the control socket: the same test, each step also sent to the technician's terminal."""
        return self.techtest.queue(self.playout, lines, progress=progress, done=done)

    def _publish_health(self) -> None:
        report = self.health_report()
        self._show_status(report["status"])
        if self.link.publish(self.topics["health"], json.dumps(report, ensure_ascii=False), retain=True) is not None:
            self.health_published_at = time.time()

    def _show_status(self, status: str) -> None:
        """The status LED: fault when health is crit, no broker when offline, else ok (docs/wiring.md)."""
        if status == "crit":
            self.station.relays.show("fault")
        else:
            self.station.relays.show("ok" if self.link.connected else "no_broker")

    def health_report(self) -> dict[str, Any]:
        """The protocol's health report; its checks are radiod.node.health's (run here, on the main loop)."""
        now = time.time()
        checks = tuple(daemon_checks(self._running(now)))
        if wrong := self.trusted_time.wrong():
            checks += (Check("signed_time", "crit", f"{wrong}: only `now` bulletins play until it is set"),)
        current, _queued = self.playout.snapshot()
        upcoming = self.scheduler.next_play()
        return Health(
            node=self.config.node.id,
            ts=self.events.time(now),
            status=worst(c.status for c in checks),
            version=__version__,
            uptime_s=round(now - self.started_at),
            checks=checks,
            playing=Playing(current.bulletin.id, current.bulletin.rev) if current else None,
            next=NextPlay(upcoming[0], rfc3339(upcoming[1], self.tz, ms=False)) if upcoming else None,
            bulletins=self.store.count_active(now),
            outbox=self.store.outbox_size(),
        ).to_dict()

    def _running(self, now: float) -> RunningNode:
        """What the health checks read of this daemon (radiod.node.health knows nothing of the daemon itself)."""
        return RunningNode(
            config=self.config, tz=self.tz, now=now, link=self.link, output=self.station.output,
            relays=self.station.relays, playout=self.playout, voice=self.voice_check,
            next_play=self.scheduler.next_play, last_play=self._last_play, outbox_size=self.store.outbox_size,
            publishing=lambda: self.publisher.alive,
            started_at=self.started_at, health_published_at=self.health_published_at,
            store_error=self.store_error, watchdog_fired_at=self.watchdog_fired_at,
            store_unwritable=self.store.unwritable,
        )

    def _last_play(self) -> PlayRecord | None:
        return next(iter(self.store.last_plays(1)), None)

    def status_report(self) -> dict[str, Any]:
        """What ``radiod status`` shows: now playing, the queue, the next plays, the last ten plays."""
        now, tz = time.time(), self.tz
        current, queued = self.playout.snapshot()
        titles: dict[str, str] = {}
        upcoming: list[dict[str, Any]] = []
        for stored in self.store.bulletins(now=now):
            titles[stored.id] = str(json.loads(stored.payload).get("title", ""))
            at = self.scheduler.next_of(stored.id)
            if at is not None:
                upcoming.append({"bulletin": stored.id, "rev": stored.rev, "at": at, "title": titles[stored.id]})
        upcoming.sort(key=lambda item: item["at"])
        for item in upcoming:
            item["at"] = rfc3339(item["at"], tz, ms=False)

        def view(req: PlayRequest) -> dict[str, Any]:
            b = req.bulletin
            start = rfc3339(req.start_at, tz, ms=False) if req.start_at is not None else "now"
            return {"bulletin": b.id, "rev": b.rev, "priority": b.priority, "title": b.title, "start": start}

        job = self.playout.exclusive_job()
        return {
            "node": self.config.node.id,
            "version": __version__,
            "uptime_s": round(now - self.started_at),
            "broker": "connected" if self.link.connected else f"not connected: {self.link.last_error or 'connecting'}",
            "playing": view(current) if current else ({"job": job} if job else None),
            "queue": [view(q) for q in queued],
            "next": upcoming[:10],
            "last_plays": [
                {**asdict(p), "at": rfc3339(p.at, tz, ms=False), "title": titles.get(p.id, "")}
                for p in self.store.last_plays(10)
            ],
        }


def _files(bulletin: Bulletin) -> list[Media]:
    """What the media cache fetches for ``bulletin``: its recording, its music bed."""
    return [media for media in (bulletin.media, bulletin.bed) if media is not None]


def _lang(bulletin: Bulletin) -> dict[str, str]:
    """The optional ``lang`` field of play events: the bulletin's language, when it is not Vietnamese."""
    return {"lang": bulletin.lang} if bulletin.lang != "vi" else {}


class _Reporter:
    """The playout's reports, turned into occurrence records and events."""

    def __init__(self, daemon: Daemon) -> None:
        self._d = daemon

    def _record(self, req: PlayRequest, outcome: str, reason: str = "") -> None:
        b = req.bulletin
        self._d.plays.mark(PlayRecord(b.id, b.rev, req.occurrence, occurrence_state(outcome, reason), reason,
                                      time.time()))

    def record(self, req: PlayRequest, outcome: str, reason: str = "") -> None:
        """A state without an event (a relay on the air again, or ended while silent): see Reporter.record."""
        self._record(req, outcome, reason)

    def claim(self, req: PlayRequest) -> bool:
        """The exactly-once step: recorded as started unless it already played. A store that refuses the write
        must not silence the loudspeakers: the play goes on, unrecorded."""
        b = req.bulletin
        return self._d.plays.claim(PlayRecord(b.id, b.rev, req.occurrence, "started", "", time.time()))

    def _emit(self, req: PlayRequest, type_: str, **extra: Any) -> None:
        b = req.bulletin
        self._d.events.emit(type_, bulletin=b.id, rev=b.rev, occurrence=self._occurrence(req), **extra,
                            **_lang(b))

    def _occurrence(self, req: PlayRequest) -> str:
        return self._d.events.time(req.enqueued) if req.occurrence == NOW else req.occurrence

    @staticmethod
    def _new_warnings(req: PlayRequest) -> dict[str, str]:
        """The optional ``warning`` field (a protocol extension) with what this play's programme reported and no
        event of this play said yet: on ``started``, and on ``finished`` or ``interrupted`` for a voice that was
        replaced by its fallback in the middle of a streamed programme."""
        fresh = req.warnings[req.warned:]
        req.warned += len(fresh)
        return {"warning": "; ".join(fresh)} if fresh else {}

    def started(self, req: PlayRequest, amp_on: float, audio_start: float) -> None:
        self._d.release_backlog(req.bulletin.id)
        t = self._d.events.time  # the store has it as started since claim()
        self._emit(req, "started", amp_on=t(amp_on), audio_start=t(audio_start), **self._new_warnings(req))

    def finished(self, req: PlayRequest, timeline: Timeline) -> None:
        self._record(req, "finished")
        t = self._d.events.time
        self._emit(
            req, "finished", amp_on=t(timeline.amp_on), audio_start=t(timeline.audio_start),
            audio_end=t(timeline.audio_end), amp_off=t(timeline.amp_off),
            duration_s=round(timeline.audio_end - timeline.audio_start, 3), **self._new_warnings(req),
        )

    def interrupted(self, req: PlayRequest, reason: str, timeline: Timeline | None) -> None:
        self._record(req, "interrupted", reason)
        extra: dict[str, Any] = {"reason": reason, **self._new_warnings(req)}
        if timeline is not None:
            t = self._d.events.time
            extra.update(audio_end=t(timeline.audio_end), amp_off=t(timeline.amp_off))
        self._emit(req, "interrupted", **extra)

    def failed(self, req: PlayRequest, reason: str, message: str) -> None:
        self._d.release_backlog(req.bulletin.id)
        self._record(req, "failed", reason)
        self._emit(req, "failed", reason=reason, message=message)

    def skipped(self, req: PlayRequest, reason: str) -> None:
        self._d.release_backlog(req.bulletin.id)
        self._record(req, "skipped", reason)
        self._emit(req, "skipped", reason=reason)
