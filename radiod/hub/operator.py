"""Operator tools that run on the commune hub (or an operator's PC): post, cancel, list, prune, watch, command.

They speak protocol v1 like any other hub tool would: a signed bulletin retained on
``P/bulletin/<target>/<id>``, a tombstone with a higher rev in its place to cancel, a signed command on
``P/command/<target>``. Nothing here runs on a node; the signing key never needs to leave the hub.

A bulletin is checked before it is signed by the very parser the nodes run
(:func:`radiod.protocol.messages.parse_bulletin_json`), so what every node would reject is refused here, at the
operator's desk, with the flag to fix; what only some nodes might lack (a voice, a zone) is a warning.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from radiod.clock import rfc3339
from radiod.config import Config
from radiod.errors import MediaError, RadiodError, Rejected
from radiod.hub.checks import LONG_EXPIRY_DAYS, Code, PostWarning, next_plays, post_warnings
from radiod.hub.nodes import NodeList
from radiod.hub.session import collect_retained, publish_once, request
from radiod.node.mqtt_link import Incoming
from radiod.protocol import builders
from radiod.protocol.enums import Action, EventType, HealthStatus, Priority, Status
from radiod.protocol.jws import TrustStore, decode_payload, sign
from radiod.protocol.messages import MAX_MEDIA_S, MAX_PAYLOAD_BYTES, Bulletin, parse_bulletin_json
from radiod.protocol.outgoing import Event, Health, State
from radiod.protocol.topics import bulletin_topic, bulletins_filter, command_topic, node_topic, parse_node_topic
from radiod.speech.voices import voice_files

if TYPE_CHECKING:
    from radiod.hub.media import MediaInfo

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([mhd])")
_UNITS = {"m": 60, "h": 3600, "d": 86400}
COMMAND_LIFETIME_S = 120
"""A command's ``exp - iat`` (the protocol allows 300): long enough for a node's clock to be a little behind."""
SHOWN_PLAYS = 3
"""How many of the next plays ``post`` echoes."""
_FLAGS = (
    ("schedule.daily.times", "--daily"),
    ("schedule.daily.weekdays", "--weekdays"),
    ("schedule.daily.from", "--from"),
    ("schedule.daily.until", "--until"),
    ("schedule.daily", "--from/--until"),
    ("schedule.at", "--at"),
    ("schedule.repeat", "--repeat"),
    ("schedule.gap_s", "--gap"),
    ("targets", "--zone/--node"),
    ("voice", "--voice"),
    ("volume", "--volume"),
    ("title", "--title"),
    ("text", "the text"),
    ("media", "--media"),
    ("bed", "--bed"),
    ("relay.url", "--relay"),
    ("relay.duration_s", "--duration"),
    ("relay.until", "--until"),
    ("relay", "--relay/--duration/--until"),
    ("lang", "--lang"),
    ("id", "--id"),
    ("rev", "--rev"),
    ("exp", "--expires"),
)
"""The field a node's rejection names (longest first) -> the ``radiod post`` flag that sets it."""


class OperatorError(RadiodError):
    """An operator's request cannot be carried out as given (a bad time, no signing key, unknown id)."""


class AlreadyCancelled(OperatorError):
    """``cancel`` of a bulletin whose latest retained rev is already its tombstone: nothing to publish."""

    def __init__(self, tombstone: dict[str, Any]) -> None:
        self.tombstone = tombstone
        super().__init__(f"{tombstone.get('id')} was already cancelled (rev {tombstone.get('rev')}); nothing published")


@dataclass(frozen=True)
class Answer:
    """One node's answer to a command: its ``command`` event, or the ``rejected`` event that refused it."""

    node: str
    event: Event

    @property
    def final(self) -> bool:
        """The node's last word on the command: a rejection, or a result that is not a test's progress (the
        test command first answers "test queued", then one event per step, then its summary)."""
        event = self.event
        if event.type == EventType.REJECTED:
            return True
        queued = event.action == Action.TEST and (event.result or "").startswith("test queued")
        return event.step is None and not queued


def parse_when(text: str, tz: ZoneInfo, now: float) -> float:
    """A start time: RFC 3339 with offset, ``YYYY-MM-DD HH:MM`` or ``HH:MM`` (the next such time) in ``tz``."""
    text = text.strip()
    try:
        if re.fullmatch(r"\d{1,2}:\d{2}", text):
            hour, minute = (int(x) for x in text.split(":"))
            local_now = dt.datetime.fromtimestamp(now, tz)
            candidate = local_now.replace(hour=hour, minute=minute, second=0, microsecond=0)
            if candidate.timestamp() <= now:
                candidate += dt.timedelta(days=1)
            return candidate.timestamp()
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:
        raise OperatorError(f"cannot read the time {text!r}: use HH:MM, 'YYYY-MM-DD HH:MM' or RFC 3339") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=tz)
    return stamp.timestamp()


def parse_expiry(text: str, tz: ZoneInfo, now: float) -> float:
    """``--expires``: a duration from now (90m, 2h, 7d) or a time as :func:`parse_when` reads it."""
    match = _DURATION.fullmatch(text.strip())
    if match:
        return now + float(match.group(1)) * _UNITS[match.group(2)]
    return parse_when(text, tz, now)


_LENGTH = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_length(text: str, flag: str = "--duration") -> float:
    """A relay's length: ``30m``, ``90s``, ``1h30m``, ``2h``, or plain seconds; OperatorError naming ``flag``."""
    text = text.strip()
    match = _LENGTH.fullmatch(text)
    if text.isdigit():
        seconds = float(text)
    elif text and match:
        hours, minutes, secs = (int(g or 0) for g in match.groups())
        seconds = float(hours * 3600 + minutes * 60 + secs)
    else:
        raise OperatorError(f"{flag} {text}: expected a length such as 30m, 90s or 1h30m")
    if not 0 < seconds <= MAX_MEDIA_S:
        raise OperatorError(f"{flag} {text}: a relay lasts more than 0 s and at most {MAX_MEDIA_S / 3600:g} h")
    return seconds


def relay_for(url: str, duration: str | None, until: str | None) -> dict[str, Any]:
    """The bulletin's ``relay``: the stream and either how long it plays or the local time it ends."""
    if bool(duration) == bool(until):
        raise OperatorError("--relay needs one of --duration (e.g. 30m) and --until HH:MM: how long to relay"
                            if not duration else "--relay takes --duration or --until HH:MM, not both")
    if duration:
        return {"url": url, "duration_s": parse_length(duration)}
    assert until is not None
    return {"url": url, "until": until.strip()}


@dataclass(frozen=True)
class PostRequest:
    """What an operator asked to post, as ``radiod post`` and the console read it; ``media`` and ``relay`` are
    the protocol's objects, ready-made (:mod:`radiod.hub.media` measures a recording)."""

    text: str
    targets: tuple[str, ...] = ("all",)
    at: tuple[str, ...] = ()
    daily: tuple[str, ...] = ()
    weekdays: tuple[int, ...] = ()
    date_from: str | None = None
    date_until: str | None = None
    priority: Priority = Priority.NORMAL
    status: Status = Status.ACTUAL
    voice: str | None = None
    repeat: int = 1
    gap_s: float | None = None
    expires: str | None = None
    title: str | None = None
    chime: bool = True
    volume: float | None = None
    bulletin_id: str | None = None
    rev: int = 1
    author: str | None = None
    lang: str = "vi"
    media: dict[str, Any] | None = None
    relay: dict[str, Any] | None = None
    bed: dict[str, Any] | None = None


@dataclass(frozen=True)
class Plan:
    """A bulletin checked and ready to sign: the payload, the bulletin as every node will read it, and in words
    why it expires when it does (so ``post`` can say so)."""

    payload: dict[str, Any]
    bulletin: Bulletin
    expiry: str


def check(payload: dict[str, Any]) -> Bulletin:
    """``payload`` read by the nodes' own parser; what they would reject is an OperatorError naming the flag."""
    try:
        return parse_bulletin_json(json.dumps(payload, ensure_ascii=False))
    except Rejected as err:
        field, _, problem = err.message.partition(": ")
        flag = next((flag for prefix, flag in _FLAGS if field.startswith(prefix)), field)
        raise OperatorError(f"{flag}: {problem or err.message} (every node would reject it: {err.reason}, "
                            f"field {field})") from None


class Operator:
    """The hub's side of the protocol, configured from the same YAML schema as a node."""

    def __init__(self, config: Config, *, key: Path | None = None, kid: str | None = None) -> None:
        self.config = config
        self.tz = ZoneInfo(config.node.timezone)
        self.prefix = config.mqtt.prefix
        self.kid = kid or config.hub.kid
        key_path = key or (Path(config.hub.signing_key) if config.hub.signing_key else None)
        self.key = key_path

    # ----- building, checking and signing -----
    def plan(self, req: PostRequest, now: float | None = None) -> Plan:
        """The bulletin for ``req``, times resolved in the hub's time zone, checked as the nodes will check it.

        Raises OperatorError naming the flag for anything every node would reject or that could never play.
        """
        now = time.time() if now is None else now
        if not req.daily:
            loose = [flag for flag, given in (("--weekdays", req.weekdays), ("--from", req.date_from),
                                              ("--until", req.date_until)) if given]
            if loose:
                raise OperatorError(f"{', '.join(loose)} only with --daily: without it the bulletin would play "
                                    "once, at once, on every node")
        at: list[str] = []
        if req.at:
            starts = sorted(parse_when(t, self.tz, now) for t in req.at)
            at = [rfc3339(t, self.tz, ms=False) for t in starts]
            length = (req.media or req.relay or {}).get("duration_s", 0)
            default_exp, why = starts[-1] + 3600 + length, "1 h after the last --at time" + (
                " and its recording or relay" if length else "")
        elif req.daily and req.date_until:
            try:
                until = dt.date.fromisoformat(req.date_until)
            except ValueError:
                raise OperatorError(f"--until {req.date_until}: expected YYYY-MM-DD") from None
            default_exp = dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), self.tz).timestamp()
            why = "the end of the --until day"
        elif req.daily:
            first = now
            if req.date_from:
                try:
                    first = max(now, dt.datetime.combine(dt.date.fromisoformat(req.date_from), dt.time(), self.tz)
                                .timestamp())
                except ValueError:
                    raise OperatorError(f"--from {req.date_from}: expected YYYY-MM-DD") from None
            # Not hub.default_expiry_h: a daily notice that silently stopped after a day would be a trap.
            days = self.config.hub.daily_expiry_days
            default_exp = first + days * 86400
            why = f"{days:g} days, hub.daily_expiry_days, as no --until was given"
        else:
            default_exp = now + self.config.hub.default_expiry_h * 3600
            why = f"{self.config.hub.default_expiry_h:g} h, hub.default_expiry_h"
        if req.expires:
            exp, why = parse_expiry(req.expires, self.tz, now), "--expires"
        else:
            exp = default_exp
        if exp <= now:
            raise OperatorError(f"--expires {req.expires} is in the past")
        try:
            schedule = builders.schedule(
                at=at, times=req.daily, weekdays=req.weekdays, date_from=req.date_from, date_until=req.date_until,
                repeat=req.repeat, gap_s=req.gap_s,
            )
        except ValueError as exc:
            raise OperatorError(str(exc)) from None
        payload = builders.bulletin(
            id=req.bulletin_id or new_id(now, self.tz),
            rev=req.rev,
            iat=int(now),
            exp=int(exp),
            priority=req.priority,
            status=req.status,
            targets=req.targets,
            title=req.title or "",
            text=req.text,
            schedule=schedule,
            voice=req.voice,
            chime=req.chime,
            volume=req.volume,
            author=req.author,
            lang=req.lang,
            media=req.media,
            relay=req.relay,
            bed=req.bed,
        )
        bulletin = check(payload)
        if not next_plays(bulletin, self.tz, now, 1):
            flag = "--at" if req.at else "--daily/--from/--until"
            raise OperatorError(f"{flag}: no play between now and the expiry "
                                f"{rfc3339(exp, self.tz, ms=False)} ({why}): nothing would ever be heard")
        return Plan(payload, bulletin, why)

    def media(self, source: str, flag: str = "--media") -> MediaInfo:
        """``--media FILE|URL`` (or ``--bed``, named by ``flag``): a file is checked and kept in the hub's library
        (hub.media_dir, served at hub.media_base_url); a URL is fetched once and measured, and the bulletin points
        at it."""
        from radiod.hub.media import MediaLibrary, media_at

        try:
            if source.startswith(("http://", "https://")):
                return media_at(source)
            base_url = self.config.hub.media_base_url
            if not base_url:
                raise OperatorError(f"{flag} {source}: set hub.media_base_url to the URL the nodes fetch "
                                    f"{self.config.hub.media_dir} from, or give the recording's URL")
            return MediaLibrary(Path(self.config.hub.media_dir), base_url).add(Path(source))
        except MediaError as exc:
            raise OperatorError(f"{flag} {exc}") from None

    def bulletin(self, req: PostRequest, now: float | None = None) -> dict[str, Any]:
        """The checked bulletin payload for ``req`` (see :meth:`plan`)."""
        return self.plan(req, now).payload

    def checks(self, plan: Plan, nodes: NodeList, now: float | None = None) -> list[PostWarning]:
        """What some nodes may not do as the operator expects (see :func:`radiod.hub.checks.post_warnings`),
        against the hub's voices and the quiet hours of its config."""
        now = time.time() if now is None else now
        voices = [p.stem for p in voice_files(Path(self.config.speech.voices_dir))]
        return post_warnings(plan.bulletin, nodes, voices=voices, quiet=self.config.schedule.quiet_hours,
                             tz=self.tz, now=now)

    def warnings(self, plan: Plan, nodes: NodeList, now: float | None = None) -> list[str]:
        """:meth:`checks` in ``radiod post``'s English, naming the flag to change."""
        return [self.warning_text(w) for w in self.checks(plan, nodes, now)]

    def warning_text(self, warning: PostWarning) -> str:
        """One warning in English, naming the flag to change."""
        match warning.code:
            case Code.UNKNOWN_ZONE:
                known = ", ".join(warning.known) or "none"
                return (f"--zone {warning.name}: not in the hub's zones (hub.zones: {known}); only nodes configured "
                        "with it will play it")
            case Code.UNKNOWN_NODE:
                return (f"--node {warning.name}: not in the hub's node list (hub.nodes) and never seen on the broker; "
                        "check the name")
            case Code.UNKNOWN_VOICE:
                return (f"--voice {warning.name}: not in {self.config.speech.voices_dir} (there: "
                        f"{', '.join(warning.known) or 'none'}); a node without it reads the bulletin with its "
                        "default voice")
            case Code.QUIET_HOURS:
                windows = ", ".join(f"{w.start:%H:%M}-{w.end:%H:%M}" for w in warning.windows)
                return (f"{len(warning.plays)} play(s) fall in quiet hours ({windows}), first "
                        f"{_local(warning.plays[0])}: nodes skip normal bulletins then; choose another time or "
                        "--priority priority")
            case Code.NO_END_DATE:
                assert warning.until is not None
                return (f"--daily without --until: it plays every day until it expires, {_local(warning.until)}; "
                        "give --until for the last day")
            case Code.LONG_EXPIRY:
                assert warning.until is not None
                return (f"valid for more than {LONG_EXPIRY_DAYS} days, until {_local(warning.until)}: check "
                        "--expires/--until")

    def understood(self, plan: Plan, nodes: NodeList, now: float | None = None) -> list[str]:
        """What was posted, in the operator's words: when it plays, on how many nodes, until when."""
        now = time.time() if now is None else now
        bulletin = plan.bulletin
        assert bulletin.schedule is not None
        if bulletin.schedule.now:
            when = "now, as each node receives it"
        else:
            plays = next_plays(bulletin, self.tz, now, SHOWN_PLAYS + 1)
            when = ", ".join(_local(t) for t in plays[:SHOWN_PLAYS]) + (", ..." if len(plays) > SHOWN_PLAYS else "")
        if bulletin.schedule.repeat > 1:
            when += f" ({bulletin.schedule.repeat} times each)"
        reached = nodes.reach(bulletin.targets)
        where = ", ".join(bulletin.targets)
        count = f"{len(reached)} known node(s)" if nodes.nodes else "nodes unknown to the hub (set hub.nodes)"
        until = dt.datetime.fromtimestamp(bulletin.exp, self.tz)
        what = []
        if bulletin.media is not None:
            what = [f"what:  a recording, {bulletin.media.duration_s / 60:.1f} min ({bulletin.media.format}), "
                    f"{bulletin.media.url}"]
        elif bulletin.relay is not None:
            length = (f"for {bulletin.relay.duration_s / 60:g} min" if bulletin.relay.duration_s is not None
                      else f"until {bulletin.relay.until:%H:%M}")
            what = [f"what:  relay of {bulletin.relay.url} {length}"]
        if what and bulletin.text:
            what[0] += ", after the text"
        if bulletin.bed is not None:
            what.append(f"bed:   music under the text, {bulletin.bed.url}")
        if bulletin.lang != "vi":
            what.append(f"lang:  {bulletin.lang}")
        return [
            *what,
            f"when:  {when} ({self.tz.key} time)",
            f"where: {where}: {count}" + (f" ({', '.join(sorted(reached))})" if 0 < len(reached) <= 8 else ""),
            f"until: {_local(until)} ({plan.expiry})",
        ]

    def preview(self, plan: Plan, output: Path) -> tuple[list[str], float]:
        """The sentences a node would speak (normalized) and the programme written to ``output`` as a WAV, made
        by the same speech and render path as ``radiod speak``; returns the sentences and the duration in s."""
        from radiod.audio.pcm import write_wav_blocks
        from radiod.node.programme import ProgrammeMaker

        bulletin = plan.bulletin
        assert bulletin.schedule is not None
        maker = ProgrammeMaker(self.config)
        known = {p.stem for p in voice_files(Path(self.config.speech.voices_dir))}
        voice = bulletin.voice if bulletin.voice in known else self.config.speech.voice
        sentences = maker.speaker.sentences(bulletin.text, voice)
        programme = maker.make(bulletin.text, voice, chime=bulletin.chime, repeat=bulletin.schedule.repeat,
                               gap_s=bulletin.schedule.gap_s, volume=bulletin.volume or 1.0)
        write_wav_blocks(output, programme.rate, programme.blocks(8192))
        return sentences, programme.duration_s

    def sign(self, payload: dict[str, Any]) -> str:
        if self.key is None:
            raise OperatorError("no signing key: pass --key FILE or set hub.signing_key in the config")
        return sign(payload, self.key, self.kid)

    # ----- talking to the broker -----
    def post(self, req: PostRequest) -> dict[str, Any]:
        """Check, sign and publish a bulletin, retained, on the topic of each of its targets; returns the payload."""
        return self.publish(self.plan(req))

    def publish(self, plan: Plan) -> dict[str, Any]:
        """Sign and publish a planned bulletin; returns the payload."""
        payload = plan.payload
        token = self.sign(payload)
        if len(token.encode("utf-8")) > MAX_PAYLOAD_BYTES:
            raise OperatorError(f"the text: the signed bulletin is {len(token.encode('utf-8'))} bytes, nodes take "
                                f"at most {MAX_PAYLOAD_BYTES}; shorten it or split it in two")
        messages = [(bulletin_topic(self.prefix, t, payload["id"]), token, True) for t in payload["targets"]]
        publish_once(self.config.mqtt, "post", messages, timeout=10)
        return payload

    def cancel(self, bulletin_id: str) -> dict[str, Any]:
        """Publish a signed tombstone (same id, rev + 1) in place of every retained copy of the bulletin."""
        current = [b for b in self.retained_bulletins() if b["payload"].get("id") == bulletin_id]
        if not current:
            raise OperatorError(f"no retained bulletin with id {bulletin_id!r} on {self.prefix}")
        latest = max((b["payload"] for b in current), key=lambda p: p.get("rev", 0))
        if latest.get("cancelled"):
            raise AlreadyCancelled(latest)
        now = time.time()
        tombstone = builders.tombstone_for(latest, now)
        token = self.sign(tombstone)
        topics = sorted({b["topic"] for b in current})
        publish_once(self.config.mqtt, "cancel", [(t, token, True) for t in topics], timeout=10)
        return tombstone

    def retained_bulletins(self) -> list[dict[str, Any]]:
        """Every retained bulletin on the broker: topic, decoded payload, and whether its signature checks out."""
        trust = self._trust()
        out = []
        for msg in collect_retained(self.config.mqtt, "bulletins", bulletins_filter(self.prefix)):
            if not msg.payload:
                continue
            out.append({"topic": msg.topic, **decode_retained(msg, trust)})
        return out

    def prune(self, now: float | None = None) -> list[str]:
        """Clear every expired retained bulletin and tombstone: an empty retained payload on its topic.

        Nodes ignore an expired bulletin anyway, and keep what they stored (only a signed tombstone cancels), so
        this only stops the broker from handing stale messages to every node at every connect.
        """
        now = time.time() if now is None else now
        topics = sorted({b["topic"] for b in self.retained_bulletins() if _expired(b["payload"], now)})
        if topics:
            publish_once(self.config.mqtt, "prune", [(t, b"", True) for t in topics], timeout=10)
        return topics

    def command(
        self,
        action: Action,
        targets: Sequence[str],
        *,
        level: float | None = None,
        timeout_s: float,
        expected: frozenset[str] = frozenset(),
    ) -> Iterator[Answer]:
        """Sign and send a command, then yield each node's answer as it comes, for ``timeout_s`` seconds or until
        every ``expected`` node has given its last word."""
        now = time.time()
        command_id = f"c-{dt.datetime.fromtimestamp(now, self.tz):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
        payload = builders.command(id=command_id, iat=int(now), exp=int(now) + COMMAND_LIFETIME_S, action=action,
                                   targets=targets, level=level)
        token = self.sign(payload)
        topics = [command_topic(self.prefix, t) for t in targets]
        done: set[str] = set()
        replies = request(self.config.mqtt, str(action), [(t, token) for t in topics],
                          node_topic(self.prefix, "+", "event"), duration_s=timeout_s)
        for msg in replies:
            parsed = parse_node_topic(msg.topic, self.prefix)
            try:
                event = Event.from_dict(json.loads(msg.payload))
            except ValueError:
                continue  # not the protocol's: shown by `radiod watch`, no answer to this command
            # A rejection of a payload the node could not read carries the topic, not the command id.
            ours = event.command == command_id or (event.type == EventType.REJECTED and event.topic in topics)
            if parsed is None or not ours:
                continue
            answer = Answer(parsed[0], event)
            yield answer
            if answer.final:
                done.add(answer.node)
                if expected and expected <= done:
                    return

    def _trust(self) -> TrustStore | None:
        keys = self.config.security.trusted_keys
        return TrustStore({k: Path(v) for k, v in keys.items()}, self.config.security.revoked_keys) if keys else None


def decode_retained(msg: Incoming, trust: TrustStore | None) -> dict[str, Any]:
    """Payload of a retained bulletin for display; 'verified' says whether a trusted key signed it."""
    raw = msg.payload
    if trust is not None:
        try:
            return {"payload": trust.verify(raw), "verified": True}
        except Rejected:
            pass
    parts = raw.split(b".")
    try:
        body = _b64(parts[1]) if len(parts) == 3 else raw
        return {"payload": decode_payload(body), "verified": False}
    except (ValueError, Rejected):
        return {"payload": {}, "verified": False}


def _expired(payload: dict[str, Any], now: float) -> bool:
    exp = payload.get("exp")
    return isinstance(exp, (int, float)) and exp <= now


def bulletin_state(payload: dict[str, Any], now: float) -> str:
    """How ``bulletins`` shows a retained bulletin: cancelled, expired or active."""
    if payload.get("cancelled"):
        return "cancelled"
    return "expired" if _expired(payload, now) or "exp" not in payload else "active"


def _b64(segment: bytes) -> bytes:
    return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))


def _local(t: dt.datetime) -> str:
    return t.strftime("%a %Y-%m-%d %H:%M")


def new_id(now: float, tz: ZoneInfo) -> str:
    """A bulletin id that sorts by time and is unique within the commune: b-20261123-0630-3f9a."""
    stamp = dt.datetime.fromtimestamp(now, tz).strftime("%Y%m%d-%H%M%S")
    return f"b-{stamp}-{secrets.token_hex(2)}"


def describe_schedule(schedule: dict[str, Any] | None) -> str:
    if not schedule:
        return "-"
    if schedule.get("now"):
        text = "now"
    elif "at" in schedule:
        text = "at " + ", ".join(str(t) for t in schedule["at"])
    elif "daily" in schedule:
        daily = schedule["daily"]
        text = "daily " + ",".join(daily.get("times", []))
        if daily.get("weekdays"):
            text += " on " + ",".join(str(d) for d in daily["weekdays"])
    else:
        text = "?"
    if schedule.get("repeat", 1) != 1:
        text += f" x{schedule['repeat']}"
    return text


def describe_event(topic: str, payload: bytes, tz: ZoneInfo) -> Iterator[str]:
    """One readable line per node message, for `radiod watch`; a message that is not the protocol's is shown raw."""
    node, kind = topic.rsplit("/", 2)[-2:] if topic.count("/") >= 2 else ("?", topic)
    try:
        data = json.loads(payload) if payload else {}
        if kind == "state":
            state = State.from_dict(data)
            yield f"{node:<8} state   {'online' if state.online else 'OFFLINE'} since {state.since or '?'}"
        elif kind == "health":
            health = Health.from_dict(data)
            failing = [f"{c.name}={c.status} ({c.detail})" for c in health.checks if c.status != HealthStatus.OK]
            yield f"{node:<8} health  {health.status} {'; '.join(failing)}".rstrip()
        elif kind == "event":
            event = Event.from_dict(data)
            skip = {"v", "node", "seq", "ts", "type", "bulletin", "rev"}
            details = " ".join(f"{k}={v}" for k, v in event.to_dict().items() if k not in skip)
            where = f"{event.bulletin} r{event.rev if event.rev is not None else ''}" if event.bulletin else ""
            seq = event.seq if event.seq is not None else "?"
            yield f"{node:<8} #{seq:<5} {event.ts} {event.type:<11} {where} {details}"
    except ValueError as exc:  # not JSON, or not what the protocol says a node sends
        yield f"{topic}: ({exc}) {payload[:80]!r}"


def targets_from(zones: Sequence[str], nodes: Sequence[str]) -> tuple[str, ...]:
    targets = tuple(f"zone-{z}" for z in zones) + tuple(f"node-{n}" for n in nodes)
    return targets or ("all",)
