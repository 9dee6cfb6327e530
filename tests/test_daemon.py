"""The node on the wire, end to end: a real broker, signed bulletins, the real daemon, events as the hub sees them."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
import wave
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from harness import LONG, PREFIX, SHORT, EventLog, Hub, ProcessNode, ThreadNode, ms, node_config, wait_for

from radiod.clock import parse_rfc3339, rfc3339
from radiod.config import REPO_ROOT
from radiod.hub.localbroker import Broker
from radiod.hub.operator import PostRequest
from radiod.hub.session import publish_once
from radiod.node.store import Store
from radiod.protocol.jws import generate_keypair, sign

HCM = ZoneInfo("Asia/Ho_Chi_Minh")


def raw_bulletin(bulletin_id: str, text: str = SHORT, **fields: Any) -> dict[str, Any]:
    now = int(time.time())
    payload = {
        "v": 1, "kind": "bulletin", "id": bulletin_id, "rev": 1, "iat": now, "exp": now + 3600,
        "priority": "normal", "status": "actual", "targets": ["all"], "title": "thử", "text": text,
        "schedule": {"now": True},
    }
    payload.update(fields)
    return payload


def publish(hub: Hub, topic_target: str, bulletin_id: str, payload: str | bytes) -> None:
    publish_once(hub.config().mqtt, "test", [(f"{PREFIX}/bulletin/{topic_target}/{bulletin_id}", payload, True)])


def seqs(events: list[dict[str, Any]]) -> list[int]:
    return [e["seq"] for e in events]


def test_end_to_end_play(hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode]) -> None:
    node = start_node()
    bid = hub.post(SHORT, targets=("zone-thon-1",), chime=True)["id"]
    finished = events.wait("finished", bulletin=bid)[0]
    accepted, started = events.of(type_="accepted")[0], events.of(type_="started")[0]
    assert seqs([accepted, started, finished]) == [1, 2, 3]
    # Every time has milliseconds and an offset; the sequence is the relay sequence.
    times = {k: finished[k] for k in ("amp_on", "audio_start", "audio_end", "amp_off")}
    assert all(len(v.split(".")[1]) == 9 for v in times.values()), times  # ".mmm+07:00"
    amp_on, audio_start, audio_end, amp_off = (ms(v) for v in times.values())
    assert amp_on + 200 <= audio_start < audio_end <= amp_off - 200  # the profile's 0.2 s warm-up and hold
    assert started["audio_start"] == finished["audio_start"]
    assert finished["duration_s"] * 1000 == pytest.approx(audio_end - audio_start, abs=10)
    # The file sink wrote the play, named with the bulletin id, as long as the reported audio.
    (wav,) = node.out_dir.glob(f"{bid}-r1*.wav")
    with wave.open(str(wav)) as w:
        assert w.getnframes() / w.getframerate() == pytest.approx(finished["duration_s"], abs=0.1)


def test_unsigned_forged_and_untrusted_bulletins_are_refused(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode], tmp_path: Path
) -> None:
    node = start_node()
    publish(hub, "all", "unsigned", json.dumps(raw_bulletin("unsigned")))
    rogue_key, _ = generate_keypair("hub-1", tmp_path / "rogue")  # a stranger's key that claims the hub's kid
    publish(hub, "all", "forged", sign(raw_bulletin("forged"), rogue_key, "hub-1"))
    other_key, _ = generate_keypair("hub-9", tmp_path / "other")
    publish(hub, "all", "untrusted", sign(raw_bulletin("untrusted"), other_key, "hub-9"))
    rejected = {e["bulletin"]: e for e in events.wait("rejected", count=3)}
    assert rejected["unsigned"]["reason"] == "bad_signature"
    assert rejected["forged"]["reason"] == "bad_signature"
    assert rejected["untrusted"]["reason"] == "unknown_key"
    assert all(e["message"] for e in rejected.values())
    # Nothing played, nothing was stored, and the node still plays a good bulletin.
    good = hub.post(SHORT)["id"]
    events.wait("finished", bulletin=good)
    assert [e["bulletin"] for e in events.of(type_="started")] == [good]
    assert node.daemon.store.get_bulletin("forged") is None


def test_replay_of_id_and_rev_is_ignored(hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode]) -> None:
    start_node()
    payload = raw_bulletin("once")
    token = sign(payload, hub.key, hub.kid)
    publish(hub, "all", "once", token)
    events.wait("finished", bulletin="once")
    publish(hub, "all", "once", token)  # the same (id, rev) again: nothing happens
    older = sign({**payload, "rev": 0 + 1, "text": "Khác."}, hub.key, hub.kid)  # same rev, other content
    publish(hub, "all", "once", older)
    stale = events.wait("rejected", bulletin="once")[0]
    assert stale["reason"] == "stale_rev"
    time.sleep(1.0)
    assert len(events.of(type_="started", bulletin="once")) == 1
    assert len(events.of(type_="accepted", bulletin="once")) == 1


def test_tombstone_sent_while_the_node_is_down(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode], tmp_path: Path
) -> None:
    config = node_config(hub, tmp_path)
    node = start_node(config)
    at = time.time() + 20
    bid = hub.post(SHORT, at=(rfc3339(at),))["id"]
    accepted = events.wait("accepted", bulletin=bid)[0]
    assert accepted["next"] == rfc3339(int(at), HCM, ms=False)
    node.stop()
    tombstone = hub.operator().cancel(bid)
    assert tombstone["rev"] == 2
    node = start_node(config)
    wait_for(lambda: len(events.of(type_="accepted", bulletin=bid)) == 2, 15, "the tombstone to be accepted")
    assert events.of(type_="accepted", bulletin=bid)[1]["next"] is None
    stored = node.daemon.store.get_bulletin(bid)
    assert stored is not None and stored.cancelled and stored.rev == 2
    assert node.daemon.scheduler.next_play() is None


def test_sigkilled_node_catches_up_and_plays_on_time(hub: Hub, events: EventLog, tmp_path: Path) -> None:
    config = node_config(hub, tmp_path)
    node = ProcessNode(config, tmp_path)
    try:
        events_before = len(events.events)
        first = hub.post(SHORT)["id"]
        events.wait("finished", bulletin=first, timeout=60)
        node.kill()
        # While it is dead the hub schedules a bulletin a few seconds ahead.
        start = float(int(time.time()) + 10)
        bid = hub.post(SHORT, at=(rfc3339(start),))["id"]
        node = ProcessNode(config, tmp_path)
        started = events.wait("started", bulletin=bid, timeout=40)[0]
        assert abs(parse_rfc3339(started["audio_start"]) - start) < 0.1
        events.wait("finished", bulletin=bid, timeout=30)
        # The first bulletin was not played again, and seq carried on across the kill.
        assert len(events.of(type_="started", bulletin=first)) == 1
        # An event whose PUBACK the node had not stored when it was killed comes again, with its seq (at least
        # once): the hub keeps one per seq. No seq is skipped, and none names two different events.
        mine = {(e["seq"], e["type"], e.get("bulletin")) for e in events.events[events_before:]}
        assert sorted(seq for seq, _, _ in mine) == list(range(1, len(mine) + 1)), sorted(mine)
    finally:
        assert node.terminate() == 0


def test_broker_restart_loses_no_event(
    hub: Hub, broker: Broker, events: EventLog, start_node: Callable[..., ThreadNode]
) -> None:
    node = start_node()
    bid = hub.post(LONG)["id"]
    events.wait("started", bulletin=bid)
    broker.stop()  # the hub reboots while the node is playing: finished is made with no broker
    wait_for(lambda: not node.daemon.link.connected, 10, "the node to see the broker gone")
    wait_for(lambda: node.daemon.store.outbox_size() >= 1, 60, "the finished event to wait in the outbox")
    broker.start()
    events.wait("finished", bulletin=bid, timeout=30)
    second = hub.post(SHORT)["id"]
    events.wait("finished", bulletin=second)
    # A finished event whose PUBACK was lost with the broker comes again with its seq: the hub keeps one per seq.
    assert seqs(events.distinct()) == list(range(1, 7))
    assert [e["type"] for e in events.distinct()] == [
        "accepted", "started", "finished", "accepted", "started", "finished"
    ]


def test_emergency_preempts_and_the_interrupted_bulletin_resumes(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode]
) -> None:
    start_node()
    normal = hub.post(LONG)["id"]
    events.wait("started", bulletin=normal)
    emergency = hub.post("Tin khẩn cấp. Bão số ba đang vào.", priority="emergency")["id"]
    accepted = events.wait("accepted", bulletin=emergency)[0]
    interrupted = events.wait("interrupted", bulletin=normal)[0]
    assert interrupted["reason"] == "preempted"
    assert parse_rfc3339(interrupted["audio_end"]) - parse_rfc3339(accepted["ts"]) < 0.5
    events.wait("finished", bulletin=emergency)
    events.wait("finished", bulletin=normal, timeout=60)
    order = [(e["type"], e["bulletin"]) for e in sorted(events.events, key=lambda e: e["seq"])
             if e["type"] in {"started", "finished", "interrupted"}]
    assert order == [
        ("started", normal), ("interrupted", normal), ("started", emergency), ("finished", emergency),
        ("started", normal), ("finished", normal),
    ]


def test_priority_goes_ahead_of_normal(hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode]) -> None:
    node = start_node()
    start = float(int(time.time()) + 5)
    at = (rfc3339(start),)
    normal = hub.post(SHORT, at=at)["id"]
    priority = hub.post(SHORT, at=at, priority="priority")["id"]
    events.wait("accepted", count=2)
    assert node.daemon.scheduler.next_play() is not None
    events.wait("finished", bulletin=normal, timeout=40)
    starts = [e["bulletin"] for e in sorted(events.of(type_="started"), key=lambda e: e["seq"])]
    assert starts == [priority, normal]


def test_quiet_hours_skip_normal_but_never_an_emergency(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode], tmp_path: Path
) -> None:
    now = dt.datetime.now(HCM)
    begin, end = (now - dt.timedelta(minutes=5)).strftime("%H:%M"), (now + dt.timedelta(minutes=5)).strftime("%H:%M")
    start_node(node_config(hub, tmp_path, quiet=((begin, end),)))
    normal = hub.post(SHORT)["id"]
    skipped = events.wait("skipped", bulletin=normal)[0]
    assert skipped["reason"] == "quiet_hours"
    emergency = hub.post(SHORT, priority="emergency")["id"]
    events.wait("finished", bulletin=emergency)
    assert not events.of(type_="started", bulletin=normal)


def test_test_status_is_delivered_but_not_played(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode]
) -> None:
    start_node()
    bid = hub.post(SHORT, status="test")["id"]
    assert events.wait("skipped", bulletin=bid)[0]["reason"] == "test"
    assert not events.of(type_="started", bulletin=bid)


def test_a_fallback_voice_warning_is_reported_on_its_own_bulletin_only(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode], tmp_path: Path
) -> None:
    voices = tmp_path / "voices"
    shutil.copytree(REPO_ROOT / "voices", voices)
    (voices / "lost.yaml").write_text(  # a neural voice whose model is not on this node: vi-north reads it
        "description: lost\nengine: piper\nregion: north\nmodel: models/missing.onnx\nfallback: vi-north\n",
        encoding="utf-8",
    )
    config = node_config(hub, tmp_path)
    start_node(replace(config, speech=replace(config.speech, voices_dir=str(voices))))
    plain = hub.post(SHORT)["id"]
    lost = hub.post(SHORT, voice="lost")["id"]  # rendered beside the first, on the second render worker
    started = {e["bulletin"]: e for e in events.wait("started", count=2)}
    assert "warning" not in started[plain]
    warning = started[lost]["warning"]
    assert warning.startswith("voice lost could not read it (") and warning.endswith("): read with vi-north")
    assert "warning" not in events.of(type_="accepted", bulletin=lost)[0], "the node has the voice: no warning"


def test_exercise_speaks_a_drill_notice_first(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode]
) -> None:
    start_node()
    actual = hub.post(SHORT)["id"]
    drill = hub.post(SHORT, status="exercise")["id"]
    durations = {e["bulletin"]: e["duration_s"] for e in events.wait("finished", count=2)}
    assert durations[drill] > durations[actual] + 2  # "Thông báo diễn tập. Đây là bản tin diễn tập..."


def test_daily_schedule_across_midnight_in_ho_chi_minh(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode], tmp_path: Path
) -> None:
    """A daily bulletin the node has known for three days, after two days off: every day's occurrence is
    accounted for at its local date in Asia/Ho_Chi_Minh, the one inside grace plays, the next is tomorrow."""
    config = node_config(hub, tmp_path)
    now = time.time()
    local = dt.datetime.fromtimestamp(now, HCM).replace(second=0, microsecond=0)
    slot = local - dt.timedelta(minutes=2)  # today's occurrence: 2 minutes ago, inside the 10-minute grace
    request = PostRequest(text=SHORT, daily=(slot.strftime("%H:%M"),), expires="5d", chime=False)
    payload = hub.operator().bulletin(request, now=now - 3 * 86400)
    payload["exp"] = int(now + 5 * 86400)
    # The node received it three days ago and was last alive two and a half days ago.
    Path(config.storage.dir).mkdir(parents=True)
    with Store(Path(config.storage.dir) / "radiod.db") as store:
        store.apply_bulletin(id=payload["id"], rev=1, exp=payload["exp"], cancelled=False,
                             payload=json.dumps(payload, ensure_ascii=False), now=now - 3 * 86400)
        store.put_setting("last_alive", str(now - 2.5 * 86400))
    node = start_node(config)
    bid = payload["id"]
    events.wait("finished", bulletin=bid)
    missed = [e["occurrence"] for e in events.of(type_="skipped", bulletin=bid)]
    days = [slot - dt.timedelta(days=d) for d in (2, 1)]
    assert missed == [d.isoformat() for d in days]
    assert events.of(type_="started", bulletin=bid)[0]["occurrence"] == slot.isoformat()
    upcoming = node.daemon.scheduler.next_of(bid)
    assert upcoming is not None
    assert dt.datetime.fromtimestamp(upcoming, HCM) == slot + dt.timedelta(days=1)


def test_commands_run_once_and_are_reported(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode]
) -> None:
    node = start_node()
    now = int(time.time())

    def command(cid: str, action: str, **extra: Any) -> str:
        body = {"v": 1, "kind": "command", "id": cid, "iat": now, "exp": now + 60, "targets": ["node-n01"],
                "action": action, **extra}
        return sign(body, hub.key, hub.kid)

    volume = command("c1", "volume", args={"level": 0.4})
    mqtt = hub.config().mqtt
    publish_once(mqtt, "test", [(f"{PREFIX}/command/node-n01", volume, False)])
    done = events.wait("command")[0]
    assert (done["action"], done["result"]) == ("volume", "volume 0.40")
    assert node.daemon.store.get_setting("volume") == "0.4"
    publish_once(mqtt, "test", [(f"{PREFIX}/command/node-n01", volume, False)])
    assert events.wait("rejected")[0]["reason"] == "replayed"
    too_long = sign({"v": 1, "kind": "command", "id": "c2", "iat": now, "exp": now + 301, "targets": ["all"],
                     "action": "report"}, hub.key, hub.kid)
    publish_once(mqtt, "test", [(f"{PREFIX}/command/all", too_long, False)])
    assert events.wait("rejected", count=2)[1]["reason"] == "schema"
    # stop ends the current play now, relays off
    bid = hub.post(LONG)["id"]
    events.wait("started", bulletin=bid)
    publish_once(mqtt, "test", [(f"{PREFIX}/command/all", command("c3", "stop", targets=["all"]), False)])
    assert events.wait("interrupted", bulletin=bid)[0]["reason"] == "stopped"
    assert not node.daemon.station.relays.state()["amplifier"]
