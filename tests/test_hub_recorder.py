"""The hub's recorder on a real broker with a real node: every event stored once, through hub and broker restarts;
delivery per bulletin ("played on N of M", naming the missing); the monthly report; the hub config."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from harness import PREFIX, SHORT, EventLog, Hub, ThreadNode, wait_for

from radiod.errors import ConfigError
from radiod.hub import recorder, reports
from radiod.hub.config import HubServiceConfig, load_hub_config
from radiod.hub.localbroker import Broker
from radiod.hub.recorder import Recorder
from radiod.protocol.outgoing import Check, Event, Health
from radiod.protocol.topics import event_topic, health_topic
from radiod.schema import to_plain


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "hub" / "hub.db"


@pytest.fixture
def start_recorder(broker: Broker, database: Path) -> Iterator[Callable[[], Recorder]]:
    running: list[Recorder] = []

    def start() -> Recorder:
        rec = Recorder(broker.mqtt_config(prefix=PREFIX, reconnect_max_s=1), database)
        rec.start()
        assert rec.connected.wait(10), "the recorder did not connect"
        running.append(rec)
        return rec

    yield start
    for rec in running:
        if rec.alive():
            rec.stop()


def read(database: Path) -> sqlite3.Connection:
    return recorder.connect(database)


def stored(database: Path, bulletin: str, type_: str) -> list[sqlite3.Row]:
    with read(database) as db:
        return list(db.execute("SELECT * FROM events WHERE bulletin=? AND type=?", (bulletin, type_)))


def test_a_play_is_recorded_and_reported_with_the_node_that_never_connected(
    hub: Hub, start_node: Callable[..., ThreadNode], start_recorder: Callable[[], Recorder], database: Path,
) -> None:
    start_recorder()
    start_node()
    posted = hub.post(SHORT)
    wait_for(lambda: stored(database, posted["id"], "finished"), 60, "the finished event in the hub database")

    db = read(database)
    assert recorder.deliveries(db, posted["id"]) == {"n01": "finished"}
    found = reports.delivery(db, posted["id"], expected=["n01", "n02"], zones={})
    assert found is not None
    assert found.summary() == "played on 1 of 2 nodes; not on n02"
    assert recorder.bulletin(db, posted["id"])["text"] == SHORT  # the retained bulletin is recorded too
    node = {r["node"]: r for r in recorder.nodes(db)}["n01"]
    assert node["online"] == 1 and node["last_seen"] is not None and node["health_status"] in ("ok", "warn")


def test_events_sent_while_the_hub_is_down_arrive_once_after_hub_and_broker_restarts(
    hub: Hub, broker: Broker, start_node: Callable[..., ThreadNode], start_recorder: Callable[[], Recorder],
    database: Path, events: EventLog,
) -> None:
    rec = start_recorder()
    start_node()
    first = hub.post(SHORT)
    wait_for(lambda: stored(database, first["id"], "finished"), 60, "the first play recorded")
    rec.stop()  # the hub goes down; the broker keeps its session

    second = hub.post(SHORT)
    events.wait("finished", bulletin=second["id"], timeout=60)
    broker.restart()  # and the broker restarts too, from its persistence file
    start_recorder()
    wait_for(lambda: stored(database, second["id"], "finished"), 30, "the play made while the hub was down")
    wait_for(lambda: len(read(database).execute("SELECT 1 FROM events").fetchall()) >= len(events.of("n01")), 15,
             "every event the node sent")

    seqs = [r["seq"] for r in read(database).execute("SELECT seq FROM events WHERE node='n01' ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1)), "events lost or doubled"
    assert len(seqs) == len({e["seq"] for e in events.of("n01")})


def test_health_reports_sent_while_the_hub_is_down_do_not_push_the_events_out(
    broker: Broker, start_recorder: Callable[[], Recorder], database: Path,
) -> None:
    """200 nodes report health every minute: over a hub outage of six minutes that is more than the broker queues
    for one session (max_queued_messages, 1000 by default); the plays reported after it must still all arrive."""
    nodes = [f"n{i:03d}" for i in range(200)]
    rec = start_recorder()
    rec.stop()  # the hub goes down; its session stays on the broker
    now = "2026-11-03T06:30:00+07:00"
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="nodes")
    client.max_inflight_messages_set(100)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        sent = []
        for _minute in range(6):
            for node in nodes:
                health = Health(node=node, ts=now, status="ok", version="1", checks=(Check("clock", "ok", "synced"),))
                sent.append(client.publish(health_topic(PREFIX, node), health.to_json(), qos=1, retain=True))
        for node in nodes:
            event = Event(type="finished", node=node, ts="2026-11-03T06:30:12.000+07:00", seq=1, bulletin="b-1",
                          rev=1, duration_s=12.5)
            sent.append(client.publish(event_topic(PREFIX, node), json.dumps(event.to_dict()), qos=1))
        for info in sent:
            info.wait_for_publish(30)
    finally:
        client.disconnect()
        client.loop_stop()

    start_recorder()
    wait_for(lambda: len(stored(database, "b-1", "finished")) == len(nodes), 30, "every node's play in the database")
    wait_for(lambda: sum(r["health_status"] == "ok" for r in recorder.nodes(read(database))) == len(nodes), 15,
             "every node's latest health, retained, after the outage")


def test_an_event_delivered_twice_is_stored_once(database: Path) -> None:
    db = read(database)
    event = Event(type="finished", node="n01", ts="2026-11-03T06:30:12.000+07:00", seq=7, bulletin="b-1", rev=1,
                  duration_s=12.5)
    with db:
        assert recorder.store_event(db, "n01", event, 1.0)
        assert not recorder.store_event(db, "n01", event, 2.0)
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 1


def test_the_monthly_report_counts_plays_per_node_and_per_bulletin(database: Path) -> None:
    db = read(database)
    bulletin = {"id": "b-1", "rev": 1, "title": "Lịch cắt điện", "priority": "normal", "status": "actual",
                "targets": ["all"], "text": "x", "exp": 0}
    plays = [("n01", 1, "2026-11-03T06:30:00.000+07:00", "finished", 60.0),
             ("n01", 2, "2026-11-04T06:30:00.000+07:00", "finished", 60.0),
             ("n02", 1, "2026-11-03T06:30:00.000+07:00", "interrupted", None),
             ("n02", 2, "2026-12-01T06:30:00.000+07:00", "finished", 60.0)]  # next month
    with db:
        recorder.store_bulletin(db, bulletin, f"{PREFIX}/bulletin/all/b-1", True, 1.0)
        for node, seq, ts, kind, duration in plays:
            recorder.store_event(db, node, Event(type=kind, node=node, ts=ts, seq=seq, bulletin="b-1", rev=1,
                                                 duration_s=duration), 1.0)
    per_node, per_bulletin = reports.monthly(db, "2026-11")
    nodes_csv = list(csv.reader(io.StringIO(reports.to_csv(reports.NODE_COLUMNS, reports.node_rows(per_node)))))
    assert nodes_csv[0][0] == "\ufeffnode"
    assert nodes_csv[1:] == [["n01", "2", "0", "0", "0", "2.0", "1"], ["n02", "0", "1", "0", "0", "0.0", "1"]]
    bulletin_csv = reports.to_csv(reports.BULLETIN_COLUMNS, reports.bulletin_rows(db, per_bulletin))
    assert "b-1,Lịch cắt điện,normal,actual,2,1,0,0,2.0,2" in bulletin_csv


def test_hub_config_names_the_line_of_a_mistyped_key_and_masks_the_password(tmp_path: Path) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text("mqtt:\n  host: 127.0.0.1\n  password: s3cret\nweb:\n  adress: 0.0.0.0\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_hub_config(path)
    assert "line 5" in str(err.value) or ":5" in str(err.value)
    assert "did you mean 'address'" in str(err.value)
    path.write_text("mqtt:\n  password: s3cret\nnodes:\n  expected: [n01]\n  zones: {thon-1: [n02]}\n",
                    encoding="utf-8")
    config = load_hub_config(path)
    assert to_plain(config)["mqtt"]["password"] == "********"
    assert config.web.address == "127.0.0.1"  # the console is not on the LAN unless asked
    assert config.expected_nodes() == ["n01", "n02"]
    assert HubServiceConfig().operator_config().hub.kid == "hub-1"


def test_the_hub_yaml_in_docs_hub_md_is_valid(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "hub.md").read_text(encoding="utf-8")
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "hub.yaml"
    path.write_text(example, encoding="utf-8")
    config = load_hub_config(path)
    assert config.web.address == "127.0.0.1" and config.nodes.zones["thon-1"] == ["n01"]
