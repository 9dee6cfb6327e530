"""The node's MQTT link and the operator helpers against a real Mosquitto, as the hub and a technician see them."""

from __future__ import annotations

import datetime as dt
import json
import queue
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from radiod.config import MqttConfig
from radiod.errors import RadiodError
from radiod.hub.localbroker import Broker
from radiod.hub.session import collect_retained, publish_once, stream
from radiod.node.mqtt_link import Incoming, LinkEvent, MqttLink, node_client_id

PREFIX = "radio/test"
BULLETINS_ALL = f"{PREFIX}/bulletin/all/+"

Inbox = queue.Queue[Incoming | LinkEvent]
MakeLink = Callable[..., tuple[MqttLink, Inbox]]


def state_topic(node: str) -> str:
    return f"{PREFIX}/node/{node}/state"


@pytest.fixture
def make_link() -> Iterator[MakeLink]:
    """Builds and starts links; stops every one of them after the test, so no network thread outlives it."""
    started: list[MqttLink] = []

    def make(mqtt: MqttConfig, node: str = "n01", subscriptions: tuple[str, ...] = (BULLETINS_ALL,)) -> Any:
        inbox: Inbox = queue.Queue()
        link = MqttLink(
            mqtt, node, subscriptions=subscriptions, state_topic=state_topic(node), version="1.2.3", inbox=inbox
        )
        started.append(link)
        link.start()
        return link, inbox

    yield make
    for link in started:
        link.stop(timeout=2)


def config(broker: Broker, **overrides: Any) -> MqttConfig:
    return broker.mqtt_config(prefix=PREFIX, reconnect_max_s=2, **overrides)


def next_item(inbox: Inbox, match: Callable[[Incoming | LinkEvent], bool], timeout: float = 10) -> Any:
    """The first inbox item that matches, skipping others; fails the test if none comes within ``timeout``."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            item = inbox.get(timeout=left)
        except queue.Empty:
            break
        if match(item):
            return item
    pytest.fail(f"nothing matching arrived within {timeout} s")


def link_event(kind: str) -> Callable[[Incoming | LinkEvent], bool]:
    return lambda item: isinstance(item, LinkEvent) and item.kind == kind


def wait_until(condition: Callable[[], object], timeout: float = 10, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not reached within {timeout} s")
        time.sleep(0.05)


def retained_state(broker: Broker, node: str, **overrides: Any) -> dict[str, Any] | None:
    """What `radiod nodes` would read for ``node``: the retained state message, decoded."""
    found = collect_retained(config(broker, **overrides), "test", state_topic(node), settle_s=0.3)
    return json.loads(found[0].payload) if found else None


def assert_rfc3339_with_offset(text: str) -> None:
    assert dt.datetime.fromisoformat(text).utcoffset() is not None, text


# -- subscriptions and the online state ---------------------------------------------------------------------------


def test_retained_bulletin_published_before_start_arrives_after_connected(broker: Broker, make_link: MakeLink) -> None:
    topic = f"{PREFIX}/bulletin/all/b1"
    publish_once(config(broker), "post", [(topic, b"signed bulletin", True)], timeout=5)

    _link, inbox = make_link(config(broker))

    first = inbox.get(timeout=10)
    assert isinstance(first, LinkEvent) and first.kind == "connected"
    message = next_item(inbox, lambda item: isinstance(item, Incoming))
    assert (message.topic, message.payload, message.retained) == (topic, b"signed bulletin", True)
    assert abs(message.received - time.time()) < 10


def test_state_is_online_while_connected_and_offline_after_stop(broker: Broker, make_link: MakeLink) -> None:
    link, inbox = make_link(config(broker))
    next_item(inbox, link_event("connected"))
    assert link.connected and link.connected_since is not None and link.last_error is None

    online = retained_state(broker, "n01")
    assert online is not None and online["online"] is True and online["version"] == "1.2.3"
    assert_rfc3339_with_offset(online["since"])

    link.stop()

    offline = retained_state(broker, "n01")
    # The Last Will is only {"online": false} and a clean DISCONNECT discards it anyway: "since" and "version"
    # prove the node published its offline state itself.
    assert offline is not None and offline["online"] is False and offline["version"] == "1.2.3"
    assert_rfc3339_with_offset(offline["since"])
    assert not link.connected
    assert next_item(inbox, link_event("disconnected")).reason == "stopped"


CHILD = """
import queue, sys, time
from radiod.config import MqttConfig
from radiod.node.mqtt_link import MqttLink
host, port, prefix, node = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
inbox = queue.Queue()
link = MqttLink(MqttConfig(host=host, port=port, prefix=prefix), node, subscriptions=[],
                state_topic=f"{prefix}/node/{node}/state", version="1.2.3", inbox=inbox)
link.start()
print(inbox.get(timeout=10).kind, flush=True)
time.sleep(60)
"""


def test_killed_node_is_announced_offline_by_its_last_will(broker: Broker) -> None:
    args = [sys.executable, "-c", CHILD, broker.host, str(broker.port), PREFIX, "n07"]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "connected"
        wait_until(lambda: (retained_state(broker, "n07") or {}).get("online") is True, what="online state")

        child.send_signal(signal.SIGKILL)  # a power cut: the socket closes without DISCONNECT
        child.wait(5)

        wait_until(lambda: retained_state(broker, "n07") == {"online": False}, timeout=5, what="the Last Will")
    finally:
        child.kill()
        child.wait()


# -- reconnecting ---------------------------------------------------------------------------------------------------


def test_link_reconnects_and_resubscribes_after_the_broker_restarts(broker: Broker, make_link: MakeLink) -> None:
    link, inbox = make_link(config(broker))
    next_item(inbox, link_event("connected"))

    broker.restart()

    down = next_item(inbox, link_event("disconnected"))
    assert broker.host in down.reason
    next_item(inbox, link_event("connected"))
    assert link.connected
    # "connected" comes before the broker has the new SUBSCRIBE: a live message sent in between would reach no one
    wait_until(lambda: link.subscribed, what="the subscriptions acknowledged again")
    topic = f"{PREFIX}/bulletin/all/b2"
    publish_once(config(broker), "post", [(topic, b"after restart", False)], timeout=5)
    message = next_item(inbox, lambda item: isinstance(item, Incoming))
    assert (message.topic, message.payload, message.retained) == (topic, b"after restart", False)
    assert (retained_state(broker, "n01") or {}).get("online") is True


def test_publish_waits_for_the_broker_and_is_acknowledged_when_it_is_back(broker: Broker, make_link: MakeLink) -> None:
    link, inbox = make_link(config(broker))
    acked: queue.Queue[int] = queue.Queue()
    link.on_acked = acked.put
    next_item(inbox, link_event("connected"))

    broker.stop()
    wait_until(lambda: not link.connected, what="link down")
    health = f"{PREFIX}/node/n01/health"
    assert link.publish(health, '{"status": "ok"}', retain=True) is None
    wait_until(lambda: link.last_error is not None, what="an error")
    assert f"{broker.host}:{broker.port}" in str(link.last_error)

    broker.start()
    next_item(inbox, link_event("connected"))
    mid = link.publish(health, '{"status": "ok"}', retain=True)
    assert mid is not None
    assert link.wait_published(mid, timeout=5)
    next_ack = iter(lambda: acked.get(timeout=1), mid)  # the link's own state messages are acknowledged too
    assert all(other != mid for other in next_ack)
    [message] = collect_retained(config(broker), "test", health, settle_s=0.3)
    assert message.payload == b'{"status": "ok"}'


def test_start_does_not_block_without_a_broker_and_says_why(broker: Broker, make_link: MakeLink) -> None:
    broker.stop()
    began = time.monotonic()
    link, _inbox = make_link(config(broker))
    assert time.monotonic() - began < 0.5
    wait_until(lambda: link.last_error is not None, what="an error")
    assert f"cannot connect to broker {broker.host}:{broker.port}" in str(link.last_error)
    assert not link.connected and link.publish(f"{PREFIX}/node/n01/event", "{}") is None
    began = time.monotonic()
    link.stop()
    assert time.monotonic() - began < 7  # at most one connect attempt in flight (paho's 5 s connect timeout)


# -- client ids -----------------------------------------------------------------------------------------------------


def test_two_nodes_coexist(broker: Broker, make_link: MakeLink) -> None:
    one, inbox_one = make_link(config(broker), "n01")
    two, inbox_two = make_link(config(broker), "n02")
    next_item(inbox_one, link_event("connected"))
    next_item(inbox_two, link_event("connected"))
    assert one.client_id == node_client_id(PREFIX, "n01") and one.client_id.endswith("-n01")
    assert two.client_id.endswith("-n02")

    wait_until(lambda: one.subscribed and two.subscribed, what="both links' subscriptions acknowledged")
    topic = f"{PREFIX}/bulletin/all/b3"
    publish_once(config(broker), "post", [(topic, b"for everyone", False)], timeout=5)
    for inbox in (inbox_one, inbox_two):
        assert next_item(inbox, lambda item: isinstance(item, Incoming)).payload == b"for everyone"
    time.sleep(1.5)  # a client-id clash would have kicked one of them off by now
    assert one.connected and two.connected and one.last_error is None and two.last_error is None
    for inbox in (inbox_one, inbox_two):
        assert not [item for item in list(inbox.queue) if isinstance(item, LinkEvent)]


def test_client_id_depends_on_the_prefix() -> None:
    assert node_client_id("radio/yen-hoa", "n01") != node_client_id("radio/dai-mo", "n01")
    assert node_client_id("radio/yen-hoa", "n01") == node_client_id("radio/yen-hoa", "n01")


def test_a_second_process_with_the_same_node_id_is_reported(broker: Broker, make_link: MakeLink) -> None:
    first, inbox = make_link(config(broker), "n01")
    next_item(inbox, link_event("connected"))
    make_link(config(broker), "n01")

    # Each process is kicked off when the other reconnects (every second): the third time in a row, it says why.
    clash = next_item(inbox, lambda item: isinstance(item, LinkEvent) and "second radiod" in str(item.reason), 15)
    assert first.client_id in clash.reason
    assert first.last_error is not None and "second radiod" in first.last_error


# -- credentials, TLS, ACL ------------------------------------------------------------------------------------------


def test_password_is_sent_and_a_wrong_one_is_reported(tmp_path: Path, make_link: MakeLink) -> None:
    with Broker(tmp_path / "auth", users={"node": "right"}) as broker:
        wrong, _ = make_link(config(broker, username="node", password="wrong"), "n01")
        right, inbox = make_link(config(broker, username="node", password="right"), "n02")
        next_item(inbox, link_event("connected"))
        wait_until(lambda: wrong.last_error is not None, what="an error")
        assert not wrong.connected
        assert "refused the connection" in str(wrong.last_error)
        with pytest.raises(RadiodError, match=r"refused the connection: (Bad user name or password|Not authorized)"):
            publish_once(config(broker, username="node", password="wrong"), "post", [("a/b", "x", False)], 5)
        right.stop()
        wrong.stop()


def test_tls_with_a_client_certificate(tmp_path: Path, make_link: MakeLink) -> None:
    with Broker(tmp_path / "tls", client_certs=True) as broker:
        link, inbox = make_link(config(broker), "n01")
        next_item(inbox, link_event("connected"))
        assert (retained_state(broker, "n01") or {}).get("online") is True
        link.stop()


def test_missing_ca_file_is_a_clear_error(tmp_path: Path) -> None:
    with Broker(tmp_path / "tls", tls=True) as broker:
        mqtt = config(broker)
        assert mqtt.tls is not None
        missing = str(tmp_path / "nope.crt")
        bad = MqttConfig(host=mqtt.host, port=mqtt.port, tls=type(mqtt.tls)(ca_file=missing))
        with pytest.raises(RadiodError, match=r"mqtt\.tls\.ca_file: .*nope\.crt: no such file"):
            MqttLink(bad, "n01", subscriptions=[], state_topic=state_topic("n01"), version="1", inbox=queue.Queue())


ACL = f"""\
topic readwrite {PREFIX}/node/+/state
topic read {PREFIX}/bulletin/#
"""


def test_a_refused_message_is_reported_not_counted_as_delivered(tmp_path: Path, make_link: MakeLink) -> None:
    with Broker(tmp_path / "acl", acl=ACL) as broker:
        link, inbox = make_link(config(broker), "n01")
        next_item(inbox, link_event("connected"))

        acked: list[int] = []
        link.on_acked = acked.append
        mid = link.publish(f"{PREFIX}/node/n01/event", '{"seq": 1}')
        assert mid is not None
        assert not link.wait_published(mid, timeout=5)
        assert "refused a message" in str(link.last_error) and "Not authorized" in str(link.last_error)
        assert mid not in acked
        link.stop()


# -- operator helpers -----------------------------------------------------------------------------------------------


def test_publish_once_reports_an_unreachable_broker(broker: Broker) -> None:
    broker.stop()
    with pytest.raises(RadiodError, match=rf"^cannot reach broker 127\.0\.0\.1:{broker.port}: connection refused$"):
        publish_once(config(broker), "post", [(f"{PREFIX}/bulletin/all/x", "x", True)], timeout=2)


def test_collect_retained_returns_every_retained_message_and_no_live_one(broker: Broker) -> None:
    topics = [f"{PREFIX}/bulletin/all/b{i}" for i in range(3)]
    publish_once(config(broker), "post", [(t, f"payload {t}", True) for t in topics], timeout=5)
    publish_once(config(broker), "post", [(f"{PREFIX}/bulletin/all/live", "not retained", False)], timeout=5)

    found = collect_retained(config(broker), "bulletins", f"{PREFIX}/bulletin/#", settle_s=0.3)

    assert sorted(m.topic for m in found) == topics
    assert all(m.retained and m.payload == f"payload {m.topic}".encode() for m in found)


def test_stream_yields_retained_then_live_messages_and_ends(broker: Broker) -> None:
    retained = f"{PREFIX}/node/n01/state"
    publish_once(config(broker), "post", [(retained, '{"online": true}', True)], timeout=5)
    messages = stream(config(broker), "watch", [f"{PREFIX}/node/+/state", f"{PREFIX}/node/+/event"], duration_s=2)

    first = next(messages)
    assert (first.topic, first.retained) == (retained, True)
    publish_once(config(broker), "post", [(f"{PREFIX}/node/n01/event", '{"seq": 5}', False)], timeout=5)
    second = next(messages)
    assert (second.topic, second.payload, second.retained) == (f"{PREFIX}/node/n01/event", b'{"seq": 5}', False)
    began = time.monotonic()
    assert list(messages) == []
    assert time.monotonic() - began < 2.5
