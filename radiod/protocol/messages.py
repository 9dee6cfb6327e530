"""Protocol v1 messages: turn an MQTT topic and payload into a :class:`Bulletin` or :class:`Command`, or refuse it.

Everything a node acts on passes through :func:`parse_message`, so this is where untrusted bytes stop. The
checks run in a fixed order (topic, size, signature, JSON, schema, schedule, targeting, expiry) and the first
failure is the one reported, as :class:`~radiod.errors.Rejected` with a protocol rejection code and a message
naming the field, because the operator at the hub sees it in a ``rejected`` event and has to fix the message.
Nothing a payload contains can raise anything else. Freshness of ``(id, rev)`` and command replay need the
store, so they are checked there, not here. ``docs/protocol.md`` lists every rule as implemented.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from enum import StrEnum
from typing import Any, TypeVar

from radiod.config import NAME_PATTERN
from radiod.errors import Rejected
from radiod.protocol.enums import Action, Priority, Status
from radiod.protocol.jws import TrustStore, decode_payload
from radiod.protocol.topics import ID_PATTERN, TARGET_PATTERN, node_targets, parse_hub_topic

T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)

MAX_PAYLOAD_BYTES = 64 * 1024
VOICE_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
"""Voice ids name files in ``voices/``: no path separators, no dot files."""
LANG_PATTERN = r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*"
"""BCP 47 well-formedness (not registry validity): alphanumeric subtags of 1 to 8 characters."""
MAX_TITLE = 200
MAX_TEXT = 20000
MAX_REV = 2**53 - 1
"""The largest integer every JSON implementation (and SQLite) holds exactly."""
MAX_NUMERIC_DATE = 253370764800
"""9999-01-01T00:00:00Z: later instants cannot be turned into local dates and times."""
MAX_COMMAND_LIFETIME_S = 300
MAX_REPEAT = 10
MEDIA_FORMATS = ("mp3", "aac", "m4a", "ogg", "opus", "flac", "wav")
"""Containers and codecs a node decodes (with PyAV); ``format`` names the file's, as its extension would."""
MAX_MEDIA_BYTES = 2**31
"""2 GiB: a 4-hour WAV at 44.1 kHz stereo. The node's media cache is bounded further (storage.media_max_mb)."""
MAX_MEDIA_S = 6 * 3600.0
"""A recording or a relay longer than six hours is a mistake: it would hold the loudspeakers for a day's work."""
URL_PATTERN = r"https?://[^\s]{1,2000}"
DEFAULT_GAP_S = 3.0
MAX_GAP_S = 600.0
"""Not in the spec: a longer silence between repeats is certainly a mistake, and would hold the amplifier on."""

_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"(?:([Zz])|([+-])([01][0-9]|2[0-3]):([0-5][0-9]))"
)
_TARGET_EXPECTED = f"all, zone-<name> or node-<name>, a name being {NAME_PATTERN}"
_HHMM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")


@dataclass(frozen=True)
class Daily:
    """A daily schedule: local times in the node's time zone, on some ISO weekdays, between two dates."""

    times: tuple[time, ...]  # sorted, no duplicates
    weekdays: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)  # ISO: 1 = Monday; sorted, no duplicates
    from_date: date | None = None  # inclusive, a date in the node's time zone
    until_date: date | None = None  # inclusive


@dataclass(frozen=True)
class Schedule:
    """When a bulletin plays: exactly one of ``now``, ``at`` and ``daily``; each occurrence plays ``repeat`` times."""

    now: bool = False
    at: tuple[datetime, ...] = ()  # aware, UTC, sorted, no duplicates
    daily: Daily | None = None
    repeat: int = 1
    gap_s: float = DEFAULT_GAP_S


@dataclass(frozen=True)
class Media:
    """A recorded programme the node fetches from ``url`` and plays after the bulletin's text, if any.

    Its integrity is the signed ``sha256`` of the file: the URL may be any server, even an untrusted one.
    ``duration_s`` is the hub's measurement, for scheduling and reports; the node plays what the file holds.
    """

    url: str
    sha256: str  # 64 lower-case hex digits
    bytes: int
    duration_s: float
    format: str  # one of MEDIA_FORMATS


@dataclass(frozen=True)
class Relay:
    """A live stream (the district or provincial radio) played for ``duration_s``, or until the local ``until``
    time of day (its next occurrence after the play starts); exactly one of the two is set."""

    url: str
    duration_s: float | None = None
    until: time | None = None


@dataclass(frozen=True)
class Bulletin:
    """A bulletin as the node acts on it; a tombstone is one with ``cancelled=True`` and no schedule."""

    id: str
    rev: int
    iat: float
    exp: float
    targets: tuple[str, ...]
    priority: Priority
    status: Status
    title: str
    text: str
    schedule: Schedule | None  # None only on a tombstone
    lang: str = "vi"
    voice: str | None = None
    chime: bool = True
    volume: float | None = None
    cancelled: bool = False
    author: str | None = None  # who posted it on the hub's console, for logs and reports
    media: Media | None = None  # a recording played after the text (if any)
    relay: Relay | None = None  # a live stream played after the text (if any)
    bed: Media | None = None  # music under the spoken text, ducked while it speaks (text only)
    raw: str = ""  # the payload JSON as received, for the store


@dataclass(frozen=True)
class Command:
    """A command; ``level`` is set for ``volume`` only."""

    id: str
    iat: float
    exp: float
    targets: tuple[str, ...]
    action: Action
    level: float | None = None
    raw: str = ""


class _Invalid(Exception):
    """One field is wrong; the phase that reads it decides the rejection reason (schema or bad_schedule)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")


# --- the pipeline ---


def parse_message(
    topic: str,
    payload: bytes,
    *,
    prefix: str,
    node_id: str,
    zones: Sequence[str],
    trust: TrustStore,
    require_signature: bool,
    now: float,
) -> Bulletin | Command:
    """Validate one MQTT message and return what the node should act on; raise :class:`Rejected` otherwise.

    The topic is checked first: a message on a topic that is not ``P/bulletin/<target>/<id>`` or
    ``P/command/<target>`` is not for this node (``not_targeted``) and nothing in it matters.
    """
    parsed = parse_hub_topic(topic, prefix)
    if parsed is None:
        raise Rejected("not_targeted", f"topic {topic[:200]!r} is not a bulletin or command topic under {prefix!r}")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise Rejected("too_large", f"payload is {len(payload)} bytes, the limit is {MAX_PAYLOAD_BYTES}")
    data = _verified(payload, trust, require_signature)
    obj = decode_payload(data)
    raw = data.decode("utf-8")
    message = _bulletin(obj, raw, parsed.id) if parsed.kind == "bulletin" else _command(obj, raw)
    _check_targets(message.targets, parsed.target, node_id, zones)
    if message.exp <= now:
        raise Rejected("expired", f"expired at {_utc(message.exp)} (now {_utc(now)})")
    return message


def parse_bulletin_json(raw: str) -> Bulletin:
    """A stored bulletin (its ``raw`` payload) back into a :class:`Bulletin`, to rebuild schedules at start.

    Its signature, topic and targets were checked when it arrived and the store keeps only the payload, so only
    JSON, schema and schedule are checked again; expiry is the caller's business.
    """
    data = raw.encode("utf-8", "surrogatepass")  # a lone surrogate then fails as bad_json, not UnicodeEncodeError
    return _bulletin(decode_payload(data), raw, None)


def _verified(payload: bytes, trust: TrustStore, require_signature: bool) -> bytes:
    """The payload JSON bytes: from a verified JWS, or as they are when unsigned JSON is allowed."""
    if payload.lstrip()[:1] == b"{":
        if require_signature:
            raise Rejected(
                "bad_signature", "unsigned JSON; this node requires a signed JWS (security.require_signature)"
            )
        return payload
    return trust.verified_payload(payload)


def _check_targets(targets: tuple[str, ...], topic_target: str, node_id: str, zones: Sequence[str]) -> None:
    if topic_target not in targets:
        raise Rejected("not_targeted", f"targets {_few(targets)} do not include the topic's target {topic_target!r}")
    mine = node_targets(node_id, zones)
    if not set(mine) & set(targets):
        raise Rejected("not_targeted", f"targets {_few(targets)} include none of this node's {_few(mine)}")


def _few(items: Sequence[str], n: int = 8) -> str:
    """A list for a message: an event is no place for a thousand targets."""
    shown = ", ".join(items[:n])
    return f"[{shown}, ... {len(items)} in all]" if len(items) > n else f"[{shown}]"


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


# --- bulletins and commands (reason: schema, or bad_schedule for what is inside schedule) ---


def _bulletin(obj: dict[str, Any], raw: str, topic_id: str | None) -> Bulletin:
    """Schema, then schedule; ``topic_id`` is the id the payload must carry (None: a stored payload)."""
    try:
        bulletin_id, iat, exp, targets = _common(obj, "bulletin")
        if topic_id is not None and bulletin_id != topic_id:
            raise _Invalid("id", f"{bulletin_id!r} is not the topic's id {topic_id!r}")
        rev = _get(obj, "rev", lambda f, v: _int(f, v, 1, MAX_REV))
        cancelled = _get(obj, "cancelled", _bool, default=False)
        ident: dict[str, Any] = {"id": bulletin_id, "rev": rev, "iat": iat, "exp": exp, "targets": targets, "raw": raw}
        if cancelled:
            # A tombstone must get through even if it carries a stale or sloppy copy of the bulletin: only
            # what identifies it is required, the rest is kept when valid (for logs) and otherwise defaulted.
            return Bulletin(
                **ident,
                priority=_lenient(obj, "priority", _priority, Priority.NORMAL),
                status=_lenient(obj, "status", _status, Status.ACTUAL),
                title=_lenient(obj, "title", _title, ""),
                text="",
                schedule=None,
                cancelled=True,
            )
        priority = _get(obj, "priority", _priority)
        status = _get(obj, "status", _status)
        title = _get(obj, "title", _title)
        media = _get(obj, "media", _media, default=None)
        relay = _get(obj, "relay", _relay, default=None)
        if media is not None and relay is not None:
            raise _Invalid("relay", "a bulletin carries media or relay, not both")
        # text is what is read out; with a recording or a relay it is an optional spoken introduction
        bed = _get(obj, "bed", _media, default=None)
        text = _get(obj, "text", _text, default=None if media or relay or bed else _REQUIRED) or ""
        if bed is not None and (not text or media or relay):  # a bed lies under speech: text, and nothing else
            raise _Invalid("bed", "music under speech needs text, and no media or relay")
        lang = _get(
            obj,
            "lang",
            lambda f, v: _str(f, v, pattern=LANG_PATTERN, expected="a BCP 47 language tag such as vi or vi-VN"),
            default="vi",
        )
        voice = _get(
            obj,
            "voice",
            lambda f, v: _str(f, v, pattern=VOICE_PATTERN, expected="a voice id (letters, digits, . _ -)"),
            default=None,
        )
        chime = _get(obj, "chime", _bool, default=True)
        volume = _get(obj, "volume", lambda f, v: _number(f, v, 0.0, 1.0), default=None)
        author = _lenient(obj, "author", _title, None)  # for people only: never a reason to refuse a bulletin
        if "schedule" not in obj:
            raise _Invalid("schedule", "required")
    except _Invalid as err:
        raise Rejected("schema", str(err)) from err
    try:
        schedule = _schedule(obj["schedule"])
    except _Invalid as err:
        raise Rejected("bad_schedule", str(err)) from err
    return Bulletin(
        **ident,
        priority=priority,
        status=status,
        title=title,
        text=text,
        schedule=schedule,
        lang=lang,
        voice=voice,
        chime=chime,
        volume=volume,
        author=author,
        media=media,
        relay=relay,
        bed=bed,
    )


def _media(field: str, value: Any) -> Media:
    obj = _object(field, value)
    url = _get(obj, f"{field}.url", _url, key="url")
    sha256 = _get(
        obj, f"{field}.sha256",
        lambda f, v: _str(f, v, pattern="[0-9a-f]{64}", expected="64 lower-case hex digits (the file's SHA-256)"),
        key="sha256",
    )
    size = _get(obj, f"{field}.bytes", lambda f, v: _int(f, v, 1, MAX_MEDIA_BYTES), key="bytes")
    duration_s = _get(obj, f"{field}.duration_s", _media_seconds, key="duration_s")
    fmt = _get(
        obj, f"{field}.format",
        lambda f, v: v if v in MEDIA_FORMATS else _fail(f, f"expected one of {', '.join(MEDIA_FORMATS)}", v),
        key="format",
    )
    return Media(url=url, sha256=sha256, bytes=size, duration_s=duration_s, format=fmt)


def _relay(field: str, value: Any) -> Relay:
    obj = _object(field, value)
    url = _get(obj, f"{field}.url", _url, key="url")
    given = [k for k in ("duration_s", "until") if k in obj]
    if len(given) != 1:
        raise _Invalid(field, f"needs exactly one of duration_s, until; got {', '.join(given) or 'none'}")
    if given == ["until"]:
        return Relay(url=url, until=_hhmm(f"{field}.until", obj["until"]))
    return Relay(url=url, duration_s=_media_seconds(f"{field}.duration_s", obj["duration_s"]))


def _url(field: str, value: Any) -> str:
    return _str(field, value, pattern=URL_PATTERN, expected="an http:// or https:// URL")


def _media_seconds(field: str, value: Any) -> float:
    seconds = _number(field, value, 0.0, MAX_MEDIA_S)
    if seconds <= 0:
        raise _Invalid(field, "expected more than 0 seconds")
    return seconds


def _command(obj: dict[str, Any], raw: str) -> Command:
    try:
        command_id, iat, exp, targets = _common(obj, "command")
        if exp - iat > MAX_COMMAND_LIFETIME_S:
            lifetime = f"{exp - iat:g}"
            raise _Invalid(
                "exp", f"a command lives at most {MAX_COMMAND_LIFETIME_S} s after iat, this one {lifetime} s"
            )
        action = _get(obj, "action", lambda f, v: _enum(f, v, Action))
        args = _get(obj, "args", _object, default={})
        level = None
        if action == "volume":
            level = _get(args, "args.level", lambda f, v: _number(f, v, 0.0, 1.0), key="level")
    except _Invalid as err:
        raise Rejected("schema", str(err)) from err
    return Command(id=command_id, iat=iat, exp=exp, targets=targets, action=action, level=level, raw=raw)


def _common(obj: dict[str, Any], kind: str) -> tuple[str, float, float, tuple[str, ...]]:
    """The fields every message has: v, kind (as the topic says), id, iat, exp (after iat), targets."""
    _get(obj, "v", lambda f, v: v if type(v) is int and v == 1 else _fail(f, "this node speaks protocol 1", v))
    _get(obj, "kind", lambda f, v: v if v == kind else _fail(f, f"expected {kind!r} on a {kind} topic", v))
    message_id = _get(obj, "id", lambda f, v: _str(f, v, pattern=ID_PATTERN, expected="1 to 64 of A-Z a-z 0-9 . _ -"))
    iat = _get(obj, "iat", _numeric_date)
    exp = _get(obj, "exp", _numeric_date)
    if exp <= iat:
        raise _Invalid("exp", f"{_utc(exp)} is not after iat {_utc(iat)}")
    targets = _get(obj, "targets", _targets)
    return message_id, iat, exp, targets


# --- schedule (reason: bad_schedule) ---


def _schedule(value: Any) -> Schedule:
    obj = _object("schedule", value)
    given = [k for k in ("now", "at", "daily") if k in obj]
    if len(given) != 1:
        raise _Invalid("schedule", f"needs exactly one of now, at, daily; got {', '.join(given) or 'none'}")
    repeat = _get(obj, "schedule.repeat", lambda f, v: _int(f, v, 1, MAX_REPEAT), default=1, key="repeat")
    gap_s = _get(obj, "schedule.gap_s", lambda f, v: _number(f, v, 0.0, MAX_GAP_S), default=DEFAULT_GAP_S, key="gap_s")
    if given == ["now"]:
        if obj["now"] is not True:
            _fail("schedule.now", "expected true", obj["now"])
        return Schedule(now=True, repeat=repeat, gap_s=gap_s)
    if given == ["at"]:
        items = _nonempty_list("schedule.at", obj["at"])
        at = tuple(sorted({_rfc3339(f"schedule.at[{i}]", v) for i, v in enumerate(items)}))
        return Schedule(at=at, repeat=repeat, gap_s=gap_s)
    return Schedule(daily=_daily(obj["daily"]), repeat=repeat, gap_s=gap_s)


def _daily(value: Any) -> Daily:
    obj = _object("schedule.daily", value)
    items = _get(obj, "schedule.daily.times", _nonempty_list, key="times")
    times = tuple(sorted({_hhmm(f"schedule.daily.times[{i}]", v) for i, v in enumerate(items)}))
    weekdays: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)
    if "weekdays" in obj:
        days = _nonempty_list("schedule.daily.weekdays", obj["weekdays"])
        weekdays = tuple(sorted({_int(f"schedule.daily.weekdays[{i}]", v, 1, 7) for i, v in enumerate(days)}))
    from_date = _get(obj, "schedule.daily.from", _date, default=None, key="from")
    until_date = _get(obj, "schedule.daily.until", _date, default=None, key="until")
    if from_date and until_date and from_date > until_date:
        raise _Invalid("schedule.daily", f"from {from_date} is after until {until_date}")
    return Daily(times=times, weekdays=weekdays, from_date=from_date, until_date=until_date)


# --- field readers: each returns the value as the node uses it, or raises _Invalid naming the field ---

_REQUIRED: Any = object()


def _get(
    obj: dict[str, Any], field: str, read: Callable[[str, Any], T], *, default: Any = _REQUIRED, key: str = ""
) -> T:
    """Read ``obj[key or field]`` with ``read``; ``field`` is the dotted name used in messages."""
    key = key or field
    if key not in obj:
        if default is _REQUIRED:
            raise _Invalid(field, "required")
        return default
    return read(field, obj[key])


def _lenient(obj: dict[str, Any], field: str, read: Callable[[str, Any], T], default: T) -> T:
    """Like :func:`_get`, but a missing or invalid value gives ``default`` instead of a rejection."""
    try:
        return _get(obj, field, read, default=default)
    except _Invalid:
        return default


def _fail(field: str, expected: str, value: Any) -> Any:
    raise _Invalid(field, f"{expected}, got {_describe(value)}")


def _describe(value: Any) -> str:
    """A value as an operator would recognize it in the JSON, shortened."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:40]) + "..."
    if isinstance(value, int) and value.bit_length() > 128:
        return "a very large integer"
    return repr(value)


def _int(field: str, value: Any, lo: int, hi: int) -> int:
    if type(value) is not int:  # bool is a subclass of int, and 1.0 is not an integer here
        return _fail(field, "expected an integer", value)
    if not lo <= value <= hi:
        return _fail(field, f"expected {lo} to {hi}", value)
    return value


def _number(field: str, value: Any, lo: float, hi: float) -> float:
    if type(value) not in (int, float) or (type(value) is float and not math.isfinite(value)):
        return _fail(field, "expected a number", value)
    if not lo <= value <= hi:  # compares ints exactly, before float() could overflow
        return _fail(field, f"expected {lo:g} to {hi:g}", value)
    return float(value)


def _numeric_date(field: str, value: Any) -> float:
    if type(value) not in (int, float):
        return _fail(field, "expected a NumericDate (seconds since the epoch)", value)
    return _number(field, value, 0, MAX_NUMERIC_DATE)


def _bool(field: str, value: Any) -> bool:
    return value if isinstance(value, bool) else _fail(field, "expected true or false", value)


def _object(field: str, value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else _fail(field, "expected an object", value)


def _nonempty_list(field: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        return _fail(field, "expected a list", value)
    if not value:
        raise _Invalid(field, "empty")
    return value


def _str(field: str, value: Any, *, max_len: int | None = None, pattern: str = "", expected: str = "") -> str:
    if not isinstance(value, str):
        return _fail(field, "expected a string", value)
    if not _encodable(value):
        raise _Invalid(field, "contains an unpaired surrogate (\\ud800-\\udfff), not Unicode text")
    if max_len is not None and len(value) > max_len:
        raise _Invalid(field, f"{len(value)} characters, at most {max_len}")
    if pattern and not re.fullmatch(pattern, value):
        return _fail(field, f"expected {expected}", value)
    return value


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _nfc(field: str, value: Any, max_len: int) -> str:
    text = _str(field, value, max_len=max_len)
    if not unicodedata.is_normalized("NFC", text):
        raise _Invalid(field, "not Unicode NFC (compose the text before sending it)")
    return text


def _title(field: str, value: Any) -> str:
    return _nfc(field, value, MAX_TITLE)


def _text(field: str, value: Any) -> str:
    text = _nfc(field, value, MAX_TEXT)
    if not text.strip():
        raise _Invalid(field, "empty, nothing to read out")
    return text


def _enum(field: str, value: Any, choices: type[E]) -> E:
    """A member of the StrEnum ``choices``; the message lists them as the protocol spells them."""
    if isinstance(value, str) and value in choices.__members__.values():
        return choices(value)
    return _fail(field, f"expected one of {', '.join(choices)}", value)


def _priority(field: str, value: Any) -> Priority:
    return _enum(field, value, Priority)


def _status(field: str, value: Any) -> Status:
    return _enum(field, value, Status)


def _targets(field: str, value: Any) -> tuple[str, ...]:
    items = _nonempty_list(field, value)
    targets = [_str(f"{field}[{i}]", v, pattern=TARGET_PATTERN, expected=_TARGET_EXPECTED) for i, v in enumerate(items)]
    return tuple(dict.fromkeys(targets))


def _rfc3339(field: str, value: Any) -> datetime:
    """An RFC 3339 date-time with an offset (or Z), as an aware UTC datetime."""
    text = _str(field, value)
    m = _RFC3339.fullmatch(text)
    if not m:
        return _fail(field, "expected an RFC 3339 time with offset, e.g. 2026-11-22T06:30:00+07:00", value)
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    micro = int((m.group(7) or ".0")[1:7].ljust(6, "0"))
    offset = timedelta(0) if m.group(8) else timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
    if m.group(9) == "-":
        offset = -offset
    try:
        local = datetime(year, month, day, hour, minute, second, micro, tzinfo=timezone(offset))
        return local.astimezone(UTC)
    except (ValueError, OverflowError) as err:  # 2026-02-30, 24:00, :60, an offset of 24 h, year 0 or 9999 + offset
        raise _Invalid(field, f"{text!r} is not a valid time ({err})") from err


def _hhmm(field: str, value: Any) -> time:
    m = _HHMM.fullmatch(value) if isinstance(value, str) else None
    return time(int(m.group(1)), int(m.group(2))) if m else _fail(field, 'expected "HH:MM" (00:00 to 23:59)', value)


def _date(field: str, value: Any) -> date:
    m = _DATE.fullmatch(value) if isinstance(value, str) else None
    if not m:
        return _fail(field, 'expected a date "YYYY-MM-DD"', value)
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError as err:
        raise _Invalid(field, f"{value!r} is not a valid date ({err})") from err
