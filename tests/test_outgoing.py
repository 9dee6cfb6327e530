"""The protocol's typed messages both ways: what a hub builds is what a node accepts, and what a node sends is what
the hub's tools read back, field for field."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

import pytest

from radiod.clock import parse_rfc3339
from radiod.hub.nodes import node_views
from radiod.hub.operator import describe_event
from radiod.node.mqtt_link import Incoming
from radiod.protocol import builders
from radiod.protocol.enums import Action, EventType, HealthStatus, OccurrenceState, Priority, Status
from radiod.protocol.jws import TrustStore
from radiod.protocol.messages import Bulletin, Command, parse_message
from radiod.protocol.outgoing import Check, Event, Health, NextPlay, Playing, State
from radiod.protocol.topics import (
    bulletin_topic,
    command_topic,
    health_topic,
    node_topic,
    parse_hub_topic,
    parse_node_topic,
    state_topic,
)

P = "radio/yen-hoa"
NOW = 1_795_000_000.0
TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def accept(topic: str, payload: dict) -> Bulletin | Command:
    """What node n07 of zone thon-1 makes of an unsigned payload (a lab node: signatures are jws.py's business)."""
    return parse_message(topic, json.dumps(payload).encode(), prefix=P, node_id="n07", zones=["thon-1"],
                         trust=TrustStore({}), require_signature=False, now=NOW)


def test_enums_are_the_wire_strings() -> None:
    assert json.dumps([Priority.EMERGENCY, Status.EXERCISE, Action.VOLUME]) == '["emergency", "exercise", "volume"]'
    assert [p.rank for p in Priority] == [2, 1, 0]  # emergency plays first
    assert set(OccurrenceState) < set(EventType)  # every occurrence state is reported as an event of that type
    assert "stopped" not in set(OccurrenceState)


def test_a_built_bulletin_is_accepted_as_built() -> None:
    payload = builders.bulletin(
        id="b-1", iat=int(NOW), exp=int(NOW) + 3600, text="Thông báo họp thôn.\nLúc 8 giờ.", targets=["zone-thon-1"],
        schedule=builders.schedule(times=["06:30"], weekdays=[1, 3], repeat=2, gap_s=5), priority="priority",
        voice="vi-north", volume=0.5,
    )
    bulletin = accept(bulletin_topic(P, "zone-thon-1", "b-1"), payload)
    assert isinstance(bulletin, Bulletin)
    assert (bulletin.priority, bulletin.status) == (Priority.PRIORITY, Status.ACTUAL)
    assert bulletin.title == "Thông báo họp thôn."  # the first line
    assert bulletin.schedule is not None and bulletin.schedule.daily is not None
    assert (bulletin.schedule.repeat, bulletin.schedule.gap_s, bulletin.schedule.daily.weekdays) == (2, 5.0, (1, 3))
    assert (bulletin.voice, bulletin.volume, bulletin.chime) == ("vi-north", 0.5, True)


def test_the_tombstone_of_a_bulletin_cancels_it_and_outlives_it() -> None:
    payload = builders.bulletin(id="b-2", iat=int(NOW), exp=int(NOW) + 60, text="Mất điện.", rev=3)
    tombstone = builders.tombstone_for(payload, NOW)
    cancel = accept(bulletin_topic(P, "all", "b-2"), tombstone)
    assert isinstance(cancel, Bulletin) and cancel.cancelled and cancel.rev == 4
    assert cancel.exp >= NOW + builders.TOMBSTONE_MIN_LIFE_S


def test_a_built_command_is_accepted() -> None:
    payload = builders.command(id="c-1", iat=int(NOW), exp=int(NOW) + 60, action="volume", level=0.4,
                               targets=["node-n07"])
    command = accept(command_topic(P, "node-n07"), payload)
    assert isinstance(command, Command) and (command.action, command.level) == (Action.VOLUME, 0.4)


def test_builders_refuse_what_the_protocol_does_not_name() -> None:
    with pytest.raises(ValueError):
        builders.bulletin(id="b", iat=1, exp=2, text="x", priority="urgent")
    with pytest.raises(ValueError):
        builders.command(id="c", iat=1, exp=2, action="reboot")
    with pytest.raises(ValueError):
        builders.schedule(at=["2026-11-23T06:30:00+07:00"], times=["06:30"])


def test_event_round_trip_keeps_every_field_and_unknown_ones() -> None:
    event = Event(EventType.FINISHED, node="n07", ts="2026-11-23T06:30:05.120+07:00", seq=12, bulletin="b-1", rev=2,
                  occurrence="2026-11-23T06:30:00+07:00", amp_on="a", audio_start="b", audio_end="c", amp_off="d",
                  duration_s=4.5)
    wire = json.loads(json.dumps(event.to_dict()))
    assert wire["v"] == 1 and wire["type"] == "finished" and "reason" not in wire  # unset fields are left out
    assert Event.from_dict(wire) == event
    newer = Event.from_dict({**wire, "loudness_lufs": -16.1})
    assert newer.extra == {"loudness_lufs": -16.1} and newer.to_dict()["loudness_lufs"] == -16.1


def test_accepted_always_says_next_even_when_nothing_is_left() -> None:
    assert Event("accepted", bulletin="b", rev=1).to_dict()["next"] is None
    assert "next" not in Event("started", bulletin="b", rev=1).to_dict()


@pytest.mark.parametrize("bad", [[], {"type": "played"}, {"type": "started", "rev": "2"}, {"v": 2, "type": "started"},
                                 {"type": "started", "seq": True}])
def test_an_event_that_is_not_the_protocols_is_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        Event.from_dict(bad)


def test_a_misspelt_event_type_fails_where_it_is_emitted() -> None:
    with pytest.raises(ValueError):
        Event("finshed")
    with pytest.raises(TypeError):
        Event("finished", duration=1.0)  # type: ignore[call-arg]


def test_health_and_state_round_trip() -> None:
    health = Health(node="n07", ts="2026-11-23T06:30:00.000+07:00", status="warn", version="0.9", uptime_s=60,
                    checks=(Check("broker", "ok", "connected"), Check("clock", "warn", "not synchronized")),
                    playing=Playing("b-1", 2), next=NextPlay("b-2", "2026-11-23T17:00:00+07:00"), bulletins=3,
                    outbox=0)
    wire = json.loads(health.to_json())
    assert wire["status"] == "warn" and wire["checks"][1] == {"name": "clock", "status": "warn",
                                                              "detail": "not synchronized"}
    assert wire["playing"] == {"bulletin": "b-1", "rev": 2}
    assert Health.from_dict(wire) == health
    assert json.loads(State(online=False).to_json()) == {"online": False}  # the Last Will
    assert State.from_dict({"online": True, "since": "t", "version": "0.9"}) == State(True, "t", "0.9")


def test_topics_parse_what_they_build() -> None:
    assert parse_node_topic(health_topic(P + "/", "n07"), P) == ("n07", "health")
    assert parse_node_topic(f"{P}/node/n07/debug", P) is None
    assert node_topic(P, "+", "event") == f"{P}/node/+/event"
    parsed = parse_hub_topic(bulletin_topic(P, "zone-thon-1", "b-1"), P)
    assert parsed is not None and (parsed.kind, parsed.target, parsed.id) == ("bulletin", "zone-thon-1", "b-1")
    assert parse_hub_topic(f"{P}/bulletin/zone-Thon/b-1", P) is None


def test_watch_describes_each_node_message() -> None:
    event = Event("rejected", node="n07", ts="T", seq=5, bulletin="b-9", reason="stale_rev", message="rev 1")
    [line] = describe_event(f"{P}/node/n07/event", json.dumps(event.to_dict()).encode(), TZ)
    assert line.split() == ["n07", "#5", "T", "rejected", "b-9", "r", "reason=stale_rev", "message=rev", "1"]
    report = Health("n07", "T", "crit", checks=(Check("audio", "crit", "no device"), Check("broker", "ok", "up")))
    [line] = describe_event(health_topic(P, "n07"), report.to_json().encode(), TZ)
    assert line.split() == ["n07", "health", "crit", "audio=crit", "(no", "device)"]
    [line] = describe_event(state_topic(P, "n07"), b'{"online": false}', TZ)
    assert "OFFLINE" in line
    [line] = describe_event(f"{P}/node/n07/event", b'{"seq": 5}', TZ)  # not an event: shown as it came
    assert line.startswith(f"{P}/node/n07/event: (") and "{\"seq\": 5}" in line


def test_node_views_read_state_and_health_and_skip_strays() -> None:
    report = Health("n01", "2026-11-23T06:30:00+07:00", "warn", checks=(Check("clock", "warn", "drift"),),
                    next=NextPlay("b-1", "2026-11-23T17:00:00+07:00"))
    messages = [
        Incoming(state_topic(P, "n01"), State(True, "2026-11-23T06:00:00+07:00", "0.9").to_json().encode(), True, 0),
        Incoming(health_topic(P, "n01"), report.to_json().encode(), True, 0),
        Incoming(state_topic(P, "n02"), State(online=False).to_json().encode(), True, 0),
        Incoming(state_topic(P, "n03"), b"not json", True, 0),
        Incoming(health_topic(P, "n04"), b'{"status": "great"}', True, 0),
    ]
    now = parse_rfc3339(report.ts) + 30
    views = {v.node: v for v in node_views(messages, P, interval_s=60, now=now)}
    assert set(views) == {"n01", "n02"}
    assert views["n02"].state == "offline"
    assert views["n01"].state == "warn" and views["n01"].failed == [Check("clock", HealthStatus.WARN, "drift")]
    assert views["n01"].next == NextPlay("b-1", "2026-11-23T17:00:00+07:00")
