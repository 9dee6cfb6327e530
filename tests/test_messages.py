"""Protocol v1 validation: what a node accepts, and what it refuses with which reason and message."""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from radiod.errors import Rejected
from radiod.protocol.jws import TrustStore, generate_keypair, sign
from radiod.protocol.messages import Bulletin, Command, Daily, Schedule, parse_bulletin_json, parse_message
from radiod.protocol.topics import (
    bulletin_topic,
    command_topic,
    event_topic,
    health_topic,
    state_topic,
    subscriptions,
    topic_bulletin_id,
)

P = "radio/yen-hoa"
VN = timezone(timedelta(hours=7))
NOW = datetime(2026, 11, 22, 6, 0, tzinfo=VN).timestamp()
TOPIC = f"{P}/bulletin/zone-thon-1/cut-2026-11-23"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("keys")
    generate_keypair("hub-1", out)
    generate_keypair("rogue", out)
    return out


@pytest.fixture(scope="module")
def trust(keys: Path) -> TrustStore:
    return TrustStore({"hub-1": keys / "hub-1.pub.pem"})


def bulletin(**changes: Any) -> dict[str, Any]:
    """A valid bulletin for node n07 in zone thon-1; ``changes`` set fields, a value of ... removes one."""
    obj: dict[str, Any] = {
        "v": 1,
        "kind": "bulletin",
        "id": "cut-2026-11-23",
        "rev": 1,
        "iat": NOW - 60,
        "exp": NOW + 3 * 86400,
        "priority": "normal",
        "status": "actual",
        "targets": ["zone-thon-1"],
        "title": "Lịch cắt điện",
        "text": "Thông báo: ngày 23 tháng 11 cắt điện từ 7 giờ đến 11 giờ.",
        "schedule": {"at": ["2026-11-23T06:30:00+07:00", "2026-11-22T17:00:00+07:00"]},
    }
    for key, value in changes.items():
        if value is ...:
            del obj[key]
        else:
            obj[key] = value
    return obj


def command(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "v": 1,
        "kind": "command",
        "id": "cmd-1",
        "iat": NOW - 5,
        "exp": NOW + 55,
        "targets": ["node-n07"],
        "action": "stop",
    }
    obj.update(changes)
    return obj


def parse(
    obj: dict[str, Any] | bytes,
    trust: TrustStore,
    topic: str = TOPIC,
    *,
    require_signature: bool = False,
    now: float = NOW,
) -> Bulletin | Command:
    payload = obj if isinstance(obj, bytes) else json.dumps(obj, ensure_ascii=False).encode()
    return parse_message(
        topic,
        payload,
        prefix=P,
        node_id="n07",
        zones=["thon-1", "cho"],
        trust=trust,
        require_signature=require_signature,
        now=now,
    )


def rejected(obj: dict[str, Any] | bytes, trust: TrustStore, topic: str = TOPIC, **kw: Any) -> tuple[str, str]:
    with pytest.raises(Rejected) as err:
        parse(obj, trust, topic, **kw)
    return err.value.reason, err.value.message


def signed(obj: dict[str, Any], keys: Path, kid: str = "hub-1") -> bytes:
    return sign(obj, keys / f"{kid}.key.pem", kid).encode()


# --- accepted ---


def test_a_signed_bulletin_is_accepted_with_every_field(keys: Path, trust: TrustStore) -> None:
    obj = bulletin(voice="vi-south", chime=False, volume=0.8, lang="vi-VN", extension={"ignored": True})
    b = parse(signed(obj, keys), trust, require_signature=True)
    assert isinstance(b, Bulletin)
    assert (b.id, b.rev, b.iat, b.exp) == ("cut-2026-11-23", 1, NOW - 60, NOW + 3 * 86400)
    assert (b.priority, b.status, b.targets, b.title) == ("normal", "actual", ("zone-thon-1",), "Lịch cắt điện")
    assert (b.lang, b.voice, b.chime, b.volume, b.cancelled) == ("vi-VN", "vi-south", False, 0.8, False)
    assert b.text == obj["text"]
    # at times: sorted, de-duplicated, as UTC instants
    assert b.schedule == Schedule(
        at=(datetime(2026, 11, 22, 10, 0, tzinfo=UTC), datetime(2026, 11, 22, 23, 30, tzinfo=UTC))
    )
    assert json.loads(b.raw) == obj  # the payload JSON itself, not the JWS


def test_defaults_of_optional_fields(trust: TrustStore) -> None:
    b = parse(bulletin(), trust)
    assert isinstance(b, Bulletin)
    assert (b.lang, b.voice, b.chime, b.volume, b.cancelled) == ("vi", None, True, None, False)


def test_a_daily_schedule_with_repeats(trust: TrustStore) -> None:
    daily = {"times": ["17:00", "06:30", "06:30"], "weekdays": [5, 1, 1], "from": "2026-11-23", "until": "2026-12-31"}
    b = parse(bulletin(schedule={"daily": daily, "repeat": 3, "gap_s": 5}), trust)
    assert isinstance(b, Bulletin)
    assert b.schedule == Schedule(
        daily=Daily(
            times=(time(6, 30), time(17, 0)),
            weekdays=(1, 5),
            from_date=date(2026, 11, 23),
            until_date=date(2026, 12, 31),
        ),
        repeat=3,
        gap_s=5.0,
    )
    b = parse(bulletin(schedule={"daily": {"times": ["00:00", "23:59"]}}), trust)
    assert isinstance(b, Bulletin) and b.schedule is not None and b.schedule.daily is not None
    assert b.schedule.daily.weekdays == (1, 2, 3, 4, 5, 6, 7)
    assert (b.schedule.repeat, b.schedule.gap_s) == (1, 3.0)


def test_an_emergency_now(trust: TrustStore) -> None:
    b = parse(
        bulletin(priority="emergency", schedule={"now": True}, targets=["all"]),
        trust,
        f"{P}/bulletin/all/cut-2026-11-23",
    )
    assert isinstance(b, Bulletin) and b.schedule == Schedule(now=True)


def test_rfc3339_variants(trust: TrustStore) -> None:
    times = ["2026-11-23T06:30:00Z", "2026-11-23t06:30:00.5z", "2026-11-23 13:30:00+07:00", "2026-11-23T01:30:00-05:00"]
    b = parse(bulletin(schedule={"at": times}), trust)
    assert isinstance(b, Bulletin) and b.schedule is not None
    assert b.schedule.at == (
        datetime(2026, 11, 23, 6, 30, tzinfo=UTC),
        datetime(2026, 11, 23, 6, 30, 0, 500000, tzinfo=UTC),
    )


def test_past_at_times_are_accepted(trust: TrustStore) -> None:
    """A retained bulletin arrives again on every reconnect; which times are still to play is the scheduler's call."""
    b = parse(bulletin(schedule={"at": ["2026-11-01T06:30:00+07:00"]}), trust)
    assert isinstance(b, Bulletin)


def test_a_zone_node_target_the_node_is_in(trust: TrustStore) -> None:
    b = parse(bulletin(targets=["zone-thon-2", "node-n07"]), trust, f"{P}/bulletin/zone-thon-2/cut-2026-11-23")
    assert isinstance(b, Bulletin)


def test_a_tombstone_needs_only_what_identifies_it(trust: TrustStore) -> None:
    minimal = {k: bulletin()[k] for k in ("v", "kind", "id", "iat", "exp", "targets")}
    b = parse({**minimal, "rev": 2, "cancelled": True}, trust)
    assert isinstance(b, Bulletin)
    assert (b.cancelled, b.rev, b.schedule, b.text, b.title, b.priority) == (True, 2, None, "", "", "normal")
    # a sloppy copy of the bulletin does not stop the cancel; valid fields are kept
    b = parse(bulletin(rev=2, cancelled=True, priority="urgent", schedule="garbage", title="Hủy"), trust)
    assert isinstance(b, Bulletin)
    assert (b.cancelled, b.priority, b.title, b.schedule) == (True, "normal", "Hủy", None)


def test_commands(trust: TrustStore) -> None:
    topic = f"{P}/command/node-n07"
    c = parse(command(), trust, topic)
    assert isinstance(c, Command) and (c.id, c.action, c.level, c.targets) == ("cmd-1", "stop", None, ("node-n07",))
    c = parse(command(action="volume", args={"level": 0.5}), trust, topic)
    assert isinstance(c, Command) and c.level == 0.5
    c = parse(command(action="volume", args={"level": 1}), trust, topic)
    assert isinstance(c, Command) and c.level == 1.0
    c = parse(command(action="report", iat=NOW - 100, exp=NOW + 200), trust, topic)  # exactly 300 s
    assert isinstance(c, Command) and c.action == "report"


def test_unsigned_json_only_when_the_config_allows_it(keys: Path, trust: TrustStore) -> None:
    assert isinstance(parse(bulletin(), trust, require_signature=False), Bulletin)
    assert rejected(bulletin(), trust, require_signature=True) == (
        "bad_signature",
        "unsigned JSON; this node requires a signed JWS (security.require_signature)",
    )
    # a JWS is still verified when unsigned JSON is allowed
    assert rejected(signed(bulletin(), keys, "rogue"), trust, require_signature=False)[0] == "unknown_key"


def test_parse_bulletin_json_gives_back_the_stored_bulletin(keys: Path, trust: TrustStore) -> None:
    b = parse(signed(bulletin(), keys), trust, require_signature=True)
    assert isinstance(b, Bulletin)
    assert parse_bulletin_json(b.raw) == b


# --- rejected: the order of checks ---


def test_size_comes_first(trust: TrustStore) -> None:
    assert rejected(b"x" * 65537, trust) == ("too_large", "payload is 65537 bytes, the limit is 65536")
    assert rejected(b"x" * 65536, trust)[0] == "bad_signature"


def test_signature_before_json(keys: Path, trust: TrustStore) -> None:
    assert rejected(b"{not json", trust, require_signature=True)[0] == "bad_signature"
    assert rejected(b"{not json", trust)[0] == "bad_json"
    assert rejected(signed(bulletin(), keys, "rogue"), trust)[0] == "unknown_key"


def test_schema_before_schedule_before_targeting_before_expiry(trust: TrustStore) -> None:
    everything_wrong = bulletin(priority="urgent", schedule={}, targets=["zone-elsewhere"], exp=NOW - 1, iat=NOW - 9)
    assert rejected(everything_wrong, trust)[0] == "schema"
    assert rejected({**everything_wrong, "priority": "normal"}, trust)[0] == "bad_schedule"
    assert rejected({**everything_wrong, "priority": "normal", "schedule": {"now": True}}, trust)[0] == "not_targeted"
    ok_targets = {**everything_wrong, "priority": "normal", "schedule": {"now": True}, "targets": ["zone-thon-1"]}
    assert rejected(ok_targets, trust)[0] == "expired"


# --- rejected: schema ---


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"priority": "urgent"}, "priority: expected one of normal, priority, emergency, got 'urgent'"),
        ({"status": "live"}, "status: expected one of actual, exercise, test, got 'live'"),
        ({"v": 2}, "v: this node speaks protocol 1, got 2"),
        ({"v": True}, "v: this node speaks protocol 1, got true"),
        ({"v": ...}, "v: required"),
        ({"kind": "command"}, "kind: expected 'bulletin' on a bulletin topic, got 'command'"),
        ({"id": "other"}, "id: 'other' is not the topic's id 'cut-2026-11-23'"),
        ({"id": 7}, "id: expected a string, got 7"),
        ({"id": "cut 2026"}, "id: expected 1 to 64 of A-Z a-z 0-9 . _ -, got 'cut 2026'"),
        ({"rev": 0}, "rev: expected 1 to 9007199254740991, got 0"),
        ({"rev": True}, "rev: expected an integer, got true"),
        ({"rev": 1.0}, "rev: expected an integer, got 1.0"),
        ({"rev": "2"}, "rev: expected an integer, got '2'"),
        ({"rev": 2**64}, "rev: expected 1 to 9007199254740991, got 18446744073709551616"),
        ({"iat": "2026-11-22T06:00:00+07:00"}, "iat: expected a NumericDate (seconds since the epoch), got '2026-11"),
        ({"exp": ...}, "exp: required"),
        ({"exp": 1e300}, "exp: expected 0 to 2.53371e+11, got 1e+300"),
        ({"exp": NOW - 60}, "exp: 2026-11-21T22:59:00+00:00 is not after iat 2026-11-21T22:59:00+00:00"),
        ({"targets": "zone-thon-1"}, "targets: expected a list, got 'zone-thon-1'"),
        ({"targets": []}, "targets: empty"),
        (
            {"targets": ["zone-thon-1", "zone-Thôn"]},
            "targets[1]: expected all, zone-<name> or node-<name>, a name being [a-z0-9][a-z0-9_-]{0,31}, "
            "got 'zone-Thôn'",
        ),
        ({"title": "x" * 201}, "title: 201 characters, at most 200"),
        ({"title": ...}, "title: required"),
        ({"text": "ệ" * 20001}, "text: 20001 characters, at most 20000"),
        ({"text": unicodedata.normalize("NFD", "Thông báo")}, "text: not Unicode NFC"),
        ({"text": " \n"}, "text: empty, nothing to read out"),
        ({"text": ["a"]}, "text: expected a string, got a list"),
        ({"lang": "vi_VN"}, "lang: expected a BCP 47 language tag such as vi or vi-VN, got 'vi_VN'"),
        ({"voice": "../../etc/passwd"}, "voice: expected a voice id (letters, digits, . _ -), got '../../etc/passwd'"),
        ({"chime": "yes"}, "chime: expected true or false, got 'yes'"),
        ({"volume": 1.5}, "volume: expected 0 to 1, got 1.5"),
        ({"volume": False}, "volume: expected a number, got false"),
        ({"volume": None}, "volume: expected a number, got null"),
        ({"cancelled": "yes"}, "cancelled: expected true or false, got 'yes'"),
        ({"schedule": ...}, "schedule: required"),
    ],
)
def test_schema_rejections_name_the_field(trust: TrustStore, changes: dict[str, Any], message: str) -> None:
    reason, text = rejected(bulletin(**changes), trust)
    assert (reason, text[: len(message)]) == ("schema", message)


def test_an_escaped_lone_surrogate_is_not_text(trust: TrustStore) -> None:
    payload = json.dumps(bulletin(text="a\ud800b")).encode()  # valid JSON: "a\\ud800b"
    assert rejected(payload, trust)[1].startswith("text: contains an unpaired surrogate")


def test_the_text_limit_counts_characters_not_bytes(trust: TrustStore) -> None:
    assert isinstance(parse(bulletin(text="ệ" * 20000), trust), Bulletin)  # 60000 bytes of UTF-8


def test_a_tombstone_still_needs_its_identity(trust: TrustStore) -> None:
    assert rejected(bulletin(cancelled=True, targets=...), trust) == ("schema", "targets: required")
    assert rejected(bulletin(cancelled=True, rev=0), trust)[0] == "schema"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "bulletin"}, "kind: expected 'command' on a command topic, got 'bulletin'"),
        ({"action": "reboot"}, "action: expected one of stop, test, volume, report, got 'reboot'"),
        ({"exp": NOW + 296}, "exp: a command lives at most 300 s after iat, this one 301 s"),
        ({"action": "volume"}, "args.level: required"),
        ({"action": "volume", "args": {"level": 2}}, "args.level: expected 0 to 1, got 2"),
        ({"action": "volume", "args": {"level": "50%"}}, "args.level: expected a number, got '50%'"),
        ({"args": [1]}, "args: expected an object, got a list"),
    ],
)
def test_command_rejections(trust: TrustStore, changes: dict[str, Any], message: str) -> None:
    assert rejected(command(**changes), trust, f"{P}/command/node-n07") == ("schema", message)


# --- rejected: schedule ---


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("daily", "schedule: expected an object, got 'daily'"),
        ({}, "schedule: needs exactly one of now, at, daily; got none"),
        (
            {"now": True, "at": ["2026-11-23T06:30:00+07:00"]},
            "schedule: needs exactly one of now, at, daily; got now, at",
        ),
        ({"now": False}, "schedule.now: expected true, got false"),
        ({"at": []}, "schedule.at: empty"),
        ({"at": "2026-11-23T06:30:00+07:00"}, "schedule.at: expected a list"),
        ({"at": ["2026-11-23T06:30:00"]}, "schedule.at[0]: expected an RFC 3339 time with offset"),
        ({"at": ["2026-11-23"]}, "schedule.at[0]: expected an RFC 3339 time with offset"),
        ({"at": ["2026-11-23T06:30+07:00"]}, "schedule.at[0]: expected an RFC 3339 time with offset"),
        ({"at": ["２０２６-11-23T06:30:00+07:00"]}, "schedule.at[0]: expected an RFC 3339"),  # fullwidth digits
        ({"at": ["2026-02-30T06:30:00+07:00"]}, "schedule.at[0]: '2026-02-30T06:30:00+07:00' is not a valid time"),
        ({"at": ["2026-11-23T06:30:60+07:00"]}, "schedule.at[0]: '2026-11-23T06:30:60+07:00' is not a valid time"),
        ({"at": ["2026-11-23T06:30:00+24:00"]}, "schedule.at[0]: expected an RFC 3339 time with offset"),
        ({"at": ["2026-11-23T06:30:00+05:75"]}, "schedule.at[0]: expected an RFC 3339 time with offset"),
        ({"at": ["0001-01-01T00:00:00+01:00"]}, "schedule.at[0]: '0001-01-01T00:00:00+01:00' is not a valid time"),
        ({"now": True, "repeat": 0}, "schedule.repeat: expected 1 to 10, got 0"),
        ({"now": True, "repeat": 11}, "schedule.repeat: expected 1 to 10, got 11"),
        ({"now": True, "repeat": 2.0}, "schedule.repeat: expected an integer, got 2.0"),
        ({"now": True, "gap_s": -1}, "schedule.gap_s: expected 0 to 600, got -1"),
        ({"daily": ["06:30"]}, "schedule.daily: expected an object, got a list"),
        ({"daily": {}}, "schedule.daily.times: required"),
        ({"daily": {"times": []}}, "schedule.daily.times: empty"),
        ({"daily": {"times": ["6:30"]}}, "schedule.daily.times[0]: expected \"HH:MM\" (00:00 to 23:59), got '6:30'"),
        ({"daily": {"times": ["24:00"]}}, 'schedule.daily.times[0]: expected "HH:MM"'),
        ({"daily": {"times": ["06:30:00"]}}, 'schedule.daily.times[0]: expected "HH:MM"'),
        ({"daily": {"times": ["06:30"], "weekdays": [0]}}, "schedule.daily.weekdays[0]: expected 1 to 7, got 0"),
        ({"daily": {"times": ["06:30"], "weekdays": [1, 8]}}, "schedule.daily.weekdays[1]: expected 1 to 7, got 8"),
        ({"daily": {"times": ["06:30"], "weekdays": []}}, "schedule.daily.weekdays: empty"),
        (
            {"daily": {"times": ["06:30"], "from": "2026-13-01"}},
            "schedule.daily.from: '2026-13-01' is not a valid date",
        ),
        ({"daily": {"times": ["06:30"], "until": "23/11/2026"}}, 'schedule.daily.until: expected a date "YYYY-MM-DD"'),
        (
            {"daily": {"times": ["06:30"], "from": "2026-12-01", "until": "2026-11-30"}},
            "schedule.daily: from 2026-12-01 is after until 2026-11-30",
        ),
    ],
)
def test_schedule_rejections(trust: TrustStore, schedule: Any, message: str) -> None:
    reason, text = rejected(bulletin(schedule=schedule), trust)
    assert (reason, text[: len(message)]) == ("bad_schedule", message)


# --- rejected: targeting, topic, expiry ---


def test_targets_must_include_the_topic_target_and_this_node(trust: TrustStore) -> None:
    assert rejected(bulletin(targets=["all"]), trust) == (
        "not_targeted",
        "targets [all] do not include the topic's target 'zone-thon-1'",
    )
    topic = f"{P}/bulletin/zone-thon-9/cut-2026-11-23"
    assert rejected(bulletin(targets=["zone-thon-9", "node-n08"]), trust, topic) == (
        "not_targeted",
        "targets [zone-thon-9, node-n08] include none of this node's [all, zone-thon-1, zone-cho, node-n07]",
    )
    assert rejected(command(targets=["node-n08"]), trust, f"{P}/command/node-n08")[0] == "not_targeted"
    many = [f"node-n{i}" for i in range(100, 2000)]
    message = rejected(command(targets=many), trust, f"{P}/command/node-n100")[1]
    assert message.startswith("targets [node-n100, node-n101,") and "... 1900 in all]" in message
    assert len(message) < 300


@pytest.mark.parametrize(
    "topic",
    [
        "radio/other/bulletin/all/cut-2026-11-23",
        f"{P}/bulletin/all",
        f"{P}/bulletin/all/",
        f"{P}/bulletin/all/bad id",
        f"{P}/bulletin/zone-Thôn/cut-2026-11-23",
        f"{P}/bulletin/everyone/cut-2026-11-23",
        f"{P}/command/node-n07/extra",
        f"{P}/node/n07/state",
    ],
)
def test_a_message_on_a_topic_that_is_not_a_bulletin_or_command_topic(trust: TrustStore, topic: str) -> None:
    assert rejected(bulletin(), trust, topic)[0] == "not_targeted"


def test_expired_at_exp(trust: TrustStore) -> None:
    b = bulletin(exp=NOW + 10)
    assert isinstance(parse(b, trust, now=NOW + 9.5), Bulletin)
    assert rejected(b, trust, now=NOW + 10) == (
        "expired",
        "expired at 2026-11-21T23:00:10+00:00 (now 2026-11-21T23:00:10+00:00)",
    )
    assert rejected(command(), trust, f"{P}/command/node-n07", now=NOW + 55)[0] == "expired"


# --- topics ---


def test_subscriptions_cover_every_target_of_the_node() -> None:
    assert subscriptions("radio/yen-hoa/", "n07", ["thon-1"]) == [
        "radio/yen-hoa/bulletin/all/+",
        "radio/yen-hoa/command/all",
        "radio/yen-hoa/bulletin/zone-thon-1/+",
        "radio/yen-hoa/command/zone-thon-1",
        "radio/yen-hoa/bulletin/node-n07/+",
        "radio/yen-hoa/command/node-n07",
    ]


def test_topic_builders() -> None:
    assert bulletin_topic(P, "all", "b1") == "radio/yen-hoa/bulletin/all/b1"
    assert command_topic(P, "zone-cho") == "radio/yen-hoa/command/zone-cho"
    assert state_topic(P, "n07") == "radio/yen-hoa/node/n07/state"
    assert health_topic(P, "n07") == "radio/yen-hoa/node/n07/health"
    assert event_topic(P, "n07") == "radio/yen-hoa/node/n07/event"


def test_topic_bulletin_id_for_rejected_events() -> None:
    assert topic_bulletin_id(TOPIC, P) == "cut-2026-11-23"
    assert topic_bulletin_id(f"{P}/command/all", P) is None
    assert topic_bulletin_id(f"{P}/bulletin/all/bad id", P) is None


# --- nothing but Rejected ---

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
FIELDS = [*bulletin().keys(), "cancelled", "voice", "volume", "chime", "lang"]
SCHEDULE_FIELDS = ["now", "at", "daily", "repeat", "gap_s"]
DAILY_FIELDS = ["times", "weekdays", "from", "until"]


def _mutate(obj: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    return {**obj, key: value}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    changes=st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=4),
    schedule_changes=st.dictionaries(st.sampled_from(SCHEDULE_FIELDS), json_values, max_size=3),
    daily_changes=st.dictionaries(st.sampled_from(DAILY_FIELDS), json_values, max_size=3),
    use_daily=st.booleans(),
)
def test_any_field_value_gives_a_message_or_rejected(
    trust: TrustStore,
    changes: dict[str, Any],
    schedule_changes: dict[str, Any],
    daily_changes: dict[str, Any],
    use_daily: bool,
) -> None:
    daily = {"times": ["06:30"], "weekdays": [1], "from": "2026-11-01", "until": "2026-12-01", **daily_changes}
    schedule = {"daily": daily} if use_daily else {"at": ["2026-11-23T06:30:00+07:00"]}
    obj = bulletin(schedule={**schedule, **schedule_changes})
    obj.update(changes)
    try:
        result = parse(obj, trust)
    except Rejected as err:
        assert err.reason in {"schema", "bad_schedule", "not_targeted", "expired"}
    else:
        assert isinstance(result, Bulletin)


@settings(max_examples=300, deadline=None)
@given(changes=st.dictionaries(st.sampled_from(["action", "args", "iat", "exp", "targets", "id"]), json_values))
def test_any_command_gives_a_command_or_rejected(trust: TrustStore, changes: dict[str, Any]) -> None:
    try:
        result = parse(command(**changes), trust, f"{P}/command/all")
    except Rejected as err:
        assert err.reason in {"schema", "not_targeted", "expired"}
    else:
        assert isinstance(result, Command)


@settings(max_examples=300, deadline=None)
@given(value=json_values, topic=st.sampled_from([TOPIC, f"{P}/command/all", f"{P}/bulletin/all/x"]))
def test_any_json_gives_rejected(trust: TrustStore, value: Any, topic: str) -> None:
    with pytest.raises(Rejected):
        parse(json.dumps(value).encode(), trust, topic)


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=300), topic=st.text(max_size=60), require_signature=st.booleans())
def test_any_bytes_on_any_topic_give_rejected(
    trust: TrustStore, payload: bytes, topic: str, require_signature: bool
) -> None:
    with pytest.raises(Rejected):
        parse(payload, trust, topic, require_signature=require_signature)
    with pytest.raises(Rejected):
        parse(payload, trust, require_signature=require_signature)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
        b'{"v": 1, "rev": ' + b"9" * 20_000 + b"}",
        b'{"v": 1e999}',
        b'{"v": NaN}',
        b'{"v": 1, "v": 1}',
    ],
)
def test_hostile_json_is_bad_json(trust: TrustStore, payload: bytes) -> None:
    assert rejected(payload, trust)[0] == "bad_json"


# --- media and relay (optional fields, docs/protocol.md "Media and relay") ---

MEDIA = {"url": "http://hub.lan/media/x.mp3", "sha256": "a" * 64, "bytes": 1000, "duration_s": 60, "format": "mp3"}
RELAY = {"url": "http://hub.lan:8000/radio", "duration_s": 1800}


def test_a_recording_or_a_relay_needs_no_text_and_keeps_its_language(trust: TrustStore) -> None:
    recorded = parse(bulletin(media=MEDIA, text=..., lang="tyz"), trust)
    assert isinstance(recorded, Bulletin) and recorded.media is not None and recorded.media.sha256 == "a" * 64
    assert (recorded.text, recorded.lang) == ("", "tyz")
    relayed = parse(bulletin(relay=RELAY, text=...), trust)
    assert isinstance(relayed, Bulletin) and relayed.relay is not None and relayed.relay.url == RELAY["url"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"text": ...}, "text: required"),
        ({"media": MEDIA, "relay": RELAY}, "relay: a bulletin carries media or relay, not both"),
        ({"relay": {**RELAY, "until": "07:00"}}, "relay: needs exactly one of duration_s, until; got duration_s"),
        ({"relay": {"url": RELAY["url"]}}, "relay: needs exactly one of duration_s, until; got none"),
        ({"media": {**MEDIA, "sha256": "A" * 64}}, "media.sha256: expected 64 lower-case hex digits"),
        ({"media": {**MEDIA, "format": "webm"}}, "media.format: expected one of mp3, aac, m4a, ogg, opus, flac, wav"),
        ({"media": {**MEDIA, "url": "ftp://hub.lan/x.mp3"}}, "media.url: expected an http:// or https:// URL"),
        ({"media": {**MEDIA, "duration_s": 0}}, "media.duration_s: expected more than 0 seconds"),
        ({"media": {**MEDIA, "bytes": 0}}, "media.bytes: expected 1 to 2147483648, got 0"),
    ],
)
def test_media_and_relay_rejections_name_the_field(trust: TrustStore, changes: dict[str, Any], message: str) -> None:
    reason, text = rejected(bulletin(**changes), trust)
    assert (reason, text[: len(message)]) == ("schema", message)
