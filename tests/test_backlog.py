"""An emergency (or a stop) behind a backlog: it goes ahead of every message the node has not handled yet, and the
backlog is still handled in full after it. Latency figures: bench/backlog.py."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from harness import PREFIX, SHORT, EventLog, Hub, ThreadNode

from radiod.clock import rfc3339
from radiod.hub.operator import PostRequest
from radiod.hub.session import publish_once
from radiod.node.inbox import Inbox
from radiod.protocol.builders import command, tombstone_for
from radiod.protocol.topics import bulletin_topic, command_topic
from radiod.protocol.urgency import is_urgent

BACKLOG = 300


def test_an_emergency_retained_behind_a_backlog_plays_before_the_backlog_is_parsed(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode]
) -> None:
    operator = hub.operator()
    now = time.time()
    later = [operator.bulletin(PostRequest(text=SHORT, targets=("zone-thon-1",), bulletin_id=f"b-{i:04d}",
                                           at=(rfc3339(now + 3600 + 60 * i),)), now=now) for i in range(BACKLOG)]
    emergency = operator.bulletin(PostRequest(text=SHORT, targets=("zone-thon-1",), bulletin_id="flood-warning",
                                              priority="emergency", chime=False), now=now)
    messages = [(bulletin_topic(PREFIX, "zone-thon-1", p["id"]), operator.sign(p), True) for p in [*later, emergency]]
    publish_once(hub.config().mqtt, "test", messages, timeout=30)  # the emergency is the last one the broker sends

    start_node()
    started = events.wait("started", bulletin="flood-warning", timeout=60)[0]
    accepted = events.wait("accepted", count=BACKLOG + 1, timeout=120)
    before = [e for e in accepted if e["seq"] < started["seq"] and e["bulletin"] != "flood-warning"]
    assert len(before) < BACKLOG // 10, f"{len(before)} of {BACKLOG} bulletins were handled before the emergency"
    assert {e["bulletin"] for e in accepted} == {p["id"] for p in later} | {"flood-warning"}, "none is lost"
    assert not events.of(type_="rejected")


def test_the_network_thread_peeks_emergencies_tombstones_and_stop_commands(hub: Hub) -> None:
    operator = hub.operator()
    now = time.time()
    normal = operator.bulletin(PostRequest(text=SHORT, bulletin_id="n1"), now=now)
    urgent = operator.bulletin(PostRequest(text=SHORT, bulletin_id="e1", priority="emergency"), now=now)
    topic = bulletin_topic(PREFIX, "all", "x")

    def signed_command(action: str) -> bytes:
        return operator.sign(command(id=f"c-{action}", iat=int(now), exp=int(now) + 60, action=action)).encode()

    assert is_urgent(topic, operator.sign(urgent).encode(), PREFIX)
    assert is_urgent(topic, operator.sign(tombstone_for(normal, now)).encode(), PREFIX)
    assert not is_urgent(topic, operator.sign(normal).encode(), PREFIX)
    assert is_urgent(command_topic(PREFIX, "all"), signed_command("stop"), PREFIX)
    assert not is_urgent(command_topic(PREFIX, "all"), signed_command("report"), PREFIX)
    for junk in (b"", b"a.b.c", b"x.!!!.y", b"{not json", b"[1]", b"\xff" * 10):
        assert not is_urgent(topic, junk, PREFIX)
    assert not is_urgent("elsewhere/bulletin/all/x", operator.sign(urgent).encode(), PREFIX)


def test_inbox_serves_urgent_first_and_lets_a_burst_settle() -> None:
    inbox: Inbox[str] = Inbox(lambda item: item.startswith("!"), quiet_s=0.05, patience_s=0.5)
    for item in ("a", "b", "!stop", "c", "!e"):
        inbox.put(item)
    assert [inbox.take(1.0) for _ in range(5)] == ["!stop", "!e", "a", "b", "c"]
    try:
        inbox.take(0.01, urgent_only=False)
    except queue.Empty:
        pass
    else:
        raise AssertionError("an empty inbox gave an item")

    stop = threading.Event()

    def burst() -> None:  # a message every 10 ms: the normal lane waits for quiet, or for its patience
        while not stop.wait(0.01):
            inbox.put("n")

    pourer = threading.Thread(target=burst)
    pourer.start()
    try:
        t0 = time.monotonic()
        assert inbox.take(2.0) == "n"
        waited = time.monotonic() - t0
        assert 0.4 <= waited < 1.0, f"a normal item during a burst came after {waited:.2f} s, not its patience"
        inbox.put("!now")
        t0 = time.monotonic()
        assert inbox.take(2.0, urgent_only=True) == "!now" and time.monotonic() - t0 < 0.1
    finally:
        stop.set()
        pourer.join()
